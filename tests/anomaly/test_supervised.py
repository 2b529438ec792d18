"""Supervised lesion detection: tiny3d training on high-contrast lesions reaches lesion F1 > 0.8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.anomaly import (
    LesionDetector,
    auroc,
    choose_threshold,
    lesion_train_config,
    make_lesion_case,
    train_lesion_detector,
    write_lesion_dataset,
)
from medseg.metrics import lesion_summary
from medseg.volume import Volume

SIZE = {"shape": (48, 48, 40), "spacing_mm": (2.0, 2.0, 2.5)}
LESIONS = {"radius_mm": (5.0, 9.0), "contrast_hu": (60.0, 90.0), "kinds": ("hypo", "hyper")}


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lesions")
    dataset = write_lesion_dataset(root / "ds", n_cases=12, n_lesions=3, **SIZE, **LESIONS)
    found, result = train_lesion_detector(dataset, out_dir=root / "run", config="tiny3d",
                                          min_size_mm3=20.0, progress=False)
    torch.set_num_threads(before)
    return found, result


def test_high_contrast_lesions_are_found_with_f1_above_0_8(detector):
    found, _ = detector
    tests = [make_lesion_case(900 + i, n_lesions=3 if i < 4 else 0, **SIZE, **LESIONS)
             for i in range(6)]
    results = [found.detect(c.image, case_id=c.case_id) for c in tests]
    summary = lesion_summary([r.instances for r in results], [c.lesion_mask for c in tests],
                             min_size_mm3=20.0)
    assert summary["f1"] > 0.8, summary
    # Triage: cases with lesions score higher than the normal ones.
    scores = np.array([r.suspicious_score for r in results])
    assert auroc(scores, np.array([len(c.table) > 0 for c in tests])) >= 0.9
    table = results[0].table
    assert {"volume_ml", "max_diameter_mm", "mean_probability", "centroid_r_mm"} <= set(table)
    assert (table["volume_ml"] * 1000 >= 20.0).all()


def test_threshold_and_min_size_are_stored_beside_the_bundle(detector):
    found, result = detector
    record = json.loads((Path(result.bundle_dir) / "lesion_detection.json").read_text())
    assert record["threshold"] == found.threshold and record["min_size_mm3"] == 20.0
    assert record["chosen_on"]  # validation cases of the fold, not training cases
    again = LesionDetector.from_bundle(result.bundle_dir)
    assert again.threshold == found.threshold and again.min_size_mm3 == 20.0


def test_lesion_config_applies_small_object_defaults():
    config = lesion_train_config("tiny3d", loss="dice_focal")
    assert config.oversample_foreground == 0.66 and config.loss == "dice_focal"


def test_choose_threshold_maximises_lesion_f1():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:6, 2:6, 2:6] = 0.8
    prob[12:16, 12:16, 12:16] = 0.45  # a false positive that only low thresholds keep
    grid = Volume.from_array(prob, kind="probabilities")
    threshold, table = choose_threshold([grid], [grid.with_array(ref, kind="labels")],
                                        thresholds=[0.3, 0.5, 0.9])
    assert threshold == 0.5
    assert table.set_index("threshold")["f1"].tolist() == pytest.approx([2 / 3, 1.0, 0.0])


def test_score_inputs_writes_lesion_outputs(detector, tmp_path):
    import pandas as pd

    import medseg
    from medseg.anomaly.outputs import score_inputs

    found, _ = detector
    case = make_lesion_case(950, n_lesions=2, **SIZE, **LESIONS)
    medseg.write(case.image, tmp_path / "in" / "c950.nii.gz")
    table = score_inputs(tmp_path / "in", model=found, out_dir=tmp_path / "out", progress=False)
    instances = medseg.read(tmp_path / "out" / "c950_lesions.nii.gz")
    lesions = pd.read_csv(tmp_path / "out" / "lesions.csv")
    assert instances.same_grid(case.image) and int(instances.array.max()) == len(lesions)
    assert table.loc[0, "n_lesions"] == len(lesions)
    assert table.loc[0, "suspicious_score"] == pytest.approx(lesions["max_probability"].max())
    assert (tmp_path / "out" / "c950_overlay.png").exists()
