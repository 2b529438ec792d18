"""Lesion-wise matching, summary and FROC on hand-built cases with known TP/FP/FN."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from medseg import Volume
from medseg.demo import make_phantom
from medseg.errors import GeometryMismatchError, InvalidArgumentError
from medseg.metrics import froc, lesion_metrics, lesion_summary


def _cube(mask: np.ndarray, corner, size: int, value=1) -> None:
    i, j, k = corner
    mask[i:i + size, j:j + size, k:k + size] = value


def _hand_case():
    """3 reference lesions; prediction hits two (one well, one poorly), misses one, adds two FPs."""
    ref = np.zeros((40, 40, 40), np.uint8)
    pred = np.zeros_like(ref)
    _cube(ref, (2, 2, 2), 6)      # ref1: 216 voxels, matched exactly
    _cube(pred, (2, 2, 2), 6)
    _cube(ref, (20, 2, 2), 6)     # ref2: matched with IoU 72/(216+72-72)... partially covered
    _cube(pred, (20, 2, 2), 2)    # pred: 8 voxels inside ref2 -> IoU 8/216
    _cube(ref, (2, 20, 20), 4)    # ref3: missed
    _cube(pred, (30, 30, 30), 3)  # FP: 27 voxels
    _cube(pred, (20, 30, 5), 1)   # FP: a single voxel
    return pred, ref


def test_hand_built_counts_iou_threshold():
    pred, ref = _hand_case()
    table = lesion_metrics(pred, ref, spacing_mm=(1, 1, 1), match="iou", threshold=0.1)
    assert table["status"].value_counts().to_dict() == {"fn": 2, "fp": 3, "tp": 1}
    tp = table[table["status"] == "tp"].iloc[0]
    assert tp["iou"] == 1.0 and tp["dice"] == 1.0 and tp["volume_error_ml"] == 0.0
    # The 8-voxel hit of ref2 has IoU 8/216 < 0.1: a miss plus a false positive.
    summary = lesion_summary(table)
    assert (summary["tp"], summary["fp"], summary["fn"]) == (1, 3, 2)
    assert summary["f1"] == pytest.approx(2 * 1 / (2 * 1 + 3 + 2))
    assert summary["sensitivity"] == pytest.approx(1 / 3)
    assert summary["precision"] == pytest.approx(1 / 4)
    assert summary["fp_per_case"] == 3.0


def test_hand_built_counts_overlap_and_min_size():
    pred, ref = _hand_case()
    # "overlap" = fraction of the reference covered: 8/216 > 0.03 matches ref2.
    table = lesion_metrics(pred, ref, spacing_mm=(1, 1, 1), match="overlap", threshold=0.03)
    assert table["status"].value_counts().to_dict() == {"tp": 2, "fp": 2, "fn": 1}
    matched = table[(table["status"] == "tp") & (table["iou"] < 1)].iloc[0]
    assert matched["volume_error_ml"] == pytest.approx((8 - 216) / 1000)
    assert matched["dice"] == pytest.approx(2 * 8 / (216 + 8))
    # Dropping objects under 10 mm^3 at 2 mm voxels (8 mm^3 each) removes the single voxel.
    small = lesion_metrics(pred, ref, spacing_mm=(2, 2, 2), match="overlap", threshold=0.03,
                           min_size_mm3=10.0)
    assert small["status"].value_counts().to_dict() == {"tp": 2, "fp": 1, "fn": 1}


def test_one_to_one_matching_and_split_lesions():
    """One reference lesion covered by two predicted halves: one TP and one FP, never two TPs."""
    ref = np.zeros((20, 20, 20), bool)
    ref[2:12, 2:8, 2:8] = True
    pred = np.zeros_like(ref)
    pred[2:7, 2:8, 2:8] = True
    pred[8:12, 2:8, 2:8] = True
    table = lesion_metrics(pred, ref, spacing_mm=(1, 1, 1), threshold=0.3)
    assert table["status"].tolist() == ["tp", "fp"]
    assert table.iloc[0]["pred_id"] != table.iloc[1]["pred_id"]
    assert table.iloc[0]["iou"] == pytest.approx(5 / 10)


def test_size_bins_and_centroids_in_mm():
    case = make_phantom(shape=(48, 48, 40), spacing_mm=(1.5, 1.5, 2.0), seed=2, n_lesions=3)
    table = lesion_metrics(case.lesions, case.lesions)
    assert (table["status"] == "tp").all() and len(table) == 3
    for centre in case.lesion_centres_mm:
        distance = np.hypot.reduce(table[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].values
                                   - np.asarray(centre), axis=1)
        assert distance.min() < 1.5  # voxelised sphere centroid within a voxel of the centre
    for _, row in table.iterrows():
        low = float(re.match(r"(>=)?([0-9.]+)", row["size_bin"]).group(2))
        assert row["diameter_ref_mm"] >= low
    summary = lesion_summary(case.lesions, case.lesions)
    assert summary["f1"] == 1.0 and summary["mean_lesion_dice"] == 1.0
    assert any(key.startswith("sensitivity_") and key != "sensitivity" for key in summary)


def test_empty_cases():
    empty = np.zeros((10, 10, 10), bool)
    table = lesion_metrics(empty, empty, spacing_mm=(1, 1, 1))
    assert table.empty and "status" in table.columns
    summary = lesion_summary([empty, empty], [empty, empty], spacing_mm=(1, 1, 1))
    assert summary["tp"] == summary["fp"] == summary["fn"] == 0
    assert np.isnan(summary["f1"]) and summary["fp_per_case"] == 0.0 and summary["n_cases"] == 2


def test_two_d_lesions():
    ref = np.zeros((20, 20), np.uint8)
    ref[2:6, 2:6] = 1
    ref[10:12, 10:12] = 1
    pred = ref.copy()
    pred[10:12, 10:12] = 0
    table = lesion_metrics(pred, ref, spacing_mm=(0.5, 0.5), connectivity=4)
    assert sorted(table["status"]) == ["fn", "tp"]


def test_froc_known_points():
    """Lesion probabilities 0.9, 0.6, 0.3 and one FP blob at 0.5, in two cases."""
    ref_a = np.zeros((30, 30, 30), bool)
    prob_a = np.zeros((30, 30, 30), np.float32)
    for corner, p in (((2, 2, 2), 0.9), ((15, 2, 2), 0.6), ((2, 15, 2), 0.3)):
        _cube(ref_a, corner, 4, True)
        _cube(prob_a, corner, 4, p)
    _cube(prob_a, (20, 20, 20), 3, 0.5)
    ref_b = np.zeros((30, 30, 30), bool)
    prob_b = np.zeros((30, 30, 30), np.float32)
    _cube(prob_b, (5, 5, 5), 3, 0.95)  # an FP in a case without lesions
    points = froc([prob_a, prob_b], [ref_a, ref_b], thresholds=[0.2, 0.4, 0.55, 0.7, 0.92],
                  spacing_mm=(1, 1, 1))
    assert points["threshold"].tolist() == [0.2, 0.4, 0.55, 0.7, 0.92]
    np.testing.assert_allclose(points["sensitivity"], [1.0, 2 / 3, 2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(points["fp_per_case"], [1.0, 1.0, 0.5, 0.5, 0.5])
    assert points["tp"].tolist() == [3, 2, 2, 1, 0]


def test_froc_accepts_volumes():
    case = make_phantom(shape=(32, 32, 32), spacing_mm=(2, 2, 2), seed=4, n_lesions=2)
    prob = case.lesions.with_array(case.lesions.array * 0.8, kind="probabilities")
    points = froc(prob, case.lesions)
    assert points["sensitivity"].iloc[0] == 1.0 and points["sensitivity"].iloc[-1] == 0.0
    assert (points["fp_per_case"] == 0).all()


def test_validation():
    a = np.zeros((5, 5, 5), bool)
    with pytest.raises(InvalidArgumentError, match="match"):
        lesion_metrics(a, a, spacing_mm=(1, 1, 1), match="centroid")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="spacing_mm"):
        lesion_metrics(a, a)
    with pytest.raises(GeometryMismatchError):
        lesion_metrics(a[:4], a, spacing_mm=(1, 1, 1))
    vol = Volume.from_array(a.astype(np.uint8), kind="labels")
    with pytest.raises(GeometryMismatchError):
        lesion_metrics(vol, vol.replace(affine=np.diag([2.0, 1, 1, 1])))
    with pytest.raises(InvalidArgumentError, match="lists of equal length"):
        lesion_summary([a], [a, a], spacing_mm=(1, 1, 1))
    assert isinstance(lesion_summary(pd.DataFrame(columns=["case_id", "status", "size_bin", "dice"]),
                                     n_cases=3)["fp_per_case"], float)


def test_froc_agrees_with_lesion_summary_at_each_threshold():
    case = make_phantom(shape=(40, 40, 32), spacing_mm=(1.5, 1.5, 2.0), seed=6, n_lesions=4)
    from scipy import ndimage

    prob = ndimage.gaussian_filter(case.lesions.array.astype(np.float32), 1.5)
    prob[30:34, 5:9, 5:9] = 0.45  # a false positive blob
    levels = [0.1, 0.3, 0.5, 0.7]
    points = froc(prob, case.lesions, thresholds=levels, min_size_mm3=5.0)
    for level, row in zip(levels, points.itertuples()):
        summary = lesion_summary(case.lesions.with_array(prob >= level), case.lesions, min_size_mm3=5.0)
        assert (row.tp, row.fp, row.fn) == (summary["tp"], summary["fp"], summary["fn"])
