"""Tests of medseg.io.dicom_write: series written by medseg read back by medseg, SimpleITK and pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from medseg import Volume
from medseg.demo import make_phantom
from medseg.errors import InvalidVolumeError, MedsegError
from medseg.io import read_dicom_series
from medseg.io.dicom_write import write_dicom_series

from .conftest import sitk_affine_ras, sitk_array


def oblique_ct(shape=(20, 16, 8)) -> Volume:
    case = make_phantom(shape=shape, spacing_mm=(2.0, 2.0, 3.0), seed=3)
    rotation = Rotation.from_euler("zyx", [30.0, 10.0, -20.0], degrees=True).as_matrix()
    return Volume.from_array(
        case.image.array, spacing_mm=(0.8, 0.9, 2.5), origin_mm=(-30.0, 12.5, 80.0), direction=rotation
    )


def test_round_trip_matches_medseg_and_simpleitk(tmp_path):
    volume = oblique_ct()
    files = write_dicom_series(volume, tmp_path / "ct", series_description="phantom", file_order=[3, 1, 7, 0, 2, 6, 4, 5])
    assert len(files) == 8 and all(f.exists() for f in files)
    assert not list((tmp_path / "ct").glob(".*"))  # no temporary files left behind
    back = read_dicom_series(tmp_path / "ct")
    expected = np.rint(volume.array).astype(np.int16)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-4)
    np.testing.assert_array_equal(back.array, expected)
    assert back.meta["dicom"]["SeriesDescription"] == "phantom"
    assert [str(f) for f in files] == back.meta["dicom"]["files"]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    image = reader.Execute()
    np.testing.assert_allclose(sitk_affine_ras(image), volume.affine, atol=1e-4)
    np.testing.assert_array_equal(sitk_array(image), expected)


def test_header_fields(tmp_path):
    volume = oblique_ct()
    files = write_dicom_series(volume, tmp_path, modality="MR", patient_id="P7", rescale_intercept=0.0,
                               study_uid="1.2.3.4")
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert ds.Modality == "MR" and ds.PatientID == "P7" and ds.StudyInstanceUID == "1.2.3.4"
    assert float(ds.RescaleIntercept) == 0.0 and ds.PixelRepresentation == 1
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.9, 0.8])  # rows, columns
    assert (ds.Rows, ds.Columns) == (16, 20)
    np.testing.assert_array_equal(ds.pixel_array, np.rint(volume.array[:, :, 0]).T)


def test_uid_seed_is_reproducible(tmp_path):
    volume = oblique_ct()
    first = write_dicom_series(volume, tmp_path / "a", uid_seed="case-1")
    second = write_dicom_series(volume, tmp_path / "b", uid_seed="case-1")
    other = write_dicom_series(volume, tmp_path / "c", uid_seed="case-2")
    for a, b, c in zip(first, second, other):
        assert a.read_bytes() == b.read_bytes()
        assert pydicom.dcmread(a).SOPInstanceUID != pydicom.dcmread(c).SOPInstanceUID


def test_left_handed_volume_comes_back_sorted_along_normal(tmp_path):
    array = np.arange(4 * 3 * 5, dtype=np.int16).reshape(4, 3, 5)
    volume = Volume.from_array(array, spacing_mm=(1.0, 1.0, 2.0), direction=np.diag([1.0, 1.0, -1.0]))
    write_dicom_series(volume, tmp_path, rescale_intercept=0.0)
    back = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(back.array, array[:, :, ::-1])
    np.testing.assert_allclose(back.index_to_ras_mm([[1, 2, 0]]), volume.index_to_ras_mm([[1, 2, 4]]), atol=1e-6)


def test_refuses_bad_requests(tmp_path):
    volume = oblique_ct()
    write_dicom_series(volume, tmp_path)
    with pytest.raises(MedsegError, match="empty folder"):
        write_dicom_series(volume, tmp_path)
    with pytest.raises(MedsegError, match="modality"):
        write_dicom_series(volume, tmp_path / "us", modality="US")
    sheared = volume.replace(affine=volume.affine @ np.array(
        [[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float))
    with pytest.raises(InvalidVolumeError, match="perpendicular"):
        write_dicom_series(sheared, tmp_path / "sheared")
    hot = volume.with_array(np.full(volume.shape, 70000.0, dtype=np.float32))
    with pytest.raises(InvalidVolumeError, match="rescale_slope"):
        write_dicom_series(hot, tmp_path / "hot")
    write_dicom_series(hot, tmp_path / "hot2", rescale_slope=2.0)
    assert read_dicom_series(tmp_path / "hot2").array.max() == 70000
