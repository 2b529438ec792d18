"""Fixtures for the io tests: a synthetic oblique CT series written with raw pydicom.

Its affine and voxel values are known analytically, independent of medseg's own writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

COLUMNS, ROWS, N_SLICES = 32, 24, 12
PIXEL_MM, SLICE_MM = 0.7, 2.5
MISSING_K, DUPLICATE_K = 5, 8
INTERCEPT = -1024.0


@dataclass
class SyntheticSeries:
    """A series on disk plus its analytic answer."""

    folder: Path
    affine_ras: np.ndarray  # voxel (column, row, k) -> RAS for the full, regular grid
    hu: np.ndarray  # (column, row, k) values of the full grid, missing slice included
    present_k: list[int]  # k of the slices that exist on disk
    files: list[Path]


def _oblique_orientation() -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial.transform import Rotation

    rotation = Rotation.from_euler("xyz", [25.0, -15.0, 35.0], degrees=True).as_matrix()
    return rotation[:, 0], rotation[:, 1]  # LPS row and column directions, orthonormal


def stored_values(k: int) -> np.ndarray:
    """Stored (pre-rescale) pixels of slice k, indexed [row, column]."""
    rows, cols = np.mgrid[0:ROWS, 0:COLUMNS]
    return ((cols * 37 + rows * 101 + k * 211) % 3000).astype(np.uint16)


def write_series(
    folder: Path,
    *,
    missing: tuple[int, ...] = (MISSING_K,),
    duplicate: tuple[int, ...] = (DUPLICATE_K,),
    seed: int = 0,
    series_uid: str | None = None,
    columns: int = COLUMNS,
    tilt_mm: float = 0.0,
) -> SyntheticSeries:
    """Write the oblique CT series with pydicom only: shuffled names, one gap, one duplicate."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    row_dir, col_dir = _oblique_orientation()
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-12.5, 40.25, 101.0])
    series_uid = series_uid or generate_uid(entropy_srcs=["series", str(seed)])
    study_uid = generate_uid(entropy_srcs=["study", str(seed)])
    frame_uid = generate_uid(entropy_srcs=["for", str(seed)])
    entries = [k for k in range(N_SLICES) if k not in missing] + list(duplicate)
    names = rng.permutation(len(entries))
    files = []
    for index, k in enumerate(entries):
        position = origin + k * SLICE_MM * normal + k * tilt_mm * col_dir
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.PatientID, ds.PatientName = "P1", "Test^Patient"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality, ds.SeriesDescription = "CT", "oblique test"
        ds.InstanceNumber = int(rng.integers(1, 1000))  # deliberately meaningless
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        ds.SliceThickness = SLICE_MM
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = ROWS, columns
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = INTERCEPT, 1, "HU"
        pixels = stored_values(k)
        if columns != COLUMNS:
            pixels = np.resize(pixels, (ROWS, columns))
        ds.PixelData = pixels.tobytes()
        path = folder / f"slice_{names[index]:03d}"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        files.append(path)
    # Written values are exact to 6 decimals; the analytic affine uses the same rounding.
    row_dir = np.round(row_dir, 8)
    col_dir = np.round(col_dir, 8)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * PIXEL_MM
    affine_lps[:3, 1] = col_dir * PIXEL_MM
    affine_lps[:3, 2] = normal * SLICE_MM + tilt_mm * col_dir
    affine_lps[:3, 3] = np.round(origin, 6)
    hu = np.stack([stored_values(k).T.astype(np.int16) + int(INTERCEPT) for k in range(N_SLICES)], axis=2)
    present = [k for k in range(N_SLICES) if k not in missing]
    return SyntheticSeries(folder, np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps, hu, present, files)


@pytest.fixture
def oblique_series(tmp_path: Path) -> SyntheticSeries:
    """The oblique CT series with one missing slice and one duplicate."""
    return write_series(tmp_path / "ct")


def sitk_affine_ras(image) -> np.ndarray:
    """Voxel -> RAS affine of a SimpleITK image (ITK stores LPS)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array(image.GetSpacing())[None, :]
    affine[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def sitk_array(image) -> np.ndarray:
    """SimpleITK voxels as medseg's [i, j, k] array."""
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)
