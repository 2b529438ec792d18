"""Inference: load a bundle once, predict many volumes, postprocess, resample back.

See ``bundle.py`` for the on-disk bundle format.
"""

from __future__ import annotations
