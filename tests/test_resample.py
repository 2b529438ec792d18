"""Tests of medseg.resample: label safety, field-of-view grids, and trilinear values vs SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from medseg import Volume
from medseg.demo import make_phantom
from medseg.resample import grid_for_spacing, resample_to_grid

LPS = np.diag([-1.0, -1.0, 1.0])


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.7, 0.8, 3.3)])
def test_label_resampling_never_creates_new_values(order, spacing):
    case = make_phantom(shape=(24, 20, 16), spacing_mm=(1.5, 1.5, 2.0), seed=2, n_lesions=2)
    array = case.labels.array.copy()
    array[case.lesions.array > 0] = 9  # non-contiguous values: interpolation would invent 4..8
    labels = case.labels.with_array(array)
    out = labels.resample(spacing_mm=spacing, order=order)
    assert set(np.unique(out.array)) <= set(np.unique(array))
    assert out.array.dtype == array.dtype and out.kind == "labels"
    assert {1, 2, 3} <= set(np.unique(out.array))


def test_grid_for_spacing_keeps_the_field_of_view():
    rotation = Rotation.from_euler("xyz", [10.0, 20.0, 30.0], degrees=True).as_matrix()
    volume = Volume.from_array(np.zeros((30, 20, 10)), spacing_mm=(1.0, 1.5, 3.0), direction=rotation)
    affine, shape = grid_for_spacing(volume, (2.0, 3.0, 1.5))
    assert shape == (15, 10, 20)
    # Outer corner (-0.5, -0.5, -0.5) of both grids coincides.
    corner_old = volume.index_to_ras_mm([[-0.5, -0.5, -0.5]])
    corner_new = Volume(np.zeros(shape), affine).index_to_ras_mm([[-0.5, -0.5, -0.5]])
    np.testing.assert_allclose(corner_new, corner_old, atol=1e-9)
    np.testing.assert_allclose(Volume(np.zeros(shape), affine).direction, rotation, atol=1e-12)


def _smooth_image(rotation: np.ndarray) -> Volume:
    shape = (40, 36, 24)
    i, j, k = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    array = (100 * np.sin(i / 7.0) * np.cos(j / 9.0) + 3.0 * k).astype(np.float32)
    return Volume.from_array(array, spacing_mm=(0.8, 0.9, 2.0), origin_mm=(-14.0, 9.0, 30.0), direction=rotation)


def _to_sitk(volume: Volume) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))
    image.SetSpacing(volume.spacing_mm)
    image.SetOrigin((LPS @ np.asarray(volume.origin_mm)).tolist())
    image.SetDirection((LPS @ volume.direction).ravel().tolist())
    return image


def test_resample_like_matches_simpleitk_linear():
    source = _smooth_image(Rotation.from_euler("xyz", [8.0, -5.0, 12.0], degrees=True).as_matrix())
    target_rotation = Rotation.from_euler("xyz", [-4.0, 10.0, 3.0], degrees=True).as_matrix()
    target = Volume.from_array(np.zeros((30, 28, 30), np.float32), spacing_mm=(0.9, 1.0, 1.3),
                               origin_mm=(-10.0, 12.0, 33.0), direction=target_rotation)
    ours = source.resample_like(target, order=1)
    reference = sitk.Resample(_to_sitk(source), _to_sitk(target), sitk.Transform(), sitk.sitkLinear, -9999.0)
    theirs = sitk.GetArrayFromImage(reference).transpose(2, 1, 0)
    # Compare where the target voxel lies inside the source grid (SimpleITK pads outside).
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in target.shape], indexing="ij"), -1).reshape(-1, 3)
    index = source.ras_mm_to_index(target.index_to_ras_mm(grid))
    inside = np.all((index >= 0) & (index <= np.asarray(source.shape) - 1), axis=1).reshape(target.shape)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(ours.array[inside], theirs[inside], atol=1e-3)
    np.testing.assert_allclose(ours.affine, target.affine)


def test_same_grid_resample_is_identity_and_labels_outside_are_background():
    source = _smooth_image(np.eye(3))
    same = source.resample_like(source, order=3)
    np.testing.assert_allclose(same.array, source.array, atol=1e-3)
    labels = Volume.from_array(np.ones((4, 4, 4), np.uint8), kind="labels")
    bigger = Volume.from_array(np.zeros((8, 8, 8)), origin_mm=(-2.0, -2.0, -2.0))
    for order in (0, 1):
        out = labels.resample_like(bigger, order=order).array
        assert out[2:6, 2:6, 2:6].all() and out.sum() == 64


def test_probabilities_stay_in_range():
    rng = np.random.default_rng(0)
    probabilities = Volume.from_array(rng.random((8, 8, 8, 2)).astype(np.float32), kind="probabilities")
    out = resample_to_grid(probabilities, affine=np.diag([0.7, 0.7, 0.7, 1.0]), shape=(10, 10, 10), order=3)
    assert out.array.shape == (10, 10, 10, 2)
    assert out.array.min() >= 0.0 and out.array.max() <= 1.0
