"""Read DICOM image series (files, folders, DICOMDIR) into RAS :class:`~medseg.Volume` objects.

Axes: i follows columns, j follows rows, k follows slices sorted along the slice normal.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import (
    DicomSeriesError,
    InputNotFoundError,
    InvalidArgumentError,
    MultipleSeriesError,
)
from medseg.io.dicom_discovery import (
    DicomDiscovery,
    DicomFrameHeader,
    DicomSeries,
    SkippedFile,
    dicomdir_files,
    find_dicom_series,
)
from medseg.io.dicom_geometry import (
    SliceGeometry,
    StackGeometry,
    frame_to_volume,
    regular_stack,
    slice_normal,
    sort_slices,
)
from medseg.io.dicom_pixels import apply_rescale, read_frames
from medseg.volume import Volume, VolumeKind

__all__ = [
    "read_dicom",
    "read_dicom_series",
    "find_dicom_series",
    "DicomDiscovery",
    "DicomSeries",
    "SkippedFile",
]

log = logging.getLogger(__name__)

_ON_IRREGULAR = ("warn", "resample", "raise")


def _series_listing(series: list[DicomSeries]) -> str:
    return "\n".join(
        f"  {s.uid}  {s.description or '(no description)'!r}  {s.modality}  {s.n_frames} frames"
        for s in series
    )


def _skipped_summary(skipped: list[SkippedFile], limit: int = 5) -> str:
    lines = [f"  {s.path.name}: {s.reason}" for s in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more")
    return "\n".join(lines)


def select_series(discovery: DicomDiscovery, series_uid: str | None) -> DicomSeries:
    """The one series to read: the only one, or the one named by ``series_uid``."""
    root = discovery.root
    if not discovery.series:
        if not discovery.skipped:
            raise DicomSeriesError(f"{root}: no files found; point to a folder holding a DICOM series")
        raise DicomSeriesError(
            f"{root}: no DICOM image series found; {len(discovery.skipped)} file(s) skipped:\n"
            f"{_skipped_summary(discovery.skipped)}"
        )
    candidates = discovery.series
    if series_uid is not None:
        candidates = [s for s in discovery.series if series_uid in (s.uid, s.series_instance_uid)]
        if not candidates:
            raise DicomSeriesError(
                f"{root}: no series with UID {series_uid!r}; found:\n{_series_listing(discovery.series)}"
            )
    if len(candidates) > 1:
        why = f" (series split: {candidates[0].split_reason})" if candidates[0].split_reason else ""
        raise MultipleSeriesError(
            f"{root} holds {len(candidates)} image series{why}; pass series_uid= "
            f"(CLI: --series-uid) with one of:\n{_series_listing(candidates)}",
            series=candidates,
        )
    return candidates[0]


def _slice_geometry(header: DicomFrameHeader) -> SliceGeometry:
    spacing = header.pixel_spacing_mm
    if spacing is None or min(spacing) <= 0:
        log.warning("%s: no valid PixelSpacing; assuming 1 mm pixels", header.path)
        spacing = (1.0, 1.0)
    return SliceGeometry(header.position_lps, header.orientation_lps, spacing)  # type: ignore[arg-type]


def _single_slice_affine(stack: StackGeometry, geometry: SliceGeometry, header: DicomFrameHeader):
    # One slice has no gap to measure: SpacingBetweenSlices, else SliceThickness, else 1 mm
    # along the normal (SimpleITK's choice too).
    thickness = header.spacing_between_slices_mm or header.slice_thickness_mm
    affine = stack.affine_ras.copy()
    normal_ras = np.diag([-1.0, -1.0, 1.0]) @ slice_normal(geometry.orientation_lps)
    affine[:3, 2] = normal_ras * (thickness or 1.0)
    return affine


def _handle_irregular(stack: StackGeometry, source: str, on_irregular: str) -> bool:
    """Log or raise about the stack's problems; True when it must be resampled."""
    for problem in stack.problems:
        if "duplicate" in problem:
            log.warning("%s: %s", source, problem)
    bad = stack.irregular or stack.tilt_deg > 0
    if not bad:
        return False
    problems = "; ".join(p for p in stack.problems if "duplicate" not in p)
    if on_irregular == "raise":
        raise DicomSeriesError(
            f"{source}: {problems}; read with on_irregular='resample' for a regular grid "
            "or on_irregular='warn' to stack the slices as they are"
        )
    if on_irregular == "warn":
        log.warning(
            "%s: %s; slices stacked at the nominal spacing (pass on_irregular='resample' for a "
            "regular grid)",
            source,
            problems,
        )
        return False
    log.warning("%s: %s; resampling to a regular grid", source, problems)
    return True


