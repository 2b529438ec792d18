"""Patch sampling: zero-padded crops, foreground oversampling, reproducibility across workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.data import load_dataset, make_plan, preprocess_dataset
from medseg.data.fingerprint import compute_fingerprint
from medseg.data.sampling import PatchDataset, crop_patch, make_loader
from medseg.data.transforms import AugmentationConfig, build_augmentation
from medseg.demo import make_dataset


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("sampling"), n_cases=3, shape=(24, 24, 24), seed=1)
    dataset = load_dataset(root)
    plan = make_plan(compute_fingerprint(dataset), patch_size=(16, 16, 16), batch_size=3)
    return preprocess_dataset(dataset, plan, workers=1)


def test_crop_patch_pads_outside_with_zeros():
    array = np.arange(27).reshape(1, 3, 3, 3) + 1
    patch = crop_patch(array, [-1, 1, 2], [3, 3, 2])
    assert patch.shape == (1, 3, 3, 2)
    assert (patch[0, 0] == 0).all()                      # row before the volume
    assert patch[0, 1, 0, 0] == array[0, 0, 1, 2]
    assert (patch[0, :, :, 1] == 0).all()                # beyond the last k
    assert (patch[0, 1:, 2] == 0).all()                  # beyond the last j


def test_forced_positions_hold_foreground(cached):
    dataset = PatchDataset(cached, (16, 16, 16), batch_size=3, samples_per_epoch=60, seed=0,
                           oversample_foreground=0.33)
    assert dataset.first_forced == 2  # positions 0 and 1 random, position 2 forced
    for index in range(2, 60, 3):
        assert dataset[index]["label"].max() > 0
    sample = dataset[0]
    assert sample["image"].shape == (1, 16, 16, 16) and sample["label"].shape == (1, 16, 16, 16)
    assert sample["image"].dtype == torch.float32 and sample["label"].dtype == torch.int64


def test_samples_are_keyed_on_seed_epoch_and_index(cached):
    augmentation = build_augmentation(AugmentationConfig(), spatial_dims=3, patch_size=(16, 16, 16))
    make = lambda seed: PatchDataset(cached, (16, 16, 16), batch_size=2,  # noqa: E731
                                     samples_per_epoch=8, seed=seed, augmentation=augmentation)
    first, again, other = make(5), make(5), make(6)
    for index in (3, 11):  # epoch 0 and epoch 1
        assert torch.equal(first[index]["image"], again[index]["image"])
    assert not torch.equal(first[3]["image"], first[11]["image"])
    assert not torch.equal(first[3]["image"], other[3]["image"])
    # Loader order and content do not depend on the number of workers.
    batches = {}
    for workers in (0, 2):
        loader, sampler = make_loader(make(5), num_workers=workers, seed=5)
        sampler.set_epoch(1)
        batches[workers] = [b["image"] for b in loader]
    assert all(torch.equal(a, b) for a, b in zip(batches[0], batches[2]))
    assert torch.equal(batches[0][0][1], first[9]["image"])


def test_2d_patches_are_axial_slices(cached):
    dataset = PatchDataset(cached, (16, 16), batch_size=2, samples_per_epoch=4, seed=0,
                           oversample_foreground=1.0)
    sample = dataset[1]
    assert sample["image"].shape == (1, 16, 16) and sample["label"].shape == (1, 16, 16)
    assert sample["label"].max() > 0
