"""torch.distributed set-up for DDP under ``torchrun`` (NCCL on GPUs, gloo on CPU).

Without torchrun's environment variables everything runs as a single process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistributedInfo", "setup_distributed", "barrier", "all_reduce_mean", "select_device",
           "broadcast_object", "check_in_sync", "spawn_local"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that validates and writes files (rank 0)."""
        return self.rank == 0


def select_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: this rank's CUDA device when present, else CPU."""
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)


def setup_distributed() -> DistributedInfo:
    """Join the process group that ``torchrun`` described in RANK/WORLD_SIZE/LOCAL_RANK."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        log.info("rank %d of %d joined the %s process group", rank, world_size, backend)
    return DistributedInfo(rank, world_size, local_rank)


def barrier(info: DistributedInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.is_distributed:
        dist.barrier()


def all_reduce_mean(value: float, info: DistributedInfo, device: torch.device) -> float:
    """Mean of ``value`` over all ranks."""
    if not info.is_distributed:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item() / info.world_size)


def broadcast_object(obj: Any, info: DistributedInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.is_distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def check_in_sync(model: torch.nn.Module, info: DistributedInfo) -> None:
    """Raise ``TrainingError`` unless every rank holds the same weights (a DDP sanity check)."""
    from medseg.errors import TrainingError

    if not info.is_distributed:
        return
    # The digest stays on the parameters' device: NCCL gathers only CUDA tensors, gloo CPU ones.
    device = next(model.parameters()).device
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=device) % 7 + 1
        digest = torch.stack([flat.sum(), (flat * weights).sum(), (flat**2).sum()])
    gathered = [torch.zeros_like(digest) for _ in range(info.world_size)]
    dist.all_gather(gathered, digest)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise TrainingError(f"rank {info.rank}: weights differ between ranks after training; "
                            "check that every rank runs the same medseg/torch versions")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawned(rank: int, world_size: int, port: int, function: Any, args: tuple, kwargs: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    try:
        function(*args, **kwargs)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn_local(function: Any, *, world_size: int, args: tuple = (), kwargs: dict | None = None) -> None:
    """Run ``function(*args, **kwargs)`` in ``world_size`` local processes forming one job.

    The environment ``torchrun`` would set is filled in (gloo on CPU), so e.g.
    ``spawn_local(medseg.training.train, world_size=2, args=(dataset,), kwargs={...})``
    trains with DDP on one machine without torchrun.
    """
    torch.multiprocessing.spawn(_spawned, args=(world_size, _free_port(), function, args, kwargs or {}),
                                nprocs=world_size, join=True)
