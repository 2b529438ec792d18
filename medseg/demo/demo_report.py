"""Assemble the demo's HTML report: data, training curves, overlays, metrics and measurements.

Figures are embedded in ``report.html`` and also saved as PNGs under ``figures/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseg.atomic import atomic_write_bytes
from medseg.demo.report import HtmlReport
from medseg.errors import MedsegError

__all__ = ["build_report", "METRIC_COLUMNS", "MEASURE_COLUMNS"]

log = logging.getLogger(__name__)

#: Columns of the measurements table shown in the report (the CSV has them all).
MEASURE_COLUMNS = ["case_id", "label", "label_name", "volume_ml", "max_diameter_mm", "axial_long_mm",
                   "axial_short_mm", "surface_area_mm2", "sphericity", "mean_hu", "std_hu",
                   "touches_border"]
#: Columns of the metrics table shown in the report (when present).
METRIC_COLUMNS = ["case_id", "label", "label_name", "dice", "hd95_mm", "assd_mm", "nsd_1mm",
                  "volume_ref_ml", "volume_pred_ml"]


class _Figures:
    """Adds figures to the report and writes the same PNG bytes under ``figures/``."""

    def __init__(self, report: HtmlReport, folder: Path) -> None:
        self.report = report
        self.folder = folder
        self.paths: list[Path] = []

    def add(self, fig, name: str, caption: str) -> None:
        png = self.report.add_figure(fig, caption=caption)
        self.paths.append(atomic_write_bytes(self.folder / f"{name}.png", png))


def _versions(seed: int) -> dict[str, str]:
    """The report's environment row: the shared provenance record plus the thread count."""
    import torch

    from medseg.provenance import provenance_record

    record = provenance_record(seed=seed)
    return {"medseg": record["medseg_version"], **record["versions"], "seed": str(seed),
            "torch threads": str(torch.get_num_threads()), "created (UTC)": record["created_utc"]}


def _summary_by_label(metrics: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ("dice", "hd95_mm", "nsd_1mm", "volume_ref_ml", "volume_pred_ml")
               if c in metrics.columns]
    key = "label_name" if "label_name" in metrics.columns else "label"
    finite = metrics[[key, *columns]].replace([np.inf, -np.inf], np.nan)
    return finite.groupby(key, sort=False).mean().reset_index()


def _data_section(report: HtmlReport, figures: _Figures, dataset: Any, n_held_out: int,
                  shape_note: str) -> None:
    import medseg
    from medseg.viz import show_slices

    report.add_heading("1. Data")
    labels = {int(k): v for k, v in dataset.labels.items() if int(k) != 0}
    report.add_text(
        f"A synthetic CT-like abdominal dataset in the Medical Segmentation Decathlon layout "
        f"(imagesTr/labelsTr/dataset.json), loaded with medseg.data.load_dataset: "
        f"{len(dataset.cases)} training cases and {n_held_out} held-out cases, {shape_note}. "
        f"Labels: {', '.join(f'{k} {v}' for k, v in labels.items())}."
    )
    first = dataset.cases[0]
    image = medseg.read(first.image_paths[0], kind="image")
    reference = medseg.read(first.label_path, kind="labels").replace(labels=labels)
    figures.add(show_slices(image, reference, title=f"training case {first.case_id}"),
                "data_training_case", f"Training case {first.case_id} with its reference labels "
                "(radiological convention: patient's right on the viewer's left).")


def _training_section(report: HtmlReport, figures: _Figures, train_result: Any, minutes: float,
                      out_dir: Path) -> None:
    from medseg.viz import plot_training_curves

    history = train_result.history
    report.add_heading("2. Training")
    seconds = float(history["seconds"].sum()) if "seconds" in history.columns else float("nan")
    report.add_text(
        f"medseg.training.train ran {len(history)} epoch(s) in {seconds:.0f} s "
        f"(budget {minutes:g} min); best validation Dice {float(train_result.best_val_dice):.3f}. "
        f"Run folder: {_relative(train_result.run_dir, out_dir)} (plan.yaml, config.yaml, "
        f"splits.json, checkpoints, metrics.csv); model bundle: "
        f"{_relative(train_result.bundle_dir, out_dir)}."
    )
    figures.add(plot_training_curves(history), "training_curves",
                "Training loss, validation Dice and learning rate per epoch.")
    report.add_table(history, caption="Training history (one row per epoch)")


