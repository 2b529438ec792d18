"""``medseg.batch.run``: segment and measure a cohort, resumably, locally or on Dask.

Reading overlaps model compute (thread pool); a bad case is recorded in the manifest and the batch goes on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medseg.atomic import atomic_path
from medseg.batch.cases import Case, case_input_hash, discover_cases
from medseg.batch.manifest import Manifest
from medseg.batch.worker import (
    OutputOptions,
    PredictorOptions,
    describe_error,
    load_case,
    predictor_for,
    run_case,
    write_outputs,
)
from medseg.errors import InputNotFoundError, InvalidArgumentError
from medseg.inference import Predictor

__all__ = ["BatchResult", "run"]

log = logging.getLogger(__name__)

TABLE_NAME = "measurements.csv"


@dataclass(frozen=True)
class BatchResult:
    """Outcome of :func:`run`: where the manifest and table are, and case counts."""

    output_dir: Path
    manifest_path: Path
    table_path: Path | None
    done: int
    failed: int
    skipped: int
    cases: pd.DataFrame

    @property
    def exit_code(self) -> int:
        """0 when every case is done (or skipped), 1 when some failed."""
        return 0 if self.failed == 0 else 1


def _bundle_paths(model: str | Path | Sequence[str | Path] | Predictor) -> tuple[str, ...]:
    if isinstance(model, Predictor):
        if not model.sources:
            raise InvalidArgumentError("batch.run needs a Predictor built with Predictor.from_bundle")
        return tuple(model.sources)
    items = [model] if isinstance(model, (str, Path)) else list(model)
    if not items:
        raise InvalidArgumentError("model: pass a bundle folder (or several to ensemble)")
    return tuple(str(Path(p).resolve()) for p in items)


def _clean_partials(output_dir: Path) -> None:
    """Remove temporary files an interrupted run (kill -9) left behind."""
    for partial in output_dir.rglob(".*.part*"):
        log.info("removing partial file from an interrupted run: %s", partial)
        partial.unlink(missing_ok=True)


def _outputs_exist(outputs: dict[str, Any]) -> bool:
    paths = [v for k, v in outputs.items() if k in ("labels", "dicom_seg", "measurements", "overlay")]
    return bool(paths) and all(Path(p).exists() for p in paths)


def _plan(cases: list[Case], manifest: Manifest, weights: list[str], settings_hash: str,
          retry_failed: bool, hash_threads: int) -> tuple[list[tuple[Case, str]], int, int]:
    """Cases to run (with input hashes), and counts of finished and still-failed cases kept."""
    with ThreadPoolExecutor(hash_threads) as pool:
        hashes = list(pool.map(case_input_hash, cases))
    todo, kept_done, kept_failed = [], 0, 0
    for case, digest in zip(cases, hashes):
        record = manifest.get(case.case_id)
        same_input = record is not None and record["input_hash"] == digest
        same_model = record is not None and record["provenance"].get("weights_sha256") == weights \
            and record["provenance"].get("config_hash") == settings_hash
        if same_input and same_model and record["status"] == "done" and _outputs_exist(record["outputs"]):
            kept_done += 1
        elif same_input and same_model and record["status"] == "failed" and not retry_failed:
            kept_failed += 1
        else:
            todo.append((case, digest))
    return todo, kept_done, kept_failed


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="cases", unit="case", disable=not enabled or total == 0)


def _run_local(todo, manifest, record, predictor: Predictor, output_dir: Path,
               output_options: OutputOptions, read_threads: int, bar) -> None:
    """Readers prefetch and preprocess the next cases while the model computes the current one.

    With ``predictor.memory_budget_mb`` set, cases go one at a time (read,
    predict, write, then the next read), so the budget holds for the batch.
    """
    sequential = predictor.memory_budget_mb is not None
    prefetch = 0 if sequential else read_threads
    with ThreadPoolExecutor(read_threads) as readers, ThreadPoolExecutor(1) as writers:
        reads: dict[int, Future] = {}
        writes: list[tuple[Case, Future, dict]] = []

        def submit_read(index: int) -> None:
            if index < len(todo) and index not in reads:
                case, digest = todo[index]
                manifest.start(case.case_id, input_path=str(case.path), input_hash=digest)
                reads[index] = readers.submit(load_case, case, predictor)

        def drain(block: bool) -> None:
            for item in list(writes):
                case, future, timings = item
                if not block and not future.done():
                    continue
                writes.remove(item)
                try:
                    outputs, timings["write"] = future.result()
                    record(case, "done", None, timings, outputs)
                except Exception as exc:
                    record(case, "failed", describe_error(exc), timings, {})

        for index in range(prefetch):
            submit_read(index)
        for index, (case, _digest) in enumerate(todo):
            if sequential:
                drain(block=True)  # the previous case is written and released first
            submit_read(index)
            future = reads.pop(index)
            if prefetch:
                submit_read(index + prefetch)
            timings: dict[str, float] = {}
            try:
                volume, preprocessed, timings["read"] = future.result()
                start = time.perf_counter()
                labels = predictor.predict(volume, preprocessed=preprocessed)[0]
                timings["predict"] = time.perf_counter() - start
            except Exception as exc:  # one bad case must not stop the batch
                record(case, "failed", describe_error(exc), timings, {})
                drain(block=False)
                continue

            def write(case=case, volume=volume, labels=labels):
                start = time.perf_counter()
                outputs = write_outputs(case, volume, labels, output_dir, output_options)
                return outputs, time.perf_counter() - start

            writes.append((case, writers.submit(write), timings))
            del volume, preprocessed, labels
            drain(block=False)
        drain(block=True)


def _run_dask(todo, manifest, record, predictor_options: PredictorOptions, output_dir: Path,
              output_options: OutputOptions, workers: int | None, scheduler: str | None,
              processes: bool) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        from medseg.errors import MissingExtraError

        raise MissingExtraError('Dask scheduling needs the dist extra: pip install "medseg[dist]"') from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=int(workers or 2), threads_per_worker=1,
                               processes=processes, dashboard_address=None)
        client = Client(cluster)
    try:
        by_key = {}
        futures = []
        for case, digest in todo:
            manifest.start(case.case_id, input_path=str(case.path), input_hash=digest)
            future = client.submit(run_case, case, str(output_dir), predictor_options, output_options,
                                   key=f"medseg-{case.case_id}-{uuid.uuid4().hex[:8]}", pure=False)
            by_key[future.key] = case
            futures.append(future)
        for future in as_completed(futures):
            case = by_key[future.key]
            try:
                outcome = future.result()
            except Exception as exc:  # worker died (e.g. killed for memory)
                record(case, "failed", describe_error(exc), {}, {})
                continue
            record(case, outcome["status"], outcome["error"], outcome["timings"], outcome["outputs"])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _write_table(output_dir: Path, manifest: Manifest) -> Path | None:
    table = manifest.table()
    frames = []
    for _, row in table[table["status"] == "done"].iterrows():
        path = output_dir / "measurements" / f"{row['case_id']}.csv"
        if path.exists():
            frames.append(pd.read_csv(path))
    if not frames:
        return None
    target = output_dir / TABLE_NAME
    with atomic_path(target) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    return target


def run(
    inputs: str | Path | Iterable[str | Path],
    output_dir: str | Path,
    *,
    model: str | Path | Sequence[str | Path] | Predictor,
    workers: int | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    write_dicom_seg: bool = True,
    measure: bool = True,
    overlays: bool = False,
    modality: str | None = None,
    series_include: str | None = None,
    series_exclude: str | None = None,
    device: str = "auto",
    tta: bool = False,
    overlap: float = 0.5,
    memory_budget_mb: float | None = None,
    precision: str = "auto",
    read_threads: int = 2,
    dask_processes: bool = True,
    progress: bool = True,
) -> BatchResult:
    """Segment every case under ``inputs`` into ``output_dir``; resumable and fault tolerant.

    Per case: ``labels/<case>.nii.gz``, ``seg/<case>.dcm`` (DICOM input),
    ``measurements/<case>.csv`` and optionally ``overlays/<case>.png``; for the
    cohort: ``measurements.csv`` and ``manifest.sqlite`` (status, error, input
    hash, timings, outputs, provenance per case). A rerun skips cases done with
    the same input hash and model; ``retry_failed`` reruns failures.

    Parameters
    ----------
    inputs : path or list of paths
        Volume file, folder of volumes, DICOM tree, or CSV (``path``, optional ``case_id``).
    output_dir : path
        Output folder (created).
    model : path, list of paths or Predictor
        Bundle folder(s); several are ensembled.
    workers : int, optional
        Run cases on a Dask ``LocalCluster`` with this many workers.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).
    retry_failed : bool
        Rerun cases that failed in an earlier run.
    write_dicom_seg, measure, overlays : bool
        Which outputs to write.
    modality, series_include, series_exclude : str, optional
        DICOM series selection rules (see :func:`medseg.batch.cases.discover_cases`).
    device, tta, overlap, memory_budget_mb, precision
        Passed to :class:`medseg.inference.Predictor`.
    read_threads : int
        Local mode: threads reading and preprocessing upcoming cases. With
        ``memory_budget_mb`` cases run one at a time instead, so that one
        case's read, prediction and writing stay within the budget.
    dask_processes : bool
        LocalCluster workers as processes (True) or threads of this process.
    progress : bool
        Show a progress bar with ETA.

    Returns
    -------
    BatchResult
    """
    output_dir = Path(output_dir)
    bundles = _bundle_paths(model)
    predictor_options = PredictorOptions(bundles=bundles, device=device, tta=tta, overlap=overlap,
                                         memory_budget_mb=memory_budget_mb, precision=precision)
    output_options = OutputOptions(write_dicom_seg=write_dicom_seg, measure=measure,
                                   overlays=overlays)
    use_dask = workers is not None or scheduler is not None
    # Load (or validate) the model before touching any case, so a bad bundle fails fast.
    if isinstance(model, Predictor) and not use_dask:
        predictor = model
    else:
        predictor = predictor_for(predictor_options)
    discovery = discover_cases(inputs, modality=modality, series_include=series_include,
                               series_exclude=series_exclude)
    if not discovery.cases and not discovery.skipped:
        raise InputNotFoundError(f"{inputs}: no images found; pass NIfTI/NRRD/MHA files, DICOM "
                                 "folders or a CSV with a 'path' column")
    output_dir.mkdir(parents=True, exist_ok=True)
    _clean_partials(output_dir)
    manifest = Manifest(output_dir)
    from medseg.config import config_hash
    from medseg.provenance import provenance_record

    weights = list(predictor.weights_sha256)
    settings = {**asdict(predictor_options), **asdict(output_options)}
    provenance = provenance_record(config=settings, hash_inputs=False, weights_sha256=weights,
                                   bundles=list(bundles))
    provenance["config_hash"] = config_hash(settings)
    manifest.begin_run(provenance)
    for item in discovery.skipped:
        manifest.record_skipped(item.case_id or f"skipped:{item.path}", input_path=str(item.path),
                                reason=item.reason)
    todo, kept_done, kept_failed = _plan(discovery.cases, manifest, weights,
                                         provenance["config_hash"], retry_failed,
                                         max(1, read_threads))
    log.info("%d case(s): %d to run, %d already done, %d failed earlier (not retried), %d skipped",
             len(discovery.cases), len(todo), kept_done, kept_failed, len(discovery.skipped))
    counts = {"done": 0, "failed": 0}
    bar = _progress(len(todo), progress)
    case_provenance = {"medseg_version": provenance["medseg_version"], "weights_sha256": weights,
                       "config_hash": provenance["config_hash"], "bundles": list(bundles)}

    def record(case: Case, status: str, error: str | None, timings: dict, outputs: dict) -> None:
        manifest.finish(case.case_id, status=status, error=error, timings=timings, outputs=outputs,
                        provenance=case_provenance)
        counts[status] += 1
        bar.update(1)
        bar.set_postfix(done=counts["done"], failed=counts["failed"])
        if error:
            log.warning("%s failed: %s", case.case_id, error)

    try:
        if use_dask:
            _run_dask(todo, manifest, record, predictor_options, output_dir, output_options,
                      workers, scheduler, dask_processes)
        else:
            _run_local(todo, manifest, record, predictor, output_dir, output_options,
                       max(1, read_threads), bar)
    finally:
        bar.close()
        table_path = _write_table(output_dir, manifest)
        cases = manifest.table()
        manifest.close()
    result = BatchResult(output_dir, manifest.path, table_path, done=counts["done"] + kept_done,
                         failed=counts["failed"] + kept_failed, skipped=len(discovery.skipped),
                         cases=cases)
    log.info("batch finished: %d done, %d failed, %d skipped; manifest %s", result.done,
             result.failed, result.skipped, result.manifest_path)
    return result
