"""Validation during training: sliding-window inference on whole cached volumes, Dice per label.

Uses ``monai.inferers.sliding_window_inference`` (Gaussian weighting); 2D networks run slice by slice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from medseg.data.cache import CachedCase

__all__ = ["predict_case", "dice_per_label", "validate", "ema_update"]


@torch.no_grad()
def predict_case(model: torch.nn.Module, image: np.ndarray, *, patch_size: Sequence[int],
                 overlap: float = 0.5, device: torch.device | str = "cpu",
                 autocast: contextlib.AbstractContextManager | None = None,
                 sw_batch_size: int = 2) -> np.ndarray:
    """Label map (X, Y, Z) of a preprocessed image (C, X, Y, Z) by sliding-window argmax."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device)
    with autocast or contextlib.nullcontext():
        if len(patch_size) == 3:
            logits = sliding_window_inference(tensor[None], tuple(patch_size), sw_batch_size, model,
                                              overlap=overlap, mode="gaussian")[0]
            return logits.argmax(0).cpu().numpy().astype(np.uint8)
        slices = tensor.permute(3, 0, 1, 2)  # (Z, C, X, Y): slices are the batch
        logits = sliding_window_inference(slices, tuple(patch_size), max(sw_batch_size, 8), model,
                                          overlap=overlap, mode="gaussian")
        return logits.argmax(1).permute(1, 2, 0).cpu().numpy().astype(np.uint8)


def dice_per_label(prediction: np.ndarray, reference: np.ndarray, labels: Sequence[int]
                   ) -> dict[int, float]:
    """Dice of each label; NaN where both masks are empty (excluded from means).

    >>> dice_per_label(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), [1, 2, 3])
    {1: 0.6666666666666666, 2: 0.6666666666666666, 3: nan}
    """
    out = {}
    for value in labels:
        p, r = prediction == value, reference == value
        total = int(p.sum()) + int(r.sum())
        out[int(value)] = float("nan") if total == 0 else 2.0 * int((p & r).sum()) / total
    return out


def validate(model: torch.nn.Module, cases: Sequence[CachedCase], *, patch_size: Sequence[int],
             labels: Sequence[int], overlap: float = 0.5, device: torch.device | str = "cpu",
             autocast: contextlib.AbstractContextManager | None = None) -> dict[int, float]:
    """Mean Dice per foreground label over the validation cases (model put in eval mode)."""
    was_training = model.training
    model.eval()
    scores: dict[int, list[float]] = {int(v): [] for v in labels if v != 0}
    for case in cases:
        image, reference = case.load(mmap=True)
        prediction = predict_case(model, image, patch_size=patch_size, overlap=overlap,
                                  device=device, autocast=autocast)
        for value, dice in dice_per_label(prediction, np.asarray(reference), list(scores)).items():
            if not np.isnan(dice):
                scores[value].append(dice)
    model.train(was_training)
    return {v: float(np.mean(s)) if s else float("nan") for v, s in scores.items()}


def ema_update(previous: float | None, value: float, *, momentum: float = 0.9) -> float:
    """Exponential moving average as nnU-Net tracks validation Dice (``None`` starts it).

    >>> ema_update(None, 0.5), ema_update(0.5, 1.0)
    (0.5, 0.55)
    """
    return float(value) if previous is None else float(momentum * previous + (1 - momentum) * value)
