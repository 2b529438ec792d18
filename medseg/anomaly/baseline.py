"""The z-score baseline: per-voxel intensity mean and spread of aligned normal scans.

A learned anomaly detector has to beat this; it needs the scans to share one frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from medseg.anomaly.evaluation import threshold_at_fpr
from medseg.anomaly.maps import AnomalyResult, body_mask, finish_map
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume

__all__ = ["ZScoreBaseline"]

log = logging.getLogger(__name__)


class ZScoreBaseline:
    """Anomaly map ``|x - mean(x)| / std(x)`` against per-voxel statistics of normal scans.

    Parameters
    ----------
    body_threshold : float or None
        Body/air intensity split (HU) for the body mask.
    erode_mm, smoothing_mm
        Body-mask erosion and Gaussian smoothing of the map, in mm (as for
        the learned detector, so the two compare fairly).
    std_floor : float
        Lower bound on the per-voxel standard deviation, in image units, so
        voxels where every normal scan agrees do not explode.

    Examples
    --------
    >>> from medseg.demo import make_phantom
    >>> normals = [make_phantom(shape=(24, 24, 16), seed=s).image for s in range(4)]
    >>> baseline = ZScoreBaseline().fit(normals[:3])
    >>> result = baseline.score(normals[3])
    >>> result.anomaly_map.shape
    (24, 24, 16)
    """

    def __init__(self, *, body_threshold: float | None = -500.0, erode_mm: float = 3.0,
                 smoothing_mm: float = 2.0, std_floor: float = 5.0) -> None:
        self.body_threshold = body_threshold
        self.erode_mm = float(erode_mm)
        self.smoothing_mm = float(smoothing_mm)
        self.std_floor = float(std_floor)
        self.reference: Volume | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.threshold = float("inf")

    def fit(self, normals: Sequence[Volume], *, val: Sequence[Volume] = (),
            target_fpr: float = 0.005) -> ZScoreBaseline:
        """Learn per-voxel mean and standard deviation on the grid of the first scan.

        Scans on another grid are resampled onto it (linear). With ``val``
        scans the mask threshold is set at ``target_fpr`` of their body voxels.
        """
        if len(normals) < 2:
            raise InvalidArgumentError(
                f"the z-score baseline needs at least 2 normal scans, got {len(normals)}")
        reference = normals[0]
        stack = np.stack([self._on_grid(v, reference).array.astype(np.float64) for v in normals])
        self.reference = reference.with_array(np.zeros(reference.shape, np.float32))
        self.mean = stack.mean(axis=0).astype(np.float32)
        self.std = np.maximum(stack.std(axis=0, ddof=1), self.std_floor).astype(np.float32)
        if val:
            maps = [self.score(v) for v in val]
            self.threshold = threshold_at_fpr(
                np.concatenate([m.anomaly_map.array[m.body.array > 0] for m in maps]), target_fpr)
        return self

    @staticmethod
    def _on_grid(volume: Volume, reference: Volume) -> Volume:
        if volume.same_grid(reference):
            return volume
        log.info("%s: resampling onto the baseline's grid", volume.source)
        return volume.resample_like(reference, order=1)

    def score(self, image: Volume, *, case_id: str | None = None) -> AnomalyResult:
        """Anomaly map of ``image`` on its own grid (resampled to and from the baseline grid)."""
        if self.mean is None or self.reference is None:
            raise InvalidArgumentError("ZScoreBaseline.score called before fit(); fit on normal scans")
        aligned = self._on_grid(image, self.reference)
        z = np.abs(aligned.array.astype(np.float32) - self.mean) / self.std
        body = body_mask(aligned, threshold=self.body_threshold, erode_mm=self.erode_mm)
        smoothed = finish_map(aligned.with_array(z), body, smoothing_mm=self.smoothing_mm)
        case_score = float(smoothed.array.max())
        if aligned is not image:
            smoothed = smoothed.resample_like(image, order=1)
            body = body.resample_like(image, order=0)
        mask = smoothed.with_array((smoothed.array > self.threshold).astype(np.uint8),
                                   kind="labels", labels={1: "anomaly"})
        return AnomalyResult(smoothed, mask, body, case_score, self.threshold,
                             case_id or image.source)
