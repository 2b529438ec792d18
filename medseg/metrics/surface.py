"""Surface distances between two binary masks: HD, HD95, ASSD, directed means, NSD.

Surfaces are area-weighted surfels (surface-distance) or voxel shells (MONAI), in mm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from medseg.errors import InvalidArgumentError
from medseg.metrics._surfel_table import NEIGHBOUR_CODE_TO_NORMALS_X8

__all__ = [
    "SurfaceKind",
    "SurfaceDistances",
    "surface_distances",
    "surface_metrics",
    "nsd_column",
    "surfel_area_table",
]

log = logging.getLogger(__name__)

SurfaceKind = Literal["surfel", "voxel"]
_SURFACES = ("surfel", "voxel")
# Bit weight of each corner of a 2x2(x2) neighbourhood, in the order used by
# surface-distance's ENCODE_NEIGHBOURHOOD_*_KERNEL (offset 0 = lower index).
_BITS_3D = {(0, 0, 0): 128, (0, 0, 1): 64, (0, 1, 0): 32, (0, 1, 1): 16,
            (1, 0, 0): 8, (1, 0, 1): 4, (1, 1, 0): 2, (1, 1, 1): 1}
_BITS_2D = {(0, 0): 8, (0, 1): 4, (1, 0): 2, (1, 1): 1}


@lru_cache(maxsize=64)
def surfel_area_table(spacing_mm: tuple[float, ...]) -> np.ndarray:
    """Surface element size for each neighbourhood code: mm^2 (3D, 256 codes) or mm (2D, 16).

    Identical to surface-distance's ``create_table_neighbour_code_to_surface_area`` and
    ``create_table_neighbour_code_to_contour_length``.

    >>> table = surfel_area_table((1.0, 1.0, 1.0))
    >>> table.shape, float(table[0]), float(table[255])
    ((256,), 0.0, 0.0)
    >>> float(surfel_area_table((2.0, 3.0))[0b0011])  # one horizontal edge of a 2 x 3 mm pixel
    3.0
    """
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) == 2:
        vertical, horizontal = spacing
        diag = 0.5 * float(np.hypot(vertical, horizontal))
        table = np.zeros(16)
        for code, length in ((0b0001, diag), (0b0010, diag), (0b0011, horizontal), (0b0100, diag),
                             (0b0101, vertical), (0b0110, 2 * diag), (0b0111, diag),
                             (0b1000, diag), (0b1001, 2 * diag), (0b1010, vertical),
                             (0b1011, diag), (0b1100, horizontal), (0b1101, diag),
                             (0b1110, diag)):
            table[code] = length
        return table
    scale = np.array([spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1]])
    table = np.zeros(256)
    for code, normals in enumerate(NEIGHBOUR_CODE_TO_NORMALS_X8):
        # Summed one at a time, in the library's order, so areas match it to rounding.
        area = 0.0
        for normal in normals:
            area += float(np.linalg.norm(np.asarray(normal, dtype=float) / 8.0 * scale))
        table[code] = area
    return table


def _neighbour_codes(padded: np.ndarray) -> np.ndarray:
    """Neighbourhood code of every voxel corner of a mask padded by one zero layer."""
    ndim = padded.ndim
    bits = _BITS_3D if ndim == 3 else _BITS_2D
    codes = np.zeros(tuple(n - 1 for n in padded.shape), dtype=np.uint8)
    for offset, weight in bits.items():
        view = padded[tuple(slice(o, n - 1 + o) for o, n in zip(offset, padded.shape))]
        codes |= view * np.uint8(weight)
    return codes


def _pad(mask: np.ndarray) -> np.ndarray:
    padded = np.zeros(tuple(n + 2 for n in mask.shape), dtype=np.uint8)
    padded[tuple(slice(1, -1) for _ in mask.shape)] = mask
    return padded


def _surfel_points(mask: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat corner indices (on the padded-minus-one grid) and areas of a mask's surfels."""
    codes = _neighbour_codes(_pad(mask))
    full = 255 if mask.ndim == 3 else 15
    border = (codes != 0) & (codes != full)
    flat = np.flatnonzero(border)
    return flat, table[codes.ravel()[flat]]


