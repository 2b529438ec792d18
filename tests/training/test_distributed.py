"""DDP on CPU: two gloo processes train one fold together, in sync, and rank 0 writes the bundle."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medseg.data.sampling import EpochSampler
from medseg.demo import make_dataset
from medseg.inference.bundle import load_bundle
from medseg.training import TrainConfig, train
from medseg.training import distributed as ddp
from medseg.training.distributed import DistributedInfo, spawn_local


def test_epoch_sampler_gives_ranks_disjoint_batches():
    ranks = [list(EpochSampler(6, 2, rank=r, world_size=2)) for r in range(2)]
    assert ranks == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]
    sampler = EpochSampler(6, 2, rank=1, world_size=2)
    sampler.set_epoch(1)
    assert list(sampler)[:2] == [14, 15]


def test_two_gloo_processes_train_in_sync(tmp_path):
    dataset = make_dataset(tmp_path / "ds", n_cases=4, shape=(24, 24, 24), seed=5)
    config = TrainConfig(epochs=1, iterations_per_epoch=2, folds=2, patch_size=(16, 16, 16),
                         batch_size=2, model_name="unet_small", filters=(8, 16, 32), num_workers=0,
                         num_threads=1, sw_overlap=0.0)
    # train() raises on any rank whose weights differ from the others' after training.
    spawn_local(train, world_size=2, args=(dataset,),
                kwargs={"out_dir": tmp_path / "run", "config": config, "progress": False})
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert provenance["world_size"] == 2
    model, spec = load_bundle(tmp_path / "run" / "bundle")
    assert spec.provenance["world_size"] == 2


def test_sync_check_gathers_on_the_model_device(monkeypatch):
    # NCCL gathers only CUDA tensors: the digest must stay where the weights are (here "meta").
    import torch

    seen = []

    def all_gather(out, tensor):
        seen.append([tensor.device] + [o.device for o in out])
        raise StopIteration  # meta tensors cannot be compared; the devices are what is checked

    monkeypatch.setattr(ddp.dist, "all_gather", all_gather)
    model = torch.nn.Linear(3, 2, device="meta")
    with pytest.raises(StopIteration):
        ddp.check_in_sync(model, DistributedInfo(rank=0, world_size=2))
    assert seen == [[torch.device("meta")] * 3]


@pytest.mark.slow
def test_torchrun_cli_trains_with_two_processes(tmp_path):
    dataset = make_dataset(tmp_path / "ds", n_cases=4, shape=(24, 24, 24), seed=5)
    config = tmp_path / "micro.yaml"
    config.write_text("epochs: 1\niterations_per_epoch: 2\nfolds: 2\npatch_size: [16, 16, 16]\n"
                      "batch_size: 2\nmodel_name: unet_small\nfilters: [8, 16, 32]\nnum_workers: 0\n"
                      "num_threads: 1\nsw_overlap: 0.0\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "medseg.cli.app", "train", str(dataset), "--config", str(config),
               "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best validation Dice") == 1  # only rank 0 reports
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert provenance["world_size"] == 2
