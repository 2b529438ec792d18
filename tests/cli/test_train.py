"""Golden end-to-end runs of ``medseg plan``, ``medseg train`` and ``medseg export`` (tiny sizes)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from medseg.cli.app import app
from medseg.data import load_plan
from medseg.demo import make_dataset
from medseg.inference.bundle import load_bundle

MICRO_YAML = """\
epochs: 1
iterations_per_epoch: 2
folds: 2
patch_size: [16, 16, 16]
batch_size: 2
model_name: unet_small
filters: [8, 16, 32]
num_workers: 0
num_threads: 1
sw_overlap: 0.0
"""


def test_plan_train_export(tmp_path):
    dataset = make_dataset(tmp_path / "ds", n_cases=4, shape=(24, 24, 24), seed=9)
    runner = CliRunner()
    result = runner.invoke(app, ["plan", str(dataset), "--out", str(tmp_path / "plan.yaml"),
                                 "--config", "2d"])
    assert result.exit_code == 0, result.output
    plan = load_plan(tmp_path / "plan.yaml")
    assert plan.configuration == "2d" and plan.patch_size == (24, 24)
    assert "2d plan for Phantom (4 cases)" in result.output

    config = tmp_path / "micro.yaml"
    config.write_text(MICRO_YAML)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(dataset), "--config", str(config), "--fold", "1",
                                 "--out", str(run), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "best validation Dice" in result.output and str(run / "bundle") in result.output
    _, spec = load_bundle(run / "bundle")
    assert spec.provenance["fold"] == 1 and spec.provenance["seed"] == 3
    result = runner.invoke(app, ["train", str(dataset), "--config", str(config), "--out", str(run),
                                 "--fold", "1", "--seed", "3", "--resume", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    result = runner.invoke(app, ["train", str(dataset), "--config", str(config), "--out", str(run),
                                 "--resume", "--epochs", "3"])
    assert "trained fold 1 with seed 3" in str(result.exception)

    result = runner.invoke(app, ["export", str(run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert (run / "bundle" / "model.onnx").stat().st_size > 0


def test_bad_dataset_exits_2_with_a_message(tmp_path):
    done = subprocess.run([sys.executable, "-m", "medseg.cli.app", "train", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "dataset not found" in done.stderr