def read_dicom_series(
    folder: str | Path,
    *,
    series_uid: str | None = None,
    on_irregular: str = "warn",
    kind: VolumeKind | None = None,
    workers: int | None = None,
    files: list[Path] | None = None,
) -> Volume:
    """Read one DICOM image series from a folder (walked recursively) into a RAS Volume.

    Files that are not DICOM images are skipped and logged; slices are grouped
    by SeriesInstanceUID (split when orientation or matrix size differ),
    sorted by position along the slice normal (never InstanceNumber or file
    name), exact duplicate positions are dropped, and RescaleSlope/Intercept
    applied (int16 when integral, float32 otherwise).

    Parameters
    ----------
    folder : str or Path
        Folder with the series (or one DICOM file).
    series_uid : str, optional
        Which series to read when the folder holds several (see
        :func:`find_dicom_series`); required then.
    on_irregular : {"warn", "resample", "raise"}
        Missing slices, uneven gaps or gantry tilt: warn and stack the slices
        at the nominal (median) spacing; resample linearly onto a regular
        grid along the slice normal; or raise :class:`DicomSeriesError`.
    kind : {"image", "labels", "probabilities"}, optional
        Volume kind (default ``"image"``).
    workers : int, optional
        Threads for header parsing and pixel decoding.
    files : list of Path, optional
        Read exactly these files instead of walking ``folder``.

    Returns
    -------
    Volume
        Array indexed ``[i, j, k]`` with i = column, j = row, k = slice in
        sorted order; ``meta["dicom"]`` holds the study/series/frame-of-reference
        UIDs, ``SOPInstanceUIDs`` and ``files`` in k order.
    """
    if on_irregular not in _ON_IRREGULAR:
        raise InvalidArgumentError(f"on_irregular must be one of {_ON_IRREGULAR}, got {on_irregular!r}")
    folder = Path(folder)
    if not folder.exists():
        raise InputNotFoundError(f"{folder}: no such file or folder; check the path")
    if folder.is_dir() and files is None and not any(folder.iterdir()):
        raise DicomSeriesError(f"{folder}: the folder is empty; point to a folder holding a DICOM series")
    discovery = find_dicom_series(folder, files=files, workers=workers)
    series = select_series(discovery, series_uid)
    source = f"{folder} (series {series.uid})"
    first = series.headers[0]
    if first.enhanced or first.n_frames > 1:
        volume = _read_multiframe_series(folder, series, on_irregular=on_irregular, kind=kind)
        volume.meta["dicom"]["skipped"] = _skipped_meta(discovery)
        return volume
    geometries = [_slice_geometry(h) for h in series.headers]
    stack = sort_slices(geometries, source=source)
    resample = _handle_irregular(stack, source, on_irregular)
    headers = [series.headers[i] for i in stack.order]
    raw = read_frames(headers, workers=workers)
    pixels = apply_rescale(raw, [h.rescale_slope for h in headers], [h.rescale_intercept for h in headers])
    del raw
    affine = stack.affine_ras
    if resample:
        pixels, affine = regular_stack(pixels, [geometries[i] for i in stack.order], _reindexed(stack))
    elif len(headers) == 1:
        affine = _single_slice_affine(stack, geometries[stack.order[0]], first)
    meta = _meta(folder, series, headers, stack, resampled=resample)
    meta["dicom"]["skipped"] = _skipped_meta(discovery)
    return Volume(frame_to_volume(pixels), affine, kind or "image", {}, meta)


