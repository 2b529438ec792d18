"""Voxel-wise and case-level evaluation of anomaly maps: AUROC, AUPRC, best Dice, FPR thresholds.

Written in numpy with scikit-learn's definitions (tested against it); lesion-wise scores live in metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from medseg.errors import InvalidArgumentError
from medseg.volume import Volume

__all__ = [
    "auroc",
    "auprc",
    "best_dice",
    "threshold_at_fpr",
    "pool_voxels",
    "voxel_scores",
    "lesion_f1_at_fp_rate",
]

ArrayLike = np.ndarray | Volume


def _values(x: ArrayLike) -> np.ndarray:
    return np.asarray(x.array if isinstance(x, Volume) else x)


def _flatten(scores: ArrayLike, truth: ArrayLike, mask: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    s, t = _values(scores), _values(truth)
    if s.shape != t.shape:
        raise InvalidArgumentError(f"scores have shape {s.shape} but truth has {t.shape}; "
                                   "resample them onto one grid first")
    if mask is not None:
        m = _values(mask).astype(bool)
        if m.shape != s.shape:
            raise InvalidArgumentError(f"mask has shape {m.shape}, scores have {s.shape}")
        s, t = s[m], t[m]
    s = s.ravel().astype(np.float64)
    t = t.ravel() > 0
    if not np.all(np.isfinite(s)):
        raise InvalidArgumentError("scores contain NaN or infinite values; fill or mask them first")
    return s, t


def auroc(scores: ArrayLike, truth: ArrayLike, *, mask: ArrayLike | None = None) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U), ties counted as one half.

    Parameters
    ----------
    scores : array or Volume
        Higher means more anomalous.
    truth : array or Volume
        Nonzero marks the positives (anomalous voxels or cases).
    mask : array or Volume, optional
        Only voxels where the mask is nonzero count (e.g. the body).

    Returns
    -------
    float
        AUROC in [0, 1]; NaN when only one class is present.

    Examples
    --------
    >>> auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    s, t = _flatten(scores, truth, mask)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(s)  # average ranks: ties contribute 1/2
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auprc(scores: ArrayLike, truth: ArrayLike, *, mask: ArrayLike | None = None) -> float:
    """Average precision: sum over thresholds of precision times the step in recall.

    The step-wise definition of scikit-learn's ``average_precision_score`` (no
    interpolation between points); tied scores form one threshold.

    Examples
    --------
    >>> auprc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.8333333333333333
    """
    s, t = _flatten(scores, truth, mask)
    n_pos = int(t.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    # Last index of each run of tied scores is where a threshold takes effect.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(t)[last]
    predicted = last + 1
    precision = tp / predicted
    recall = tp / n_pos
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def best_dice(
    scores: ArrayLike, truth: ArrayLike, *, mask: ArrayLike | None = None
) -> tuple[float, float]:
    """Best Dice over all thresholds of ``scores >= t`` and the threshold that gives it.

    An upper bound on the segmentation quality of an anomaly map (the
    threshold is chosen with the truth, so report it as such).

    Examples
    --------
    >>> best_dice(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    (0.8, 0.35)
    """
    s, t = _flatten(scores, truth, mask)
    n_pos = int(t.sum())
    if n_pos == 0:
        return float("nan"), float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(t)[last]
    dice = 2.0 * tp / (n_pos + last + 1)
    best = int(np.argmax(dice))
    return float(dice[best]), float(s[last[best]])


def threshold_at_fpr(normal_scores: ArrayLike, target_fpr: float, *,
                     mask: ArrayLike | None = None) -> float:
    """Smallest threshold ``t`` with at most ``target_fpr`` of normal voxels scoring ``> t``.

    Parameters
    ----------
    normal_scores : array or Volume
        Anomaly scores of voxels known to be normal (validation scans).
    target_fpr : float
        Allowed false-positive fraction, in (0, 1).

    Examples
    --------
    >>> threshold_at_fpr(np.arange(100.0), 0.05)
    94.0
    """
    if not 0.0 < float(target_fpr) < 1.0:
        raise InvalidArgumentError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    values = _values(normal_scores)
    if mask is not None:
        values = values[_values(mask).astype(bool)]
    values = np.sort(values.ravel().astype(np.float64))
    if values.size == 0:
        raise InvalidArgumentError("no normal voxels to choose a threshold from (empty mask?)")
    allowed = int(np.floor(float(target_fpr) * values.size))  # voxels allowed above t
    return float(values[values.size - allowed - 1])


def pool_voxels(
    maps: Sequence[Volume], truths: Sequence[Volume], masks: Sequence[Volume | None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (masked) voxel scores and truth of several cases for pooled metrics."""
    if len(maps) != len(truths):
        raise InvalidArgumentError(f"{len(maps)} maps but {len(truths)} truth volumes")
    masks = list(masks) if masks is not None else [None] * len(maps)
    scores, labels = [], []
    for score, truth, mask in zip(maps, truths, masks):
        s, t = _flatten(score, truth, mask)
        scores.append(s)
        labels.append(t)
    return np.concatenate(scores), np.concatenate(labels)


def voxel_scores(
    maps: Sequence[Volume], truths: Sequence[Volume], masks: Sequence[Volume | None] | None = None
) -> dict[str, float]:
    """Pooled voxel-wise ``auroc``, ``auprc``, ``best_dice`` and ``best_dice_threshold``.

    Cases without any positive voxel still contribute their negatives.
    """
    scores, labels = pool_voxels(maps, truths, masks)
    dice, threshold = best_dice(scores, labels)
    return {"auroc": auroc(scores, labels), "auprc": auprc(scores, labels),
            "best_dice": dice, "best_dice_threshold": threshold}


def lesion_f1_at_fp_rate(
    maps: Sequence[Volume],
    references: Sequence[Volume],
    *,
    fp_per_case: float = 1.0,
    thresholds: Sequence[float] | None = None,
    min_size_mm3: float = 0.0,
    n_thresholds: int = 40,
) -> dict[str, float]:
    """Lesion-wise F1 at the lowest threshold whose false positives per case stay <= ``fp_per_case``.

    Runs :func:`medseg.metrics.froc` (components of ``map >= t`` matched to
    reference lesions at IoU >= 0.1) over ``thresholds`` (default: upper
    quantiles of the pooled map values, so any score scale works) and reports the
    operating point; ``froc`` holds the whole curve.

    Returns
    -------
    dict
        ``threshold, f1, sensitivity, fp_per_case, tp, fp, fn`` at the
        operating point (F1 0 and threshold NaN when no threshold qualifies).
    """
    from medseg.metrics import froc

    refs = [r.with_array((r.array > 0).astype(np.uint8)) for r in references]
    if thresholds is None:
        # Thresholds between the top 10% and the top few voxels, denser near the top.
        values = np.concatenate([m.array.ravel() for m in maps] or [np.zeros(1)])
        levels = np.unique(np.quantile(values, 1.0 - np.logspace(-1, -6, n_thresholds)))
    else:
        levels = np.asarray(thresholds, dtype=float)
    curve = froc(list(maps), refs, thresholds=list(levels), min_size_mm3=min_size_mm3)
    curve["f1"] = 2 * curve["tp"] / np.maximum(2 * curve["tp"] + curve["fp"] + curve["fn"], 1)
    ok = curve[curve["fp_per_case"] <= fp_per_case]
    if ok.empty:
        return {"threshold": float("nan"), "f1": 0.0, "sensitivity": 0.0,
                "fp_per_case": float(curve["fp_per_case"].min()), "tp": 0, "fp": 0, "fn": 0}
    row = ok.iloc[0]  # thresholds ascend: the first admissible one is the most sensitive
    return {"threshold": float(row["threshold"]), "f1": float(row["f1"]),
            "sensitivity": float(row["sensitivity"]), "fp_per_case": float(row["fp_per_case"]),
            "tp": int(row["tp"]), "fp": int(row["fp"]), "fn": int(row["fn"])}
