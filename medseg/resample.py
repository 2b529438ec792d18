"""Resampling Volumes onto new voxel grids (scipy.ndimage), label-safe, whole or in z-slabs.

Label maps never get interpolated values: one-hot channels are interpolated and argmaxed.
Images can be resampled one output z-slab at a time from the input sub-block each slab needs,
so the spline working set is bounded (:func:`iter_resampled_slabs`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from medseg import geometry
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume

__all__ = ["resample_to_grid", "resample_to_spacing", "grid_for_spacing", "oriented_grid",
           "iter_resampled_slabs", "slab_depth_for", "slab_working_bytes"]

log = logging.getLogger(__name__)

_MIB = 2**20
# scipy pads the input by 12 edge voxels per side before its spline prefilter (mode="nearest");
# slabs do the same at the volume's real faces, and use real voxels (the margin) at cut faces.
_SCIPY_SPLINE_PAD = 12
# Input voxels beyond a slab's footprint whose spline coefficients are computed with the slab.
# The cubic prefilter's influence decays as 0.268^n, so 12 voxels leave ~1e-7 of a step's height.
SPLINE_MARGIN_VOXELS = 12


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
    channel: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple, order: int,
    output: np.ndarray | None = None,
) -> np.ndarray:
    return ndimage.affine_transform(
        channel, matrix, offset=offset, output_shape=shape, order=order, mode="nearest",
        output=output,
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


# ------------------------------------------------------------------ slabbed resampling
def oriented_grid(volume: Volume, to: str = "RAS") -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape that ``volume.reorient(to)`` has, computed without touching the array.

    >>> vol = Volume.from_array(np.zeros((2, 3, 4)), direction=np.diag([-1.0, 1.0, 1.0]))
    >>> affine, shape = oriented_grid(vol, "RAS")
    >>> shape, affine[0, 0].item(), affine[0, 3].item()
    ((2, 3, 4), 1.0, -1.0)
    """
    permutation, flips = geometry.orientation_transform(volume.affine, to)
    shape = tuple(int(volume.shape[p]) for p in permutation)
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, list(permutation)]
    for axis, flip in enumerate(flips):
        if flip:
            affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (shape[axis] - 1)
            affine[:3, axis] = -affine[:3, axis]
    return affine, shape  # type: ignore[return-value]


