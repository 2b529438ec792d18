"""Patch sampling with foreground oversampling, and a reproducible multi-worker DataLoader.

Every sample's randomness is keyed on (seed, epoch, sample index), so worker count and resume never change a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from medseg.data.cache import CachedCase

__all__ = ["PatchDataset", "EpochSampler", "make_loader", "sample_seed", "crop_patch"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed derived from the run seed, the epoch and the sample index.

    >>> sample_seed(0, 1, 2) == sample_seed(0, 1, 2) != sample_seed(0, 2, 1)
    True
    """
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def crop_patch(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """Crop ``array[..., start:start+size]`` over its last ``len(size)`` axes, zero-padding outside.

    >>> crop_patch(np.arange(5), [-1], [3]).tolist()
    [0, 0, 1]
    """
    lead = array.ndim - len(size)
    out = np.zeros(array.shape[:lead] + tuple(size), dtype=array.dtype)
    src, dst = [slice(None)] * lead, [slice(None)] * lead
    for axis, (s, n) in enumerate(zip(start, size)):
        dim = array.shape[lead + axis]
        lo, hi = max(s, 0), min(s + n, dim)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = array[tuple(src)]
    return out


class PatchDataset(torch.utils.data.Dataset):
    """Random training patches; index ``epoch * samples_per_epoch + i`` fixes the sample.

    The sample at batch position ``p`` is centred on a random foreground voxel of a
    random present class when ``p >= round(batch_size * (1 - oversample_foreground))``
    (nnU-Net's rule: 1 of 3 patches at batch size 3, the second of 2 at batch size 2).
    2D training (``len(patch_size) == 2``) samples axial slices (third axis) of the 3D cases.
    """

    def __init__(self, cases: Sequence[CachedCase], patch_size: Sequence[int], *, batch_size: int,
                 samples_per_epoch: int, seed: int, oversample_foreground: float = 0.33,
                 augmentation: Callable[[dict], dict] | None = None) -> None:
        self.cases = list(cases)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.batch_size = int(batch_size)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.first_forced = round(self.batch_size * (1.0 - oversample_foreground))
        self.augmentation = augmentation
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._locations: dict[int, dict[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _case(self, number: int) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        if number not in self._arrays:  # opened lazily: once per worker process
            self._arrays[number] = self.cases[number].load(mmap=True)
            self._locations[number] = self.cases[number].class_locations()
        return (*self._arrays[number], self._locations[number])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        epoch, position = divmod(int(index), self.samples_per_epoch)
        rng = np.random.default_rng(sample_seed(self.seed, epoch, position))
        image, label, locations = self._case(int(rng.integers(len(self.cases))))
        size3 = self.patch_size + (1,) * (3 - len(self.patch_size))
        shape = label.shape
        forced = position % self.batch_size >= self.first_forced and locations
        if forced:
            voxels = locations[int(rng.choice(sorted(locations)))]
            centre = voxels[int(rng.integers(len(voxels)))]
            start = [int(np.clip(c - n // 2, min(0, s - n), max(0, s - n)))
                     for c, n, s in zip(centre, size3, shape)]
        else:
            start = [int(rng.integers(min(0, s - n), max(0, s - n) + 1)) for n, s in zip(size3, shape)]
        patch_image = crop_patch(image, start, size3)
        patch_label = crop_patch(label, start, size3)[None]
        if len(self.patch_size) == 2:
            patch_image, patch_label = patch_image[..., 0], patch_label[..., 0]
        sample = {"image": torch.from_numpy(np.ascontiguousarray(patch_image, dtype=np.float32)),
                  "label": torch.from_numpy(patch_label.astype(np.int64))}
        if self.augmentation is not None:
            self.augmentation.set_random_state(seed=sample_seed(self.seed + 1, epoch, position))
            sample = self.augmentation(sample)
        return {"image": torch.as_tensor(sample["image"], dtype=torch.float32).as_subclass(torch.Tensor),
                "label": torch.as_tensor(sample["label"]).round().long().as_subclass(torch.Tensor)}


class EpochSampler(torch.utils.data.Sampler[int]):
    """Yields the sample indices of one epoch for one rank: ``epoch * N + i``.

    With ``world_size`` ranks, each rank takes every ``world_size``-th batch of the epoch's
    global sequence, so ranks never see the same sample.
    """

    def __init__(self, samples_per_rank: int, batch_size: int, *, rank: int = 0, world_size: int = 1):
        self.samples_per_rank = int(samples_per_rank)
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose indices the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_rank

    def __iter__(self) -> Iterator[int]:
        total = self.samples_per_rank * self.world_size
        for i in range(self.samples_per_rank):
            batch, position = divmod(i, self.batch_size)
            global_batch = batch * self.world_size + self.rank
            yield self.epoch * total + global_batch * self.batch_size + position


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        np.random.seed(info.seed % 2**32)


def make_loader(dataset: PatchDataset, *, rank: int = 0, world_size: int = 1, num_workers: int = 2,
                seed: int = 0) -> tuple[torch.utils.data.DataLoader, EpochSampler]:
    """DataLoader over ``dataset`` for one rank, with its :class:`EpochSampler`.

    ``dataset.samples_per_epoch`` must be the global count; each rank draws its share.
    Worker RNGs are seeded from ``seed`` through the loader's generator.
    """
    per_rank = dataset.samples_per_epoch // world_size
    sampler = EpochSampler(per_rank, dataset.batch_size, rank=rank, world_size=world_size)
    generator = torch.Generator().manual_seed(int(seed))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=dataset.batch_size, sampler=sampler, num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None, generator=generator,
        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if num_workers else None)
    return loader, sampler
