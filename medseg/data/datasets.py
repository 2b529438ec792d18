"""Labeled dataset readers: MSD layout, nnU-Net v2 raw layout, or a CSV of image/label paths.

``load_dataset`` finds the layout, lists the cases and checks every image/label pair.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import DatasetError, InputNotFoundError, MedsegError

__all__ = ["Case", "Dataset", "load_dataset", "check_case", "validate_dataset"]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Case:
    """One labeled case: its id, one image path per channel, and the label map path."""

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None


@dataclass(frozen=True)
class Dataset:
    """A labeled dataset: cases, label names (0 = background) and channel modalities.

    ``modality`` is the first channel's modality (``"CT"`` selects CT normalisation).
    """

    root: Path
    name: str
    layout: str
    cases: tuple[Case, ...]
    labels: dict[int, str]
    channel_names: tuple[str, ...] = ("CT",)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        """Modality of the first channel (``CT``, ``MR``, ...)."""
        return self.channel_names[0] if self.channel_names else "unknown"

    @property
    def case_ids(self) -> list[str]:
        """Case identifiers in dataset order."""
        return [case.case_id for case in self.cases]

    def case(self, case_id: str) -> Case:
        """The case called ``case_id`` (``DatasetError`` naming the valid ids if absent)."""
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise DatasetError(f"{self.root}: no case {case_id!r}; cases are {', '.join(self.case_ids[:10])}...")


def _strip_suffix(name: str) -> str:
    for suffix in _IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read dataset.json ({exc}); fix or regenerate it") from exc


def _channel_modalities(raw: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(raw[k]) for k in sorted(raw, key=lambda key: int(key)))


def _load_msd(root: Path, description: dict) -> Dataset:
    labels = {int(k): str(v) for k, v in description.get("labels", {}).items()}
    cases = []
    for entry in description.get("training", []):
        image = (root / entry["image"]).resolve()
        label = (root / entry["label"]).resolve() if entry.get("label") else None
        cases.append(Case(_strip_suffix(image.name), (image,), label))
    channels = _channel_modalities(description.get("modality", {"0": "unknown"}))
    return Dataset(root, str(description.get("name", root.name)), "msd", tuple(cases), labels,
                   channels, {"dataset_json": description})


def _load_nnunet(root: Path, description: dict) -> Dataset:
    # nnU-Net v2: labels are {name: int} (region lists not supported), channels by _0000 suffix.
    labels: dict[int, str] = {}
    for name, value in description.get("labels", {}).items():
        if not isinstance(value, int):
            raise DatasetError(
                f"{root / 'dataset.json'}: label {name!r} is a region {value!r}; medseg supports "
                "plain integer labels only; list each label value once"
            )
        labels[int(value)] = str(name)
    ending = description.get("file_ending", ".nii.gz")
    channels = _channel_modalities(description.get("channel_names", {"0": "unknown"}))
    by_case: dict[str, dict[int, Path]] = {}
    for path in sorted((root / "imagesTr").glob(f"*{ending}")):
        match = _CHANNEL_RE.match(path.name[: -len(ending)])
        if match:
            by_case.setdefault(match["case"], {})[int(match["channel"])] = path.resolve()
    cases = []
    for case_id, files in sorted(by_case.items()):
        paths = tuple(files.get(c, root / "imagesTr" / f"{case_id}_{c:04d}{ending}")
                      for c in range(len(channels)))
        cases.append(Case(case_id, paths, (root / "labelsTr" / f"{case_id}{ending}").resolve()))
    return Dataset(root, root.name, "nnunet", tuple(cases), labels, channels,
                   {"dataset_json": description})


def _load_csv(path: Path, labels: Mapping[int, str] | None, channel_names: Sequence[str] | None
              ) -> Dataset:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DatasetError(f"{path}: CSV has no rows; give one row per case with columns image,label")
    columns = list(rows[0])
    image_columns = [c for c in columns if c.startswith("image")]
    if not image_columns or "label" not in columns:
        raise DatasetError(
            f"{path}: CSV needs an 'image' column (or image_0, image_1, ... for several channels) "
            f"and a 'label' column; found columns {columns}"
        )
    cases = []
    for number, row in enumerate(rows):
        images = tuple((path.parent / row[c]).resolve() for c in image_columns)
        case_id = row.get("case_id") or _strip_suffix(images[0].name)
        cases.append(Case(case_id, images, (path.parent / row["label"]).resolve()))
        if not row["label"]:
            raise DatasetError(f"{path}: row {number + 2} has an empty label path")
    if labels is None:
        labels = _labels_from_files([c.label_path for c in cases if c.label_path])
    channels = tuple(channel_names) if channel_names else ("unknown",) * len(image_columns)
    return Dataset(path.parent.resolve(), path.stem, "csv", tuple(cases), dict(labels), channels,
                   {"csv": str(path)})


def _labels_from_files(paths: Sequence[Path]) -> dict[int, str]:
    import medseg

    values: set[int] = {0}
    for path in paths:
        if path.exists():
            values.update(int(v) for v in np.unique(medseg.read(path, kind="labels").array))
    return {v: ("background" if v == 0 else f"label_{v}") for v in sorted(values)}


def check_case(case: Case, labels: Mapping[int, str]) -> list[str]:
    """Problems with one case (missing files, grid mismatch, undeclared labels, NaN); [] if fine."""
    import medseg

    problems = [f"{case.case_id}: missing file {p}" for p in (*case.image_paths, case.label_path)
                if p is not None and not Path(p).exists()]
    if problems:
        return problems
    try:
        images = [medseg.read(p, kind="image", on_invalid="ignore") for p in case.image_paths]
        label = medseg.read(case.label_path, kind="labels") if case.label_path else None
    except MedsegError as exc:
        return [f"{case.case_id}: {exc}"]
    for path, image in zip(case.image_paths, images):
        bad = int(image.array.size - np.count_nonzero(np.isfinite(image.array)))
        if bad:
            problems.append(f"{case.case_id}: {path.name} has {bad} NaN/infinite voxel(s)")
        if image is not images[0] and not image.same_grid(images[0]):
            problems.append(f"{case.case_id}: channel {path.name} is not on the grid of "
                            f"{case.image_paths[0].name}")
    if label is not None:
        if not label.same_grid(images[0]):
            problems.append(
                f"{case.case_id}: label {label.shape} @ {np.round(label.spacing_mm, 3).tolist()} mm "
                f"is not on the image grid {images[0].shape} @ "
                f"{np.round(images[0].spacing_mm, 3).tolist()} mm ({case.label_path.name})")
        undeclared = sorted(set(np.unique(label.array).tolist()) - set(labels))
        if undeclared:
            problems.append(f"{case.case_id}: label values {undeclared} in {case.label_path.name} "
                            f"are not declared in the dataset labels {sorted(labels)}")
    return problems


def validate_dataset(dataset: Dataset, *, workers: int = 2, progress: bool = False) -> None:
    """Check every case and raise one ``DatasetError`` that lists ALL problems found."""
    from medseg.parallel import map_cases

    problems = [p for found in map_cases(check_case, dataset.cases, dataset.labels,
                                          workers=workers, progress=progress, desc="validate")
                for p in found]
    if not dataset.cases:
        problems.append("no training cases found")
    if 0 not in dataset.labels:
        problems.append("labels must declare 0 (background)")
    if problems:
        listing = "\n  ".join(problems)
        raise DatasetError(f"{dataset.root}: {len(problems)} problem(s) in dataset:\n  {listing}")


def load_dataset(
    path: str | Path,
    *,
    labels: Mapping[int, str] | None = None,
    channel_names: Sequence[str] | None = None,
    validate: bool = True,
    workers: int = 2,
) -> Dataset:
    """Open a labeled dataset: MSD layout, nnU-Net v2 raw layout, or a CSV file.

    Parameters
    ----------
    path : str or Path
        Folder with ``dataset.json`` + ``imagesTr``/``labelsTr`` (MSD or nnU-Net v2,
        told apart by ``training`` vs ``channel_names`` keys), or a ``.csv`` with columns
        ``image`` (or ``image_0, image_1, ...``), ``label`` and optionally ``case_id``
        (paths relative to the CSV).
    labels, channel_names
        For CSV datasets: label names (default: values found in the label files)
        and channel modalities (e.g. ``["CT"]``).
    validate : bool
        Read every pair and raise one ``DatasetError`` listing all problems
        (missing files, grid mismatch, undeclared labels, NaN).
    workers : int
        Processes used for validation.

    Examples
    --------
    >>> import tempfile
    >>> from medseg.demo import make_dataset
    >>> ds = load_dataset(make_dataset(tempfile.mkdtemp(), n_cases=2, shape=(16, 16, 16)))
    >>> ds.layout, ds.case_ids, ds.labels[1], ds.modality
    ('msd', ['phantom_000', 'phantom_001'], 'liver', 'CT')
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: dataset not found; pass a dataset folder or CSV file")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DatasetError(f"{path}: a dataset is a folder with dataset.json or a .csv file")
        dataset = _load_csv(path, labels, channel_names)
    else:
        description_path = path / "dataset.json"
        if not description_path.exists():
            raise DatasetError(
                f"{path}: no dataset.json; medseg reads the MSD layout, the nnU-Net v2 raw "
                "layout (imagesTr, labelsTr, dataset.json) or a CSV of image,label paths")
        description = _read_json(description_path)
        if "channel_names" in description and "training" not in description:
            dataset = _load_nnunet(path.resolve(), description)
        else:
            dataset = _load_msd(path.resolve(), description)
    if labels is not None:
        dataset = Dataset(dataset.root, dataset.name, dataset.layout, dataset.cases, dict(labels),
                          dataset.channel_names, dataset.meta)
    duplicates = sorted({c for c in dataset.case_ids if dataset.case_ids.count(c) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate case ids {duplicates}; give each case a unique name")
    if validate:
        validate_dataset(dataset, workers=workers)
    log.info("dataset %s: %d cases (%s layout)", dataset.name, len(dataset.cases), dataset.layout)
    return dataset
