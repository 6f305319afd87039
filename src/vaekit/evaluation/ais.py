"""Annealed importance sampling (AIS) estimates of log p(x) with HMC transitions (Wu et al. 2017).

Only the model protocol is used: ``prior()`` (a distribution over ``z`` with event shape ``(D,)``) and
``log_likelihood(x, z)`` (``z`` ``(*S, B, D)`` -> ``(*S, B)``); or, with ``obs_scale``, ``decode(z).mean``
under a fixed-variance Gaussian observation model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from .hmc import StepSizeAdapter, hmc_step

LogLik = Callable[[Tensor, Tensor], Tensor]


def sigmoid_schedule(T: int, radius: float = 4.0) -> Tensor:
    r"""``T + 1`` inverse temperatures ``0 = β_0 < … < β_T = 1`` spaced as a rescaled sigmoid.

    .. math:: s_t = \sigma\big(r\,(2t/T - 1)\big),\qquad \beta_t = \frac{s_t - s_0}{s_T - s_0}

    with ``r = 4``: dense near both ends, where the log-weight increments are largest (Wu, Burda,
    Salakhutdinov & Grosse 2017, arXiv:1611.04273, code ``sigmoid_schedule``). Float64.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    t = torch.linspace(-radius, radius, T + 1, dtype=torch.float64)
    s = torch.sigmoid(t)
    b = (s - s[0]) / (s[-1] - s[0])
    b[0], b[-1] = 0.0, 1.0
    return b


