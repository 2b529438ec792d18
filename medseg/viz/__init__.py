"""Figures of volumes and results with matplotlib (Agg, no display needed).

Every function returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes it atomically.
"""

from __future__ import annotations

from medseg.viz.anomaly import show_anomaly_map
from medseg.viz.figures import (
    WINDOWS_HU,
    figure_to_png_bytes,
    label_colors,
    new_figure,
    resolve_window,
    save_figure,
)
from medseg.viz.plots import plot_metric_boxes, plot_training_curves
from medseg.viz.slices import PLANES, montage, plane_image, show_slices

__all__ = [
    "PLANES",
    "WINDOWS_HU",
    "figure_to_png_bytes",
    "label_colors",
    "montage",
    "new_figure",
    "plane_image",
    "plot_metric_boxes",
    "plot_training_curves",
    "resolve_window",
    "save_figure",
    "show_anomaly_map",
    "show_slices",
]
