"""Resampling Volumes onto new voxel grids (scipy.ndimage), label-safe.

Label maps never get interpolated values: one-hot channels are interpolated and argmaxed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medseg import geometry
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume

__all__ = ["resample_to_grid", "resample_to_spacing", "grid_for_spacing"]


def grid_for_spacing(
    volume: Volume, spacing_mm: Sequence[float] | float
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a grid with ``spacing_mm`` covering ``volume``'s field of view.

    The outer voxel edges are kept (not the corner voxel centres), as in
    SimpleITK/nnU-Net style resampling.
    """
    target = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)).copy()
    if np.any(target <= 0):
        raise InvalidArgumentError(f"spacing_mm must be positive, got {spacing_mm}")
    current = np.asarray(volume.spacing_mm)
    extent = np.asarray(volume.shape) * current
    shape = tuple(int(max(1, round(e))) for e in extent / target)
    direction = volume.direction
    # First voxel centre moves by half the difference of the voxel sizes.
    first_centre = geometry.apply_affine(volume.affine, [(target / current - 1.0) / 2.0])[0]
    affine = geometry.affine_from_spacing(target, origin_mm=first_centre, direction=direction)
    return affine, shape  # type: ignore[return-value]


def _default_order(volume: Volume) -> int:
    return 3 if volume.kind == "image" else 1


def _map_channel(
    channel: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple, order: int
) -> np.ndarray:
    return ndimage.affine_transform(
        channel, matrix, offset=offset, output_shape=shape, order=order, mode="nearest"
    )


def _outside_source(
    matrix: np.ndarray, offset: np.ndarray, in_shape: Sequence[int], out_shape: tuple
) -> np.ndarray:
    """Output voxels whose centre lies outside the source voxels' extent (half a voxel past the
    edge centres); labels there are background, not the edge label repeated."""
    limit = np.asarray(in_shape[:3], dtype=float) - 0.5 + 1e-3
    ii, jj = np.meshgrid(np.arange(out_shape[0]), np.arange(out_shape[1]), indexing="ij")
    outside = np.zeros(out_shape, dtype=bool)
    for k in range(out_shape[2]):
        for axis in range(3):
            coord = matrix[axis, 0] * ii + matrix[axis, 1] * jj + (matrix[axis, 2] * k + offset[axis])
            outside[:, :, k] |= (coord < -0.5 - 1e-3) | (coord > limit[axis])
    return outside


def resample_to_grid(
    volume: Volume,
    *,
    affine: np.ndarray,
    shape: Sequence[int],
    order: int | None = None,
) -> Volume:
    """Resample ``volume`` onto the grid given by ``affine`` and ``shape``.

    Parameters
    ----------
    volume : Volume
        Input volume (image, labels or probabilities; channels allowed).
    affine, shape
        Target voxel -> RAS mm affine and spatial shape.
    order : int, optional
        Spline order. Default 3 for images, 1 for labels/probabilities.
        For labels, 0 means nearest neighbour; > 0 means per-label one-hot
        interpolation then argmax.
    """
    order = _default_order(volume) if order is None else int(order)
    shape = tuple(int(s) for s in shape)
    mapping = np.linalg.inv(volume.affine) @ np.asarray(affine, dtype=float)
    matrix, offset = mapping[:3, :3], mapping[:3, 3]
    array = volume.array
    if volume.kind == "labels":
        if order == 0:
            out = _map_channel(array, matrix, offset, shape, 0)
        else:
            values = np.unique(array)
            best = np.full(shape, -1.0, dtype=np.float32)
            out = np.zeros(shape, dtype=array.dtype)
            for value in values:
                onehot = (array == value).astype(np.float32)
                prob = _map_channel(onehot, matrix, offset, shape, min(order, 1))
                take = prob > best
                out[take] = value
                best[take] = prob[take]
        out[_outside_source(matrix, offset, array.shape, shape)] = 0
        return volume.replace(array=out, affine=np.asarray(affine, dtype=float))
    work = array.astype(np.float32) if not np.issubdtype(array.dtype, np.floating) else array
    if array.ndim == 3:
        out = _map_channel(work, matrix, offset, shape, order)
    else:
        out = np.stack(
            [_map_channel(work[..., c], matrix, offset, shape, order) for c in range(array.shape[3])],
            axis=-1,
        )
    if volume.kind == "probabilities":
        out = np.clip(out, 0.0, 1.0)
    return volume.replace(array=out, affine=np.asarray(affine, dtype=float))


def resample_to_spacing(
    volume: Volume, *, spacing_mm: Sequence[float] | float, order: int | None = None
) -> Volume:
    """Resample ``volume`` to ``spacing_mm`` over the same field of view."""
    affine, shape = grid_for_spacing(volume, spacing_mm)
    return resample_to_grid(volume, affine=affine, shape=shape, order=order)
