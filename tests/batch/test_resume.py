"""Kill a batch run with SIGKILL mid-way, rerun it: every case done exactly once, no partial files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
from _cohort import write_cohort

import medseg
from medseg.batch import run


def _done_count(manifest) -> int:
    if not manifest.exists():
        return 0
    try:
        with sqlite3.connect(manifest, timeout=1.0) as db:
            return db.execute("SELECT COUNT(*) FROM cases WHERE status='done'").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def test_sigkill_then_rerun_finishes_every_case_once(tiny_bundle, tmp_path):
    seeds = tuple(range(70, 74))
    write_cohort(tmp_path / "in", nifti_seeds=seeds, dicom_seed=None)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "medseg.cli.app", "predict", str(tmp_path / "in"), str(out),
               "--model", str(tiny_bundle), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _done_count(out / "manifest.sqlite") < 1 and process.poll() is None:
        assert time.monotonic() < deadline, "the batch run did not finish a case in 300 s"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = _done_count(out / "manifest.sqlite")
    assert 1 <= done_before < len(seeds), "the run was not interrupted mid-way"

    result = run(tmp_path / "in", out, model=tiny_bundle, progress=False)
    assert (result.done, result.failed) == (len(seeds), 0)
    cases = result.cases.set_index("case_id")
    assert set(cases["status"]) == {"done"}
    # Cases finished before the kill were not redone; the rest ran once more at most.
    assert (cases["attempts"] == 1).sum() >= done_before
    assert cases["attempts"].max() <= 2
    leftovers = [p for p in out.rglob("*") if ".part" in p.name]
    assert leftovers == []
    for case_id in cases.index:
        labels = medseg.read(out / "labels" / f"{case_id}.nii.gz")
        assert labels.shape == (32, 32, 32)
    table = pd.read_csv(out / "measurements.csv")
    assert sorted(table.groupby("case_id")["label"].count().index) == sorted(cases.index)
    assert not table.duplicated(["case_id", "label"]).any()
