"""Annealed importance sampling (AIS) estimates of log p(x) with HMC transitions (Wu et al. 2017).

Only the model protocol is used: ``prior()``, ``log_likelihood(x, z)`` (``z`` ``(*S, B, D)`` -> ``(*S, B)``,
or a tuple of such tensors for a stacked model; with ``obs_scale``, ``decode(z).mean`` under a
fixed-variance Gaussian observation model) and ``latent_space``, which says where ``z`` lives. HMC moves
an unconstrained point mapped onto that space (:class:`LatentChart`; a bijection with its log-det-Jacobian,
or an auxiliary radius on spheres); exact one-hot codes are moved by Gibbs sweeps. So AIS and BDMC run
on every registered latent family and on stacked models.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

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
        z: ``(C, B, D)`` final chain states (forward: approximate posterior samples); a tuple of such
            tensors for a stacked model.
        step_size: ``(C, B)`` final HMC step sizes.
        acceptance: mean HMC acceptance rate over all transitions and chains (NaN when the latent is
            entirely discrete: Gibbs sweeps only).
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


class LatentChart:
    r"""The state AIS moves: an unconstrained point ``u`` in ``R^U`` for the continuous parts of a model's latent
    and exact one-hot codes for its discrete parts, mapped to the model's ``z`` (a tensor, or the tuple
    ``(z_1, ..., z_L)`` of a stacked model) through each part's
    :meth:`~vaekit.latents.LatentSpace.from_unconstrained`.

    The prior term AIS anneals is ``log p(z(u, d)) + Σ c(u)``, a normalised density on ``(u, d)`` whose
    image is the prior (see :mod:`vaekit.latents.space`), so AIS in ``(u, d)`` estimates the same ``p(x)``.

    Raises:
        NotImplementedError: a part with no chart (a constrained support torch has no bijection for),
            naming the part and why.
    """

    def __init__(self, model: nn.Module) -> None:
        space = getattr(model, "latent_space", None)
        if space is None:
            raise NotImplementedError(f"ais: {type(model).__name__} has no latent_space; AIS needs the protocol's "
                                      "description of where z lives (vaekit.models.LatentVariableModel)")
        self.product = space.geometry == "product"
        self.parts = space.parts if self.product else (space,)
        for i, part in enumerate(self.parts):
            if part.geometry == "discrete":
                continue
            try:
                part.unconstrained_dim
            except ValueError as e:
                where = f"layer {i + 1} of this {type(model).__name__}" if self.product else type(model).__name__
                raise NotImplementedError(f"ais: the latent of {where} lives in a {part.geometry} space "
                                          f"({part.support!r}) with no chart to R^U: {part.note or e}") from None
        self.sizes = [0 if p.geometry == "discrete" else p.unconstrained_dim for p in self.parts]
        self.discrete = [i for i, p in enumerate(self.parts) if p.geometry == "discrete"]
        self.u_dim = sum(self.sizes)

    def split(self, z: Tensor | Sequence[Tensor]) -> list[Tensor]:
        return list(z) if self.product else [z]

    def join(self, zs: list[Tensor]) -> Tensor | tuple[Tensor, ...]:
        return tuple(zs) if self.product else zs[0]

    def encode(self, z: Tensor | Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """``z`` -> ``(u, codes)``: ``u`` ``(*batch, U)`` (fresh auxiliary radii on spheres) and the discrete parts."""
        zs = self.split(z)
        us = [p.to_unconstrained(zi) for p, zi in zip(self.parts, zs) if p.geometry != "discrete"]
        batch = zs[0].shape[:-1]
        u = torch.cat(us, -1) if us else zs[0].new_zeros(*batch, 0)
        return u, [zs[i] for i in self.discrete]

    def decode(self, u: Tensor, codes: list[Tensor]) -> tuple[Tensor | tuple[Tensor, ...], Tensor]:
        """``(u, codes)`` -> ``(z, c)`` with ``c`` ``(*batch)`` the summed log-density corrections."""
        zs, c, k, j = [], u.new_zeros(u.shape[:-1]), 0, 0
        for p, size in zip(self.parts, self.sizes):
            if p.geometry == "discrete":
                code = codes[j]
                zs.append(code.expand(*u.shape[:-1], code.shape[-1]))
                j += 1
            else:
                zi, ci = p.from_unconstrained(u[..., k:k + size])
                zs.append(zi)
                c = c + ci
                k += size
        return self.join(zs), c


def sum_terms(lp_ll: tuple[Tensor, Tensor], beta: float) -> Tensor:
    """``log p(z) + c + β log p(x|z)``: the annealed log target from :meth:`LatentChart`'s two terms."""
    return lp_ll[0] + beta * lp_ll[1]


