"""``evaluate_folder``: pair prediction and reference files by case id and evaluate them in parallel.

Unpaired, unreadable or mismatched cases become error rows; one bad case never stops the cohort.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medseg.errors import InputNotFoundError, MedsegError
from medseg.metrics.evaluate import EmptyPolicy, evaluate
from medseg.parallel import map_cases

__all__ = ["evaluate_folder", "case_id_from_path", "LABEL_SUFFIXES"]

log = logging.getLogger(__name__)

#: File endings of label files, longest first (the case id is the name without it).
LABEL_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def case_id_from_path(path: str | Path) -> str | None:
    """Case id of a label file (its name without the format suffix), None if not a label file.

    >>> case_id_from_path("preds/liver_007.nii.gz"), case_id_from_path("notes.txt")
    ('liver_007', None)
    """
    name = Path(path).name
    for suffix in LABEL_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _index(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise InputNotFoundError(
            f"{folder}: {role} folder {what}; give two folders, or two files to compare one case"
        )
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        case = case_id_from_path(path)
        if case is None or path.name.startswith("."):
            continue
        if case in files:
            log.warning("%s: two %s files for case %s; using %s", folder, role, case, files[case].name)
            continue
        files[case] = path
    return files


def _evaluate_case(case: str, pred_path: str, ref_path: str, options: dict[str, Any]) -> pd.DataFrame:
    from medseg.io import read

    try:
        ref = read(ref_path, kind="labels")
        pred = read(pred_path, kind="labels")
        table = evaluate(pred, ref, case_id=case, **options)
        table.insert(1, "error", "")
        return table
    except MedsegError as exc:
        return _error_row(case, str(exc))


def _error_row(case: str, message: str) -> pd.DataFrame:
    return pd.DataFrame([{"case_id": case, "error": message}])


def _evaluate_job(job: tuple[str, str, str], options: dict[str, Any]) -> pd.DataFrame:
    return _evaluate_case(*job, options)


def evaluate_folder(
    pred_dir: str | Path,
    ref_dir: str | Path,
    *,
    workers: int = 2,
    labels: Sequence[int] | None = None,
    metrics: Iterable[str] | None = None,
    nsd_tolerance_mm: float | Sequence[float] = 1.0,
    surface: str = "surfel",
    empty_policy: EmptyPolicy | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate every prediction file against the reference file with the same case id.

    Files pair by name without the format suffix (``case_001.nii.gz`` with
    ``case_001.nrrd``). Cases run in ``workers`` processes (1: in this process).

    Parameters
    ----------
    pred_dir, ref_dir : str or Path
        Folders of label files (.nii/.nii.gz/.nrrd/.seg.nrrd/.mha).
    workers : int
        Number of processes.
    labels, metrics, nsd_tolerance_mm, surface, empty_policy
        As in :func:`medseg.metrics.evaluate`.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`evaluate` for every case, sorted by case id, plus an ``error``
        column: empty for evaluated cases; the reason (no reference, no prediction,
        unreadable file, different voxel grid) on a single row for failed cases.

    Examples
    --------
    >>> import tempfile, numpy as np, medseg
    >>> root = Path(tempfile.mkdtemp())
    >>> mask = np.zeros((8, 8, 8), np.uint8); mask[2:6, 2:6, 2:6] = 1
    >>> for sub in ("pred", "ref"):
    ...     _ = medseg.write(medseg.Volume.from_array(mask, kind="labels"), root / sub / "c1.nii.gz")
    >>> table = evaluate_folder(root / "pred", root / "ref", workers=1, progress=False)
    >>> table[["case_id", "error", "dice"]].values.tolist()
    [['c1', '', 1.0]]
    """
    preds, refs = _index(Path(pred_dir), "prediction"), _index(Path(ref_dir), "reference")
    options = {"labels": labels, "metrics": metrics, "nsd_tolerance_mm": nsd_tolerance_mm,
               "surface": surface, "empty_policy": empty_policy}
    tables: dict[str, pd.DataFrame] = {}
    for case in sorted(set(preds) - set(refs)):
        tables[case] = _error_row(case, f"{preds[case]}: no reference file for this case in {ref_dir}")
    for case in sorted(set(refs) - set(preds)):
        tables[case] = _error_row(case, f"{refs[case]}: no prediction file for this case in {pred_dir}")
    jobs = [(case, str(preds[case]), str(refs[case])) for case in sorted(set(preds) & set(refs))]
    results = map_cases(_evaluate_job, jobs, options, workers=workers, progress=progress,
                        desc="evaluate")
    for (case, _, _), table in zip(jobs, results):
        tables[case] = table
    failed = sum(1 for t in tables.values() if (t["error"] != "").any())
    if failed:
        log.warning("%d of %d cases could not be evaluated (see the error column)", failed, len(tables))
    if not tables:
        return pd.DataFrame(columns=["case_id", "error"])
    return pd.concat([tables[c] for c in sorted(tables)], ignore_index=True)
