"""Exported TorchScript and ONNX networks give the PyTorch network's logits (1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.errors import BundleError
from medseg.inference.bundle import load_bundle
from medseg.training.export import export_model


@pytest.fixture(scope="module")
def patch_and_reference(tiny_run_3d):
    model, spec = load_bundle(tiny_run_3d.bundle_dir)
    generator = torch.Generator().manual_seed(0)
    patch = torch.randn(2, spec.in_channels, *spec.patch_size, generator=generator)
    with torch.no_grad():
        reference = model(patch)
    return patch, reference


def test_torchscript_matches_pytorch(tiny_run_3d, patch_and_reference, tmp_path):
    path = export_model(tiny_run_3d.run_dir, format="torchscript", out=tmp_path / "net.pt")
    patch, reference = patch_and_reference
    with torch.no_grad():
        output = torch.jit.load(str(path))(patch)
    torch.testing.assert_close(output, reference, atol=1e-4, rtol=0)


def test_onnx_matches_pytorch(tiny_run_3d, patch_and_reference, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_model(tiny_run_3d.bundle_dir, format="onnx", out=tmp_path / "net.onnx")
    patch, reference = patch_and_reference
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"image": patch.numpy()})
    np.testing.assert_allclose(output, reference.numpy(), atol=1e-4, rtol=0)
    # Batch and spatial axes are dynamic: a larger volume runs too.
    bigger = np.zeros((1, patch.shape[1], 48, 48, 48), np.float32)
    assert session.run(None, {"image": bigger})[0].shape[2:] == (48, 48, 48)


def test_export_rejects_a_folder_without_bundle(tmp_path):
    with pytest.raises(BundleError, match="no bundle.yaml"):
        export_model(tmp_path)
