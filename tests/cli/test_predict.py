"""``medseg predict`` through the console entry point: outputs, summary and exit codes 0/1/2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from _tiny_bundle import cached_tiny_bundle  # noqa: E402

import medseg  # noqa: E402
from medseg.demo import make_phantom  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, pytestconfig) -> Path:
    return cached_tiny_bundle(tmp_path_factory, pytestconfig)


def _predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medseg.cli.app", "predict", *args, "--no-progress"],
                          capture_output=True, text=True, timeout=600)


def test_predict_folder_then_partial_failure_then_bad_model(bundle, tmp_path):
    for seed in (1, 2):
        case = make_phantom(shape=(32, 32, 32), spacing_mm=(3.0, 3.0, 4.0), seed=seed)
        medseg.write(case.image, tmp_path / "in" / f"ct{seed}.nii.gz")
    done = _predict(str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(bundle), "--overlays")
    assert done.returncode == 0, done.stderr
    assert "done 2, failed 0" in done.stderr
    for seed in (1, 2):
        labels = medseg.read(tmp_path / "out" / "labels" / f"ct{seed}.nii.gz")
        assert labels.shape == (32, 32, 32) and labels.array.max() == 3
        assert (tmp_path / "out" / "overlays" / f"ct{seed}.png").exists()
    assert (tmp_path / "out" / "measurements.csv").exists()

    (tmp_path / "in" / "ct3.nii.gz").write_bytes(b"\x1f\x8b truncated")
    partial = _predict(str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(bundle))
    assert partial.returncode == 1, partial.stderr
    assert "done 2, failed 1" in partial.stderr and "ct3" in partial.stderr

    missing = _predict(str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "error:" in missing.stderr and "bundle not found" in missing.stderr


def test_help_has_an_example():
    result = subprocess.run([sys.executable, "-m", "medseg.cli.app", "predict", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "Example: medseg predict" in result.stdout and "Exit codes" in result.stdout
