"""Lesion-wise detection metrics: component matching, per-lesion rows, F1, FP per case, FROC.

Lesions are connected components (cc3d) matched one-to-one by IoU, Dice or reference coverage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import cc3d
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from medseg.errors import GeometryMismatchError, InvalidArgumentError
from medseg.metrics.boxes import nonzero_box
from medseg.metrics.surface import _check_spacing
from medseg.volume import Volume

__all__ = ["lesion_metrics", "lesion_summary", "froc", "LESION_COLUMNS", "DEFAULT_SIZE_BINS_MM"]

log = logging.getLogger(__name__)

MatchKind = Literal["iou", "dice", "overlap"]
_MATCHES = ("iou", "dice", "overlap")
#: Edges of the size bins (equivalent-sphere diameter of the reference lesion, mm).
DEFAULT_SIZE_BINS_MM = (0.0, 5.0, 10.0, 20.0, float("inf"))
#: Columns of :func:`lesion_metrics`.
LESION_COLUMNS = (
    "case_id", "lesion_id", "status", "ref_id", "pred_id", "volume_ref_ml", "volume_pred_ml",
    "volume_error_ml", "diameter_ref_mm", "size_bin", "iou", "dice", "match_score",
    "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
)


def _mask_and_geometry(
    pred: Any, ref: Any, spacing_mm: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """3D arrays of both masks, voxel -> mm affine and spacing (2D gets a 1 mm third axis)."""
    arrays = []
    for data, name in ((pred, "pred"), (ref, "ref")):
        array = data.array if isinstance(data, Volume) else np.asarray(data)
        if array.ndim not in (2, 3):
            raise InvalidArgumentError(f"{name} must be a 2D or 3D mask, got shape {array.shape}")
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise GeometryMismatchError(
            f"pred has shape {arrays[0].shape} but ref has {arrays[1].shape}; resample the "
            "prediction onto the reference grid"
        )
    if isinstance(pred, Volume) and isinstance(ref, Volume):
        ref.require_same_grid(pred)
    grid = ref if isinstance(ref, Volume) else pred if isinstance(pred, Volume) else None
    if grid is not None and spacing_mm is None:
        affine, spacing = grid.affine, np.asarray(grid.spacing_mm, dtype=float)
    else:
        spacing = _check_spacing(spacing_mm, arrays[0].ndim)
        affine = np.diag([*spacing, *([1.0] * (4 - len(spacing)))])
    if arrays[0].ndim == 2:
        arrays = [a[..., None] for a in arrays]
        spacing = np.append(spacing, 1.0)
    return arrays[0], arrays[1], affine, spacing


def _components(mask: np.ndarray, *, connectivity: int, min_voxels: float) -> tuple[np.ndarray, int]:
    labels, count = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    if count and min_voxels > 0:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        small = np.flatnonzero(sizes < min_voxels)
        small = small[small > 0]
        if len(small):
            labels[np.isin(labels, small)] = 0
            labels, count = cc3d.connected_components(labels > 0, connectivity=connectivity,
                                                      return_N=True)
    return labels.astype(np.int64, copy=False), int(count)


def _match(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one pairs (ref, pred) maximising the summed score among admissible pairs."""
    if scores.size == 0:
        return []
    admissible = np.where(scores >= threshold, scores, 0.0)
    rows, cols = linear_sum_assignment(admissible, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if scores[r, c] >= threshold and scores[r, c] > 0]


