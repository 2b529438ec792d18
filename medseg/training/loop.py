"""One training epoch: forward under autocast, deep-supervised loss, clipped backward, step.

Also picks the mixed precision: CUDA AMP, CPU bf16 autocast when the CPU has native bf16, else fp32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

__all__ = ["Precision", "cpu_bf16_supported", "choose_precision", "train_epoch"]

log = logging.getLogger(__name__)


def cpu_bf16_supported() -> bool:
    """True when oneDNN reports native bf16 on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """Autocast device/dtype (``dtype=None`` for fp32) and whether a GradScaler is needed."""

    device_type: str
    dtype: torch.dtype | None
    scaler: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes (a null context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def name(self) -> str:
        """``fp32``, ``bf16`` or ``fp16``."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def choose_precision(device: torch.device, *, cpu_bf16: str | bool = "auto",
                     cuda_amp: bool = True) -> Precision:
    """Mixed precision for ``device``: bf16/fp16 AMP on CUDA, bf16 autocast on capable CPUs."""
    if device.type == "cuda":
        if not cuda_amp:
            return Precision("cuda", None)
        if torch.cuda.is_bf16_supported():
            return Precision("cuda", torch.bfloat16)
        return Precision("cuda", torch.float16, scaler=True)
    supported = cpu_bf16_supported()
    if cpu_bf16 is True and not supported:
        log.warning("cpu_bf16: true, but this CPU has no native bf16; training in fp32")
    if (cpu_bf16 is True or cpu_bf16 == "auto") and supported:
        return Precision("cpu", torch.bfloat16)
    return Precision(device.type, None)


def train_epoch(model: torch.nn.Module, loader, *, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                precision: Precision, device: torch.device, grad_clip: float = 12.0,
                scaler: torch.amp.GradScaler | None = None, progress: bool = True,
                description: str = "train") -> float:
    """Train over every batch of ``loader`` once; returns the mean loss."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=description, disable=not progress, leave=False)
    for batch in bar:
        image = batch["image"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            output = model(image)
        loss = loss_fn(output, label)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        value = float(loss.detach())
        total, count = total + value, count + 1
        bar.set_postfix(loss=f"{value:.4f}")
    return total / max(count, 1)
