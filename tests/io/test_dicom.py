"""Tests of medseg.io.dicom: series reading against an analytic phantom, SimpleITK and pydicom's files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import medseg
from medseg.errors import (
    DicomSeriesError,
    InputNotFoundError,
    MissingExtraError,
    MultipleSeriesError,
)
from medseg.io import find_dicom_series, read_dicom_series
from medseg.io.dicom import read_dicom

from .conftest import DUPLICATE_K, MISSING_K, N_SLICES, sitk_affine_ras, sitk_array, write_series

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def pydicom_file(name: str) -> Path:
    """A file shipped inside the installed pydicom (never downloaded); skip if absent."""
    path = TEST_FILES / name
    if not path.exists():
        pytest.skip(f"{name} is not in the installed pydicom test data")
    return path


# ------------------------------------------------------------ synthetic series
def test_oblique_series_matches_analytic_answer(oblique_series, caplog):
    with caplog.at_level(logging.WARNING, logger="medseg"):
        volume = read_dicom_series(oblique_series.folder)
    present = oblique_series.present_k
    assert volume.shape == (32, 24, N_SLICES - 1)
    assert volume.array.dtype == np.int16
    np.testing.assert_allclose(volume.affine, oblique_series.affine_ras, atol=1e-4)
    np.testing.assert_array_equal(volume.array, oblique_series.hu[:, :, present])
    assert volume.spacing_mm == pytest.approx((0.7, 0.7, 2.5), abs=1e-6)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "duplicate" in messages and "missing slice" in messages
    assert volume.meta["dicom"]["irregular_spacing"] is True
    assert len(volume.meta["dicom"]["dropped_duplicates"]) == 1


def test_meta_lists_files_and_uids_in_k_order(oblique_series):
    volume = read_dicom_series(oblique_series.folder)
    dicom = volume.meta["dicom"]
    assert set(dicom) >= {
        "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "Modality",
        "SeriesDescription", "PatientID", "SOPClassUID", "SOPInstanceUIDs", "files",
    }
    assert dicom["Modality"] == "CT" and volume.meta["modality"] == "CT"
    assert volume.meta["source"] == str(oblique_series.folder.resolve())
    for k, (path, uid) in enumerate(zip(dicom["files"], dicom["SOPInstanceUIDs"])):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.SOPInstanceUID == uid
        expected_lps = np.diag([-1, -1, 1]) @ volume.index_to_ras_mm([[0, 0, k]])[0]
        if k < MISSING_K:  # past the gap the nominal-spacing affine is off by design
            np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected_lps, atol=1e-4)


def test_geometry_equals_simpleitk_per_slice(oblique_series):
    # SimpleITK's series reader spreads slices over a gap (2.75 mm here), so compare each
    # file's own geometry and pixels with medseg's resampled regular grid.
    volume = read_dicom_series(oblique_series.folder, on_irregular="resample")
    assert volume.shape[2] == N_SLICES
    np.testing.assert_allclose(volume.affine, oblique_series.affine_ras, atol=1e-4)
    for k, path in zip(oblique_series.present_k, volume.meta["dicom"]["files"]):
        image = sitk.ReadImage(str(path))
        itk = sitk_affine_ras(image)
        np.testing.assert_allclose(volume.index_to_ras_mm([[0, 0, k]])[0], itk[:3, 3], atol=1e-4)
        np.testing.assert_allclose(volume.affine[:3, :2], itk[:3, :2], atol=1e-4)
        np.testing.assert_array_equal(volume.array[:, :, k], sitk_array(image)[:, :, 0])
    below, above = oblique_series.hu[:, :, MISSING_K - 1], oblique_series.hu[:, :, MISSING_K + 1]
    np.testing.assert_allclose(volume.array[:, :, MISSING_K], (below + above.astype(float)) / 2, atol=1e-3)


def test_regular_part_equals_simpleitk_series_reader(tmp_path):
    series = write_series(tmp_path / "ct", missing=(), duplicate=())
    volume = read_dicom_series(series.folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series.folder)))
    image = reader.Execute()
    np.testing.assert_allclose(volume.affine, sitk_affine_ras(image), atol=1e-4)
    np.testing.assert_array_equal(volume.array, sitk_array(image))
    np.testing.assert_array_equal(volume.array, series.hu)
    assert volume.meta["dicom"]["irregular_spacing"] is False


def test_irregular_raise(oblique_series):
    with pytest.raises(DicomSeriesError, match="missing slice") as info:
        read_dicom_series(oblique_series.folder, on_irregular="raise")
    assert str(oblique_series.folder) in str(info.value)


def test_gantry_tilt_detected_and_resampled(tmp_path, caplog):
    # 0.7 mm in-plane shift per slice = exactly one row, so resampling is an integer shift.
    series = write_series(tmp_path / "tilt", missing=(), duplicate=(), tilt_mm=0.7)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        sheared = read_dicom_series(series.folder)
    assert "gantry tilt" in caplog.text
    expected_deg = np.degrees(np.arctan(0.7 / 2.5))
    assert sheared.meta["dicom"]["gantry_tilt_deg"] == pytest.approx(expected_deg, abs=1e-3)
    np.testing.assert_allclose(sheared.affine, series.affine_ras, atol=1e-4)  # sheared k column
    regular = read_dicom_series(series.folder, on_irregular="resample")
    direction = regular.direction
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(regular.origin_mm, sheared.origin_mm, atol=1e-6)
    for k in range(N_SLICES):
        # Voxel (c, r, k) of the regular grid lies in file slice k at row r - k.
        np.testing.assert_array_equal(regular.array[:, k:, k], series.hu[:, : 24 - k, k])


def test_duplicate_only_series_is_regular(tmp_path):
    series = write_series(tmp_path / "dup", missing=(), duplicate=(DUPLICATE_K, 2))
    volume = read_dicom_series(series.folder, on_irregular="raise")
    assert volume.shape[2] == N_SLICES
    np.testing.assert_array_equal(volume.array, series.hu)


def test_non_dicom_and_truncated_files_are_skipped_with_reasons(oblique_series):
    folder = oblique_series.folder
    (folder / "notes.txt").write_text("not a scan")
    victim = oblique_series.files[0]
    truncated = folder / "truncated.dcm"
    truncated.write_bytes(victim.read_bytes()[:-200])
    shutil.copy(pydicom_file("liver_1frame.dcm"), folder / "seg.dcm")
    found = find_dicom_series(folder)
    assert len(found.series) == 1 and found.series[0].n_frames == len(oblique_series.files)
    reasons = {item.path.name: item.reason for item in found.skipped}
    assert "not a DICOM" in reasons["notes.txt"]
    assert "truncated" in reasons["truncated.dcm"]
    assert "DICOM-SEG" in reasons["seg.dcm"]
    volume = read_dicom_series(folder)
    assert volume.shape == (32, 24, N_SLICES - 1)
    assert {Path(item["path"]).name for item in volume.meta["dicom"]["skipped"]} == set(reasons)


def test_multiple_series_listed_and_selectable(tmp_path):
    write_series(tmp_path / "a", missing=(), duplicate=(), seed=1, series_uid="1.2.3.1")
    write_series(tmp_path / "b", missing=(), duplicate=(), seed=2, series_uid="1.2.3.2")
    with pytest.raises(MultipleSeriesError, match="series_uid=") as info:
        read_dicom_series(tmp_path)
    assert "1.2.3.1" in str(info.value) and "1.2.3.2" in str(info.value)
    assert len(info.value.series) == 2
    volume = read_dicom_series(tmp_path, series_uid="1.2.3.2")
    assert volume.meta["dicom"]["SeriesInstanceUID"] == "1.2.3.2"


def test_mixed_matrix_sizes_split(tmp_path):
    write_series(tmp_path, missing=tuple(range(6, 12)), duplicate=(), series_uid="1.2.9")
    write_series(tmp_path / "wide", missing=tuple(range(6)), duplicate=(), series_uid="1.2.9", columns=40)
    with pytest.raises(MultipleSeriesError, match="matrix size"):
        read_dicom_series(tmp_path)
    part = read_dicom_series(tmp_path, series_uid="1.2.9#1")
    assert part.shape[2] == 6


# ------------------------------------------------------------------ bad input
def test_empty_folder(tmp_path):
    with pytest.raises(DicomSeriesError, match="empty") as info:
        read_dicom_series(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_folder_of_non_dicom_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.bin").write_bytes(b"\0" * 300)
    with pytest.raises(DicomSeriesError, match="no DICOM image series") as info:
        read_dicom_series(tmp_path)
    assert "a.txt" in str(info.value) and str(tmp_path) in str(info.value)


def test_truncated_file_alone(tmp_path):
    path = tmp_path / "MR_truncated.dcm"
    shutil.copy(pydicom_file("MR_truncated.dcm"), path)
    with pytest.raises(DicomSeriesError, match="truncated") as info:
        medseg.read(path)
    assert "MR_truncated.dcm" in str(info.value)


def test_missing_path(tmp_path):
    with pytest.raises(InputNotFoundError, match="nowhere"):
        read_dicom_series(tmp_path / "nowhere")


def test_compressed_without_decoder(monkeypatch):
    from pydicom.pixels import get_decoder

    path = pydicom_file("MR_small_jp2klossless.dcm")
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    monkeypatch.setattr(get_decoder(ts), "_available", {})
    with pytest.raises(MissingExtraError, match=r'pip install "medseg\[dicom\]"') as info:
        medseg.read(path)
    assert "JPEG 2000" in str(info.value) and "MR_small_jp2klossless.dcm" in str(info.value)


# ------------------------------------------------------ pydicom's real files
def _itk_single(path: Path):
    image = sitk.ReadImage(str(path))
    return sitk_affine_ras(image), sitk_array(image)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "693_J2KI.dcm"])
def test_real_single_files_match_simpleitk(name):
    path = pydicom_file(name)  # 693_J2KI.dcm is a JPEG 2000 (lossy) compressed CT slice
    volume = medseg.read(path)
    itk_affine, itk_values = _itk_single(path)
    assert volume.shape == itk_values.shape
    np.testing.assert_allclose(volume.affine[:, [0, 1, 3]], itk_affine[:, [0, 1, 3]], atol=1e-4)
    # One slice has no measurable gap: both take SpacingBetweenSlices when present; without
    # it medseg uses SliceThickness, GDCM 1 mm (MR) -- so compare the k direction only then.
    column, itk_column = volume.affine[:3, 2], itk_affine[:3, 2]
    np.testing.assert_allclose(column / np.linalg.norm(column), itk_column / np.linalg.norm(itk_column), atol=1e-6)
    if "SpacingBetweenSlices" in pydicom.dcmread(path, stop_before_pixels=True):
        np.testing.assert_allclose(column, itk_column, atol=1e-4)
    np.testing.assert_array_equal(volume.array, itk_values)


@pytest.mark.parametrize(
    "name", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"]
)
def test_compressed_files_decode_like_uncompressed(name):
    reference = medseg.read(pydicom_file("MR_small.dcm"))
    volume = medseg.read(pydicom_file(name))
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-6)
    np.testing.assert_array_equal(volume.array, reference.array)


def test_dicomdir_series_matches_simpleitk():
    dicomdir = pydicom_file("dicomdirtests/DICOMDIR")
    found = find_dicom_series(dicomdir)
    brain = next(s for s in found.series if s.description == "Routine Brain")
    with pytest.raises(MultipleSeriesError):
        read_dicom(dicomdir)
    volume = read_dicom(dicomdir, series_uid=brain.uid)
    assert volume.meta["dicom"]["irregular_spacing"] is True  # this real series has a 202.5 mm gap
    # SimpleITK's series reader spreads an irregular stack evenly, so compare file by file.
    normal_ras = volume.direction[:, 2]
    for k, path in enumerate(volume.meta["dicom"]["files"]):
        itk_affine, itk_values = _itk_single(Path(path))
        np.testing.assert_allclose(volume.affine[:3, :2], itk_affine[:3, :2], atol=1e-4)
        if k == 0:
            np.testing.assert_allclose(volume.affine[:3, 3], itk_affine[:3, 3], atol=1e-4)
        position = volume.meta["dicom"]["slice_positions_mm"][k]
        assert float(itk_affine[:3, 3] @ normal_ras) == pytest.approx(position, abs=1e-4)
        np.testing.assert_array_equal(volume.array[:, :, k], itk_values[:, :, 0])


def test_enhanced_multiframe_equals_single_frame_series(tmp_path):
    highdicom = pytest.importorskip("highdicom")
    series = write_series(tmp_path / "ct", missing=(), duplicate=())
    single = read_dicom_series(series.folder)
    datasets = [pydicom.dcmread(p) for p in series.files]
    enhanced = highdicom.legacy.LegacyConvertedEnhancedCTImage(
        datasets, series_instance_uid=pydicom.uid.generate_uid(), series_number=2,
        sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1,
    )
    path = tmp_path / "enhanced.dcm"
    enhanced.save_as(path)
    volume = medseg.read(path)
    np.testing.assert_allclose(volume.affine, single.affine, atol=1e-4)
    np.testing.assert_array_equal(volume.array, single.array)


def test_slices_at_one_position_are_not_a_stack(tmp_path):
    from medseg.io.dicom_geometry import SliceGeometry, sort_slices

    flat = [SliceGeometry((0.0, 0.0, 5.0), (1, 0, 0, 0, 1, 0), (1.0, 1.0)),
            SliceGeometry((30.0, 0.0, 5.0), (1, 0, 0, 0, 1, 0), (1.0, 1.0))]
    with pytest.raises(DicomSeriesError, match="one position"):
        sort_slices(flat, source="localizer")
