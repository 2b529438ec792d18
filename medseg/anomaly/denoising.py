"""Training the unsupervised detector: a U-Net that removes synthetic corruptions from normal scans.

Denoising autoencoders for brain MRI (Kascenas et al., MIDL 2022): anomalies are what it "denoises".
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medseg.config import config_hash, to_dict
from medseg.data.preprocess import NormalizationSpec, preprocess_image
from medseg.errors import InvalidArgumentError, TrainingError
from medseg.volume import Volume

__all__ = ["DenoisingConfig", "blob_noise", "coarse_noise", "fit_normalization", "intensity_remap",
           "train_denoiser", "reconstruct"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DenoisingConfig:
    """Options of the denoising anomaly detector (strict YAML via ``medseg.config``).

    The network sees a corrupted normal scan (plus the atlas) and learns to
    restore it; on a new scan what it removes is the anomaly map. The
    corruptions are compact ``blobs`` (default) and/or ``coarse`` noise.

    ``blobs``: up to this many compact blobs per patch (ellipses/ellipsoids of
    ``blob_radius_mm``, soft one-voxel edge), half intensity offsets and half
    zero-mean textures, of magnitude 0.5-1.5 x ``blob_std`` (normalised
    units). Magnitudes are kept away from zero so faint normal texture is
    not learned as noise.
    ``noise_std`` / ``noise_resolution``: coarse Gaussian noise (Kascenas et
    al.), ``noise_resolution`` control points per patch axis, upsampled
    linearly; 0 (default) turns it off. On the synthetic benchmark blobs beat
    it (benchmarks/README.md, anomaly.py): Gaussian noise is mostly faint, so
    the network learns to remove the subject's own faint texture too.
    ``intensity_jitter``: SD (normalised units) of a random smooth intensity
    remapping of the clean scan (input and target alike): tissues of one
    intensity shift together, as organ enhancement varies between patients,
    so the network learns to keep a subject's own tissue levels where they
    differ from the atlas and to remove only compact deviations.
    ``residual``: the network predicts the correction added to its input
    (identity is free, so fine texture passes and only blobs are removed).
    ``norm_name`` is ``"batch"`` because instance normalisation erases the
    absolute intensity of a patch, which tells an offset apart.
    ``atlas``: the mean of the normal scans (they must share one frame) is a
    second input channel, so the network learns what belongs where.
    ``calibrate`` (atlas models): residuals are divided by their per-voxel
    RMS over the normal training scans, as a z-score divides by the spread.
    ``target_spacing_mm`` ``None`` keeps the first training scan's spacing.
    ``device``: ``"auto"`` trains on CUDA when there is a GPU, else the CPU
    (a seeded CPU run repeats bit for bit; corruptions are drawn on the CPU,
    so a GPU run sees the same batches).
    """

    spatial_dims: int = 2
    patch_size: tuple[int, ...] = (32, 32)
    batch_size: int = 16
    iterations: int = 1000
    learning_rate: float = 2e-3
    noise_std: float = 0.0
    noise_resolution: int = 8
    model_name: str = "unet_small"
    base_filters: int = 16
    norm_name: str = "batch"
    atlas: bool = True
    calibrate: bool = True
    blobs: int = 4
    blob_radius_mm: tuple[float, float] = (2.0, 12.0)
    blob_std: float = 0.4
    intensity_jitter: float = 0.08
    target_spacing_mm: tuple[float, float, float] | None = None
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    body_threshold: float | None = -500.0
    erode_mm: float = 3.0
    smoothing_mm: float = 2.0
    target_fpr: float = 0.005
    val_fraction: float = 0.2
    residual: bool = True
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise InvalidArgumentError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if len(self.patch_size) != self.spatial_dims:
            raise InvalidArgumentError(
                f"patch_size {self.patch_size} needs {self.spatial_dims} entries (spatial_dims)")
        if any(int(p) % 16 for p in self.patch_size):
            raise InvalidArgumentError(f"patch_size {self.patch_size}: each entry must be a multiple of 16")
        if self.blobs < 0 or self.noise_std < 0 or self.intensity_jitter < 0 or self.blob_std < 0:
            raise InvalidArgumentError("blobs, noise_std, blob_std and intensity_jitter must be >= 0")
        if self.blobs == 0 and self.noise_std == 0:
            raise InvalidArgumentError(
                "no corruption to learn from: set blobs > 0 (default 4) or noise_std > 0")
        low, high = self.blob_radius_mm
        if not 0 < low <= high:
            raise InvalidArgumentError(
                f"blob_radius_mm {self.blob_radius_mm} must be (min, max) with 0 < min <= max")


def fit_normalization(images: Sequence[np.ndarray], body_threshold: float | None,
                      clip_percentiles: tuple[float, float]) -> NormalizationSpec:
    """CT-style normalisation from body voxels: clip at percentiles, then mean/std (nnU-Net style)."""
    samples = []
    for array in images:
        values = array[array > body_threshold] if body_threshold is not None else array.ravel()
        samples.append(values[:: max(1, values.size // 200_000)])
    pooled = np.concatenate(samples).astype(np.float64)
    low, high = np.percentile(pooled, clip_percentiles)
    clipped = np.clip(pooled, low, high)
    return NormalizationSpec("ct", float(low), float(high), float(clipped.mean()),
                             float(max(clipped.std(), 1e-6)))


def coarse_noise(shape: Sequence[int], *, resolution: int, std: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Low-frequency Gaussian noise: ``resolution``-point noise per axis, upsampled linearly.

    ``shape`` is ``(batch, channels, *spatial)``. The random control grid is
    shifted by a random sub-cell offset so noise blobs are not tied to the grid.
    """
    batch, channels, *spatial = (int(s) for s in shape)
    coarse_shape = [max(2, int(resolution)) + 1 for _ in spatial]
    coarse = torch.randn((batch, channels, *coarse_shape), generator=generator) * std
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    scale = [s * (c - 1) / max(int(resolution), 1) for s, c in zip(spatial, coarse_shape)]
    big = F.interpolate(coarse, size=[int(round(v)) + 1 for v in scale], mode=mode,
                        align_corners=False)
    starts = [int(torch.randint(0, b - s + 1, (1,), generator=generator))
              for b, s in zip(big.shape[2:], spatial)]
    index = (slice(None), slice(None), *[slice(a, a + s) for a, s in zip(starts, spatial)])
    return big[index].contiguous()