def lesion_metrics(
    pred: Volume | np.ndarray,
    ref: Volume | np.ndarray,
    *,
    min_size_mm3: float = 0.0,
    match: MatchKind = "iou",
    threshold: float = 0.1,
    connectivity: int = 26,
    label: int | None = None,
    spacing_mm: Sequence[float] | None = None,
    size_bins_mm: Sequence[float] = DEFAULT_SIZE_BINS_MM,
    case_id: str | None = None,
) -> pd.DataFrame:
    """Match predicted and reference lesions one-to-one; one row per lesion.

    Lesions are the connected components of each mask (``label`` selects one value of
    a label map; default: every nonzero voxel). Components smaller than
    ``min_size_mm3`` are dropped from both sides before matching. A reference and a
    predicted lesion may match when their score (``match``: ``"iou"``, ``"dice"``, or
    ``"overlap"`` = fraction of the reference lesion covered) is ``>= threshold`` and
    > 0; the assignment maximises the summed score (Hungarian algorithm), so each
    lesion is used at most once.

    Parameters
    ----------
    pred, ref : Volume or numpy.ndarray
        Masks on the same grid (arrays need ``spacing_mm``).
    min_size_mm3, match, threshold, connectivity
        Component and matching rules (``connectivity``: 6, 18 or 26; 4 or 8 in 2D).
    size_bins_mm : sequence of float
        Edges of the size bins on the reference lesion's equivalent-sphere diameter.
    case_id : str, optional
        Value of the ``case_id`` column.

    Returns
    -------
    pandas.DataFrame
        One row per reference lesion (``status`` "tp" or "fn") and per unmatched
        predicted lesion ("fp"), columns :data:`LESION_COLUMNS`; ``volume_error_ml`` =
        predicted minus reference volume; centroids in RAS mm.

    Examples
    --------
    >>> ref = np.zeros((20, 20, 20), np.uint8); ref[2:6, 2:6, 2:6] = 1; ref[12:16, 12:16, 12:16] = 1
    >>> pred = np.zeros_like(ref); pred[2:6, 2:6, 3:7] = 1; pred[2:4, 15:18, 15:18] = 1
    >>> lesion_metrics(pred, ref, spacing_mm=(1, 1, 1))["status"].tolist()
    ['tp', 'fn', 'fp']
    """
    if match not in _MATCHES:
        raise InvalidArgumentError(f"match must be one of {_MATCHES}, got {match!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise InvalidArgumentError(f"threshold must lie in [0, 1], got {threshold}")
    pred_m, ref_m, affine, spacing = _mask_and_geometry(pred, ref, spacing_mm)
    if case_id is None:
        case_id = ref.source if isinstance(ref, Volume) else "case"
    if pred_m.shape[2] == 1 and connectivity in (4, 8):
        connectivity = {4: 6, 8: 18}[connectivity]  # in-plane 4/8 neighbours on a single slice
    pred_b = pred_m != 0 if label is None else pred_m == label
    ref_b = ref_m != 0 if label is None else ref_m == label
    voxel_mm3 = float(np.prod(spacing))
    return _lesion_table(pred_b, ref_b, affine=affine, voxel_mm3=voxel_mm3, min_size_mm3=min_size_mm3,
                         match=match, threshold=float(threshold), connectivity=connectivity,
                         size_bins_mm=size_bins_mm, case_id=case_id)


def _scores(ref_cc: np.ndarray, n_ref: int, pred_cc: np.ndarray, n_pred: int, match: str) -> tuple:
    """Component sizes and the (n_ref, n_pred) IoU, Dice and matching-score matrices."""
    ref_size = np.bincount(ref_cc.ravel(), minlength=n_ref + 1)[1:]
    pred_size = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)[1:]
    both = (ref_cc > 0) & (pred_cc > 0)
    pairs = ref_cc[both] * (n_pred + 1) + pred_cc[both]
    inter = np.bincount(pairs, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)
    inter = inter[1:, 1:].astype(float)
    total = (ref_size[:, None] + pred_size[None, :]).astype(float)
    iou = np.divide(inter, total - inter, out=np.zeros_like(inter), where=(total - inter) > 0)
    dice = np.divide(2 * inter, total, out=np.zeros_like(inter), where=total > 0)
    cover = inter / np.maximum(ref_size[:, None], 1)
    return ref_size, pred_size, iou, dice, {"iou": iou, "dice": dice, "overlap": cover}[match]


