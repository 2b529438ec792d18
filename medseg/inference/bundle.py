"""Model bundles: one folder holding weights, network spec, labels and preprocessing.

Training writes a bundle with :func:`save_bundle`; inference loads it with :func:`load_bundle`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medseg.atomic import atomic_path
from medseg.config import from_dict, load_yaml, save_yaml
from medseg.data.preprocess import NormalizationSpec
from medseg.errors import BundleError, InputNotFoundError

__all__ = ["NormalizationSpec", "BundleSpec", "save_bundle", "load_bundle", "BUNDLE_FORMAT_VERSION"]

log = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
_SPEC_NAME = "bundle.yaml"
_WEIGHTS_NAME = "weights.pt"


@dataclass(frozen=True)
class BundleSpec:
    """Everything needed to rebuild the network and preprocess an input."""

    model_name: str
    model_options: dict[str, Any]
    labels: dict[int, str]
    spatial_dims: int = 3
    in_channels: int = 1
    patch_size: tuple[int, ...] = (64, 64, 64)
    target_spacing_mm: tuple[float, ...] = (1.0, 1.0, 1.0)
    orientation: str = "RAS"
    normalization: NormalizationSpec = field(default_factory=NormalizationSpec)
    channel_names: tuple[str, ...] = ("CT",)
    postprocessing: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = BUNDLE_FORMAT_VERSION


def save_bundle(folder: str | Path, *, model: torch.nn.Module, spec: BundleSpec) -> Path:
    """Write ``spec`` (YAML) and the model's ``state_dict`` into ``folder`` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / _WEIGHTS_NAME) as tmp:
        torch.save(state, tmp)
    digest = hashlib.sha256((folder / _WEIGHTS_NAME).read_bytes()).hexdigest()
    provenance = dict(spec.provenance, weights_sha256=digest)
    save_yaml(dataclasses.replace(spec, provenance=provenance), folder / _SPEC_NAME)
    log.info("saved model bundle to %s", folder)
    return folder


def load_bundle(
    folder: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, BundleSpec]:
    """Rebuild the network from a bundle folder and load its weights (``weights_only=True``).

    Returns the model in eval mode and the :class:`BundleSpec`.
    """
    from medseg.models import create_model

    folder = Path(folder)
    if not folder.exists():
        raise InputNotFoundError(f"{folder}: model bundle not found; pass the folder a training run wrote")
    spec_path, weights_path = folder / _SPEC_NAME, folder / _WEIGHTS_NAME
    for needed in (spec_path, weights_path):
        if not needed.exists():
            raise BundleError(f"{folder}: not a medseg model bundle ({needed.name} is missing)")
    spec = load_yaml(spec_path, BundleSpec)
    if spec.format_version > BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{folder}: bundle format {spec.format_version} is newer than this medseg "
            f"understands ({BUNDLE_FORMAT_VERSION}); upgrade medseg"
        )
    # Rebuilt exactly as trained (deep-supervision heads included) so loading can be
    # strict; in eval mode the network returns only its full-resolution output.
    model = create_model(spec.model_name, **dict(spec.model_options))
    try:
        state = torch.load(weights_path, map_location=map_location, weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise BundleError(f"{weights_path}: weights do not load into {spec.model_name} ({exc})") from exc
    model.eval()
    return model, spec


def spec_from_dict(data: dict[str, Any]) -> BundleSpec:
    """Parse a plain mapping into a :class:`BundleSpec` (strict keys)."""
    return from_dict(BundleSpec, data, where="bundle spec")
