"""Fixtures for inference tests: a tiny trained bundle and a random-weight bundle of the same spec."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_bundle import cached_tiny_bundle, tiny_spec  # noqa: E402

from medseg.inference.bundle import save_bundle  # noqa: E402
from medseg.models import create_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, pytestconfig) -> Path:
    """A unet_small (8..32 filters) trained ~20 s on 32^3 phantoms at 3x3x4 mm, patch 24^3."""
    return cached_tiny_bundle(tmp_path_factory, pytestconfig)


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory) -> Path:
    """Same spec as ``tiny_bundle`` with untrained weights (for ensembling arithmetic)."""
    torch.manual_seed(123)
    spec = tiny_spec()
    model = create_model(spec.model_name, **spec.model_options)
    return save_bundle(tmp_path_factory.mktemp("bundles") / "random", model=model, spec=spec)
