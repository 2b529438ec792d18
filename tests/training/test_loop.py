"""Mixed-precision choice and one training epoch on a toy problem."""

from __future__ import annotations

import logging

import pytest
import torch

from medseg.models import create_model
from medseg.training import loop
from medseg.training.loop import Precision, choose_precision, train_epoch
from medseg.training.losses import build_loss


def test_precision_choice(monkeypatch, caplog):
    cpu = torch.device("cpu")
    assert choose_precision(cpu, cpu_bf16=False).dtype is None
    monkeypatch.setattr(loop, "cpu_bf16_supported", lambda: True)
    assert choose_precision(cpu, cpu_bf16="auto").dtype is torch.bfloat16
    monkeypatch.setattr(loop, "cpu_bf16_supported", lambda: False)
    assert choose_precision(cpu, cpu_bf16="auto").name == "fp32"
    with caplog.at_level(logging.WARNING):
        assert choose_precision(cpu, cpu_bf16=True).name == "fp32"
    assert "no native bf16" in caplog.text


def test_bf16_forward_stays_close_to_fp32():
    if not loop.cpu_bf16_supported():
        pytest.skip("this CPU has no native bf16")
    torch.manual_seed(0)
    net = create_model("unet_small", spatial_dims=3, out_channels=3, patch_size=(16, 16, 16),
                       filters=[8, 16, 32]).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        full = net(x)
        with Precision("cpu", torch.bfloat16).autocast():
            half = net(x).float()
    assert (full.argmax(1) == half.argmax(1)).float().mean() > 0.95


def test_epoch_lowers_the_loss_on_a_learnable_toy():
    torch.manual_seed(0)
    net = create_model("unet_small", spatial_dims=2, out_channels=2, patch_size=(16, 16),
                       filters=[8, 16, 32], deep_supervision=True)
    image = torch.randn(4, 1, 16, 16)
    batches = [{"image": image, "label": (image > 0).long()}] * 15
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    kwargs = {"loss_fn": build_loss("dice_ce"), "optimizer": optimizer, "progress": False,
              "precision": Precision("cpu", None), "device": torch.device("cpu")}
    first = train_epoch(net, batches, **kwargs)
    second = train_epoch(net, batches, **kwargs)
    assert second < first * 0.8
