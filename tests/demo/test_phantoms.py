"""Synthetic phantoms: deterministic, spacing-independent anatomy, sensible HU."""

from __future__ import annotations

import json

import numpy as np

import medseg
from medseg.demo import make_dataset, make_phantom


def test_same_seed_same_arrays_different_seed_different():
    a = make_phantom(shape=(24, 24, 24), seed=5, n_lesions=1)
    b = make_phantom(shape=(24, 24, 24), seed=5, n_lesions=1)
    c = make_phantom(shape=(24, 24, 24), seed=6, n_lesions=1)
    np.testing.assert_array_equal(a.image.array, b.image.array)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    assert not np.array_equal(a.labels.array, c.labels.array)


def test_organ_volumes_do_not_depend_on_spacing():
    coarse = make_phantom(shape=(48, 48, 32), spacing_mm=(2.0, 2.0, 4.0), seed=1)
    fine = make_phantom(shape=(96, 96, 64), spacing_mm=(1.0, 1.0, 2.0), seed=1)
    for label in (1, 2, 3):
        v_coarse = (coarse.labels.array == label).sum() * coarse.labels.voxel_volume_ml
        v_fine = (fine.labels.array == label).sum() * fine.labels.voxel_volume_ml
        assert abs(v_coarse - v_fine) / v_fine < 0.08


def test_intensities_and_lesions():
    case = make_phantom(shape=(48, 48, 48), seed=2, n_lesions=2, lesions_in_labels=True)
    image, labels = case.image.array, case.labels.array
    assert image.dtype == np.float32 and case.image.kind == "image"
    assert np.median(image[labels == 1]) > np.median(image[labels == 0][image[labels == 0] > -500])
    assert np.median(image[image < -500]) < -900  # air outside the body
    assert len(case.lesion_centres_mm) == 2
    assert case.lesions.array.sum() > 0
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    assert case.labels.labels[4] == "lesion"
    # Lesions are darker than the liver around them, by about the requested contrast.
    lesion_mean = image[case.lesions.array > 0].mean()
    liver_mean = image[labels == 1].mean()
    assert -60 < lesion_mean - liver_mean < -20
    # Each lesion centre lies inside the lesion mask.
    for centre in case.lesion_centres_mm:
        i, j, k = np.round(case.lesions.ras_mm_to_index(np.array([centre]))[0]).astype(int)
        assert case.lesions.array[i, j, k] == 1


def test_make_dataset_writes_msd_layout(tmp_path):
    root = make_dataset(tmp_path / "ds", n_cases=2, n_test=1, shape=(16, 16, 16))
    description = json.loads((root / "dataset.json").read_text())
    assert description["numTraining"] == 2 and description["numTest"] == 1
    assert description["labels"] == {"0": "background", "1": "liver", "2": "spleen", "3": "kidney"}
    first = description["training"][0]
    image = medseg.read(root / first["image"])
    labels = medseg.read(root / first["label"])
    assert labels.kind == "labels" and image.kind == "image"
    assert image.same_grid(labels)
    np.testing.assert_array_equal(labels.array, make_phantom(shape=(16, 16, 16), seed=0).labels.array)


def test_anatomy_sides_in_ras():
    case = make_phantom(shape=(32, 32, 32), seed=4)
    labels = case.labels

    def centre_x_mm(value):
        return labels.index_to_ras_mm(np.argwhere(labels.array == value)).mean(axis=0)[0]

    assert centre_x_mm(1) > 0, "liver lies on the patient's right (+x in RAS)"
    assert centre_x_mm(2) < 0, "spleen lies on the patient's left"


def test_each_lesion_is_one_component_and_too_many_are_left_out(caplog):
    import cc3d

    case = make_phantom(shape=(48, 48, 40), spacing_mm=(1.5, 1.5, 2.0), seed=2, n_lesions=4)
    assert cc3d.connected_components(case.lesions.array).max() == len(case.lesion_centres_mm) == 4
    crowded = make_phantom(shape=(32, 32, 32), seed=2, n_lesions=40, lesion_radius_mm=(8.0, 9.0))
    assert 0 < len(crowded.lesion_centres_mm) < 40
    assert cc3d.connected_components(crowded.lesions.array).max() == len(crowded.lesion_centres_mm)
    assert "room for only" in caplog.text