def intensity_remap(images: torch.Tensor, *, std: float, generator: torch.Generator,
                    spacing: float = 0.25) -> torch.Tensor:
    """Add a random smooth function of intensity to each image: ``x + f(x)``.

    ``f`` interpolates linearly between normal draws of SD ``std`` at knots
    every ``spacing`` (normalised units), so one tissue moves as a whole.
    """
    low, high = float(images.min()) - spacing, float(images.max()) + spacing
    knots = torch.arange(low, high + spacing, spacing)
    out = images.clone()
    for item in range(images.shape[0]):
        values = torch.randn((len(knots),), generator=generator) * std
        position = ((images[item] - low) / spacing).clamp(0, len(knots) - 1.001)
        index = position.floor().long()
        frac = position - index
        out[item] = images[item] + values[index] * (1 - frac) + values[index + 1] * frac
    return out


def blob_noise(shape: Sequence[int], *, max_blobs: int, radius_px: Sequence[tuple[float, float]],
               std: float, generator: torch.Generator) -> torch.Tensor:
    """Up to ``max_blobs`` compact random perturbations per image: offsets or textures in ellipses.

    ``shape`` is ``(batch, channels, *spatial)``; ``radius_px`` gives the
    (min, max) semi-axis per spatial axis in voxels. Half of the blobs shift
    the intensity by +-(0.5..1.5) x ``std``; the other half add zero-mean fine
    texture of that SD, so both kinds of anomaly are seen in training.
    Edges are soft over about one voxel (partial volume).
    """
    batch, channels, *spatial = (int(s) for s in shape)
    out = torch.zeros((batch, channels, *spatial))
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in spatial], indexing="ij")
    for item in range(batch):
        count = int(torch.randint(0, int(max_blobs) + 1, (1,), generator=generator))
        for _ in range(count):
            u = torch.rand((4 + 2 * len(spatial),), generator=generator)
            centre = [float(u[i]) * (n - 1) for i, n in enumerate(spatial)]
            radii = [lo + float(u[len(spatial) + i]) * (hi - lo)
                     for i, (lo, hi) in enumerate(radius_px)]
            distance = torch.sqrt(sum(((a - c) / max(r, 0.5)) ** 2
                                      for a, c, r in zip(axes, centre, radii)))
            weight = torch.clamp((1.0 - distance) * min(radii) + 0.5, 0.0, 1.0)
            # Magnitudes 0.5-1.5 x std: far from zero, so faint normal texture is not "noise".
            scale = std * (0.5 + float(u[-2]))
            if float(u[-1]) < 0.5:
                value = scale * (1.0 if float(u[-3]) < 0.5 else -1.0)
            else:
                value = torch.randn(tuple(spatial), generator=generator) * scale
            out[item] += weight * value
    return out