def _prediction_section(report: HtmlReport, figures: _Figures, cases: list, out_dir: Path) -> None:
    from medseg.viz import show_slices

    report.add_heading("3. Held-out cases: DICOM in, NIfTI and DICOM-SEG out")
    report.add_text(
        "Each held-out case was written as a CT DICOM series (medseg.io.dicom_write), read back with "
        "medseg.io.read_dicom_series, segmented by medseg.inference.Predictor, and the labels "
        "written as NIfTI and as DICOM-SEG referencing the series (medseg.io.dicom_seg). The SEG "
        "was read back and compared voxel by voxel with the prediction."
    )
    rows = [{"case_id": c.case_id, "DICOM series": _relative(c.dicom_dir, out_dir),
             "prediction NIfTI": _relative(c.prediction_path, out_dir),
             "DICOM-SEG": _relative(c.dicom_seg_path, out_dir),
             "SEG read back equals prediction": c.dicom_seg_matches} for c in cases]
    report.add_table(pd.DataFrame(rows), caption="Files written per held-out case")
    for case in cases:
        figures.add(show_slices(case.image, case.reference, prediction=case.prediction,
                                title=f"held-out case {case.case_id}"),
                    f"overlay_{case.case_id}",
                    f"{case.case_id}: reference (top) and prediction (bottom) over the CT "
                    "read from DICOM; axial, coronal, sagittal planes in mm proportions.")


def _metrics_section(report: HtmlReport, figures: _Figures, metrics: pd.DataFrame,
                     measurements: pd.DataFrame) -> None:
    from medseg.viz import plot_metric_boxes

    report.add_heading("4. Metrics (medseg.metrics.evaluate)")
    report.add_text(
        "Dice, HD95 (larger of the two directed 95th percentiles, mm), ASSD and NSD at 1 mm "
        "tolerance (surface-distance surfels) for each held-out case and label; volumes in mL. "
        "Also written to metrics.csv."
    )
    report.add_table(_summary_by_label(metrics), caption="Mean over held-out cases per label")
    report.add_table(metrics[[c for c in METRIC_COLUMNS if c in metrics.columns]],
                     caption="Per-case metrics")
    try:
        figures.add(plot_metric_boxes(metrics), "metric_boxes",
                    "Distribution of each metric per label over the held-out cases.")
    except MedsegError as exc:
        report.add_text(f"Metric box plot unavailable: {exc}")
    report.add_heading("5. Measurements (medseg.measure.measure)")
    report.add_text("Per-structure measurements of the predicted label maps: volume, largest 3D "
                    "and axial diameters, surface area, sphericity and CT numbers. All "
                    f"{measurements.shape[1]} columns are in measurements.csv.")
    shown = [c for c in MEASURE_COLUMNS if c in measurements.columns] or list(measurements.columns)
    report.add_table(measurements[shown], caption="Measurements of the predicted structures")


def _sample_section(report: HtmlReport, figures: _Figures) -> None:
    from medseg.demo.samples import load_sample
    from medseg.viz import show_slices

    report.add_heading("6. Real sample data")
    try:
        sample = load_sample("chest_ct")
    except MedsegError as exc:
        report.add_text(f"The real chest CT sample is not available here: {exc}")
        return
    report.add_text(
        f"{sample.info.description}. Read with medseg.read from the files shipped in the "
        f"'{sample.info.package}' package; licence: {sample.info.licence}. Not used for training."
    )
    figures.add(show_slices(sample.image, sample.labels, window="lung", title="chest_ct sample"),
                "sample_chest_ct", "The chest CT sample with its 3D Slicer segmentation.")


def _relative(path: Any, root: Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def build_report(
    out_dir: Path,
    *,
    dataset: Any,
    train_result: Any,
    cases: list,
    metrics: pd.DataFrame,
    measurements: pd.DataFrame,
    timings_s: dict[str, float],
    seed: int,
    minutes: float,
    shape_note: str = "",
) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/figures/*.png``.

    Parameters
    ----------
    out_dir : Path
        The demo folder.
    dataset, train_result, cases
        The loaded dataset, the ``TrainResult`` and the held-out cases of :func:`run_demo`.
    metrics, measurements : pandas.DataFrame
        Tables from ``medseg.metrics.evaluate`` and ``medseg.measure.measure``.
    timings_s : dict
        Seconds per stage so far.
    seed, minutes
        The demo's options, recorded in the report.

    Returns
    -------
    Path
        The report file.
    """
    report = HtmlReport("medseg demo report")
    figures = _Figures(report, Path(out_dir) / "figures")
    dice = metrics.groupby("label_name", sort=False)["dice"].mean() if "dice" in metrics else None
    summary = ", ".join(f"{name} {value:.3f}" for name, value in dice.items()) if dice is not None \
        else "n/a"
    report.add_text(
        f"Everything below was computed on this machine in one run of medseg demo "
        f"(seed {seed}, training budget {minutes:g} min), with no downloads. Mean held-out Dice: "
        f"{summary}."
    )
    report.add_list([f"{stage}: {seconds:.1f} s" for stage, seconds in timings_s.items()])
    _data_section(report, figures, dataset, len(cases), shape_note or "CT-like phantoms in HU")
    _training_section(report, figures, train_result, minutes, Path(out_dir))
    _prediction_section(report, figures, cases, Path(out_dir))
    _metrics_section(report, figures, metrics, measurements)
    _sample_section(report, figures)
    report.add_heading("Environment")
    report.add_table(pd.DataFrame([_versions(seed)]), caption="Versions")
    path = report.write(Path(out_dir) / "report.html")
    log.info("wrote %s and %d figure(s) in %s", path, len(figures.paths), figures.folder)
    return path
