"""``evaluate``: every overlap and surface metric for all labels of one case, as a tidy table.

Crops each label to the union bounding box of prediction and reference; never a full-volume pass per label.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medseg.errors import GeometryMismatchError, InvalidArgumentError
from medseg.metrics.boxes import label_boxes, union_box
from medseg.metrics.overlap import OVERLAP_COLUMNS, confusion_counts, overlap_metrics
from medseg.metrics.surface import (
    SurfaceKind,
    _check_spacing,
    _surface_distances_cropped,
    nsd_column,
    surface_metrics,
)
from medseg.volume import Volume

__all__ = ["EmptyPolicy", "evaluate", "metric_columns", "as_label_array"]

log = logging.getLogger(__name__)

_SURFACE_COLUMNS = ("hd_mm", "hd95_mm", "assd_mm", "msd_ref_to_pred_mm", "msd_pred_to_ref_mm")
_ALIASES = {"sensitivity": "recall", "hd95": "hd95_mm", "hd": "hd_mm", "assd": "assd_mm"}


@dataclass(frozen=True)
class EmptyPolicy:
    """Values of the surface metrics when a mask is empty (overlap metrics: see ``overlap_metrics``).

    Parameters
    ----------
    both_empty_distance_mm : float
        HD/HD95/ASSD/mean distances when neither mask holds the label. Default NaN
        (undefined); some challenges use 0.
    both_empty_nsd : float
        NSD when neither mask holds the label. Default NaN; some challenges use 1.
    one_empty_distance_mm : float or "diagonal"
        Distances when exactly one mask is empty. Default NaN; ``"diagonal"`` uses the
        image diagonal in mm (a finite worst case, as several challenges do).

    NSD with exactly one empty mask is 0 (no surface lies within tolerance). The
    ``ref_empty``/``pred_empty`` columns flag every such row.
    """

    both_empty_distance_mm: float = float("nan")
    both_empty_nsd: float = float("nan")
    one_empty_distance_mm: float | str = float("nan")

    def __post_init__(self) -> None:
        value = self.one_empty_distance_mm
        if isinstance(value, str) and value != "diagonal":
            raise InvalidArgumentError(
                f"one_empty_distance_mm must be a number or 'diagonal', got {value!r}"
            )
        numbers = [self.both_empty_distance_mm, self.both_empty_nsd]
        numbers += [] if isinstance(value, str) else [value]
        if any(np.isinf(float(v)) for v in numbers):
            # Infinite values would leak into means; NaN (flagged) or a finite worst case only.
            raise InvalidArgumentError(f"EmptyPolicy values must be finite or NaN, got {self}")


def metric_columns(nsd_tolerance_mm: float | Sequence[float] = 1.0, *, ndim: int = 3) -> list[str]:
    """All metric columns :func:`evaluate` can produce, in table order.

    >>> metric_columns(2.0)[:3], metric_columns(2.0)[-1]
    (['dice', 'iou', 'precision'], 'nsd_2mm')
    """
    columns = [_area_name(c) if ndim == 2 else c for c in OVERLAP_COLUMNS]
    columns += list(_SURFACE_COLUMNS)
    columns += [nsd_column(t) for t in np.atleast_1d(np.asarray(nsd_tolerance_mm, dtype=float))]
    return columns


def _area_name(column: str) -> str:
    # 2D inputs have areas, not volumes: volume_ref_ml -> area_ref_mm2.
    return column.replace("volume_", "area_").replace("_ml", "_mm2") if "_ml" in column else column


def as_label_array(data: Any, *, name: str) -> np.ndarray:
    """Integer label array of a Volume/array (bool -> {0, 1}); rejects non-integral values."""
    array = data.array if isinstance(data, Volume) else np.asarray(data)
    if isinstance(data, Volume) and (data.kind == "probabilities" or array.ndim == 4):
        raise InvalidArgumentError(
            f"{name} ({data.source}) holds probabilities/channels; threshold or argmax it to a "
            "label map first"
        )
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and array.min() < 0:
            raise InvalidArgumentError(f"{name} has negative label values; labels must be >= 0")
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InvalidArgumentError(
                f"{name} has non-integer values; pass a label map (threshold probabilities first)"
            )
        if array.size and array.min() < 0:
            raise InvalidArgumentError(f"{name} has negative label values; labels must be >= 0")
        return array.astype(np.int64 if array.max(initial=0) > 65535 else np.uint16)
    raise InvalidArgumentError(f"{name} has dtype {array.dtype}; expected integer labels or bool")


def _requested(metrics: Iterable[str] | None, available: list[str]) -> list[str]:
    if metrics is None:
        return available
    chosen: list[str] = []
    for raw in metrics:
        name = _ALIASES.get(raw, raw)
        names = [c for c in available if c.startswith("nsd_")] if name == "nsd" else [name]
        if name not in available and name != "nsd":
            hint = difflib.get_close_matches(name, available, n=1)
            raise InvalidArgumentError(
                f"unknown metric {raw!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                + f" (available: {', '.join(available)})"
            )
        chosen += [n for n in names if n not in chosen]
    return [c for c in available if c in chosen]


def _inputs(pred: Any, ref: Any, spacing_mm: Sequence[float] | None) -> tuple:
    """Label arrays, spacing, voxel size, names and diagonal of a pred/ref pair."""
    names: dict[int, str] = {}
    for item in (pred, ref):
        if isinstance(item, Volume):
            names.update(item.labels)
    if isinstance(pred, Volume) and isinstance(ref, Volume):
        ref.require_same_grid(pred)
    pred_a, ref_a = as_label_array(pred, name="pred"), as_label_array(ref, name="ref")
    if pred_a.shape != ref_a.shape:
        raise GeometryMismatchError(
            f"pred has shape {pred_a.shape} but ref has {ref_a.shape}; resample the prediction "
            "onto the reference grid (Volume.resample_like)"
        )
    volume = ref if isinstance(ref, Volume) else pred if isinstance(pred, Volume) else None
    if volume is not None:
        spacing = np.asarray(volume.spacing_mm if spacing_mm is None else spacing_mm, dtype=float)
        voxel = volume.voxel_volume_ml if spacing_mm is None else float(np.prod(spacing)) / 1000.0
    else:
        spacing = _check_spacing(spacing_mm, ref_a.ndim)
        voxel = float(np.prod(spacing)) / (1000.0 if ref_a.ndim == 3 else 1.0)
    spacing = _check_spacing(spacing, ref_a.ndim)
    diagonal = float(np.linalg.norm(np.asarray(ref_a.shape) * spacing))
    return pred_a, ref_a, spacing, voxel, names, diagonal


def evaluate(
    pred: Volume | np.ndarray,
    ref: Volume | np.ndarray,
    *,
    labels: Sequence[int] | Mapping[int, str] | None = None,
    metrics: Iterable[str] | None = None,
    nsd_tolerance_mm: float | Sequence[float] = 1.0,
    surface: SurfaceKind = "surfel",
    case_id: str | None = None,
    spacing_mm: Sequence[float] | None = None,
    empty_policy: EmptyPolicy | None = None,
) -> pd.DataFrame:
    """Compare a predicted label map with a reference: one row per label.

    Parameters
    ----------
    pred, ref : Volume or numpy.ndarray
        Label maps (or binary masks) on the same voxel grid. Arrays may be 2D or 3D and
        then need ``spacing_mm``.
    labels : sequence of int or dict of int to str, optional
        Labels to report (0 is background and never reported). Default: every label
        named in either Volume's ``labels`` plus every nonzero value present.
    metrics : iterable of str, optional
        Subset of columns (see :func:`metric_columns`; ``"nsd"`` selects all NSD
        columns, ``"sensitivity"`` is ``recall``). Surface distances are skipped when
        no surface metric is asked for.
    nsd_tolerance_mm : float or sequence of float
        Tolerance(s) of the normalised surface Dice, one ``nsd_<t>mm`` column each.
    surface : {"surfel", "voxel"}
        Surface definition, see :func:`medseg.metrics.surface_distances`: area-weighted
        surfels (surface-distance, default) or voxel shells (MONAI). An object touching
        the volume edge is closed by that face (it counts as surface). HD95 is the
        larger of the two directed 95th percentiles.
    case_id : str, optional
        Value of the ``case_id`` column (default: the reference's source).
    spacing_mm : sequence of float, optional
        Voxel size for array inputs (overrides a Volume's spacing).
    empty_policy : EmptyPolicy, optional
        Surface-metric values when a mask is empty (default: NaN, flagged).

    Returns
    -------
    pandas.DataFrame
        Columns ``case_id, label, label_name``, the metrics (units in the names; 2D
        inputs give ``area_*_mm2`` instead of ``volume_*_ml``) and the flags
        ``ref_empty``, ``pred_empty``.

    Raises
    ------
    GeometryMismatchError
        The inputs are not on the same grid.

    Examples
    --------
    >>> ref = np.zeros((20, 20, 20), np.uint8); ref[5:15, 5:15, 5:15] = 1
    >>> pred = np.roll(ref, 1, axis=0)
    >>> row = evaluate(pred, ref, spacing_mm=(1.0, 1.0, 2.0)).iloc[0]
    >>> float(row["dice"]), float(row["hd_mm"]), float(row["volume_ref_ml"])
    (0.9, 1.0, 2.0)
    """
    if surface not in ("surfel", "voxel"):
        raise InvalidArgumentError(f"surface must be 'surfel' or 'voxel', got {surface!r}")
    policy = empty_policy or EmptyPolicy()
    pred_a, ref_a, spacing, voxel_ml, names, diagonal = _inputs(pred, ref, spacing_mm)
    available = metric_columns(nsd_tolerance_mm, ndim=ref_a.ndim)
    columns = _requested(metrics, available)
    want_surface = any(c in _SURFACE_COLUMNS or c.startswith("nsd_") for c in columns)
    pred_boxes, ref_boxes = label_boxes(pred_a), label_boxes(ref_a)
    if labels is None:
        wanted = sorted(set(names) | set(pred_boxes) | set(ref_boxes))
    else:
        wanted = [int(v) for v in labels]
        if isinstance(labels, Mapping):
            names.update({int(k): str(v) for k, v in labels.items()})
    if case_id is None:
        case_id = ref.source if isinstance(ref, Volume) else "case"
    rows = []
    for label in wanted:
        if label == 0:
            continue
        box = union_box(pred_boxes.get(label), ref_boxes.get(label))
        if box is None:
            pred_c = ref_c = np.zeros((0,) * ref_a.ndim, dtype=bool)
        else:
            pred_c, ref_c = pred_a[box] == label, ref_a[box] == label
        counts = confusion_counts(pred_c, ref_c, total=ref_a.size)
        values = overlap_metrics(counts, voxel_volume_ml=voxel_ml)
        if ref_a.ndim == 2:
            values = {_area_name(k): v for k, v in values.items()}
        ref_empty, pred_empty = counts.tp + counts.fn == 0, counts.tp + counts.fp == 0
        if want_surface:
            values.update(_surface_values(pred_c, ref_c, spacing, surface, nsd_tolerance_mm,
                                          ref_empty, pred_empty, policy, diagonal))
        row: dict[str, Any] = {"case_id": case_id, "label": label,
                               "label_name": names.get(label, str(label))}
        row.update({c: values[c] for c in columns})
        row.update(ref_empty=ref_empty, pred_empty=pred_empty)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["case_id", "label", "label_name", *columns,
                                        "ref_empty", "pred_empty"])
    table.attrs.update(surface=surface, spacing_mm=tuple(float(s) for s in spacing))
    return table


def _surface_values(pred_c, ref_c, spacing, surface, tolerances, ref_empty, pred_empty,
                    policy: EmptyPolicy, diagonal: float) -> dict[str, float]:
    if not ref_empty and not pred_empty:
        distances = _surface_distances_cropped(pred_c, ref_c, spacing, surface)
        return surface_metrics(distances, nsd_tolerance_mm=tolerances)
    nsd_names = [nsd_column(t) for t in np.atleast_1d(np.asarray(tolerances, dtype=float))]
    if ref_empty and pred_empty:
        distance, nsd = policy.both_empty_distance_mm, policy.both_empty_nsd
    else:
        value = policy.one_empty_distance_mm
        distance, nsd = (diagonal if value == "diagonal" else float(value)), 0.0
    out = dict.fromkeys(_SURFACE_COLUMNS, float(distance))
    out.update(dict.fromkeys(nsd_names, float(nsd)))
    return out
