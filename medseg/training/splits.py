"""Reproducible k-fold splits of case ids, saved as ``splits.json`` in the run folder.

An existing splits.json is reused, so folds stay fixed across runs and resumes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_write_text
from medseg.errors import DatasetError, TrainingError

__all__ = ["make_splits", "load_or_make_splits"]


def make_splits(case_ids: Sequence[str], *, folds: int = 5, seed: int = 12345) -> list[dict[str, list[str]]]:
    """Shuffle ``case_ids`` with ``seed`` and cut them into ``folds`` validation groups.

    >>> s = make_splits([f"c{i}" for i in range(10)], folds=5)
    >>> len(s), len(s[0]["val"]), sorted(sum((f["val"] for f in s), [])) == sorted(f"c{i}" for i in range(10))
    (5, 2, True)
    """
    ids = sorted(case_ids)
    if len(ids) < folds:
        raise DatasetError(f"{len(ids)} cases cannot make {folds} folds; lower `folds` or add cases")
    order = np.random.default_rng(seed).permutation(len(ids))
    groups = np.array_split(order, folds)
    return [{"train": [ids[i] for i in sorted(np.setdiff1d(order, g))],
             "val": [ids[i] for i in sorted(g)]} for g in groups]


def load_or_make_splits(path: str | Path, case_ids: Sequence[str], *, folds: int = 5,
                        seed: int = 12345) -> list[dict[str, list[str]]]:
    """Read ``path`` if it exists (checking its cases exist), else make and write the splits."""
    path = Path(path)
    if path.exists():
        splits = json.loads(path.read_text())
        unknown = sorted({c for s in splits for c in s["train"] + s["val"]} - set(case_ids))
        if unknown:
            raise TrainingError(f"{path}: cases {unknown[:5]} are not in the dataset; delete the "
                                "file to make new splits")
        return splits
    splits = make_splits(case_ids, folds=folds, seed=seed)
    atomic_write_text(path, json.dumps(splits, indent=1))
    return splits
