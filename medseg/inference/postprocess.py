"""Label-map postprocessing: largest component, small-component removal, hole filling.

``choose_postprocessing`` decides per label from validation cases, as nnU-Net does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cc3d
import numpy as np
from scipy import ndimage

from medseg.errors import GeometryMismatchError, InvalidArgumentError
from medseg.volume import Volume

__all__ = ["keep_largest_component", "remove_small_components", "fill_holes",
           "choose_postprocessing", "rules_from_choice", "apply_postprocessing"]

log = logging.getLogger(__name__)

_RULE_KEYS = ("keep_largest_component", "min_size_mm3", "fill_holes")


def _values(labels: Volume, label_values: Iterable[int] | None) -> list[int]:
    if label_values is None:
        return [int(v) for v in np.unique(labels.array) if v != 0]
    return [int(v) for v in label_values]


def _require_labels(labels: Volume) -> None:
    if labels.kind != "labels" or labels.array.ndim != 3:
        raise InvalidArgumentError(
            f"{labels.source}: postprocessing needs a 3D label Volume, got kind {labels.kind!r} "
            f"with shape {labels.array.shape}"
        )


def keep_largest_component(labels: Volume, *, label_values: Iterable[int] | None = None) -> Volume:
    """Keep only the largest 26-connected component of each label; the rest becomes 0.

    Examples
    --------
    >>> a = np.zeros((6, 1, 1), np.uint8); a[[0, 2, 3], 0, 0] = 1
    >>> keep_largest_component(Volume.from_array(a, kind="labels")).array[:, 0, 0].tolist()
    [0, 0, 1, 1, 0, 0]
    """
    _require_labels(labels)
    out = labels.array.copy()
    for value in _values(labels, label_values):
        mask = labels.array == value
        if not mask.any():
            continue
        largest = cc3d.largest_k(mask, k=1, connectivity=26)
        out[mask & (largest == 0)] = 0
    return labels.with_array(out)


def remove_small_components(
    labels: Volume,
    *,
    min_size_mm3: float | Mapping[int, float],
    label_values: Iterable[int] | None = None,
) -> Volume:
    """Set to 0 every 26-connected component smaller than ``min_size_mm3`` (per label or one value).

    Sizes use the Volume's voxel size, so the same threshold works at any spacing.

    Examples
    --------
    >>> a = np.zeros((8, 1, 1), np.uint8); a[0] = 1; a[3:6] = 1
    >>> vol = Volume.from_array(a, spacing_mm=(2, 1, 1), kind="labels")   # 2 mm^3 voxels
    >>> remove_small_components(vol, min_size_mm3=4.0).array[:, 0, 0].tolist()
    [0, 0, 0, 1, 1, 1, 0, 0]
    """
    _require_labels(labels)
    voxel_mm3 = labels.voxel_volume_ml * 1000.0
    out = labels.array.copy()
    for value in _values(labels, label_values):
        threshold = (min_size_mm3.get(value, 0.0) if isinstance(min_size_mm3, Mapping)
                     else float(min_size_mm3))
        if threshold <= 0:
            continue
        mask = labels.array == value
        components = cc3d.connected_components(mask, connectivity=26)
        sizes_mm3 = np.bincount(components.ravel()) * voxel_mm3
        small = np.flatnonzero(sizes_mm3 < threshold)
        small = small[small != 0]
        if small.size:
            out[np.isin(components, small)] = 0
    return labels.with_array(out)


def fill_holes(labels: Volume, *, label_values: Iterable[int] | None = None) -> Volume:
    """Fill enclosed background cavities of each label (other labels are never overwritten).

    Examples
    --------
    >>> a = np.ones((3, 3, 3), np.uint8); a[1, 1, 1] = 0
    >>> int(fill_holes(Volume.from_array(a, kind="labels")).array[1, 1, 1])
    1
    """
    _require_labels(labels)
    out = labels.array.copy()
    for value in _values(labels, label_values):
        mask = labels.array == value
        if not mask.any():
            continue
        filled = ndimage.binary_fill_holes(mask)
        out[filled & (out == 0)] = value
    return labels.with_array(out)


def _dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(prediction, reference).sum()) / total


def choose_postprocessing(
    predictions: Sequence[Volume],
    references: Sequence[Volume],
    *,
    label_values: Iterable[int] | None = None,
) -> dict[int, bool]:
    """Per label, whether keeping the largest component raises the mean validation Dice.

    Like nnU-Net: the rule is switched on for a label only when it strictly
    improves that label's mean Dice over the validation cases. Feed the result
    to :func:`rules_from_choice` to store it in a bundle's ``postprocessing``.

    Parameters
    ----------
    predictions, references : sequence of Volume
        Validation label maps, pairwise on the same grid.
    label_values : iterable of int, optional
        Labels to decide; default every nonzero value in the references.

    Returns
    -------
    dict of int to bool
    """
    if len(predictions) != len(references) or not predictions:
        raise InvalidArgumentError(
            f"choose_postprocessing needs equal, non-empty lists; got {len(predictions)} predictions "
            f"and {len(references)} references"
        )
    for pred, ref in zip(predictions, references):
        if pred.shape != ref.shape:
            raise GeometryMismatchError(f"{pred.source} and {ref.source} differ in shape "
                                        f"({pred.shape} vs {ref.shape})")
    if label_values is None:
        label_values = sorted({int(v) for ref in references for v in np.unique(ref.array) if v})
    choice = {}
    for value in label_values:
        before, after = [], []
        for pred, ref in zip(predictions, references):
            truth = ref.array == value
            before.append(_dice(pred.array == value, truth))
            kept = keep_largest_component(pred, label_values=[value])
            after.append(_dice(kept.array == value, truth))
        choice[int(value)] = bool(np.mean(after) > np.mean(before))
        log.info("label %s: mean Dice %.4f without, %.4f with largest component -> %s",
                 value, np.mean(before), np.mean(after), "on" if choice[int(value)] else "off")
    return choice


def rules_from_choice(choice: Mapping[int, bool], *, min_size_mm3: float = 0.0,
                      fill_holes_labels: Sequence[int] = ()) -> dict[str, Any]:
    """Bundle ``postprocessing`` rules from a :func:`choose_postprocessing` result.

    >>> rules_from_choice({1: True, 3: False})
    {'keep_largest_component': [1], 'min_size_mm3': 0.0, 'fill_holes': []}
    """
    return {"keep_largest_component": [int(k) for k, on in choice.items() if on],
            "min_size_mm3": float(min_size_mm3), "fill_holes": [int(v) for v in fill_holes_labels]}


def apply_postprocessing(labels: Volume, rules: Mapping[str, Any]) -> Volume:
    """Apply bundle rules in order: small components, largest component, hole filling.

    ``rules`` keys: ``keep_largest_component`` (list of labels), ``min_size_mm3``
    (float or {label: float}), ``fill_holes`` (list of labels, or true for all).

    >>> a = np.zeros((6, 1, 1), np.uint8); a[[0, 2, 3]] = 1
    >>> vol = Volume.from_array(a, kind="labels")
    >>> apply_postprocessing(vol, {"keep_largest_component": [1]}).array[:, 0, 0].tolist()
    [0, 0, 1, 1, 0, 0]
    """
    unknown = sorted(set(rules) - set(_RULE_KEYS))
    if unknown:
        raise InvalidArgumentError(f"{labels.source}: unknown postprocessing rule(s) {unknown}; "
                                   f"valid keys: {list(_RULE_KEYS)}")
    min_size = rules.get("min_size_mm3") or 0.0
    if isinstance(min_size, Mapping):
        min_size = {int(k): float(v) for k, v in min_size.items()}
    if min_size:
        labels = remove_small_components(labels, min_size_mm3=min_size)
    largest = rules.get("keep_largest_component") or []
    if largest:
        labels = keep_largest_component(labels, label_values=largest)
    holes = rules.get("fill_holes") or []
    if holes:
        labels = fill_holes(labels, label_values=None if holes is True else holes)
    return labels