def _grad(out: Tensor, inp: Tensor, retain_graph: bool = False) -> Tensor:
    """``d out.sum() / d inp``, zeros where ``out`` does not depend on ``inp`` (e.g. a uniform prior's constant)."""
    if not out.requires_grad:
        return torch.zeros_like(inp)
    (g,) = torch.autograd.grad(out.sum(), inp, allow_unused=True, materialize_grads=True, retain_graph=retain_graph)
    return g


def _gibbs_sweep(chart: LatentChart, part: int, u: Tensor, codes: list[Tensor],
                 log_f: Callable[[Tensor, list[Tensor]], Tensor]) -> list[Tensor]:
    """Resample every group of discrete part ``chart.discrete[part]`` from its exact conditional under ``f``
    (all ``n`` classes scored in one batched call per group): a Gibbs kernel, invariant for ``f``."""
    space = chart.parts[chart.discrete[part]]
    n, g = space.n_categories, space.groups
    eye = torch.eye(n, dtype=u.dtype, device=u.device)
    for grp in range(g):
        cur = codes[part].unflatten(-1, (g, n))  # (*batch, G, n)
        cand = cur.unsqueeze(0).expand(n, *cur.shape).clone()  # (n, *batch, G, n)
        cand[..., grp, :] = eye.view(n, *([1] * (cur.dim() - 2)), n)
        trial = list(codes)
        trial[part] = cand.flatten(-2)
        scores = log_f(u.unsqueeze(0).expand(n, *u.shape), trial)  # (n, *batch)
        scores = torch.where(torch.isnan(scores), torch.full_like(scores, -math.inf), scores)
        pick = torch.distributions.Categorical(logits=scores.movedim(0, -1)).sample()  # (*batch,)
        new = cur.clone()
        new[..., grp, :] = eye[pick]
        codes = list(codes)
        codes[part] = new.flatten(-2)
    return codes


