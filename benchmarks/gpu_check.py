"""GPU check of medseg: CUDA training with AMP, training throughput, inference precisions, NCCL DDP.

Usage: python benchmarks/gpu_check.py --out DIR [--device cuda|cpu] [--quick] [--max-minutes 6]

Steps (each timed; a failing step is recorded with its traceback and the next one runs):
env (torch/CUDA/versions); training (``tiny3d`` preset on synthetic phantoms with bf16 AMP,
fp32, and fp16 as on a GPU without bf16, which must use a GradScaler; seeded repeat; stop and
resume; held-out Dice); ddp (one-process ``torch.distributed.run`` training through medseg's DDP
path on NCCL, forced past the world-size-1 shortcut); throughput (DynUNet 32..320 training step
as ``train_vs_nnunet.py`` plans it, batch 2, fixed random batches, fp32/bf16/fp16, peak CUDA
memory); inference (``Predictor`` on held-out phantoms in fp32/bf16/fp16, then a CT-sized
512x512x300 volume with and without ``memory_budget_mb``; peak CUDA memory and RSS, label
agreement with fp32). DIR gets ``gpu_check.json`` and ``gpu_check.md``, rewritten after every
step so a run cut short keeps what it measured. ``--device cpu --quick`` runs the same code on
small sizes (a smoke test on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch

FILTERS = (32, 64, 128, 256, 320)  # the DynUNet of train_vs_nnunet.py / predict_vs_nnunet.py
MICRO = dict(epochs=2, iterations_per_epoch=3, val_every=1, folds=3, patch_size=(16, 16, 16),
             batch_size=2, model_name="unet_small", filters=(8, 16, 32), num_workers=0,
             num_threads=1, sw_overlap=0.0)


def _sizes(quick: bool, cuda: bool) -> dict:
    if quick and not cuda:
        return dict(n_cases=6, shape=(24, 24, 24), n_heldout=2, config=MICRO, patches=[(32, 32, 32)],
                    warmup=1, steps=2, ct_base=(32, 32, 60), ct_budget_mb=64.0)
    big = dict(n_cases=12, shape=(64, 64, 64), n_heldout=4, config={}, patches=[(64, 64, 64)],
               warmup=2, steps=10, ct_base=(128, 128, 300), ct_budget_mb=1536.0)
    if cuda:
        big["patches"] = [(64, 64, 64), (128, 128, 128)]
    if quick:
        big.update(n_cases=6, n_heldout=2, steps=3, config=dict(epochs=4))
    return big


# ------------------------------------------------------------------------ measuring helpers
class PeakRSS:
    """Samples this process's RSS every 10 ms in a thread; ``peak_mib`` after the block."""

    def __enter__(self) -> PeakRSS:
        import psutil

        self._process, self._stop, self.peak = psutil.Process(), threading.Event(), 0
        self.start_mib = self._process.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.01)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        self.peak_mib = self.peak / 2**20