def _lesion_table(pred_b, ref_b, *, affine, voxel_mm3, min_size_mm3, match, threshold,
                  connectivity, size_bins_mm, case_id) -> pd.DataFrame:
    # Components and overlaps only need the box around both masks.
    box = nonzero_box(pred_b | ref_b)
    if box is None:
        return pd.DataFrame(columns=list(LESION_COLUMNS))
    corner = np.array([s.start for s in box], dtype=float)
    pred_b, ref_b = pred_b[box], ref_b[box]
    min_voxels = float(min_size_mm3) / voxel_mm3
    ref_cc, n_ref = _components(ref_b, connectivity=connectivity, min_voxels=min_voxels)
    pred_cc, n_pred = _components(pred_b, connectivity=connectivity, min_voxels=min_voxels)
    ref_size, pred_size, iou, dice, scores = _scores(ref_cc, n_ref, pred_cc, n_pred, match)
    pairs_matched = _match(scores, threshold)
    ref_centroids = _centroids(ref_cc, n_ref, corner, affine)
    pred_centroids = _centroids(pred_cc, n_pred, corner, affine)
    ml = voxel_mm3 / 1000.0
    bins = np.asarray(size_bins_mm, dtype=float)
    rows = []
    matched_pred = {p: r for r, p in pairs_matched}
    matched_ref = {r: p for r, p in pairs_matched}
    for r in range(n_ref):
        volume = ref_size[r] * voxel_mm3
        diameter = float((6.0 * volume / np.pi) ** (1.0 / 3.0))
        p = matched_ref.get(r)
        rows.append({
            "case_id": case_id, "lesion_id": f"ref{r + 1}", "status": "tp" if p is not None else "fn",
            "ref_id": r + 1, "pred_id": (p + 1) if p is not None else 0,
            "volume_ref_ml": ref_size[r] * ml,
            "volume_pred_ml": pred_size[p] * ml if p is not None else 0.0,
            "volume_error_ml": (pred_size[p] - ref_size[r]) * ml if p is not None else -ref_size[r] * ml,
            "diameter_ref_mm": diameter, "size_bin": _bin_name(diameter, bins),
            "iou": iou[r, p] if p is not None else 0.0, "dice": dice[r, p] if p is not None else 0.0,
            "match_score": scores[r, p] if p is not None else 0.0,
            **_centroid_columns(ref_centroids[r]),
        })
    for p in range(n_pred):
        if p in matched_pred:
            continue
        rows.append({
            "case_id": case_id, "lesion_id": f"pred{p + 1}", "status": "fp", "ref_id": 0,
            "pred_id": p + 1, "volume_ref_ml": 0.0, "volume_pred_ml": pred_size[p] * ml,
            "volume_error_ml": pred_size[p] * ml, "diameter_ref_mm": float("nan"), "size_bin": "",
            "iou": 0.0, "dice": 0.0, "match_score": float(scores[:, p].max()) if n_ref else 0.0,
            **_centroid_columns(pred_centroids[p]),
        })
    return pd.DataFrame(rows, columns=list(LESION_COLUMNS))


def _bin_name(diameter: float, bins: np.ndarray) -> str:
    index = int(np.searchsorted(bins, diameter, side="right")) - 1
    index = min(max(index, 0), len(bins) - 2)
    low, high = bins[index], bins[index + 1]
    return f"{low:g}-{high:g}mm" if np.isfinite(high) else f">={low:g}mm"


def _centroids(components: np.ndarray, count: int, corner: np.ndarray, affine: np.ndarray) -> np.ndarray:
    if count == 0:
        return np.zeros((0, 3))
    index = np.nonzero(components)
    ids = components[index]
    sums = np.stack([np.bincount(ids, weights=i, minlength=count + 1)[1:] for i in index], axis=1)
    centres = sums / np.bincount(ids, minlength=count + 1)[1:, None] + corner[: len(index)]
    homogeneous = np.zeros((count, 3))
    homogeneous[:, : centres.shape[1]] = centres
    return homogeneous @ affine[:3, :3].T + affine[:3, 3]


