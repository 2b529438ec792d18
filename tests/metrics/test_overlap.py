"""Overlap metrics from confusion counts: hand-computed values and the empty-mask table."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.metrics import ConfusionCounts, confusion_counts, overlap_metrics


def test_counts_of_crops_keep_true_negatives_of_the_full_image():
    pred = np.array([[1, 1, 0], [0, 0, 0]])
    ref = np.array([[1, 0, 1], [0, 0, 0]])
    counts = confusion_counts(pred, ref, total=100)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (1, 1, 1, 97)


def test_hand_computed_values():
    m = overlap_metrics(ConfusionCounts(tp=30, fp=10, fn=20, total=1000), voxel_volume_ml=0.002)
    assert m["dice"] == pytest.approx(60 / 90)
    assert m["iou"] == pytest.approx(30 / 60)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.6)
    assert m["specificity"] == pytest.approx(940 / 950)
    assert m["volume_similarity"] == pytest.approx(1 - 10 / 90)
    assert m["volume_ref_ml"] == pytest.approx(0.1) and m["volume_pred_ml"] == pytest.approx(0.08)
    assert m["volume_diff_ml"] == pytest.approx(-0.02) and m["abs_volume_diff_ml"] == pytest.approx(0.02)
    assert m["rel_volume_diff"] == pytest.approx(-0.2)


@pytest.mark.parametrize(("counts", "expected"), [
    (ConfusionCounts(0, 0, 0, 10), {"dice": 1.0, "iou": 1.0, "precision": np.nan, "recall": np.nan,
                                    "volume_similarity": 1.0, "rel_volume_diff": np.nan}),
    (ConfusionCounts(0, 4, 0, 10), {"dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": np.nan,
                                    "volume_similarity": 0.0, "rel_volume_diff": np.nan}),
    (ConfusionCounts(0, 0, 4, 10), {"dice": 0.0, "iou": 0.0, "precision": np.nan, "recall": 0.0,
                                    "volume_similarity": 0.0, "rel_volume_diff": -1.0}),
    (ConfusionCounts(10, 0, 0, 10), {"specificity": np.nan, "dice": 1.0}),
])
def test_empty_mask_table(counts, expected):
    m = overlap_metrics(counts, voxel_volume_ml=1.0)
    assert not any(np.isinf(v) for v in m.values())
    for key, value in expected.items():
        if np.isnan(value):
            assert np.isnan(m[key]), key
        else:
            assert m[key] == value, key
