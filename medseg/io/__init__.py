"""Reading and writing volumes: NIfTI, NRRD, MetaImage, DICOM series and DICOM-SEG.

``read`` and ``write`` dispatch on the path; DICOM's LPS lives only in ``io/dicom*.py``.
"""

from __future__ import annotations

from medseg.io.dispatch import read, write

__all__ = ["read", "write"]
