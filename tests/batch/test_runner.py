"""Batch runner end to end: NIfTI + DICOM in, labels/DICOM-SEG/measurements out, faults, resume, Dask."""

from __future__ import annotations

import sqlite3

import numpy as np
import pydicom
import pytest
from _cohort import SHAPE, phantom, write_cohort

import medseg
from medseg.batch import run
from medseg.batch.worker import PredictorOptions, predictor_for
from medseg.errors import InputNotFoundError
from medseg.io import read_dicom_series, write_dicom_series


def dice(a, b) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def _seg_masks_by_geometry(seg_path, labels: medseg.Volume, source_files) -> dict[int, tuple[int, int]]:
    """Compare every SEG frame with the NIfTI labels at the frame pixels' own positions.

    Uses only pydicom and the source files' ImagePositionPatient/Orientation/PixelSpacing,
    independently of medseg's geometry code. Returns {label value: (seg voxels, nifti voxels)}.
    """
    seg = pydicom.dcmread(seg_path)
    sources = {}
    for path in source_files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        sources[ds.SOPInstanceUID] = ds
    segment_values = {}
    for item in seg.SegmentSequence:
        name = item.SegmentLabel
        segment_values[int(item.SegmentNumber)] = {v: k for k, v in labels.labels.items()}[name]
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    counts = {v: 0 for v in segment_values.values()}
    to_index = np.linalg.inv(labels.affine)
    rows, cols = np.meshgrid(np.arange(seg.Rows), np.arange(seg.Columns), indexing="ij")
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        value = segment_values[number]
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ds = sources[uid]  # KeyError = a frame referencing an instance not in the series
        ipp = np.asarray(ds.ImagePositionPatient, float)
        iop = np.asarray(ds.ImageOrientationPatient, float)
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
        lps = ipp + cols[..., None] * col_mm * iop[:3] + rows[..., None] * row_mm * iop[3:]
        ras = lps * np.array([-1.0, -1.0, 1.0])
        index = np.rint(ras.reshape(-1, 3) @ to_index[:3, :3].T + to_index[:3, 3]).astype(int)
        nifti = labels.array[index[:, 0], index[:, 1], index[:, 2]].reshape(frame.shape) == value
        np.testing.assert_array_equal(frame.astype(bool), nifti)
        counts[value] += int(frame.sum())
    return {v: (counts[v], int((labels.array == v).sum())) for v in segment_values.values()}


def test_nifti_folder_and_dicom_study_end_to_end(tiny_bundle, tmp_path):
    truths = write_cohort(tmp_path / "in")
    result = run(tmp_path / "in", tmp_path / "out", model=tiny_bundle, overlays=True,
                 progress=False)
    assert (result.done, result.failed, result.exit_code) == (3, 0, 0)
    cases = result.cases.set_index("case_id")
    dicom_id = next(c for c in cases.index if "patient1_ct" in c)
    # Accuracy of the tiny model on each case, against the phantom truth.
    for case_id, truth_key in [("case11", "case11"), ("case12", "case12"), (dicom_id, "dicom")]:
        labels = medseg.read(tmp_path / "out" / "labels" / f"{case_id}.nii.gz", kind="labels")
        truth = truths[truth_key].labels
        labels.require_same_grid(truth)
        assert dice(labels.array == 1, truth.array == 1) > 0.85
        assert np.mean([dice(labels.array == v, truth.array == v) for v in (1, 2, 3)]) > 0.6
        assert (tmp_path / "out" / "overlays" / f"{case_id}.png").stat().st_size > 1000
    # DICOM-SEG: readable by highdicom, references the source series, frames = NIfTI voxels.
    import highdicom as hd

    seg_path = tmp_path / "out" / "seg" / f"{dicom_id}.dcm"
    seg = hd.seg.segread(seg_path)
    source = read_dicom_series(tmp_path / "in" / "dicom" / "patient1" / "ct")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.meta["dicom"]["SeriesInstanceUID"]
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= set(source.meta["dicom"]["SOPInstanceUIDs"])
    labels = medseg.read(tmp_path / "out" / "labels" / f"{dicom_id}.nii.gz", kind="labels")
    labels = labels.replace(labels={1: "liver", 2: "spleen", 3: "kidney"})
    counts = _seg_masks_by_geometry(seg_path, labels, source.meta["dicom"]["files"])
    assert counts and all(seg_n == nifti_n > 0 for seg_n, nifti_n in counts.values())
    # Cohort table: one row per case and label, volumes equal voxel counts x voxel size.
    table = medseg.batch.runner.pd.read_csv(result.table_path)
    assert sorted(table["case_id"].unique()) == sorted(cases.index)
    row = table[(table["case_id"] == "case11") & (table["label"] == 1)].iloc[0]
    case11 = medseg.read(tmp_path / "out" / "labels" / "case11.nii.gz", kind="labels")
    assert row["volume_ml"] == pytest.approx((case11.array == 1).sum() * case11.voxel_volume_ml, rel=1e-6)
    # Manifest provenance.
    record = cases.loc["case11"]
    assert record["status"] == "done" and len(record["input_hash"]) == 64
    assert "weights_sha256" in record["provenance"] and record["seconds_predict"] > 0