@contextlib.contextmanager
def cuda_peak(device: torch.device, record: dict):
    """Put ``peak_cuda_mib`` (max_memory_allocated inside the block) into ``record`` on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        record["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _mean_dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    from medseg.training.validation import dice_per_label

    labels = [int(v) for v in np.unique(reference) if v]
    return float(np.nanmean(list(dice_per_label(prediction, reference, labels).values())))


# ------------------------------------------------------------------------ steps
def step_env(ctx: dict) -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "cpu_count": os.cpu_count(), "cudnn_benchmark": torch.backends.cudnn.benchmark}
    for name in ("monai", "numpy", "nibabel", "pydicom", "connected-components-3d", "pynrrd", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if ctx["device"].type == "cuda":
        props = torch.cuda.get_device_properties(ctx["device"])
        out.update(device_name=props.name, capability=list(torch.cuda.get_device_capability()),
                   total_memory_gib=props.total_memory / 2**30, bf16_supported=torch.cuda.is_bf16_supported(),
                   nccl=str(torch.cuda.nccl.version()))
        torch.zeros(1, device=ctx["device"])  # CUDA context up front, outside later timings
    import medseg

    out["medseg_from"] = str(Path(medseg.__file__).parent)
    return out


def _make_data(ctx: dict) -> None:
    from medseg.demo import make_dataset, make_phantom

    sizes = ctx["sizes"]
    ctx["dataset"] = make_dataset(ctx["work"] / "data", n_cases=sizes["n_cases"], shape=sizes["shape"],
                                  seed=0)
    ctx["heldout"] = [make_phantom(shape=sizes["shape"], seed=1000 + i) for i in range(sizes["n_heldout"])]


def _train_once(ctx: dict, name: str, cfg, **kwargs):
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from medseg.training import train

    stamps: list[float] = []
    handle = register_optimizer_step_pre_hook(lambda *_: stamps.append(time.perf_counter()))
    started = time.perf_counter()
    try:
        result = train(ctx["dataset"], out_dir=ctx["work"] / name, config=cfg, seed=0, progress=False,
                       cache_dir=ctx["work"] / "cache", device=str(ctx["device"]), **kwargs)
    finally:
        handle.remove()
    per_epoch = cfg.iterations_per_epoch
    gaps = [stamps[k] - stamps[k - 1] for k in range(1, len(stamps)) if k // per_epoch == (k - 1) // per_epoch]
    return result, {"seconds": time.perf_counter() - started, "n_steps": len(stamps),
                    "iterations_per_s": 1.0 / _median(gaps) if gaps else float("nan"),
                    "best_val_dice": result.best_val_dice, "epochs_done": len(result.history)}


def _heldout_dice(ctx: dict, bundle: Path, precision: str = "auto") -> dict:
    from medseg.inference import Predictor

    predictor = Predictor.from_bundle(bundle, device=str(ctx["device"]), precision=precision,
                                      postprocess=False)
    dice = float(np.mean([_mean_dice(predictor(c.image).array, c.labels.array) for c in ctx["heldout"]]))
    return {"heldout_dice": dice, "heldout_inference_precision": predictor.precision}


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]


def _compare_runs(a: Path, b: Path) -> dict:
    wa, wb = _weights(a), _weights(b)
    diff = max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)
    return {"bit_identical": all(torch.equal(wa[k], wb[k]) for k in wa), "max_abs_weight_diff": diff}


class _CountingScaler(torch.amp.GradScaler):
    """GradScaler that counts how often the trainer created and stepped one."""

    created = 0
    steps = 0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        type(self).created += 1

    def step(self, *args, **kwargs):
        type(self).steps += 1
        return super().step(*args, **kwargs)


def step_training(ctx: dict) -> dict:
    from medseg.training import resolve_config
    from medseg.training.loop import choose_precision

    _make_data(ctx)
    cfg = dataclasses.replace(resolve_config("tiny3d")[0], **ctx["sizes"]["config"])
    dev = ctx["device"]
    out: dict = {"config": {"epochs": cfg.epochs, "iterations_per_epoch": cfg.iterations_per_epoch,
                            "patch_size": list(cfg.patch_size), "batch_size": cfg.batch_size,
                            "model": cfg.model_name, "num_workers": cfg.num_workers},
                 "n_train_cases": ctx["sizes"]["n_cases"], "n_heldout": len(ctx["heldout"])}
    runs = out["runs"] = {}
    auto = choose_precision(dev, cpu_bf16=cfg.cpu_bf16, cuda_amp=cfg.cuda_amp).name
    result, runs["A"] = _train_once(ctx, "train_a", cfg)
    runs["A"].update(precision=auto, **_heldout_dice(ctx, result.bundle_dir))
    ctx["bundle"] = result.bundle_dir
    print(f"  run A ({auto}): {runs['A']}", flush=True)
    # Repeat and resume on a shorter schedule of the same config: S1, S2 (same seed), S3 (stop + resume).
    short = dataclasses.replace(cfg, epochs=max(2, cfg.epochs // 5))
    first, runs["S1"] = _train_once(ctx, "short_1", short)
    _, runs["S2"] = _train_once(ctx, "short_2", short)
    out["seeded_repeat"] = dict(_compare_runs(ctx["work"] / "short_1", ctx["work"] / "short_2"),
                                epochs=short.epochs)
    half = short.epochs // 2
    _train_once(ctx, "short_3", short, stop_after_epoch=half)
    resumed, runs["S3_resumed"] = _train_once(ctx, "short_3", short, resume=True)
    out["resume"] = dict(_compare_runs(ctx["work"] / "short_1", ctx["work"] / "short_3"),
                         stopped_after=half, epochs_after_resume=resumed.history["epoch"].tolist(),
                         loss_equal_to_uninterrupted=resumed.history["train_loss"].tolist()
                         == first.history["train_loss"].tolist())
    print(f"  repeat {out['seeded_repeat']}, resume {out['resume']}", flush=True)
    fp32, runs["fp32"] = _train_once(ctx, "train_fp32", dataclasses.replace(cfg, cuda_amp=False, cpu_bf16=False))
    runs["fp32"].update(precision="fp32", **_heldout_dice(ctx, fp32.bundle_dir, "fp32"))
    if dev.type != "cuda":
        runs["fp16"] = {"skipped": "fp16 AMP with GradScaler is a CUDA path"}
        return out
    # fp16 AMP as chosen on a GPU without bf16 (pre-Ampere): the trainer must step a GradScaler.
    saved = torch.cuda.is_bf16_supported, torch.amp.GradScaler
    torch.cuda.is_bf16_supported, torch.amp.GradScaler = (lambda *a, **k: False), _CountingScaler
    try:
        fp16, runs["fp16"] = _train_once(ctx, "train_fp16", cfg)
        runs["fp16"].update(precision=choose_precision(dev, cuda_amp=True).name,
                            grad_scalers_created=_CountingScaler.created, scaler_steps=_CountingScaler.steps)
    finally:
        torch.cuda.is_bf16_supported, torch.amp.GradScaler = saved
    runs["fp16"].update(_heldout_dice(ctx, fp16.bundle_dir, "fp16"))
    return out


def _ddp_worker(spec: dict) -> None:
    import torch.distributed as dist

    from medseg.training import TrainConfig, train
    from medseg.training import distributed as ddp

    class Forced(ddp.DistributedInfo):
        @property
        def is_distributed(self) -> bool:  # take the DDP path even at world size 1
            return True

    def setup() -> ddp.DistributedInfo:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        if not dist.is_initialized():
            if spec["backend"] == "nccl":
                torch.cuda.set_device(local)
            dist.init_process_group(backend=spec["backend"], rank=rank, world_size=world)
        return Forced(rank, world, local)

    ddp.setup_distributed = setup
    device = f"cuda:{os.environ['LOCAL_RANK']}" if spec["backend"] == "nccl" else "cpu"
    started = time.perf_counter()
    result = train(spec["dataset"], out_dir=spec["out_dir"], config=TrainConfig(**MICRO), progress=False,
                   device=device)
    record = {"backend": dist.get_backend(), "world_size": dist.get_world_size(),
              "best_val_dice": result.best_val_dice, "seconds": time.perf_counter() - started,
              "bundle_written": (result.bundle_dir / "weights.pt").exists()}
    dist.destroy_process_group()
    print("DDP_RESULT " + json.dumps(record), flush=True)


def step_ddp(ctx: dict) -> dict:
    backend = "nccl" if ctx["device"].type == "cuda" else "gloo"
    spec = {"backend": backend, "dataset": str(ctx["dataset"]), "out_dir": str(ctx["work"] / "ddp")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               str(Path(__file__).resolve()), "--ddp-worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=150)
    lines = [line for line in done.stdout.splitlines() if line.startswith("DDP_RESULT ")]
    out = {"backend": backend, "returncode": done.returncode, "passed": done.returncode == 0 and bool(lines)}
    if lines:
        out.update(json.loads(lines[-1][len("DDP_RESULT "):]))
    if not out["passed"]:
        out["stderr_tail"] = done.stderr[-3000:]
    return out


def step_throughput(ctx: dict) -> dict:
    from medseg.data import compute_fingerprint, load_dataset, make_plan
    from medseg.models import create_model
    from medseg.training.loop import Precision, train_epoch
    from medseg.training.losses import build_loss
    from medseg.training.optim import build_optimizer

    dev, sizes = ctx["device"], ctx["sizes"]
    fingerprint = compute_fingerprint(load_dataset(ctx["dataset"]), cache_dir=ctx["work"] / "cache")
    variants = [("fp32", None, False, False), ("bf16", torch.bfloat16, False, False)]
    if dev.type == "cuda":
        variants += [("fp16+GradScaler", torch.float16, True, False),
                     ("bf16+channels_last_3d (not in trainer)", torch.bfloat16, False, True)]
    out: dict = {"trainer_offers": {"channels_last_3d": False, "torch_compile": False},
                 "cudnn_benchmark": torch.backends.cudnn.benchmark, "rows": []}
    for patch in sizes["patches"]:
        plan = make_plan(fingerprint, patch_size=patch, batch_size=2, model_name="dynunet", filters=FILTERS)
        n_classes = int(plan.model_options["out_channels"])
        batch = {"image": torch.randn(2, 1, *patch, generator=torch.Generator().manual_seed(0)),
                 "label": torch.randint(0, n_classes, (2, 1, *patch), generator=torch.Generator().manual_seed(1))}
        for name, dtype, scaled, channels_last in variants:
            row = {"patch": list(patch), "batch": 2, "variant": name}
            try:
                torch.manual_seed(0)
                model = create_model(plan.model_name, **dict(plan.model_options, deep_supervision=True)).to(dev)
                if channels_last:
                    model = model.to(memory_format=torch.channels_last_3d)
                optimizer = build_optimizer(model.parameters())
                scaler = torch.amp.GradScaler("cuda") if scaled else None
                precision = Precision(dev.type, dtype, scaler=scaled)
                seconds, losses = [], []
                with cuda_peak(dev, row):
                    for index in range(sizes["warmup"] + sizes["steps"]):
                        start = time.perf_counter()
                        loss = train_epoch(model, [batch], loss_fn=build_loss("dice_ce"), optimizer=optimizer,
                                           precision=precision, device=dev, scaler=scaler, progress=False)
                        if dev.type == "cuda":
                            torch.cuda.synchronize(dev)
                        losses.append(loss)
                        if index >= sizes["warmup"]:
                            seconds.append(time.perf_counter() - start)
                row.update(s_per_iteration=_median(seconds), n=len(seconds),
                           losses_finite=bool(np.all(np.isfinite(losses))), last_loss=losses[-1])
                if scaler is not None:
                    row["grad_scale"] = float(scaler.get_scale())
            except Exception as exc:  # an OOM or a missing kernel in one variant is a finding, not the end
                row["error"] = f"{type(exc).__name__}: {exc}"[:500]
            finally:
                model = optimizer = None
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            print(f"  {row}", flush=True)
            out["rows"].append(row)
    return out


def _precisions(device: torch.device) -> tuple[str, ...]:
    # fp16 autocast on a CPU runs slow fallback kernels (minutes for the CT); it is a CUDA setting.
    return ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")


def step_inference_cases(ctx: dict) -> dict:
    from medseg.inference import Predictor

    dev, rows, reference = ctx["device"], [], None
    for precision in _precisions(dev):
        row: dict = {"precision": precision}
        predictor = Predictor.from_bundle(ctx["bundle"], device=str(dev), precision=precision, postprocess=False)
        predictor(ctx["heldout"][0].image)  # warm-up (CUDA kernels, cuDNN)
        seconds, labels = [], []
        with cuda_peak(dev, row):
            for case in ctx["heldout"]:
                start = time.perf_counter()
                labels.append(predictor(case.image).array)
                seconds.append(time.perf_counter() - start)
        reference = labels if reference is None else reference
        row.update(s_per_case=_median(seconds), effective_precision=predictor.precision,
                   mean_dice=float(np.mean([_mean_dice(lab, c.labels.array)
                                            for lab, c in zip(labels, ctx["heldout"])])),
                   fraction_differing_from_fp32=float(np.mean([np.mean(a != b)
                                                               for a, b in zip(labels, reference)])))
        print(f"  {row}", flush=True)
        rows.append(row)
    return {"case_shape": list(ctx["sizes"]["shape"]), "rows": rows}


def _ct_volume(base: tuple[int, int, int]):
    """``predict_vs_nnunet.py``'s ct512 case in memory: a phantom at base size, zoomed x4 in-plane."""
    from scipy import ndimage

    from medseg.demo import make_phantom
    from medseg.volume import Volume

    case = make_phantom(shape=base, spacing_mm=(2.8, 2.8, 2.5), seed=99)
    image = ndimage.zoom(case.image.array, (4, 4, 1), order=1).astype(np.int16)
    origin = np.asarray(case.image.origin_mm) - np.array([1.05, 1.05, 0.0])
    return Volume.from_array(image, spacing_mm=(0.7, 0.7, 2.5), origin_mm=origin, meta={"source": "ct512"})


