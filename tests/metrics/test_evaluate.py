"""evaluate(): hand-computed overlaps, every empty-mask case, label handling, 2D, geometry checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import surface_distance as sd

from medseg import Volume
from medseg.demo import make_phantom
from medseg.errors import GeometryMismatchError, InvalidArgumentError
from medseg.metrics import EmptyPolicy, evaluate, metric_columns, summarize

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _boxes():
    ref = np.zeros((20, 20, 10), np.uint8)
    ref[2:12, 2:12, 2:6] = 1  # 400 voxels
    pred = np.zeros_like(ref)
    pred[4:12, 2:12, 2:6] = 1  # 320 voxels, all inside ref
    return pred, ref


def test_overlap_values_by_hand():
    pred, ref = _boxes()
    row = evaluate(pred, ref, spacing_mm=(0.5, 0.5, 2.0)).iloc[0]
    tp, fp, fn, total = 320, 0, 80, 4000
    assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert row["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert row["precision"] == 1.0
    assert row["recall"] == pytest.approx(0.8)
    assert row["specificity"] == pytest.approx((total - 400) / (total - 400))
    assert row["volume_ref_ml"] == pytest.approx(400 * 0.5 / 1000)
    assert row["volume_pred_ml"] == pytest.approx(320 * 0.5 / 1000)
    assert row["volume_diff_ml"] == pytest.approx(-0.04)
    assert row["abs_volume_diff_ml"] == pytest.approx(0.04)
    assert row["rel_volume_diff"] == pytest.approx(-0.2)
    assert row["volume_similarity"] == pytest.approx(1 - 80 / 720)
    # The only boundary difference: ref's low-i face lies 2 voxels (1 mm) from pred.
    assert row["hd_mm"] == pytest.approx(1.0)


def test_volume_spacing_and_geometry_come_from_the_volume():
    case = make_phantom(shape=(32, 32, 24), spacing_mm=(1.5, 1.5, 2.0), seed=3)
    table = evaluate(case.labels, case.labels)
    assert table["label_name"].tolist() == ["liver", "spleen", "kidney"]
    assert (table["dice"] == 1.0).all() and (table["hd95_mm"] == 0.0).all()
    counts = np.bincount(case.labels.array.ravel(), minlength=4)[1:]
    np.testing.assert_allclose(table["volume_ref_ml"], counts * 1.5 * 1.5 * 2.0 / 1000)
    other = case.labels.replace(affine=case.labels.affine @ np.diag([1, 1, 1.2, 1]))
    with pytest.raises(GeometryMismatchError, match="same voxel grid"):
        evaluate(other, case.labels)


def test_multilabel_matches_per_label_reference():
    case = make_phantom(shape=(40, 40, 32), spacing_mm=(1.0, 1.2, 2.0), seed=1)
    ref = case.labels.array
    pred = np.roll(ref, 1, axis=0)
    table = evaluate(pred, ref, spacing_mm=(1.0, 1.2, 2.0))
    for _, row in table.iterrows():
        d = sd.compute_surface_distances(ref == row["label"], pred == row["label"], (1.0, 1.2, 2.0))
        assert row["hd95_mm"] == pytest.approx(sd.compute_robust_hausdorff(d, 95), rel=1e-9)
        assert row["dice"] == pytest.approx(sd.compute_dice_coefficient(ref == row["label"],
                                                                        pred == row["label"]))


@pytest.mark.parametrize(("pred_on", "ref_on"), [(False, False), (True, False), (False, True)])
def test_empty_mask_policy(pred_on, ref_on):
    empty = np.zeros((8, 8, 8), np.uint8)
    blob = empty.copy()
    blob[2:5, 2:5, 2:5] = 1
    pred, ref = (blob if pred_on else empty), (blob if ref_on else empty)
    with np.errstate(all="raise"):  # no division warnings either
        row = evaluate(pred, ref, spacing_mm=(1, 1, 1), labels=[1]).iloc[0]
    assert bool(row["ref_empty"]) is not ref_on and bool(row["pred_empty"]) is not pred_on
    numeric = row.drop(["case_id", "label", "label_name", "ref_empty", "pred_empty"]).astype(float)
    assert not np.isinf(numeric).any()
    if not pred_on and not ref_on:
        assert row["dice"] == 1.0 and row["iou"] == 1.0 and row["volume_similarity"] == 1.0
        assert np.isnan(row["precision"]) and np.isnan(row["recall"])
        assert np.isnan(row["hd95_mm"]) and np.isnan(row["nsd_1mm"])
    else:
        assert row["dice"] == 0.0 and row["iou"] == 0.0
        assert np.isnan(row["hd_mm"]) and row["nsd_1mm"] == 0.0
        if ref_on:
            assert row["recall"] == 0.0 and np.isnan(row["precision"]) and row["rel_volume_diff"] == -1.0
        else:
            assert row["precision"] == 0.0 and np.isnan(row["recall"]) and np.isnan(row["rel_volume_diff"])


def test_empty_policy_values_are_configurable():
    empty = np.zeros((10, 10, 4), np.uint8)
    blob = empty.copy()
    blob[1:3, 1:3, 1:3] = 1
    policy = EmptyPolicy(both_empty_distance_mm=0.0, both_empty_nsd=1.0, one_empty_distance_mm="diagonal")
    both = evaluate(empty, empty, spacing_mm=(1, 1, 2), labels=[1], empty_policy=policy).iloc[0]
    assert both["hd95_mm"] == 0.0 and both["nsd_1mm"] == 1.0
    one = evaluate(blob, empty, spacing_mm=(1, 1, 2), labels=[1], empty_policy=policy).iloc[0]
    assert one["hd95_mm"] == pytest.approx(np.sqrt(10**2 + 10**2 + 8**2))
    with pytest.raises(InvalidArgumentError, match="finite"):
        EmptyPolicy(one_empty_distance_mm=float("inf"))


def test_labels_absent_from_one_side_and_named_labels():
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[1:4, 1:4, 1:4] = 1
    ref[6:9, 6:9, 6:9] = 2
    pred = np.where(ref == 1, 1, 0).astype(np.uint8)
    pred[9:11, 1:3, 1:3] = 3
    table = evaluate(pred, ref, spacing_mm=(1, 1, 1))
    assert table["label"].tolist() == [1, 2, 3]
    assert table.set_index("label")["dice"].tolist() == [1.0, 0.0, 0.0]
    named = evaluate(pred, ref, spacing_mm=(1, 1, 1), labels={2: "spleen", 5: "absent"})
    assert named["label_name"].tolist() == ["spleen", "absent"]
    assert named.iloc[1]["dice"] == 1.0 and bool(named.iloc[1]["ref_empty"])


def test_single_voxel_and_bool_inputs():
    ref = np.zeros((5, 5, 5), bool)
    ref[2, 2, 2] = True
    row = evaluate(ref, ref, spacing_mm=(0.5, 0.5, 3.0)).iloc[0]
    assert row["dice"] == 1.0 and row["hd_mm"] == 0.0 and row["volume_ref_ml"] == pytest.approx(0.00075)


def test_two_d_arrays():
    ref = np.zeros((30, 30), np.uint8)
    ref[5:20, 5:15] = 1
    pred = np.roll(ref, 3, axis=1)
    table = evaluate(pred, ref, spacing_mm=(0.8, 0.5))
    row = table.iloc[0]
    assert "area_ref_mm2" in table.columns and "volume_ref_ml" not in table.columns
    assert row["area_ref_mm2"] == pytest.approx(150 * 0.4)
    assert row["hd_mm"] == pytest.approx(1.5)
    d = sd.compute_surface_distances(ref.astype(bool), pred.astype(bool), (0.8, 0.5))
    assert row["hd95_mm"] == pytest.approx(sd.compute_robust_hausdorff(d, 95))


def test_metric_subset_and_tolerances():
    pred, ref = _boxes()
    table = evaluate(pred, ref, spacing_mm=(1, 1, 1), metrics=["dice", "sensitivity", "nsd"],
                     nsd_tolerance_mm=[1.0, 2.5])
    assert list(table.columns) == ["case_id", "label", "label_name", "dice", "recall", "nsd_1mm",
                                   "nsd_2.5mm", "ref_empty", "pred_empty"]
    with pytest.raises(InvalidArgumentError, match="did you mean 'hd95_mm'"):
        evaluate(pred, ref, spacing_mm=(1, 1, 1), metrics=["hd95mm"])
    assert "nsd_2mm" in metric_columns(2.0)


def test_input_validation():
    pred, ref = _boxes()
    with pytest.raises(InvalidArgumentError, match="spacing_mm is required"):
        evaluate(pred, ref)
    with pytest.raises(GeometryMismatchError, match="shape"):
        evaluate(pred[:-1], ref, spacing_mm=(1, 1, 1))
    with pytest.raises(InvalidArgumentError, match="surface must be"):
        evaluate(pred, ref, spacing_mm=(1, 1, 1), surface="mesh")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="non-integer"):
        evaluate(pred * 0.5, ref, spacing_mm=(1, 1, 1))
    prob = Volume.from_array(np.zeros((4, 4, 4, 2), np.float32), kind="probabilities")
    with pytest.raises(InvalidArgumentError, match="probabilities"):
        evaluate(prob, prob)


def test_summarize_mean_sd_per_label():
    rows = pd.DataFrame({"case_id": ["a", "b", "a", "b"], "label_name": ["liver", "liver", "spleen", "spleen"],
                         "dice": [0.8, 0.9, 0.5, np.nan], "ref_empty": [False] * 4})
    summary = summarize(rows)
    assert summary.loc["liver", "dice_mean"] == pytest.approx(0.85)
    assert summary.loc["liver", "dice_sd"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert summary.loc["spleen", "dice_n"] == 1
    assert "ref_empty_mean" not in summary.columns
