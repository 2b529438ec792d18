"""AUROC/AUPRC/best Dice/FPR threshold against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from medseg.anomaly.evaluation import auprc, auroc, best_dice, threshold_at_fpr, voxel_scores
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume


@pytest.mark.parametrize("seed", range(6))
def test_auroc_auprc_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(20, 20, 5)), 1)  # rounding makes many ties
    truth = rng.random(scores.shape) < 0.05 + 0.3 * (scores > 1.0)
    assert auroc(scores, truth) == pytest.approx(roc_auc_score(truth.ravel(), scores.ravel()), abs=1e-12)
    assert auprc(scores, truth) == pytest.approx(
        average_precision_score(truth.ravel(), scores.ravel()), abs=1e-12)


def test_mask_restricts_voxels_like_sklearn_on_the_subset():
    rng = np.random.default_rng(1)
    scores, truth = rng.random((8, 8, 8)), rng.random((8, 8, 8)) < 0.2
    mask = rng.random((8, 8, 8)) < 0.5
    assert auroc(scores, truth, mask=mask) == pytest.approx(roc_auc_score(truth[mask], scores[mask]))
    assert auprc(scores, truth, mask=mask) == pytest.approx(
        average_precision_score(truth[mask], scores[mask]))


def test_hand_computed_values_and_degenerate_cases():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    truth = np.array([1, 0, 1, 0])
    # Pairs (pos, neg): (0.9,0.8) (0.9,0.1) (0.7,0.1) ranked right, (0.7,0.8) wrong -> 3/4.
    assert auroc(scores, truth) == 0.75
    # Precision at recall 1/2 is 1, at recall 1 is 2/3 -> AP = 0.5 * 1 + 0.5 * 2/3.
    assert auprc(scores, truth) == pytest.approx(0.5 + 1 / 3)
    assert np.isnan(auroc(scores, np.zeros(4)))
    assert np.isnan(auprc(scores, np.zeros(4)))
    assert auroc(np.ones(4), truth) == 0.5  # all tied: chance


def test_best_dice_brute_force():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(300), 2)
    truth = rng.random(300) < scores * 0.5
    brute = max(2 * np.sum((scores >= t) & truth) / (np.sum(scores >= t) + truth.sum())
                for t in np.unique(scores))
    dice, threshold = best_dice(scores, truth)
    assert dice == pytest.approx(brute)
    assert 2 * np.sum((scores >= threshold) & truth) / (np.sum(scores >= threshold) + truth.sum()) \
        == pytest.approx(dice)


def test_threshold_at_fpr_keeps_the_false_positive_fraction():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=10_000)
    for fpr in (0.001, 0.01, 0.2):
        t = threshold_at_fpr(normal, fpr)
        assert np.mean(normal > t) <= fpr
        assert np.mean(normal >= t) > fpr - 1e-4  # the next lower value would exceed it
    with pytest.raises(InvalidArgumentError):
        threshold_at_fpr(normal, 1.5)


def test_voxel_scores_pools_cases_and_rejects_bad_input():
    a = Volume.from_array(np.zeros((4, 4, 4)))
    truth = a.with_array(np.zeros((4, 4, 4), np.uint8))
    hit = truth.array.copy()
    hit[1, 1, 1] = 1
    score = a.array.copy()
    score[1, 1, 1] = 5.0
    result = voxel_scores([a.with_array(score), a], [truth.with_array(hit), truth])
    assert result["auroc"] == 1.0 and result["auprc"] == 1.0 and result["best_dice"] == 1.0
    with pytest.raises(InvalidArgumentError):
        auroc(np.zeros(3), np.zeros(4))
    with pytest.raises(InvalidArgumentError):
        auroc(np.array([0.0, np.nan]), np.array([0, 1]))


def test_lesion_f1_at_fp_rate_picks_the_operating_point():
    from medseg.anomaly.evaluation import lesion_f1_at_fp_rate

    grid = Volume.from_array(np.zeros((20, 20, 20), np.float32), spacing_mm=(1.0, 1.0, 1.0))
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[12:16, 12:16, 12:16] = 1
    score = np.zeros((20, 20, 20), np.float32)
    score[2:6, 2:6, 2:6] = 0.9      # found at every threshold below 0.9
    score[12:16, 12:16, 12:16] = 0.4  # found only at low thresholds
    score[2:5, 14:18, 14:18] = 0.5    # false positive blob
    score[14:18, 2:5, 2:5] = 0.3      # second false positive blob
    maps = [grid.with_array(score)]
    refs = [grid.with_array(ref, kind="labels")]
    # t = 0.3: 2 TP, 2 FP (too many); t = 0.4: 2 TP, 1 FP -> F1 = 4 / 5.
    point = lesion_f1_at_fp_rate(maps, refs, fp_per_case=1.0, thresholds=[0.3, 0.4, 0.6])
    assert point["threshold"] == 0.4 and point["tp"] == 2 and point["fp"] == 1
    assert point["f1"] == pytest.approx(0.8)
    # At most 0 FP per case needs t = 0.6: 1 TP, 1 FN -> F1 = 2 / 3.
    point = lesion_f1_at_fp_rate(maps, refs, fp_per_case=0.0, thresholds=[0.3, 0.4, 0.6])
    assert point["threshold"] == 0.6 and point["f1"] == pytest.approx(2 / 3)
