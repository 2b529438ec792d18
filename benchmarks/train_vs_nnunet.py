"""Train medseg and nnU-Net v2 on the same synthetic data; compare s/iteration, peak memory and Dice.

Same 20 phantoms (64^3, 1.5x1.5x2.0 mm), patch 64^3, batch 2, iterations, fold-0 held-out cases.

Usage: python benchmarks/train_vs_nnunet.py [--iterations 50] [--epochs 5] [--step-rounds 2]
Needs the nnU-Net venv (``bash benchmarks/setup_nnunet.sh``). Runs, in one invocation: nnU-Net
training, medseg training in fp32 (equal precision) and in bf16 autocast (the CPU lever nnU-Net
does not pull), then single-step timings of the three, alternated round by round so that load
from other jobs on a shared machine hits all of them. Each training runs in its own process whose
whole tree (augmentation workers included) is sampled for peak RSS. Every model predicts the same
held-out cases without TTA (overlap 0.5, Gaussian), and ``medseg.metrics.evaluate`` scores all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _nnunet  # noqa: E402

PATCH = (64, 64, 64)
BATCH = 2
FILTERS = (32, 64, 128, 256, 320)  # nnU-Net's PlainConvUNet on this plan: 5 stages, 32..320


# ---------------------------------------------------------------- medseg workers (subprocesses)
def _worker_train(spec: dict) -> None:
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from medseg.training import TrainConfig, train

    stamps: list[float] = []
    register_optimizer_step_pre_hook(lambda *_: stamps.append(time.perf_counter()))
    cfg = TrainConfig(configuration="3d", epochs=spec["epochs"],
                      iterations_per_epoch=spec["iterations_per_epoch"], val_every=spec["epochs"],
                      patch_size=PATCH, batch_size=BATCH, model_name="dynunet", filters=FILTERS,
                      cpu_bf16=spec["bf16"], num_workers=2, sw_overlap=0.5)
    started = time.perf_counter()
    result = train(spec["dataset"], out_dir=spec["out_dir"], config=cfg, fold=0, seed=spec["seed"],
                   progress=False, device="cpu")
    per_epoch = spec["iterations_per_epoch"]
    # Start-to-start of consecutive optimizer steps in one epoch: data + forward + backward + step.
    iteration_seconds = [stamps[k] - stamps[k - 1] for k in range(1, len(stamps))
                         if k // per_epoch == (k - 1) // per_epoch]
    print(json.dumps({"iteration_seconds": iteration_seconds, "n_steps": len(stamps),
                      "process_seconds": time.perf_counter() - started,
                      "best_val_dice": result.best_val_dice, "bundle_dir": str(result.bundle_dir),
                      "patch_size": list(result.plan.patch_size), "batch_size": result.plan.batch_size,
                      "threads": torch.get_num_threads()}))


def _worker_step(spec: dict) -> None:
    import torch

    from medseg.data import load_plan
    from medseg.models import create_model
    from medseg.training.loop import Precision, train_epoch
    from medseg.training.losses import build_loss
    from medseg.training.optim import build_optimizer

    torch.manual_seed(0)
    plan = load_plan(spec["plan"])
    model = create_model(plan.model_name, **dict(plan.model_options, deep_supervision=True))
    optimizer = build_optimizer(model.parameters())
    precision = Precision("cpu", torch.bfloat16 if spec["bf16"] else None)
    n_classes = len(plan.labels) if 0 in plan.labels else len(plan.labels) + 1
    batch = {"image": torch.randn(plan.batch_size, 1, *plan.patch_size),
             "label": torch.randint(0, n_classes, (plan.batch_size, 1, *plan.patch_size))}
    seconds = []
    for index in range(spec["warmup"] + spec["steps"]):
        start = time.perf_counter()
        train_epoch(model, [batch], loss_fn=build_loss("dice_ce"), optimizer=optimizer,
                    precision=precision, device=torch.device("cpu"), progress=False)
        if index >= spec["warmup"]:
            seconds.append(time.perf_counter() - start)
    print(json.dumps({"step_seconds": seconds, "network": type(model).__name__}))


def _run_worker(kind: str, spec: dict, *, log_path: Path) -> tuple[dict, _nnunet.SampledRun]:
    command = [sys.executable, __file__, "--worker", kind, "--spec", json.dumps(spec)]
    run = _nnunet.run_sampled(command, log_path=log_path, name=f"medseg {kind} worker")
    last = log_path.read_text().strip().splitlines()[-1]
    return json.loads(last), run


# ---------------------------------------------------------------- scoring
def _score(pred_paths: dict[str, Path], ref_paths: dict[str, Path], labels: dict[int, str]) -> dict:
    import medseg
    from medseg.metrics import evaluate

    rows = [evaluate(medseg.read(pred_paths[c], kind="labels"), medseg.read(ref_paths[c], kind="labels"),
                     labels={k: v for k, v in labels.items() if k != 0}, metrics=["dice"], case_id=c)
            for c in sorted(ref_paths)]
    import pandas as pd

    table = pd.concat(rows, ignore_index=True)
    per_label = table.groupby("label_name")["dice"].mean().to_dict()
    return {"mean_dice": float(table["dice"].mean()), "per_label": per_label}


def _predict_medseg(bundle_dir: Path, images: dict[str, Path], out_dir: Path, precision: str) -> dict:
    import medseg
    from medseg.inference import Predictor

    predictor = Predictor.from_bundle(bundle_dir, device="cpu", tta=False, overlap=0.5,
                                      precision=precision, postprocess=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case_id, image in images.items():
        paths[case_id] = out_dir / f"{case_id}.nii.gz"
        medseg.write(predictor(medseg.read(image)), paths[case_id])
    return paths


# ---------------------------------------------------------------- driver
def _summary(values: list[float]) -> dict:
    if not values:
        return {"mean": float("nan"), "median": float("nan"), "n": 0}
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per side")
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs the iterations are split into (poly LR decays per epoch)")
    parser.add_argument("--n-cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bf16-training", action="store_true",
                        help="skip the medseg bf16-autocast training run")
    parser.add_argument("--step-rounds", type=int, default=2,
                        help="alternating rounds of single-step timings (0 to skip)")
    parser.add_argument("--step-steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep everything here")
    parser.add_argument("--reuse", action="store_true",
                        help="in --work-dir, reuse finished trainings (nnU-Net record, sides/*.json)")
    parser.add_argument("--worker", choices=["train", "step"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        (_worker_train if args.worker == "train" else _worker_step)(json.loads(args.spec))
        return
    if args.iterations % args.epochs:
        parser.error("--iterations must be a multiple of --epochs")
    per_epoch = args.iterations // args.epochs
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="train_vs_nnunet_"))
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    _nnunet.venv_python()  # fail early with the setup hint

    from medseg.demo import make_dataset
    from medseg.training.loop import cpu_bf16_supported
    from medseg.training.splits import make_splits

    results: dict = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                     "command": " ".join(sys.argv), "iterations": args.iterations,
                     "epochs": args.epochs, "patch_size": list(PATCH), "batch_size": BATCH}
    data = make_dataset(work / "data", n_cases=args.n_cases, shape=(64, 64, 64),
                        spacing_mm=(1.5, 1.5, 2.0), seed=args.seed)
    spec = json.loads((data / "dataset.json").read_text())
    labels = {int(k): v for k, v in spec["labels"].items()}
    case_ids = sorted(_nnunet.case_id_from_path(e["image"]) for e in spec["training"])
    split = make_splits(case_ids, folds=5)[0]  # medseg's fold 0, given to nnU-Net as well
    val_ids = split["val"]
    results["validation_cases"] = val_ids
    images = {c: data / "imagesTr" / f"{c}.nii.gz" for c in val_ids}
    refs = {c: data / "labelsTr" / f"{c}.nii.gz" for c in val_ids}
    print(f"work dir {work}; {len(case_ids)} cases, held out {val_ids}")

    saved = work / "sides"
    saved.mkdir(exist_ok=True)

    # 1. nnU-Net v2 (its own venv, plan + preprocess + train in one sampled process each)
    model_folder = _nnunet.trained_model_folder(work / "nnunet", dataset_name=spec["name"])
    if not (args.reuse and (model_folder / _nnunet.TRAIN_RECORD_NAME).exists()):
        print(f"nnU-Net: plan, preprocess, train {args.epochs} x {per_epoch} iterations ...",
              flush=True)
        model_folder = _nnunet.train_nnunet(data, work / "nnunet", iterations=per_epoch,
                                            epochs=args.epochs, val_iterations=1,
                                            val_case_ids=val_ids)
    record = _nnunet.read_train_record(model_folder)
    sides = {"nnU-Net": {"iteration_seconds": _summary(record["iteration_seconds"]),
                         "peak_rss_gib": record["peak_rss_bytes"] / 2**30,
                         "process_seconds": record["plan_seconds"] + record["train_process_seconds"],
                         "patch_size": record["patch_size"], "batch_size": record["batch_size"]}}
    prediction = _nnunet.predict_nnunet(model_folder, list(images.values()), work / "pred_nnunet")
    sides["nnU-Net"]["dice"] = _score(dict(zip(images, prediction.paths)), refs, labels)

    # 2. medseg fp32 (equal precision), then bf16 autocast when the CPU has native bf16
    bf16_ok = cpu_bf16_supported()
    runs = [("medseg fp32", False)]
    if not args.no_bf16_training and bf16_ok:
        runs.append(("medseg bf16", True))
    for name, bf16 in runs:
        tag = name.split()[1]
        side_file = saved / f"medseg_{tag}.json"
        if args.reuse and side_file.exists():
            sides[name] = json.loads(side_file.read_text())
            print(f"{name}: reusing {side_file}")
            continue
        out_dir = work / f"medseg_{tag}"
        out_dir.mkdir(exist_ok=True)
        (out_dir / "splits.json").write_text(json.dumps([split], indent=1))
        print(f"{name}: plan, cache, train {args.epochs} x {per_epoch} iterations ...", flush=True)
        worker, run = _run_worker("train", {"dataset": str(data), "out_dir": str(out_dir),
                                            "epochs": args.epochs, "iterations_per_epoch": per_epoch,
                                            "bf16": bf16, "seed": args.seed},
                                  log_path=logs / f"medseg_train_{tag}.log")
        if worker["n_steps"] != args.iterations:
            raise SystemExit(f"{name} ran {worker['n_steps']} steps, expected {args.iterations}")
        sides[name] = {"iteration_seconds": _summary(worker["iteration_seconds"]),
                       "peak_rss_gib": run.peak_rss_bytes / 2**30, "process_seconds": run.seconds,
                       "patch_size": worker["patch_size"], "batch_size": worker["batch_size"],
                       "trainer_val_dice": worker["best_val_dice"],
                       "bundle_dir": worker["bundle_dir"]}
        side_file.write_text(json.dumps(sides[name], indent=1))
    for name, bf16 in runs:
        tag = name.split()[1]
        paths = _predict_medseg(Path(sides[name]["bundle_dir"]), images, work / f"pred_medseg_{tag}",
                                "bf16" if bf16 else "fp32")
        sides[name]["dice"] = _score(paths, refs, labels)
    if bf16_ok:  # does bf16 autocast at inference keep the fp32-trained model's Dice?
        paths = _predict_medseg(Path(sides["medseg fp32"]["bundle_dir"]), images,
                                work / "pred_medseg_fp32_bf16_inference", "bf16")
        results["fp32_model_bf16_inference_dice"] = _score(paths, refs, labels)
    results["training"] = sides

    # 3. single training steps on a fixed random batch, alternated round by round
    step_sides = [("medseg fp32", False)] + ([("medseg bf16", True)] if bf16_ok else [])
    steps: dict[str, list[float]] = {name: [] for name in ["nnU-Net", *[n for n, _ in step_sides]]}
    for round_index in range(args.step_rounds):
        print(f"single-step timings, round {round_index + 1}/{args.step_rounds} ...", flush=True)
        steps["nnU-Net"] += _nnunet.time_nnunet_step(model_folder, work / "nnunet",
                                                     steps=args.step_steps)["step_seconds"]
        for name, bf16 in step_sides:
            out, _ = _run_worker("step", {"plan": str(work / "medseg_fp32" / "plan.yaml"),
                                          "bf16": bf16, "steps": args.step_steps, "warmup": 1},
                                 log_path=logs / "medseg_step.log")
            steps[name] += out["step_seconds"]
    results["single_step_seconds"] = {k: _summary(v) for k, v in steps.items()}
    _report(results)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"results: {work / 'results.json'}")


def _report(results: dict) -> None:
    sides = results["training"]
    base = sides["nnU-Net"]
    print(f"\n{results['iterations']} iterations, patch {results['patch_size']}, batch "
          f"{results['batch_size']}, held-out {len(results['validation_cases'])} cases; "
          "2-core shared CPU")
    header = f"{'':28s}" + "".join(f"{name:>14s}" for name in sides)
    print(header)
    rows = [("s / iteration (median)", lambda s: s["iteration_seconds"]["median"], "{:.2f}"),
            ("s / iteration (mean)", lambda s: s["iteration_seconds"]["mean"], "{:.2f}"),
            ("iterations / s vs nnU-Net", lambda s: base["iteration_seconds"]["median"]
             / s["iteration_seconds"]["median"], "{:.2f}x"),
            ("peak RSS, process tree GiB", lambda s: s["peak_rss_gib"], "{:.2f}"),
            ("whole run incl. planning s", lambda s: s["process_seconds"], "{:.0f}"),
            ("held-out Dice (mean)", lambda s: s["dice"]["mean_dice"], "{:.3f}"),
            ("Dice - nnU-Net", lambda s: s["dice"]["mean_dice"] - base["dice"]["mean_dice"],
             "{:+.3f}")]
    for label, value, fmt in rows:
        print(f"{label:28s}" + "".join(f"{fmt.format(value(s)):>14s}" for s in sides.values()))
    if "fp32_model_bf16_inference_dice" in results:
        print("medseg fp32 model predicted with bf16 autocast: Dice "
              f"{results['fp32_model_bf16_inference_dice']['mean_dice']:.3f} (fp32 inference "
              f"{sides['medseg fp32']['dice']['mean_dice']:.3f})")
    steps = results["single_step_seconds"]
    if steps and all(v["n"] for v in steps.values()):
        ref = steps["nnU-Net"]["median"]
        print("single step, fixed batch (median s): " + ", ".join(
            f"{k} {v['median']:.2f} ({ref / v['median']:.2f}x nnU-Net)" for k, v in steps.items()))


if __name__ == "__main__":
    main()
