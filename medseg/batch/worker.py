"""Per-case work of a batch run: read, predict, write outputs; Predictors cached per process.

Used by the local pipeline (threads) and by Dask workers, which load each model once.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medseg.batch.cases import Case, read_case
from medseg.errors import InferenceError, MedsegError
from medseg.inference import Predictor
from medseg.volume import Volume

__all__ = ["PredictorOptions", "OutputOptions", "predictor_for", "load_case", "write_outputs",
           "run_case", "describe_error"]

log = logging.getLogger(__name__)

_KNOWN_MODALITIES = {"CT", "MR", "PT", "US", "NM", "CR", "DX", "XA"}
_PREDICTORS: dict[tuple, Predictor] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class PredictorOptions:
    """What identifies a loaded model: bundle folders and prediction settings (hashable)."""

    bundles: tuple[str, ...]
    device: str = "auto"
    tta: bool = False
    overlap: float = 0.5
    memory_budget_mb: float | None = None
    precision: str = "auto"


@dataclass(frozen=True)
class OutputOptions:
    """Which per-case outputs to write."""

    write_dicom_seg: bool = True
    measure: bool = True
    overlays: bool = False


def predictor_for(options: PredictorOptions) -> Predictor:
    """The process-wide Predictor for ``options``: loaded on first use, then reused."""
    key = tuple(asdict(options).items())
    with _LOCK:
        if key not in _PREDICTORS:
            log.info("loading model %s", ", ".join(options.bundles))
            _PREDICTORS[key] = Predictor.from_bundle(
                list(options.bundles), device=options.device, tta=options.tta,
                overlap=options.overlap, memory_budget_mb=options.memory_budget_mb,
                precision=options.precision)
        return _PREDICTORS[key]


def describe_error(exc: BaseException) -> str:
    """One line for the manifest: the MedsegError message, or the exception type and text."""
    if isinstance(exc, MedsegError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError); lower memory_budget_mb or use fewer workers"
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"


def _check_modality(case: Case, volume: Volume, predictor: Predictor) -> None:
    wanted = (predictor.spec.channel_names or ("",))[0].upper()
    found = str(volume.meta.get("modality") or case.modality or "").upper()
    if wanted in _KNOWN_MODALITIES and found in _KNOWN_MODALITIES and found != wanted:
        raise InferenceError(
            f"{case.case_id} ({case.path}): wrong modality {found}; the model expects {wanted}. "
            "Select series with --modality/--series-include or use a model for this modality"
        )


def load_case(case: Case, predictor: Predictor) -> tuple[Volume, Volume, float]:
    """Read and preprocess one case; returns (image, network-grid image, seconds)."""
    start = time.perf_counter()
    volume = read_case(case)
    _check_modality(case, volume, predictor)
    return volume, predictor.preprocess(volume), time.perf_counter() - start


def write_outputs(case: Case, volume: Volume, labels: Volume, output_dir: Path,
                  options: OutputOptions) -> dict[str, Any]:
    """Write the case's label NIfTI, DICOM-SEG, measurements CSV and overlay PNG (atomically)."""
    import medseg

    outputs: dict[str, Any] = {}
    labels_path = output_dir / "labels" / f"{case.case_id}.nii.gz"
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    medseg.write(labels, labels_path)
    outputs["labels"] = str(labels_path)
    if options.write_dicom_seg and case.kind == "dicom":
        if labels.array.any():
            from medseg.io.dicom_seg import write_dicom_seg

            seg_path = output_dir / "seg" / f"{case.case_id}.dcm"
            write_dicom_seg(labels, volume, seg_path, uid_seed=f"{case.series_uid}/{case.case_id}")
            outputs["dicom_seg"] = str(seg_path)
        else:
            outputs["dicom_seg_note"] = "prediction is empty; no DICOM-SEG written"
    if options.measure:
        from medseg.atomic import atomic_path
        from medseg.measure import measure

        table = measure(labels, volume, case_id=case.case_id)
        table_path = output_dir / "measurements" / f"{case.case_id}.csv"
        with atomic_path(table_path) as tmp:
            table.to_csv(tmp, index=False)
        outputs["measurements"] = str(table_path)
    if options.overlays:
        from medseg.viz import save_figure, show_slices

        figure = show_slices(volume, prediction=labels, title=case.case_id)
        overlay_path = output_dir / "overlays" / f"{case.case_id}.png"
        save_figure(figure, overlay_path)
        outputs["overlay"] = str(overlay_path)
    return outputs


def run_case(case: Case, output_dir: str | Path, predictor_options: PredictorOptions,
             output_options: OutputOptions) -> dict[str, Any]:
    """Read, predict and write one case; never raises for a bad case (returns status/error)."""
    output_dir = Path(output_dir)
    timings: dict[str, float] = {}
    try:
        predictor = predictor_for(predictor_options)
        volume, preprocessed, timings["read"] = load_case(case, predictor)
        start = time.perf_counter()
        labels = predictor.predict(volume, preprocessed=preprocessed)[0]
        timings["predict"] = time.perf_counter() - start
        start = time.perf_counter()
        outputs = write_outputs(case, volume, labels, output_dir, output_options)
        timings["write"] = time.perf_counter() - start
    except Exception as exc:  # one bad case must not stop the batch
        log.warning("%s failed: %s", case.case_id, describe_error(exc))
        return {"case_id": case.case_id, "status": "failed", "error": describe_error(exc),
                "timings": timings, "outputs": {}}
    return {"case_id": case.case_id, "status": "done", "error": None, "timings": timings,
            "outputs": outputs}
