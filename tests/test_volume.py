"""Tests of the Volume value type: reorientation against nibabel, cropping, grids and validation."""

from __future__ import annotations

import numpy as np
import pytest
from nibabel import orientations as nio
from scipy.spatial.transform import Rotation

from medseg import Volume
from medseg.errors import GeometryMismatchError, InvalidVolumeError

PERMUTED = np.array([[0.0, 0, -1], [-1, 0, 0], [0, -1, 0]])  # PIR-like: permuted and flipped
AFFINE_DIRECTIONS = {
    "LPS": np.diag([-1.0, -1.0, 1.0]),
    "LAI": np.diag([-1.0, 1.0, -1.0]),
    "permuted": PERMUTED,
    "oblique": Rotation.from_euler("xyz", [15.0, -20.0, 25.0], degrees=True).as_matrix(),
    "oblique_permuted": Rotation.from_euler("z", 18.0, degrees=True).as_matrix() @ PERMUTED,
}


def make(direction: np.ndarray, channels: int = 0) -> Volume:
    shape = (5, 6, 7) + ((channels,) if channels else ())
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return Volume.from_array(array, spacing_mm=(0.7, 0.9, 2.5), origin_mm=(3.0, -4.0, 5.0), direction=direction)


def nibabel_ras(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Reorient with nibabel.orientations (the reference implementation)."""
    current = nio.io_orientation(volume.affine)
    transform = nio.ornt_transform(current, nio.axcodes2ornt("RAS"))
    array = nio.apply_orientation(volume.array, transform)
    affine = volume.affine @ nio.inv_ornt_aff(transform, volume.array.shape[:3])
    return array, affine


@pytest.mark.parametrize("name", sorted(AFFINE_DIRECTIONS))
def test_reorient_matches_nibabel(name):
    volume = make(AFFINE_DIRECTIONS[name])
    ras = volume.reorient("RAS")
    array, affine = nibabel_ras(volume)
    np.testing.assert_array_equal(ras.array, array)
    np.testing.assert_allclose(ras.affine, affine, atol=1e-9)
    assert ras.orientation == "RAS" == "".join(nio.aff2axcodes(ras.affine))
    assert volume.orientation == "".join(nio.aff2axcodes(volume.affine))


@pytest.mark.parametrize("name", sorted(AFFINE_DIRECTIONS))
def test_reorient_keeps_every_voxel_in_place(name):
    volume = make(AFFINE_DIRECTIONS[name], channels=2)
    ras = volume.reorient("RAS")
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in volume.shape], indexing="ij"), -1).reshape(-1, 3)
    world = volume.index_to_ras_mm(grid)
    index = np.rint(ras.ras_mm_to_index(world)).astype(int)
    np.testing.assert_allclose(ras.index_to_ras_mm(index), world, atol=1e-9)
    np.testing.assert_array_equal(ras.array[tuple(index.T)], volume.array[tuple(grid.T)])
    back = ras.reorient(volume.orientation)
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-9)


def test_crop_moves_origin_to_new_corner():
    volume = make(AFFINE_DIRECTIONS["oblique"])
    cropped = volume.crop((slice(1, 4), slice(2, None), slice(-3, None)))
    assert cropped.shape == (3, 4, 3)
    np.testing.assert_allclose(cropped.origin_mm, volume.index_to_ras_mm([[1, 2, 4]])[0])
    np.testing.assert_array_equal(cropped.array, volume.array[1:4, 2:, 4:])
    np.testing.assert_allclose(cropped.affine[:3, :3], volume.affine[:3, :3])
    with pytest.raises(ValueError, match="step 1"):
        volume.crop((slice(0, 4, 2), slice(None), slice(None)))


def test_bounding_box_and_derived_geometry():
    array = np.zeros((10, 8, 6), np.uint8)
    array[2:5, 3, 1:4] = 1
    volume = Volume.from_array(array, spacing_mm=(0.7, 0.7, 2.5), kind="labels")
    assert volume.bounding_box() == (slice(2, 5), slice(3, 4), slice(1, 4))
    assert volume.bounding_box(margin_voxels=3) == (slice(0, 8), slice(0, 7), slice(0, 6))
    assert volume.with_array(np.zeros_like(array)).bounding_box() is None
    assert volume.voxel_volume_ml == pytest.approx(0.7 * 0.7 * 2.5 / 1000)
    points = np.array([[1.0, 2.0, 3.0], [9.0, 7.0, 5.0]])
    np.testing.assert_allclose(volume.ras_mm_to_index(volume.index_to_ras_mm(points)), points)


def test_same_grid_and_mismatch_message():
    a = Volume.from_array(np.zeros((4, 4, 4)), meta={"source": "a.nii.gz"})
    b = Volume.from_array(np.zeros((4, 4, 4)), origin_mm=(0.5, 0, 0), meta={"source": "b.nii.gz"})
    assert a.same_grid(a) and not a.same_grid(b) and b.same_grid(b.replace(affine=b.affine + 1e-6))
    with pytest.raises(GeometryMismatchError, match=r"a\.nii\.gz.*b\.nii\.gz.*resample_like"):
        a.require_same_grid(b)


def test_validation_errors_name_the_source():
    meta = {"source": "scan.nrrd"}
    with pytest.raises(InvalidVolumeError, match="scan.nrrd.*3D"):
        Volume(np.zeros((4, 4)), np.eye(4), meta=meta)
    with pytest.raises(InvalidVolumeError, match="scan.nrrd.*singular"):
        Volume(np.zeros((4, 4, 4)), np.diag([1.0, 0.0, 1.0, 1.0]), meta=meta)
    with pytest.raises(InvalidVolumeError, match="scan.nrrd.*kind"):
        Volume(np.zeros((4, 4, 4)), np.eye(4), kind="mask", meta=meta)  # type: ignore[arg-type]
    with pytest.raises(InvalidVolumeError, match="finite"):
        Volume(np.zeros((4, 4, 4)), np.full((4, 4), np.nan))
    with pytest.raises(GeometryMismatchError, match="spatial shape"):
        Volume.from_array(np.zeros((4, 4, 4))).with_array(np.zeros((4, 4, 5)))