def _voxel_points(mask: np.ndarray) -> np.ndarray:
    """Flat indices (on the padded grid) of voxels with a 6- (4-) neighbour outside the mask."""
    padded = _pad(mask).astype(bool)
    inner = tuple(slice(1, -1) for _ in mask.shape)
    interior = padded[inner].copy()
    for axis in range(mask.ndim):
        for start in (0, 2):
            view = list(inner)
            view[axis] = slice(start, start + mask.shape[axis])
            interior &= padded[tuple(view)]
    shell = np.zeros_like(padded)
    shell[inner] = padded[inner] & ~interior
    return np.flatnonzero(shell)


@lru_cache(maxsize=32)
def _offsets(spacing_mm: tuple[float, ...], radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer voxel offsets within ``radius_mm``, sorted by their length in mm."""
    spacing = np.asarray(spacing_mm)
    reach = np.floor(radius_mm / spacing).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    lengths = np.sqrt(np.sum((offsets * spacing) ** 2, axis=1))
    keep = lengths <= radius_mm
    order = np.argsort(lengths[keep], kind="stable")
    return offsets[keep][order], lengths[keep][order]


# Offsets are scanned up to this many of the coarsest voxel sizes, and for at most
# this many point look-ups per query point, before the k-d tree takes the rest. Each
# offset also costs a fixed overhead (Python loop), so few far points go to the tree.
_SCAN_VOXELS = 4.0
_SCAN_BUDGET = 24
_OFFSET_COST = 1024


def _directed(
    from_flat: np.ndarray, to_flat: np.ndarray, shape: tuple[int, ...], spacing: np.ndarray
) -> np.ndarray:
    """Distance (mm) from each ``from`` grid point to the nearest ``to`` grid point (exact).

    Near points are found by probing voxel offsets in order of increasing length (the
    first hit is the nearest point); the few points left beyond the scanned radius go
    to a k-d tree. Both give the exact Euclidean distance.
    """
    out = np.full(len(from_flat), np.nan)
    if len(to_flat) == 0 or len(from_flat) == 0:
        return out
    offsets, lengths = _offsets(tuple(float(s) for s in spacing), _SCAN_VOXELS * float(spacing.max()))
    reach = np.abs(offsets).max(axis=0)
    padded_shape = tuple(int(n + 2 * r) for n, r in zip(shape, reach))
    to_padded = np.ravel_multi_index(
        tuple(c + r for c, r in zip(np.unravel_index(to_flat, shape), reach)), padded_shape)
    position = np.ravel_multi_index(
        tuple(c + r for c, r in zip(np.unravel_index(from_flat, shape), reach)), padded_shape)
    target = np.zeros(int(np.prod(padded_shape)), dtype=bool)
    target[to_padded] = True
    flat_offsets = np.ravel_multi_index(tuple((offsets + reach).T), padded_shape) - int(
        np.ravel_multi_index(tuple(reach), padded_shape))
    remaining = np.arange(len(from_flat))
    budget = _SCAN_BUDGET * len(from_flat)
    for flat_offset, length in zip(flat_offsets.tolist(), lengths.tolist()):
        if not len(remaining) or budget <= 0:
            break
        budget -= len(remaining) + _OFFSET_COST
        hit = target[position + flat_offset]
        if hit.any():
            out[remaining[hit]] = length
            keep = ~hit
            remaining, position = remaining[keep], position[keep]
    if len(remaining):
        to_mm = np.stack(np.unravel_index(to_flat, shape), axis=1) * spacing
        from_mm = np.stack(np.unravel_index(from_flat[remaining], shape), axis=1) * spacing
        tree = cKDTree(to_mm, leafsize=32, balanced_tree=False, compact_nodes=False)
        out[remaining] = tree.query(from_mm, k=1)[0]
    return out


@dataclass(frozen=True)
class SurfaceDistances:
    """Distances from each surface element of one mask to the other surface.

    ``*_weights`` are surfel areas in mm^2 (mm for 2D contours) for ``surface="surfel"``
    and ones for ``surface="voxel"``. A side with an empty mask has no elements;
    distances towards an empty mask are NaN.
    """

    ref_to_pred_mm: np.ndarray
    pred_to_ref_mm: np.ndarray
    ref_weights: np.ndarray
    pred_weights: np.ndarray
    surface: SurfaceKind

    @property
    def ref_empty(self) -> bool:
        return len(self.ref_to_pred_mm) == 0

    @property
    def pred_empty(self) -> bool:
        return len(self.pred_to_ref_mm) == 0


def _check_spacing(spacing_mm: Sequence[float] | None, ndim: int) -> np.ndarray:
    if spacing_mm is None:
        raise InvalidArgumentError(
            "spacing_mm is required for array inputs (medseg never assumes 1 mm); pass "
            "spacing_mm=volume.spacing_mm or give Volumes"
        )
    spacing = np.asarray(spacing_mm, dtype=float).ravel()
    if spacing.shape != (ndim,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InvalidArgumentError(
            f"spacing_mm must hold {ndim} positive numbers for {ndim}D masks, got {spacing_mm!r}"
        )
    return spacing


def _union_box(pred: np.ndarray, ref: np.ndarray) -> tuple[slice, ...] | None:
    union = pred | ref
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        hit = np.flatnonzero(union.any(axis=other))
        if not len(hit):
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def surface_distances(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    surface: SurfaceKind = "surfel",
    crop: bool = True,
) -> SurfaceDistances:
    """Closest distances between the surfaces of two binary masks, in millimetres.

    Parameters
    ----------
    pred, ref : numpy.ndarray
        Binary masks (any dtype; nonzero is foreground) of equal shape, 2D or 3D.
    spacing_mm : sequence of float
        Pixel/voxel size along each array axis; anisotropic spacing is exact.
    surface : {"surfel", "voxel"}
        ``"surfel"``: marching-cubes surface elements at voxel corners, weighted by
        their area (definition of surface-distance). ``"voxel"``: foreground voxels
        with a face-neighbour outside the mask, unweighted (MONAI, medpy). Voxels on
        the array edge always count as surface (the outside is background).
    crop : bool
        Work on the union bounding box (the result does not change; only speed).

    Returns
    -------
    SurfaceDistances

    Examples
    --------
    >>> ref = np.zeros((8, 8, 8), bool); ref[2:5, 2:5, 2:5] = True
    >>> pred = np.roll(ref, 2, axis=2)
    >>> d = surface_distances(pred, ref, spacing_mm=(1.0, 1.0, 2.5), surface="voxel")
    >>> float(d.ref_to_pred_mm.max())
    5.0
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise InvalidArgumentError(f"pred has shape {pred.shape} but ref has {ref.shape}")
    if pred.ndim not in (2, 3):
        raise InvalidArgumentError(f"masks must be 2D or 3D, got {pred.ndim}D")
    if surface not in _SURFACES:
        raise InvalidArgumentError(f"surface must be one of {_SURFACES}, got {surface!r}")
    spacing = _check_spacing(spacing_mm, pred.ndim)
    pred_b, ref_b = pred != 0, ref != 0
    if crop:
        box = _union_box(pred_b, ref_b)
        if box is not None:
            pred_b, ref_b = pred_b[box], ref_b[box]
    return _surface_distances_cropped(pred_b, ref_b, spacing, surface)


def _surface_distances_cropped(
    pred: np.ndarray, ref: np.ndarray, spacing: np.ndarray, surface: str
) -> SurfaceDistances:
    """Core of :func:`surface_distances` on bool masks already cropped (any margin)."""
    if surface == "surfel":
        table = surfel_area_table(tuple(float(s) for s in spacing))
        grid = tuple(n + 1 for n in pred.shape)
        ref_flat, ref_w = _surfel_points(ref, table)
        pred_flat, pred_w = _surfel_points(pred, table)
    else:
        grid = tuple(n + 2 for n in pred.shape)
        ref_flat, pred_flat = _voxel_points(ref), _voxel_points(pred)
        ref_w, pred_w = np.ones(len(ref_flat)), np.ones(len(pred_flat))
    return SurfaceDistances(
        ref_to_pred_mm=_directed(ref_flat, pred_flat, grid, spacing),
        pred_to_ref_mm=_directed(pred_flat, ref_flat, grid, spacing),
        ref_weights=ref_w,
        pred_weights=pred_w,
        surface=surface,  # type: ignore[arg-type]
    )


def nsd_column(tolerance_mm: float) -> str:
    """Column name of the NSD at a tolerance: ``nsd_1mm``, ``nsd_2.5mm``.

    >>> nsd_column(1.0), nsd_column(2.5)
    ('nsd_1mm', 'nsd_2.5mm')
    """
    return f"nsd_{float(tolerance_mm):g}mm"


def _weighted_percentile(distances: np.ndarray, weights: np.ndarray, percent: float) -> float:
    # surface-distance's robust Hausdorff: first sorted element whose cumulative
    # area fraction reaches ``percent`` (ties ordered by area, as the library does).
    order = np.lexsort((weights, distances))
    d, w = distances[order], weights[order]
    cumulative = np.cumsum(w) / np.sum(w)
    idx = int(np.searchsorted(cumulative, percent / 100.0))
    return float(d[min(idx, len(d) - 1)])


def surface_metrics(
    distances: SurfaceDistances,
    *,
    nsd_tolerance_mm: float | Sequence[float] = 1.0,
    percentile: float = 95.0,
) -> dict[str, float]:
    """HD, HD95, directed mean distances, ASSD and NSD from :func:`surface_distances`.

    Definitions (``d``: distances from one surface to the other, ``w``: weights):

    - ``hd_mm``: max over both directions of the largest distance.
    - ``hd95_mm`` (``hd<percentile>_mm``): max over both directions of the directed
      95th percentile. Surfels:
      area-weighted (surface-distance ``compute_robust_hausdorff``); voxels: linear
      interpolation between voxels (``numpy.percentile``, MONAI). Not medpy's
      percentile of the pooled distances.
    - ``msd_ref_to_pred_mm`` / ``msd_pred_to_ref_mm``: weighted mean of each direction.
    - ``assd_mm``: weighted mean of both directions pooled, ``(sum w d + sum w' d') /
      (sum w + sum w')`` (MONAI's symmetric ASD; for surfels the area-weighted analogue).
    - ``nsd_<t>mm``: surface Dice at tolerance ``t`` mm: weight within ``t`` of the other
      surface over the total weight of both surfaces.

    If either mask is empty the distances are undefined and every value is NaN
    (``medseg.metrics.evaluate`` applies the documented empty-mask policy).

    Examples
    --------
    >>> ref = np.zeros((6, 6), bool); ref[1:4, 1:4] = True
    >>> d = surface_distances(ref, ref, spacing_mm=(0.5, 0.5))
    >>> surface_metrics(d)["hd95_mm"], surface_metrics(d)["nsd_1mm"]
    (0.0, 1.0)
    """
    tolerances = np.atleast_1d(np.asarray(nsd_tolerance_mm, dtype=float))
    if np.any(~np.isfinite(tolerances)) or np.any(tolerances < 0):
        raise InvalidArgumentError(f"nsd_tolerance_mm must be finite and >= 0, got {nsd_tolerance_mm}")
    if not 0.0 <= percentile <= 100.0:
        raise InvalidArgumentError(f"percentile must lie in [0, 100], got {percentile}")
    pct_name = f"hd{percentile:g}_mm"
    names = ["hd_mm", pct_name, "assd_mm", "msd_ref_to_pred_mm", "msd_pred_to_ref_mm"]
    names += [nsd_column(t) for t in tolerances]
    if distances.ref_empty or distances.pred_empty:
        return dict.fromkeys(names, float("nan"))
    d_r, d_p = distances.ref_to_pred_mm, distances.pred_to_ref_mm
    w_r, w_p = distances.ref_weights, distances.pred_weights
    if distances.surface == "surfel":
        hd_pct = max(_weighted_percentile(d_r, w_r, percentile),
                     _weighted_percentile(d_p, w_p, percentile))
    else:
        hd_pct = float(max(np.percentile(d_r, percentile), np.percentile(d_p, percentile)))
    sum_r, sum_p = float(np.sum(w_r)), float(np.sum(w_p))
    out = {
        "hd_mm": float(max(d_r.max(), d_p.max())),
        pct_name: hd_pct,
        "assd_mm": (float(np.dot(w_r, d_r)) + float(np.dot(w_p, d_p))) / (sum_r + sum_p),
        "msd_ref_to_pred_mm": float(np.dot(w_r, d_r)) / sum_r,
        "msd_pred_to_ref_mm": float(np.dot(w_p, d_p)) / sum_p,
    }
    for tol in tolerances:
        within = float(np.sum(w_r[d_r <= tol])) + float(np.sum(w_p[d_p <= tol]))
        out[nsd_column(tol)] = within / (sum_r + sum_p)
    return out
