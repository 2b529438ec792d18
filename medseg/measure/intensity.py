"""Image intensity statistics under a mask, named in the image's unit (``mean_hu`` for CT).

Mean, standard deviation, median, percentiles and range of the voxels inside the mask.
"""

from __future__ import annotations

import numpy as np

from medseg.volume import Volume

__all__ = ["intensity_unit", "intensity_stats", "INTENSITY_STATS"]

#: Statistics reported for each object, in column order.
INTENSITY_STATS = ("mean", "std", "median", "p5", "p25", "p75", "p95", "min", "max")


def intensity_unit(image: Volume) -> str:
    """Unit suffix of intensity columns: ``hu`` for CT, ``intensity`` otherwise (arbitrary units).

    >>> intensity_unit(Volume.from_array(np.zeros((2, 2, 2)), meta={"modality": "CT"}))
    'hu'
    """
    modality = str(image.meta.get("modality", "")).upper()
    if not modality and isinstance(image.meta.get("dicom"), dict):
        modality = str(image.meta["dicom"].get("Modality", "")).upper()
    return "hu" if modality == "CT" else "intensity"


def intensity_stats(values: np.ndarray, unit: str) -> dict[str, float]:
    """Statistics of the given voxel values; NaN for an empty selection.

    >>> s = intensity_stats(np.array([10.0, 20.0, 30.0, 40.0]), "hu")
    >>> s["mean_hu"], s["median_hu"], s["max_hu"]
    (25.0, 25.0, 40.0)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return {f"{name}_{unit}": float("nan") for name in INTENSITY_STATS}
    p5, p25, median, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    stats = {"mean": values.mean(), "std": values.std(), "median": median, "p5": p5, "p25": p25,
             "p75": p75, "p95": p95, "min": values.min(), "max": values.max()}
    return {f"{name}_{unit}": float(stats[name]) for name in INTENSITY_STATS}
