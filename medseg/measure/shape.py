"""Shape measurements of one binary object in millimetres: mesh volume/area, diameters, axes.

Inputs are a cropped mask plus its voxel -> RAS affine; every length is in RAS mm.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from skimage import measure as skm

__all__ = [
    "mesh_measures",
    "max_diameter_mm",
    "axial_diameters_mm",
    "principal_axes_mm",
    "longest_chord_perpendicular",
]

log = logging.getLogger(__name__)


def _padded(mask: np.ndarray) -> np.ndarray:
    padded = np.zeros(tuple(n + 2 for n in mask.shape), dtype=np.float32)
    padded[tuple(slice(1, -1) for _ in mask.shape)] = mask
    return padded


def mesh_measures(mask: np.ndarray, affine: np.ndarray) -> dict[str, object]:
    """Marching-cubes mesh (level 0.5) of a mask: volume (mL), area (mm^2) and vertices (RAS mm).

    The mask is padded with background so the mesh is closed, also where the object
    touches the crop or volume edge. ``affine`` maps the mask's voxel indices to RAS mm.
    As in IBSI / pyradiomics the mesh is built on the binary mask itself, so its area
    keeps the staircase: about 5-20% above a smooth object's area (more with thick
    slices); the mesh volume is within a few percent.

    >>> ball = np.linalg.norm(np.indices((21, 21, 21)) - 10.0, axis=0) <= 8
    >>> m = mesh_measures(ball, np.diag([1.0, 1.0, 1.0, 1.0]))
    >>> round(m["volume_mesh_ml"] * 1000 / (4 / 3 * np.pi * 8**3), 2)
    0.98
    """
    linear = np.asarray(affine, dtype=float)[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    verts, faces, _normals, _values = skm.marching_cubes(
        _padded(mask), level=0.5, spacing=tuple(float(s) for s in spacing), allow_degenerate=False
    )
    # Vertices were in the padded, scaled voxel frame: back to voxel indices, then RAS.
    index = verts / spacing - 1.0
    ras = index @ linear.T + np.asarray(affine, dtype=float)[:3, 3]
    area = float(skm.mesh_surface_area(ras, faces))
    tri = ras[faces]
    signed = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    return {"volume_mesh_ml": abs(float(signed)) / 1000.0, "surface_area_mm2": area, "vertices_mm": ras}


def _max_pairwise(points: np.ndarray) -> tuple[float, int, int]:
    """Largest distance between two points (chunked brute force) and their indices."""
    best, best_i, best_j = 0.0, 0, 0
    for start in range(0, len(points), 2048):
        block = points[start:start + 2048]
        d2 = np.sum((block[:, None, :] - points[None, :, :]) ** 2, axis=-1)
        flat = int(np.argmax(d2))
        i, j = divmod(flat, len(points))
        if d2[i, j] > best:
            best, best_i, best_j = float(d2[i, j]), start + i, j
    return float(np.sqrt(best)), best_i, best_j


def _hull_points(points: np.ndarray) -> np.ndarray:
    if len(points) <= points.shape[1] + 1:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except QhullError:  # flat or degenerate point sets: every point is a candidate
        return points


def max_diameter_mm(points_mm: np.ndarray) -> float:
    """Largest distance between any two points (exact: brute force over the convex hull).

    >>> max_diameter_mm(np.array([[0, 0, 0], [3, 4, 0], [1, 1, 1.0]]))
    5.0
    """
    points = np.asarray(points_mm, dtype=float)
    if len(points) < 2:
        return 0.0
    return _max_pairwise(_hull_points(points))[0]


def longest_chord_perpendicular(contours: list[np.ndarray], a: np.ndarray, b: np.ndarray) -> float:
    """Longest extent of closed 2D contours along lines perpendicular to the segment ab.

    For each line perpendicular to ``ab`` the extent is the distance between its
    outermost crossings with the contours; the maximum over lines is attained at a
    vertex, so scanning the vertices is exact.

    >>> square = [np.array([[0, 0], [0, 2], [1, 2], [1, 0], [0, 0]], float)]
    >>> longest_chord_perpendicular(square, np.array([0.0, 0.0]), np.array([0.0, 2.0]))
    1.0
    """
    u = (b - a) / max(float(np.linalg.norm(b - a)), 1e-12)
    v = np.array([-u[1], u[0]])
    starts = np.concatenate([c[:-1] for c in contours])
    ends = np.concatenate([c[1:] for c in contours])
    t0, t1 = (starts - a) @ u, (ends - a) @ u
    s0, s1 = (starts - a) @ v, (ends - a) @ v
    candidates = np.unique(np.concatenate([t0, t1]))
    length = float(np.linalg.norm(b - a))
    candidates = candidates[(candidates >= -1e-9) & (candidates <= length + 1e-9)]
    if len(candidates) > 4000:
        candidates = candidates[np.linspace(0, len(candidates) - 1, 4000).astype(int)]
    best = 0.0
    for chunk in np.array_split(candidates, max(1, len(candidates) // 256)):
        t = chunk[:, None]
        lo, hi = np.minimum(t0, t1)[None, :], np.maximum(t0, t1)[None, :]
        crosses = (t >= lo) & (t <= hi)
        span = np.where(np.abs(t1 - t0) > 1e-12, t1 - t0, 1.0)[None, :]
        fraction = np.clip((t - t0[None, :]) / span, 0.0, 1.0)
        s = s0[None, :] + fraction * (s1 - s0)[None, :]
        top = np.where(crosses, s, -np.inf).max(axis=1)
        bottom = np.where(crosses, s, np.inf).min(axis=1)
        extent = np.where(np.isfinite(top) & np.isfinite(bottom), top - bottom, 0.0)
        best = max(best, float(extent.max(initial=0.0)))
    return best


def axial_diameters_mm(mask: np.ndarray, inplane_mm: np.ndarray) -> dict[str, float]:
    """RECIST-style longest axial diameter and the longest perpendicular to it.

    ``mask`` must already be on an axial grid (axis 2 along the patient's S axis, see
    ``medseg.measure.table``); ``inplane_mm`` is the 2x2 map from (i, j) steps to RAS
    (x, y) mm. Each slice's outline (marching squares at 0.5) is measured; the slice
    with the longest diameter also gives the perpendicular.
    """
    best = {"axial_long_mm": 0.0, "axial_short_mm": 0.0, "axial_slice": -1}
    best_data = None
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        contours = skm.find_contours(_padded(mask[:, :, k]), 0.5)
        contours = [(c - 1.0) @ inplane_mm.T for c in contours if len(c) > 1]
        if not contours:
            continue
        hull = _hull_points(np.concatenate(contours))
        diameter, i, j = _max_pairwise(hull)
        if diameter > best["axial_long_mm"]:
            best.update(axial_long_mm=diameter, axial_slice=int(k))
            best_data = (contours, hull[i], hull[j])
    if best_data is not None:
        best["axial_short_mm"] = longest_chord_perpendicular(*best_data)
    return best


def principal_axes_mm(index: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Full axis lengths (mm, descending) of the solid ellipsoid with the same second moments.

    ``index`` holds (N, 3) voxel indices. Each voxel counts as a uniform box, so its
    own extent (s^2/12 per axis) is added to the covariance; a solid ellipsoid of
    semi-axes a >= b >= c gives (2a, 2b, 2c).
    """
    linear = np.asarray(affine, dtype=float)[:3, :3]
    index = np.asarray(index)
    # Moments in index space (3 x 3), then mapped to mm: cheaper than moving every voxel.
    mean = index.mean(axis=0)
    centred = (index - mean).astype(np.float64) if len(index) else np.zeros((0, 3))
    covariance_index = centred.T @ centred / max(len(index), 1)
    covariance = linear @ covariance_index @ linear.T
    covariance = covariance + linear @ np.diag(np.full(3, 1.0 / 12.0)) @ linear.T
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance)[::-1], 0.0, None)
    return 2.0 * np.sqrt(5.0 * eigenvalues)