def _skipped_meta(discovery: DicomDiscovery) -> list[dict[str, str]]:
    return [{"path": str(s.path), "reason": s.reason} for s in discovery.skipped]


def _reindexed(stack: StackGeometry) -> StackGeometry:
    # regular_stack indexes slices by stack.order; pixels are already in that order.
    return StackGeometry(
        order=list(range(len(stack.order))),
        affine_ras=stack.affine_ras,
        positions_mm=stack.positions_mm,
        nominal_spacing_mm=stack.nominal_spacing_mm,
    )


def _meta(
    folder: Path,
    series: DicomSeries,
    headers: list[DicomFrameHeader],
    stack: StackGeometry,
    *,
    resampled: bool,
    frame_numbers: list[int] | None = None,
) -> dict[str, Any]:
    first = headers[0]
    dicom: dict[str, Any] = {
        "StudyInstanceUID": first.study_uid,
        "SeriesInstanceUID": first.series_uid,
        "FrameOfReferenceUID": first.frame_of_reference_uid,
        "Modality": first.modality,
        "SeriesDescription": first.description,
        "PatientID": first.patient_id,
        "SOPClassUID": first.sop_class_uid,
        # Multi-frame: one file, repeated per k so both lists stay in k order.
        "SOPInstanceUIDs": [h.sop_instance_uid for h in headers] * (len(frame_numbers or [0])),
        "files": [str(h.path) for h in headers] * (len(frame_numbers or [0])),
        "slice_positions_mm": [float(v) for v in stack.positions_mm],
        "dropped_duplicates": [str(series.headers[i].path) for i in stack.dropped_duplicates]
        if frame_numbers is None
        else [],
        "irregular_spacing": bool(stack.irregular),
        "gantry_tilt_deg": float(stack.tilt_deg),
        "resampled": bool(resampled),
    }
    if frame_numbers is not None:
        dicom["frame_numbers"] = frame_numbers
    return {
        "source": str(folder.resolve()),
        "format": "dicom",
        "modality": first.modality,
        "dicom": dicom,
    }


def _read_multiframe_series(
    folder: Path, series: DicomSeries, *, on_irregular: str, kind: VolumeKind | None
) -> Volume:
    from medseg.io.dicom_multiframe import read_multiframe

    header = series.headers[0]
    frames = read_multiframe(header)
    source = f"{header.path}"
    stack = sort_slices(frames.geometries, source=source)
    resample = _handle_irregular(stack, source, on_irregular)
    raw = frames.frames[stack.order]
    pixels = apply_rescale(
        raw, [frames.slopes[i] for i in stack.order], [frames.intercepts[i] for i in stack.order]
    )
    affine = stack.affine_ras
    if resample:
        pixels, affine = regular_stack(pixels, [frames.geometries[i] for i in stack.order], _reindexed(stack))
    elif len(stack.order) == 1:
        affine = _single_slice_affine(stack, frames.geometries[stack.order[0]], header)
    meta = _meta(
        folder, series, [header], stack, resampled=resample, frame_numbers=[i + 1 for i in stack.order]
    )
    return Volume(frame_to_volume(np.ascontiguousarray(pixels)), affine, kind or "image", {}, meta)


def read_dicom(
    path: str | Path,
    *,
    kind: VolumeKind | None = None,
    series_uid: str | None = None,
    on_irregular: str = "warn",
    workers: int | None = None,
) -> Volume:
    """Read a DICOM file, a folder or a DICOMDIR (used by :func:`medseg.read`).

    A single file gives its own frames only; a DICOMDIR reads the files it
    references; a folder is :func:`read_dicom_series`.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or folder; check the path")
    files = None
    if path.is_file():
        files = dicomdir_files(path) if path.name.upper() == "DICOMDIR" else [path]
    return read_dicom_series(
        path, series_uid=series_uid, on_irregular=on_irregular, kind=kind, workers=workers, files=files
    )
