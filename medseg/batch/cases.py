"""Turn a batch INPUT (file, folder of volumes, DICOM tree, CSV list) into cases to predict.

Each case knows how to read itself and how to hash its input bytes for resumable runs.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import InputNotFoundError, InvalidArgumentError, UnsupportedFormatError
from medseg.provenance import file_sha256
from medseg.volume import Volume

__all__ = ["Case", "SkippedInput", "discover_cases", "read_case", "case_input_hash"]

log = logging.getLogger(__name__)

_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_IGNORED_NAMES = {"dataset.json", ".ds_store", "thumbs.db"}


@dataclass(frozen=True)
class Case:
    """One volume to segment: a volume file or one DICOM series (its files in any order)."""

    case_id: str
    path: Path
    kind: str  # "volume" or "dicom"
    files: tuple[Path, ...] = ()
    series_uid: str = ""
    modality: str = ""
    description: str = ""


@dataclass(frozen=True)
class SkippedInput:
    """A path under the input that is not a case (not an image, filtered out), and why."""

    path: Path
    reason: str
    case_id: str = ""


@dataclass
class Discovery:
    cases: list[Case] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)


def _safe_id(text: str) -> str:
    """Filesystem-safe case id.

    >>> _safe_id("Study 1/CT abdomen (venous)")
    'Study_1_CT_abdomen_venous'
    """
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9.-]+", "_", text)).strip("_.") or "case"


def _volume_stem(path: Path) -> str:
    name = path.name
    for suffix in _VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_volume_file(path: Path) -> bool:
    return path.name.lower().endswith(_VOLUME_SUFFIXES)


def _series_filter(series, modality: str | None, include: str | None, exclude: str | None) -> str:
    """Reason to skip a DICOM series under the selection rules, or '' to keep it."""
    if modality and series.modality.upper() != modality.upper():
        return f"modality {series.modality or '?'} is not {modality}"
    description = series.description or ""
    if include and not re.search(include, description, flags=re.IGNORECASE):
        return f"series description {description!r} does not match --series-include {include!r}"
    if exclude and re.search(exclude, description, flags=re.IGNORECASE):
        return f"series description {description!r} matches --series-exclude {exclude!r}"
    return ""


def _dicom_cases(root: Path, files: list[Path] | None, rules: tuple, found: Discovery) -> None:
    from medseg.io import find_dicom_series

    discovery = find_dicom_series(root, files=files)
    for item in discovery.skipped:
        found.skipped.append(SkippedInput(Path(item.path), f"not part of a DICOM image series: {item.reason}"))
    base = root if root.is_dir() else root.parent
    for series in discovery.series:
        parent = Path(series.files[0]).parent
        try:
            relative = parent.relative_to(base).as_posix()
        except ValueError:
            relative = parent.name
        label = "_".join(p for p in (relative if relative != "." else base.name,
                                     series.description) if p)
        case_id = f"{_safe_id(label)[:60]}_{hashlib.sha1(series.uid.encode()).hexdigest()[:8]}"
        reason = _series_filter(series, *rules)
        if reason:
            found.skipped.append(SkippedInput(parent, reason, case_id))
            continue
        found.cases.append(Case(case_id, parent, "dicom", tuple(Path(f) for f in series.files),
                                series.uid, series.modality, series.description))


def _from_path(path: Path, rules: tuple, found: Discovery, *, explicit: bool) -> None:
    if not path.exists():
        raise InputNotFoundError(f"{path}: input not found; pass a file, a folder or a CSV list")
    if path.is_file():
        if _is_volume_file(path):
            found.cases.append(Case(_safe_id(_volume_stem(path)), path, "volume"))
            return
        from medseg.io.dispatch import format_of

        try:
            fmt = format_of(path)
        except UnsupportedFormatError as exc:
            if explicit:
                found.cases.append(Case(_safe_id(_volume_stem(path)), path, "volume"))
            else:
                found.skipped.append(SkippedInput(path, f"not an image file ({exc})"))
            return
        if fmt == "dicom":
            _dicom_cases(path, None if path.name.upper() == "DICOMDIR" else [path], rules, found)
        return
    dicom_candidates: list[Path] = []
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        if child.name.lower() in _IGNORED_NAMES or child.name.startswith("."):
            continue
        if _is_volume_file(child):
            found.cases.append(Case(_safe_id(_volume_stem(child)), child, "volume"))
        else:
            dicom_candidates.append(child)
    if dicom_candidates:
        _dicom_cases(path, dicom_candidates, rules, found)


def _rows_from_csv(path: Path) -> list[tuple[Path, str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise InvalidArgumentError(
                f"{path}: a CSV input needs a 'path' column (optional 'case_id'); "
                f"found columns {reader.fieldnames}"
            )
        rows = []
        for row in reader:
            entry = Path(row["path"].strip())
            if not entry.is_absolute():
                entry = path.parent / entry
            rows.append((entry, (row.get("case_id") or "").strip()))
    return rows


def discover_cases(
    inputs: str | Path | Sequence[str | Path],
    *,
    modality: str | None = None,
    series_include: str | None = None,
    series_exclude: str | None = None,
) -> Discovery:
    """Every case under ``inputs`` plus the skipped paths with reasons.

    Parameters
    ----------
    inputs : path or list of paths
        A volume file, a folder (volume files and/or DICOM studies, walked
        recursively), a DICOM file or DICOMDIR, or a ``.csv`` with a ``path``
        column and an optional ``case_id`` column.
    modality : str, optional
        Keep only DICOM series of this modality (e.g. ``"CT"``).
    series_include, series_exclude : str, optional
        Regular expressions on the DICOM SeriesDescription (case-insensitive).

    Returns
    -------
    Discovery
        ``.cases`` (unique ``case_id``) and ``.skipped``.
    """
    for pattern in (series_include, series_exclude):
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidArgumentError(f"series pattern {pattern!r} is not a valid regex ({exc})") from exc
    rules = (modality, series_include, series_exclude)
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    found = Discovery()
    for item in items:
        path = Path(item)
        if path.suffix.lower() == ".csv" and path.is_file():
            for entry, case_id in _rows_from_csv(path):
                before = len(found.cases)
                _from_path(entry, rules, found, explicit=True)
                if case_id and len(found.cases) == before + 1:
                    found.cases[-1] = Case(_safe_id(case_id), *[getattr(found.cases[-1], f) for f in
                                           ("path", "kind", "files", "series_uid", "modality",
                                            "description")])
        else:
            _from_path(path, rules, found, explicit=path.is_file())
    found.cases = _unique_ids(found.cases)
    return found


def _unique_ids(cases: Iterable[Case]) -> list[Case]:
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        count = seen.get(case.case_id, 0)
        seen[case.case_id] = count + 1
        if count:
            case = Case(f"{case.case_id}_{count + 1}", case.path, case.kind, case.files,
                        case.series_uid, case.modality, case.description)
        out.append(case)
    return out


def case_input_hash(case: Case) -> str:
    """SHA-256 of the case's input bytes (a DICOM series: of its files' hashes in name order)."""
    if case.kind == "volume":
        return file_sha256(case.path)
    digest = hashlib.sha256()
    for path in sorted(case.files):
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def read_case(case: Case) -> Volume:
    """Read the case's image Volume (DICOM series from exactly its files)."""
    if case.kind == "dicom":
        from medseg.io import read_dicom_series

        volume = read_dicom_series(case.path, files=list(case.files), kind="image")
    else:
        import medseg

        volume = medseg.read(case.path, kind="image")
    return volume.replace(meta={**volume.meta, "case_id": case.case_id})
