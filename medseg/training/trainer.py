"""``train``: dataset -> plan -> cached patches -> epochs -> checkpoints -> model bundle.

A readable sequence of steps; each step's logic lives in its own module of ``medseg.training``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medseg.atomic import atomic_path
from medseg.config import config_hash, load_yaml, save_yaml, to_dict
from medseg.data import Dataset, Plan, compute_fingerprint, load_dataset, load_plan, make_plan
from medseg.data.cache import preprocess_dataset
from medseg.data.sampling import PatchDataset, make_loader
from medseg.data.transforms import build_augmentation
from medseg.errors import TrainingError
from medseg.inference.bundle import BundleSpec, save_bundle
from medseg.models import create_model
from medseg.provenance import provenance_record
from medseg.training import distributed as ddp
from medseg.training.checkpoint import load_checkpoint, save_checkpoint, unwrap
from medseg.training.config import TrainConfig, resolve_config
from medseg.training.curves import plot_curves
from medseg.training.loop import choose_precision, train_epoch
from medseg.training.losses import build_loss
from medseg.training.optim import build_optimizer, learning_rate_at
from medseg.training.splits import load_or_make_splits
from medseg.training.validation import ema_update, validate

__all__ = ["TrainResult", "train", "seed_everything"]

log = logging.getLogger(__name__)

_HISTORY_COLUMNS = ["epoch", "train_loss", "val_dice", "val_dice_ema", "lr", "seconds"]


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: its folder, the model bundle, the best validation Dice, the history."""

    run_dir: Path
    bundle_dir: Path
    best_val_dice: float
    best_epoch: int
    history: pd.DataFrame
    plan: Plan
    config: TrainConfig


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally demand deterministic torch kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def _plan_for(dataset: Dataset, config: TrainConfig, plan: Plan | str | Path | None,
              cache_dir: Path | None, progress: bool, *, resuming: bool = False) -> Plan:
    if plan is not None and resuming:
        return load_plan(plan)
    if plan is not None:
        overrides = [k for k in ("patch_size", "batch_size", "model_name", "filters",
                                 "target_spacing_mm", "memory_budget_mb") if getattr(config, k) is not None]
        if overrides:
            log.warning("a plan was given, so the config's %s are ignored; edit the plan instead",
                        ", ".join(overrides))
        return plan if isinstance(plan, Plan) else load_plan(plan)
    fingerprint = compute_fingerprint(dataset, cache_dir=cache_dir, progress=progress)
    return make_plan(fingerprint, config=config.configuration,
                     memory_budget_mb=config.memory_budget_mb,
                     model_name=config.model_name or "dynunet", patch_size=config.patch_size,
                     batch_size=config.batch_size, filters=config.filters,
                     target_spacing_mm=config.target_spacing_mm,
                     deep_supervision=config.deep_supervision)


def _check_resumable(run_dir: Path, config: TrainConfig) -> None:
    saved = load_yaml(run_dir / "config.yaml", TrainConfig)
    # Epochs may grow; the loader's worker count and TensorBoard do not change results.
    free = {"epochs": config.epochs, "num_workers": config.num_workers,
            "tensorboard": config.tensorboard}
    if dataclasses.replace(saved, **free) != config:
        raise TrainingError(f"{run_dir}: config differs from the run's config.yaml (other than "
                            "epochs/num_workers); resume with the same config or start a new run folder")


def _provenance(dataset: Dataset, plan: Plan, config: TrainConfig, *, seed: int, fold: int,
                val_ids: list[str], case_hashes: dict[str, str], best_epoch: int,
                world_size: int) -> dict[str, Any]:
    # Case hashes were computed while caching, so inputs are not hashed a second time.
    return provenance_record(
        config=config, seed=int(seed), hash_inputs=False, plan_hash=config_hash(plan),
        dataset=dataset.name, fold=int(fold), epochs=int(config.epochs),
        world_size=int(world_size), best_epoch=int(best_epoch), validation_cases=val_ids,
        case_hashes=case_hashes)


