"""Bidirectional Monte Carlo (BDMC): sandwich log p(x) between forward and reverse AIS on simulated data.

Grosse, Ghahramani & Adams 2015 (arXiv:1511.02543); used to validate AIS for decoder-based models by
Wu, Burda, Salakhutdinov & Grosse 2017 (arXiv:1611.04273).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..progress import Progress
from .ais import ais


@torch.no_grad()
def simulate(model: nn.Module, n: int, seed: int = 0, cond: dict[str, Any] | None = None) -> tuple[Tensor, Tensor]:
    r"""Draw ``n`` pairs ``z ~ p(z)``, ``x ~ p(x|z)`` from the model; then ``z`` is an exact sample of ``p(z|x)``.

    With ``cond`` (a conditional model's keyword arguments for ``n`` rows) the pairs are ``z ~ p(z|c)``,
    ``x ~ p(x|z, c)``, and ``z`` is an exact sample of ``p(z|x, c)``; under a mask condition the observed pixels of
    ``x`` are the condition's own (``observed``), only the hidden ones are drawn.

    Returns ``(z, x)`` of shapes ``(n, D)`` and ``(n, data_dim)``. The global RNG state is restored.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cond = cond or {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        p = model.prior(**cond) if cond else model.prior()
        z = p.sample() if cond and tuple(p.batch_shape) == (n,) else p.sample((n,))
        x = model.decode(z, **cond).sample() if cond else model.decode(z).sample()
        if "mask" in cond and "observed" in cond:
            m = torch.as_tensor(cond["mask"], device=x.device).bool()
            x = torch.where(m, torch.as_tensor(cond["observed"], dtype=x.dtype, device=x.device), x)
    return z, x


@dataclass
class BDMCRow:
    """Forward/reverse AIS on the same simulated data for one ``T``.

    ``lower``/``upper`` are means over the ``n`` simulated inputs of the forward (stochastic lower bound)
    and reverse (stochastic upper bound) AIS estimates; ``gap = upper - lower`` bounds the error of either
    on this data (in expectation); the ``*_stderr`` are the Monte Carlo s.e. of those means.
    """

    T: int
    lower: float
    upper: float
    gap: float
    lower_stderr: float
    upper_stderr: float
    forward_seconds: float
    reverse_seconds: float
    forward_acceptance: float
    reverse_acceptance: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def bdmc(model: nn.Module, n: int, Ts: Sequence[int], n_chains: int = 16, seed: int = 0,
         leapfrog_steps: int = 10, schedule: str = "sigmoid", obs_scale: float | None = None,
         data: tuple[Tensor, Tensor] | None = None, progress: bool = False,
         cond: dict[str, Any] | None = None) -> list[BDMCRow]:
    r"""Run BDMC for each ``T`` in ``Ts`` on ``n`` inputs simulated from the model.

    .. math::
        \mathbb E\big[\log \hat p_{\text{fwd}}(x)\big] \le \log p(x) \le
        \mathbb E\big[-\log \widehat{p^{-1}}_{\text{rev}}(x)\big]

    where the reverse chain starts at the ``z`` that generated ``x`` (an exact posterior sample).
    The gap upper − lower shrinks to 0 as ``T`` grows; a small gap certifies forward AIS at that ``T``
    (on data like the simulated data). Wu et al. 2017 (arXiv:1611.04273), Sec. 4.

    Args:
        model: speaks the protocol (``prior``, ``decode``, ``log_likelihood``).
        n: number of simulated inputs (ignored if ``data`` is given).
        Ts: numbers of intermediate distributions to try.
        n_chains, seed, leapfrog_steps, schedule, obs_scale: passed to :func:`vaekit.evaluation.ais.ais`.
        data: optional ``(z, x)`` pair from :func:`simulate` to reuse.
        progress: report progress and the cost (forward and reverse AIS for every ``T``) on standard error
            (:class:`vaekit.progress.Progress`), with a time estimate after a pilot of a few seconds.
        cond: a conditional model's keyword arguments for the ``n`` rows (``{"label": y}``, or ``mask`` and
            ``observed``): the data are simulated from ``p(x|c)`` and both bounds are of ``log p(x|c)``.

    Returns:
        One :class:`BDMCRow` per ``T``.
    """
    if not Ts:
        raise ValueError("Ts must name at least one T")
    z, x = data if data is not None else simulate(model, n, seed, cond)
    rows = []
    m = x.shape[0]
    cost = (f"forward and reverse AIS on {m} simulated examples x {n_chains} chains x T={','.join(map(str, Ts))} "
            f"transitions x {leapfrog_steps} leapfrog steps = "
            f"{2 * m * n_chains * sum(int(T) * leapfrog_steps + 1 for T in Ts):,} decoder forward+backward passes")
    bar = Progress(2 * sum(int(T) for T in Ts), "bdmc", "transitions", enabled=progress, cost=cost)

    def step(t: int, T: int) -> None:
        bar.update(1)

    with bar:
        for i, T in enumerate(Ts):
            fwd = ais(model, x, n_chains, T, schedule, leapfrog_steps, seed=seed + 1 + 2 * i, obs_scale=obs_scale,
                      progress=step, cond=cond)
            rev = ais(model, x, n_chains, T, schedule, leapfrog_steps, seed=seed + 2 + 2 * i, reverse=True,
                      init_z=z, obs_scale=obs_scale, progress=step, cond=cond)
            rows.append(_row(T, fwd, rev, m))
    return rows


def _row(T: int, fwd: Any, rev: Any, m: int) -> BDMCRow:
    """One :class:`BDMCRow` from the forward and reverse :class:`~vaekit.evaluation.AISResult` on ``m`` inputs."""
    lo, up = float(fwd.log_px.mean()), float(rev.log_px.mean())
    return BDMCRow(T=int(T), lower=lo, upper=up, gap=up - lo, lower_stderr=float(fwd.stderr.pow(2).sum().sqrt() / m),
                   upper_stderr=float(rev.stderr.pow(2).sum().sqrt() / m), forward_seconds=fwd.seconds,
                   reverse_seconds=rev.seconds, forward_acceptance=fwd.acceptance,
                   reverse_acceptance=rev.acceptance)


def run_bdmc(model: nn.Module, n: int, Ts: Sequence[int], seed: int = 0, n_chains: int = 16,
             leapfrog_steps: int = 10, schedule: str = "sigmoid", obs_scale: float | None = None,
             progress: bool = False, cond: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready BDMC report (the CLI's ``--bdmc``): settings plus one row per ``T`` (see :func:`bdmc`; ``cond``
    for a conditional model).

    Returns ``{"settings": {...}, "rows": [{"T", "lower", "upper", "gap", ...}, ...], "seconds": float}``.
    """
    t0 = time.perf_counter()
    rows = bdmc(model, n, Ts, n_chains=n_chains, seed=seed, leapfrog_steps=leapfrog_steps, schedule=schedule,
                obs_scale=obs_scale, progress=progress, cond=cond)
    return {"settings": {"n_simulated": n, "Ts": [int(t) for t in Ts], "n_chains": n_chains, "seed": seed,
                         "leapfrog_steps": leapfrog_steps, "schedule": schedule, "obs_scale": obs_scale},
            "rows": [r.as_dict() for r in rows], "seconds": time.perf_counter() - t0}