def linear_schedule(T: int) -> Tensor:
    """``T + 1`` equally spaced inverse temperatures from 0 to 1, float64."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    return torch.linspace(0.0, 1.0, T + 1, dtype=torch.float64)


def make_schedule(schedule: str | Tensor, T: int) -> Tensor:
    """Resolve ``"sigmoid"``, ``"linear"`` or an explicit increasing tensor from 0 to 1 (length ``T + 1``)."""
    if isinstance(schedule, str):
        if schedule == "sigmoid":
            return sigmoid_schedule(T)
        if schedule == "linear":
            return linear_schedule(T)
        raise ValueError(f"schedule must be 'sigmoid', 'linear' or a tensor of betas, got {schedule!r}")
    b = torch.as_tensor(schedule, dtype=torch.float64).flatten()
    if b.numel() != T + 1:
        raise ValueError(f"an explicit schedule needs T + 1 = {T + 1} betas, got {b.numel()}")
    if float(b[0]) != 0.0 or float(b[-1]) != 1.0 or bool((b[1:] < b[:-1]).any()):
        raise ValueError("an explicit schedule must increase from exactly 0 to exactly 1")
    return b


def gaussian_log_likelihood(model: nn.Module, obs_scale: float) -> LogLik:
    r"""``log N(x; g(z), σ² I)`` with ``g(z) = model.decode(z).mean``: a fixed-variance Gaussian observation
    model put on any decoder (Wu et al. 2017 do this for GAN/GMMN generators, σ² tuned on validation)."""
    if obs_scale <= 0:
        raise ValueError(f"obs_scale must be > 0, got {obs_scale}")

    def loglik(x: Tensor, z: Tensor) -> Tensor:
        mean = model.decode(z).mean
        return Independent(Normal(mean, torch.full_like(mean, obs_scale), validate_args=False), 1).log_prob(x)

    return loglik


def log_mean_exp_with_se(log_w: Tensor) -> tuple[Tensor, Tensor]:
    r"""``log(1/C Σ_c w_c)`` over dim 0 and its delta-method standard error.

    .. math:: \widehat{\mathrm{se}}\big[\log \bar w\big] \approx \frac{\mathrm{sd}(w)}{\sqrt C\,\bar w}

    computed on ``w / max w`` so nothing overflows. ``log_w``: ``(C, B)``; returns two ``(B,)`` tensors
    (the s.e. is NaN when ``C = 1``).
    """
    c = log_w.shape[0]
    m = log_w.max(0).values
    w = torch.exp(log_w - m)
    mean = w.mean(0)
    est = m + torch.log(mean)
    se = w.std(0, unbiased=True) / (math.sqrt(c) * mean) if c > 1 else torch.full_like(est, math.nan)
    return est, se


@dataclass
class AISResult:
    """AIS output for a batch of ``B`` inputs and ``C`` chains each.

    Attributes:
        log_px: ``(B,)`` float64 estimate of log p(x): ``logmeanexp_c log w_c`` (forward; a stochastic lower
            bound) or ``-logmeanexp_c log w_c`` (reverse; a stochastic upper bound).
        stderr: ``(B,)`` delta-method standard error of ``log_px`` over chains.
        log_weights: ``(C, B)`` float64 log-weights (reverse: log-weights of the estimator of 1/p(x)).
        z: ``(C, B, D)`` final chain states (forward: approximate posterior samples).
        step_size: ``(C, B)`` final HMC step sizes.
        acceptance: mean HMC acceptance rate over all transitions and chains.
        seconds: wall time.
        settings: everything needed to reproduce the run.
    """

    log_px: Tensor
    stderr: Tensor
    log_weights: Tensor
    z: Tensor
    step_size: Tensor
    acceptance: float
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)


def _check_space(model: nn.Module) -> None:
    """Refuse, before any work, a model whose ``latent_space`` HMC cannot move in (it runs in R^D)."""
    space = getattr(model, "latent_space", None)
    if space is not None and space.geometry != "euclidean":
        what = ", ".join(p.geometry for p in space.parts) if space.parts else repr(space.support)
        raise NotImplementedError(
            f"ais: HMC moves z in R^D, but this {type(model).__name__}'s latent space is {space.geometry} ({what})"
            + (f"; {space.note}" if space.note else "") + ". AIS supports latent families on R^D (gaussian, "
            "full_cov_gaussian, mixture, iaf); use iwae:K for this model")


def ais(model: nn.Module, x: Tensor, n_chains: int = 16, T: int = 1000, schedule: str | Tensor = "sigmoid",
        leapfrog_steps: int = 10, seed: int = 0, reverse: bool = False, init_z: Tensor | None = None,
        obs_scale: float | None = None, adapt: StepSizeAdapter | None = None) -> AISResult:
    r"""Annealed importance sampling estimate of log p(x) for every row of ``x``, all chains batched.

    Geometric path from the prior to the posterior, with ``β_0 = 0 < … < β_T = 1``:

    .. math::
        f_t(z) = p(z)\,p(x|z)^{\beta_t},\qquad
        \log w = \sum_{t=1}^{T} (\beta_t - \beta_{t-1}) \log p(x|z_{t-1}),\qquad
        z_0 \sim p(z),\ z_t \sim K_t(\cdot|z_{t-1})

    where ``K_t`` is HMC leaving ``f_t`` invariant. ``E[w] = p(x)``, so ``log mean_c w_c`` is a stochastic
    lower bound (Neal 2001, "Annealed importance sampling", arXiv:physics/9803008). ``reverse=True`` runs the
    same chain backwards (``β`` from 1 to 0) from an exact posterior sample ``init_z``; then ``E[w] = 1/p(x)``
    and ``-log mean_c w_c`` is a stochastic upper bound (Grosse, Ghahramani & Adams 2015, arXiv:1511.02543).
    HMC uses ``leapfrog_steps`` leapfrog steps with per-chain step sizes adapted multiplicatively toward
    0.65 acceptance (Wu, Burda, Salakhutdinov & Grosse 2017, arXiv:1611.04273).

    Args:
        model: speaks ``prior()`` and ``log_likelihood(x, z)`` (or ``decode`` when ``obs_scale`` is set).
        x: ``(B, data_dim)`` inputs.
        n_chains: chains ``C`` per input (>= 1; the s.e. needs >= 2).
        T: number of intermediate distributions (= HMC transitions).
        schedule: ``"sigmoid"`` (default, as Wu et al.), ``"linear"``, or ``T + 1`` explicit betas.
        leapfrog_steps: leapfrog steps per HMC transition.
        seed: seeds every random draw; the global RNG state is restored afterwards.
        reverse: run reverse AIS from ``init_z`` (upper bound) instead of forward AIS from the prior.
        init_z: ``(B, D)`` or ``(C, B, D)`` exact posterior samples; required iff ``reverse``.
        obs_scale: if set, score ``x`` under ``N(decode(z).mean, obs_scale² I)`` instead of the model's
            own likelihood (for decoders without a likelihood, e.g. GAN generators).
        adapt: step-size adaptation constants (default :class:`StepSizeAdapter`, Wu et al.'s).

    Returns:
        :class:`AISResult`.

    Raises:
        NotImplementedError: the model's ``latent_space`` is not ``R^D`` (a sphere, a simplex, a stacked
            latent): HMC would leave the support, so AIS refuses before running instead of returning wrong values.
        ValueError: bad ``n_chains``, ``leapfrog_steps``, ``x`` shape, or ``init_z``.

    Notes:
        Cost: ``T·L + 1`` batched forward+backward decoder passes on ``C·B`` latent points (the prior and
        likelihood terms of the accepted point are kept apart and reused at the next temperature).
        Log-weights accumulate in float64.
    """
    if n_chains < 1:
        raise ValueError(f"n_chains must be >= 1, got {n_chains}")
    if leapfrog_steps < 1:
        raise ValueError(f"leapfrog_steps must be >= 1, got {leapfrog_steps}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (B, data_dim), got {tuple(x.shape)}")
    if reverse and init_z is None:
        raise ValueError("reverse AIS needs init_z, an exact posterior sample (e.g. the z that simulated x)")
    if not reverse and init_z is not None:
        raise ValueError("forward AIS starts from the prior; init_z is only for reverse=True")
    _check_space(model)
    betas = make_schedule(schedule, T)
    if reverse:
        betas = betas.flip(0)
    adapt = adapt or StepSizeAdapter()
    loglik: LogLik = gaussian_log_likelihood(model, obs_scale) if obs_scale is not None else model.log_likelihood
    if hasattr(model, "validate_input") and obs_scale is None:
        model.validate_input(x)

    t0 = time.perf_counter()
    was_training = model.training
    grad_flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():  # only dz is needed: skip parameter-gradient bookkeeping
        p.requires_grad_(False)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            prior = model.prior()
            b = x.shape[0]
            if reverse:
                assert init_z is not None
                if init_z.dim() == 2:
                    init_z = init_z.unsqueeze(0).expand(n_chains, *init_z.shape)
                if init_z.dim() != 3 or init_z.shape[:2] != (n_chains, b):
                    raise ValueError(f"init_z must be (B, D) or (n_chains, B, D) = ({n_chains}, {b}, D), "
                                     f"got {tuple(init_z.shape)}")
                z = init_z.detach().to(x.dtype).clone()
            else:
                z = prior.sample((n_chains, b)).to(x.dtype)  # (C, B, D)
            eps, avg = adapt.init(z.shape[:-1], z.dtype, z.device)
            log_w = torch.zeros(z.shape[:-1], dtype=torch.float64, device=z.device)
            n_acc = torch.zeros((), dtype=torch.float64)

            def parts(zz: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
                with torch.enable_grad():
                    zz = zz.detach().requires_grad_(True)
                    lp = prior.log_prob(zz)
                    ll = loglik(x, zz)
                    (gl,) = torch.autograd.grad(ll.sum(), zz)
                    (gp,) = torch.autograd.grad(lp.sum(), zz)
                return lp.detach(), gp, ll.detach(), gl

            lp, gp, ll, gl = parts(z)
            for t in range(1, T + 1):
                log_w += (betas[t] - betas[t - 1]) * ll.double()
                beta = float(betas[t])
                last: dict[str, tuple[Tensor, ...]] = {}

                def grad_fn(zz: Tensor, beta: float = beta, last: dict = last) -> tuple[Tensor, Tensor]:
                    # Keep prior and likelihood parts of the latest point apart: the next temperature
                    # reuses them, so no extra decoder pass per transition is needed.
                    last["parts"] = parts(zz)
                    p_, gp_, l_, gl_ = last["parts"]
                    return p_ + beta * l_, gp_ + beta * gl_

                def target(zz: Tensor, beta: float = beta) -> Tensor:
                    return prior.log_prob(zz) + beta * loglik(x, zz)

                r = hmc_step(z, target, eps, leapfrog_steps, current=(lp + beta * ll, gp + beta * gl),
                             grad_fn=grad_fn)
                acc = r.accepted
                lp, gp, ll, gl = (torch.where(acc.view(acc.shape + (1,) * (new.dim() - acc.dim())), new, old)
                                  for new, old in zip(last["parts"], (lp, gp, ll, gl)))
                z = r.z
                eps, avg = adapt.update(eps, avg, acc)
                n_acc += acc.double().mean()
            est, se = log_mean_exp_with_se(log_w)
            if reverse:
                est = -est
    finally:
        for p, flag in zip(model.parameters(), grad_flags):
            p.requires_grad_(flag)
        model.train(was_training)
    settings = {"n_chains": n_chains, "T": T, "schedule": schedule if isinstance(schedule, str) else "explicit",
                "leapfrog_steps": leapfrog_steps, "seed": seed, "reverse": reverse, "obs_scale": obs_scale,
                "target_acceptance": adapt.target, "init_step": adapt.init_step}
    return AISResult(log_px=est, stderr=se, log_weights=log_w, z=z.detach(), step_size=eps,
                     acceptance=float(n_acc) / T, seconds=time.perf_counter() - t0, settings=settings)
