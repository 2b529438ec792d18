"""Training corruptions of the denoising detector: blobs, intensity remapping, coarse noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.anomaly.denoising import DenoisingConfig, blob_noise, coarse_noise, intensity_remap
from medseg.errors import InvalidArgumentError


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_one_offset_blob_covers_its_disc_with_a_bounded_magnitude():
    # A disc of radius 5 voxels: area pi * 25 ~ 78.5 voxels, soft edge of about one voxel.
    areas, magnitudes = [], []
    for seed in range(40):
        noise = blob_noise((1, 1, 64, 64), max_blobs=1, radius_px=[(5.0, 5.0), (5.0, 5.0)],
                           std=0.4, generator=_generator(seed))[0, 0].numpy()
        values = noise[noise != 0]
        if values.size == 0 or np.unique(np.sign(values)).size > 1:
            continue  # no blob drawn, or a texture blob (mixed signs)
        peak = float(np.abs(values).max())
        areas.append(float(np.abs(values).sum()) / peak)
        magnitudes.append(peak)
    assert len(areas) >= 5
    inside = [a for a in areas if a > 60]  # blobs cut by the image border are smaller
    assert inside and all(abs(a - np.pi * 25) < 6 for a in inside)
    assert all(0.5 * 0.4 - 1e-6 <= m <= 1.5 * 0.4 + 1e-6 for m in magnitudes)


def test_no_blobs_means_no_noise_and_count_is_bounded():
    zero = blob_noise((2, 1, 16, 16), max_blobs=0, radius_px=[(2, 4), (2, 4)], std=0.4,
                      generator=_generator())
    assert not zero.any()
    many = blob_noise((8, 1, 32, 32, 16), max_blobs=3, radius_px=[(2, 3)] * 3, std=0.4,
                      generator=_generator(1))
    assert many.shape == (8, 1, 32, 32, 16) and many.abs().sum() > 0


def test_blob_noise_repeats_with_the_seed():
    a = blob_noise((4, 1, 32, 32), max_blobs=4, radius_px=[(1, 6)] * 2, std=0.4,
                   generator=_generator(3))
    b = blob_noise((4, 1, 32, 32), max_blobs=4, radius_px=[(1, 6)] * 2, std=0.4,
                   generator=_generator(3))
    assert torch.equal(a, b)


def test_intensity_remap_moves_each_intensity_as_a_whole():
    levels = torch.tensor([-1.0, 0.0, 0.3, 1.2])
    image = levels[torch.randint(0, 4, (3, 1, 24, 24), generator=_generator())]
    remapped = intensity_remap(image, std=0.1, generator=_generator(5))
    for item in range(3):
        for level in levels:
            shifted = remapped[item][image[item] == level]
            if shifted.numel():
                # one shift per tissue level in each image
                assert torch.allclose(shifted, shifted[0].expand_as(shifted))
    shift = (remapped - image).abs()
    assert 0 < float(shift.max()) < 0.6  # ~ N(0, 0.1) draws at the knots
    assert torch.equal(intensity_remap(image, std=0.0, generator=_generator()), image)


def test_coarse_noise_is_smooth_and_has_the_asked_spread():
    noise = coarse_noise((64, 1, 32, 32), resolution=4, std=0.4, generator=_generator())
    assert noise.shape == (64, 1, 32, 32)
    # neighbouring voxels nearly equal (low frequency), overall spread of order std
    step = (noise[..., 1:, :] - noise[..., :-1, :]).abs().mean()
    assert float(step) < 0.25 * float(noise.std())  # white noise: ~1.1 x std
    assert 0.1 < float(noise.std()) < 0.4


def test_config_rejects_patch_sizes_the_network_cannot_take():
    with pytest.raises(InvalidArgumentError, match="multiple of 16"):
        DenoisingConfig(patch_size=(30, 30))


@pytest.mark.parametrize("changes, message", [
    ({"blobs": 0, "noise_std": 0.0}, "no corruption"),
    ({"blobs": -1}, ">= 0"),
    ({"blob_radius_mm": (5.0, 2.0)}, "min <= max"),
])
def test_config_rejects_settings_that_cannot_train(changes, message):
    with pytest.raises(InvalidArgumentError, match=message):
        DenoisingConfig(**changes)
