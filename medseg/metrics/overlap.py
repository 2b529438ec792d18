"""Overlap metrics from voxel counts: Dice, IoU, precision, recall, specificity, volumes.

Pure arithmetic on confusion counts, with the empty-mask policy written out per metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ConfusionCounts", "confusion_counts", "overlap_metrics", "OVERLAP_COLUMNS"]

#: Columns produced by :func:`overlap_metrics`, in order.
OVERLAP_COLUMNS = (
    "dice", "iou", "precision", "recall", "specificity", "volume_similarity",
    "volume_ref_ml", "volume_pred_ml", "volume_diff_ml", "abs_volume_diff_ml", "rel_volume_diff",
)


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of one label: true/false positives/negatives and the image size."""

    tp: int
    fp: int
    fn: int
    total: int

    @property
    def tn(self) -> int:
        return self.total - self.tp - self.fp - self.fn


def confusion_counts(pred: np.ndarray, ref: np.ndarray, *, total: int | None = None) -> ConfusionCounts:
    """Count TP/FP/FN of two binary masks (``total`` voxels in the full image, for TN).

    The masks may be crops of the full image: voxels outside the crop are true negatives.

    >>> confusion_counts(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    ConfusionCounts(tp=1, fp=1, fn=1, total=4)
    """
    pred_b, ref_b = np.asarray(pred) != 0, np.asarray(ref) != 0
    tp = int(np.count_nonzero(pred_b & ref_b))
    fp = int(np.count_nonzero(pred_b)) - tp
    fn = int(np.count_nonzero(ref_b)) - tp
    return ConfusionCounts(tp, fp, fn, int(pred_b.size if total is None else total))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else float("nan")


def overlap_metrics(counts: ConfusionCounts, *, voxel_volume_ml: float) -> dict[str, float]:
    """Overlap and volume metrics of one label from its confusion counts.

    Empty-mask policy (``R``: reference, ``P``: prediction):

    ===================  ================  =================  ===============
    metric               R and P empty     only R empty       only P empty
    ===================  ================  =================  ===============
    dice, iou            1.0               0.0                0.0
    precision            NaN (0/0)         0.0                NaN (0/0)
    recall               NaN (0/0)         NaN (0/0)          0.0
    volume_similarity    1.0               0.0                0.0
    rel_volume_diff      NaN (V_R = 0)     NaN (V_R = 0)      -1.0
    volumes (mL)         defined           defined            defined
    ===================  ================  =================  ===============

    ``specificity`` is NaN only when the reference covers the whole image. Nothing is
    ever infinite. ``volume_similarity`` = 1 - |V_P - V_R| / (V_P + V_R);
    ``volume_diff_ml`` = V_P - V_R; ``rel_volume_diff`` = (V_P - V_R) / V_R.

    >>> m = overlap_metrics(ConfusionCounts(tp=8, fp=2, fn=0, total=100), voxel_volume_ml=0.001)
    >>> round(m["dice"], 4), m["recall"], round(m["volume_diff_ml"], 6)
    (0.8889, 1.0, 0.002)
    """
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    n_ref, n_pred = tp + fn, tp + fp
    both_empty = n_ref == 0 and n_pred == 0
    volume_ref = n_ref * voxel_volume_ml
    volume_pred = n_pred * voxel_volume_ml
    return {
        "dice": 1.0 if both_empty else 2.0 * tp / (2 * tp + fp + fn),
        "iou": 1.0 if both_empty else tp / (tp + fp + fn),
        "precision": _ratio(tp, n_pred),
        "recall": _ratio(tp, n_ref),
        "specificity": _ratio(tn, tn + fp),
        "volume_similarity": 1.0 if both_empty else 1.0 - abs(n_pred - n_ref) / (n_pred + n_ref),
        "volume_ref_ml": volume_ref,
        "volume_pred_ml": volume_pred,
        "volume_diff_ml": volume_pred - volume_ref,
        "abs_volume_diff_ml": abs(volume_pred - volume_ref),
        "rel_volume_diff": _ratio(n_pred - n_ref, n_ref),
    }
