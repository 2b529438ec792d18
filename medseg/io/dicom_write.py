"""Write a Volume as a single-frame DICOM series (CT, MR or PT) with pydicom, one atomic file per slice.

Used for ``medseg convert --to dicom`` and to build synthetic DICOM studies for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from medseg.atomic import atomic_path
from medseg.errors import InvalidArgumentError, InvalidVolumeError, MedsegError
from medseg.io.dicom_geometry import ras_to_lps
from medseg.volume import Volume

__all__ = ["write_dicom_series", "SOP_CLASSES"]

log = logging.getLogger(__name__)

#: Single-frame storage SOP class per modality.
SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
}


def _uid(seed: str | None, *parts: object) -> str:
    from pydicom.uid import generate_uid

    if seed is None:
        return generate_uid()
    return generate_uid(entropy_srcs=[seed, *(str(p) for p in parts)])


def _ds(value: float) -> str:
    # DS values hold at most 16 characters.
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8e}"


def _stored_dtype(volume: Volume, slope: float, intercept: float) -> tuple[np.dtype, int]:
    """16-bit dtype and PixelRepresentation that hold ``round((value - intercept) / slope)``."""
    values = np.asarray(volume.array)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise InvalidVolumeError(f"{volume.source}: NaN/inf voxels cannot be written to DICOM")
    low = np.rint((float(values.min()) - intercept) / slope)
    high = np.rint((float(values.max()) - intercept) / slope)
    if -32768 <= low and high <= 32767:
        return np.dtype(np.int16), 1
    if low >= 0 and high <= 65535:
        return np.dtype(np.uint16), 0
    raise InvalidVolumeError(
        f"{volume.source}: values {float(values.min()):g}..{float(values.max()):g} do not fit 16-bit "
        f"DICOM pixels with rescale_slope={slope:g}, rescale_intercept={intercept:g}; pass a larger "
        "rescale_slope= (or another rescale_intercept=)"
    )


def _stored_slice(volume: Volume, k: int, dtype: np.dtype, slope: float, intercept: float) -> bytes:
    """Pixel bytes of slice k, (row, column) order; one slice at a time keeps memory flat."""
    values = np.asarray(volume.array[:, :, k]).T
    if values.dtype.kind in "iub" and slope == 1.0 and float(intercept).is_integer():
        stored = values.astype(np.int32) - int(intercept)
    else:
        stored = np.rint((values.astype(np.float64) - intercept) / slope)
    return np.ascontiguousarray(stored.astype(dtype)).tobytes()


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    modality: str = "CT",
    series_description: str = "",
    patient_id: str = "ANON",
    patient_name: str = "ANONYMOUS^",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
    rescale_intercept: float = -1024.0,
    rescale_slope: float = 1.0,
    uid_seed: str | None = None,
    file_order: Sequence[int] | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write ``volume`` as a single-frame DICOM series, one file per k slice.

    Voxel values are stored as 16-bit integers ``round((value - intercept) /
    slope)`` with RescaleSlope/RescaleIntercept set, so integer HU round-trip
    exactly. Slice k goes to ``IM{k+1:05d}.dcm``; the geometry (RAS affine)
    becomes LPS ImagePositionPatient/ImageOrientationPatient/PixelSpacing.

    Parameters
    ----------
    volume : Volume
        3D volume whose i and j axes are perpendicular (any orientation,
        oblique allowed; k may be tilted).
    folder : str or Path
        Output folder (created); must not already hold ``.dcm`` files.
    modality : {"CT", "MR", "PT"}
        Selects the storage SOP class.
    series_description, patient_id, patient_name : str
        Written as is.
    study_uid, series_uid, frame_of_reference_uid : str, optional
        Reuse existing UIDs (e.g. to add a series to a study); new ones otherwise.
    series_number : int
        SeriesNumber.
    rescale_intercept, rescale_slope : float
        Stored-to-real value mapping. Use ``rescale_intercept=0`` for MR.
    uid_seed : str, optional
        Derive all new UIDs from this string so a rerun writes identical files.
    file_order : sequence of int, optional
        File number of each slice (a permutation of ``range(n_slices)``), to
        write slices in a scrambled file order for testing readers.
    progress : bool
        Show a tqdm progress bar (the CLI turns it on).

    Returns
    -------
    list of Path
        The written files, in k order.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    modality = modality.upper()
    if modality not in SOP_CLASSES:
        raise MedsegError(f"{volume.source}: modality {modality!r} not supported; use one of {sorted(SOP_CLASSES)}")
    if volume.array.ndim != 3:
        raise InvalidVolumeError(f"{volume.source}: DICOM series need a 3D volume, got shape {volume.array.shape}")
    if rescale_slope <= 0:
        raise InvalidArgumentError(f"rescale_slope must be positive, got {rescale_slope}")
    folder = Path(folder)
    if folder.exists() and any(folder.glob("*.dcm")):
        raise MedsegError(f"{folder}: already holds .dcm files; write the series into an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    affine_lps = ras_to_lps(volume.affine)
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    row_dir = affine_lps[:3, 0] / spacing[0]
    col_dir = affine_lps[:3, 1] / spacing[1]
    if abs(float(row_dir @ col_dir)) > 1e-4:
        raise InvalidVolumeError(
            f"{volume.source}: i and j axes are not perpendicular; DICOM slices must be "
            "rectangular. Resample the volume onto an orthogonal grid first."
        )
    dtype, representation = _stored_dtype(volume, rescale_slope, rescale_intercept)
    n_slices = volume.shape[2]
    order = list(range(n_slices)) if file_order is None else [int(v) for v in file_order]
    if sorted(order) != list(range(n_slices)):
        raise InvalidArgumentError(f"file_order must be a permutation of range({n_slices})")
    study_uid = study_uid or _uid(uid_seed, "study")
    series_uid = series_uid or _uid(uid_seed, "series", series_description)
    frame_uid = frame_of_reference_uid or _uid(uid_seed, "frame-of-reference")
    normal = np.cross(row_dir, col_dir)
    sop_class = SOP_CLASSES[modality]
    paths: list[Path] = []
    for k in tqdm(range(n_slices), desc="writing DICOM", unit="slice", disable=not progress):
        position = affine_lps[:3, 3] + affine_lps[:3, 2] * k
        sop_uid = _uid(uid_seed, "instance", series_uid, k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyInstanceUID = study_uid
        ds.StudyID = "1"
        ds.StudyDate = ""
        ds.StudyTime = ""
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = int(series_number)
        ds.SeriesDescription = series_description
        ds.Modality = modality
        ds.Manufacturer = "medseg"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # (row spacing, column spacing)
        ds.SliceThickness = _ds(abs(float(affine_lps[:3, 2] @ normal)))
        ds.SliceLocation = _ds(float(position @ normal))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = representation
        ds.RescaleIntercept = _ds(rescale_intercept)
        ds.RescaleSlope = _ds(rescale_slope)
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.KVP = ""
        ds.PixelData = _stored_slice(volume, k, dtype, rescale_slope, rescale_intercept)
        target = folder / f"IM{order[k] + 1:05d}.dcm"
        with atomic_path(target) as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        paths.append(target)
    log.info("wrote %d DICOM slices to %s", n_slices, folder)
    return paths
