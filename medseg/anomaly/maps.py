"""Turning raw voxel residuals into anomaly maps: body mask, smoothing in mm, case score, mask.

Shared by the learned denoising detector and the z-score baseline so both are post-processed alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.volume import Volume

__all__ = ["AnomalyResult", "body_mask", "finish_map"]


@dataclass(frozen=True)
class AnomalyResult:
    """Anomaly map (float, on the input grid), thresholded mask, body mask and case score."""

    anomaly_map: Volume
    mask: Volume
    body: Volume
    case_score: float
    threshold: float
    case_id: str = ""


def body_mask(image: Volume, *, threshold: float | None, erode_mm: float = 0.0) -> Volume:
    """Voxels of the body: ``image > threshold``, largest component, holes filled, eroded.

    Parameters
    ----------
    image : Volume
        The scan (HU for CT).
    threshold : float or None
        Intensity separating the body from air (-500 HU for CT); ``None``
        keeps every voxel.
    erode_mm : float
        Erosion depth in millimetres, to keep the air/skin edge (which any
        reconstruction blurs) out of the anomaly map.

    Examples
    --------
    >>> img = Volume.from_array(np.pad(np.zeros((6, 6, 6)), 2, constant_values=-1000))
    >>> int(body_mask(img, threshold=-500).array.sum()), int(body_mask(img, threshold=-500,
    ...     erode_mm=1.0).array.sum())
    (216, 64)
    """
    if threshold is None:
        return image.with_array(np.ones(image.shape, dtype=np.uint8), kind="labels",
                                labels={1: "body"})
    values = image.array if image.array.ndim == 3 else image.array[..., 0]
    mask = values > threshold
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(np.argmax(sizes))
    # Air pockets enclosed by the body (bowel gas) belong to the body.
    mask = ndimage.binary_fill_holes(mask)
    if erode_mm > 0:
        radius = np.maximum(np.round(float(erode_mm) / np.asarray(image.spacing_mm)), 0).astype(int)
        if np.any(radius > 0):
            grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
            ball = sum((g / max(r, 1)) ** 2 for g, r in zip(grids, radius)) <= 1.0
            mask = ndimage.binary_erosion(mask, structure=ball, border_value=0)
    return image.with_array(mask.astype(np.uint8), kind="labels", labels={1: "body"})


def finish_map(residual: Volume, body: Volume, *, smoothing_mm: float) -> Volume:
    """Smooth a voxel residual with a Gaussian of ``smoothing_mm`` (sigma, mm) inside the body.

    Smoothing is normalised by the smoothed body mask, so voxels near the
    body edge are averaged only over body voxels; outside the body the map is 0.
    """
    values = np.asarray(residual.array, dtype=np.float32)
    inside = body.array.astype(np.float32)
    if smoothing_mm > 0:
        sigma = float(smoothing_mm) / np.asarray(residual.spacing_mm)
        weight = ndimage.gaussian_filter(inside, sigma)
        values = ndimage.gaussian_filter(values * inside, sigma) / np.maximum(weight, 1e-3)
    values = np.where(inside > 0, values, 0.0).astype(np.float32)
    return residual.with_array(values, kind="image", labels={})
