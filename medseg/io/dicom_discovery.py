"""Find the DICOM image series under a folder: read headers only, group, and list rejects.

Each file is parsed once with its pixel data deferred; every skipped file keeps its reason.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import InputNotFoundError
from medseg.io.dicom_geometry import orientation_key

__all__ = ["DicomFrameHeader", "DicomSeries", "SkippedFile", "DicomDiscovery", "find_dicom_series"]

log = logging.getLogger(__name__)

_PIXEL_DATA = 0x7FE00010
# SOP classes that carry pixel data but are not images to stack.
_NOT_IMAGES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "DICOM-SEG object (read it with read_dicom_seg)",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose (not an image series)",
}
_ENHANCED_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET
    "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET
}


@dataclass
class DicomFrameHeader:
    """What medseg needs from one DICOM file's header (pixel data not read)."""

    path: Path
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    description: str
    patient_id: str
    rows: int
    columns: int
    n_frames: int
    enhanced: bool
    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    samples_per_pixel: int
    position_lps: tuple[float, float, float] | None
    orientation_lps: tuple[float, ...] | None
    pixel_spacing_mm: tuple[float, float] | None
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    rescale_slope: float
    rescale_intercept: float
    pixel_offset: int | None  # byte offset of native pixel data in the file, if known
    pixel_length: int


@dataclass
class DicomSeries:
    """One stackable series: same SeriesInstanceUID, orientation and matrix size."""

    uid: str
    series_instance_uid: str
    description: str
    modality: str
    n_frames: int
    files: list[Path]
    headers: list[DicomFrameHeader] = field(repr=False, default_factory=list)
    split_reason: str = ""


@dataclass(frozen=True)
class SkippedFile:
    """A file under the folder that is not part of any image series, and why."""

    path: Path
    reason: str


@dataclass
class DicomDiscovery:
    """All series found under a folder plus every skipped file with its reason."""

    root: Path
    series: list[DicomSeries]
    skipped: list[SkippedFile]

    def table(self) -> list[dict]:
        """One row per series: uid, description, modality, n_frames, n_files, folder."""
        return [
            {
                "uid": s.uid,
                "description": s.description,
                "modality": s.modality,
                "n_frames": s.n_frames,
                "n_files": len(s.files),
            }
            for s in self.series
        ]


