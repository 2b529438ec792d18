"""Preprocessing cache: reoriented, resampled, normalised, cropped arrays, written once."""

from __future__ import annotations

import numpy as np
import pytest

import medseg
from medseg.data import NormalizationSpec, load_dataset, make_plan, preprocess_dataset
from medseg.data import cache as cache_module
from medseg.data.fingerprint import compute_fingerprint
from medseg.data.preprocess import normalize_intensity
from medseg.demo import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return load_dataset(make_dataset(tmp_path_factory.mktemp("cache"), n_cases=2, shape=(20, 20, 20),
                                     spacing_mm=(1.5, 1.5, 2.0), seed=2))


def test_same_spacing_keeps_voxels_and_normalises(dataset):
    plan = make_plan(compute_fingerprint(dataset), patch_size=(16, 16, 16))
    cached = preprocess_dataset(dataset, plan, workers=2)
    image, label = cached[0].load(mmap=False)
    source = medseg.read(dataset.cases[0].image_paths[0])
    reference = medseg.read(dataset.cases[0].label_path)
    # CT phantoms have no zero voxels, so the nonzero crop keeps the whole volume.
    assert image.shape == (1, 20, 20, 20) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], normalize_intensity(source.array, plan.normalization),
                               rtol=1e-6)
    np.testing.assert_array_equal(label, reference.array)
    locations = cached[0].class_locations()
    assert sorted(locations) == [1, 2, 3]
    assert (label[tuple(locations[2].T)] == 2).all()
    assert np.allclose(cached[0].affine, source.affine)


def test_resampling_crop_and_reuse(dataset, monkeypatch):
    plan = make_plan(compute_fingerprint(dataset), patch_size=(16, 16, 16),
                     target_spacing_mm=(3.0, 3.0, 2.0))
    plan = plan.__class__(**{**plan.__dict__, "normalization": NormalizationSpec("none")})
    cached = preprocess_dataset(dataset, plan, workers=1)
    image, label = cached[1].load()
    assert image.shape == (1, 10, 10, 20) and label.shape == (10, 10, 20)

    def fail(*args, **kwargs):
        raise AssertionError("case preprocessed twice")

    monkeypatch.setattr(cache_module, "_preprocess_case", fail)
    again = preprocess_dataset(dataset, plan, workers=1)
    assert again == cached


def test_crop_to_nonzero(tmp_path):
    array = np.zeros((12, 12, 12), np.float32)
    array[2:9, 3:7, 4:12] = 5.0
    labels = (array > 0).astype(np.uint8)
    root = tmp_path / "ds"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    medseg.write(medseg.Volume.from_array(array), root / "imagesTr" / "a.nii.gz")
    medseg.write(medseg.Volume.from_array(labels, kind="labels"), root / "labelsTr" / "a.nii.gz")
    medseg.write(medseg.Volume.from_array(array), root / "imagesTr" / "b.nii.gz")
    medseg.write(medseg.Volume.from_array(labels, kind="labels"), root / "labelsTr" / "b.nii.gz")
    import json
    (root / "dataset.json").write_text(json.dumps({
        "modality": {"0": "MR"}, "labels": {"0": "bg", "1": "x"},
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
                     for c in "ab"]}))
    ds = load_dataset(root)
    plan = make_plan(compute_fingerprint(ds), patch_size=(8, 8, 8))
    cached = preprocess_dataset(ds, plan, workers=1)
    image, label = cached[0].load()
    assert image.shape == (1, 7, 4, 8)
    assert np.allclose(cached[0].affine[0][3], 2.0) and np.allclose(cached[0].affine[2][3], 4.0)
