"""Batched Hamiltonian Monte Carlo over many independent chains (the transition used by AIS and BDMC).

Every chain is one row of a tensor ``z`` of shape ``(*batch, D)`` (e.g. ``(chains, B, D)`` or flattened
``(N, D)``); the target is a callable ``log_density(z) -> (*batch)`` whose chains do not interact, so one
autograd call gives every chain's gradient at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

LogDensity = Callable[[Tensor], Tensor]


def value_and_grad(log_density: LogDensity, z: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(log f(z), \nabla_z log f(z))`` for every chain, by ``torch.autograd.grad``.

    Args:
        log_density: ``(*batch, D) -> (*batch)``; chains must be independent (row ``i`` of the output
            depends only on row ``i`` of the input), so the gradient of the sum is every chain's gradient.
        z: ``(*batch, D)``.

    Returns:
        ``(*batch)`` log densities and ``(*batch, D)`` gradients, both detached.
    """
    with torch.enable_grad():
        zz = z.detach().requires_grad_(True)
        lp = log_density(zz)
        if lp.shape != z.shape[:-1]:
            raise ValueError(f"log_density returned shape {tuple(lp.shape)}, expected {tuple(z.shape[:-1])}")
        (g,) = torch.autograd.grad(lp.sum(), zz)
    return lp.detach(), g.detach()


@dataclass
class HMCResult:
    """One HMC transition for every chain.

    Attributes:
        z: ``(*batch, D)`` the new states.
        log_density: ``(*batch)`` log f at the new states.
        grad: ``(*batch, D)`` gradient of log f at the new states.
        accepted: ``(*batch)`` bool, whether each chain's proposal was accepted.
        accept_prob: ``(*batch)`` Metropolis acceptance probability ``min(1, exp(-ΔH))`` (0 for non-finite H).
    """

    z: Tensor
    log_density: Tensor
    grad: Tensor
    accepted: Tensor
    accept_prob: Tensor


def hmc_step(z: Tensor, log_density: LogDensity, step_size: Tensor | float, n_leapfrog: int = 10,
             current: tuple[Tensor, Tensor] | None = None, generator: torch.Generator | None = None,
             grad_fn: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None) -> HMCResult:
    r"""One HMC transition (identity mass matrix) per chain, leaving ``f`` invariant.

    .. math::
        p \sim \mathcal N(0, I),\quad
        (z', p') = \text{Leapfrog}_{\epsilon, L}(z, p),\quad
        \text{accept w.p.}\ \min\{1, \exp(H(z,p) - H(z',p'))\},\quad
        H(z,p) = -\log f(z) + \tfrac12\lVert p\rVert^2

    (Neal 2011, "MCMC using Hamiltonian dynamics", arXiv:1206.1901). Leapfrog: half momentum step,
    ``L`` alternating full position/momentum steps, final half momentum step; this is volume preserving
    and reversible, so the Metropolis test makes the kernel exactly ``f``-invariant for any ``ε`` that
    does not depend on the current proposal.

    Args:
        z: ``(*batch, D)`` current states, one chain per row.
        log_density: ``(*batch, D) -> (*batch)`` unnormalised target, differentiable in ``z``.
        step_size: scalar or ``(*batch)`` per-chain leapfrog step sizes ``ε`` (> 0).
        n_leapfrog: number of leapfrog steps ``L`` (>= 1).
        current: optional ``(log f(z), ∇log f(z))`` already known at ``z`` (saves one gradient).
        generator: RNG for the momenta and the accept test (global RNG if None).
        grad_fn: optional ``z -> (log f(z), ∇log f(z))`` used instead of autograd on ``log_density`` (AIS
            uses it to keep the likelihood term of the last leapfrog point). The last call is always at the
            proposal.

    Returns:
        :class:`HMCResult`. Cost: ``L`` (or ``L + 1`` without ``current``) forward+backward passes.
    """
    if n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be >= 1, got {n_leapfrog}")
    if z.dim() < 1:
        raise ValueError("z must have shape (*batch, D)")
    eps = torch.as_tensor(step_size, dtype=z.dtype, device=z.device)
    if bool((eps <= 0).any()):
        raise ValueError("step_size must be positive")
    eps = eps.expand(z.shape[:-1]).unsqueeze(-1)  # (*batch, 1) so it scales every coordinate of a chain
    vg = grad_fn if grad_fn is not None else (lambda zz: value_and_grad(log_density, zz))
    lp0, g0 = current if current is not None else vg(z)

    p0 = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    p = p0 + 0.5 * eps * g0
    zn = z
    for i in range(n_leapfrog):
        zn = zn + eps * p
        lp, g = vg(zn)
        if i < n_leapfrog - 1:
            p = p + eps * g
    p = p + 0.5 * eps * g

    h0 = -lp0 + 0.5 * p0.pow(2).sum(-1)
    h1 = -lp + 0.5 * p.pow(2).sum(-1)
    log_acc = (h0 - h1).clamp(max=0.0)
    # A diverged trajectory (inf/nan energy) is a rejection, never a move to a non-finite state.
    log_acc = torch.where(torch.isfinite(log_acc), log_acc, torch.full_like(log_acc, -math.inf))
    u = torch.rand(log_acc.shape, generator=generator, dtype=z.dtype, device=z.device)
    accepted = torch.log(u) < log_acc
    a = accepted.unsqueeze(-1)
    return HMCResult(z=torch.where(a, zn, z), log_density=torch.where(accepted, lp, lp0),
                     grad=torch.where(a, g, g0), accepted=accepted, accept_prob=log_acc.exp())


