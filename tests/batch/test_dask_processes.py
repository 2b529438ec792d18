"""Batch runs on Dask worker PROCESSES: a runner-made LocalCluster and ``--scheduler ADDRESS``.

Outputs must equal an in-process prediction; every case runs once; each worker loads the model once.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _cohort import write_cohort

import medseg
from medseg.batch import run
from medseg.inference import Predictor

distributed = pytest.importorskip("dask.distributed")

SEEDS = (71, 72, 73)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, tiny_bundle):
    """Three NIfTI phantoms and the labels an in-process fp32 Predictor gives them."""
    root = tmp_path_factory.mktemp("dask_cohort")
    write_cohort(root / "in", nifti_seeds=SEEDS, dicom_seed=None)
    predictor = Predictor.from_bundle(tiny_bundle, precision="fp32")
    expected = {f"case{s}": predictor(medseg.read(root / "in" / "nifti" / f"case{s}.nii.gz")).array
                for s in SEEDS}
    return root, expected


def check_outputs(out, expected, result_cases) -> None:
    for case_id, labels in expected.items():
        written = medseg.read(out / "labels" / f"{case_id}.nii.gz", kind="labels")
        np.testing.assert_array_equal(written.array, labels)
    rows = result_cases.set_index("case_id")
    done = rows[rows["status"] == "done"]
    assert sorted(done.index) == sorted(expected)
    assert set(done["attempts"]) == {1}  # every case ran exactly once
    assert all(len(h) == 64 for h in done["input_hash"]) and (done["seconds_predict"] > 0).all()
    assert not list(out.rglob(".*.part*"))


def test_runner_local_cluster_of_two_worker_processes(cohort, tiny_bundle, tmp_path):
    root, expected = cohort
    inputs = tmp_path / "in"
    inputs.mkdir()
    for seed in SEEDS:
        (inputs / f"case{seed}.nii.gz").symlink_to(root / "in" / "nifti" / f"case{seed}.nii.gz")
    good = (root / "in" / "nifti" / f"case{SEEDS[0]}.nii.gz").read_bytes()
    (inputs / "truncated.nii.gz").write_bytes(good[: len(good) // 3])
    result = run(inputs, tmp_path / "out", model=tiny_bundle, precision="fp32", workers=2,
                 dask_processes=True, progress=False)
    assert (result.done, result.failed, result.exit_code) == (3, 1, 1)
    check_outputs(tmp_path / "out", expected, result.cases)
    # The failure happened in a worker process and still reaches the manifest with its reason.
    assert "cannot read" in result.cases.set_index("case_id").loc["truncated", "error"]
    table = medseg.batch.runner.pd.read_csv(result.table_path)
    assert sorted(table["case_id"].unique()) == sorted(expected)


def test_cli_scheduler_address_of_a_process_cluster(cohort, tiny_bundle, tmp_path):
    from typer.testing import CliRunner

    from medseg.cli.app import app

    root, expected = cohort
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        assert len(pids) == 2 and os.getpid() not in pids.values()
        args = ["predict", str(root / "in"), str(out), "--model", str(tiny_bundle), "--scheduler",
                cluster.scheduler_address, "--precision", "fp32", "--no-measure", "--no-progress"]
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        loaded = client.run(lambda: len(__import__("medseg.batch.worker").batch.worker._PREDICTORS))
        # Each worker that ran cases loaded the model once and reused it.
        assert set(loaded.values()) <= {0, 1} and sum(loaded.values()) >= 1
        again = CliRunner().invoke(app, args)  # rerun on the same cluster: nothing to do
        assert again.exit_code == 0, again.output
    manifest = medseg.batch.manifest.Manifest(out)
    try:
        cases = manifest.table()
    finally:
        manifest.close()
    check_outputs(out, expected, cases)
