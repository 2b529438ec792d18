"""Optimiser and learning-rate schedule: SGD Nesterov + poly decay (nnU-Net), or AdamW.

The schedule is a pure function of the epoch, so a resumed run sets the same rate.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from medseg.errors import ConfigError

__all__ = ["build_optimizer", "learning_rate_at"]


def build_optimizer(parameters: Iterable[torch.nn.Parameter], *, name: str = "sgd",
                    learning_rate: float = 0.01, weight_decay: float = 3e-5,
                    momentum: float = 0.99) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (default) or AdamW."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum, nesterov=True,
                               weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; use 'sgd' or 'adamw'")


def learning_rate_at(epoch: int, *, initial: float, epochs: int, schedule: str = "poly",
                     exponent: float = 0.9) -> float:
    """Learning rate for ``epoch`` (0-based) out of ``epochs``.

    >>> learning_rate_at(0, initial=0.01, epochs=10), round(learning_rate_at(5, initial=0.01, epochs=10), 6)
    (0.01, 0.005359)
    """
    if schedule == "constant":
        return float(initial)
    if schedule == "poly":
        return float(initial * (1.0 - min(epoch, epochs) / epochs) ** exponent)
    raise ConfigError(f"unknown lr_schedule {schedule!r}; use 'poly' or 'constant'")
