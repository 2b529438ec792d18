"""Labeled datasets, fingerprints, training plans, preprocessing cache and patch sampling.

``load_dataset`` -> ``compute_fingerprint`` -> ``make_plan`` -> ``preprocess_dataset`` -> patches.
"""

from medseg.data.cache import CachedCase, preprocess_dataset
from medseg.data.datasets import Case, Dataset, load_dataset, validate_dataset
from medseg.data.fingerprint import (
    Fingerprint,
    IntensityStats,
    compute_fingerprint,
    load_fingerprint,
)
from medseg.data.plan import Plan, load_plan, make_plan, save_plan
from medseg.data.preprocess import NormalizationSpec

__all__ = [
    "Case", "Dataset", "load_dataset", "validate_dataset",
    "Fingerprint", "IntensityStats", "compute_fingerprint", "load_fingerprint",
    "Plan", "make_plan", "save_plan", "load_plan",
    "CachedCase", "preprocess_dataset", "NormalizationSpec",
]