def _centroid_columns(centre: np.ndarray) -> dict[str, float]:
    return {"centroid_x_mm": float(centre[0]), "centroid_y_mm": float(centre[1]),
            "centroid_z_mm": float(centre[2])}


def _pairs(pred: Any, ref: Any) -> list[tuple[Any, Any]]:
    if isinstance(pred, (list, tuple)) or isinstance(ref, (list, tuple)):
        if not isinstance(pred, (list, tuple)) or not isinstance(ref, (list, tuple)) or len(pred) != len(ref):
            raise InvalidArgumentError("pred and ref must both be single masks or lists of equal length")
        return list(zip(pred, ref))
    return [(pred, ref)]


def _summary(table: pd.DataFrame, n_cases: int) -> dict[str, Any]:
    tp = int((table["status"] == "tp").sum())
    fp = int((table["status"] == "fp").sum())
    fn = int((table["status"] == "fn").sum())
    sensitivity = tp / (tp + fn) if tp + fn else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    out: dict[str, Any] = {"f1": f1, "sensitivity": sensitivity, "precision": precision,
                           "fp_per_case": fp / n_cases if n_cases else float("nan"),
                           "tp": tp, "fp": fp, "fn": fn, "n_cases": n_cases}
    refs = table[table["status"] != "fp"]
    for name, group in refs.groupby("size_bin", sort=False):
        out[f"sensitivity_{name}"] = float((group["status"] == "tp").mean())
    matched = table[table["status"] == "tp"]
    out["mean_lesion_dice"] = float(matched["dice"].mean()) if len(matched) else float("nan")
    return out


