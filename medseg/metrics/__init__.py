"""Segmentation metrics: overlap, surface distances, lesion-wise detection, tidy tables.

Spacing-aware, crop-based and explicit about empty masks; see DESIGN.md "Metrics".
"""

from __future__ import annotations

from medseg.metrics.evaluate import EmptyPolicy, evaluate, metric_columns
from medseg.metrics.folder import evaluate_folder
from medseg.metrics.lesion import froc, lesion_metrics, lesion_summary
from medseg.metrics.overlap import ConfusionCounts, confusion_counts, overlap_metrics
from medseg.metrics.surface import SurfaceDistances, surface_distances, surface_metrics
from medseg.metrics.table import summarize, write_table

__all__ = [
    "evaluate",
    "evaluate_folder",
    "EmptyPolicy",
    "metric_columns",
    "lesion_metrics",
    "lesion_summary",
    "froc",
    "ConfusionCounts",
    "confusion_counts",
    "overlap_metrics",
    "SurfaceDistances",
    "surface_distances",
    "surface_metrics",
    "summarize",
    "write_table",
]
