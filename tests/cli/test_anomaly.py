"""Golden end-to-end runs of ``medseg anomaly train`` and ``medseg anomaly score`` (tiny sizes)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

import medseg
from medseg.anomaly.synthetic import make_lesion_case
from medseg.cli.app import app


def test_anomaly_train_then_score_writes_maps_masks_overlays_and_table(tmp_path):
    normals = tmp_path / "normals"
    for seed in range(3):
        case = make_lesion_case(seed, shape=(32, 32, 16), spacing_mm=(3.0, 3.0, 8.0), n_lesions=0)
        medseg.write(case.image, normals / f"n{seed}.nii.gz")
    scans = tmp_path / "scans"
    sick = make_lesion_case(7, shape=(32, 32, 16), spacing_mm=(3.0, 3.0, 8.0), n_lesions=1,
                            radius_mm=(9.0, 10.0))
    medseg.write(sick.image, scans / "sick.nii.gz")
    config = tmp_path / "anomaly.yaml"
    config.write_text("patch_size: [32, 32]\nbatch_size: 4\nnoise_resolution: 4\n")
    runner = CliRunner()
    bundle = tmp_path / "bundle"
    result = runner.invoke(app, ["anomaly", "train", str(normals), "--out", str(bundle),
                                 "--config", str(config), "--iterations", "4"])
    assert result.exit_code == 0, result.output
    assert (bundle / "bundle.yaml").exists() and (bundle / "weights.pt").exists()
    out = tmp_path / "scores"
    result = runner.invoke(app, ["anomaly", "score", str(scans), "--model", str(bundle),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    anomaly_map = medseg.read(out / "sick_anomaly_map.nii.gz")
    mask = medseg.read(out / "sick_anomaly_mask.nii.gz")
    assert anomaly_map.array.dtype.kind == "f" and anomaly_map.same_grid(sick.image)
    assert set(mask.array.ravel().tolist()) <= {0, 1}
    assert (out / "sick_overlay.png").stat().st_size > 0
    table = pd.read_csv(out / "cases.csv")
    assert table["case_id"].tolist() == ["sick"]
    # Same grid as the training scans: the case score is the map's maximum.
    assert table.loc[0, "case_score"] == pytest.approx(float(anomaly_map.array.max()), rel=1e-4)


def test_anomaly_score_with_a_missing_bundle_exits_2(tmp_path):
    import subprocess
    import sys

    scan = tmp_path / "a.nii.gz"
    medseg.write(make_lesion_case(1, shape=(16, 16, 8), n_lesions=0).image, scan)
    done = subprocess.run([sys.executable, "-m", "medseg.cli.app", "anomaly", "score", str(scan),
                           "--model", str(tmp_path / "nope")], capture_output=True, text=True)
    assert done.returncode == 2 and "bundle" in done.stderr
