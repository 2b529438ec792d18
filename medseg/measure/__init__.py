"""Measurements of segmented structures: volumes, surface areas, diameters, intensities.

``measure(labels, image)`` returns one tidy row per label (or per connected component).
"""

from __future__ import annotations

from medseg.measure.intensity import intensity_stats, intensity_unit
from medseg.measure.shape import (
    axial_diameters_mm,
    max_diameter_mm,
    mesh_measures,
    principal_axes_mm,
)
from medseg.measure.table import measure

__all__ = [
    "measure",
    "mesh_measures",
    "max_diameter_mm",
    "axial_diameters_mm",
    "principal_axes_mm",
    "intensity_stats",
    "intensity_unit",
]
