"""Fixtures for batch tests: the tiny trained bundle (shared with tests/inference)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
sys.path.insert(0, str(Path(__file__).parent))
from _tiny_bundle import cached_tiny_bundle  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, pytestconfig) -> Path:
    return cached_tiny_bundle(tmp_path_factory, pytestconfig)
