"""Scoring a set of scans with an anomaly or lesion bundle and writing maps, masks, overlays, tables.

The body of ``medseg anomaly score``: NIfTI maps and masks, one PNG overlay and one table row per case.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd

from medseg.anomaly.lesions import LESION_TABLE_COLUMNS
from medseg.anomaly.scorer import AnomalyScorer
from medseg.anomaly.supervised import LesionDetector
from medseg.atomic import atomic_path
from medseg.errors import DatasetError, InputNotFoundError
from medseg.volume import Volume

__all__ = ["load_scorer", "list_inputs", "case_id_of", "score_inputs"]

log = logging.getLogger(__name__)

_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def load_scorer(bundle: str | Path) -> AnomalyScorer | LesionDetector:
    """An :class:`AnomalyScorer` for an anomaly bundle, else a :class:`LesionDetector`."""
    from medseg.config import load_yaml

    folder = Path(bundle)
    if not (folder / "bundle.yaml").exists():
        raise InputNotFoundError(f"{folder}: no bundle.yaml; pass a folder written by "
                                 "`medseg anomaly train` or `medseg train`")
    raw = load_yaml(folder / "bundle.yaml") or {}
    if (raw.get("postprocessing") or {}).get("task") == "anomaly_denoising":
        return AnomalyScorer.from_bundle(folder)
    return LesionDetector.from_bundle(folder)


def case_id_of(path: Path) -> str:
    """File name without its volume suffix (``ct_001.nii.gz`` -> ``ct_001``)."""
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_inputs(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Volume files to score: one file, a DICOM folder, or every volume file in a folder."""
    if not isinstance(source, (str, Path)):
        return [Path(p) for p in source]
    path = Path(source)
    if not path.exists():
        raise InputNotFoundError(f"{path}: input not found; pass a scan file or a folder of scans")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name.lower().endswith(_SUFFIXES))
    if files:
        return files
    if any(p.is_file() for p in path.iterdir()):
        return [path]  # a DICOM series folder
    raise DatasetError(f"{path}: no scans found (NIfTI/NRRD/MHA files or a DICOM folder)")


def _overlay(image: Volume, score: Volume, threshold: float | None, path: Path) -> None:
    from medseg.viz import save_figure, show_anomaly_map

    figure = show_anomaly_map(image, score, threshold=threshold)
    save_figure(figure, path)
    import matplotlib.pyplot as plt

    plt.close(figure)


def _anomaly_row(scorer: AnomalyScorer, image: Volume, case_id: str, out: Path,
                 overlays: bool) -> dict:
    import medseg

    result = scorer.score(image, case_id=case_id)
    medseg.write(result.anomaly_map, out / f"{case_id}_anomaly_map.nii.gz")
    medseg.write(result.mask, out / f"{case_id}_anomaly_mask.nii.gz")
    if overlays:
        _overlay(image, result.anomaly_map, result.threshold, out / f"{case_id}_overlay.png")
    regions = cc3d.connected_components(result.mask.array > 0, connectivity=26)
    sizes = np.bincount(regions.ravel())[1:] * image.voxel_volume_ml
    return {"case_id": case_id, "case_score": result.case_score, "threshold": result.threshold,
            "normal_percentile": scorer.case_percentile(result.case_score),
            "anomalous_volume_ml": float(sizes.sum()), "n_regions": int(len(sizes)),
            "largest_region_ml": float(sizes.max()) if len(sizes) else 0.0}


def _lesion_row(detector: LesionDetector, image: Volume, case_id: str, out: Path,
                overlays: bool, tables: list[pd.DataFrame]) -> dict:
    import medseg

    found = detector.detect(image, case_id=case_id)
    medseg.write(found.probability.replace(kind="image"), out / f"{case_id}_lesion_probability.nii.gz")
    medseg.write(found.instances, out / f"{case_id}_lesions.nii.gz")
    if overlays:
        _overlay(image, found.probability.replace(kind="image"), detector.threshold,
                 out / f"{case_id}_overlay.png")
    tables.append(found.table)
    return {"case_id": case_id, "suspicious_score": found.suspicious_score,
            "threshold": detector.threshold, "n_lesions": int(len(found.table)),
            "lesion_volume_ml": float(found.table["volume_ml"].sum())}


def score_inputs(
    inputs: str | Path | Sequence[str | Path],
    *,
    model: str | Path | AnomalyScorer | LesionDetector,
    out_dir: str | Path,
    overlays: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Score scans and write per-case outputs plus ``cases.csv`` (and ``lesions.csv``).

    Parameters
    ----------
    inputs
        A scan file, a folder of scans, a DICOM folder or a list of paths.
    model
        An anomaly bundle (``medseg anomaly train``) or lesion bundle
        (``train_lesion_detector``), or a loaded scorer/detector.
    out_dir
        Output folder: ``<case>_anomaly_map.nii.gz`` (float) and
        ``<case>_anomaly_mask.nii.gz``, or ``<case>_lesion_probability.nii.gz``
        and ``<case>_lesions.nii.gz`` (instances); ``<case>_overlay.png``.
    overlays
        Write the heatmap figure per case.

    Returns
    -------
    pandas.DataFrame
        The per-case table also written to ``cases.csv``.
    """
    from tqdm.auto import tqdm

    import medseg

    scorer = load_scorer(model) if isinstance(model, (str, Path)) else model
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, lesion_tables = [], []
    for path in tqdm(list_inputs(inputs), desc="scoring", disable=not progress, leave=False):
        image = medseg.read(path, kind="image")
        case_id = case_id_of(path)
        if isinstance(scorer, AnomalyScorer):
            rows.append(_anomaly_row(scorer, image, case_id, out, overlays))
        else:
            rows.append(_lesion_row(scorer, image, case_id, out, overlays, lesion_tables))
        log.info("%s scored", case_id)
    table = pd.DataFrame(rows)
    with atomic_path(out / "cases.csv") as tmp:
        table.to_csv(tmp, index=False)
    if isinstance(scorer, LesionDetector):
        lesions = (pd.concat(lesion_tables, ignore_index=True) if lesion_tables
                   else pd.DataFrame(columns=list(LESION_TABLE_COLUMNS)))
        with atomic_path(out / "lesions.csv") as tmp:
            lesions.to_csv(tmp, index=False)
    return table