def _floats(value, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return values if len(values) == n else None


def read_header(path: Path) -> DicomFrameHeader | SkippedFile:
    """Parse one file's header with pixel data deferred; a SkippedFile says why not usable."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, defer_size=256)
    except InvalidDicomError:
        return SkippedFile(path, "not a DICOM file (no DICM preamble)")
    except Exception as exc:  # truncated or corrupt headers raise many types
        return SkippedFile(path, f"unreadable DICOM header ({type(exc).__name__}: {exc}); truncated?")
    if "DirectoryRecordSequence" in ds:
        return SkippedFile(path, "DICOMDIR index (its files are read directly)")
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in _NOT_IMAGES:
        return SkippedFile(path, _NOT_IMAGES[sop_class])
    # pydicom keeps a deferred element raw, with its file offset (value_tell), in _dict.
    raw = getattr(ds, "_dict", {}).get(_PIXEL_DATA)
    if raw is None and "FloatPixelData" not in ds:
        return SkippedFile(path, f"no pixel data (SOP class {sop_class or 'unknown'})")
    series_uid = str(ds.get("SeriesInstanceUID", ""))
    if not series_uid:
        return SkippedFile(path, "no SeriesInstanceUID")
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if not rows or not columns:
        return SkippedFile(path, "missing Rows/Columns")
    transfer_syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2"))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    enhanced = sop_class in _ENHANCED_CLASSES or "PerFrameFunctionalGroupsSequence" in ds
    offset = getattr(raw, "value_tell", None)
    length = int(getattr(raw, "length", 0) or 0)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    from pydicom.uid import UID

    if not UID(transfer_syntax).is_encapsulated and offset is not None:
        expected = rows * columns * n_frames * samples * bits // 8
        if length < expected or offset + expected > os.path.getsize(path):
            return SkippedFile(
                path, f"truncated pixel data ({os.path.getsize(path) - offset} of {expected} bytes)"
            )
    position = _floats(ds.get("ImagePositionPatient"), 3)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    if not enhanced and (position is None or orientation is None):
        return SkippedFile(path, "no ImagePositionPatient/ImageOrientationPatient (not a 3D slice)")
    thickness = ds.get("SliceThickness")
    between = ds.get("SpacingBetweenSlices")
    return DicomFrameHeader(
        path=path,
        series_uid=series_uid,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        sop_class_uid=sop_class,
        study_uid=str(ds.get("StudyInstanceUID", "")),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        modality=str(ds.get("Modality", "")),
        description=str(ds.get("SeriesDescription", "")).strip(),
        patient_id=str(ds.get("PatientID", "")),
        rows=rows,
        columns=columns,
        n_frames=n_frames,
        enhanced=enhanced,
        transfer_syntax=transfer_syntax,
        bits_allocated=bits,
        bits_stored=int(ds.get("BitsStored", bits) or bits),
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
        samples_per_pixel=samples,
        position_lps=position,  # type: ignore[arg-type]
        orientation_lps=orientation,
        pixel_spacing_mm=spacing,  # type: ignore[arg-type]
        slice_thickness_mm=float(thickness) if thickness not in (None, "") else None,
        spacing_between_slices_mm=float(between) if between not in (None, "") else None,
        rescale_slope=float(ds.get("RescaleSlope", 1.0) or 1.0),
        rescale_intercept=float(ds.get("RescaleIntercept", 0.0) or 0.0),
        pixel_offset=offset,
        pixel_length=length,
    )


def _walk(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(folder) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def group_headers(headers: Sequence[DicomFrameHeader]) -> list[DicomSeries]:
    """Group headers by SeriesInstanceUID, split by orientation and matrix size."""
    by_uid: dict[str, list[DicomFrameHeader]] = defaultdict(list)
    for header in headers:
        by_uid[header.series_uid].append(header)
    series: list[DicomSeries] = []
    for uid, members in by_uid.items():
        parts: dict[tuple, list[DicomFrameHeader]] = defaultdict(list)
        for header in members:
            if header.enhanced or header.n_frames > 1:
                key: tuple = ("multiframe", str(header.path))
            else:
                key = (orientation_key(header.orientation_lps or ()), header.rows, header.columns)
            parts[key].append(header)
        reason = ""
        if len(parts) > 1:
            kinds = {k[0] == "multiframe" for k in parts}
            orients = {k[0] for k in parts if k[0] != "multiframe"}
            sizes = {k[1:] for k in parts if k[0] != "multiframe"}
            reasons = []
            if len(orients) > 1:
                reasons.append("orientation")
            if len(sizes) > 1:
                reasons.append("matrix size")
            if True in kinds:
                reasons.append("multi-frame files")
            reason = "frames differ in " + " and ".join(reasons or ["geometry"])
            log.warning("series %s split into %d parts: %s", uid, len(parts), reason)
        ordered = sorted(parts.values(), key=lambda p: (-sum(h.n_frames for h in p), str(p[0].path)))
        for number, part in enumerate(ordered, start=1):
            first = part[0]
            series.append(
                DicomSeries(
                    uid=uid if len(parts) == 1 else f"{uid}#{number}",
                    series_instance_uid=uid,
                    description=first.description,
                    modality=first.modality,
                    n_frames=sum(h.n_frames for h in part),
                    files=[h.path for h in part],
                    headers=list(part),
                    split_reason=reason,
                )
            )
    return sorted(series, key=lambda s: (s.description, s.uid))


def dicomdir_files(path: Path) -> list[Path]:
    """Files referenced by a DICOMDIR (paths resolved beside it)."""
    import pydicom
    from pydicom.fileset import FileSet

    fileset = FileSet(pydicom.dcmread(path))
    return [Path(instance.path) for instance in fileset]


def find_dicom_series(
    folder: str | Path, *, files: Iterable[Path] | None = None, workers: int | None = None
) -> DicomDiscovery:
    """List the image series under ``folder`` (a folder, a file or a DICOMDIR).

    Parameters
    ----------
    folder : str or Path
        Folder walked recursively; a DICOMDIR file is followed to its files.
    files : iterable of Path, optional
        Read exactly these files instead of walking ``folder``.
    workers : int, optional
        Header-reading threads (default: up to 4).

    Returns
    -------
    DicomDiscovery
        ``.series`` (each with ``uid``, ``description``, ``modality``,
        ``n_frames``, ``files``) and ``.skipped`` (``path``, ``reason``) for every
        non-DICOM, truncated or non-image file.
    """
    root = Path(folder)
    if not root.exists():
        raise InputNotFoundError(f"{root}: no such file or folder; check the path")
    if files is not None:
        paths = [Path(p) for p in files]
    elif root.is_file() and root.name.upper() == "DICOMDIR":
        paths = dicomdir_files(root)
    else:
        paths = _walk(root)
    n_workers = workers or min(4, (os.cpu_count() or 1) + 1)
    if len(paths) > 8 and n_workers > 1:
        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(read_header, paths, chunksize=16))
    else:
        results = [read_header(p) for p in paths]
    headers = [r for r in results if isinstance(r, DicomFrameHeader)]
    skipped = [r for r in results if isinstance(r, SkippedFile)]
    for item in skipped:
        log.info("skipped %s: %s", item.path, item.reason)
    series = group_headers(headers)
    log.debug("%s: %d series, %d skipped file(s)", root, len(series), len(skipped))
    return DicomDiscovery(root=root, series=series, skipped=skipped)