def train(
    dataset: Dataset | str | Path,
    *,
    out_dir: str | Path,
    config: str | Path | TrainConfig = "3d",
    plan: Plan | str | Path | None = None,
    fold: int = 0,
    epochs: int | None = None,
    seed: int = 0,
    resume: bool = False,
    max_minutes: float | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    stop_after_epoch: int | None = None,
    device: str = "auto",
) -> TrainResult:
    """Train a segmentation network on one fold of a labeled dataset and write a model bundle.

    Parameters
    ----------
    dataset : Dataset or path
        A :class:`medseg.data.Dataset` or anything :func:`medseg.data.load_dataset` opens.
    out_dir : path
        Run folder: plan.yaml, config.yaml, splits.json, checkpoints/, metrics.csv,
        curves.png, provenance.json and bundle/.
    config : {"3d", "2d"}, preset name, YAML path or TrainConfig
        Presets live in ``configs/`` (``3d``, ``2d``, ``tiny3d``, ``tiny2d``).
    plan : Plan or path, optional
        An edited plan.yaml; by default planned from the dataset fingerprint.
    fold : int
        Validation fold of the k-fold split (``config.folds`` folds).
    epochs : int, optional
        Overrides ``config.epochs``; with ``resume`` it may extend a finished run.
    seed : int
        Seeds weights and every sampled patch; equal seeds repeat a CPU run bit for bit.
    resume : bool
        Continue from ``checkpoints/last.pt`` in ``out_dir``.
    max_minutes : float, optional
        Stop after the epoch that crosses this wall time (resume later).
    stop_after_epoch : int, optional
        End this call after that many completed epochs, as if interrupted.
    device : str
        ``"auto"`` (this rank's GPU if any, else CPU), ``"cpu"``, ``"cuda:0"``...

    Returns
    -------
    TrainResult
        ``best_val_dice`` is the mean foreground Dice, on the validation fold, of the
        epoch whose weights went into the bundle (chosen by EMA of validation Dice).
    """
    threads = torch.get_num_threads()
    try:
        return _train(dataset, out_dir=out_dir, config=config, plan=plan, fold=fold, epochs=epochs,
                      seed=seed, resume=resume, max_minutes=max_minutes, progress=progress,
                      cache_dir=cache_dir, stop_after_epoch=stop_after_epoch, device=device)
    finally:
        torch.set_num_threads(threads)  # a config's num_threads must not leak into the caller


