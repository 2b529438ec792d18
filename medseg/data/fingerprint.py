"""Dataset fingerprint: spacings, shapes, foreground intensity statistics, class frequencies.

Computed per case in a process pool and cached beside the preprocessed data, keyed on file stamps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path, atomic_write_text
from medseg.config import from_dict, to_dict
from medseg.data.datasets import Case, Dataset
from medseg.errors import DatasetError

__all__ = ["IntensityStats", "Fingerprint", "compute_fingerprint", "default_cache_dir",
           "file_stamp", "make_cache_folder", "load_fingerprint", "FOREGROUND_SAMPLES_PER_CASE"]

log = logging.getLogger(__name__)

#: Foreground voxels kept per case for the pooled intensity statistics (as nnU-Net).
FOREGROUND_SAMPLES_PER_CASE = 10_000
_FORMAT = 1


@dataclass(frozen=True)
class IntensityStats:
    """Statistics of one channel's intensities inside the labeled foreground."""

    mean: float
    std: float
    median: float
    p00_5: float
    p99_5: float
    min: float
    max: float


@dataclass(frozen=True)
class Fingerprint:
    """What the planner needs to know about a dataset (JSON-serialisable)."""

    dataset_name: str
    channel_names: tuple[str, ...]
    labels: dict[int, str]
    case_ids: tuple[str, ...]
    spacings_mm: tuple[tuple[float, float, float], ...]
    shapes: tuple[tuple[int, int, int], ...]
    intensity: tuple[IntensityStats, ...]
    class_frequencies: dict[int, float]
    case_hashes: dict[str, str]

    @property
    def modality(self) -> str:
        """Modality of the first channel."""
        return self.channel_names[0] if self.channel_names else "unknown"


