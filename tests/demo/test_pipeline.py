"""End-to-end test of ``medseg demo --minutes 1``: files, report figures, and metrics that agree
with values recomputed independently from the written NIfTI files."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from typer.testing import CliRunner

import medseg
from medseg.cli.app import app

LABELS = {1: "liver", 2: "spleen", 3: "kidney"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "medseg-demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--minutes", "1", "--seed", "3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_cli_says_where_the_report_is(demo_run):
    out, output = demo_run
    match = re.search(r"^report:\s+(\S+)$", output, flags=re.MULTILINE)
    assert match and match.group(1) == str(out / "report.html")
    assert (out / "report.html").is_file()
    assert "held-out Dice liver" in output


def test_report_embeds_nonblank_figures(demo_run):
    out, _ = demo_run
    html = (out / "report.html").read_text()
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    saved = sorted((out / "figures").glob("*.png"))
    names = {p.stem for p in saved}
    # data case, training curves, one overlay per held-out case, metric boxes, real sample.
    assert {"data_training_case", "training_curves", "metric_boxes", "sample_chest_ct"} <= names
    assert len([n for n in names if n.startswith("overlay_")]) == 2
    assert len(sources) == len(saved)
    for encoded in sources:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as img:
            width, height = img.size
            pixels = np.asarray(img.convert("RGB"))
        assert width >= 300 and height >= 200
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16
    for path in saved:  # the PNGs beside the report are the embedded ones
        assert base64.b64encode(path.read_bytes()).decode() in sources
    for heading in ("1. Data", "2. Training", "3. Held-out cases", "4. Metrics", "5. Measurements"):
        assert heading in html
    from medseg import __version__

    environment = html[html.index("Environment"):]  # the provenance record's versions
    assert __version__ in environment and "created (UTC)" in environment and "pydicom" in environment


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_metrics_agree_with_the_written_files(demo_run):
    out, _ = demo_run
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(metrics["case_id"].unique()) == ["phantom_010", "phantom_011"]
    assert sorted(set(metrics["label"])) == [1, 2, 3]
    for column in ("dice", "hd95_mm", "nsd_1mm", "volume_ref_ml", "volume_pred_ml"):
        assert column in metrics.columns
    for case_id, rows in metrics.groupby("case_id"):
        prediction = medseg.read(out / "predictions" / f"{case_id}.nii.gz", kind="labels")
        reference = medseg.read(out / "data" / "labelsTs" / f"{case_id}.nii.gz", kind="labels")
        reference = reference.reorient(prediction.orientation)
        assert reference.same_grid(prediction)
        for row in rows.itertuples():
            pred_mask = prediction.array == row.label
            ref_mask = reference.array == row.label
            assert row.dice == pytest.approx(_dice(pred_mask, ref_mask), abs=1e-6)
            assert row.volume_ref_ml == pytest.approx(ref_mask.sum() * reference.voxel_volume_ml,
                                                      rel=1e-6)
    # One minute of training already finds the liver, the largest organ.
    assert metrics.loc[metrics["label"] == 1, "dice"].mean() > 0.5


def test_measurements_match_predicted_volumes(demo_run):
    out, _ = demo_run
    metrics = pd.read_csv(out / "metrics.csv")
    measurements = pd.read_csv(out / "measurements.csv")
    assert {"case_id", "label", "volume_ml"} <= set(measurements.columns)
    merged = metrics.merge(measurements, on=["case_id", "label"])
    np.testing.assert_allclose(merged["volume_ml"], merged["volume_pred_ml"], rtol=1e-6)


def test_dicom_seg_references_the_dicom_series(demo_run):
    out, _ = demo_run
    for case_id in ("phantom_010", "phantom_011"):
        seg = pydicom.dcmread(out / "predictions" / f"{case_id}_seg.dcm")
        series = pydicom.dcmread(sorted((out / "dicom" / case_id).iterdir())[0])
        assert seg.Modality == "SEG"
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.SeriesInstanceUID
        assert seg.FrameOfReferenceUID == series.FrameOfReferenceUID
        names = {s.SegmentLabel for s in seg.SegmentSequence}
        assert names <= set(LABELS.values()) and "liver" in names


def test_bad_minutes_exit_code_2():
    done = subprocess.run([sys.executable, "-m", "medseg.cli.app", "demo", "--minutes", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "minutes must be positive" in done.stderr


def test_help_has_an_example():
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "Example: medseg demo" in result.output
