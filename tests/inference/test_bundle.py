"""Bundle save/load: the network and its spec come back identical."""

from __future__ import annotations

import pytest
import torch

from medseg.data.preprocess import NormalizationSpec
from medseg.errors import BundleError, InputNotFoundError
from medseg.inference.bundle import BundleSpec, load_bundle, save_bundle
from medseg.models import create_model


def _spec(**changes):
    options = dict(spatial_dims=3, out_channels=3, patch_size=[16, 16, 16], deep_supervision=True)
    base = dict(model_name="unet_small", model_options=options, labels={0: "background", 1: "a", 2: "b"},
                patch_size=(16, 16, 16), target_spacing_mm=(1.5, 1.5, 2.0),
                normalization=NormalizationSpec("ct", -100.0, 200.0, 50.0, 40.0))
    base.update(changes)
    return BundleSpec(**base)


def test_roundtrip_same_outputs_and_spec(tmp_path):
    torch.manual_seed(0)
    spec = _spec()
    model = create_model(spec.model_name, **spec.model_options)
    save_bundle(tmp_path / "b", model=model, spec=spec)
    loaded, loaded_spec = load_bundle(tmp_path / "b")
    assert loaded_spec.normalization == spec.normalization
    assert loaded_spec.labels == spec.labels
    assert loaded_spec.target_spacing_mm == spec.target_spacing_mm
    assert len(loaded_spec.provenance["weights_sha256"]) == 64
    model.eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_missing_and_broken_bundles(tmp_path):
    with pytest.raises(InputNotFoundError, match="not found"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="bundle.yaml"):
        load_bundle(tmp_path / "empty")
    spec = _spec()
    save_bundle(tmp_path / "b", model=create_model(spec.model_name, **spec.model_options), spec=spec)
    (tmp_path / "b" / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="weights"):
        load_bundle(tmp_path / "b")


def test_weights_missing_a_layer_are_rejected(tmp_path):
    spec = _spec()
    save_bundle(tmp_path / "b", model=create_model(spec.model_name, **spec.model_options), spec=spec)
    state = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "b" / "weights.pt")
    with pytest.raises(BundleError, match="do not load"):
        load_bundle(tmp_path / "b")