def default_cache_dir(dataset: Dataset) -> Path:
    """Where fingerprints and preprocessed arrays of ``dataset`` are cached by default.

    ``<dataset root>/.medseg_cache`` when that folder exists or the root is
    writable; for a read-only dataset (a shared archive) a per-dataset folder
    under ``$MEDSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/medseg``, else
    ``~/.cache/medseg``, named after the dataset and a hash of its path.
    """
    import os

    root = Path(dataset.root)
    beside = root / ".medseg_cache"
    if beside.is_dir() or os.access(root, os.W_OK):
        return beside
    base = os.environ.get("MEDSEG_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "medseg"
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    folder = Path(base) / f"{root.name}-{digest}"
    log.info("%s is read-only; caching in %s", root, folder)
    return folder


def make_cache_folder(folder: Path) -> Path:
    """Create a cache folder, or raise ``DatasetError`` saying how to put the cache elsewhere."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot create the cache folder ({exc.strerror}); pass "
                           "cache_dir= to a writable folder") from exc
    return folder


def file_stamp(path: Path) -> list[int]:
    """``[size, mtime_ns]`` of a file: the cache key that avoids re-hashing unchanged files."""
    stat = Path(path).stat()
    return [int(stat.st_size), int(stat.st_mtime_ns)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _case_record(case: Case, cache_dir: Path) -> dict:
    """Read one case, write its foreground samples (.npy) and return its statistics."""
    import medseg

    images = [medseg.read(p, kind="image") for p in case.image_paths]
    label = medseg.read(case.label_path, kind="labels").array
    foreground = np.flatnonzero(label.reshape(-1) > 0)
    if len(foreground) > FOREGROUND_SAMPLES_PER_CASE:
        rng = np.random.default_rng(zlib.crc32(case.case_id.encode()))
        foreground = np.sort(rng.choice(foreground, FOREGROUND_SAMPLES_PER_CASE, replace=False))
    channels = [im.array[..., c] if im.array.ndim == 4 else im.array  # 4D files hold channels
                for im in images for c in range(im.n_channels)]
    samples = np.stack([np.asarray(a, dtype=np.float64).reshape(-1)[foreground] for a in channels])
    with atomic_path(cache_dir / f"{case.case_id}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, samples.astype(np.float32))
    values, counts = np.unique(label, return_counts=True)
    paths = [*case.image_paths, case.label_path]
    return {
        "stamps": [file_stamp(p) for p in paths],
        "sha256": hashlib.sha256("".join(_sha256(p) for p in paths).encode()).hexdigest(),
        "spacing_mm": [float(s) for s in images[0].spacing_mm],
        "shape": [int(s) for s in images[0].shape],
        "voxel_counts": {int(v): int(c) for v, c in zip(values, counts)},
    }


def _cached_record(case: Case, cache_dir: Path) -> dict | None:
    path = cache_dir / f"{case.case_id}.json"
    if not path.exists() or not (cache_dir / f"{case.case_id}.npy").exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    paths = [*case.image_paths, case.label_path]
    if record.get("format") != _FORMAT or record.get("stamps") != [file_stamp(p) for p in paths]:
        return None
    return record


def _fresh_record(case: Case, cache_dir: Path) -> dict:
    record = _case_record(case, cache_dir)
    record["format"] = _FORMAT
    atomic_write_text(cache_dir / f"{case.case_id}.json", json.dumps(record))
    return record


def _stats(values: np.ndarray) -> IntensityStats:
    if values.size == 0:
        return IntensityStats(0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p00_5, median, p99_5 = np.percentile(values, [0.5, 50.0, 99.5])
    return IntensityStats(float(values.mean()), float(values.std()), float(median),
                          float(p00_5), float(p99_5), float(values.min()), float(values.max()))


def compute_fingerprint(
    dataset: Dataset, *, workers: int = 2, cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Fingerprint:
    """Fingerprint ``dataset``: per-case spacing/shape, pooled foreground intensity statistics.

    Foreground intensities pool up to :data:`FOREGROUND_SAMPLES_PER_CASE` labeled voxels
    per case (all of them when fewer). Each case's record is cached under
    ``cache_dir/fingerprint/`` and recomputed only when a file's size or mtime changes.

    Parameters
    ----------
    dataset : Dataset
        From :func:`medseg.data.load_dataset`; every case needs a label map.
    workers : int
        Processes reading cases in parallel.
    cache_dir : path, optional
        Cache folder (default ``<dataset root>/.medseg_cache``).

    Returns
    -------
    Fingerprint
        Also written to ``cache_dir/fingerprint.json``.
    """
    from medseg.parallel import map_cases

    unlabeled = [c.case_id for c in dataset.cases if c.label_path is None]
    if unlabeled:
        raise DatasetError(f"{dataset.root}: cases without labels cannot be fingerprinted: {unlabeled}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir(dataset)
    case_dir = make_cache_folder(root / "fingerprint")
    records = {c.case_id: _cached_record(c, case_dir) for c in dataset.cases}
    missing = [c for c in dataset.cases if records[c.case_id] is None]
    if missing:
        log.info("fingerprinting %d of %d cases", len(missing), len(dataset.cases))
        for case, record in zip(missing, map_cases(_fresh_record, missing, case_dir, workers=workers,
                                                   progress=progress, desc="fingerprint")):
            records[case.case_id] = record
    ordered = [records[c.case_id] for c in dataset.cases]
    samples = [np.load(case_dir / f"{c.case_id}.npy") for c in dataset.cases]
    pooled = np.concatenate(samples, axis=1).astype(np.float64)
    counts: dict[int, int] = {}
    for record in ordered:
        for value, count in record["voxel_counts"].items():
            counts[int(value)] = counts.get(int(value), 0) + int(count)
    total = max(sum(counts.values()), 1)
    fingerprint = Fingerprint(
        dataset_name=dataset.name,
        channel_names=tuple(dataset.channel_names),
        labels=dict(dataset.labels),
        case_ids=tuple(dataset.case_ids),
        spacings_mm=tuple(tuple(r["spacing_mm"]) for r in ordered),
        shapes=tuple(tuple(r["shape"]) for r in ordered),
        intensity=tuple(_stats(pooled[channel]) for channel in range(pooled.shape[0])),
        class_frequencies={v: counts.get(v, 0) / total for v in sorted(dataset.labels)},
        case_hashes={c.case_id: r["sha256"] for c, r in zip(dataset.cases, ordered)},
    )
    atomic_write_text(root / "fingerprint.json", json.dumps(to_dict(fingerprint), indent=1))
    return fingerprint


def load_fingerprint(path: str | Path) -> Fingerprint:
    """Read a ``fingerprint.json`` written by :func:`compute_fingerprint`."""
    data = json.loads(Path(path).read_text())
    for key in ("labels", "class_frequencies"):  # JSON object keys are strings
        data[key] = {int(k): v for k, v in data[key].items()}
    return from_dict(Fingerprint, data, where=str(path))