def test_faults_are_recorded_and_the_batch_goes_on(tiny_bundle, tmp_path):
    root = tmp_path / "in"
    write_cohort(root, nifti_seeds=(21,), dicom_seed=22)
    good = (root / "nifti" / "case21.nii.gz").read_bytes()
    (root / "nifti" / "truncated.nii.gz").write_bytes(good[: len(good) // 3])
    (root / "nifti" / "notes.txt").write_text("not an image")
    mr = phantom(23).image.replace(meta={"modality": "MR"})
    write_dicom_series(mr, root / "dicom" / "patient1" / "mr", modality="MR",
                       series_description="T1 axial", rescale_intercept=-1024.0)
    result = run(root, tmp_path / "out", model=tiny_bundle, progress=False)
    cases = result.cases.set_index("case_id")
    assert (result.done, result.failed, result.exit_code) == (2, 2, 1)
    assert "cannot read" in cases.loc["truncated", "error"]
    mr_id = next(c for c in cases.index if "patient1_mr" in c)
    assert "wrong modality MR" in cases.loc[mr_id, "error"]
    notes = [c for c in cases.index if c.endswith("notes.txt")]
    assert len(notes) == 1 and cases.loc[notes[0], "status"] == "skipped"
    assert not (tmp_path / "out" / "labels" / "truncated.nii.gz").exists()
    # A rerun keeps finished work and known failures; --retry-failed tries failures again.
    again = run(root, tmp_path / "out", model=tiny_bundle, progress=False)
    assert (again.done, again.failed) == (2, 2)
    assert set(again.cases["attempts"][again.cases["status"] != "skipped"]) == {1}
    retried = run(root, tmp_path / "out", model=tiny_bundle, retry_failed=True, progress=False)
    attempts = retried.cases.set_index("case_id")["attempts"]
    assert attempts["truncated"] == 2 and attempts["case21"] == 1
    # Selection rules skip the MR series with a reason instead of failing it.
    ct_only = run(root, tmp_path / "out2", model=tiny_bundle, modality="CT", progress=False)
    skipped = ct_only.cases.set_index("case_id").loc[mr_id]
    assert skipped["status"] == "skipped" and "modality MR is not CT" in skipped["error"]
    excluded = run(root / "dicom", tmp_path / "out3", model=tiny_bundle, series_exclude="^T1",
                   series_include="abdomen|axial", progress=False)
    excluded_mr = excluded.cases[excluded.cases["case_id"].str.contains("patient1_mr")].iloc[0]
    assert excluded.done == 1 and "series-exclude" in excluded_mr["error"]


def test_changed_input_is_recomputed(tiny_bundle, tmp_path):
    root = tmp_path / "in"
    write_cohort(root, nifti_seeds=(31, 32), dicom_seed=None)
    run(root, tmp_path / "out", model=tiny_bundle, progress=False)
    medseg.write(phantom(33).image, root / "nifti" / "case31.nii.gz")
    result = run(root, tmp_path / "out", model=tiny_bundle, progress=False)
    attempts = result.cases.set_index("case_id")["attempts"]
    assert attempts["case31"] == 2 and attempts["case32"] == 1


def test_csv_input_with_case_ids(tiny_bundle, tmp_path):
    write_cohort(tmp_path, nifti_seeds=(41, 42), dicom_seed=13)
    listing = tmp_path / "cohort.csv"
    listing.write_text("path,case_id\nnifti/case41.nii.gz,subject-A\n"
                       f"{tmp_path / 'nifti' / 'case42.nii.gz'},\ndicom/patient1/ct,subject-C\n")
    result = run(listing, tmp_path / "out", model=tiny_bundle, write_dicom_seg=False,
                 measure=False, progress=False)
    assert sorted(result.cases["case_id"]) == ["case42", "subject-A", "subject-C"]
    assert result.table_path is None and not (tmp_path / "out" / "seg").exists()


def test_bad_model_or_empty_input_fail_before_any_case(tiny_bundle, tmp_path):
    with pytest.raises(InputNotFoundError, match="bundle not found"):
        run(tmp_path, tmp_path / "out", model=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="no images found"):
        run(tmp_path / "empty", tmp_path / "out", model=tiny_bundle)
    assert not (tmp_path / "out").exists()


def test_dask_local_cluster_matches_local_run(tiny_bundle, tmp_path):
    pytest.importorskip("dask.distributed")
    write_cohort(tmp_path / "in", nifti_seeds=(51, 52, 53), dicom_seed=None)
    local = run(tmp_path / "in", tmp_path / "local", model=tiny_bundle, precision="fp32",
                measure=False, progress=False)
    # Worker threads of this process (processes=False): spawning 2 processes that each import
    # torch costs more than this 3-case test; the per-process Predictor cache is the same code.
    dask = run(tmp_path / "in", tmp_path / "dask", model=tiny_bundle, precision="fp32", workers=2,
               dask_processes=False, measure=False, progress=False)
    assert (dask.done, dask.failed) == (local.done, local.failed) == (3, 0)
    for case_id in ("case51", "case52", "case53"):
        a = medseg.read(tmp_path / "local" / "labels" / f"{case_id}.nii.gz").array
        b = medseg.read(tmp_path / "dask" / "labels" / f"{case_id}.nii.gz").array
        np.testing.assert_array_equal(a, b)
    with sqlite3.connect(tmp_path / "dask" / "manifest.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM cases WHERE status='done'").fetchone()[0] == 3


def test_predictor_is_loaded_once_per_process(tiny_bundle):
    options = PredictorOptions(bundles=(str(tiny_bundle),), precision="fp32")
    assert predictor_for(options) is predictor_for(options)
    assert predictor_for(options) is not predictor_for(PredictorOptions(bundles=(str(tiny_bundle),),
                                                                        precision="fp32", tta=True))


def test_input_on_other_grid_is_predicted_on_its_own_grid(tiny_bundle, tmp_path):
    case = medseg.demo.make_phantom(shape=(40, 30, 20), spacing_mm=(2.4, 3.2, 6.4), seed=61)
    medseg.write(case.image.reorient("LPS"), tmp_path / "in" / "lps.nii.gz")
    result = run(tmp_path / "in" / "lps.nii.gz", tmp_path / "out", model=tiny_bundle, progress=False)
    labels = medseg.read(tmp_path / "out" / "labels" / "lps.nii.gz", kind="labels")
    assert result.done == 1 and labels.shape == (40, 30, 20) and labels.orientation == "LPS"
    assert dice(labels.reorient("RAS").array == 1, case.labels.array == 1) > 0.8
    assert SHAPE == (32, 32, 32)


@pytest.mark.parametrize("budget_mb", [None, 256.0])
def test_a_memory_budget_runs_cases_one_at_a_time(tiny_bundle, tmp_path, monkeypatch, budget_mb):
    import threading
    import time

    from medseg.batch import runner as runner_module

    write_cohort(tmp_path / "in", nifti_seeds=(51, 52, 53, 54), dicom_seed=None)
    lock, held, peak = threading.Lock(), set(), [0]
    real_load, real_write = runner_module.load_case, runner_module.write_outputs

    def load(case, predictor):  # a case is "held" from its read until its outputs are written
        with lock:
            held.add(case.case_id)
            peak[0] = max(peak[0], len(held))
        time.sleep(0.2)  # slow reads, so that prefetching shows when it happens
        return real_load(case, predictor)

    def write(case, *args, **kwargs):
        try:
            return real_write(case, *args, **kwargs)
        finally:
            with lock:
                held.discard(case.case_id)

    monkeypatch.setattr(runner_module, "load_case", load)
    monkeypatch.setattr(runner_module, "write_outputs", write)
    result = run(tmp_path / "in", tmp_path / "out", model=tiny_bundle, memory_budget_mb=budget_mb,
                 measure=False, progress=False)
    assert result.done == 4
    if budget_mb is None:
        assert peak[0] > 1  # readers prefetch while the model computes
    else:
        assert peak[0] == 1