@dataclass
class StepSizeAdapter:
    r"""Per-chain multiplicative step-size adaptation toward a target acceptance rate.

    After each transition, with :math:`\bar a \leftarrow s\,\bar a + (1-s)\,a_t` the chain's running
    acceptance (``a_t`` ∈ {0, 1}),

    .. math:: \epsilon \leftarrow \mathrm{clip}\big(\epsilon\cdot(\text{inc if } \bar a > a^* \text{ else dec}),
              \epsilon_{\min}, \epsilon_{\max}\big)

    with Wu et al.'s constants (a* = 0.65, inc = 1.02, dec = 0.98, ε ∈ [1e-4, 0.5], ε₀ = 0.01, slowness
    s = 0.9; Wu, Burda, Salakhutdinov & Grosse 2017, arXiv:1611.04273, code ``sampling/samplers.py``).
    ε depends only on the chain's past, so each transition stays exactly invariant for its target.
    """

    target: float = 0.65
    inc: float = 1.02
    dec: float = 0.98
    min_step: float = 1e-4
    max_step: float = 0.5
    init_step: float = 0.01
    slowness: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"target acceptance must be in (0, 1), got {self.target}")
        if not 0.0 < self.min_step <= self.init_step <= self.max_step:
            raise ValueError("need 0 < min_step <= init_step <= max_step")
        if self.inc < 1.0 or not 0.0 < self.dec <= 1.0:
            raise ValueError("need inc >= 1 and 0 < dec <= 1")

    def init(self, batch_shape: torch.Size, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        """Initial ``(step_size, running_acceptance)``, both ``batch_shape``."""
        return (torch.full(batch_shape, self.init_step, dtype=dtype, device=device),
                torch.full(batch_shape, self.target, dtype=dtype, device=device))

    def update(self, step_size: Tensor, avg_accept: Tensor, accepted: Tensor) -> tuple[Tensor, Tensor]:
        """New ``(step_size, running_acceptance)`` after a transition with per-chain ``accepted``."""
        avg = self.slowness * avg_accept + (1.0 - self.slowness) * accepted.to(avg_accept.dtype)
        factor = torch.where(avg > self.target, torch.full_like(avg, self.inc), torch.full_like(avg, self.dec))
        return (step_size * factor).clamp(self.min_step, self.max_step), avg


def run_hmc(z: Tensor, log_density: LogDensity, n_steps: int, step_size: Tensor | float = 0.1,
            n_leapfrog: int = 10, adapt: StepSizeAdapter | None = None,
            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``n_steps`` HMC transitions on a fixed target (see :func:`hmc_step`).

    Args:
        z: ``(*batch, D)`` initial states. log_density, n_leapfrog, generator: as in :func:`hmc_step`.
        n_steps: number of transitions.
        step_size: initial per-chain (or scalar) step size.
        adapt: if given, step sizes adapt toward its target acceptance (use only for burn-in when the
            samples themselves must be exact for a fixed target: adaptation makes the chain non-Markov).

    Returns:
        ``(z, step_size, acceptance_rate)``: final states ``(*batch, D)``, final step sizes ``(*batch)``,
        and each chain's fraction of accepted proposals ``(*batch)``.
    """
    eps = torch.as_tensor(step_size, dtype=z.dtype, device=z.device).expand(z.shape[:-1]).clone()
    avg = torch.full(z.shape[:-1], adapt.target if adapt else 0.0, dtype=z.dtype, device=z.device)
    n_acc = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
    cur = value_and_grad(log_density, z)
    for _ in range(n_steps):
        r = hmc_step(z, log_density, eps, n_leapfrog, current=cur, generator=generator)
        z, cur = r.z, (r.log_density, r.grad)
        n_acc += r.accepted.to(z.dtype)
        if adapt is not None:
            eps, avg = adapt.update(eps, avg, r.accepted)
    return z, eps, n_acc / max(n_steps, 1)
