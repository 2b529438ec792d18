"""Reading and writing volumes: NIfTI, NRRD, MetaImage, DICOM series and DICOM-SEG.

``read`` and ``write`` dispatch on the path; DICOM's LPS lives only in ``io/dicom*.py``.
"""

from __future__ import annotations

from medseg.io.dicom import find_dicom_series, read_dicom_series
from medseg.io.dicom_seg import read_dicom_seg, write_dicom_seg
from medseg.io.dicom_write import write_dicom_series
from medseg.io.dispatch import read, write

__all__ = [
    "read",
    "write",
    "read_dicom_series",
    "find_dicom_series",
    "write_dicom_series",
    "write_dicom_seg",
    "read_dicom_seg",
]
