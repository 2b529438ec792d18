"""The end-to-end demo: synthetic data -> training -> DICOM round trip -> prediction -> metrics -> report.

``run_demo`` is the Python API behind ``medseg demo``; every step calls the public medseg API.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medseg.atomic import atomic_path
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume

__all__ = ["DemoResult", "HeldOutCase", "run_demo"]

log = logging.getLogger(__name__)

#: Default synthetic data: 48^3 voxels over the phantom's 96 x 96 x 120 mm field of view.
DEMO_SHAPE = (48, 48, 48)
DEMO_SPACING_MM = (2.0, 2.0, 2.5)


@dataclass(frozen=True)
class HeldOutCase:
    """One held-out case of the demo, with every file written for it."""

    case_id: str
    image: Volume
    reference: Volume
    prediction: Volume
    dicom_dir: Path
    prediction_path: Path
    dicom_seg_path: Path
    dicom_seg_matches: bool


@dataclass(frozen=True)
class DemoResult:
    """What ``run_demo`` produced.

    ``metrics`` has one row per (held-out case, label) with Dice, HD95, NSD
    and volumes; ``measurements`` one row per (case, label) of the predicted
    label maps; ``timings_s`` the seconds of each stage.
    """

    out_dir: Path
    report_path: Path
    metrics: pd.DataFrame
    measurements: pd.DataFrame
    dataset_dir: Path
    run_dir: Path
    bundle_dir: Path
    history: pd.DataFrame
    best_val_dice: float
    cases: list[HeldOutCase] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


def _demo_config(minutes: float):
    """The ``tiny3d`` preset with its epochs scaled to the time budget.

    ``tiny3d`` is sized to train in about a minute on 2 CPU cores, so ``minutes`` times its epochs
    lets the learning-rate schedule span the run; ``max_minutes`` still stops slower machines.
    """
    import dataclasses

    from medseg.training.config import resolve_config

    config, _ = resolve_config("tiny3d")
    # Validate every epoch: the report's curves and the bundle's best-epoch choice need the points.
    return dataclasses.replace(config, epochs=max(config.epochs, int(round(config.epochs * minutes))),
                               val_every=1)


@dataclass(frozen=True)
class _CaseFiles:
    case_id: str
    image_paths: list[Path]
    label_path: Path


def _held_out_files(dataset_dir: Path) -> list[_CaseFiles]:
    """The test cases ``make_dataset`` wrote (imagesTs/labelsTs), never seen in training."""
    import json

    description = json.loads((dataset_dir / "dataset.json").read_text())
    files = []
    for entry in description.get("test", []):
        image = (dataset_dir / entry).resolve()
        case_id = image.name.removesuffix(".nii.gz")
        files.append(_CaseFiles(case_id, [image], dataset_dir / "labelsTs" / image.name))
    return files


def _reference_on(prediction: Volume, reference: Volume) -> Volume:
    """The reference label map on the prediction's voxel grid (exact for permuted grids)."""
    oriented = reference.reorient(prediction.orientation)
    if oriented.same_grid(prediction):
        return oriented.replace(affine=prediction.affine)
    log.info("%s: resampling the reference onto the prediction grid", reference.source)
    return reference.resample_like(prediction, order=0)


def _predict_case(predictor, case, out_dir: Path, label_names: dict[int, str]) -> HeldOutCase:
    """DICOM round trip of one held-out case: write series, read it, predict, write NIfTI and SEG."""
    import medseg
    from medseg.io import read_dicom_series
    from medseg.io.dicom_seg import read_dicom_seg, write_dicom_seg
    from medseg.io.dicom_write import write_dicom_series

    image = medseg.read(case.image_paths[0], kind="image")
    reference = medseg.read(case.label_path, kind="labels").replace(labels=label_names)
    dicom_dir = out_dir / "dicom" / case.case_id
    shutil.rmtree(dicom_dir, ignore_errors=True)  # the series writer wants an empty folder
    write_dicom_series(image, dicom_dir, modality="CT", patient_id=case.case_id,
                       series_description=f"medseg demo {case.case_id}",
                       uid_seed=f"medseg-demo-{case.case_id}")
    dicom_image = read_dicom_series(dicom_dir)
    prediction = predictor(dicom_image)
    prediction = prediction.replace(labels={v: label_names.get(v, n)
                                            for v, n in prediction.labels.items()})
    predictions = out_dir / "predictions"
    prediction_path = medseg.write(prediction, predictions / f"{case.case_id}.nii.gz")
    seg_path = write_dicom_seg(prediction, dicom_image, predictions / f"{case.case_id}_seg.dcm",
                               label_names=prediction.labels, algorithm_name="medseg demo",
                               uid_seed=f"medseg-demo-seg-{case.case_id}")
    from_seg = read_dicom_seg(seg_path, reference=dicom_image)
    matches = bool(from_seg.same_grid(prediction)
                   and np.array_equal(from_seg.array, prediction.array))
    return HeldOutCase(case_id=case.case_id, image=dicom_image,
                       reference=_reference_on(prediction, reference), prediction=prediction,
                       dicom_dir=dicom_dir, prediction_path=Path(prediction_path),
                       dicom_seg_path=Path(seg_path), dicom_seg_matches=matches)


_MARKER = ".medseg-demo"


def _prepare_out_dir(out: Path) -> Path:
    """Create the demo folder, or clear the previous demo run in it (never a foreign folder)."""
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise InvalidArgumentError(
            f"{out}: folder is not empty and was not written by `medseg demo`; choose a new or "
            "empty --out folder"
        )
    for name in ("training", "dicom", "predictions", "figures"):
        if (out / name).exists():
            log.info("demo: replacing the previous run's %s", out / name)
            shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("This folder was written by `medseg demo`; rerunning replaces it.\n")
    return out


