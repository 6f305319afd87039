"""Training objectives as small callables: ``objective(model, x, step) -> (loss, metrics)``.

``loss`` is the scalar to minimise; ``metrics`` holds detached per-batch means
whose names say what they are (``elbo`` is the ELBO, never a surrogate).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from ..latents.base import kl_by_dimension
from ..registry import Fraction, NonNegativeFloat, NonNegativeInt, PositiveInt, Registry, build
from .elbo import free_bits_kl, kl_warmup

OBJECTIVES: Registry = Registry("objective")


class Objective(Protocol):
    def __call__(self, model: nn.Module, x: Tensor, step: int, **cond: Any) -> tuple[Tensor, dict[str, Tensor | float]]: ...


@OBJECTIVES.register("elbo")
class ELBOObjective:
    r"""Maximise the (optionally warmed-up, free-bits) ELBO with ``k`` samples averaged.

    Args:
        k: posterior samples per example ("VAE with k samples" of Burda et al. 2015).
        beta: final KL weight (1 = the ELBO; != 1 = beta-VAE, Higgins et al. 2017).
        warmup_steps: KL warm-up from ``warmup_start`` to ``beta`` over this many steps (Bowman et al. 2016).
        warmup_shape: ``linear`` or ``sigmoid`` (Bowman et al.'s shape; :func:`vaekit.objectives.kl_warmup`).
        free_bits: per-dimension free nats ``lambda`` (Kingma et al. 2016), 0 = off.

    Logged: ``elbo`` (always the true ELBO of the batch), ``log_likelihood``, ``kl``, ``beta``, ``loss``.
    """

    def __init__(self, k: PositiveInt = 1, beta: NonNegativeFloat = 1.0, warmup_steps: NonNegativeInt = 0,
                 warmup_start: Fraction = 0.0, free_bits: NonNegativeFloat = 0.0,
                 warmup_shape: Literal["linear", "sigmoid"] = "linear") -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.beta, self.warmup_steps, self.warmup_start, self.free_bits = k, beta, warmup_steps, warmup_start, free_bits
        self.warmup_shape = warmup_shape
        kl_warmup(0, warmup_steps, warmup_start, warmup_shape)  # validates the schedule now, not at step 0
        if free_bits < 0 or beta < 0:
            raise ValueError(f"beta and free_bits must be >= 0, got {beta}, {free_bits}")

    def __call__(self, model: nn.Module, x: Tensor, step: int, **cond: Any) -> tuple[Tensor, dict[str, Tensor | float]]:
        out = model(x, k=self.k, **cond)
        beta = self.beta * kl_warmup(step, self.warmup_steps, self.warmup_start, self.warmup_shape)
        ll = out.log_likelihood.mean(0)  # (B,)
        if self.free_bits > 0:
            kl_dim = kl_by_dimension(out.posterior, out.prior)
            if kl_dim is None:
                raise ValueError("free_bits needs a latent family with an analytic per-dimension KL (a factorised "
                                 f"posterior); got {type(out.posterior).__name__}")
            loss = beta * free_bits_kl(kl_dim, self.free_bits) - ll.mean()
        else:
            loss = (beta * out.kl - ll).mean()  # -beta_elbo, from the one (B,) mean of log p(x|z)
        with torch.no_grad():
            # detached tensors, not floats: no device sync per step; the trainer reads them when it logs
            ll_mean, kl_mean = ll.mean(), out.kl.mean()
            metrics = {"loss": loss.detach(), "elbo": ll_mean - kl_mean, "log_likelihood": ll_mean, "kl": kl_mean,
                       "beta": beta}
        return loss, metrics


def build_objective(spec: dict[str, Any]) -> Objective:
    """Build ``OBJECTIVES[spec['type']]`` with the remaining keys, checked against its signature."""
    return build(OBJECTIVES, spec, "train.objective")
