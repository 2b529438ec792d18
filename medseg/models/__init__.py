"""Segmentation networks (wrappers over MONAI) behind one factory, ``create_model``.

Networks read no files; bundles (weights + plan) live in ``medseg.inference.bundle``.
"""

from __future__ import annotations

from medseg.models.registry import available_models, create_model

__all__ = ["create_model", "available_models"]
