"""On-disk cache of network-ready cases: reoriented, resampled, normalised, cropped to nonzero.

Each case is preprocessed once (``medseg.data.preprocess``) and stored as .npy files read by memory map.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path, atomic_write_text
from medseg.config import config_hash
from medseg.data.datasets import Case, Dataset
from medseg.data.fingerprint import default_cache_dir, file_stamp, make_cache_folder
from medseg.data.plan import Plan
from medseg.data.preprocess import preprocess_image, preprocess_labels

__all__ = ["CachedCase", "preprocess_dataset", "LOCATIONS_PER_CLASS"]

log = logging.getLogger(__name__)

#: Foreground voxel positions stored per class for foreground-oversampled patch sampling.
LOCATIONS_PER_CLASS = 10_000
_FORMAT = 1


@dataclass(frozen=True)
class CachedCase:
    """Paths of one preprocessed case: image (C, X, Y, Z) float32, label (X, Y, Z) uint8/int16."""

    case_id: str
    image_path: Path
    label_path: Path
    locations_path: Path
    affine: tuple[tuple[float, ...], ...]

    def load(self, *, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Image and label arrays (memory-mapped by default)."""
        mode = "r" if mmap else None
        return np.load(self.image_path, mmap_mode=mode), np.load(self.label_path, mmap_mode=mode)

    def class_locations(self) -> dict[int, np.ndarray]:
        """Sampled voxel indices (N, 3) of each foreground label present in the case."""
        with np.load(self.locations_path) as data:
            return {int(k): data[k] for k in data.files}


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def _preprocess_case(case: Case, plan: Plan, folder: Path) -> dict:
    import medseg

    images = [medseg.read(p, kind="image") for p in case.image_paths]
    label = medseg.read(case.label_path, kind="labels")
    channels = []
    for image in images:  # a 4D file holds several channels
        if image.n_channels == 1:
            channels.append(image.with_array(image.array.reshape(image.shape)) if image.array.ndim == 4
                            else image)
        else:
            channels.extend(image.with_array(image.array[..., c]) for c in range(image.n_channels))
    # Crop to the nonzero region of the image (nnU-Net's crop) before the costly resampling.
    nonzero = channels[0].with_array(np.any([c.array != 0 for c in channels], axis=0).astype(np.uint8))
    box = nonzero.bounding_box()
    if box is not None:
        channels = [c.crop(box) for c in channels]
        label = label.crop(box)
    processed = [preprocess_image(c, target_spacing_mm=plan.target_spacing_mm,
                                  normalization=plan.normalization, orientation=plan.orientation)
                 for c in channels]
    labels = preprocess_labels(label, target_spacing_mm=plan.target_spacing_mm,
                               orientation=plan.orientation)
    image_array = np.stack([p.array for p in processed]).astype(np.float32)
    label_dtype = np.uint8 if max(plan.labels) < 256 else np.int16
    label_array = np.asarray(labels.array, dtype=label_dtype)
    if label_array.shape != image_array.shape[1:]:  # resampling rounding: keep both on one grid
        label_array = label_array[tuple(slice(0, s) for s in image_array.shape[1:])]
    rng = np.random.default_rng(zlib.crc32(case.case_id.encode()))
    locations = {}
    for value in plan.labels:
        if value == 0:
            continue
        found = np.argwhere(label_array == value)
        if len(found) > LOCATIONS_PER_CLASS:
            found = found[np.sort(rng.choice(len(found), LOCATIONS_PER_CLASS, replace=False))]
        if len(found):
            locations[str(value)] = found.astype(np.int32)
    _save_npy(folder / f"{case.case_id}_image.npy", image_array)
    _save_npy(folder / f"{case.case_id}_label.npy", label_array)
    with atomic_path(folder / f"{case.case_id}_locations.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **locations)
    record = {"format": _FORMAT, "stamps": [file_stamp(p) for p in (*case.image_paths, case.label_path)],
              "affine": processed[0].affine.tolist(), "shape": list(image_array.shape)}
    atomic_write_text(folder / f"{case.case_id}.json", json.dumps(record))
    return record


def _cached(case: Case, folder: Path) -> dict | None:
    path = folder / f"{case.case_id}.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    stamps = [file_stamp(p) for p in (*case.image_paths, case.label_path)]
    if record.get("format") != _FORMAT or record.get("stamps") != stamps:
        return None
    return record


def preprocess_dataset(
    dataset: Dataset, plan: Plan, *, cache_dir: str | Path | None = None, workers: int = 2,
    progress: bool = False,
) -> list[CachedCase]:
    """Preprocess every case once for ``plan`` and return the cached cases (dataset order).

    The cache folder is keyed on the plan's spacing, orientation and normalisation
    (``<cache_dir>/preprocessed/<hash>/``); a case is redone only when its files change.
    """
    from medseg.parallel import map_cases

    key = config_hash({"spacing": plan.target_spacing_mm, "orientation": plan.orientation,
                       "normalization": plan.normalization, "labels": plan.labels})
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir(dataset)
    folder = make_cache_folder(root / "preprocessed" / key)
    records = {c.case_id: _cached(c, folder) for c in dataset.cases}
    todo = [c for c in dataset.cases if records[c.case_id] is None]
    if todo:
        log.info("preprocessing %d of %d cases into %s", len(todo), len(dataset.cases), folder)
        for case, record in zip(todo, map_cases(_preprocess_case, todo, plan, folder, workers=workers,
                                                progress=progress, desc="preprocess")):
            records[case.case_id] = record
    return [CachedCase(c.case_id, folder / f"{c.case_id}_image.npy", folder / f"{c.case_id}_label.npy",
                       folder / f"{c.case_id}_locations.npz",
                       tuple(tuple(r) for r in records[c.case_id]["affine"]))
            for c in dataset.cases]
