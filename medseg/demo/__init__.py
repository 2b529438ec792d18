"""Demo and test data: deterministic synthetic CT-like phantoms, no downloads.

``make_phantom`` builds one case; ``make_dataset`` writes an MSD-layout dataset.
"""

from __future__ import annotations

from medseg.demo.phantoms import ORGAN_LABELS, PhantomCase, make_phantom
from medseg.demo.synthetic_dataset import make_dataset

__all__ = ["ORGAN_LABELS", "PhantomCase", "make_phantom", "make_dataset"]
