"""Batch analysis: segment and measure a cohort resumably (manifest), locally or on Dask.

``run`` is the Python twin of ``medseg predict``; see ``runner.py``.
"""

from __future__ import annotations

from medseg.batch.cases import Case, discover_cases
from medseg.batch.manifest import Manifest
from medseg.batch.runner import BatchResult, run

__all__ = ["run", "BatchResult", "Manifest", "Case", "discover_cases"]
