"""Seeding: one run seed -> every random stream of a run, reproducibly and per rank."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

__all__ = ["seed_everything", "derive_seed"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (e.g. ``(run_seed, "noise", epoch, rank)``).

    A hash, not ``seed + epoch``, so that streams for different purposes, epochs and
    ranks never coincide (``seed=1, epoch=0`` vs ``seed=0, epoch=1``).
    """
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python's ``random``, numpy and torch (CPU and CUDA) with ``seed + rank``.

    Each DDP rank gets its own stream (offset by rank, as in nanoGPT); data order
    does not use these streams (see :mod:`vaekit.train.loop`).
    """
    s = int(seed) + int(rank)
    random.seed(s)
    np.random.seed(s % (2 ** 32))
    torch.manual_seed(s)
