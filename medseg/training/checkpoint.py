"""Checkpoints: ``last.pt`` every epoch and ``best.pt`` on a new best EMA Dice; resume from last.

A checkpoint holds model, optimiser, epoch, history and best metric, written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from medseg.atomic import atomic_path
from medseg.errors import TrainingError

__all__ = ["save_checkpoint", "load_checkpoint", "unwrap"]

log = logging.getLogger(__name__)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside a DistributedDataParallel wrapper."""
    return model.module if hasattr(model, "module") else model


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    epoch: int, state: dict[str, Any],
                    scaler: torch.amp.GradScaler | None = None) -> Path:
    """Write ``epoch`` (completed epochs), weights, optimiser, loss scaler and ``state`` atomically."""
    payload = {"epoch": int(epoch), "model": unwrap(model).state_dict(),
               "optimizer": optimizer.state_dict(), "state": state,
               "scaler": scaler.state_dict() if scaler is not None else None}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, *, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
    """Load weights (optimiser, fp16 loss scaler) from ``path``; returns ``{"epoch", "state"}``."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"{path}: no checkpoint to resume from; train without --resume first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        unwrap(model).load_state_dict(payload["model"])
        if optimizer is not None:
            optimizer.load_state_dict(payload["optimizer"])
        if scaler is not None and payload.get("scaler"):
            scaler.load_state_dict(payload["scaler"])
    except (RuntimeError, KeyError, EOFError) as exc:
        raise TrainingError(f"{path}: checkpoint does not fit this network/config ({exc}); "
                            "resume with the run's own config.yaml and plan.yaml") from exc
    log.info("loaded checkpoint %s (epoch %d)", path, payload["epoch"])
    return {"epoch": int(payload["epoch"]), "state": payload["state"]}
