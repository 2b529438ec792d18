"""Round trips of medseg.read/write (NIfTI, NRRD, MetaImage) checked against nibabel, pynrrd and SimpleITK."""

from __future__ import annotations

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

import medseg
from medseg import Volume
from medseg.errors import (
    InputNotFoundError,
    InvalidVolumeError,
    UnreadableFileError,
    UnsupportedFormatError,
)

from .conftest import sitk_affine_ras, sitk_array

ROTATION = Rotation.from_euler("xyz", [12.0, -25.0, 40.0], degrees=True).as_matrix()
DIRECTIONS = {
    "RAS": np.eye(3),
    "LPS": np.diag([-1.0, -1.0, 1.0]),
    "PIR": np.array([[0.0, 0, -1], [-1, 0, 0], [0, -1, 0]]),  # permuted and flipped
    "oblique": ROTATION,
}
EXTENSIONS = [".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha", ".mhd"]


def make_volume(direction: np.ndarray, dtype=np.float32, kind="image") -> Volume:
    rng = np.random.default_rng(7)
    array = rng.normal(0, 100, size=(6, 5, 4)).astype(dtype) if kind == "image" else rng.integers(
        0, 4, size=(6, 5, 4)).astype(dtype)
    return Volume.from_array(array, spacing_mm=(0.7, 0.9, 2.5), origin_mm=(-10.0, 22.5, 31.0),
                             direction=direction, kind=kind,
                             labels={1: "liver", 2: "spleen", 3: "kidney"} if kind == "labels" else None)


@pytest.mark.parametrize("extension", EXTENSIONS)
@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_round_trip_preserves_array_affine_and_orientation(tmp_path, extension, name):
    volume = make_volume(DIRECTIONS[name])
    path = medseg.write(volume, tmp_path / f"vol{extension}")
    back = medseg.read(path)
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-6)
    assert back.orientation == "".join(nib.aff2axcodes(volume.affine))
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
    image = sitk.ReadImage(str(path))  # an independent reader agrees on the geometry
    np.testing.assert_allclose(sitk_affine_ras(image), volume.affine, atol=1e-5)
    np.testing.assert_array_equal(sitk_array(image), volume.array)


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
def test_simpleitk_written_files_read_back(tmp_path, extension):
    volume = make_volume(ROTATION, dtype=np.int16)
    image = sitk.GetImageFromArray(volume.array.transpose(2, 1, 0))
    lps = np.diag([-1.0, -1.0, 1.0]) @ volume.affine[:3, :3]
    image.SetSpacing(volume.spacing_mm)
    image.SetDirection((lps / np.asarray(volume.spacing_mm)).ravel().tolist())
    image.SetOrigin((np.diag([-1.0, -1.0, 1.0]) @ volume.origin_mm).tolist())
    sitk.WriteImage(image, str(tmp_path / f"itk{extension}"), useCompression=True)
    back = medseg.read(tmp_path / f"itk{extension}")
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)
    np.testing.assert_array_equal(back.array, volume.array)


def test_channels_round_trip(tmp_path):
    volume = make_volume(ROTATION)
    volume = volume.with_array(np.stack([volume.array, -volume.array], axis=-1))
    for extension in (".nrrd", ".mha", ".nii.gz"):
        back = medseg.read(medseg.write(volume, tmp_path / f"c{extension}"))
        np.testing.assert_array_equal(back.array, volume.array)
        np.testing.assert_allclose(back.affine, volume.affine, atol=1e-6)


def test_labels_keep_kind_and_names_in_seg_nrrd(tmp_path):
    volume = make_volume(np.eye(3), dtype=np.uint8, kind="labels")
    back = medseg.read(medseg.write(volume, tmp_path / "seg.seg.nrrd"))
    assert back.kind == "labels" and back.labels == volume.labels
    assert medseg.read(medseg.write(volume, tmp_path / "lab.nii.gz")).kind == "labels"


# ------------------------------------------------------------------- NRRD
def test_nrrd_ras_space_and_channels_first(tmp_path):
    data = np.arange(2 * 4 * 3 * 2, dtype=np.int16).reshape(2, 4, 3, 2)  # vector axis first
    header = {
        "space": "right-anterior-superior",
        "kinds": ["vector", "domain", "domain", "domain"],
        "space directions": np.array([[np.nan] * 3, [0.5, 0, 0], [0, 0, 0.8], [0, -2.0, 0]]),
        "space origin": [1.0, 2.0, 3.0],
    }
    nrrd.write(str(tmp_path / "v.nrrd"), data, header)
    volume = medseg.read(tmp_path / "v.nrrd")
    expected = np.array([[0.5, 0, 0, 1], [0, 0, -2.0, 2], [0, 0.8, 0, 3], [0, 0, 0, 1]])
    np.testing.assert_allclose(volume.affine, expected)
    np.testing.assert_array_equal(volume.array, np.moveaxis(data, 0, -1))
    assert volume.orientation == "".join(nib.aff2axcodes(expected)) == "RSP"


