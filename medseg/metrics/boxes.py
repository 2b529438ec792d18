"""Bounding boxes of masks and label maps, found without a full-volume pass per label.

Shared by the metrics and the measurements: everything else then works on crops.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["nonzero_box", "label_boxes", "union_box"]


def nonzero_box(array: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the nonzero voxels by axis projections (cheap on large volumes).

    >>> a = np.zeros((4, 5, 6)); a[1:3, 2, 4:6] = 1
    >>> nonzero_box(a)
    (slice(1, 3, None), slice(2, 3, None), slice(4, 6, None))
    """
    box: list[slice] = []
    view = array
    for axis in range(array.ndim):
        other = tuple(a for a in range(array.ndim) if a != axis)
        # max, not any: any() would first cast a uint8 volume to a full-size bool copy.
        hit = np.flatnonzero(np.max(view, axis=other))
        if not len(hit):
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
        # Later projections only scan the slab found so far.
        view = array[tuple(box) + (slice(None),) * (array.ndim - len(box))]
    return tuple(box)


def label_boxes(array: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Bounding box of every label present, from one pass over the foreground box.

    >>> a = np.zeros((4, 4), np.uint8); a[0, 1] = 2; a[3, 0:2] = 1
    >>> label_boxes(a)
    {1: (slice(3, 4, None), slice(0, 2, None)), 2: (slice(0, 1, None), slice(1, 2, None))}
    """
    outer = nonzero_box(array)
    if outer is None:
        return {}
    sub = array[outer]
    if sub.dtype == np.uint8 and sub.max() == 1:
        objects: list = [tuple(slice(0, n) for n in sub.shape)]
    else:
        objects = ndimage.find_objects(sub)
    boxes = {}
    for index, box in enumerate(objects):
        if box is not None:
            boxes[index + 1] = tuple(
                slice(o.start + b.start, o.start + b.stop) for o, b in zip(outer, box)
            )
    return boxes


def union_box(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    """Smallest box holding both boxes (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))
