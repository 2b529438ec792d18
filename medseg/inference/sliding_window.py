"""Memory-bounded sliding-window inference: MONAI windows, TTA, ensembling, bf16/AMP.

Large volumes run in z-slabs whose window grid equals the full volume's, so slabs change memory, not results.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medseg.errors import InvalidArgumentError

__all__ = ["WindowSettings", "resolve_device", "resolve_precision", "window_starts",
           "slab_plan", "sliding_window_probabilities"]

log = logging.getLogger(__name__)

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class WindowSettings:
    """How windows are cut, blended and computed."""

    patch_size: tuple[int, int, int]
    overlap: float = 0.5
    sw_batch_size: int = 1
    tta: bool = False
    precision: str = "fp32"
    progress: bool = False


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other names are passed to torch.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise InvalidArgumentError(f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from exc


def cpu_supports_bf16() -> bool:
    """True when oneDNN reports native bf16 kernels (AVX512-BF16 / AMX) on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Pick the compute precision: ``auto`` is fp16 AMP on CUDA, bf16 on capable CPUs, else fp32."""
    if precision not in _PRECISIONS:
        raise InvalidArgumentError(f"precision {precision!r} is not one of {list(_PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Window start indices along one axis, exactly as MONAI's ``dense_patch_slices`` places them.

    >>> window_starts(100, 64, 0.5)
    [0, 32, 36]
    >>> window_starts(40, 64, 0.5)
    [0]
    """
    if size <= patch:
        return [0]
    step = max(int(patch * (1 - overlap)), 1)
    starts = []
    for index in range(math.ceil(size / step)):
        start = index * step
        starts.append(min(start, size - patch))
        if start + patch >= size:
            break
    return starts


def slab_plan(size: int, patch: int, overlap: float, depth: int) -> list[tuple[int, int, int, int]]:
    """Split axis ``size`` into output slabs of ``depth`` and the input crop each needs.

    Returns ``(out_start, out_stop, crop_start, crop_stop)``: the crop spans every
    window of the full-volume grid touching the output slab, so MONAI cuts the
    same windows inside the crop and the slab's values equal a full-volume run.

    >>> slab_plan(100, 64, 0.5, 50)
    [(0, 50, 0, 100), (50, 100, 0, 100)]
    >>> slab_plan(200, 32, 0.5, 64)[1]
    (64, 128, 48, 144)
    """
    starts = window_starts(size, patch, overlap)
    if len(starts) == 1 or depth >= size:
        return [(0, size, 0, size)]
    plan = []
    for out_start in range(0, size, depth):
        out_stop = min(out_start + depth, size)
        touching = [s for s in starts if s < out_stop and s + patch > out_start]
        plan.append((out_start, out_stop, min(touching), max(touching) + patch))
    return plan


def _flip_sets(spatial_axes: Sequence[int], tta: bool) -> list[tuple[int, ...]]:
    if not tta:
        return [()]
    axes = list(spatial_axes)
    return [combo for r in range(len(axes) + 1) for combo in itertools.combinations(axes, r)]


class _WindowPredictor:
    """Callable for MONAI: softmax probabilities of one window batch, averaged over models and flips."""

    def __init__(self, models: Sequence[torch.nn.Module], settings: WindowSettings,
                 device: torch.device, spatial_dims: int) -> None:
        self.models = list(models)
        self.settings = settings
        self.device = device
        self.spatial_dims = spatial_dims
        # A 2D network sees windows of shape (px, py, 1); mirror only the in-plane axes.
        self.flips = _flip_sets(range(2, 2 + spatial_dims), settings.tta)
        self.precision = settings.precision

    def _forward(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        if self.spatial_dims == 2:
            batch = batch[..., 0]
        with _autocast(self.precision, self.device):
            logits = model(batch)
        if isinstance(logits, (list, tuple)):
            logits = logits[0]
        if logits.dim() == batch.dim() + 1:  # deep-supervision heads stacked on dim 1
            logits = logits[:, 0]
        probabilities = torch.softmax(logits.float(), dim=1)
        return probabilities[..., None] if self.spatial_dims == 2 else probabilities

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        windows = windows.to(self.device)
        total = None
        for model in self.models:
            for axes in self.flips:
                flipped = torch.flip(windows, axes) if axes else windows
                try:
                    probabilities = self._forward(model, flipped)
                except RuntimeError as exc:
                    if self.precision == "fp32" or "out of memory" in str(exc).lower():
                        raise
                    log.warning("%s autocast failed on %s (%s); falling back to fp32",
                                self.precision, self.device, exc)
                    self.precision = "fp32"
                    probabilities = self._forward(model, flipped)
                if axes:
                    probabilities = torch.flip(probabilities, axes)
                total = probabilities if total is None else total + probabilities
        return total / (len(self.models) * len(self.flips))


def _slabs(plan: list[tuple[int, int, int, int]], progress: bool) -> Iterator[tuple[int, int, int, int]]:
    if not progress or len(plan) == 1:
        yield from plan
        return
    from tqdm.auto import tqdm

    yield from tqdm(plan, desc="slabs", unit="slab", leave=False)


def sliding_window_probabilities(
    image: np.ndarray,
    models: Sequence[torch.nn.Module],
    *,
    n_classes: int,
    settings: WindowSettings,
    device: torch.device,
    spatial_dims: int = 3,
    slab_depth: int | None = None,
    out_dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Class probabilities of a preprocessed ``(C, X, Y, Z)`` image, shape ``(X, Y, Z, n_classes)``.

    Windows are blended with MONAI's Gaussian importance map. Accumulation
    stays on the CPU (``device="cpu"`` in MONAI) and, when ``slab_depth`` is
    given, runs one z-slab at a time so that accumulators never exceed the slab.

    Parameters
    ----------
    image : numpy.ndarray
        Network input, channels first, float32.
    models : sequence of torch.nn.Module
        Networks in eval mode on ``device``; their softmax outputs are averaged.
    n_classes : int
        Output channels of every model.
    settings : WindowSettings
        Patch size, overlap, batch of windows, TTA, precision.
    device : torch.device
        Where the networks run.
    spatial_dims : int
        3 for volumetric networks, 2 for slice networks (``patch_size[2] == 1``).
    slab_depth : int, optional
        Output slab thickness along z; ``None`` processes the volume at once.
    out_dtype : numpy dtype
        Storage type of the returned probabilities (float16 halves memory).
    """
    from monai.inferers import sliding_window_inference

    if image.ndim != 4:
        raise InvalidArgumentError(f"image must be (C, X, Y, Z), got shape {image.shape}")
    patch = tuple(int(p) for p in settings.patch_size)
    size_z = image.shape[3]
    plan = slab_plan(size_z, patch[2], settings.overlap, slab_depth or size_z)
    window_fn = _WindowPredictor(models, settings, device, spatial_dims)
    out = np.empty(image.shape[1:] + (n_classes,), dtype=out_dtype)
    for out_start, out_stop, crop_start, crop_stop in _slabs(plan, settings.progress):
        crop = torch.from_numpy(np.ascontiguousarray(image[None, ..., crop_start:crop_stop]))
        with torch.inference_mode():
            probabilities = sliding_window_inference(
                crop, roi_size=patch, sw_batch_size=settings.sw_batch_size, predictor=window_fn,
                overlap=settings.overlap, mode="gaussian", sw_device=device, device="cpu",
                progress=settings.progress and len(plan) == 1,
            )
        keep = probabilities[0, ..., out_start - crop_start:out_stop - crop_start]
        out[..., out_start:out_stop, :] = keep.permute(1, 2, 3, 0).numpy()
        del probabilities, crop
    return out
