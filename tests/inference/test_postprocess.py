"""Postprocessing on hand-built label maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.demo import make_phantom
from medseg.errors import InvalidArgumentError
from medseg.inference.postprocess import (
    apply_postprocessing,
    choose_postprocessing,
    fill_holes,
    keep_largest_component,
    remove_small_components,
    rules_from_choice,
)
from medseg.volume import Volume


def labels_volume(array: np.ndarray, spacing_mm=(1.0, 1.0, 1.0)) -> Volume:
    return Volume.from_array(array.astype(np.uint8), spacing_mm=spacing_mm, kind="labels")


def test_keep_largest_component_per_label_with_26_connectivity():
    a = np.zeros((12, 12, 12), np.uint8)
    a[0:3, 0:3, 0:3] = 1          # 27 voxels
    a[6:8, 6:8, 6:8] = 1          # 8 voxels, removed
    a[3, 3, 3] = 1                # touches the big cube only at a corner: same component
    a[9:11, 0:2, 0:2] = 2         # other label, small but the only one of its label
    out = keep_largest_component(labels_volume(a)).array
    assert (out == 1).sum() == 28 and out[3, 3, 3] == 1
    assert (out[6:8, 6:8, 6:8] == 0).all()
    assert (out == 2).sum() == 8
    only_two = keep_largest_component(labels_volume(a), label_values=[2]).array
    np.testing.assert_array_equal(only_two, a)


def test_remove_small_components_uses_millimetres():
    a = np.zeros((10, 10, 10), np.uint8)
    a[0:3, 0, 0] = 1      # 3 voxels x 2 mm^3 = 6 mm^3: kept
    a[6, 6, 6] = 1        # 2 mm^3: removed
    a[8, 0, 0] = 2        # 2 mm^3 of label 2: kept by a per-label threshold of 1 mm^3
    vol = labels_volume(a, spacing_mm=(2.0, 1.0, 1.0))
    out = remove_small_components(vol, min_size_mm3=5.0).array
    assert (out == 1).sum() == 3 and out[6, 6, 6] == 0 and out[8, 0, 0] == 0
    out = remove_small_components(vol, min_size_mm3={1: 5.0, 2: 1.0}).array
    assert out[8, 0, 0] == 2 and out[6, 6, 6] == 0
    # At 1 mm^3 voxels the 3-voxel line is 3 mm^3 and goes too.
    assert (remove_small_components(labels_volume(a), min_size_mm3=5.0).array == 1).sum() == 0


def test_fill_holes_fills_background_only():
    a = np.zeros((9, 9, 9), np.uint8)
    a[1:8, 1:8, 1:8] = 1
    a[3:6, 3:6, 3:6] = 0          # 27-voxel cavity
    a[4, 4, 4] = 2                # another structure inside the cavity is kept
    out = fill_holes(labels_volume(a)).array
    assert (out == 1).sum() == 7**3 - 1 and out[4, 4, 4] == 2
    open_box = a.copy()
    open_box[4, 4, 0:4] = 0       # a tunnel to the outside: no enclosed hole any more
    np.testing.assert_array_equal(fill_holes(labels_volume(open_box)).array, open_box)


def test_choose_postprocessing_like_nnunet():
    references, predictions = [], []
    for seed in (1, 2):
        truth = make_phantom(shape=(32, 32, 32), spacing_mm=(3.0, 3.0, 4.0), seed=seed).labels
        pred = truth.array.copy()
        pred[0:2, 0:2, 0:2] = 1   # stray liver island far from the liver
        references.append(truth)
        predictions.append(truth.with_array(pred))
    choice = choose_postprocessing(predictions, references)
    # Liver: removing the island raises Dice. Kidney has two true components (left and
    # right), so keeping only the largest lowers Dice. Spleen: no change, stays off.
    assert choice == {1: True, 2: False, 3: False}
    rules = rules_from_choice(choice)
    fixed = apply_postprocessing(predictions[0], rules)
    np.testing.assert_array_equal(fixed.array, references[0].array)


def test_bad_arguments():
    vol = labels_volume(np.zeros((4, 4, 4)))
    with pytest.raises(InvalidArgumentError, match="unknown postprocessing rule"):
        apply_postprocessing(vol, {"largest": [1]})
    with pytest.raises(InvalidArgumentError, match="label Volume"):
        keep_largest_component(vol.replace(kind="image"))
    with pytest.raises(InvalidArgumentError, match="equal"):
        choose_postprocessing([vol], [])
