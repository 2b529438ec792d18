"""Segmentation losses: Dice + cross-entropy (default), Dice + focal, Tversky + CE, with deep supervision.

Deep-supervision heads are weighted 1, 1/2, 1/4, ... and normalised to sum to one, as in nnU-Net.
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, DiceLoss, FocalLoss, TverskyLoss

from medseg.errors import ConfigError

__all__ = ["SegmentationLoss", "build_loss", "deep_supervision_weights"]


def deep_supervision_weights(n_heads: int) -> list[float]:
    """nnU-Net's weights: 1/2**i per head (full resolution first), normalised to sum 1.

    >>> deep_supervision_weights(3)
    [0.5714285714285714, 0.2857142857142857, 0.14285714285714285]
    """
    raw = [0.5**i for i in range(n_heads)]
    return [w / sum(raw) for w in raw]


class _DiceFocal(torch.nn.Module):
    # MONAI's DiceFocalLoss applies a sigmoid in its focal term; multi-class needs softmax.
    def __init__(self, dice_options: dict) -> None:
        super().__init__()
        self.dice = DiceLoss(**dice_options)
        self.focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + self.focal(logits, target)


class _TverskyCE(torch.nn.Module):
    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.tversky = TverskyLoss(to_onehot_y=True, softmax=True, include_background=False,
                                   alpha=alpha, beta=1.0 - alpha, batch=True)
        self.ce = torch.nn.CrossEntropyLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.tversky(logits, target) + self.ce(logits, target[:, 0].long())


class SegmentationLoss(torch.nn.Module):
    """A region + voxel loss applied to each deep-supervision head of the network output.

    ``forward(output, target)``: ``output`` is ``(B, C, *S)`` logits, or ``(B, H, C, *S)``
    with ``H`` heads (MONAI DynUNet in training mode); ``target`` is ``(B, 1, *S)`` labels.
    """

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.ndim == target.ndim:
            return self.base(output.float(), target)
        heads = torch.unbind(output, dim=1)
        weights = deep_supervision_weights(len(heads))
        return sum(w * self.base(h.float(), target) for w, h in zip(weights, heads))


def build_loss(name: str, *, tversky_alpha: float = 0.3) -> SegmentationLoss:
    """``dice_ce`` (nnU-Net default), ``dice_focal`` or ``tversky_ce`` (small lesions).

    Dice terms exclude background and use batch Dice; CE/focal cover all classes.
    """
    common = {"to_onehot_y": True, "softmax": True, "include_background": False, "batch": True,
              "smooth_nr": 1e-5, "smooth_dr": 1e-5}
    if name == "dice_ce":
        base: torch.nn.Module = DiceCELoss(**common)
    elif name == "dice_focal":
        base = _DiceFocal(common)
    elif name == "tversky_ce":
        base = _TverskyCE(tversky_alpha)
    else:
        raise ConfigError(f"unknown loss {name!r}; use dice_ce, dice_focal or tversky_ce")
    return SegmentationLoss(base)
