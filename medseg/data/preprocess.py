"""Network-input preprocessing shared by training and inference.

Reorient, resample to the plan's spacing, normalise intensities: one definition for both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import InvalidArgumentError
from medseg.resample import grid_for_spacing, iter_resampled_slabs, oriented_grid, slab_depth_for
from medseg.volume import Volume

__all__ = ["NormalizationSpec", "normalize_intensity", "network_grid", "preprocess_image",
           "preprocess_labels"]


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


def network_grid(volume: Volume, *, target_spacing_mm: Sequence[float] | None,
                 orientation: str = "RAS") -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of the grid :func:`preprocess_image` puts ``volume`` on (no array copy).

    >>> vol = Volume.from_array(np.zeros((10, 10, 8)), spacing_mm=(1.5, 1.5, 2.0))
    >>> network_grid(vol, target_spacing_mm=(3.0, 3.0, 4.0))[1]
    (5, 5, 4)
    """
    affine, shape = oriented_grid(volume, orientation)
    stand_in = Volume(np.broadcast_to(np.zeros((), np.float32), shape), affine)
    if target_spacing_mm is None or np.allclose(stand_in.spacing_mm, target_spacing_mm, atol=1e-4):
        return affine, shape
    return grid_for_spacing(stand_in, target_spacing_mm)


def _zscore_in_place(array: np.ndarray, chunk: int) -> None:
    """Per-image z-score of a float32 array, statistics accumulated in float64 by z-chunks."""
    total, count = 0.0, array.size
    for k in range(0, array.shape[2], chunk):
        total += float(array[:, :, k:k + chunk].sum(dtype=np.float64))
    mean = total / max(count, 1)
    squares = 0.0
    for k in range(0, array.shape[2], chunk):
        part = array[:, :, k:k + chunk].astype(np.float64) - mean
        squares += float(np.dot(part.ravel(), part.ravel()))
    std = max((squares / max(count, 1)) ** 0.5, 1e-8)
    for k in range(0, array.shape[2], chunk):
        part = array[:, :, k:k + chunk]
        part -= mean
        part /= std


def preprocess_image(
    image: Volume,
    *,
    target_spacing_mm: Sequence[float] | None,
    normalization: NormalizationSpec,
    orientation: str = "RAS",
    order: int = 3,
    max_working_mb: float | None = None,
) -> Volume:
    """Reorient, resample (spline ``order``) and normalise an image for the network.

    Parameters
    ----------
    image : Volume
        Image (channels last allowed).
    target_spacing_mm : sequence of float, optional
        Network voxel size; ``None`` keeps the input spacing.
    normalization : NormalizationSpec
        Intensity normalisation.
    orientation : str
        Axis code of the network grid.
    order : int
        Spline order of the resampling.
    max_working_mb : float, optional
        Bound on what preprocessing allocates besides its float32 result: the
        output is filled in z-slabs, each resampled from the input sub-block it
        reads plus a spline margin (:func:`medseg.resample.iter_resampled_slabs`),
        so no whole-volume float copy or spline coefficients exist. Values match
        the whole-volume path to ~1e-7 of the local intensity steps (float32
        rounding for order <= 1, exactly for pure reorientation); z-score statistics are
        accumulated in float64. ``None``: resample the whole volume at once.

    Returns
    -------
    Volume
        Float32 image on the network grid; its affine says where that grid lies,
        so predictions can be resampled back in one step.
    """
    if max_working_mb is None:
        regridded = _regrid(image, target_spacing_mm, orientation, order)
        return regridded.with_array(normalize_intensity(regridded.array, normalization))
    if max_working_mb <= 0:
        raise InvalidArgumentError(f"max_working_mb must be positive, got {max_working_mb}")
    affine, shape = network_grid(image, target_spacing_mm=target_spacing_mm, orientation=orientation)
    channels = image.array.shape[3:]
    out = np.empty(shape + channels, dtype=np.float32)
    depth = slab_depth_for(image, affine=affine, shape=shape, order=order, max_working_mb=max_working_mb)
    zscore = normalization.scheme == "zscore"
    for k0, k1, values in iter_resampled_slabs(image, affine=affine, shape=shape, order=order,
                                               slab_depth=depth):
        out[:, :, k0:k1] = values if zscore else normalize_intensity(values, normalization)
        del values
    if zscore:
        _zscore_in_place(out, depth)
    return image.replace(array=out, affine=affine)


def preprocess_labels(
    labels: Volume, *, target_spacing_mm: Sequence[float] | None, orientation: str = "RAS"
) -> Volume:
    """Reorient and resample a label map (per-label linear + argmax) onto the network grid."""
    return _regrid(labels, target_spacing_mm, orientation, 1)
