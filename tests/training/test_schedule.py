"""Optimiser choice, poly learning-rate schedule, and reproducible k-fold splits."""

from __future__ import annotations

import json

import pytest
import torch

from medseg.errors import ConfigError, DatasetError, TrainingError
from medseg.training.optim import build_optimizer, learning_rate_at
from medseg.training.splits import load_or_make_splits, make_splits


def test_poly_schedule_by_hand():
    assert learning_rate_at(0, initial=0.01, epochs=4) == 0.01
    assert learning_rate_at(2, initial=0.01, epochs=4) == pytest.approx(0.01 * 0.5**0.9)
    assert learning_rate_at(4, initial=0.01, epochs=4) == 0.0
    assert learning_rate_at(3, initial=0.01, epochs=4, schedule="constant") == 0.01
    with pytest.raises(ConfigError):
        learning_rate_at(0, initial=0.01, epochs=4, schedule="cosine")


def test_optimizers():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, name="sgd")
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    assert sgd.defaults["momentum"] == 0.99
    assert isinstance(build_optimizer(params, name="adamw"), torch.optim.AdamW)
    with pytest.raises(ConfigError):
        build_optimizer(params, name="lion")


def test_splits_partition_the_cases_reproducibly(tmp_path):
    ids = [f"case{i:02d}" for i in range(12)]
    splits = make_splits(ids, folds=5)
    assert [len(s["val"]) for s in splits] == [3, 3, 2, 2, 2]
    assert sorted(c for s in splits for c in s["val"]) == ids
    for split in splits:
        assert not set(split["train"]) & set(split["val"])
        assert len(split["train"]) + len(split["val"]) == 12
    assert make_splits(list(reversed(ids)), folds=5) == splits
    assert make_splits(ids, folds=5, seed=1) != splits
    path = tmp_path / "splits.json"
    assert load_or_make_splits(path, ids, folds=5) == splits
    path.write_text(json.dumps([{"train": ids[1:], "val": ids[:1]}]))
    assert load_or_make_splits(path, ids, folds=5)[0]["val"] == ["case00"]
    with pytest.raises(TrainingError, match="not in the dataset"):
        load_or_make_splits(path, ids[:5], folds=5)
    with pytest.raises(DatasetError, match="cannot make 5 folds"):
        make_splits(ids[:3], folds=5)
