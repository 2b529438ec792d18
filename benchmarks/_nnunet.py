"""Drive nnU-Net v2 (in its own venv) from medseg's benchmarks: convert, plan, train, predict, time.

Shared by ``train_vs_nnunet.py`` and ``predict_vs_nnunet.py``; nnU-Net never enters medseg's env.

Setup once: ``bash benchmarks/setup_nnunet.sh`` (venv at ``/work/nnunet-venv``; another one with
``MEDSEG_NNUNET_VENV=/path``). nnU-Net's path variables (``nnUNet_raw``, ``nnUNet_preprocessed``,
``nnUNet_results``, ``nnUNet_extTrainer``) are set only in the environment of the subprocesses
started here, all under one ``work_dir``.

Public helpers
--------------
``train_nnunet(dataset_dir, work_dir, *, configuration="3d_fullres", iterations=50, epochs=1,
val_case_ids=None, ...) -> Path``
    Convert an MSD-layout dataset (``medseg.demo.make_dataset``) to nnU-Net raw layout, plan and
    preprocess it, and train fold 0 with the short-schedule trainer in ``nnunet_trainer/``
    (``iterations`` per epoch x ``epochs``). Returns the model folder (holds ``plans.json``,
    ``dataset.json``, ``fold_0/checkpoint_final.pth``). Timings and peak memory are in
    ``read_train_record(model_folder)``: step/iteration seconds from inside the trainer, and the
    peak RSS of the whole process tree (trainer + augmentation workers), sampled by ``run_sampled``.
``predict_nnunet(model_folder, input_files, out_dir, *, tta=False, step_size=0.5) -> NnunetPrediction``
    Load the model once (``nnUNetPredictor``, CPU) and predict each single-channel image file in
    turn; writes ``out_dir/<case_id>.nii.gz`` and returns the paths, load and per-case seconds and
    the peak RSS of the prediction process.
``time_nnunet_step(model_folder, work_dir, *, steps=5, warmup=1) -> list[float]``
    Seconds per nnU-Net training step (its network, loss, optimizer) on a fixed random batch,
    without data loading: the peer figure for network-only step timings.
``run_sampled(command, *, env=None, log_path=None) -> SampledRun``
    Run a command, sampling the summed RSS of its whole process tree (generic; used for medseg too).

Example (about 5 minutes on 2 cores)::

    from medseg.demo import make_dataset
    from benchmarks._nnunet import train_nnunet, predict_nnunet
    data = make_dataset("/tmp/ds", n_cases=20, shape=(64, 64, 64), spacing_mm=(1.5, 1.5, 2.0))
    model = train_nnunet(data, "/tmp/nnunet_work", iterations=50)
    result = predict_nnunet(model, sorted((data / "imagesTr").glob("*.nii.gz"))[:2], "/tmp/pred")
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.atomic import atomic_write_text
from medseg.errors import MedsegError

log = logging.getLogger(__name__)

DEFAULT_VENV = Path(os.environ.get("MEDSEG_NNUNET_VENV", "/work/nnunet-venv"))
TRAINER_NAME = "nnUNetTrainerMedsegBench"
TRAINER_DIR = Path(__file__).resolve().parent / "nnunet_trainer"
TRAIN_RECORD_NAME = "medseg_train_record.json"
DEFAULT_DATASET_ID = 501


class NnunetError(MedsegError):
    """nnU-Net (the benchmark peer) is missing or one of its steps failed."""


@dataclass(frozen=True)
class SampledRun:
    """A finished subprocess with its wall time and the peak RSS of its process tree."""

    returncode: int
    seconds: float
    peak_rss_bytes: int
    peak_rss_main_bytes: int


@dataclass(frozen=True)
class NnunetPrediction:
    """Outputs and timings of :func:`predict_nnunet`."""

    paths: list[Path]
    load_seconds: float
    case_seconds: dict[str, float]
    peak_rss_bytes: int
    extra: dict = field(default_factory=dict)


def case_id_from_path(path: str | Path) -> str:
    """``case_001_0000.nii.gz`` or ``case_001.nii.gz`` -> ``case_001``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if len(name) > 5 and name[-5] == "_" and name[-4:].isdigit():
        name = name[:-5]
    return name