def step_inference_ct(ctx: dict) -> dict:
    from medseg.inference import Predictor

    dev, sizes = ctx["device"], ctx["sizes"]
    volume = _ct_volume(sizes["ct_base"])
    out: dict = {"shape": list(volume.shape), "spacing_mm": list(volume.spacing_mm), "network_grid": [],
                 "precision_rows": [], "budget_rows": []}
    # Precision acts on the network grid: compare argmax there, preprocessing once.
    start = time.perf_counter()
    net_image = Predictor.from_bundle(ctx["bundle"], device="cpu").preprocess(volume)
    out["preprocess_seconds"] = time.perf_counter() - start
    out["network_grid"] = list(net_image.shape)
    reference = None
    for precision in _precisions(dev):
        row: dict = {"precision": precision}
        if time.perf_counter() > ctx["deadline"]:
            out["precision_rows"].append(dict(row, skipped="time budget"))
            continue
        predictor = Predictor.from_bundle(ctx["bundle"], device=str(dev), precision=precision, postprocess=False)
        with PeakRSS() as rss, cuda_peak(dev, row):
            start = time.perf_counter()
            labels = np.argmax(predictor.network_probabilities(volume, preprocessed=net_image).array, axis=-1)
            row["network_seconds"] = time.perf_counter() - start
        reference = labels if reference is None else reference
        row.update(peak_rss_mib=rss.peak_mib, rss_before_mib=rss.start_mib,
                   fraction_differing_from_fp32=float(np.mean(labels != reference)))
        print(f"  {row}", flush=True)
        out["precision_rows"].append(row)
    full = None
    for budget in (None, sizes["ct_budget_mb"]):
        row = {"precision": "auto", "memory_budget_mb": budget}
        if time.perf_counter() > ctx["deadline"]:
            out["budget_rows"].append(dict(row, skipped="time budget"))
            continue
        predictor = Predictor.from_bundle(ctx["bundle"], device=str(dev), memory_budget_mb=budget,
                                          postprocess=False)
        with PeakRSS() as rss, cuda_peak(dev, row):
            start = time.perf_counter()
            labels = predictor(volume).array
            row["seconds"] = time.perf_counter() - start
        full = labels if full is None else full
        row.update(effective_precision=predictor.precision, peak_rss_mib=rss.peak_mib,
                   rss_before_mib=rss.start_mib, plan=dataclasses.asdict(predictor.memory_plan(volume)),
                   voxels_differing_from_no_budget=int(np.count_nonzero(labels != full)))
        print(f"  {row}", flush=True)
        out["budget_rows"].append(row)
    return out


