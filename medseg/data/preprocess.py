"""Network-input preprocessing shared by training and inference.

Reorient, resample to the plan's spacing, normalise intensities: one definition for both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import InvalidArgumentError
from medseg.volume import Volume

__all__ = ["NormalizationSpec", "normalize_intensity", "preprocess_image", "preprocess_labels"]


@dataclass(frozen=True)
class NormalizationSpec:
    """Intensity normalisation applied before the network.

    ``scheme="ct"``: clip to ``[clip_low, clip_high]`` then ``(x - mean) / std``
    with the dataset's foreground statistics. ``scheme="zscore"``: per-image
    z-score (MR). ``scheme="none"``: identity.
    """

    scheme: str = "zscore"
    clip_low: float | None = None
    clip_high: float | None = None
    mean: float | None = None
    std: float | None = None


def normalize_intensity(array: np.ndarray, spec: NormalizationSpec) -> np.ndarray:
    """Apply a :class:`NormalizationSpec` to an array; returns float32.

    >>> normalize_intensity(np.array([-2000.0, 0.0, 2000.0]),
    ...                     NormalizationSpec("ct", -1000.0, 1000.0, 0.0, 500.0)).tolist()
    [-2.0, 0.0, 2.0]
    >>> normalize_intensity(np.array([1.0, 3.0]), NormalizationSpec("zscore")).tolist()
    [-1.0, 1.0]
    """
    values = np.asarray(array, dtype=np.float32)
    if spec.scheme == "none":
        return values
    if spec.scheme == "ct":
        low = -np.inf if spec.clip_low is None else spec.clip_low
        high = np.inf if spec.clip_high is None else spec.clip_high
        mean = 0.0 if spec.mean is None else spec.mean
        std = 1.0 if not spec.std else spec.std
        return ((np.clip(values, low, high) - mean) / std).astype(np.float32)
    if spec.scheme == "zscore":
        mean, std = float(values.mean()), float(values.std())
        return ((values - mean) / max(std, 1e-8)).astype(np.float32)
    raise InvalidArgumentError(f"unknown normalization scheme {spec.scheme!r}; use 'ct', 'zscore' or 'none'")


def _regrid(volume: Volume, target_spacing_mm: Sequence[float] | None, orientation: str,
            order: int | None) -> Volume:
    oriented = volume.reorient(orientation)
    if target_spacing_mm is None or np.allclose(oriented.spacing_mm, target_spacing_mm, atol=1e-4):
        return oriented
    return oriented.resample(spacing_mm=target_spacing_mm, order=order)


def preprocess_image(
    image: Volume,
    *,
    target_spacing_mm: Sequence[float] | None,
    normalization: NormalizationSpec,
    orientation: str = "RAS",
    order: int = 3,
) -> Volume:
    """Reorient, resample (spline ``order``) and normalise an image for the network.

    Returns a float32 image Volume on the network grid; its affine says where
    that grid lies, so predictions can be resampled back in one step.
    """
    regridded = _regrid(image, target_spacing_mm, orientation, order)
    return regridded.with_array(normalize_intensity(regridded.array, normalization))


def preprocess_labels(
    labels: Volume, *, target_spacing_mm: Sequence[float] | None, orientation: str = "RAS"
) -> Volume:
    """Reorient and resample a label map (per-label linear + argmax) onto the network grid."""
    return _regrid(labels, target_spacing_mm, orientation, 1)