def venv_python(venv: str | Path | None = None) -> Path:
    """The nnU-Net venv's interpreter; raises :class:`NnunetError` naming the setup script."""
    python = Path(venv or DEFAULT_VENV) / "bin" / "python"
    if not python.exists():
        raise NnunetError(f"nnU-Net venv not found at {python.parent.parent}; "
                          "create it with `bash benchmarks/setup_nnunet.sh` (or set MEDSEG_NNUNET_VENV)")
    return python


def nnunet_env(work_dir: str | Path, *, threads: int | None = None, **extra: str) -> dict[str, str]:
    """Environment for an nnU-Net subprocess, with its folders under ``work_dir``."""
    work = Path(work_dir).resolve()
    env = dict(os.environ)
    env.update({
        "nnUNet_raw": str(work / "nnUNet_raw"),
        "nnUNet_preprocessed": str(work / "nnUNet_preprocessed"),
        "nnUNet_results": str(work / "nnUNet_results"),
        "nnUNet_extTrainer": str(TRAINER_DIR),
        "nnUNet_compile": "f",  # torch.compile is not what users get on CPU and costs minutes here
        "MPLBACKEND": "agg",
    })
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update({k: str(v) for k, v in extra.items()})
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def _tree_rss(root_pid: int) -> tuple[int, int]:
    """(summed RSS of the process and all its descendants, RSS of the process itself) in bytes."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total, main = 0, 0
    for proc in procs:
        try:
            rss = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += rss
        if proc.pid == root_pid:
            main = rss
    return total, main


def run_sampled(command: Sequence[str], *, env: Mapping[str, str] | None = None,
                log_path: str | Path | None = None, interval_s: float = 0.2,
                check: bool = True, name: str | None = None) -> SampledRun:
    """Run ``command``, sampling the peak summed RSS of its process tree every ``interval_s``.

    stdout and stderr go to ``log_path`` (or are discarded). With ``check`` a non-zero exit
    raises :class:`NnunetError` quoting the log's tail.
    """
    label = name or Path(command[0]).name
    log_handle = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    peak = [0, 0]
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(list(map(str, command)), env=dict(env) if env else None,
                                stdout=log_handle, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                total, main = _tree_rss(proc.pid)
                peak[0], peak[1] = max(peak[0], total), max(peak[1], main)
                done.wait(interval_s)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = proc.wait()
        done.set()
        sampler.join()
    finally:
        if log_path:
            log_handle.close()
    seconds = time.perf_counter() - start
    if check and returncode != 0:
        tail = ""
        if log_path:
            tail = "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-25:])
        raise NnunetError(f"{label} failed with exit code {returncode} (log: {log_path}):\n{tail}")
    return SampledRun(returncode, seconds, peak[0], peak[1])


def convert_msd_dataset(dataset_dir: str | Path, raw_root: str | Path, *,
                        dataset_id: int = DEFAULT_DATASET_ID, name: str | None = None) -> Path:
    """Copy an MSD-layout dataset into nnU-Net v2 raw layout ``DatasetXXX_Name``.

    Images become ``imagesTr/<case>_0000.nii.gz``; labels keep ``<case>.nii.gz``; the
    ``dataset.json`` gets nnU-Net's ``channel_names``/``labels`` (name -> value)/``file_ending``.
    """
    source = Path(dataset_dir)
    spec_path = source / "dataset.json"
    if not spec_path.exists():
        raise NnunetError(f"{source}: no dataset.json; pass an MSD-layout folder "
                          "(e.g. one written by medseg.demo.make_dataset)")
    spec = json.loads(spec_path.read_text())
    name = name or str(spec.get("name", "Medseg")).replace(" ", "")
    target = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    if target.exists():
        shutil.rmtree(target)
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for entry in spec["training"]:
        image, label = source / entry["image"], source / entry["label"]
        case_id = case_id_from_path(image)
        shutil.copyfile(image, target / "imagesTr" / f"{case_id}_0000.nii.gz")
        shutil.copyfile(label, target / "labelsTr" / f"{case_id}.nii.gz")
    modality = spec.get("modality", {"0": "CT"})
    description = {
        "name": name,
        "channel_names": {str(k): v for k, v in modality.items()},
        "labels": {v: int(k) for k, v in sorted(spec["labels"].items(), key=lambda kv: int(kv[0]))},
        "numTraining": len(spec["training"]),
        "file_ending": ".nii.gz",
    }
    atomic_write_text(target / "dataset.json", json.dumps(description, indent=2))
    return target


def _bin(venv: str | Path | None, tool: str) -> Path:
    return venv_python(venv).parent / tool


def train_nnunet(dataset_dir: str | Path, work_dir: str | Path, *,
                 configuration: str = "3d_fullres", iterations: int = 50, epochs: int = 1,
                 val_iterations: int = 2, val_case_ids: Sequence[str] | None = None,
                 dataset_id: int = DEFAULT_DATASET_ID, threads: int | None = None,
                 venv: str | Path | None = None) -> Path:
    """Convert, plan+preprocess and train nnU-Net fold 0 for ``epochs`` x ``iterations``.

    Parameters
    ----------
    dataset_dir : path
        MSD-layout dataset (imagesTr/labelsTr/dataset.json).
    work_dir : path
        Holds nnUNet_raw/, nnUNet_preprocessed/, nnUNet_results/ and the logs.
    configuration : str
        nnU-Net configuration (``3d_fullres`` or ``2d``).
    iterations, epochs : int
        Training iterations per epoch and number of epochs (nnU-Net's poly LR decays per epoch).
    val_iterations : int
        nnU-Net's per-epoch pseudo-Dice batches (not counted in the iteration timings).
    val_case_ids : sequence of str, optional
        Cases held out for validation; written to ``splits_final.json`` as fold 0 so that the
        comparison uses the same held-out cases. Default: nnU-Net's own 5-fold split.

    Returns
    -------
    Path
        The model folder (``.../nnUNetTrainerMedsegBench__nnUNetPlans__3d_fullres``).
    """
    work = Path(work_dir).resolve()
    env = nnunet_env(work, threads=threads)
    raw = convert_msd_dataset(dataset_dir, env["nnUNet_raw"], dataset_id=dataset_id)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    record: dict = {"configuration": configuration, "dataset": str(raw)}
    planned = run_sampled(
        [_bin(venv, "nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", configuration,
         "-np", "2", "-npfp", "2", "--verify_dataset_integrity"],
        env=env, log_path=logs / "plan_and_preprocess.log", name="nnUNetv2_plan_and_preprocess")
    record["plan_seconds"] = planned.seconds
    preprocessed = Path(env["nnUNet_preprocessed"]) / raw.name
    if val_case_ids is not None:
        all_ids = sorted(case_id_from_path(p) for p in (raw / "labelsTr").glob("*.nii.gz"))
        missing = sorted(set(val_case_ids) - set(all_ids))
        if missing:
            raise NnunetError(f"validation cases {missing} are not in {raw}; valid ids: {all_ids}")
        split = [{"train": [c for c in all_ids if c not in set(val_case_ids)],
                  "val": list(val_case_ids)}]
        atomic_write_text(preprocessed / "splits_final.json", json.dumps(split, indent=2))
    model_folder = trained_model_folder(work, dataset_name=raw.name.split("_", 1)[1],
                                        dataset_id=dataset_id, configuration=configuration)
    timings_path = work / "nnunet_timings.json"
    train_env = dict(env, MEDSEG_NNUNET_EPOCHS=str(epochs), MEDSEG_NNUNET_ITERATIONS=str(iterations),
                     MEDSEG_NNUNET_VAL_ITERATIONS=str(val_iterations),
                     MEDSEG_NNUNET_TIMINGS=str(timings_path))
    log.info("training nnU-Net %s for %d x %d iterations", configuration, epochs, iterations)
    trained = run_sampled(
        [_bin(venv, "nnUNetv2_train"), str(dataset_id), configuration, "0", "-tr", TRAINER_NAME,
         "-device", "cpu"],
        env=train_env, log_path=logs / "train.log", name="nnUNetv2_train")
    record.update(json.loads(timings_path.read_text()))
    record.update(train_process_seconds=trained.seconds, peak_rss_bytes=trained.peak_rss_bytes,
                  peak_rss_main_bytes=trained.peak_rss_main_bytes)
    summary = model_folder / "fold_0" / "validation" / "summary.json"
    if summary.exists():
        record["nnunet_validation_dice"] = json.loads(summary.read_text())["foreground_mean"]["Dice"]
    atomic_write_text(model_folder / TRAIN_RECORD_NAME, json.dumps(record, indent=2))
    return model_folder


def trained_model_folder(work_dir: str | Path, *, dataset_name: str,
                         dataset_id: int = DEFAULT_DATASET_ID,
                         configuration: str = "3d_fullres") -> Path:
    """Where :func:`train_nnunet` puts the model for this dataset (it may not exist yet)."""
    name = f"Dataset{dataset_id:03d}_{dataset_name.replace(' ', '')}"
    return (Path(work_dir).resolve() / "nnUNet_results" / name
            / f"{TRAINER_NAME}__nnUNetPlans__{configuration}")


def read_train_record(model_folder: str | Path) -> dict:
    """Timings/memory written by :func:`train_nnunet` (``step_seconds``, ``peak_rss_bytes``, ...)."""
    return json.loads((Path(model_folder) / TRAIN_RECORD_NAME).read_text())


#: Tail of every nnU-Net predict worker script: time each case from file to file, write the record.
#: The head sets up ``args``, ``t0`` (before loading) and ``predictor``.
TIMED_CASES_SCRIPT = r"""
load_s = time.perf_counter() - t0
seconds = {}
for case_id, image, out in args["cases"]:
    t = time.perf_counter()
    predictor.predict_from_files_sequential([[image]], [out], save_probabilities=False,
                                            overwrite=True)
    seconds[case_id] = time.perf_counter() - t
with open(args["record"], "w") as handle:
    json.dump({"load_seconds": load_s, "case_seconds": seconds}, handle)
"""

_PREDICT_SCRIPT = r"""
import json, sys, time
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
t0 = time.perf_counter()
predictor = nnUNetPredictor(tile_step_size=args["step_size"], use_gaussian=True,
                            use_mirroring=args["tta"], perform_everything_on_device=False,
                            device=torch.device("cpu"), allow_tqdm=False)
predictor.initialize_from_trained_model_folder(args["model_folder"], use_folds=(args["fold"],),
                                               checkpoint_name=args["checkpoint"])
""" + TIMED_CASES_SCRIPT


def predict_nnunet(model_folder: str | Path, input_files: Sequence[str | Path],
                   out_dir: str | Path, *, fold: int = 0, tta: bool = False, step_size: float = 0.5,
                   checkpoint: str = "checkpoint_final.pth", threads: int = 2,
                   venv: str | Path | None = None) -> NnunetPrediction:
    """Predict single-channel images with a trained nnU-Net model, loaded once, on CPU.

    Writes ``out_dir/<case_id>.nii.gz`` (case id from the file name, ``_0000`` stripped) and
    returns :class:`NnunetPrediction` (paths in input order, seconds, peak RSS).
    """
    model_folder = Path(model_folder)
    if not (model_folder / f"fold_{fold}" / checkpoint).exists():
        raise NnunetError(f"{model_folder}: no fold_{fold}/{checkpoint}; train it with train_nnunet")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cases = [(case_id_from_path(f), str(Path(f).resolve()), str(out / case_id_from_path(f)))
             for f in input_files]
    record = out / "nnunet_predict_record.json"
    args = {"threads": threads, "step_size": step_size, "tta": tta, "fold": fold,
            "checkpoint": checkpoint, "model_folder": str(model_folder.resolve()),
            "cases": cases, "record": str(record)}
    env = nnunet_env(out / ".nnunet_env", threads=threads)
    run = run_sampled([venv_python(venv), "-c", _PREDICT_SCRIPT, json.dumps(args)], env=env,
                      log_path=out / "nnunet_predict.log", name="nnUNetPredictor")
    timings = json.loads(record.read_text())
    return NnunetPrediction(paths=[Path(c[2] + ".nii.gz") for c in cases],
                            load_seconds=timings["load_seconds"], case_seconds=timings["case_seconds"],
                            peak_rss_bytes=run.peak_rss_bytes)


_STEP_SCRIPT = r"""
import json, sys, time
import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
plans = load_json(args["plans"])
plans["continue_training"] = False  # nnUNetv2_train adds this key before building a trainer
trainer_cls = recursive_find_trainer_class_by_name(args["trainer"])
trainer = trainer_cls(plans, args["configuration"], 0, load_json(args["dataset_json"]),
                      torch.device("cpu"))
trainer.initialize()
trainer.network.train()
patch = trainer.configuration_manager.patch_size
b = trainer.batch_size
data = torch.randn(b, trainer.num_input_channels, *patch)
target = torch.randint(0, trainer.label_manager.num_segmentation_heads, (b, 1, *patch)).float()
scales = trainer._get_deep_supervision_scales() or [[1.0] * len(patch)]
targets = [torch.nn.functional.interpolate(target, scale_factor=tuple(s), mode="nearest-exact")
           if any(x != 1 for x in s) else target for s in scales]
seconds = []
for i in range(args["warmup"] + args["steps"]):
    t = time.perf_counter()
    trainer.train_step({"data": data, "target": targets if trainer.enable_deep_supervision else target})
    if i >= args["warmup"]:
        seconds.append(time.perf_counter() - t)
print(json.dumps({"step_seconds": seconds, "batch_size": b, "patch_size": list(patch),
                  "network": type(trainer.network).__name__}))
"""


def time_nnunet_step(model_folder: str | Path, work_dir: str | Path, *, steps: int = 5,
                     warmup: int = 1, configuration: str = "3d_fullres", threads: int = 2,
                     venv: str | Path | None = None) -> dict:
    """Time nnU-Net training steps (its network, deep-supervision loss, SGD) on a random batch.

    Uses the ``plans.json``/``dataset.json`` of a trained ``model_folder``; the preprocessed
    data must still be under ``work_dir`` (the trainer checks it). Returns a dict with
    ``step_seconds`` (one per timed step), ``batch_size``, ``patch_size``, ``network``.
    """
    model_folder = Path(model_folder)
    work = Path(work_dir).resolve()
    scratch = work / "step_timing_results"
    env = nnunet_env(work, threads=threads, nnUNet_results=str(scratch))
    args = {"plans": str(model_folder / "plans.json"), "dataset_json": str(model_folder / "dataset.json"),
            "trainer": TRAINER_NAME, "configuration": configuration, "steps": steps,
            "warmup": warmup, "threads": threads}
    proc = subprocess.run([str(venv_python(venv)), "-c", _STEP_SCRIPT, json.dumps(args)], env=env,
                          capture_output=True, text=True)
    shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        raise NnunetError(f"nnU-Net step timing failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
