"""End-to-end training: Dice on phantoms, run folder contents, bit-exact repeat and resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from medseg.data import NormalizationSpec, load_dataset
from medseg.data.preprocess import preprocess_image, preprocess_labels
from medseg.demo import make_dataset, make_phantom
from medseg.errors import TrainingError
from medseg.inference.bundle import load_bundle
from medseg.training import TrainConfig, train
from medseg.training.validation import dice_per_label, predict_case

MICRO = TrainConfig(epochs=4, iterations_per_epoch=3, val_every=2, folds=4, patch_size=(16, 16, 16),
                    batch_size=2, model_name="unet_small", filters=(8, 16, 32), optimizer="adamw",
                    learning_rate=0.003, num_workers=1, num_threads=1, sw_overlap=0.0)


@pytest.fixture(scope="module")
def micro_dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("micro"), n_cases=8, shape=(24, 24, 24), seed=3)


def test_tiny_run_segments_phantoms(tiny_run_3d):
    result = tiny_run_3d
    assert result.best_val_dice > 0.8
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"plan.yaml", "config.yaml", "splits.json", "checkpoints", "metrics.csv", "curves.png",
            "provenance.json", "bundle"} <= names
    assert {"last.pt", "best.pt"} <= {p.name for p in (result.run_dir / "checkpoints").iterdir()}
    assert list(result.history.columns[:6]) == ["epoch", "train_loss", "val_dice", "val_dice_ema",
                                                "lr", "seconds"]
    assert len(result.history) == result.config.epochs
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    table = pd.read_csv(result.run_dir / "metrics.csv")
    assert np.allclose(table["train_loss"], result.history["train_loss"])
    assert (result.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_bundle_segments_an_unseen_phantom(tiny_run_3d):
    model, spec = load_bundle(tiny_run_3d.bundle_dir)
    assert spec.patch_size == (32, 32, 32) and spec.normalization.scheme == "ct"
    assert spec.provenance["seed"] == 0 and len(spec.provenance["case_hashes"]) == 12
    case = make_phantom(shape=(48, 48, 48), seed=1000)
    image = preprocess_image(case.image, target_spacing_mm=spec.target_spacing_mm,
                             normalization=spec.normalization)
    labels = preprocess_labels(case.labels, target_spacing_mm=spec.target_spacing_mm)
    prediction = predict_case(model, image.array[None], patch_size=spec.patch_size)
    dice = dice_per_label(prediction, labels.array, [1, 2, 3])
    assert np.mean(list(dice.values())) > 0.75, dice


def test_provenance_names_the_training_data(tiny_run_3d, tiny_dataset_3d):
    provenance = json.loads((tiny_run_3d.run_dir / "provenance.json").read_text())
    assert sorted(provenance["case_hashes"]) == load_dataset(tiny_dataset_3d).case_ids
    splits = json.loads((tiny_run_3d.run_dir / "splits.json").read_text())
    assert provenance["validation_cases"] == splits[0]["val"]


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


def test_same_seed_repeats_bit_for_bit_and_resume_continues_exactly(micro_dataset, tmp_path):
    full = train(micro_dataset, out_dir=tmp_path / "full", config=MICRO, seed=7, progress=False)
    # Same seed, no loader worker, interrupted after 2 of 4 epochs, then resumed.
    half = train(micro_dataset, out_dir=tmp_path / "half", seed=7, progress=False,
                 config=dataclasses.replace(MICRO, num_workers=0), stop_after_epoch=2)
    assert len(half.history) == 2
    assert half.history["train_loss"].tolist() == full.history["train_loss"].iloc[:2].tolist()
    resumed = train(micro_dataset, out_dir=tmp_path / "half", config=MICRO, seed=7, progress=False,
                    resume=True)
    assert resumed.history["train_loss"].tolist() == full.history["train_loss"].tolist()
    assert resumed.history["val_dice"].equals(full.history["val_dice"])
    for name, tensor in _weights(tmp_path / "full").items():
        assert torch.equal(tensor, _weights(tmp_path / "half")[name]), name
    other = train(micro_dataset, out_dir=tmp_path / "other", config=MICRO, seed=8, progress=False,
                  stop_after_epoch=1)
    assert other.history["train_loss"].iloc[0] != full.history["train_loss"].iloc[0]


def test_resume_extends_the_schedule_and_guards_the_config(micro_dataset, tmp_path):
    config = dataclasses.replace(MICRO, epochs=1, val_every=1)
    train(micro_dataset, out_dir=tmp_path / "run", config=config, progress=False)
    with pytest.raises(TrainingError, match="already holds a run"):
        train(micro_dataset, out_dir=tmp_path / "run", config=config, progress=False)
    with pytest.raises(TrainingError, match="config differs"):
        train(micro_dataset, out_dir=tmp_path / "run", config=dataclasses.replace(config, batch_size=3),
              resume=True, progress=False)
    longer = train(micro_dataset, out_dir=tmp_path / "run", config=config, epochs=2, resume=True,
                   progress=False)
    assert longer.history["epoch"].tolist() == [0, 1]
    assert longer.history["lr"].tolist() == [0.003, 0.003 * 0.5**0.9]


def test_max_minutes_stops_after_the_epoch_that_crosses_it(micro_dataset, tmp_path):
    result = train(micro_dataset, out_dir=tmp_path / "run", config=MICRO, max_minutes=1e-6,
                   progress=False)
    assert len(result.history) == 1  # at least one epoch per call, then the clock stops it
    assert (result.bundle_dir / "bundle.yaml").exists()


def test_unknown_fold_is_a_training_error(micro_dataset, tmp_path):
    with pytest.raises(TrainingError, match="fold 9 does not exist"):
        train(micro_dataset, out_dir=tmp_path / "x", config=MICRO, fold=9, progress=False)


def test_normalization_spec_is_shared_with_inference():
    assert NormalizationSpec is load_bundle.__globals__["NormalizationSpec"]


@pytest.mark.slow
def test_tiny_2d_run_segments_phantoms(tiny_dataset_3d, tmp_path):
    result = train(tiny_dataset_3d, out_dir=tmp_path / "run2d", config="tiny2d", progress=False)
    assert result.best_val_dice > 0.8
    model, spec = load_bundle(result.bundle_dir)
    assert spec.spatial_dims == 2 and spec.patch_size == (48, 48)


@pytest.mark.slow
def test_cpu_bf16_keeps_dice(tiny_run_3d, tiny_dataset_3d, tmp_path):
    from medseg.training.config import resolve_config
    from medseg.training.loop import cpu_bf16_supported

    if not cpu_bf16_supported():
        pytest.skip("this CPU has no native bf16, so tiny_run_3d already ran in fp32")
    config = dataclasses.replace(resolve_config("tiny3d")[0], cpu_bf16=False)
    fp32 = train(tiny_dataset_3d, out_dir=tmp_path / "fp32", config=config, progress=False)
    assert fp32.best_val_dice > 0.8
    assert abs(fp32.best_val_dice - tiny_run_3d.best_val_dice) < 0.05
