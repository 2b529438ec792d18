"""evaluate_folder(): pairing by case id, parallel workers, error rows instead of crashes."""

from __future__ import annotations

import numpy as np
import pytest

import medseg
from medseg import Volume
from medseg.errors import InputNotFoundError
from medseg.metrics import evaluate, evaluate_folder
from medseg.metrics.folder import case_id_from_path


def _write(path, array, spacing=(1.0, 1.0, 2.0)):
    medseg.write(Volume.from_array(array, spacing_mm=spacing, kind="labels"), path)


def test_folder_pairs_runs_in_processes_and_reports_errors(tmp_path):
    ref = np.zeros((12, 12, 8), np.uint8)
    ref[2:8, 2:8, 2:6] = 1
    for case, shift in (("a", 0), ("b", 1), ("c", 2)):
        _write(tmp_path / "ref" / f"{case}.nii.gz", ref)
        _write(tmp_path / "pred" / f"{case}.nrrd", np.roll(ref, shift, axis=0))
    _write(tmp_path / "pred" / "d.nii.gz", ref)                              # no reference
    _write(tmp_path / "ref" / "e.nii.gz", ref)                               # no prediction
    _write(tmp_path / "ref" / "f.nii.gz", ref)
    _write(tmp_path / "pred" / "f.nii.gz", ref, spacing=(1.0, 1.0, 3.0))     # other grid
    (tmp_path / "pred" / "notes.txt").write_text("ignored")
    table = evaluate_folder(tmp_path / "pred", tmp_path / "ref", workers=2, progress=False)
    assert table["case_id"].tolist() == ["a", "b", "c", "d", "e", "f"]
    errors = dict(zip(table["case_id"], table["error"]))
    assert errors["a"] == errors["b"] == errors["c"] == ""
    assert "no reference" in errors["d"] and "no prediction" in errors["e"]
    assert "same voxel grid" in errors["f"]
    expected = evaluate(np.roll(ref, 1, axis=0), ref, spacing_mm=(1.0, 1.0, 2.0))
    assert table.set_index("case_id").loc["b", "dice"] == pytest.approx(expected["dice"].iloc[0])
    serial = evaluate_folder(tmp_path / "pred", tmp_path / "ref", workers=1, progress=False)
    np.testing.assert_array_equal(serial["hd95_mm"].to_numpy(), table["hd95_mm"].to_numpy())


def test_case_ids_and_missing_folder(tmp_path):
    assert case_id_from_path("x/liver_3.seg.nrrd") == "liver_3"
    assert case_id_from_path("x/liver_3.nii") == "liver_3"
    assert case_id_from_path("x/readme.md") is None
    with pytest.raises(InputNotFoundError, match="prediction folder"):
        evaluate_folder(tmp_path / "nope", tmp_path)
