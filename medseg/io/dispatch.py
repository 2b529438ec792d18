"""Choose the reader/writer for a path by extension and content (DICOM magic bytes).

One entry point each: :func:`read` and :func:`write`.
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import InputNotFoundError, UnsupportedFormatError
from medseg.volume import Volume, VolumeKind

__all__ = ["read", "write", "format_of"]

_SUFFIXES = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".seg.nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
}


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def format_of(path: str | Path) -> str:
    """Name of the format at ``path``: nifti, nrrd, metaimage or dicom."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or folder; check the path")
    if path.is_dir() or path.name.upper() == "DICOMDIR":
        return "dicom"
    name = path.name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return _SUFFIXES[suffix]
    if name.endswith(".dcm") or _is_dicom_file(path):
        return "dicom"
    raise UnsupportedFormatError(
        f"{path}: unknown file type; medseg reads .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd, "
        "DICOM files and folders"
    )


def read(path: str | Path, *, kind: VolumeKind | None = None, **options) -> Volume:
    """Read a volume from NIfTI, NRRD, MetaImage, a DICOM file, a DICOM folder or a DICOMDIR.

    Parameters
    ----------
    path : str or Path
        File or folder.
    kind : {"image", "labels", "probabilities"}, optional
        Force the volume kind; by default guessed from the header and values.
    **options
        Passed to the format's reader (e.g. ``series_uid=`` for DICOM folders).

    Examples
    --------
    >>> import medseg, tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/ct.nii.gz"
    >>> _ = medseg.write(medseg.Volume.from_array(np.zeros((4, 4, 4), np.int16) - 1000), path)
    >>> medseg.read(path).shape
    (4, 4, 4)
    """
    fmt = format_of(path)
    if fmt == "nifti":
        from medseg.io.nifti import read_nifti

        return read_nifti(path, kind=kind, **options)
    if fmt == "nrrd":
        from medseg.io.nrrd import read_nrrd

        return read_nrrd(path, kind=kind, **options)
    if fmt == "metaimage":
        from medseg.io.metaimage import read_metaimage

        return read_metaimage(path, kind=kind, **options)
    from medseg.io.dicom import read_dicom

    return read_dicom(path, kind=kind, **options)


def write(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` atomically; the format follows the extension (.nii[.gz], .nrrd, .mha).

    DICOM-SEG output is :func:`medseg.io.dicom_seg.write_dicom_seg`, which needs the source series.
    """
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        from medseg.io.nifti import write_nifti

        return write_nifti(volume, path)
    if name.endswith((".nrrd", ".nhdr")):
        from medseg.io.nrrd import write_nrrd

        return write_nrrd(volume, path)
    if name.endswith((".mha", ".mhd")):
        from medseg.io.metaimage import write_metaimage

        return write_metaimage(volume, path)
    raise UnsupportedFormatError(
        f"{path}: cannot write this file type; use .nii.gz, .nrrd or .mha "
        "(DICOM-SEG: medseg.io.dicom_seg.write_dicom_seg)"
    )