def _train(
    dataset: Dataset | str | Path,
    *,
    out_dir: str | Path,
    config: str | Path | TrainConfig = "3d",
    plan: Plan | str | Path | None = None,
    fold: int = 0,
    epochs: int | None = None,
    seed: int = 0,
    resume: bool = False,
    max_minutes: float | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    stop_after_epoch: int | None = None,
    device: str = "auto",
) -> TrainResult:
    """Body of :func:`train` (same arguments)."""
    started = time.monotonic()
    cfg, source = resolve_config(config)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=int(epochs))
    info = ddp.setup_distributed()
    dev = ddp.select_device(device, info.local_rank)
    run_dir = Path(out_dir)
    checkpoints = run_dir / "checkpoints"
    if resume and (run_dir / "config.yaml").exists():
        _check_resumable(run_dir, cfg)
        plan = run_dir / "plan.yaml"
    elif not resume and (checkpoints / "last.pt").exists():
        raise TrainingError(f"{run_dir}: already holds a run; pass resume=True (--resume) to "
                            "continue it, or choose a new output folder")
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    cache = Path(cache_dir) if cache_dir is not None else None
    if not info.is_main:
        ddp.barrier(info)  # rank 0 fills the caches first
    the_plan = _plan_for(ds, cfg, plan, cache, progress and info.is_main,
                         resuming=resume and (run_dir / "plan.yaml").exists())
    fingerprint_hashes = compute_fingerprint(ds, cache_dir=cache).case_hashes
    cached = {c.case_id: c for c in preprocess_dataset(ds, the_plan, cache_dir=cache,
                                                       progress=progress and info.is_main)}
    if info.is_main:
        checkpoints.mkdir(parents=True, exist_ok=True)
        save_yaml(the_plan, run_dir / "plan.yaml")
        save_yaml(cfg, run_dir / "config.yaml")
        splits = load_or_make_splits(run_dir / "splits.json", ds.case_ids, folds=cfg.folds)
        ddp.barrier(info)
    else:
        splits = load_or_make_splits(run_dir / "splits.json", ds.case_ids, folds=cfg.folds)
    if not 0 <= fold < len(splits):
        raise TrainingError(f"fold {fold} does not exist; splits.json has folds 0..{len(splits) - 1}")
    train_cases = [cached[c] for c in splits[fold]["train"]]
    val_cases = [cached[c] for c in splits[fold]["val"]]
    log.info("training %s fold %d on %d cases (%d validation), config %s, device %s, %d process(es)",
             the_plan.configuration, fold, len(train_cases), len(val_cases), source, dev,
             info.world_size)

    seed_everything(seed, deterministic=cfg.deterministic)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    options = dict(the_plan.model_options, deep_supervision=cfg.deep_supervision)
    model = create_model(the_plan.model_name, **options).to(dev)
    optimizer = build_optimizer(model.parameters(), name=cfg.optimizer, learning_rate=cfg.learning_rate,
                                weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    loss_fn = build_loss(cfg.loss, tversky_alpha=cfg.tversky_alpha)
    precision = choose_precision(dev, cpu_bf16=cfg.cpu_bf16, cuda_amp=cfg.cuda_amp)
    scaler = torch.amp.GradScaler("cuda") if precision.scaler else None
    state: dict[str, Any] = {"history": [], "ema": None, "best_ema": None, "best_epoch": -1,
                             "best_val_dice": float("nan"), "fold": fold, "seed": seed}
    start_epoch = 0
    if resume:
        loaded = load_checkpoint(checkpoints / "last.pt", model=model, optimizer=optimizer,
                                 scaler=scaler)
        start_epoch, state = loaded["epoch"], loaded["state"]
        if (state.get("fold", fold), state.get("seed", seed)) != (fold, seed):
            raise TrainingError(f"{run_dir}: the run trained fold {state['fold']} with seed "
                                f"{state['seed']}; resume with --fold {state['fold']} --seed "
                                f"{state['seed']}")
    if info.is_distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)

    patches = PatchDataset(
        train_cases, the_plan.patch_size, batch_size=the_plan.batch_size,
        samples_per_epoch=cfg.iterations_per_epoch * the_plan.batch_size * info.world_size,
        seed=seed, oversample_foreground=cfg.oversample_foreground,
        augmentation=build_augmentation(cfg.augmentation, spatial_dims=the_plan.spatial_dims,
                                        patch_size=the_plan.patch_size))
    loader, sampler = make_loader(patches, rank=info.rank, world_size=info.world_size,
                                  num_workers=cfg.num_workers, seed=seed)
    writer = _tensorboard(run_dir, cfg) if info.is_main else None
    labels = sorted(v for v in the_plan.labels if v != 0)
    log.info("precision %s, patch %s, batch %d, %d iterations/epoch", precision.name,
             the_plan.patch_size, the_plan.batch_size, cfg.iterations_per_epoch)
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        out_of_time = (max_minutes is not None and epoch > start_epoch
                       and (time.monotonic() - started) / 60.0 > max_minutes)
        if ddp.broadcast_object(out_of_time, info):  # rank 0's clock decides for every rank
            log.info("max_minutes=%s reached after %d epochs; resume to continue", max_minutes, epoch)
            break
        tick = time.monotonic()
        lr = learning_rate_at(epoch, initial=cfg.learning_rate, epochs=cfg.epochs,
                              schedule=cfg.lr_schedule, exponent=cfg.poly_exponent)
        for group in optimizer.param_groups:
            group["lr"] = lr
        sampler.set_epoch(epoch)
        loss = train_epoch(model, loader, loss_fn=loss_fn, optimizer=optimizer, precision=precision,
                           device=dev, grad_clip=cfg.grad_clip, scaler=scaler,
                           progress=progress and info.is_main,
                           description=f"epoch {epoch + 1}/{cfg.epochs}")
        loss = ddp.all_reduce_mean(loss, info, dev)
        row = {"epoch": epoch, "train_loss": loss, "val_dice": float("nan"),
               "val_dice_ema": float("nan"), "lr": lr}
        improved = False
        if info.is_main and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs):
            per_label = validate(unwrap(model), val_cases, patch_size=the_plan.patch_size,
                                 labels=labels, overlap=cfg.sw_overlap, device=dev,
                                 autocast=precision.autocast())
            dice = float(np.nanmean(list(per_label.values())))
            state["ema"] = ema_update(state["ema"], dice, momentum=cfg.ema_momentum)
            row.update({"val_dice": dice, "val_dice_ema": state["ema"]},
                       **{f"dice_{the_plan.labels[v]}": d for v, d in per_label.items()})
            if state["best_ema"] is None or state["ema"] > state["best_ema"]:
                improved = True
                state.update(best_ema=state["ema"], best_epoch=epoch, best_val_dice=dice)
        row["seconds"] = time.monotonic() - tick
        state["history"].append(row)
        if info.is_main:
            save_checkpoint(checkpoints / "last.pt", model=model, optimizer=optimizer,
                            epoch=epoch + 1, state=state, scaler=scaler)
            if improved:
                save_checkpoint(checkpoints / "best.pt", model=model, optimizer=optimizer,
                                epoch=epoch + 1, state=state, scaler=scaler)
            _write_history(run_dir, state["history"])
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch" and np.isfinite(value):
                        writer.add_scalar(key, value, epoch)
            log.info("epoch %d: loss %.4f, val Dice %.4f (EMA %s), %.1f s", epoch + 1, loss,
                     row["val_dice"], state["ema"], row["seconds"])
        ddp.barrier(info)
    if writer is not None:
        writer.close()
    ddp.check_in_sync(unwrap(model), info)

    history = _history_frame(state["history"])
    bundle_dir = run_dir / "bundle"
    if info.is_main:
        best = checkpoints / ("best.pt" if (checkpoints / "best.pt").exists() else "last.pt")
        final = create_model(the_plan.model_name, **options)
        load_checkpoint(best, model=final)
        provenance = _provenance(ds, the_plan, cfg, seed=seed, fold=fold, val_ids=splits[fold]["val"],
                                 case_hashes=fingerprint_hashes, best_epoch=state["best_epoch"],
                                 world_size=info.world_size)
        _write_json(run_dir / "provenance.json", provenance)
        save_bundle(bundle_dir, model=final, spec=BundleSpec(
            model_name=the_plan.model_name, model_options=options, labels=dict(the_plan.labels),
            spatial_dims=the_plan.spatial_dims, in_channels=len(the_plan.channel_names),
            patch_size=tuple(the_plan.patch_size), target_spacing_mm=tuple(the_plan.target_spacing_mm),
            orientation=the_plan.orientation, normalization=the_plan.normalization,
            channel_names=tuple(the_plan.channel_names), provenance=provenance))
    ddp.barrier(info)
    return TrainResult(run_dir, bundle_dir, float(state["best_val_dice"]), int(state["best_epoch"]),
                       history, the_plan, cfg)


def _history_frame(rows: list[dict]) -> pd.DataFrame:
    extra = [key for row in rows for key in row if key not in _HISTORY_COLUMNS]
    return pd.DataFrame(rows, columns=_HISTORY_COLUMNS + list(dict.fromkeys(extra)))


def _write_history(run_dir: Path, rows: list[dict]) -> None:
    frame = _history_frame(rows)
    with atomic_path(run_dir / "metrics.csv") as tmp:
        frame.to_csv(tmp, index=False)
    plot_curves(frame, run_dir / "curves.png")


def _write_json(path: Path, data: dict) -> None:
    import json

    from medseg.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(to_dict(data), indent=1))


def _tensorboard(run_dir: Path, cfg: TrainConfig):
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard: true but the tensorboard package is not installed; skipping it")
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
