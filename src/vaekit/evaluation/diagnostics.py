"""Latent-space diagnostics: active units, per-dimension KL, the mutual information I(x; z)."""

from __future__ import annotations

import math

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


@torch.no_grad()
def mutual_information(model: nn.Module, data: Tensor, batch_size: int = 500, **cond) -> dict[str, float]:
    r"""The mutual information :math:`I_q(x; z)` of the encoder's joint :math:`q(x, z) = \hat p(x) q(z|x)`, by
    Hoffman & Johnson's (2016, "ELBO surgery", NIPS AABI workshop) decomposition of the average KL:

    .. math::
        \underbrace{\frac1M\sum_n \mathrm{KL}(q(z|x_n)\,\|\,p(z))}_{\text{mean\_kl}}
        = \underbrace{\mathbb E_{q(x,z)}\Bigl[\log\frac{q(z|x)}{q(z)}\Bigr]}_{I_q(x;z)}
        + \underbrace{\mathrm{KL}(q(z)\,\|\,p(z))}_{\text{marginal\_kl}},\qquad
        q(z) = \frac1M\sum_{m=1}^M q(z|x_m)

    with :math:`\hat p` the empirical distribution of the ``M`` rows of ``data``. One draw
    :math:`z_n \sim q(z|x_n)` per row; :math:`\log q(z_n)` is the exact log-mean-exp over all ``M`` posteriors
    (``M^2`` density evaluations, in blocks of ``batch_size``). Because :math:`\hat p` has ``M`` atoms,
    :math:`0 \le I_q \le \log M`: compare estimates at the same ``M`` only. In nats.

    Args:
        model: speaks the protocol: ``posterior(x, **cond)`` (a distribution whose ``log_prob`` broadcasts a
            ``(M, 1, D)`` latent against its batch ``(B,)``) and ``prior(**cond)``.
        data: ``(M, data_dim)``, ``M >= 2``.

    Returns:
        ``{"mutual_information", "mutual_information_se", "marginal_kl", "mean_kl", "log_m", "n"}``: floats;
        ``mean_kl`` is the Monte Carlo :math:`\mathbb E[\log q(z|x) - \log p(z)]` on the same draws, so
        ``mean_kl = mutual_information + marginal_kl`` exactly; the s.e. is over the ``M`` draws (it ignores
        the dependence through :math:`q(z)`).

    Raises:
        ValueError: fewer than 2 rows; NotImplementedError: a posterior without a density (a particle posterior).
    """
    m = data.shape[0]
    if m < 2:
        raise ValueError(f"mutual_information needs at least 2 data rows, got {m}")
    zs, log_qzx = [], []
    for i in range(0, m, batch_size):
        z, lq = model.posterior(data[i:i + batch_size], **cond).rsample_and_log_prob()
        zs.append(z)
        log_qzx.append(lq)
    z, log_qzx = torch.cat(zs), torch.cat(log_qzx).double()
    log_pz = model.prior(**cond).log_prob(z).double()
    # log q(z_n) = logsumexp_m log q(z_n | x_m) - log M, over blocks of posteriors
    log_qz = torch.full((m,), -math.inf, dtype=torch.float64, device=z.device)
    zb = z.unsqueeze(1)  # (M, 1, D)
    for i in range(0, m, batch_size):
        q = model.posterior(data[i:i + batch_size], **cond)
        for j in range(0, m, batch_size):
            block = q.log_prob(zb[j:j + batch_size]).double()  # (b_z, b_x)
            log_qz[j:j + batch_size] = torch.logaddexp(log_qz[j:j + batch_size], torch.logsumexp(block, 1))
    log_qz = log_qz - math.log(m)
    mi = log_qzx - log_qz
    return {"mutual_information": float(mi.mean()), "mutual_information_se": float(mi.std() / math.sqrt(m)),
            "marginal_kl": float((log_qz - log_pz).mean()), "mean_kl": float((log_qzx - log_pz).mean()),
            "log_m": math.log(m), "n": m}


@torch.no_grad()
def classification_error(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> dict[str, float]:
    r"""Test error of a model with a classifier (``model.classify(x) -> (B,)`` classes, e.g. M2's
    :math:`\arg\max_y q(y|x)`): the fraction of rows of ``x`` ``(N, D)`` whose class differs from ``y`` ``(N,)``,
    with its binomial standard error :math:`\sqrt{e(1-e)/N}`. Runs in eval mode.

    Returns:
        ``{"error", "se", "n"}`` (fractions in [0, 1]).

    Raises:
        TypeError: the model has no ``classify``.
        ValueError: ``x`` and ``y`` of different lengths, or no rows.
    """
    if not callable(getattr(model, "classify", None)):
        raise TypeError(f"{type(model).__name__} has no classifier (a classify(x) method); classification error "
                        "applies to models such as M2")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"classification error needs as many labels as rows (> 0), got {x.shape[0]} rows and "
                         f"{y.shape[0]} labels")
    was = model.training
    model.eval()
    try:
        wrong = sum(int((model.classify(x[i:i + batch_size]) != y[i:i + batch_size].to(x.device)).sum())
                    for i in range(0, x.shape[0], batch_size))
    finally:
        model.train(was)
    n = x.shape[0]
    e = wrong / n
    return {"error": e, "se": math.sqrt(e * (1 - e) / n), "n": n}
