"""Checkpoints: weights, optimiser and the fp16 loss scaler survive a save/load round trip."""

from __future__ import annotations

import pytest
import torch

from medseg.errors import TrainingError
from medseg.training.checkpoint import load_checkpoint, save_checkpoint


def _parts():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer


def test_loss_scaler_state_round_trips(tmp_path):
    model, optimizer = _parts()
    # An fp16 run's scaler after some overflow steps: a smaller scale and a growth count.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=7)
    scaler.load_state_dict({**scaler.state_dict(), "scale": 1024.0, "_growth_tracker": 5})
    save_checkpoint(tmp_path / "last.pt", model=model, optimizer=optimizer, epoch=3,
                    state={"seed": 1}, scaler=scaler)
    fresh = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=7)
    loaded = load_checkpoint(tmp_path / "last.pt", model=_parts()[0], optimizer=_parts()[1],
                             scaler=fresh)
    assert loaded == {"epoch": 3, "state": {"seed": 1}}
    assert fresh.state_dict()["scale"] == 1024.0
    assert fresh.state_dict()["_growth_tracker"] == 5


def test_checkpoint_without_scaler_loads_into_a_run_with_one(tmp_path):
    model, optimizer = _parts()
    save_checkpoint(tmp_path / "last.pt", model=model, optimizer=optimizer, epoch=1, state={})
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    target = torch.nn.Linear(4, 2)
    load_checkpoint(tmp_path / "last.pt", model=target, scaler=scaler)
    assert scaler.state_dict()["scale"] == 256.0  # untouched
    assert torch.equal(target.weight, model.weight)


def test_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(TrainingError, match="without --resume"):
        load_checkpoint(tmp_path / "none.pt", model=torch.nn.Linear(1, 1))
