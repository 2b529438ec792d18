"""Lesion instances from a probability map: threshold, connected components (cc3d), size filter.

Each lesion gets id, volume_ml, max_diameter_mm, mean/max probability and a RAS-mm centroid.
"""

from __future__ import annotations

import cc3d
import numpy as np
import pandas as pd

from medseg.errors import InvalidArgumentError
from medseg.measure import max_diameter_mm
from medseg.volume import Volume

__all__ = ["LESION_TABLE_COLUMNS", "lesion_probability", "detect_lesions", "suspicious_score"]

#: Columns of the table returned by :func:`detect_lesions`.
LESION_TABLE_COLUMNS = (
    "case_id", "lesion_id", "n_voxels", "volume_ml", "max_diameter_mm", "mean_probability",
    "max_probability", "centroid_r_mm", "centroid_a_mm", "centroid_s_mm",
)


def lesion_probability(prob: Volume, *, channel: int | None = None) -> Volume:
    """The lesion channel of a probability Volume as a 3D Volume.

    A 3D Volume is returned as is; a channels-last 4D Volume gives
    ``channel`` (default: channel 1 of a two-channel background/lesion map).
    """
    if prob.array.ndim == 3:
        return prob
    n = prob.n_channels
    if channel is None:
        if n != 2:
            raise InvalidArgumentError(
                f"{prob.source}: probability map has {n} channels; pass channel= for the lesion one")
        channel = 1
    if not 0 <= channel < n:
        raise InvalidArgumentError(f"{prob.source}: channel {channel} not in 0..{n - 1}")
    return prob.with_array(np.ascontiguousarray(prob.array[..., channel]), kind="probabilities")


def detect_lesions(
    prob: Volume,
    *,
    threshold: float = 0.5,
    min_size_mm3: float = 0.0,
    channel: int | None = None,
    connectivity: int = 26,
    case_id: str | None = None,
) -> tuple[Volume, pd.DataFrame]:
    """Lesion instances (connected components of ``prob >= threshold``) and their table.

    Parameters
    ----------
    prob : Volume
        Lesion probability (3D, or channels-last with a lesion ``channel``).
    threshold : float
        Probability at or above which a voxel is lesion (choose it on
        validation data, e.g. with :func:`medseg.anomaly.choose_threshold`).
    min_size_mm3 : float
        Components smaller than this (in mm^3, from the voxel size) are dropped.
    connectivity : {6, 18, 26}
        Voxel neighbourhood of a component.
    case_id : str, optional
        Value of the ``case_id`` column (default: the volume's source).

    Returns
    -------
    instances : Volume
        uint16 label map, lesions numbered 1..n by decreasing maximum probability.
    table : pandas.DataFrame
        One row per lesion, columns :data:`LESION_TABLE_COLUMNS`;
        ``max_diameter_mm`` is the largest distance between two voxel centres of
        the lesion (0 for a single voxel), centroids are RAS mm.

    Examples
    --------
    >>> p = np.zeros((20, 20, 20), np.float32); p[2:6, 2:6, 2:6] = 0.9; p[12:14, 12:14, 12:14] = 0.6
    >>> p[18, 18, 18] = 0.99
    >>> vol = Volume.from_array(p, spacing_mm=(2, 2, 2), kind="probabilities")
    >>> instances, table = detect_lesions(vol, threshold=0.5, min_size_mm3=16.0)
    >>> table[["lesion_id", "volume_ml", "max_probability"]].values.round(3).tolist()
    [[1.0, 0.512, 0.9], [2.0, 0.064, 0.6]]
    """
    if connectivity not in (6, 18, 26):
        raise InvalidArgumentError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    lesion = lesion_probability(prob, channel=channel)
    values = np.asarray(lesion.array, dtype=np.float32)
    case_id = case_id or prob.source
    components = cc3d.connected_components(values >= float(threshold), connectivity=connectivity)
    stats = cc3d.statistics(components)
    voxel_mm3 = lesion.voxel_volume_ml * 1000.0
    rows, kept = [], []
    for label in range(1, len(stats["voxel_counts"])):
        count = int(stats["voxel_counts"][label])
        if count == 0 or count * voxel_mm3 < float(min_size_mm3):
            continue
        box = stats["bounding_boxes"][label]
        inside = components[box] == label
        probabilities = values[box][inside]
        corner = np.array([s.start for s in box])
        index = np.argwhere(inside) + corner
        rows.append({
            "case_id": case_id, "n_voxels": count, "volume_ml": count * lesion.voxel_volume_ml,
            "max_diameter_mm": max_diameter_mm(lesion.index_to_ras_mm(index)),
            "mean_probability": float(probabilities.mean()),
            "max_probability": float(probabilities.max()),
            **dict(zip(("centroid_r_mm", "centroid_a_mm", "centroid_s_mm"),
                       lesion.index_to_ras_mm(stats["centroids"][label][None])[0].tolist())),
        })
        kept.append(label)
    order = np.argsort([-r["max_probability"] for r in rows], kind="stable")
    instances = np.zeros(lesion.shape, dtype=np.uint16)
    for new_id, position in enumerate(order, start=1):
        instances[components == kept[position]] = new_id
        rows[position]["lesion_id"] = new_id
    table = pd.DataFrame([rows[p] for p in order], columns=list(LESION_TABLE_COLUMNS))
    names = {i: f"lesion_{i}" for i in range(1, len(rows) + 1)}
    return Volume(instances, lesion.affine, "labels", names, dict(prob.meta)), table


def suspicious_score(table: pd.DataFrame) -> float:
    """Per-case triage score: the highest lesion probability (0 when no lesion was found)."""
    return float(table["max_probability"].max()) if len(table) else 0.0
