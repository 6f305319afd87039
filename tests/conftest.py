"""Shared fixtures: a seeding fixture and the digits data set (small; keep it that way)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

# Every distribution checks its parameters and the values it scores for the whole test session (torch's
# global default; vaekit's latent layers leave validate_args at that default), so an out-of-support value
# or parameter raises here instead of giving a silently wrong number.
torch.distributions.Distribution.set_default_validate_args(True)


@pytest.fixture(autouse=True)
def _validate_distributions():
    """Validation back on before every test: the first ``torch.compile`` in a process turns it off for good
    (``torch._dynamo.eval_frame``'s one-time patch), and vaekit compiles its Bernoulli kernel on large inputs."""
    torch.distributions.Distribution.set_default_validate_args(True)


@pytest.fixture
def seed() -> int:
    """Seed torch, numpy and Python's ``random`` with 0 for the test; returns the seed."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    return 0


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits through ``vaekit.data`` (1297 train / 250 val / 250 test, 64 features)."""
    from vaekit.data import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture
def one_thread():
    """One torch thread for the test, the thread count restored afterwards (never set it at module level:
    that changes every test collected after the module too).

    For tests on tiny tensors: a second OpenMP thread only spins on the shared CI cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread_seeded(one_thread):
    """``one_thread`` and ``torch.manual_seed(0)``."""
    torch.manual_seed(0)


@pytest.fixture
def aot_eager_compile(monkeypatch):
    """``torch.compile`` with the ``aot_eager`` backend whatever the caller asks for; yields the modes asked for.

    ``aot_eager`` traces the forward and backward through Dynamo and AOTAutograd as inductor does but runs the
    graphs eagerly: random draws come from the eager stream, so results equal eager ones, and nothing is built
    (inductor's C++ code generation takes minutes on 2 cores)."""
    modes: list = []
    real = torch.compile

    def compile_(model, **kw):
        modes.append(kw.get("mode"))
        return real(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", compile_)
    torch._dynamo.reset()
    yield modes
    torch._dynamo.reset()
