"""Automatic training plan from a fingerprint: spacing, patch/batch size, network, normalisation.

nnU-Net v2's rules, written out; the plan is YAML the user can edit and pass back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medseg.config import load_yaml, save_yaml
from medseg.data.fingerprint import Fingerprint
from medseg.data.preprocess import NormalizationSpec
from medseg.errors import ConfigError
from medseg.models.registry import default_topology

__all__ = ["Plan", "make_plan", "save_plan", "load_plan", "plan_target_spacing",
           "estimate_memory_mb", "default_memory_budget_mb", "CPU_MEMORY_BUDGET_MB"]

log = logging.getLogger(__name__)

#: Activation-memory budget used to size patches when no CUDA device is present.
CPU_MEMORY_BUDGET_MB = 2500.0
_ANISOTROPY_RATIO = 3.0
_MAX_DATASET_FRACTION = 0.05  # a batch covers at most 5% of all dataset voxels (nnU-Net)
_FEATURE_MAPS_PER_STAGE = 12  # encoder + decoder, two convs each, conv/norm/activation outputs
_BACKWARD_FACTOR = 1.5


@dataclass(frozen=True)
class Plan:
    """A training configuration derived from a dataset; edit the YAML to override any value."""

    configuration: Literal["3d", "2d"]
    dataset_name: str
    labels: dict[int, str]
    channel_names: tuple[str, ...]
    target_spacing_mm: tuple[float, float, float]
    median_shape: tuple[int, int, int]
    patch_size: tuple[int, ...]
    batch_size: int
    normalization: NormalizationSpec
    model_name: str
    model_options: dict[str, Any] = field(default_factory=dict)
    orientation: str = "RAS"
    memory_budget_mb: float = CPU_MEMORY_BUDGET_MB

    @property
    def spatial_dims(self) -> int:
        """2 for the slice-wise configuration, 3 otherwise."""
        return len(self.patch_size)


def plan_target_spacing(spacings_mm: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]]
                        ) -> tuple[float, float, float]:
    """Median spacing, with nnU-Net's rule for strongly anisotropic data.

    When the coarsest axis is more than 3x coarser than the others and, at that
    spacing, has fewer than a third of the voxels of the others, that axis takes the
    10th percentile of its spacings (but not finer than the other axes).

    >>> plan_target_spacing([(1, 1, 2), (1, 1, 4), (1, 1, 3)], [(64, 64, 32)] * 3)
    (1.0, 1.0, 3.0)
    >>> plan_target_spacing([(1, 1, 5), (1, 1, 6), (1, 1, 8), (1, 1, 4), (1, 1, 7)],
    ...                     [(256, 256, 30)] * 5)
    (1.0, 1.0, 4.4)
    """
    spacings = np.asarray(spacings_mm, dtype=float)
    target = np.median(spacings, axis=0)
    sizes = np.median(np.asarray(shapes, float) * spacings, axis=0) / target
    worst = int(np.argmax(target))
    others = [a for a in range(len(target)) if a != worst]
    aniso_spacing = target[worst] > _ANISOTROPY_RATIO * max(target[others])
    aniso_voxels = sizes[worst] * _ANISOTROPY_RATIO < min(sizes[others])
    if aniso_spacing and aniso_voxels:
        coarse = float(np.percentile(spacings[:, worst], 10))
        target[worst] = max(coarse, max(target[others]))
    return tuple(round(float(s), 6) for s in target)  # type: ignore[return-value]


def estimate_memory_mb(patch_size: Sequence[int], batch_size: int, filters: Sequence[int],
                       strides: Sequence[Sequence[int]], *, bytes_per_value: int = 4) -> float:
    """Rough training activation memory (MiB) of a U-Net: feature maps kept for backward.

    >>> round(estimate_memory_mb((64, 64, 64), 2, [32, 64, 128, 256, 320],
    ...                          [[1, 1, 1]] + [[2, 2, 2]] * 4))
    1533
    """
    size = [int(s) for s in patch_size]
    values = 0
    for width, stride in zip(filters, strides):
        size = [max(s // st, 1) for s, st in zip(size, stride)]
        values += math.prod(size) * int(width)
    total = values * _FEATURE_MAPS_PER_STAGE * _BACKWARD_FACTOR * batch_size * bytes_per_value
    return total / 2**20


def default_memory_budget_mb() -> float:
    """80% of the first CUDA device's memory, else :data:`CPU_MEMORY_BUDGET_MB`."""
    import torch

    if torch.cuda.is_available():
        return 0.8 * torch.cuda.get_device_properties(0).total_memory / 2**20
    return CPU_MEMORY_BUDGET_MB


def _filters(n_stages: int, spatial_dims: int, base: int = 32) -> list[int]:
    top = 320 if spatial_dims == 3 else 512
    return [min(base * 2**i, top) for i in range(n_stages)]


def _divisors(strides: Sequence[Sequence[int]]) -> list[int]:
    return [math.prod(s[a] for s in strides) for a in range(len(strides[0]))]


