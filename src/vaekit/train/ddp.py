"""Distributed data parallel set-up under ``torchrun`` (nanoGPT's recipe inside functions).

``torchrun --nproc_per_node=W`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`init_distributed` joins the process group (gloo on CPU, nccl on CUDA) when
they are present and is a no-op otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["DistInfo", "init_distributed", "shutdown_distributed", "shard", "is_distributed_env"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job. ``world_size == 1`` means single process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed_env() -> bool:
    """True when launched by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` are set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group if launched by ``torchrun``; pick the CUDA device by ``LOCAL_RANK``."""
    if not is_distributed_env():
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def shutdown_distributed() -> None:
    """Leave the process group if this process joined one.

    Waits for every rank first: destroying the group while a peer is still working aborts the process
    under gloo (``terminate called without an active exception``).
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(idx: Tensor, info: DistInfo) -> Tensor:
    """This rank's part of a global batch of indices (near-equal contiguous chunks, as ``torch.tensor_split``)."""
    if not info.enabled:
        return idx
    return torch.tensor_split(idx, info.world_size)[info.rank]
