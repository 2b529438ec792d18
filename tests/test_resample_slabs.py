"""Slabbed resampling (medseg.resample.iter_resampled_slabs) against whole-volume resampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medseg import Volume
from medseg.demo import make_phantom
from medseg.errors import InvalidArgumentError
from medseg.resample import (
    grid_for_spacing,
    iter_resampled_slabs,
    oriented_grid,
    resample_to_grid,
    slab_depth_for,
    slab_working_bytes,
)


def oblique_lps_image(dtype=np.float32) -> Volume:
    """Anisotropic phantom stored LPS, rotated 14 degrees off the scanner axes."""
    case = make_phantom(shape=(40, 36, 46), spacing_mm=(1.1, 1.4, 2.6), seed=3)
    image = case.image.reorient("LPS")
    rotation = Rotation.from_euler("zx", [14.0, 6.0], degrees=True).as_matrix()
    affine = image.affine.copy()
    affine[:3, :3] = rotation @ affine[:3, :3]
    return image.replace(array=np.round(image.array).astype(dtype), affine=affine)


def assemble(volume: Volume, affine, shape, *, order: int, depth: int) -> np.ndarray:
    out = np.full(tuple(shape) + volume.array.shape[3:], np.nan, dtype=np.float64)
    seen = []
    for k0, k1, values in iter_resampled_slabs(volume, affine=affine, shape=shape, order=order,
                                               slab_depth=depth):
        assert values.shape[:3] == (shape[0], shape[1], k1 - k0)
        out[:, :, k0:k1] = values
        seen.append((k0, k1))
    assert seen[0][0] == 0 and seen[-1][1] == shape[2]
    assert all(a[1] == b[0] for a, b in zip(seen, seen[1:]))  # slabs tile z without gaps
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
@pytest.mark.parametrize("depth", [1, 4, 9, 1000])
@pytest.mark.parametrize("shift_mm", [(0.0, 0.0, 0.0), (6.0, -5.0, 9.0)])
def test_cubic_slabs_match_whole_volume_on_oblique_flipped_grid(dtype, depth, shift_mm):
    image = oblique_lps_image(dtype)
    affine, shape = grid_for_spacing(image.reorient("RAS"), (2.0, 1.7, 3.1))
    affine[:3, 3] += shift_mm  # shifted: part of the grid lies outside the source (edge values)
    whole = resample_to_grid(image, affine=affine, shape=shape, order=3).array
    slabbed = assemble(image, affine, shape, order=3, depth=depth)
    span = float(image.array.max()) - float(image.array.min())
    assert span > 1000.0
    # Known answer: the spline prefilter's influence decays as 0.268^n, so a 12-voxel
    # margin leaves differences at float32 rounding level (bound: 1e-5 of the range).
    assert np.abs(slabbed - whole).max() < 1e-5 * span
    if depth >= shape[2]:  # one slab reads the whole input: identical
        np.testing.assert_array_equal(slabbed, whole)


@pytest.mark.parametrize("depth", [1, 5, 64])
def test_linear_slabs_of_probabilities_match_to_rounding(depth):
    rng = np.random.default_rng(0)
    raw = rng.random((21, 17, 30, 3)).astype(np.float32)
    probs = Volume.from_array(raw / raw.sum(-1, keepdims=True), spacing_mm=(2.0, 2.5, 3.0),
                              direction=np.diag([-1.0, 1.0, -1.0]), kind="probabilities")
    target = make_phantom(shape=(30, 26, 41), spacing_mm=(1.5, 1.9, 2.1), seed=1).image
    affine = target.affine.copy()
    affine[:3, 3] -= (4.0, -3.0, 5.0)  # partly outside the source: edge values are repeated
    whole = resample_to_grid(probs, affine=affine, shape=target.shape, order=1).array
    slabbed = assemble(probs, affine, target.shape, order=1, depth=depth)
    # Linear weights need no margin; only the shifted slab offsets round differently (1 ulp).
    np.testing.assert_allclose(slabbed, whole, rtol=0, atol=1e-6)
    assert np.all((slabbed >= 0) & (slabbed <= 1))


@pytest.mark.parametrize("to", ["RAS", "LPS", "PIR", "SAL"])
def test_reorientation_only_is_an_exact_copy(to):
    image = oblique_lps_image()
    affine, shape = oriented_grid(image, to)
    reoriented = image.reorient(to)
    np.testing.assert_allclose(affine, reoriented.affine, atol=1e-12)
    assert shape == reoriented.shape
    np.testing.assert_array_equal(assemble(image, affine, shape, order=3, depth=7), reoriented.array)


def test_slab_depth_fits_the_working_budget():
    image = oblique_lps_image(np.int16)
    affine, shape = grid_for_spacing(image, 1.5)
    whole_bytes = slab_working_bytes(image, affine=affine, shape=shape, order=3, depth=shape[2])
    assert slab_depth_for(image, affine=affine, shape=shape, order=3,
                          max_working_mb=whole_bytes / 2**20) == shape[2]
    budget_mb = whole_bytes / 2**20 * 0.7
    depth = slab_depth_for(image, affine=affine, shape=shape, order=3, max_working_mb=budget_mb)
    assert 1 < depth < shape[2]
    assert slab_working_bytes(image, affine=affine, shape=shape, order=3, depth=depth) <= budget_mb * 2**20
    assert slab_working_bytes(image, affine=affine, shape=shape, order=3, depth=depth + 1) > budget_mb * 2**20
    # Cubic splines need scipy's padded float64 coefficients: more bytes than linear.
    assert slab_working_bytes(image, affine=affine, shape=shape, order=3, depth=4) > \
        slab_working_bytes(image, affine=affine, shape=shape, order=1, depth=4)
    assert slab_depth_for(image, affine=affine, shape=shape, order=3, max_working_mb=1e-3) == 1


def test_label_maps_are_refused():
    labels = make_phantom(shape=(8, 8, 8), seed=0).labels
    with pytest.raises(InvalidArgumentError, match="resample_to_grid"):
        next(iter_resampled_slabs(labels, affine=labels.affine, shape=labels.shape, slab_depth=2))