def lesion_summary(
    pred: Any,
    ref: Any = None,
    *,
    n_cases: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Lesion-wise F1, sensitivity, precision, FP per case and TP/FP/FN counts.

    Parameters
    ----------
    pred : Volume, numpy.ndarray, list of them, or DataFrame
        Predicted mask(s), or a table from :func:`lesion_metrics` (several cases may be
        concatenated).
    ref : Volume, numpy.ndarray or list, optional
        Reference mask(s), paired with ``pred`` (not used with a table).
    n_cases : int, optional
        Number of cases for ``fp_per_case``. Default: the number of pairs given, or the
        number of distinct ``case_id`` values of a table (cases with no lesion at all
        leave no row, so pass ``n_cases`` for such cohorts).
    **options
        Passed to :func:`lesion_metrics` (``min_size_mm3``, ``match``, ``threshold``...).

    Returns
    -------
    dict
        ``f1, sensitivity, precision, fp_per_case, tp, fp, fn, n_cases``, one
        ``sensitivity_<bin>`` per reference size bin present, and ``mean_lesion_dice``
        over matched lesions. Undefined ratios (no lesions) are NaN.

    Examples
    --------
    >>> ref = np.zeros((10, 10, 10), bool); ref[1:4, 1:4, 1:4] = True; ref[6:9, 6:9, 6:9] = True
    >>> s = lesion_summary(ref[:, :, ::-1].copy(), ref, spacing_mm=(1, 1, 1))
    >>> s["tp"], s["fn"], s["fp"]
    (0, 2, 2)
    """
    if isinstance(pred, pd.DataFrame):
        if options:
            raise InvalidArgumentError("options apply to masks, not to a lesion table")
        count = pred["case_id"].nunique() if n_cases is None else n_cases
        return _summary(pred, int(count))
    if ref is None:
        raise InvalidArgumentError("lesion_summary needs ref masks when pred is not a table")
    pairs = _pairs(pred, ref)
    options.pop("case_id", None)  # cases are numbered here; fp_per_case uses their count
    tables = [lesion_metrics(p, r, case_id=f"case{i}", **options) for i, (p, r) in enumerate(pairs)]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(LESION_COLUMNS))
    return _summary(table, len(pairs) if n_cases is None else n_cases)


def froc(
    prob: Any,
    ref: Any,
    *,
    thresholds: Sequence[float] | None = None,
    spacing_mm: Sequence[float] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Free-response ROC points: lesion sensitivity against false positives per case.

    For each probability threshold ``t`` the prediction is ``prob >= t``; lesions are
    then matched as in :func:`lesion_metrics` (``options``: ``min_size_mm3``, ``match``,
    ``threshold``, ``connectivity``, ``label``).

    Parameters
    ----------
    prob : Volume, numpy.ndarray or list of them
        Lesion probability map(s) (a 4D probabilities Volume is not accepted: pass the
        lesion channel).
    ref : Volume, numpy.ndarray or list of them
        Reference lesion mask(s), paired with ``prob``.
    thresholds : sequence of float, optional
        Probability thresholds (default 0.05, 0.10, ..., 0.95).

    Returns
    -------
    pandas.DataFrame
        One row per threshold, ascending: ``threshold, sensitivity, fp_per_case, tp, fp, fn``.

    Examples
    --------
    >>> ref = np.zeros((12, 12, 12), bool); ref[2:5, 2:5, 2:5] = True
    >>> prob = np.where(ref, 0.8, 0.0); prob[8:11, 8:11, 8:11] = 0.3
    >>> froc(prob, ref, thresholds=[0.2, 0.5], spacing_mm=(1, 1, 1))[["sensitivity", "fp_per_case"]].values.tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """
    levels = np.round(np.arange(1, 20) * 0.05, 10) if thresholds is None else np.asarray(thresholds, float)
    levels = np.sort(levels)
    unknown = set(options) - {"min_size_mm3", "match", "threshold", "connectivity", "label"}
    if unknown:
        raise InvalidArgumentError(f"froc got unknown options {sorted(unknown)}")
    match = options.get("match", "iou")
    if match not in _MATCHES:
        raise InvalidArgumentError(f"match must be one of {_MATCHES}, got {match!r}")
    pairs = _pairs(prob, ref)
    totals = np.zeros((len(levels), 3), dtype=np.int64)
    for p, r in pairs:
        if (p.array if isinstance(p, Volume) else np.asarray(p)).ndim == 4:
            raise InvalidArgumentError("froc needs one probability channel per case (3D), got 4D")
        values, ref_m, _, spacing = _mask_and_geometry(p, r, spacing_mm)
        label = options.get("label")
        ref_b = ref_m != 0 if label is None else ref_m == label
        connectivity = options.get("connectivity", 26)
        if values.shape[2] == 1 and connectivity in (4, 8):
            connectivity = {4: 6, 8: 18}[connectivity]
        # The reference components and the crop are shared by every threshold.
        box = nonzero_box((values >= levels[0]) | ref_b) if len(levels) else None
        min_voxels = float(options.get("min_size_mm3", 0.0)) / float(np.prod(spacing))
        ref_cc, n_ref = (_components(ref_b[box], connectivity=connectivity, min_voxels=min_voxels)
                         if box is not None else (np.zeros((0, 0, 0), np.int64), 0))
        for k, level in enumerate(levels):
            if box is None:
                continue
            pred_cc, n_pred = _components(values[box] >= level, connectivity=connectivity,
                                          min_voxels=min_voxels)
            *_, scores = _scores(ref_cc, n_ref, pred_cc, n_pred, match)
            tp = len(_match(scores, float(options.get("threshold", 0.1))))
            totals[k] += [tp, n_pred - tp, n_ref - tp]
    n_cases = len(pairs)
    tp, fp, fn = totals.T
    sensitivity = np.divide(tp, tp + fn, out=np.full(len(levels), np.nan), where=(tp + fn) > 0)
    return pd.DataFrame({"threshold": levels, "sensitivity": sensitivity, "fp_per_case": fp / n_cases,
                         "tp": tp, "fp": fp, "fn": fn})