def _prepare(images: Sequence[Volume], config: DenoisingConfig,
             normalization: NormalizationSpec | None) -> tuple[list[np.ndarray], list[np.ndarray],
                                                              NormalizationSpec, tuple, Volume | None]:
    """Resample scans to the target spacing, body masks, normalise, and the atlas (mean scan)."""
    from medseg.anomaly.maps import body_mask

    spacing = config.target_spacing_mm or tuple(round(s, 4) for s in images[0].reorient().spacing_mm)
    grids = [preprocess_image(v, target_spacing_mm=spacing, normalization=NormalizationSpec("none"))
             for v in images]
    if normalization is None:
        normalization = fit_normalization([g.array for g in grids], config.body_threshold,
                                          config.clip_percentiles)
    from medseg.data.preprocess import normalize_intensity

    arrays = [normalize_intensity(g.array, normalization) for g in grids]
    bodies = [body_mask(g, threshold=config.body_threshold).array.astype(bool) for g in grids]
    atlas = None
    if config.atlas:
        for grid, image in zip(grids[1:], images[1:]):
            if not grid.same_grid(grids[0]):
                raise InvalidArgumentError(
                    f"{image.source}: not on the frame of {images[0].source}; the atlas channel "
                    "needs registered scans on one grid (resample them) or set atlas: false")
        atlas = grids[0].with_array(np.mean(arrays, axis=0).astype(np.float32))
    return arrays, bodies, normalization, tuple(float(s) for s in spacing), atlas