# ------------------------------------------------------------------------ report
def _markdown(results: dict) -> str:
    lines = [f"# medseg GPU check ({results['started_utc']} UTC, device {results['device']}, "
             f"quick={results['quick']})", "", "| step | status | seconds |", "|---|---|---|"]
    for name, step in results["steps"].items():
        lines.append(f"| {name} | {step['status']} | {step.get('seconds', 0):.1f} |")
    env = results["steps"].get("env", {}).get("result", {})
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items())]
    for name in ("training", "ddp"):
        result = results["steps"].get(name, {}).get("result")
        if result:
            lines += ["", f"## {name}", "", "```", json.dumps(result, indent=1, default=str), "```"]
    tables = [("throughput", "rows", ["patch", "variant", "s_per_iteration", "peak_cuda_mib", "losses_finite",
                                      "grad_scale", "error"]),
              ("inference_cases", "rows", ["precision", "effective_precision", "s_per_case", "peak_cuda_mib",
                                           "mean_dice", "fraction_differing_from_fp32"]),
              ("inference_ct", "precision_rows", ["precision", "network_seconds", "peak_cuda_mib", "rss_before_mib",
                                                  "peak_rss_mib", "fraction_differing_from_fp32", "skipped"]),
              ("inference_ct", "budget_rows", ["memory_budget_mb", "effective_precision", "seconds",
                                               "peak_cuda_mib", "rss_before_mib", "peak_rss_mib",
                                               "voxels_differing_from_no_budget", "skipped"])]
    for name, key, columns in tables:
        result = results["steps"].get(name, {}).get("result")
        if not result:
            continue
        lines += ["", f"## {name} ({key})", ""]
        if name == "inference_ct" and key == "precision_rows":
            lines += [f"CT {result['shape']} at {result['spacing_mm']} mm -> network grid "
                      f"{result['network_grid']}, preprocessing {result['preprocess_seconds']:.1f} s", ""]
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in result[key]:
            cells = [row.get(c, "") for c in columns]
            lines.append("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells) + " |")
    for name, step in results["steps"].items():
        if step["status"] == "failed":
            lines += ["", f"## {name} failed", "", "```", step["error"][-3000:], "```"]
    return "\n".join(lines) + "\n"


def _save(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "gpu_check.md").write_text(_markdown(results))


STEPS = [("env", step_env, []), ("training", step_training, []), ("ddp", step_ddp, ["training"]),
         ("throughput", step_throughput, ["training"]), ("inference_cases", step_inference_cases, ["training"]),
         ("inference_ct", step_inference_ct, ["training"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json/.md (required)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU smoke test)")
    parser.add_argument("--max-minutes", type=float, default=6.0,
                        help="skip steps that would start after this much wall time")
    parser.add_argument("--skip", nargs="*", default=[], help="step names to skip")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the runs here (default: temp)")
    parser.add_argument("--ddp-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        _ddp_worker(json.loads(args.ddp_worker))
        return
    if args.out is None:
        parser.error("--out is required")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # shared CPU machine: the smoke test stays on one core
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = {"device": device, "work": work, "sizes": _sizes(args.quick, device.type == "cuda")}
    results = {"started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "device": str(device),
               "quick": args.quick, "command": " ".join(sys.argv), "work_dir": str(work), "steps": {}}
    began = time.perf_counter()
    ctx["deadline"] = began + args.max_minutes * 60
    for name, function, needs in STEPS:
        elapsed = time.perf_counter() - began
        missing = [n for n in needs if results["steps"].get(n, {}).get("status") != "ok"]
        if name in args.skip or missing or elapsed > args.max_minutes * 60:
            why = "--skip" if name in args.skip else (f"needs {missing}" if missing else "time budget")
            results["steps"][name] = {"status": f"skipped ({why})"}
            print(f"[{elapsed:6.1f} s] {name}: skipped ({why})", flush=True)
            continue
        print(f"[{elapsed:6.1f} s] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            result = function(ctx)
            status = "failed" if result.get("passed") is False else "ok"
            results["steps"][name] = {"status": status, "result": result}
        except Exception:  # recorded and reported; the remaining steps still run
            results["steps"][name] = {"status": "failed", "error": traceback.format_exc()}
            print(traceback.format_exc(), flush=True)
        results["steps"][name]["seconds"] = time.perf_counter() - start
        print(f"[{time.perf_counter() - began:6.1f} s] {name}: {results['steps'][name]['status']}", flush=True)
        _save(results, args.out)
    results["total_seconds"] = time.perf_counter() - began
    _save(results, args.out)
    print((args.out / "gpu_check.md").read_text(), flush=True)


if __name__ == "__main__":
    main()
