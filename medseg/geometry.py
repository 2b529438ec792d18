"""Small pure functions on 4x4 voxel-to-RAS affines (millimetres).

Every function takes and returns plain numpy values; no file formats here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medseg.errors import InvalidArgumentError

__all__ = [
    "LPS_TO_RAS",
    "affine_from_spacing",
    "spacing_from_affine",
    "direction_from_affine",
    "axis_codes",
    "orientation_transform",
    "apply_affine",
]

#: Flip of the first two world axes: DICOM/ITK LPS <-> NIfTI/medseg RAS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_from_spacing(
    spacing_mm: Sequence[float],
    *,
    origin_mm: Sequence[float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """Build a voxel -> RAS affine from spacing, origin and direction cosines.

    Examples
    --------
    >>> affine_from_spacing((0.5, 0.5, 2.0), origin_mm=(1, 2, 3))[:3, 3].tolist()
    [1.0, 2.0, 3.0]
    >>> np.diag(affine_from_spacing((0.5, 0.5, 2.0)))[:3].tolist()
    [0.5, 0.5, 2.0]
    """
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(spacing_mm, dtype=float)[None, :]
    affine[:3, 3] = np.asarray(origin_mm, dtype=float)
    return affine


def spacing_from_affine(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel size in mm along each voxel axis (column norms of the 3x3 part).

    >>> spacing_from_affine(np.diag([-0.7, 0.7, 2.5, 1]))
    (0.7, 0.7, 2.5)
    """
    norms = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    return tuple(float(round(n, 10)) for n in norms)


def direction_from_affine(affine: np.ndarray) -> np.ndarray:
    """Direction cosines (3x3, columns are unit voxel axes in RAS)."""
    linear = np.asarray(affine, dtype=float)[:3, :3]
    return linear / np.linalg.norm(linear, axis=0)[None, :]


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Anatomical direction each voxel axis points to, e.g. ``('R', 'A', 'S')``.

    Same convention as ``nibabel.aff2axcodes``: each voxel axis is assigned the
    world axis it is closest to, greedily by largest cosine.

    >>> axis_codes(np.diag([-1.0, -1.0, 1.0, 1.0]))
    ('L', 'P', 'S')
    """
    direction = direction_from_affine(affine)
    used: set[int] = set()
    codes = [""] * 3
    # Greedy assignment by magnitude mirrors nibabel.io_orientation for the
    # non-degenerate affines that appear in practice.
    order = np.argsort(-np.abs(direction).max(axis=0))
    for voxel_axis in order:
        cosines = np.abs(direction[:, voxel_axis]).copy()
        cosines[list(used)] = -1
        world_axis = int(np.argmax(cosines))
        used.add(world_axis)
        positive = direction[world_axis, voxel_axis] > 0
        codes[voxel_axis] = ("R", "A", "S")[world_axis] if positive else ("L", "P", "I")[world_axis]
    return tuple(codes)  # type: ignore[return-value]


_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def orientation_transform(
    affine: np.ndarray, to: str = "RAS"
) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Axis permutation and flips that turn an array with ``affine`` into orientation ``to``.

    Returns ``(permutation, flips)``: new axis ``n`` is old axis
    ``permutation[n]``, flipped if ``flips[n]``.

    >>> orientation_transform(np.diag([-1.0, 1.0, 1.0, 1.0]))
    ((0, 1, 2), (True, False, False))
    """
    target = to.upper()
    if len(target) != 3 or any(c not in _OPPOSITE for c in target):
        raise InvalidArgumentError(f"orientation code {to!r} must be three letters from RLAPSI, e.g. 'RAS'")
    current = axis_codes(affine)
    permutation: list[int] = []
    flips: list[bool] = []
    for code in target:
        if code in current:
            permutation.append(current.index(code))
            flips.append(False)
        else:  # every world axis appears in ``current``, as itself or its opposite
            permutation.append(current.index(_OPPOSITE[code]))
            flips.append(True)
    if len(set(permutation)) != 3:
        raise InvalidArgumentError(f"orientation code {to!r} names one world axis twice")
    return tuple(permutation), tuple(flips)  # type: ignore[return-value]


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map an (N, 3) array of voxel indices (or any points) through a 4x4 affine.

    >>> apply_affine(np.diag([2.0, 2.0, 2.0, 1.0]), np.array([[1, 2, 3]])).tolist()
    [[2.0, 4.0, 6.0]]
    """
    points = np.asarray(points, dtype=float)
    affine = np.asarray(affine, dtype=float)
    return points @ affine[:3, :3].T + affine[:3, 3]
