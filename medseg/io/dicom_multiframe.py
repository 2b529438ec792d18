"""Enhanced (and legacy-converted) multi-frame CT/MR/PET: geometry from functional groups.

Per-frame groups override the shared ones; frames are sorted like single-frame slices.
"""

from __future__ import annotations

import logging

import numpy as np

from medseg.errors import DicomSeriesError
from medseg.io.dicom_discovery import DicomFrameHeader
from medseg.io.dicom_geometry import SliceGeometry, orientation_key
from medseg.io.dicom_pixels import check_decodable, decode_with_pydicom

__all__ = ["MultiFrame", "read_multiframe"]

log = logging.getLogger(__name__)


class MultiFrame:
    """Decoded frames of one multi-frame file with per-frame geometry and rescale."""

    def __init__(self, dataset, frames: np.ndarray, geometries, slopes, intercepts) -> None:
        self.dataset = dataset
        self.frames = frames  # (frame, row, column) stored values
        self.geometries: list[SliceGeometry] = geometries
        self.slopes: list[float] = slopes
        self.intercepts: list[float] = intercepts


def _group_item(frame_group, shared_group, sequence: str):
    for group in (frame_group, shared_group):
        if group is not None and sequence in group and len(group[sequence].value):
            return group[sequence][0]
    return None


def read_multiframe(header: DicomFrameHeader) -> MultiFrame:
    """Decode a multi-frame image file and the geometry of each frame.

    Parameters
    ----------
    header : DicomFrameHeader
        Header of an Enhanced/Legacy-converted CT, MR or PET file.

    Returns
    -------
    MultiFrame
        Frames in file order, one :class:`SliceGeometry` and one rescale pair each.
    """
    check_decodable(header)
    dataset, pixels = decode_with_pydicom(header.path, what="multi-frame pixel data")
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3:
        raise DicomSeriesError(
            f"{header.path}: multi-frame pixel data has shape {pixels.shape}; medseg reads "
            "single-channel frames (colour images are not volumes)"
        )
    shared = None
    if "SharedFunctionalGroupsSequence" in dataset and len(dataset.SharedFunctionalGroupsSequence):
        shared = dataset.SharedFunctionalGroupsSequence[0]
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence", []))
    if len(per_frame) != pixels.shape[0]:
        raise DicomSeriesError(
            f"{header.path}: {pixels.shape[0]} frames but {len(per_frame)} per-frame functional "
            "group items; the file is not a valid enhanced multi-frame image"
        )
    geometries, slopes, intercepts = [], [], []
    for index, frame_group in enumerate(per_frame):
        position = _group_item(frame_group, shared, "PlanePositionSequence")
        orientation = _group_item(frame_group, shared, "PlaneOrientationSequence")
        measures = _group_item(frame_group, shared, "PixelMeasuresSequence")
        if position is None or orientation is None or measures is None:
            raise DicomSeriesError(
                f"{header.path}: frame {index + 1} lacks PlanePosition/PlaneOrientation/"
                "PixelMeasures functional groups; cannot place it in space"
            )
        geometries.append(
            SliceGeometry(
                position_lps=tuple(float(v) for v in position.ImagePositionPatient),
                orientation_lps=orientation_key(orientation.ImageOrientationPatient, decimals=8),
                pixel_spacing_mm=tuple(float(v) for v in measures.PixelSpacing),
            )
        )
        transform = _group_item(frame_group, shared, "PixelValueTransformationSequence")
        slopes.append(float(getattr(transform, "RescaleSlope", header.rescale_slope) or 1.0))
        intercepts.append(float(getattr(transform, "RescaleIntercept", header.rescale_intercept) or 0.0))
    keys = {orientation_key(g.orientation_lps) for g in geometries}
    if len(keys) > 1:
        raise DicomSeriesError(
            f"{header.path}: frames have {len(keys)} different orientations (a localizer or "
            "multi-stack acquisition); medseg reads one stack per volume"
        )
    return MultiFrame(dataset, pixels, geometries, slopes, intercepts)
