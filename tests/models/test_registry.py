"""Model registry: 2D and 3D networks, deep supervision heads, helpful errors."""

from __future__ import annotations

import pytest
import torch

from medseg.errors import ModelError
from medseg.models import available_models, create_model
from medseg.models.registry import default_topology


@pytest.mark.parametrize("name", ["dynunet", "resenc_unet", "unet_small"])
def test_every_model_builds_in_2d_and_3d(name):
    for dims, size in ((2, (32, 32)), (3, (16, 16, 16))):
        net = create_model(name, spatial_dims=dims, in_channels=2, out_channels=3, patch_size=size,
                           filters=None).eval()
        with torch.no_grad():
            out = net(torch.zeros(1, 2, *size))
        assert out.shape == (1, 3, *size)


def test_deep_supervision_returns_full_resolution_heads():
    kernels, strides = default_topology((32, 32, 32), max_stages=4)
    net = create_model("unet_small", spatial_dims=3, out_channels=4, kernel_size=kernels,
                       strides=strides, filters=[8, 16, 32, 64], deep_supervision=True,
                       deep_supr_num=2).train()
    out = net(torch.randn(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 3, 4, 32, 32, 32)  # main head + 2 supervised heads
    assert not torch.equal(out[:, 0], out[:, 1])


def test_topology_respects_anisotropic_spacing():
    kernels, strides = default_topology((16, 128, 128), spacing_mm=(4.0, 1.0, 1.0))
    # The coarse axis (4 mm) is pooled only once the fine axes reach 2 mm (within 2x).
    assert strides[1] == [1, 2, 2] and strides[2] == [2, 2, 2]
    assert kernels[0] == [1, 3, 3]


def test_unknown_model_lists_valid_names():
    with pytest.raises(ModelError, match="did you mean 'unet_small'.*valid names: dynunet"):
        create_model("unet_smal")
    assert available_models() == ["dynunet", "resenc_unet", "unet_small"]


def test_bad_option_is_a_model_error():
    with pytest.raises(ModelError, match="invalid option"):
        create_model("dynunet", no_such_option=1)
    with pytest.raises(ModelError, match="filters has 2 entries"):
        create_model("dynunet", patch_size=(32, 32, 32), filters=[8, 16])