def _fit_patch(median: list[int], spacing: list[float], budget_mb: float, batch: int,
               max_voxels: int) -> tuple[list[int], list[list[int]], list[list[int]]]:
    # Start from an isotropic-in-mm patch of ``max_voxels`` voxels, clipped to the median shape.
    inverse = np.asarray([1.0 / s for s in spacing])
    iso = inverse * (max_voxels / np.prod(inverse)) ** (1 / len(spacing))
    patch = [max(int(min(round(i), m)), 4) for i, m in zip(iso, median)]
    while True:
        kernels, strides = default_topology(patch, spacing_mm=spacing)
        divisor = _divisors(strides)
        patch = [int(math.ceil(p / d) * d) for p, d in zip(patch, divisor)]
        kernels, strides = default_topology(patch, spacing_mm=spacing)
        filters = _filters(len(strides), len(patch))
        if estimate_memory_mb(patch, batch, filters, strides) <= budget_mb or max(patch) <= 8:
            return patch, kernels, strides
        # Shrink the axis that is largest relative to the data, by one pooling step.
        axis = int(np.argmax(np.asarray(patch) / np.asarray(median)))
        patch[axis] = max(patch[axis] - _divisors(strides)[axis], 4)


def make_plan(
    fingerprint: Fingerprint,
    *,
    config: Literal["3d", "2d"] = "3d",
    memory_budget_mb: float | None = None,
    model_name: str = "dynunet",
    patch_size: Sequence[int] | None = None,
    batch_size: int | None = None,
    filters: Sequence[int] | None = None,
    target_spacing_mm: Sequence[float] | None = None,
    deep_supervision: bool = True,
) -> Plan:
    """Plan a 3D or 2D (axial slices) training from a dataset fingerprint.

    Parameters
    ----------
    fingerprint : Fingerprint
        From :func:`medseg.data.compute_fingerprint`.
    config : {"3d", "2d"}
        Full-resolution 3D patches, or 2D patches of slices along the third (k) axis.
    memory_budget_mb : float, optional
        Training activation budget; default :func:`default_memory_budget_mb`.
    model_name, patch_size, batch_size, filters, target_spacing_mm
        Overrides of the automatic choices.

    Returns
    -------
    Plan
        Target spacing (median, anisotropy rule), patch and batch size within the
        memory budget (batch >= 2, covering at most 5% of the dataset's voxels),
        per-axis pooling from :func:`medseg.models.registry.default_topology`, and
        CT normalisation (clip to foreground p0.5/p99.5, z-score with foreground
        mean/std) or per-image z-score for other modalities.
    """
    if config not in ("3d", "2d"):
        raise ConfigError(f"plan configuration must be '3d' or '2d', got {config!r}")
    budget = float(memory_budget_mb or default_memory_budget_mb())
    spacing3 = tuple(float(s) for s in (target_spacing_mm or plan_target_spacing(
        fingerprint.spacings_mm, fingerprint.shapes)))
    shapes = np.asarray(fingerprint.shapes, float) * np.asarray(fingerprint.spacings_mm) / spacing3
    median3 = [int(round(s)) for s in np.median(shapes, axis=0)]
    dims = 3 if config == "3d" else 2
    spacing, median = list(spacing3[:dims]), median3[:dims]
    n_voxels_total = float(np.sum(np.prod(shapes, axis=1)))
    min_batch = 2
    if patch_size is not None:
        if len(patch_size) != dims:
            raise ConfigError(f"patch_size {list(patch_size)} must have {dims} values for '{config}'")
        patch = [int(p) for p in patch_size]
    else:
        patch, _, _ = _fit_patch(median, spacing, budget, min_batch, 256**3 if dims == 3 else 2048**2)
    kernels, strides = default_topology(patch, spacing_mm=spacing,
                                        max_stages=len(filters) if filters else 6)
    widths = list(filters)[: len(strides)] if filters else _filters(len(strides), dims)
    if batch_size is None:
        per_sample = estimate_memory_mb(patch, 1, widths, strides)
        by_memory = int(budget // max(per_sample, 1e-6))
        by_data = int(_MAX_DATASET_FRACTION * n_voxels_total // math.prod(patch))
        batch_size = max(min_batch, min(by_memory, by_data))
    stats = fingerprint.intensity[0]
    if fingerprint.modality.upper() == "CT":
        normalization = NormalizationSpec("ct", stats.p00_5, stats.p99_5, stats.mean, stats.std)
    else:
        normalization = NormalizationSpec("zscore")
    options = {
        "spatial_dims": dims,
        "in_channels": len(fingerprint.channel_names),
        "out_channels": max(fingerprint.labels) + 1,
        "kernel_size": kernels,
        "strides": strides,
        "filters": widths,
        "deep_supervision": bool(deep_supervision),
        "deep_supr_num": max(1, min(3, len(strides) - 2)),
    }
    plan = Plan(config, fingerprint.dataset_name, dict(fingerprint.labels),
                tuple(fingerprint.channel_names), spacing3, tuple(median3), tuple(patch),
                int(batch_size), normalization, model_name, options, "RAS", budget)
    log.info("plan %s: spacing %s mm, patch %s, batch %d, %d stages", config, spacing3, patch,
             batch_size, len(strides))
    return plan


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write ``plan`` as editable YAML (atomically)."""
    return save_yaml(plan, path)


def load_plan(path: str | Path) -> Plan:
    """Read a plan YAML strictly (unknown keys are errors naming the nearest valid key)."""
    return load_yaml(path, Plan)