def ais(model: nn.Module, x: Tensor, n_chains: int = 16, T: int = 1000, schedule: str | Tensor = "sigmoid",
        leapfrog_steps: int = 10, seed: int = 0, reverse: bool = False, init_z: Tensor | None = None,
        obs_scale: float | None = None, adapt: StepSizeAdapter | None = None,
        progress: Callable[[int, int], None] | None = None, cond: dict[str, Any] | None = None) -> AISResult:
    r"""Annealed importance sampling estimate of log p(x) for every row of ``x``, all chains batched.

    Geometric path from the prior to the posterior, with ``β_0 = 0 < … < β_T = 1``:

    .. math::
        f_t(z) = p(z)\,p(x|z)^{\beta_t},\qquad
        \log w = \sum_{t=1}^{T} (\beta_t - \beta_{t-1}) \log p(x|z_{t-1}),\qquad
        z_0 \sim p(z),\ z_t \sim K_t(\cdot|z_{t-1})

    where ``K_t`` leaves ``f_t`` invariant. ``K_t`` is HMC on an unconstrained ``u`` with ``z = z(u)``
    (:class:`LatentChart`: ``R^D`` as is; a support with a bijection ``T`` through ``T`` and
    ``log|det dT/du|``, e.g. torch's stick-breaking map for the relaxed categorical's simplices; the
    sphere through an auxiliary radius ``u = r z``, ``r ~ chi_D``, Neal 2011 arXiv:1206.1901 §5.2),
    preceded for exact one-hot (straight-through) codes by a Gibbs sweep that draws each group from its
    exact conditional over the ``n`` classes. ``E[w] = p(x)``, so ``log mean_c w_c`` is a stochastic
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
        init_z: ``(B, D)`` or ``(C, B, D)`` exact posterior samples (a tuple of them for a stacked model);
            required iff ``reverse``.
        obs_scale: if set, score ``x`` under ``N(decode(z).mean, obs_scale² I)`` instead of the model's
            own likelihood (for decoders without a likelihood, e.g. GAN generators).
        adapt: step-size adaptation constants (default :class:`StepSizeAdapter`, Wu et al.'s).
        progress: called as ``progress(t, T)`` once transition ``t`` (1..T) is done (progress bars, cost
            estimates); it must not touch the RNG.
        cond: a conditional model's keyword arguments for the rows of ``x`` (``{"label": y}``, or ``mask`` and
            ``observed``): the path then runs from ``p(z|c)`` to ``p(z|x, c)`` and the estimate is of
            ``log p(x|c)`` (of the hidden pixels given the observed ones for a mask condition). A prior with batch
            shape ``(B,)`` (a learned conditional prior) is sampled once per chain and row.

    Returns:
        :class:`AISResult`.

    Raises:
        NotImplementedError: the model has no ``latent_space``, or a part of it has no chart to ``R^U`` (a
            constrained support torch has no bijection for): refused before running, naming the part.
        ValueError: bad ``n_chains``, ``leapfrog_steps``, ``x`` shape, or ``init_z``; ``obs_scale`` with ``cond``.

    Notes:
        Cost: ``T·L + 1`` batched forward+backward decoder passes on ``C·B`` latent points, plus ``T·G·n``
        forward passes for ``G`` discrete groups of ``n`` classes (the prior and
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
    chart = LatentChart(model)  # refuses a latent with no chart before any work
    betas = make_schedule(schedule, T)
    if reverse:
        betas = betas.flip(0)
    adapt = adapt or StepSizeAdapter()
    cond = cond or {}
    if cond and obs_scale is not None:
        raise ValueError("obs_scale scores decode(z).mean without the model's likelihood; it takes no condition")
    loglik: LogLik = (gaussian_log_likelihood(model, obs_scale) if obs_scale is not None else
                      (lambda xx, zz: model.log_likelihood(xx, zz, **cond)) if cond else model.log_likelihood)
    if hasattr(model, "validate_input") and obs_scale is None:
        model.validate_input(x)

    t0 = time.perf_counter()
    was_training = model.training
    grad_flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():  # only du is needed: skip parameter-gradient bookkeeping
        p.requires_grad_(False)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            prior = model.prior(**cond) if cond else model.prior()
            b = x.shape[0]
            per_row = bool(cond) and tuple(prior.batch_shape) == (b,)  # p(z|c) from a prior network: (B,) already
            if reverse:
                assert init_z is not None
                init = []
                for zi in chart.split(init_z):
                    if zi.dim() == 2:
                        zi = zi.unsqueeze(0).expand(n_chains, *zi.shape)
                    if zi.dim() != 3 or zi.shape[:2] != (n_chains, b):
                        raise ValueError(f"init_z must be (B, D) or (n_chains, B, D) = ({n_chains}, {b}, D) "
                                         f"(per layer for a stacked model), got {tuple(zi.shape)}")
                    init.append(zi.detach().to(x.dtype))
                z0 = chart.join(init)
            else:
                z0 = prior.sample((n_chains,) if per_row else (n_chains, b))
                z0 = chart.join([zi.to(x.dtype) for zi in chart.split(z0)])
            u, codes = chart.encode(z0)  # (C, B, U) and the one-hot parts
            u = u.detach().to(x.dtype)
            use_hmc = chart.u_dim > 0
            eps, avg = adapt.init(u.shape[:-1], u.dtype, u.device)
            log_w = torch.zeros(u.shape[:-1], dtype=torch.float64, device=u.device)
            n_acc = torch.zeros((), dtype=torch.float64)

            def terms(uu: Tensor, cc: list[Tensor]) -> tuple[Tensor, Tensor]:
                zz, corr = chart.decode(uu, cc)
                return prior.log_prob(zz) + corr, loglik(x, zz)

            def parts(uu: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
                if not use_hmc:
                    with torch.no_grad():
                        lp, ll = terms(uu, codes)
                    return lp, torch.zeros_like(uu), ll, torch.zeros_like(uu)
                with torch.enable_grad():
                    uu = uu.detach().requires_grad_(True)
                    lp, ll = terms(uu, codes)
                    gl, gp = _grad(ll, uu, retain_graph=True), _grad(lp, uu)  # the chart's z(u) is shared
                return lp.detach(), gp, ll.detach(), gl

            lp, gp, ll, gl = parts(u)
            for t in range(1, T + 1):
                if progress is not None and t > 1:
                    progress(t - 1, T)  # here rather than at the end: the loop body ends in two places
                log_w += (betas[t] - betas[t - 1]) * ll.double()
                beta = float(betas[t])
                if chart.discrete:
                    with torch.no_grad():
                        for j in range(len(chart.discrete)):
                            codes = _gibbs_sweep(chart, j, u, codes,
                                                 lambda uu, cc, beta=beta: sum_terms(terms(uu, cc), beta))
                    lp, gp, ll, gl = parts(u)
                if not use_hmc:
                    continue
                last: dict[str, tuple[Tensor, ...]] = {}

                def grad_fn(uu: Tensor, beta: float = beta, last: dict = last) -> tuple[Tensor, Tensor]:
                    # Keep prior and likelihood parts of the latest point apart: the next temperature
                    # reuses them, so no extra decoder pass per transition is needed.
                    last["parts"] = parts(uu)
                    p_, gp_, l_, gl_ = last["parts"]
                    return p_ + beta * l_, gp_ + beta * gl_

                r = hmc_step(u, lambda uu: sum_terms(terms(uu, codes), beta), eps, leapfrog_steps,
                             current=(lp + beta * ll, gp + beta * gl), grad_fn=grad_fn)
                acc = r.accepted
                lp, gp, ll, gl = (torch.where(acc.view(acc.shape + (1,) * (new.dim() - acc.dim())), new, old)
                                  for new, old in zip(last["parts"], (lp, gp, ll, gl)))
                u = r.z
                eps, avg = adapt.update(eps, avg, acc)
                n_acc += acc.double().mean()
            if progress is not None:
                progress(T, T)
            est, se = log_mean_exp_with_se(log_w)
            if reverse:
                est = -est
            with torch.no_grad():
                z_final = chart.decode(u, codes)[0]
    finally:
        for p, flag in zip(model.parameters(), grad_flags):
            p.requires_grad_(flag)
        model.train(was_training)
    settings = {"n_chains": n_chains, "T": T, "schedule": schedule if isinstance(schedule, str) else "explicit",
                "leapfrog_steps": leapfrog_steps, "seed": seed, "reverse": reverse, "obs_scale": obs_scale,
                "target_acceptance": adapt.target, "init_step": adapt.init_step}
    return AISResult(log_px=est, stderr=se, log_weights=log_w, z=z_final, step_size=eps,
                     acceptance=float(n_acc) / T if use_hmc else math.nan, seconds=time.perf_counter() - t0,
                     settings=settings)