def _write_csv(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def run_demo(
    out_dir: str | Path = "medseg-demo",
    *,
    minutes: float = 3.0,
    seed: int = 0,
    n_train: int = 10,
    n_test: int = 2,
    shape: Sequence[int] = DEMO_SHAPE,
    spacing_mm: Sequence[float] = DEMO_SPACING_MM,
    progress: bool = True,
) -> DemoResult:
    """Run medseg end to end on CPU in a few minutes and write an HTML report.

    Steps: write a synthetic CT dataset (MSD layout) -> load it -> train a
    small 3D U-Net for at most ``minutes`` -> write each held-out case as a
    DICOM series, read it back and segment it -> write NIfTI and DICOM-SEG
    predictions (and read the SEG back to check it) -> evaluate Dice, HD95,
    NSD and measure volumes -> ``report.html`` with overlays, training curves
    and tables. Nothing is downloaded.

    Parameters
    ----------
    out_dir : str or Path
        Folder for everything the demo writes (created; rerunning reuses it).
    minutes : float
        Training time budget (the trainer's ``max_minutes``); the ``tiny3d``
        preset's epochs are scaled by it, and training stops after the epoch
        that crosses the budget.
    seed : int
        Seed of the data generator and the training run. Runs with the same
        seed repeat bit for bit when they complete the same number of epochs;
        a budget that cuts training short makes that number machine-dependent.
    n_train, n_test : int
        Synthetic training and held-out cases.
    shape, spacing_mm
        Voxel grid of the synthetic cases.
    progress : bool
        Show progress bars (training epochs, held-out cases).

    Returns
    -------
    DemoResult
        Report path, metrics and measurements tables, and the files written.

    Examples
    --------
    >>> result = run_demo("medseg-demo", minutes=2)  # doctest: +SKIP
    >>> result.report_path                            # doctest: +SKIP
    PosixPath('medseg-demo/report.html')
    """
    from tqdm.auto import tqdm

    from medseg.data import load_dataset
    from medseg.demo.demo_report import build_report
    from medseg.demo.synthetic_dataset import make_dataset
    from medseg.inference import Predictor
    from medseg.measure import measure
    from medseg.metrics import evaluate
    from medseg.training import train

    if not minutes > 0:
        raise InvalidArgumentError(f"minutes must be positive, got {minutes}; e.g. --minutes 3")
    if n_train < 2 or n_test < 1:
        raise InvalidArgumentError(
            f"the demo needs at least 2 training and 1 held-out case, got {n_train} and {n_test}"
        )
    out = _prepare_out_dir(Path(out_dir))
    timings: dict[str, float] = {}

    start = time.perf_counter()
    log.info("demo: writing %d synthetic CT cases (+%d held out) to %s", n_train, n_test,
             out / "data")
    dataset_dir = make_dataset(out / "data", n_cases=n_train, n_test=n_test, shape=shape,
                               spacing_mm=spacing_mm, seed=seed, name="Phantom")
    dataset = load_dataset(dataset_dir)
    held_out = _held_out_files(dataset_dir)
    timings["data"] = time.perf_counter() - start

    start = time.perf_counter()
    log.info("demo: training a small 3D U-Net for up to %.1f min on %d cases", minutes,
             len(dataset.cases))
    result = train(dataset, out_dir=out / "training", config=_demo_config(minutes), seed=seed,
                   max_minutes=minutes, progress=progress)
    timings["training"] = time.perf_counter() - start

    start = time.perf_counter()
    predictor = Predictor.from_bundle(result.bundle_dir, device="auto")  # GPU when visible
    label_names = {int(k): str(v) for k, v in dataset.labels.items() if int(k) != 0}
    held: list[HeldOutCase] = []
    for case in tqdm(held_out, desc="held-out cases", unit="case", disable=not progress):
        held.append(_predict_case(predictor, case, out, label_names))
    timings["prediction"] = time.perf_counter() - start

    start = time.perf_counter()
    metric_rows, measure_rows = [], []
    for case in held:
        metric_rows.append(evaluate(case.prediction, case.reference, labels=label_names,
                                    case_id=case.case_id))
        table = measure(case.prediction, case.image)
        table.insert(0, "case_id", case.case_id)
        measure_rows.append(table)
    metrics = pd.concat(metric_rows, ignore_index=True)
    measurements = pd.concat(measure_rows, ignore_index=True)
    _write_csv(metrics, out / "metrics.csv")
    _write_csv(measurements, out / "measurements.csv")
    timings["evaluation"] = time.perf_counter() - start

    start = time.perf_counter()
    report_path = build_report(out, dataset=dataset, train_result=result, cases=held,
                               metrics=metrics, measurements=measurements, timings_s=timings,
                               seed=seed, minutes=minutes,
                               shape_note=f"{'x'.join(str(int(n)) for n in shape)} voxels of "
                                          f"{'x'.join(f'{float(v):g}' for v in spacing_mm)} mm")
    timings["report"] = time.perf_counter() - start
    log.info("demo: report written to %s", report_path)
    return DemoResult(out_dir=out, report_path=report_path, metrics=metrics,
                      measurements=measurements, dataset_dir=Path(dataset_dir),
                      run_dir=Path(result.run_dir), bundle_dir=Path(result.bundle_dir),
                      history=result.history, best_val_dice=float(result.best_val_dice),
                      cases=held, timings_s=timings)