def _mapping(volume: Volume, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mapping = np.linalg.inv(volume.affine) @ np.asarray(affine, dtype=float)
    return mapping[:3, :3], mapping[:3, 3]


def _margin(order: int) -> int:
    return SPLINE_MARGIN_VOXELS if order > 1 else 1


def _input_box(matrix: np.ndarray, offset: np.ndarray, out_shape: Sequence[int], k0: int, k1: int,
               in_shape: Sequence[int], margin: int, *, clip: bool = True) -> list[tuple[int, int]]:
    """Input index range ``[lo, hi)`` per axis that output slab ``k0:k1`` reads (plus ``margin``)."""
    corners = np.array(np.meshgrid([0, out_shape[0] - 1], [0, out_shape[1] - 1], [k0, k1 - 1],
                                   indexing="ij")).reshape(3, -1)
    points = matrix @ corners + offset[:, None]
    lo = np.floor(points.min(axis=1)).astype(int) - margin
    hi = np.ceil(points.max(axis=1)).astype(int) + 1 + margin
    if not clip:
        return [(int(a), int(b)) for a, b in zip(lo, hi)]
    box = []
    for a, b, n in zip(lo, hi, in_shape[:3]):
        # Keep at least ``margin`` real voxels, so points past the edge see the same data as a
        # whole-volume resampling would.
        a = int(np.clip(min(a, n - 1 - margin), 0, n - 1))
        b = int(np.clip(max(b, margin + 1), a + 1, n))
        box.append((a, b))
    return box


def slab_working_bytes(volume: Volume, *, affine: np.ndarray, shape: Sequence[int], order: int,
                       depth: int) -> int:
    """Bytes one output slab of ``depth`` needs while it is resampled (upper bound).

    Order > 1: float64 spline coefficients of the input sub-block (margin and edge
    padding included), one channel at a time; order <= 1: a float32 copy of the
    sub-block. Plus the slab output with room for two normalisation temporaries.
    """
    matrix, offset = _mapping(volume, affine)
    box = _input_box(matrix, offset, shape, 0, max(1, depth), volume.shape, _margin(order), clip=False)
    channels = volume.n_channels
    if order > 1:
        # A sub-block smaller than the axis touches at most one real face (one pad).
        sizes = [n + 2 * _SCIPY_SPLINE_PAD if b - a >= n else b - a + _SCIPY_SPLINE_PAD
                 for (a, b), n in zip(box, volume.shape)]
        block = int(np.prod(sizes)) * 8
    else:
        block = int(np.prod([min(b - a, n) for (a, b), n in zip(box, volume.shape)])) * 4 * channels
    out_bytes = int(shape[0]) * int(shape[1]) * max(1, depth) * channels * 4 * 3
    return block + out_bytes


def slab_depth_for(volume: Volume, *, affine: np.ndarray, shape: Sequence[int], order: int,
                   max_working_mb: float) -> int:
    """Deepest output z-slab whose resampling working set fits ``max_working_mb`` (at least 1)."""
    budget = max_working_mb * _MIB
    low, high = 1, int(shape[2])
    if slab_working_bytes(volume, affine=affine, shape=shape, order=order, depth=high) <= budget:
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if slab_working_bytes(volume, affine=affine, shape=shape, order=order, depth=middle) <= budget:
            low = middle
        else:
            high = middle - 1
    need = slab_working_bytes(volume, affine=affine, shape=shape, order=order, depth=low)
    if need > budget:
        log.warning("%s: one output slice needs ~%.0f MiB to resample, more than %.0f MiB; "
                    "using 1-slice slabs", volume.source, need / _MIB, max_working_mb)
    return low


def _permutation_view(array: np.ndarray, matrix: np.ndarray, offset: np.ndarray,
                      out_shape: Sequence[int]) -> np.ndarray | None:
    """The output grid as a transposed/flipped view of ``array`` when the grids share voxels."""
    rounded = np.rint(matrix)
    if not (np.allclose(matrix, rounded, atol=1e-6) and np.allclose(offset, np.rint(offset), atol=1e-4)):
        return None
    if not (np.all(np.abs(rounded).sum(axis=0) == 1) and np.all(np.abs(rounded).sum(axis=1) == 1)):
        return None
    start = np.rint(offset).astype(int)
    index: list[slice] = [slice(None)] * 3
    axes = [0, 0, 0]
    for out_axis in range(3):
        in_axis = int(np.flatnonzero(rounded[:, out_axis])[0])
        sign, first, size = int(rounded[in_axis, out_axis]), int(start[in_axis]), int(out_shape[out_axis])
        last = first + sign * (size - 1)
        if min(first, last) < 0 or max(first, last) >= array.shape[in_axis]:
            return None
        index[in_axis] = slice(first, first + size) if sign > 0 else slice(first, last - 1 if last else None, -1)
        axes[out_axis] = in_axis
    return np.transpose(array[tuple(index)], axes + list(range(3, array.ndim)))


def _cubic_slab(sub: np.ndarray, box: Sequence[tuple[int, int]], in_shape: Sequence[int],
                matrix: np.ndarray, offset: np.ndarray, out_shape: tuple, order: int,
                out: np.ndarray) -> None:
    """Spline-resample one channel's sub-block into ``out``, as scipy would on the whole volume.

    The float64 coefficient block is the only large allocation: the sub-block is written into
    it, edge-padded by 12 voxels where it reaches a real face of the volume (scipy's own
    padding for mode="nearest"), and prefiltered in place.
    """
    pads = [(_SCIPY_SPLINE_PAD if a == 0 else 0, _SCIPY_SPLINE_PAD if b == n else 0)
            for (a, b), n in zip(box, in_shape[:3])]
    coefficients = np.empty([s + lo + hi for s, (lo, hi) in zip(sub.shape, pads)], dtype=np.float64)
    coefficients[tuple(slice(lo, lo + s) for s, (lo, _) in zip(sub.shape, pads))] = sub
    for axis, (lo, hi) in enumerate(pads):  # np.pad(mode="edge"), axis by axis, in place
        size = coefficients.shape[axis]
        for target, source in ((slice(0, lo), slice(lo, lo + 1)),
                               (slice(size - hi, size), slice(size - hi - 1, size - hi))):
            if target.stop > target.start:
                index = [slice(None)] * 3
                index[axis] = target
                edge = [slice(None)] * 3
                edge[axis] = source
                # Copy the one-voxel edge plane first: assigning an overlapping view makes
                # numpy buffer the whole target region.
                coefficients[tuple(index)] = coefficients[tuple(edge)].copy()
    ndimage.spline_filter(coefficients, order, output=coefficients, mode="nearest")
    shift = np.array([lo for lo, _ in pads], dtype=float)
    ndimage.affine_transform(coefficients, matrix, offset=offset + shift, output_shape=out_shape,
                             output=out, order=order, mode="nearest", prefilter=False)


def iter_resampled_slabs(
    volume: Volume,
    *,
    affine: np.ndarray,
    shape: Sequence[int],
    order: int | None = None,
    slab_depth: int,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Resample an image onto ``affine``/``shape`` one output z-slab at a time.

    Yields ``(k0, k1, values)`` with ``values`` the output voxels ``[:, :, k0:k1]``
    (channels last). Each slab is computed from the input sub-block it reads plus a
    margin of :data:`SPLINE_MARGIN_VOXELS` (order > 1), whose spline coefficients are
    computed on their own, so memory scales with the slab, not the volume. Values equal
    :func:`resample_to_grid`'s to float32 rounding for order <= 1 and to ~1e-7 of the
    local intensity steps for cubic splines. Grids that share voxels (reorientation
    only) are copied exactly from a view, without interpolation.

    Parameters
    ----------
    volume : Volume
        Image or probabilities (not labels: use :func:`resample_to_grid`).
    affine, shape
        Target voxel -> RAS mm affine and spatial shape.
    order : int, optional
        Spline order (default 3 for images, 1 for probabilities).
    slab_depth : int
        Output slices per slab (see :func:`slab_depth_for`).
    """
    if volume.kind == "labels":
        raise InvalidArgumentError(f"{volume.source}: slabbed resampling is for images; "
                                   "resample label maps with resample_to_grid")
    order = _default_order(volume) if order is None else int(order)
    shape = tuple(int(s) for s in shape)
    depth = max(1, int(slab_depth))
    matrix, offset = _mapping(volume, affine)
    array = volume.array
    view = _permutation_view(array, matrix, offset, shape)
    for k0 in range(0, shape[2], depth):
        k1 = min(k0 + depth, shape[2])
        if view is not None:
            yield k0, k1, np.array(view[:, :, k0:k1])
            continue
        box = _input_box(matrix, offset, shape, k0, k1, array.shape, _margin(order))
        sub = array[tuple(slice(a, b) for a, b in box)]
        sub_offset = offset + matrix[:, 2] * k0 - np.array([a for a, _ in box], dtype=float)
        slab_shape = (shape[0], shape[1], k1 - k0)
        if order > 1:
            values = np.empty(slab_shape + sub.shape[3:],
                              dtype=np.float64 if sub.dtype == np.float64 else np.float32)
            for c in range(sub.shape[3] if sub.ndim == 4 else 1):
                channel = sub[..., c] if sub.ndim == 4 else sub
                out = values[..., c] if sub.ndim == 4 else values
                _cubic_slab(channel, box, array.shape, matrix, sub_offset, slab_shape, order, out)
            del sub
            if volume.kind == "probabilities":
                np.clip(values, 0.0, 1.0, out=values)
            yield k0, k1, values
            del values
            continue
        if sub.dtype not in (np.float32, np.float64):  # integers, float16 (scipy needs >= 32 bit)
            sub = sub.astype(np.float32)
        if sub.ndim == 3:
            values = _map_channel(sub, matrix, sub_offset, slab_shape, order)
        else:  # channels written in place: no stacked copy
            values = np.empty(slab_shape + sub.shape[3:], dtype=sub.dtype)
            for c in range(sub.shape[3]):
                _map_channel(sub[..., c], matrix, sub_offset, slab_shape, order, output=values[..., c])
        del sub
        if volume.kind == "probabilities":
            np.clip(values, 0.0, 1.0, out=values)
        yield k0, k1, values
        del values  # before the next slab is computed; the consumer drops its reference too
