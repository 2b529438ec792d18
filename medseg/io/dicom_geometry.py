"""Slice geometry of DICOM series: sorting along the normal, spacing checks, LPS -> RAS affine.

DICOM patient coordinates (LPS) exist only in ``medseg/io/dicom*.py``; everything returned is RAS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medseg.errors import DicomSeriesError
from medseg.geometry import LPS_TO_RAS

__all__ = [
    "SliceGeometry",
    "StackGeometry",
    "orientation_key",
    "slice_normal",
    "sort_slices",
    "stack_affine_ras",
    "ras_to_lps",
    "frame_to_volume",
]

log = logging.getLogger(__name__)

#: Two positions closer than this along the normal are the same slice (mm).
DUPLICATE_TOLERANCE_MM = 1e-3
#: Relative deviation of a slice gap from the nominal spacing that counts as irregular.
SPACING_RTOL = 0.01
#: Angle between the slice normal and the stacking direction that counts as gantry tilt.
TILT_TOLERANCE_DEG = 0.01


@dataclass(frozen=True)
class SliceGeometry:
    """Where one 2D frame lies: LPS position of its first pixel, orientation, pixel size."""

    position_lps: tuple[float, float, float]
    orientation_lps: tuple[float, float, float, float, float, float]
    pixel_spacing_mm: tuple[float, float]  # (between rows, between columns), DICOM order


@dataclass
class StackGeometry:
    """Result of sorting a stack of slices: kept order, affine and what was irregular."""

    order: list[int]
    affine_ras: np.ndarray
    positions_mm: np.ndarray  # distance of each kept slice along the normal
    dropped_duplicates: list[int] = field(default_factory=list)
    tilt_deg: float = 0.0
    irregular: bool = False
    gaps_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    nominal_spacing_mm: float = 1.0
    problems: list[str] = field(default_factory=list)


def orientation_key(orientation: Sequence[float], *, decimals: int = 4) -> tuple[float, ...]:
    """Rounded ImageOrientationPatient, for grouping frames of equal orientation.

    >>> orientation_key([1, 0, 0, 0, 1.00000001, 0])
    (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    """
    return tuple(float(v) + 0.0 for v in np.round(np.asarray(orientation, float), decimals))


def slice_normal(orientation_lps: Sequence[float]) -> np.ndarray:
    """Unit normal (row direction x column direction) of an ImageOrientationPatient, in LPS.

    >>> slice_normal([1, 0, 0, 0, 1, 0]).tolist()
    [0.0, 0.0, 1.0]
    """
    row = np.asarray(orientation_lps[:3], dtype=float)
    col = np.asarray(orientation_lps[3:6], dtype=float)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def sort_slices(slices: Sequence[SliceGeometry], *, source: str = "series") -> StackGeometry:
    """Sort slices by position along the slice normal and describe the stack.

    Exact duplicate positions are dropped (the first file in input order is
    kept). Missing slices and uneven gaps are flagged ``irregular``; gantry
    tilt (stacking direction not along the normal) is measured in degrees.
    The affine uses the nominal (median) gap, first slice as origin, and the
    real stacking direction, so a tilted stack gets a sheared affine.

    Parameters
    ----------
    slices : sequence of SliceGeometry
        One per frame, in any order; all share one orientation.
    source : str
        Name used in messages.

    Returns
    -------
    StackGeometry
        ``order`` lists indices into ``slices`` in k order.
    """
    orientation = np.asarray(slices[0].orientation_lps, dtype=float)
    normal = slice_normal(orientation)
    positions = np.array([s.position_lps for s in slices], dtype=float)
    along = positions @ normal
    order = list(np.argsort(along, kind="stable"))
    kept: list[int] = []
    dropped: list[int] = []
    for index in order:
        if kept and abs(along[index] - along[kept[-1]]) < DUPLICATE_TOLERANCE_MM:
            in_plane = np.linalg.norm(positions[index] - positions[kept[-1]])
            if in_plane < DUPLICATE_TOLERANCE_MM:
                dropped.append(int(index))
                continue
        kept.append(int(index))
    problems: list[str] = []
    if dropped:
        problems.append(f"{len(dropped)} duplicate slice position(s) dropped")
    spacing_rc = slices[kept[0]].pixel_spacing_mm
    gaps = np.diff(along[kept])
    nominal = float(np.median(gaps)) if len(gaps) else 1.0
    irregular = False
    tilt_deg = 0.0
    step_lps = normal * nominal
    if len(kept) > 1:
        if nominal <= DUPLICATE_TOLERANCE_MM:
            nominal = 1.0
        deviation = np.abs(gaps - nominal)
        if np.any(deviation > SPACING_RTOL * nominal):
            irregular = True
            n_missing = int(np.sum(np.round(gaps / nominal) - 1).clip(0))
            problems.append(
                f"irregular slice spacing (gaps {_summarise(gaps)} mm, nominal {nominal:.4g} mm"
                + (f", about {n_missing} missing slice(s)" if n_missing else "")
                + ")"
            )
        # Stacking direction from first to last slice, scaled to the nominal gap.
        span = positions[kept[-1]] - positions[kept[0]]
        span_along = float(span @ normal)
        if span_along < DUPLICATE_TOLERANCE_MM:
            raise DicomSeriesError(
                f"{source}: {len(kept)} slices share one position along the slice normal but differ "
                "in-plane; this is not a stack (a localizer or mosaic?). Pick another series."
            )
        direction = span / span_along
        step_lps = direction * nominal
        cosine = float(np.clip(span_along / np.linalg.norm(span), -1.0, 1.0))
        tilt_deg = float(np.degrees(np.arccos(cosine)))
        if tilt_deg > TILT_TOLERANCE_DEG:
            problems.append(f"gantry tilt of {tilt_deg:.3g} degrees (slices are sheared)")
    else:
        nominal = 1.0
    affine_ras = stack_affine_ras(
        positions[kept[0]], orientation, spacing_rc, step_lps=step_lps
    )
    return StackGeometry(
        order=kept,
        affine_ras=affine_ras,
        positions_mm=along[kept],
        dropped_duplicates=dropped,
        tilt_deg=tilt_deg if tilt_deg > TILT_TOLERANCE_DEG else 0.0,
        irregular=irregular,
        gaps_mm=gaps,
        nominal_spacing_mm=nominal,
        problems=problems,
    )


def _summarise(gaps: np.ndarray) -> str:
    values = sorted({round(float(g), 3) for g in gaps})
    return ", ".join(f"{v:g}" for v in values[:6]) + (" ..." if len(values) > 6 else "")


def stack_affine_ras(
    first_position_lps: Sequence[float],
    orientation_lps: Sequence[float],
    pixel_spacing_mm: Sequence[float],
    *,
    step_lps: Sequence[float],
) -> np.ndarray:
    """Voxel (i=column, j=row, k=slice) -> RAS affine of a DICOM stack.

    ``pixel_spacing_mm`` is DICOM's PixelSpacing (row spacing, column spacing);
    ``step_lps`` is the LPS vector from one slice to the next.

    >>> a = stack_affine_ras([10, 20, 30], [1, 0, 0, 0, 1, 0], [0.5, 0.7], step_lps=[0, 0, 2.5])
    >>> (np.round(a, 3) + 0.0).tolist()[:3]
    [[-0.7, 0.0, 0.0, -10.0], [0.0, -0.5, 0.0, -20.0], [0.0, 0.0, 2.5, 30.0]]
    """
    row_dir = np.asarray(orientation_lps[:3], dtype=float)  # direction of increasing column index
    col_dir = np.asarray(orientation_lps[3:6], dtype=float)  # direction of increasing row index
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * float(pixel_spacing_mm[1])
    affine_lps[:3, 1] = col_dir * float(pixel_spacing_mm[0])
    affine_lps[:3, 2] = np.asarray(step_lps, dtype=float)
    affine_lps[:3, 3] = np.asarray(first_position_lps, dtype=float)
    return LPS_TO_RAS @ affine_lps


def ras_to_lps(affine_ras: np.ndarray) -> np.ndarray:
    """The same voxel -> world affine expressed in DICOM LPS.

    >>> ras_to_lps(np.eye(4))[:3, :3].tolist()
    [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    return LPS_TO_RAS @ np.asarray(affine_ras, dtype=float)


def frame_to_volume(stack: np.ndarray) -> np.ndarray:
    """View a (slice, row, column) stack as medseg's (i=column, j=row, k=slice) array (no copy)."""
    return stack.transpose(2, 1, 0)


def regular_stack(
    frames: np.ndarray, slices: Sequence[SliceGeometry], stack: StackGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a sorted, irregular or tilted stack onto a regular grid along the normal.

    Target slices are ``nominal_spacing_mm`` apart starting at the first
    slice; each is linearly interpolated between the two source slices that
    bracket it along the normal, after shifting those in-plane to undo tilt.

    Parameters
    ----------
    frames : numpy.ndarray
        (slice, row, column) values in ``stack.order``.
    slices : sequence of SliceGeometry
        Geometry of every input frame (indexed by ``stack.order``).
    stack : StackGeometry
        From :func:`sort_slices`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float32 (slice, row, column) array and its voxel -> RAS affine.
    """
    from scipy import ndimage

    kept = [slices[i] for i in stack.order]
    orientation = np.asarray(kept[0].orientation_lps, dtype=float)
    row_dir, col_dir = orientation[:3], orientation[3:6]
    normal = slice_normal(orientation)
    spacing_rc = kept[0].pixel_spacing_mm
    nominal = stack.nominal_spacing_mm
    along = stack.positions_mm - stack.positions_mm[0]
    n_out = int(round(along[-1] / nominal)) + 1
    origin = np.asarray(kept[0].position_lps, dtype=float)
    positions = np.array([s.position_lps for s in kept], dtype=float)
    out = np.empty((n_out,) + frames.shape[1:], dtype=np.float32)

    def sample(m: int, target_origin: np.ndarray) -> np.ndarray:
        delta = target_origin - positions[m]
        shift_rows = float(delta @ col_dir) / spacing_rc[0]
        shift_cols = float(delta @ row_dir) / spacing_rc[1]
        frame = frames[m].astype(np.float32)
        shift = np.array([-shift_rows, -shift_cols])
        if np.all(np.abs(shift) < 1e-4):
            return frame
        # Whole-pixel shifts (within rounding of the header values) move values exactly.
        whole = np.all(np.abs(shift - np.round(shift)) < 1e-4)
        return ndimage.shift(
            frame, np.round(shift) if whole else shift, order=0 if whole else 1, mode="nearest"
        )

    for t in range(n_out):
        d = t * nominal
        target_origin = origin + normal * d
        # Slices within the duplicate tolerance of a target are taken as they are.
        upper = int(np.clip(np.searchsorted(along, d - DUPLICATE_TOLERANCE_MM), 0, len(kept) - 1))
        if abs(along[upper] - d) < DUPLICATE_TOLERANCE_MM or upper == 0:
            out[t] = sample(upper, target_origin)
            continue
        lower = upper - 1
        weight = (d - along[lower]) / (along[upper] - along[lower])
        out[t] = (1.0 - weight) * sample(lower, target_origin) + weight * sample(upper, target_origin)
    affine = stack_affine_ras(origin, orientation, spacing_rc, step_lps=normal * nominal)
    return out, affine
