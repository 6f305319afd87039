"""Evidence lower bounds and the schedules/regularisers around them.

Each function takes tensors from a :class:`~vaekit.models.VAEOutput` (or a model's ``log_weights``) and
returns a per-example value of shape ``(B,)`` in nats (higher is better) or a scalar loss; none of them
hides a gradient surrogate behind a bound's name.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def elbo(log_likelihood: Tensor, kl: Tensor) -> Tensor:
    r"""Per-example ELBO in nats, ``(B,)``.

    .. math:: \mathcal L(x) = \frac1k\sum_{i=1}^k \log p(x|z_i) - \mathrm{KL}(q(z|x)\|p(z)),\quad z_i\sim q(z|x)

    (Kingma & Welling 2013, Eq. 7 — "SGVB estimator B"). ``log_likelihood`` is ``(k, B)``; ``kl`` is
    ``(B,)``, as every model's output carries it (analytic, or already averaged over the k samples).
    """
    return log_likelihood.mean(0) - kl


def beta_elbo(log_likelihood: Tensor, kl: Tensor, beta: float) -> Tensor:
    r"""``E_q[log p(x|z)] - beta * KL`` per example, ``(B,)`` (Higgins et al. 2017); shapes as :func:`elbo`.

    A lower bound on log p(x) only for ``beta >= 1``; used with ``beta < 1`` as the KL warm-up
    of Bowman et al. (2016) and Sønderby et al. (2016).

    Raises:
        ValueError: ``beta < 0``.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    return log_likelihood.mean(0) - beta * kl


def kl_warmup(step: int, warmup_steps: int, start: float = 0.0, shape: str = "linear") -> float:
    r"""KL weight at ``step``: from ``start`` to 1 over ``warmup_steps`` steps (Bowman et al. 2016; Sønderby et al. 2016).

    .. math::
        \beta_t = \begin{cases} \min(1,\ s + (1 - s)\, t / T) & \text{linear} \\
        s + (1 - s)\,\dfrac{\sigma(10 (t/T - 1/2)) - \sigma(-5)}{\sigma(5) - \sigma(-5)}\ (t < T),\ 1\ (t \ge T)
        & \text{sigmoid} \end{cases}

    The sigmoid is Bowman et al.'s shape (arXiv:1511.06349, Sec. 3.1: "KL cost annealing" on a sigmoid), rescaled
    so that it is exactly ``s`` at ``t = 0``, 1/2 of the way at ``t = T/2`` and exactly 1 from ``t = T`` on.
    ``warmup_steps = 0`` means no warm-up (``beta = 1`` from the first step).

    Raises:
        ValueError: ``warmup_steps < 0``, ``start`` outside [0, 1] or an unknown ``shape``.
    """
    if warmup_steps < 0 or not 0.0 <= start <= 1.0:
        raise ValueError(f"need warmup_steps >= 0 and 0 <= start <= 1, got {warmup_steps}, {start}")
    if shape not in ("linear", "sigmoid"):
        raise ValueError(f"KL warm-up shape must be 'linear' or 'sigmoid', got {shape!r}")
    if warmup_steps == 0 or step >= warmup_steps:
        return 1.0
    u = step / warmup_steps
    if shape == "sigmoid":
        sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
        u = (sig(10.0 * (u - 0.5)) - sig(-5.0)) / (sig(5.0) - sig(-5.0))
    return start + (1.0 - start) * u


def free_bits_kl(kl_per_dim: Tensor, lambda_: float) -> Tensor:
    r"""The free-bits KL penalty of Kingma et al. (2016, IAF paper, Eq. 15), a scalar.

    .. math:: \tilde{\mathcal K} = \sum_j \max\bigl(\lambda,\ \mathbb E_{x\in\text{batch}}[\mathrm{KL}_j(x)]\bigr)

    ``kl_per_dim`` is ``(B, D)``; each latent dimension gets ``lambda_`` nats free,
    averaged over the minibatch. The returned value is a training penalty, not a bound.
    """
    if lambda_ < 0:
        raise ValueError(f"free bits lambda must be >= 0, got {lambda_}")
    return torch.clamp(kl_per_dim.mean(0), min=lambda_).sum()


def iwae_from_log_weights(log_weights: Tensor) -> Tensor:
    r"""The importance-weighted bound of given log-weights, per example, ``(B,)`` nats (Burda et al. 2015, Eq. 8).

    .. math:: \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k w_i,\qquad w_i = \frac{p(x, z_i)}{q(z_i|x)}

    ``log_weights`` is ``(k, B)`` (a model's ``log_weights(x, k)``); ``L_1`` is the ELBO and
    ``L_k <= L_{k+1} <= log p(x)`` in expectation. For "model, x, k -> bound" in bounded memory see
    :func:`vaekit.evaluation.iwae_estimate`.
    """
    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[0])
