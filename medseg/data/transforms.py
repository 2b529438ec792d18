"""Training augmentation built from MONAI dictionary transforms (nnU-Net's recipe and probabilities).

Spatial: rotation, scaling, optional elastic, mirroring; intensity: noise, blur, brightness, contrast, gamma, low resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["AugmentationConfig", "build_augmentation"]


@dataclass(frozen=True)
class AugmentationConfig:
    """Which augmentations run and how strongly (probabilities per sample)."""

    enabled: bool = True
    rotation_deg: float = 30.0
    scale_range: tuple[float, float] = (0.7, 1.4)
    spatial_prob: float = 0.2
    elastic: bool = False
    mirror: bool = True
    noise_prob: float = 0.1
    noise_std: float = 0.1
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    brightness_prob: float = 0.15
    brightness: float = 0.25
    contrast_prob: float = 0.15
    contrast: float = 0.25
    gamma_prob: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.5)
    low_resolution_prob: float = 0.25
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)


def build_augmentation(config: AugmentationConfig, *, spatial_dims: int,
                       patch_size: Sequence[int]) -> Callable[[dict], dict] | None:
    """MONAI ``Compose`` over ``{"image": (C, *patch), "label": (1, *patch)}``; None if disabled.

    Use ``transform.set_random_state(seed)`` before each call for reproducible samples.

    >>> aug = build_augmentation(AugmentationConfig(), spatial_dims=3, patch_size=(8, 8, 8))
    >>> type(aug).__name__
    'Compose'
    """
    if not config.enabled:
        return None
    from monai import transforms as mt

    keys = ["image", "label"]
    angle = math.radians(config.rotation_deg)
    rotate = (angle,) if spatial_dims == 2 else (angle, angle, angle)
    low, high = config.scale_range
    steps: list = [
        # nnU-Net samples zoom in (0.7, 1.4); MONAI's scale_range is 1 + U(-s, s) per axis.
        mt.RandAffined(keys, prob=config.spatial_prob, rotate_range=rotate,
                       scale_range=((low - 1.0, high - 1.0),) * spatial_dims,
                       mode=("bilinear", "nearest"), padding_mode="zeros",
                       spatial_size=tuple(patch_size), cache_grid=True),
    ]
    if config.elastic:
        elastic = mt.Rand3DElasticd if spatial_dims == 3 else mt.Rand2DElasticd
        extra = {"sigma_range": (9, 13), "magnitude_range": (0, 200)} if spatial_dims == 3 else {
            "spacing": (20, 20), "magnitude_range": (0, 2)}
        steps.append(elastic(keys, prob=config.spatial_prob, mode=("bilinear", "nearest"),
                             padding_mode="zeros", **extra))
    steps += [
        mt.RandGaussianNoised("image", prob=config.noise_prob, std=config.noise_std),
        mt.RandGaussianSmoothd("image", prob=config.blur_prob, sigma_x=config.blur_sigma,
                               sigma_y=config.blur_sigma, sigma_z=config.blur_sigma),
        mt.RandScaleIntensityd("image", factors=config.brightness, prob=config.brightness_prob),
        mt.RandScaleIntensityFixedMeand("image", factors=config.contrast, preserve_range=True,
                                        prob=config.contrast_prob),
        mt.RandSimulateLowResolutiond("image", prob=config.low_resolution_prob,
                                      zoom_range=config.low_resolution_zoom,
                                      upsample_mode="trilinear" if spatial_dims == 3 else "bilinear"),
        mt.RandAdjustContrastd("image", prob=config.gamma_prob, gamma=config.gamma,
                               retain_stats=True),
    ]
    if config.mirror:
        steps += [mt.RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(spatial_dims)]
    return mt.Compose(steps)