def test_nrrd_detached_header_and_lps(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    header = {"space": "left-posterior-superior", "kinds": ["domain"] * 3,
              "space directions": np.diag([0.7, 0.7, 3.0]), "space origin": [10.0, 20.0, 30.0]}
    nrrd.write(str(tmp_path / "d.nhdr"), data, header, detached_header=True)
    volume = medseg.read(tmp_path / "d.nhdr")
    np.testing.assert_allclose(volume.affine, np.diag([-0.7, -0.7, 3.0, 1]) + np.array(
        [[0, 0, 0, -10], [0, 0, 0, -20], [0, 0, 0, 30], [0, 0, 0, 0]]))
    np.testing.assert_array_equal(volume.array, data)
    assert volume.orientation == "LPS"
    with pytest.raises(UnsupportedFormatError, match=".nrrd"):
        medseg.write(volume, tmp_path / "out.nhdr")


# ------------------------------------------------------------------ NIfTI
def _nifti(array, affine, *, qform_code, sform_code, sform=None):
    image = nib.Nifti1Image(array, None)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine if sform is None else sform, code=sform_code)
    return image


def test_nifti_qform_only(tmp_path):
    affine = np.eye(4)
    affine[:3, :3] = ROTATION @ np.diag([0.8, 0.8, 2.0])
    affine[:3, 3] = [5, -6, 7]
    nib.save(_nifti(np.zeros((3, 4, 5), np.float32), affine, qform_code=1, sform_code=0), tmp_path / "q.nii")
    volume = medseg.read(tmp_path / "q.nii")
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    assert volume.meta["sform_code"] == 0 and volume.meta["qform_code"] == 1


def test_nifti_sform_wins_when_they_differ(tmp_path):
    qform = np.diag([1.0, 1.0, 1.0, 1.0])
    sform = np.diag([-0.5, 0.5, 3.0, 1.0])
    sform[:3, 3] = [1, 2, 3]
    nib.save(_nifti(np.zeros((3, 4, 5), np.int16), qform, qform_code=1, sform_code=2, sform=sform),
             tmp_path / "s.nii.gz")
    volume = medseg.read(tmp_path / "s.nii.gz")
    np.testing.assert_allclose(volume.affine, sform)
    assert volume.orientation == "LAS"


def test_nifti_with_nans(tmp_path):
    array = np.zeros((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(InvalidVolumeError, match="NaN") as info:
        medseg.read(tmp_path / "nan.nii.gz")
    assert "nan.nii.gz" in str(info.value)
    assert np.isnan(medseg.read(tmp_path / "nan.nii.gz", on_invalid="ignore").array).sum() == 1


def test_nifti_with_five_dimensions(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2, 2), np.float32), np.eye(4)), tmp_path / "5d.nii.gz")
    with pytest.raises(InvalidVolumeError, match="5 dimensions") as info:
        medseg.read(tmp_path / "5d.nii.gz")
    assert "5d.nii.gz" in str(info.value)


# -------------------------------------------------------------- bad input
def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(InputNotFoundError, match="missing.nii.gz"):
        medseg.read(tmp_path / "missing.nii.gz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UnsupportedFormatError, match="notes.txt"):
        medseg.read(tmp_path / "notes.txt")
    with pytest.raises(UnsupportedFormatError, match="out.png"):
        medseg.write(make_volume(np.eye(3)), tmp_path / "out.png")


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
def test_truncated_files(tmp_path, extension):
    path = medseg.write(make_volume(np.eye(3)), tmp_path / f"t{extension}")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(UnreadableFileError, match=f"t{extension}"):
        medseg.read(path)


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.float64, np.bool_, np.uint16, np.int8])
def test_every_common_dtype_can_be_written(tmp_path, extension, dtype):
    array = (np.arange(60).reshape(5, 4, 3) % 7).astype(dtype)
    back = medseg.read(medseg.write(Volume.from_array(array), tmp_path / f"d{extension}"))
    np.testing.assert_array_equal(back.array, array.astype(back.array.dtype))
    assert back.array.dtype.kind == ("u" if dtype == np.bool_ else np.dtype(dtype).kind) or (
        extension == ".nii.gz" and dtype == np.int64 and back.array.dtype == np.uint8)
