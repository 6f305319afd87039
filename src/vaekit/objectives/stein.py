r"""Training objectives of the Stein VAE (Pu et al. 2017, arXiv:1704.05155): amortised SVGD.

Registered in :data:`~vaekit.objectives.OBJECTIVES`:

* ``stein`` — the Stein VAE. For each example ``x`` the model's implicit encoder draws ``M`` particles
  ``z_j = f_η(x, ξ_j)`` (``model.particles(x)``, ``(M, B, D)``). One SVGD direction towards the posterior,

  .. math::
      \phi(z_j) = \frac1M \sum_l \big[k(z_l, z_j)\nabla_{z_l}\log p(x, z_l) + \nabla_{z_l}k(z_l, z_j)\big]

  (:func:`vaekit.inference.svgd_direction`), is pushed through the encoder with the surrogate
  ``-Σ_j φ(z_j)·z_j`` (``φ`` held constant), whose gradient in ``η`` is ``-Σ_j φ(z_j)ᵀ ∂z_j/∂η``: one step of
  ``η ← η + ε Σ_j (∂z_j/∂η)ᵀ φ(z_j)`` (Pu et al. 2017, the amortised encoder update). The decoder maximises
  ``(1/M) Σ_j log p(x|z_j)`` at the particles (held constant). Loss per example:
  ``-(1/M) Σ_j log p(x|z_j) - Σ_j φ(z_j)·z_j``; encoder and decoder parameters are disjoint, so each gets
  exactly its own term's gradient. The loss's *value* is not a bound on anything.

* ``stein_viwae`` — the importance-weighted variant. The encoder is trained as above. The decoder
  maximises an IWAE bound (Burda et al. 2015, Eq. 8) whose proposal is the diagonal Gaussian
  ``q̂(z|x) = N(mean_j z_j, var_j z_j)`` fitted to the (detached) particles:
  ``log (1/k) Σ_i p(x, z̃_i)/q̂(z̃_i|x)``, ``z̃_i ~ q̂``, a valid lower bound on ``log p(x)`` for any proposal.
  This is our construction: Pu et al.'s abstract says the encoder is "integrated with importance
  sampling" for Stein VIWAE, but the details of their weights were not verified here (PAPERS.md §14 marks
  them FROM MEMORY); see docs/results/stein_acn.md.

Both use only ``model.particles``, ``model.log_joint``, ``model.log_likelihood`` and ``model.bandwidth``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from ..inference.svgd import svgd_direction
from ..registry import PositiveInt
from .registry import OBJECTIVES


def _particles(model: nn.Module, x: Tensor, name: str) -> Tensor:
    if not callable(getattr(model, "particles", None)):
        raise ValueError(f"train.objective.type: {name!r} trains a model with an implicit particle encoder "
                         f"(model.type: stein_vae), got a {type(model).__name__}; use 'elbo' or 'iwae' for it")
    return model.particles(x)


def stein_step(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""One amortised SVGD step: ``(z, zc, phi, log_lik)``.

    ``z`` ``(M, B, D)`` the particles (differentiable in the encoder), ``zc`` the same values as a leaf,
    ``phi`` ``(M, B, D)`` the SVGD direction at them (constant), ``log_lik`` ``(M, B)`` ``log p(x|z_j)`` in nats,
    differentiable in the decoder only.
    """
    z = _particles(model, x, "stein")
    zc = z.detach().requires_grad_(True)
    with torch.enable_grad():
        log_lik = model.log_likelihood(x, zc)
        log_joint = log_lik + model.prior().log_prob(zc)
        (score,) = torch.autograd.grad(log_joint.sum(), zc, retain_graph=True)
    phi = svgd_direction(zc, score, model.bandwidth)
    return z, zc, phi, log_lik


@OBJECTIVES.register("stein")
class SteinObjective:
    r"""The Stein VAE's amortised SVGD objective (Pu et al. 2017; see the module docs for the equations).

    Logged: ``log_likelihood`` (mean over particles and batch of ``log p(x|z_j)``, nats), ``log_joint``
    (``log p(x, z_j)``), ``phi_norm`` (mean ``|φ(z_j)|``), ``particle_sd`` (mean over dimensions of the
    particles' standard deviation per example), ``loss``.
    """

    def __call__(self, model: nn.Module, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        z, zc, phi, log_lik = stein_step(model, x)
        encoder_term = -(phi * z).sum(-1).sum(0)  # (B,): gradient -sum_j phi_j dz_j/deta
        decoder_term = -log_lik.mean(0)  # (B,)
        loss = (encoder_term + decoder_term).mean()
        with torch.no_grad():
            metrics = _metrics(model, zc, phi, log_lik)
            metrics["loss"] = loss.detach()
        return loss, metrics


@OBJECTIVES.register("stein_viwae")
class SteinVIWAEObjective:
    r"""Stein VIWAE: the encoder as in ``stein``; the decoder maximises the ``k``-sample IWAE bound with the
    Gaussian ``q̂`` fitted to the particles as proposal (see the module docs).

    Args:
        k: importance samples from ``q̂`` per example (default 8, the Stein VAE's ``M``).

    Logged: as ``stein``, plus ``iwae_bound`` (the batch mean of that ``k``-sample bound: a lower bound on
    ``log p(x)``, nats) and ``ess`` (``1/Σ w̃_i^2``).
    """

    def __init__(self, k: PositiveInt = 8) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k

    def __call__(self, model: nn.Module, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        z, zc, phi, log_lik = stein_step(model, x)
        encoder_term = -(phi * z).sum(-1).sum(0)
        lw = fitted_gaussian_log_weights(model, x, zc.detach(), self.k)  # (k, B), differentiable in the decoder
        bound = torch.logsumexp(lw, 0) - math.log(self.k)
        loss = (encoder_term - bound).mean()
        with torch.no_grad():
            metrics = _metrics(model, zc, phi, log_lik)
            wn = torch.softmax(lw, 0)
            metrics.update(loss=loss.detach(), iwae_bound=bound.mean(), ess=(1.0 / (wn * wn).sum(0)).mean())
        return loss, metrics


def fitted_gaussian(particles: Tensor, min_scale: float = 1e-3) -> Independent:
    r"""The diagonal Gaussian moment-matched to each example's particles: ``N(mean_j z_j, diag var_j z_j)``.

    ``particles`` ``(M, B, D)`` -> a distribution with batch shape ``(B,)``, event ``(D,)``; the standard
    deviation (``M - 1`` denominator) is floored at ``min_scale``.
    """
    loc = particles.mean(0)
    scale = particles.std(0, unbiased=True).clamp_min(min_scale)
    return Independent(Normal(loc, scale), 1)


def fitted_gaussian_log_weights(model: nn.Module, x: Tensor, particles: Tensor, k: int) -> Tensor:
    r"""``(k, B)`` log-weights ``log p(x, z̃_i) - log q̂(z̃_i|x)``, ``z̃_i ~ q̂`` = :func:`fitted_gaussian` of
    the particles: ``logmeanexp`` over them is an IWAE bound on ``log p(x)`` (valid for any proposal)."""
    q = fitted_gaussian(particles.detach())
    zt = q.sample((k,))
    return model.log_joint(x, zt) - q.log_prob(zt)


def _metrics(model: nn.Module, zc: Tensor, phi: Tensor, log_lik: Tensor) -> dict[str, Tensor]:
    lj = log_lik + model.prior().log_prob(zc)
    return {"log_likelihood": log_lik.mean(), "log_joint": lj.mean(), "phi_norm": phi.norm(dim=-1).mean(),
            "particle_sd": zc.std(0).mean()}
