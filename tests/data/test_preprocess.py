"""preprocess_image: the slabbed (max_working_mb) path against the whole-volume path."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medseg.data.preprocess import NormalizationSpec, network_grid, preprocess_image
from medseg.demo import make_phantom
from medseg.errors import InvalidArgumentError

CT = NormalizationSpec("ct", -200.0, 300.0, 50.0, 100.0)


def oblique_lps_ct():
    case = make_phantom(shape=(48, 40, 60), spacing_mm=(0.9, 1.2, 2.5), seed=11)
    image = case.image.reorient("LPS")
    affine = image.affine.copy()
    affine[:3, :3] = Rotation.from_euler("y", 9.0, degrees=True).as_matrix() @ affine[:3, :3]
    return image.replace(array=np.round(image.array).astype(np.int16), affine=affine)


@pytest.mark.parametrize("normalization", [CT, NormalizationSpec("zscore"), NormalizationSpec("none")])
def test_slabbed_preprocessing_matches_whole_volume(normalization):
    image = oblique_lps_ct()
    options = dict(target_spacing_mm=(1.5, 1.5, 2.0), normalization=normalization)
    whole = preprocess_image(image, **options)
    slabbed = preprocess_image(image, max_working_mb=1.0, **options)  # ~1-slice slabs
    np.testing.assert_array_equal(slabbed.affine, whole.affine)
    assert slabbed.shape == whole.shape == network_grid(image, target_spacing_mm=(1.5, 1.5, 2.0))[1]
    assert slabbed.array.dtype == np.float32 and slabbed.meta == image.meta
    span = float(np.ptp(whole.array))
    # Bound: 1e-5 of the intensity range (spline margin of 12 voxels; z-score statistics
    # accumulated in float64 instead of float32).
    assert np.abs(slabbed.array - whole.array).max() < 1e-5 * span
    if normalization.scheme == "zscore":
        assert abs(float(slabbed.array.mean())) < 1e-4 and abs(float(slabbed.array.std()) - 1) < 1e-4


def test_reorientation_without_resampling_is_exact():
    case = make_phantom(shape=(20, 18, 16), spacing_mm=(1.5, 1.5, 2.0), seed=4)
    image = case.image.reorient("PIL")
    for max_working_mb in (None, 0.01):
        out = preprocess_image(image, target_spacing_mm=(1.5, 1.5, 2.0), normalization=CT,
                               max_working_mb=max_working_mb)
        np.testing.assert_array_equal(out.affine, case.image.affine)
        np.testing.assert_array_equal(out.array, preprocess_image(
            case.image, target_spacing_mm=None, normalization=CT).array)


def test_multichannel_slabs_and_bad_budget():
    case = make_phantom(shape=(24, 22, 30), spacing_mm=(1.0, 1.0, 2.2), seed=5)
    stacked = case.image.with_array(np.stack([case.image.array, -case.image.array], axis=-1))
    options = dict(target_spacing_mm=(2.0, 2.0, 3.0), normalization=NormalizationSpec("none"))
    whole = preprocess_image(stacked, **options)
    slabbed = preprocess_image(stacked, max_working_mb=0.5, **options)
    assert slabbed.array.shape == whole.array.shape and slabbed.array.shape[3] == 2
    assert np.abs(slabbed.array - whole.array).max() < 1e-5 * float(np.ptp(whole.array))
    with pytest.raises(InvalidArgumentError, match="max_working_mb"):
        preprocess_image(case.image, max_working_mb=0, **options)
