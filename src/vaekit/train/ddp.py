"""Distributed data parallel set-up under ``torchrun`` (nanoGPT's recipe inside functions).

``torchrun --nproc_per_node=W`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`init_distributed` joins the process group (gloo on CPU, nccl on CUDA) when
they are present and is a no-op otherwise.

A lost worker (killed, frozen, or on a node that went away) must not leave the others waiting:
every collective of the group gives up after ``timeout`` seconds (``train.ddp_timeout``; torch's
default is 30 minutes, or forever for NCCL without its watchdog), a peer whose connection
closes fails the next collective at once, and :func:`shutdown_distributed` after an error leaves
the group without the final barrier (which would wait for the lost peer a second time).
:func:`collective_failure` recognises such an error so that training can name it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["DistInfo", "init_distributed", "shutdown_distributed", "shard", "is_distributed_env", "collective_failure"]


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


#: whether this process has joined a process group (set by :func:`init_distributed`; stays True after it left)
_joined = False


def joined_process_group() -> bool:
    """True once this process has joined a DDP process group through :func:`init_distributed`, even after
    :func:`shutdown_distributed`: gloo's transport threads may outlive the group (see ``vaekit.cli.main``)."""
    return _joined


def is_distributed_env() -> bool:
    """True when launched by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` are set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device, timeout: float | None = None) -> DistInfo:
    """Join the process group if launched by ``torchrun``; pick the CUDA device by ``LOCAL_RANK``.

    Args:
        device: ``cpu`` (gloo) or ``cuda`` (nccl).
        timeout: seconds after which a collective that a peer never joins fails on every rank that waits
            (None: torch's default, 30 minutes). It bounds how long a rank may work alone too (rank 0's
            validation and checkpoint at an epoch end), so it must exceed that.

    Raises:
        ValueError: ``timeout`` is not > 0.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout: expected seconds > 0, got {timeout}")
    if not is_distributed_env():
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local)
        kw = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
        dist.init_process_group(backend=backend, **kw)
        global _joined
        _joined = True
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def shutdown_distributed(wait: bool = True) -> None:
    """Leave the process group if this process joined one.

    With ``wait`` (a run that ended normally), waits for every rank first: destroying the group while a
    peer is still working aborts the process under gloo (``terminate called without an active
    exception``). After an error pass ``wait=False``: a peer may be gone, and the barrier would wait for
    it until the timeout (or fail on its closed connection) before this process could report its error.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def collective_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because a peer was lost: its connection closed
    (gloo: ``Connection closed by peer``, ``Connection reset``), or it did not answer within the group's
    timeout (``Timed out``, ``timeout``); also torch's own ``DistError`` types."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error)
    return any(s in text for s in ("Connection closed by peer", "Connection reset", "Timed out", "timed out",
                                   "Socket Timeout", "Broken pipe"))


def shard(idx: Tensor, info: DistInfo) -> Tensor:
    """This rank's part of a global batch of indices (near-equal contiguous chunks, as ``torch.tensor_split``)."""
    if not info.enabled:
        return idx
    return torch.tensor_split(idx, info.world_size)[info.rank]
