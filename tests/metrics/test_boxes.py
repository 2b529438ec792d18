"""Bounding boxes by projections and per label, checked against scipy.ndimage.find_objects."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.metrics.boxes import label_boxes, nonzero_box, union_box


def test_label_boxes_match_find_objects():
    rng = np.random.default_rng(0)
    labels = np.zeros((30, 40, 20), np.uint8)
    for value in (1, 3, 7):
        corner = rng.integers(0, 15, 3)
        size = rng.integers(1, 6, 3)
        labels[tuple(slice(c, c + s) for c, s in zip(corner, size))] = value
    boxes = label_boxes(labels)
    expected = {i + 1: b for i, b in enumerate(ndimage.find_objects(labels)) if b is not None}
    assert boxes == expected
    assert nonzero_box(labels) == ndimage.find_objects((labels > 0).astype(np.uint8))[0]


def test_empty_bool_and_union():
    assert label_boxes(np.zeros((4, 4, 4), np.uint8)) == {} and nonzero_box(np.zeros((3, 3), bool)) is None
    mask = np.zeros((5, 5), bool)
    mask[1, 2] = True
    assert label_boxes(mask.view(np.uint8)) == {1: (slice(1, 2), slice(2, 3))}
    assert union_box((slice(0, 2),), (slice(5, 6),)) == (slice(0, 6),)
    assert union_box(None, (slice(1, 2),)) == (slice(1, 2),)
