"""NIfTI-1/2 reading and writing through nibabel (.nii, .nii.gz).

nibabel's ``img.affine`` already prefers the sform, then the qform, as the standard says.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path
from medseg.errors import InvalidVolumeError, UnreadableFileError
from medseg.io.common import check_finite, guess_kind, provenance_meta, storable_array
from medseg.volume import Volume, VolumeKind

__all__ = ["read_nifti", "write_nifti"]

log = logging.getLogger(__name__)

_NIFTI_INTENT_LABEL = 1002


def read_nifti(path: str | Path, *, kind: VolumeKind | None = None, on_invalid: str = "raise") -> Volume:
    """Read a NIfTI file into a :class:`~medseg.Volume` (RAS mm affine, as stored)."""
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
        array = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise UnreadableFileError(
            f"{path}: cannot read as NIfTI ({type(exc).__name__}: {exc}); "
            "the file may be truncated or not NIfTI"
        ) from exc
    if array.ndim == 5 and array.shape[3] == 1:
        array = array[:, :, :, 0, :]
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim not in (3, 4):
        raise InvalidVolumeError(
            f"{path}: NIfTI has {array.ndim} dimensions {array.shape}; medseg reads 3D volumes "
            "(or 3D + channels). Split the series into 3D files first."
        )
    header = img.header
    intent = int(header.get("intent_code", 0)) if hasattr(header, "get") else 0
    check_finite(array, source=str(path), on_invalid=on_invalid)
    if kind is None:
        kind = "labels" if intent == _NIFTI_INTENT_LABEL else guess_kind(array)
    sform_code = int(header["sform_code"]) if "sform_code" in header else 0
    qform_code = int(header["qform_code"]) if "qform_code" in header else 0
    if sform_code == 0 and qform_code == 0:
        log.warning("%s: neither sform nor qform is set; assuming the header's pixdim spacing", path)
    meta = provenance_meta(path, format="nifti")
    meta.update(sform_code=sform_code, qform_code=qform_code)
    return Volume(array, np.asarray(img.affine, dtype=float), kind, {}, meta)


def write_nifti(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` as NIfTI atomically; label maps get the label intent code."""
    import nibabel as nib

    path = Path(path)
    array = storable_array(volume.array, allow_64bit=False)
    img = nib.Nifti1Image(array, volume.affine, dtype=array.dtype)
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if volume.kind == "labels":
        img.header.set_intent("label")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
