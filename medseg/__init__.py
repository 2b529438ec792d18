"""medseg: medical image segmentation with correct geometry, metrics and measurements.

Public API: :class:`Volume`, :func:`read`, :func:`write` and the subpackages.
"""

from __future__ import annotations

from medseg import _logging  # noqa: F401  (installs the NullHandler)
from medseg.errors import MedsegError
from medseg.io import read, write
from medseg.volume import Volume

__version__ = "0.1.0"

__all__ = ["Volume", "read", "write", "MedsegError", "__version__"]
