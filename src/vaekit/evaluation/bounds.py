"""Model-agnostic likelihood bounds: ELBO, the IWAE-k bound, and their data-set averages.

Everything here needs only the protocol: ``log_weights(x, k, chunk_size=...) -> (k, B)`` and ``forward``
(for the ELBO with the model's KL), never a concrete model class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


def _check_data(model: nn.Module, x: Tensor) -> None:
    # A likelihood scores values outside its support without complaint (a Bernoulli model gives a finite number
    # for x = 3), so these entry points refuse such data as the trainer and `vaekit eval` do, with their message.
    if hasattr(model, "validate_input"):
        model.validate_input(x)


@torch.no_grad()
def iwae_estimate(model: nn.Module, x: Tensor, k: int, chunk_size: int | None = None, **cond: Any) -> Tensor:
    r"""Per-example IWAE bound ``L_k(x)`` on ``log p(x)``, ``(B,)`` float64 nats (Burda et al. 2015, Eq. 8).

    .. math:: \mathcal L_k(x) = \log\frac1k\sum_{i=1}^k \frac{p(x,z_i)}{q(z_i|x)},\quad z_i \sim q(z|x)

    "Model, x, k -> bound": the model's ``log_weights(x, k, chunk_size=...)`` bounds memory for any ``k``
    (``chunk_size`` samples per example at a time; default: the model's ``chunk_elements`` budget) and the
    log-sum-exp is taken in float64. For "log-weights -> bound" see
    :func:`vaekit.objectives.iwae_from_log_weights`. ``-iwae_estimate`` is the usual test NLL. A conditional
    model's condition (``label=...``, ``mask=..., observed=...``) passes through: the bound is then on
    ``log p(x | c)`` (for a mask condition, on the hidden pixels given the observed ones).

    Raises:
        ValueError: ``k`` or ``chunk_size`` is not a positive int; or the model cannot score ``x`` (its
            ``validate_input``: values outside ``[0, 1]`` for a Bernoulli likelihood, NaN, the wrong width).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check_data(model, x)
    lw = model.log_weights(x, k, chunk_size=chunk_size, **cond).double()  # (k, B)
    return torch.logsumexp(lw, 0) - math.log(k)


@torch.no_grad()
def elbo_estimate(model: nn.Module, x: Tensor, k: int = 1, **cond: Any) -> Tensor:
    r"""Per-example ELBO ``E_q[log p(x|z)] - KL(q||p)`` with ``k`` samples, ``(B,)`` float64 nats.

    The KL is the model output's: analytic where the latent family registers one, else the Monte Carlo
    average over the same ``k`` samples (Kingma & Welling 2013, arXiv:1312.6114, Eq. 7).

    Raises:
        ValueError: the model cannot score ``x`` (as :func:`iwae_estimate`).
    """
    _check_data(model, x)
    out = model(x, k=k, **cond)
    return (out.log_likelihood.mean(0) - out.kl).double()


@dataclass
class DatasetBound:
    """Mean of a per-example bound over a data set, with its standard error over examples."""

    mean: float
    stderr: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "stderr": self.stderr, "n": self.n}


@torch.no_grad()
def evaluate_bound(fn, model: nn.Module, data: Tensor, batch_size: int = 100, **kwargs) -> DatasetBound:
    """Apply a per-example bound ``fn(model, x, **kwargs)`` over ``data`` in batches; mean and s.e. over examples.

    Raises:
        ValueError: ``batch_size < 1``; and what ``fn`` raises (data the model cannot score, for the bounds here).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        vals = torch.cat([fn(model, data[i:i + batch_size], **kwargs).cpu()
                          for i in range(0, data.shape[0], batch_size)])
    finally:
        model.train(was_training)
    n = vals.numel()
    se = float(vals.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return DatasetBound(float(vals.mean()), se, n)