def _sample_batch(arrays: list[np.ndarray], bodies: list[np.ndarray], config: DenoisingConfig,
                  rng: np.random.Generator, atlas: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Random patches (2D: axial slices, k fixed) from random scans, zero-padded when small.

    Returns ``(batch, channels, *patch)`` images (channel 1: the atlas patch) and body masks.
    """
    patch = [int(p) for p in config.patch_size]
    images, masks = [], []
    for _ in range(config.batch_size):
        index = int(rng.integers(len(arrays)))
        channels = [arrays[index]] + ([atlas] if atlas is not None else [])
        body = bodies[index]
        if config.spatial_dims == 2:
            # Slices that hold body only; empty slices teach nothing.
            k = int(rng.choice(np.flatnonzero(body.any(axis=(0, 1)))))
            channels, body = [c[..., k] for c in channels], body[..., k]
        region = []
        for axis, size in enumerate(patch):
            start = int(rng.integers(0, max(body.shape[axis] - size, 0) + 1))
            region.append(slice(start, start + size))
        b = body[tuple(region)]
        pad = [(0, size - n) for size, n in zip(patch, b.shape)]
        images.append(np.stack([np.pad(c[tuple(region)], pad, constant_values=float(c.min()))
                                for c in channels]))
        masks.append(np.pad(b, pad))
    return np.stack(images), np.stack(masks)[:, None]


def train_denoiser(
    images: Sequence[Volume],
    *,
    config: DenoisingConfig = DenoisingConfig(),
    progress: bool = True,
) -> tuple[torch.nn.Module, dict]:
    """Train the denoising U-Net on normal scans; returns the model and training facts.

    The returned dict holds ``normalization``, ``target_spacing_mm``,
    ``model_options``, ``history`` (loss per 50 iterations) and ``seconds``.
    """
    from tqdm.auto import tqdm

    from medseg.models import create_model

    if len(images) == 0:
        raise TrainingError("no normal scans to train the anomaly model on; pass at least one")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    arrays, bodies, normalization, spacing, atlas = _prepare(images, config, None)
    atlas_array = atlas.array if atlas is not None else None
    options = {"spatial_dims": config.spatial_dims, "in_channels": 2 if config.atlas else 1,
               "out_channels": 1,
               "patch_size": list(config.patch_size), "base_filters": config.base_filters,
               "norm_name": config.norm_name}
    from medseg.inference.sliding_window import resolve_device

    device = resolve_device(config.device)
    model = create_model(config.model_name, **options).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate,
                                                   total_steps=config.iterations, pct_start=0.1)
    history, running, started = [], 0.0, time.perf_counter()
    model.train()
    bar = tqdm(range(config.iterations), desc="anomaly model", disable=not progress, leave=False)
    for step in bar:
        inputs, body = (torch.from_numpy(x) for x in
                        _sample_batch(arrays, bodies, config, rng, atlas_array))
        body = body.float()
        clean = inputs[:, :1]
        if config.intensity_jitter > 0:
            clean = intensity_remap(clean, std=config.intensity_jitter, generator=generator)
        noise = (coarse_noise(clean.shape, resolution=config.noise_resolution,
                              std=config.noise_std, generator=generator)
                 if config.noise_std > 0 else torch.zeros_like(clean))
        if config.blobs > 0:
            radius_px = [tuple(r / float(s) for r in config.blob_radius_mm)
                         for s in spacing[: config.spatial_dims]]
            noise = noise + blob_noise(clean.shape, max_blobs=config.blobs, radius_px=radius_px,
                                       std=config.blob_std, generator=generator)
        noisy = clean + noise * body
        noisy, clean, body = noisy.to(device), clean.to(device), body.to(device)
        correction = model(torch.cat([noisy, inputs[:, 1:].to(device)], dim=1))
        recon = noisy + correction if config.residual else correction
        # Air outside the body carries no information; weight the loss to the body.
        loss = (((recon - clean) ** 2) * (0.1 + body)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running += float(loss.detach())
        if (step + 1) % 50 == 0 or step + 1 == config.iterations:
            history.append({"iteration": step + 1, "loss": running / (step % 50 + 1)})
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
            running = 0.0
    model.eval()
    facts = {"normalization": normalization, "target_spacing_mm": spacing, "atlas": atlas,
             "model_options": options, "history": history,
             "seconds": time.perf_counter() - started, "config": to_dict(config),
             "config_hash": config_hash(config)}
    log.info("anomaly model trained: %d iterations in %.1f s, final loss %.4f",
             config.iterations, facts["seconds"], history[-1]["loss"] if history else float("nan"))
    return model, facts


@torch.no_grad()
def reconstruct(model: torch.nn.Module, array: np.ndarray, *, spatial_dims: int,
                patch_size: Sequence[int], residual: bool = False,
                atlas: np.ndarray | None = None, batch_size: int = 16) -> np.ndarray:
    """Reconstruct a normalised 3D array: slice by slice (2D model) or sliding window (3D).

    With ``residual`` the network output is a correction added to its input;
    ``atlas`` (same shape) is the second input channel of atlas models.
    Windows run on the model's device; the result is stitched on the CPU.
    """
    from monai.inferers import sliding_window_inference

    model.eval()
    window_device = next(model.parameters()).device
    windows = {"sw_device": window_device, "device": torch.device("cpu")}
    network = model
    if residual:
        def network(batch: torch.Tensor) -> torch.Tensor:
            return batch[:, :1] + model(batch)
    stacked = np.stack([array] + ([atlas] if atlas is not None else []))
    tensor = torch.from_numpy(np.ascontiguousarray(stacked, dtype=np.float32))  # (c, i, j, k)
    if spatial_dims == 2:
        slices = tensor.permute(3, 0, 1, 2)  # (k, c, i, j)
        outputs = [sliding_window_inference(slices[s:s + batch_size], list(patch_size),
                                            batch_size, network, overlap=0.25, mode="gaussian",
                                            **windows)
                   for s in range(0, slices.shape[0], batch_size)]
        return torch.cat(outputs)[:, 0].permute(1, 2, 0).numpy()
    out = sliding_window_inference(tensor[None], list(patch_size), 2, network,
                                   overlap=0.25, mode="gaussian", **windows)
    return out[0, 0].numpy()


def spec_postprocessing(config: DenoisingConfig, *, threshold: float,
                        normal_case_scores: Sequence[float]) -> dict:
    """The ``postprocessing`` block of an anomaly bundle (what the scorer needs)."""
    return {"task": "anomaly_denoising", "threshold": float(threshold),
            "body_threshold": config.body_threshold, "erode_mm": config.erode_mm,
            "smoothing_mm": config.smoothing_mm, "target_fpr": config.target_fpr,
            "residual_output": config.residual, "case_score": "max", "normal_case_scores": [float(s) for s in normal_case_scores]}


def replace_config(config: DenoisingConfig, **changes) -> DenoisingConfig:
    """``dataclasses.replace`` that keeps validation (frozen config)."""
    return dataclasses.replace(config, **changes)


def config_path_or_default(path: str | Path | None) -> DenoisingConfig:
    """Load a :class:`DenoisingConfig` YAML strictly, or return the defaults."""
    from medseg.config import load_yaml

    return DenoisingConfig() if path is None else load_yaml(path, DenoisingConfig)
