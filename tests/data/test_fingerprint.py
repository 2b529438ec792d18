"""Fingerprint statistics against hand-computed values, and its per-case cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import medseg
from medseg.data import compute_fingerprint, load_dataset, load_fingerprint
from medseg.data import fingerprint as fingerprint_module


def _write_case(root, name, image, label, spacing):
    medseg.write(medseg.Volume.from_array(image.astype(np.float32), spacing_mm=spacing),
                 root / "imagesTr" / f"{name}.nii.gz")
    medseg.write(medseg.Volume.from_array(label.astype(np.uint8), spacing_mm=spacing, kind="labels"),
                 root / "labelsTr" / f"{name}.nii.gz")
    return {"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"}


@pytest.fixture()
def hand_dataset(tmp_path):
    root = tmp_path / "hand"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    image_a = np.arange(4 * 5 * 6, dtype=float).reshape(4, 5, 6)
    label_a = np.zeros((4, 5, 6))
    label_a[0] = 1          # 30 voxels of label 1, values 0..29
    label_a[3, :2] = 2      # 12 voxels of label 2, values 90..101
    image_b = np.full((3, 3, 3), -7.0)
    image_b[1, 1, 1] = 500.0
    label_b = np.zeros((3, 3, 3))
    label_b[1, 1] = 1       # 3 voxels: -7, 500, -7
    training = [_write_case(root, "a", image_a, label_a, (1.0, 1.0, 2.0)),
                _write_case(root, "b", image_b, label_b, (0.5, 0.5, 3.0))]
    (root / "dataset.json").write_text(json.dumps({
        "name": "hand", "modality": {"0": "CT"}, "labels": {"0": "bg", "1": "x", "2": "y"},
        "training": training}))
    values = np.concatenate([image_a[label_a > 0], image_b[label_b > 0]])
    return root, values


def test_fingerprint_matches_hand_computed_statistics(hand_dataset):
    root, values = hand_dataset
    fp = compute_fingerprint(load_dataset(root), workers=2)
    assert fp.spacings_mm == ((1.0, 1.0, 2.0), (0.5, 0.5, 3.0))
    assert fp.shapes == ((4, 5, 6), (3, 3, 3))
    stats = fp.intensity[0]
    assert len(values) == 45
    assert stats.mean == pytest.approx(values.mean(), abs=1e-9)
    assert stats.std == pytest.approx(values.std(), abs=1e-9)
    assert stats.p00_5 == pytest.approx(np.percentile(values, 0.5))
    assert stats.p99_5 == pytest.approx(np.percentile(values, 99.5))
    assert (stats.min, stats.max) == (-7.0, 500.0)
    total = 4 * 5 * 6 + 27
    assert fp.class_frequencies == pytest.approx({0: (total - 45) / total, 1: 33 / total, 2: 12 / total})
    assert len(fp.case_hashes["a"]) == 64
    assert load_fingerprint(root / ".medseg_cache" / "fingerprint.json") == fp


def test_fingerprint_cache_is_keyed_on_file_stamps(hand_dataset, monkeypatch):
    root, _ = hand_dataset
    dataset = load_dataset(root)
    first = compute_fingerprint(dataset, workers=1)

    def fail(*args, **kwargs):
        raise AssertionError("case re-read although its files did not change")

    monkeypatch.setattr(fingerprint_module, "_case_record", fail)
    assert compute_fingerprint(dataset, workers=1) == first
    label = root / "labelsTr" / "b.nii.gz"
    stat = label.stat()
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="re-read"):
        compute_fingerprint(dataset, workers=1)


def test_unwritable_cache_is_a_dataset_error(hand_dataset, tmp_path):
    from medseg.errors import DatasetError

    root, _ = hand_dataset
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match="cannot create the cache folder.*cache_dir="):
        compute_fingerprint(load_dataset(root), cache_dir=blocker / "cache")


def test_four_dimensional_msd_images_are_channels(tmp_path):
    from medseg.data import make_plan, preprocess_dataset

    root = tmp_path / "multi"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    label = np.zeros((6, 6, 6))
    label[2:4, 2:4, 2:4] = 1
    image = np.stack([np.full((6, 6, 6), 10.0), np.full((6, 6, 6), -3.0)], axis=-1)
    image[2:4, 2:4, 2:4, 0] = 20.0
    training = [_write_case(root, n, image, label, (1.0, 1.0, 1.0)) for n in ("a", "b")]
    (root / "dataset.json").write_text(json.dumps({
        "modality": {"0": "T1", "1": "T2"}, "labels": {"0": "bg", "1": "x"}, "training": training}))
    dataset = load_dataset(root)
    fp = compute_fingerprint(dataset, workers=1)
    assert [s.mean for s in fp.intensity] == [20.0, -3.0]
    cached = preprocess_dataset(dataset, make_plan(fp, patch_size=(4, 4, 4)), workers=1)
    assert cached[0].load()[0].shape == (2, 6, 6, 6)


def test_read_only_dataset_caches_in_the_user_cache_folder(hand_dataset, tmp_path, monkeypatch):
    root, _ = hand_dataset
    real_access = os.access
    # Tests run as root here, for whom chmod does not block writes: fake a read-only dataset.
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(root)
                        else real_access(p, mode))
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "user_cache"))
    dataset = load_dataset(root)
    folder = fingerprint_module.default_cache_dir(dataset)
    assert folder.parent == tmp_path / "user_cache" and folder.name.startswith("hand-")
    compute_fingerprint(dataset)
    assert not (root / ".medseg_cache").exists()
    assert any(folder.iterdir())
    # A writable dataset keeps its cache beside the data.
    monkeypatch.setattr(os, "access", real_access)
    assert fingerprint_module.default_cache_dir(dataset) == root / ".medseg_cache"
