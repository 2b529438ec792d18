"""Golden end-to-end tests of ``medseg evaluate`` and ``medseg measure`` on small files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import medseg
from medseg import Volume
from medseg.cli.app import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    """Two cases of a 2-label map (boxes) with a one-voxel shifted prediction, plus a CT-like image."""
    ref = np.zeros((16, 16, 8), np.uint8)
    ref[2:10, 2:10, 2:6] = 1
    ref[11:14, 11:14, 1:4] = 2
    pred = np.roll(ref, 1, axis=0)
    for folder, array in (("ref", ref), ("pred", pred)):
        for case in ("c1", "c2"):
            volume = Volume.from_array(array, spacing_mm=(1.0, 1.0, 2.0), kind="labels")
            medseg.write(volume, tmp_path / folder / f"{case}.nii.gz")
    image = Volume.from_array(np.where(ref == 1, 60.0, -100.0).astype(np.float32), spacing_mm=(1.0, 1.0, 2.0),
                              meta={"modality": "CT"})
    medseg.write(image, tmp_path / "ct.nii.gz")
    return tmp_path


def test_evaluate_files_golden(files):
    out = files / "metrics.csv"
    result = runner.invoke(app, ["evaluate", str(files / "pred" / "c1.nii.gz"), str(files / "ref" / "c1.nii.gz"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mean ± sd per label" in result.output and "0.875 ± 0.000" in result.output
    table = pd.read_csv(out)
    assert table["label"].tolist() == [1, 2]
    # Box of 8 voxels along i shifted by one voxel: Dice = 2*7/16, HD = 1 mm.
    assert table.loc[0, "dice"] == pytest.approx(2 * 7 / 16)
    assert table.loc[0, "hd_mm"] == pytest.approx(1.0)
    assert table.loc[1, "dice"] == pytest.approx(2 * 2 / 6)
    assert table.loc[0, "volume_ref_ml"] == pytest.approx(8 * 8 * 4 * 2 / 1000)


def test_evaluate_folders_with_a_missing_case(files):
    (files / "pred" / "c2.nii.gz").rename(files / "pred" / "c3.nii.gz")
    out = files / "folder.csv"
    result = runner.invoke(app, ["evaluate", str(files / "pred"), str(files / "ref"), "--out", str(out),
                                 "--workers", "1"])
    assert result.exit_code == 1, result.output
    table = pd.read_csv(out, keep_default_na=False)
    assert table["case_id"].tolist() == ["c1", "c1", "c2", "c3"]
    errors = dict(zip(table["case_id"], table["error"]))
    assert errors["c1"] == "" and "no prediction" in errors["c2"] and "no reference" in errors["c3"]


def test_measure_golden(files):
    out = files / "measure.csv"
    result = runner.invoke(app, ["measure", str(files / "ref" / "c1.nii.gz"), "--image", str(files / "ct.nii.gz"),
                                 "--modality", "CT", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["label"].tolist() == [1, 2]  # NIfTI keeps no label names
    assert table.loc[0, "volume_ml"] == pytest.approx(0.512)
    assert table.loc[0, "mean_hu"] == pytest.approx(60.0)
    assert table.loc[1, "mean_hu"] == pytest.approx(-100.0)
    parts = runner.invoke(app, ["measure", str(files / "ref" / "c1.nii.gz"), "--per-component"])
    assert parts.exit_code == 0 and "component" in parts.output


def test_help_examples_and_error_exit_code(files):
    for command in ("evaluate", "measure"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example: medseg" in result.output
    done = subprocess.run([sys.executable, "-m", "medseg.cli.app", "evaluate", str(files / "missing.nii.gz"),
                           str(files / "ref" / "c1.nii.gz")], capture_output=True, text=True)
    assert done.returncode == 2 and "missing.nii.gz" in done.stderr
