"""Inference: load a bundle once, predict many volumes, postprocess, resample back.

See ``bundle.py`` for the on-disk bundle format and ``predictor.py`` for :class:`Predictor`.
"""

from __future__ import annotations

from medseg.inference.postprocess import (
    apply_postprocessing,
    choose_postprocessing,
    fill_holes,
    keep_largest_component,
    remove_small_components,
    rules_from_choice,
)
from medseg.inference.predictor import MemoryPlan, Predictor

__all__ = ["Predictor", "MemoryPlan", "keep_largest_component", "remove_small_components",
           "fill_holes", "choose_postprocessing", "rules_from_choice", "apply_postprocessing"]
