"""Optional ``torch.compile`` for small elementwise-and-reduce kernels, with an eager fallback.

Used only for no-grad evaluation kernels whose eager form makes several passes over a wide
tensor (the Bernoulli log-likelihood of an IWAE-5000 evaluation: 784 values per sample,
5 million samples per 1000 images). Compilation fuses them into one loop.

* On by default; ``VAEKIT_COMPILE=0`` turns it off.
* Compiling costs seconds, so a function is compiled only once it has processed
  ``warmup_numel`` elements eagerly in this process (the rent-or-buy rule of JIT compilers:
  a job never pays more than about the compile time for having waited), and only for calls
  of at least ``min_numel`` elements. The digits demo's IWAE-1000 (16 M values) stays eager;
  an MNIST IWAE-5000 evaluation (3.9 G values) compiles after its first 7 %.
* If compiling fails (no C++ compiler, no Triton, an unsupported backend), a warning is issued
  once and the eager function is used from then on. The results agree to float rounding.
* The seconds spent in first calls (compilation) are recorded in :data:`COMPILE_SECONDS`, so
  benchmarks report them separately from steady-state timings.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from typing import Callable

import torch

#: function name -> seconds its first compiled call took (compilation + one run)
COMPILE_SECONDS: dict[str, float] = {}


def compile_enabled() -> bool:
    """False when ``VAEKIT_COMPILE`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get("VAEKIT_COMPILE", "1").strip().lower() not in ("0", "false", "no", "off")


def maybe_compiled(fn: Callable[..., torch.Tensor], eager: Callable[..., torch.Tensor] | None = None,
                   min_numel: int = 1 << 17, warmup_numel: int = 1 << 28) -> Callable[..., torch.Tensor]:
    """Wrap ``fn(t, ...)``: compiled once ``warmup_numel`` elements went through it eagerly, for calls of
    at least ``min_numel`` elements, and while compilation works; eager otherwise.

    ``fn`` must be a pure tensor function (no Python side effects). ``eager`` (default ``fn``)
    is what runs uncompiled: a formulation that is fast in eager mode, computing the same
    quantity as ``fn`` up to float rounding.
    """
    eager = fn if eager is None else eager
    state: dict[str, object] = {"compiled": None, "failed": False, "seen": 0}

    @functools.wraps(fn)
    def wrapper(t: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        if state["failed"] or t.numel() < min_numel or not compile_enabled() or torch.is_grad_enabled() \
                and (t.requires_grad or any(a.requires_grad for a in args)):
            return eager(t, *args)
        if state["compiled"] is None and state["seen"] < warmup_numel:  # type: ignore[operator]
            state["seen"] = state["seen"] + t.numel()  # type: ignore[operator]
            return eager(t, *args)
        first = state["compiled"] is None
        if first:
            state["compiled"] = torch.compile(fn, dynamic=True)
        try:
            start = time.perf_counter()
            out = state["compiled"](t, *args)  # type: ignore[operator]
            if first:
                COMPILE_SECONDS[fn.__name__] = time.perf_counter() - start
            return out
        except Exception as err:  # noqa: BLE001 - any backend failure means: run eagerly
            state["failed"] = True
            warnings.warn(f"vaekit: torch.compile of {fn.__name__} failed ({type(err).__name__}: {err}); "
                          "using the eager version", RuntimeWarning, stacklevel=2)
            return eager(t, *args)

    return wrapper
