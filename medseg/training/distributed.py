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

__all__ = ["DistributedInfo", "setup_distributed", "barrier", "all_reduce_mean", "select_device"]

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
