"""Latent-space diagnostics: active units and per-dimension KL."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from ..latents.base import kl_by_dimension


@torch.no_grad()
def posterior_mean_variance(model: nn.Module, data: Tensor, batch_size: int = 500) -> Tensor:
    r"""``A_u = Cov_x(E_{q(u|x)}[u])`` per latent unit, ``(D,)`` (Burda et al. 2015, Sec. 5.2)."""
    means = torch.cat([model.encode(data[i:i + batch_size]) for i in range(0, data.shape[0], batch_size)])
    return means.double().var(0, unbiased=True)


@torch.no_grad()
def active_units(model: nn.Module, data: Tensor, threshold: float = 1e-2, batch_size: int = 500) -> int:
    r"""Number of active latent units: ``A_u > threshold`` with ``A_u`` the variance over data of the
    posterior mean (Burda et al. 2015 use ``threshold = 0.01`` on 500 training images)."""
    return int((posterior_mean_variance(model, data, batch_size) > threshold).sum())


@torch.no_grad()
def kl_per_dimension(model: nn.Module, data: Tensor, batch_size: int = 500) -> Tensor:
    r"""Average over data of the analytic ``KL(q(z_j|x) || p(z_j))`` per latent dimension, ``(D,)`` nats.

    Raises:
        NotImplementedError: the posterior does not factorise over dimensions with a registered base KL.
    """
    total = None
    n = 0
    prior = model.prior()
    for i in range(0, data.shape[0], batch_size):
        q = model.posterior(data[i:i + batch_size])
        kl = kl_by_dimension(q, prior)
        if kl is None:
            raise NotImplementedError(
                f"per-dimension KL needs a factorised posterior with an analytic KL; got {type(q).__name__}")
        total = kl.double().sum(0) if total is None else total + kl.double().sum(0)
        n += q.batch_shape[0]
    return total / n
