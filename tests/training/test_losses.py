"""Losses: nnU-Net deep-supervision weights, agreement with MONAI on one head, lesion options."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from medseg.errors import ConfigError
from medseg.training.losses import build_loss, deep_supervision_weights


def _case():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 1, 8, 8, 8), generator=generator)
    logits = torch.randn(2, 3, 8, 8, 8, generator=generator)
    return logits, target


def test_weights_halve_and_sum_to_one():
    weights = deep_supervision_weights(4)
    assert weights == pytest.approx([8 / 15, 4 / 15, 2 / 15, 1 / 15])


def test_single_head_equals_monai_dice_ce():
    logits, target = _case()
    reference = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                           smooth_nr=1e-5, smooth_dr=1e-5)(logits, target)
    torch.testing.assert_close(build_loss("dice_ce")(logits, target), reference)


def test_deep_supervision_is_the_weighted_sum_of_heads():
    logits, target = _case()
    other = torch.flip(logits, dims=[2])
    loss = build_loss("dice_ce")
    stacked = torch.stack([logits, other], dim=1)
    expected = 2 / 3 * loss(logits, target) + 1 / 3 * loss(other, target)
    torch.testing.assert_close(loss(stacked, target), expected)


@pytest.mark.parametrize("name", ["dice_ce", "dice_focal", "tversky_ce"])
def test_perfect_prediction_scores_better(name):
    logits, target = _case()
    perfect = torch.nn.functional.one_hot(target[:, 0], 3).permute(0, 4, 1, 2, 3).float() * 20
    loss = build_loss(name)
    assert loss(perfect, target) < 0.01 < loss(logits, target)


def test_unknown_loss():
    with pytest.raises(ConfigError, match="dice_ce, dice_focal or tversky_ce"):
        build_loss("dice")
