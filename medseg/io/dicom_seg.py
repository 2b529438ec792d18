"""DICOM-SEG output and input through highdicom: label Volumes <-> BINARY Segmentation objects.

Segments reference the source series' SOP instances frame by frame; anatomy is coded in SNOMED CT.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path
from medseg.errors import (
    DicomSeriesError,
    GeometryMismatchError,
    MissingExtraError,
    UnreadableFileError,
)
from medseg.geometry import LPS_TO_RAS
from medseg.volume import Volume

__all__ = ["write_dicom_seg", "read_dicom_seg", "segment_codes"]

log = logging.getLogger(__name__)

_TRACKING = re.compile(r"medseg label (\d+)$")

# label name (lower case) -> (category attribute, type attribute) in pydicom.sr.codedict codes.SCT
_CODE_TABLE = {
    "liver": ("Organ", "Liver"),
    "spleen": ("Organ", "Spleen"),
    "kidney": ("Organ", "Kidney"),
    "pancreas": ("Organ", "Pancreas"),
    "lung": ("Organ", "Lung"),
    "heart": ("Organ", "Heart"),
    "brain": ("Organ", "Brain"),
    "prostate": ("Organ", "Prostate"),
    "bladder": ("Organ", "Bladder"),
    "stomach": ("Organ", "Stomach"),
    "gallbladder": ("Organ", "Gallbladder"),
    "aorta": ("AnatomicalStructure", "Aorta"),
    "bone": ("Tissue", "Bone"),
    "lesion": ("MorphologicallyAbnormalStructure", "Lesion"),
    "tumor": ("MorphologicallyAbnormalStructure", "Neoplasm"),
    "tumour": ("MorphologicallyAbnormalStructure", "Neoplasm"),
    "neoplasm": ("MorphologicallyAbnormalStructure", "Neoplasm"),
    "nodule": ("MorphologicallyAbnormalStructure", "Nodule"),
    "mass": ("MorphologicallyAbnormalStructure", "Mass"),
}


def _highdicom():
    try:
        import highdicom
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            'DICOM-SEG needs highdicom; install the DICOM extra: pip install "medseg[dicom]"'
        ) from exc
    return highdicom


def segment_codes(name: str):
    """SNOMED CT (category, type) codes for a label name; generic tissue codes if unknown.

    >>> category, kind = segment_codes("Liver")
    >>> category.meaning, kind.value
    ('Organ', '10200004')
    """
    from pydicom.sr.codedict import codes

    key = name.strip().lower()
    if key not in _CODE_TABLE:
        key = next((k for k in _CODE_TABLE if re.search(rf"\b{k}", key)), "")
    category, kind = _CODE_TABLE.get(key, ("AnatomicalStructure", "Tissue"))
    return getattr(codes.SCT, category), getattr(codes.SCT, kind)


def _source_datasets(source: Volume) -> tuple[list, list[int] | None]:
    import pydicom

    dicom = source.meta.get("dicom")
    if not isinstance(dicom, Mapping) or not dicom.get("files"):
        raise DicomSeriesError(
            f"{source.source}: the source Volume has no meta['dicom']['files']; read it with "
            "medseg.io.read_dicom_series so the segmentation can reference its slices"
        )
    if dicom.get("resampled"):
        raise DicomSeriesError(
            f"{source.source}: the source was resampled onto a regular grid, so its slices are not "
            "the DICOM frames; read it with on_irregular='warn' to write DICOM-SEG"
        )
    frame_numbers = dicom.get("frame_numbers")
    unique_files = list(dict.fromkeys(dicom["files"]))
    try:
        datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in unique_files]
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise UnreadableFileError(f"{source.source}: cannot re-read a source DICOM file ({exc})") from exc
    return datasets, frame_numbers


def write_dicom_seg(
    labels: Volume,
    source: Volume,
    path: str | Path,
    *,
    label_names: Mapping[int, str] | None = None,
    algorithm_name: str = "medseg",
    algorithm_version: str | None = None,
    series_description: str = "medseg segmentation",
    series_number: int = 300,
    uid_seed: str | None = None,
) -> Path:
    """Write a label Volume as a BINARY DICOM-SEG referencing the source series.

    Parameters
    ----------
    labels : Volume
        Integer label map on ``source``'s voxel grid (0 = background).
    source : Volume
        The image returned by :func:`medseg.io.read_dicom_series`; its
        ``meta["dicom"]["files"]`` are the referenced instances, in k order.
    path : str or Path
        Output ``.dcm`` file (written atomically).
    label_names : dict of int to str, optional
        Segment labels; default ``labels.labels``, then ``"label N"``.
    algorithm_name, algorithm_version : str
        AlgorithmIdentification of the (automatic) segmentation.
    series_description : str
        SeriesDescription of the SEG series.
    series_number : int
        SeriesNumber of the SEG series.
    uid_seed : str, optional
        Derive the SEG's UIDs from this string so reruns are identical.

    Returns
    -------
    Path
        ``path``. One segment per label value present, coded anatomy where the
        name is known (liver, spleen, kidney, lesion, tumour, ...).
    """
    hd = _highdicom()
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    import medseg

    labels.require_same_grid(source)
    values = [int(v) for v in np.unique(labels.array) if v != 0]
    if not values:
        raise DicomSeriesError(f"{labels.source}: label map is empty; DICOM-SEG needs at least one segment")
    if any(v < 0 for v in values) or labels.array.dtype.kind not in "iub":
        raise DicomSeriesError(
            f"{labels.source}: DICOM-SEG needs a non-negative integer label map, got dtype "
            f"{labels.array.dtype} with values {values[:5]}"
        )
    names = {**dict(labels.labels), **dict(label_names or {})}
    datasets, frame_numbers = _source_datasets(source)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        family=codes.cid7162.ArtificialIntelligence,
        version=algorithm_version or medseg.__version__,
    )
    descriptions = []
    segment_map = np.zeros(max(values, default=0) + 1, dtype=np.uint16)
    for number, value in enumerate(values, start=1):
        name = names.get(value, f"label {value}")
        category, kind = segment_codes(name)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name,
                segmented_property_category=category,
                segmented_property_type=kind,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=_uid(uid_seed, "tracking", value),
                tracking_id=f"medseg label {value}",
            )
        )
        segment_map[value] = number
    # (slice, row, column) frames of segment numbers, one per source frame.
    frames = np.ascontiguousarray(segment_map[labels.array].transpose(2, 1, 0))
    if frame_numbers is not None:
        in_file_order = np.zeros_like(frames)
        in_file_order[np.asarray(frame_numbers) - 1] = frames
        frames = in_file_order
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=_uid(uid_seed, "seg-series") if uid_seed else generate_uid(),
        series_number=series_number,
        sop_instance_uid=_uid(uid_seed, "seg-instance") if uid_seed else generate_uid(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name=algorithm_name,
        software_versions=medseg.__version__,
        device_serial_number="0",
        series_description=series_description,
    )
    path = Path(path)
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    log.info("wrote DICOM-SEG with %d segment(s) to %s", len(values), path)
    return path


def _uid(seed: str | None, *parts: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid() if seed is None else generate_uid(entropy_srcs=[seed, *map(str, parts)])


def _segment_values(seg) -> tuple[np.ndarray, dict[int, str]]:
    """Lookup segment number -> label value, and label value -> name."""
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    lookup = np.zeros(max(numbers, default=0) + 1, dtype=np.uint16)
    values: list[int] = []
    names: dict[int, str] = {}
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        match = _TRACKING.match(str(item.get("TrackingID", "")))
        value = int(match.group(1)) if match else number
        lookup[number] = value
        values.append(value)
        names[value] = str(item.SegmentLabel)
    if max(values, default=0) <= 255:
        lookup = lookup.astype(np.uint8)
    return lookup, names


def read_dicom_seg(path: str | Path, *, reference: Volume | None = None) -> Volume:
    """Read a DICOM-SEG into a label Volume (segment values as written by medseg).

    Parameters
    ----------
    path : str or Path
        DICOM-SEG file.
    reference : Volume, optional
        Image the SEG was made on. With ``meta["dicom"]`` from
        :func:`read_dicom_series`, frames are placed by referenced SOP
        instance; otherwise the SEG's own geometry is resampled (nearest
        neighbour) onto the reference grid. Without it, the grid spans the
        segmented frames.

    Returns
    -------
    Volume
        ``kind="labels"``, ``labels`` from the segment labels.
    """
    hd = _highdicom()
    path = Path(path)
    if not path.exists():
        from medseg.errors import InputNotFoundError

        raise InputNotFoundError(f"{path}: no such file; check the path")
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # highdicom/pydicom raise many types for non-SEG input
        raise UnreadableFileError(f"{path}: not a readable DICOM-SEG ({type(exc).__name__}: {exc})") from exc
    lookup, names = _segment_values(seg)
    meta = {"source": str(path.resolve()), "format": "dicom-seg", "dicom": {
        "SeriesInstanceUID": str(seg.SeriesInstanceUID), "SOPInstanceUID": str(seg.SOPInstanceUID),
        "FrameOfReferenceUID": str(seg.FrameOfReferenceUID)}}
    dicom = reference.meta.get("dicom") if reference is not None else None
    if reference is not None and isinstance(dicom, Mapping) and dicom.get("SOPInstanceUIDs"):
        uids = list(dicom["SOPInstanceUIDs"])
        if dicom.get("frame_numbers"):
            frames = seg.get_pixels_by_source_frame(
                uids[0], source_frame_numbers=list(dicom["frame_numbers"]), combine_segments=True,
                assert_missing_frames_are_empty=True,
            )
        else:
            # Empty frames are omitted from SEGs; a frame not referenced holds no segment.
            frames = seg.get_pixels_by_source_instance(
                uids, combine_segments=True, assert_missing_frames_are_empty=True
            )
        array = lookup[np.asarray(frames)].transpose(2, 1, 0)
        if array.shape != reference.shape:
            raise GeometryMismatchError(f"{path}: SEG frames do not match {reference.source}'s grid")
        return Volume(np.ascontiguousarray(array), reference.affine, "labels", names, meta)
    volume = seg.get_volume(combine_segments=True)
    array = lookup[np.asarray(volume.array)].transpose(2, 1, 0)
    affine = LPS_TO_RAS @ np.asarray(volume.affine)[:, [2, 1, 0, 3]]
    result = Volume(np.ascontiguousarray(array), affine, "labels", names, meta)
    if reference is not None:
        return result.resample_like(reference, order=0)
    return result
