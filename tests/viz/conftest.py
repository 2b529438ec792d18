"""Shared checks for figure tests: PNG size and content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _check_png(path: Path, *, width: int, height: int) -> np.ndarray:
    """Assert ``path`` is a PNG of ``width`` x ``height`` pixels that is not one flat colour."""
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == (width, height)
        pixels = np.asarray(img.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16, "figure is (nearly) a single colour"
    return pixels


@pytest.fixture
def check_png():
    return _check_png
