"""End-to-end tests of ``medseg info`` and ``medseg convert`` through the typer app and the console script."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import medseg
from medseg.cli.app import app
from medseg.demo import make_phantom
from medseg.errors import MultipleSeriesError, UnsupportedFormatError
from medseg.io.dicom_write import write_dicom_series

runner = CliRunner()


@pytest.fixture
def ct(tmp_path):
    case = make_phantom(shape=(16, 12, 6), spacing_mm=(2.0, 2.0, 4.0), seed=0)
    return case.image.with_array(np.rint(case.image.array).astype(np.int16))


def test_info_on_volume(tmp_path, ct):
    path = medseg.write(ct, tmp_path / "ct.nrrd")
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "shape        [16, 12, 6]" in result.output
    assert "spacing_mm   [2.0, 2.0, 4.0]" in result.output
    assert "orientation  RAS" in result.output
    assert f"min          {float(ct.array.min())}" in result.output


def test_info_lists_several_series_then_describes_one(tmp_path, ct):
    write_dicom_series(ct, tmp_path / "a", series_description="first", series_uid="1.2.3.1")
    write_dicom_series(ct, tmp_path / "b", series_description="second", series_uid="1.2.3.2", modality="MR",
                       rescale_intercept=0.0)
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for text in ("2 DICOM series", "1.2.3.1", "first", "1.2.3.2", "second", "MR", "--series-uid"):
        assert text in result.output
    result = runner.invoke(app, ["info", str(tmp_path), "--series-uid", "1.2.3.2"])
    assert result.exit_code == 0, result.output
    assert "modality     MR" in result.output and "shape        [16, 12, 6]" in result.output


def test_convert_dicom_to_nifti_and_back(tmp_path, ct):
    write_dicom_series(ct, tmp_path / "dicom")
    result = runner.invoke(app, ["convert", str(tmp_path / "dicom"), str(tmp_path / "ct.nii.gz")])
    assert result.exit_code == 0, result.output
    nifti = medseg.read(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(nifti.array, ct.array)
    np.testing.assert_allclose(nifti.affine, ct.affine, atol=1e-4)
    result = runner.invoke(app, ["convert", str(tmp_path / "ct.nii.gz"), str(tmp_path / "again"), "--to", "dicom"])
    assert result.exit_code == 0, result.output
    again = medseg.read(tmp_path / "again")
    np.testing.assert_array_equal(again.array, ct.array)
    np.testing.assert_allclose(again.affine, ct.affine, atol=1e-4)
    for extension in (".nrrd", ".mha"):
        result = runner.invoke(app, ["convert", str(tmp_path / "ct.nii.gz"), str(tmp_path / f"ct{extension}")])
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(medseg.read(tmp_path / f"ct{extension}").array, ct.array)


def test_convert_errors(tmp_path, ct):
    medseg.write(ct, tmp_path / "ct.nii.gz")
    result = runner.invoke(app, ["convert", str(tmp_path / "ct.nii.gz"), str(tmp_path / "noext")])
    assert isinstance(result.exception, UnsupportedFormatError) and "--to dicom" in str(result.exception)
    write_dicom_series(ct, tmp_path / "d1" / "a", series_uid="1.2.3.1")
    write_dicom_series(ct, tmp_path / "d1" / "b", series_uid="1.2.3.2")
    result = runner.invoke(app, ["convert", str(tmp_path / "d1"), str(tmp_path / "x.nii.gz")])
    assert isinstance(result.exception, MultipleSeriesError)
    result = runner.invoke(app, ["convert", str(tmp_path / "d1"), str(tmp_path / "x.nii.gz"), "--series-uid", "1.2.3.1"])
    assert result.exit_code == 0, result.output


def test_console_exit_codes_and_help(tmp_path):
    done = subprocess.run([sys.executable, "-m", "medseg.cli.app", "info", str(tmp_path / "missing.nii.gz")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "missing.nii.gz" in done.stderr
    for command in ("info", "convert"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example: medseg" in result.output
