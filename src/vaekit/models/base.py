"""The model protocol: what every model returns from ``forward``, and the methods it derives from four.

A model implements ``posterior(x)``, ``prior()``, ``log_likelihood(x, z)``, ``decode(z)`` and ``encode(x)``;
:class:`LatentVariableModel` derives the rest of the protocol of ARCHITECTURE.md from them, the same way
for every model: ``log_joint``, ``log_weights`` (chunked, bounded memory), ``forward`` (a
:class:`VAEOutput` for the ELBO family of objectives), ``sample``, ``reconstruct``, ``latent_space``.
Conditioning (``**cond``) is passed through unchanged to the methods a conditional model defines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from ..latents.base import has_analytic_kl, kl_estimate
from ..latents.space import LatentSpace, latent_space_of
from ..registry import Registry

MODELS: Registry = Registry("model")

#: Latent of a model: a tensor ``(*S, B, D)``, or a tuple of them for stacked models.
Latent = Any


@dataclass
class VAEOutput:
    """One pass of ``k`` reparameterised posterior samples for a batch of ``B`` inputs.

    Attributes:
        z: the samples, ``(k, B, D)`` (a tuple of ``(k, B, D_l)`` for stacked models).
        log_likelihood: ``(k, B)`` log p(x | z_i) in nats, summed over data dims.
        kl: ``(B,)`` KL(q(z|x) || p(z)) in nats: analytic where a formula is registered for the pair,
            else the Monte Carlo average over the ``k`` samples of ``log q(z_i|x) - log p(z_i)``
            (:func:`vaekit.latents.kl_estimate`). Always this shape, so ``ELBO = log_likelihood.mean(0) - kl``.
        posterior: q(z|x), batch shape ``(B,)`` (for per-dimension KLs, free bits, diagnostics).
        prior: p(z).
    """

    z: Latent
    log_likelihood: Tensor
    kl: Tensor
    posterior: Distribution
    prior: Distribution

    @property
    def k(self) -> int:
        return self.log_likelihood.shape[0]


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


class LatentVariableModel(nn.Module):
    r"""Base class of vaekit's models: the protocol derived from ``posterior``, ``prior`` and ``log_likelihood``.

    Subclasses implement ``posterior(x, **cond) -> Distribution`` (with ``rsample_and_log_prob``),
    ``prior(**cond) -> Distribution``, ``log_likelihood(x, z, **cond) -> (*S, B)``,
    ``decode(z, **cond) -> Distribution over x`` and ``encode(x, **cond) -> (B, D)``. A model with a
    ``likelihood`` attribute gets :meth:`validate_input` from it.

    ``chunk_elements`` bounds the decoder outputs one :meth:`log_weights` chunk produces
    (``chunk * B * x[0].numel()``; 3.2 M float32 values = 12.8 MB by default): on FM-MLP
    (784-200-200-50, IWAE-5000 of 500 images, batches of 100) chunks of 0.8 / 1.6 / 3.2 M values took
    5.95-6.49 / 5.63-6.28 / 5.49-5.59 s on 2 threads, so the default is the largest measured.
    """

    chunk_elements: int = 3_200_000

    #: Whether ``posterior(x)`` has a density ``log q(z|x)``. A model whose posterior is implicit (the Stein VAE's
    #: particles) sets False: its ``posterior``, ``forward`` and ``log_weights`` raise ``NotImplementedError``, the
    #: ELBO/IWAE evaluators refuse it up front, and AIS (prior and likelihood only) evaluates it.
    posterior_density: bool = True

    # ----- derived protocol ------------------------------------------------------------------------
    def log_joint(self, x: Tensor, z: Latent, **cond: Any) -> Tensor:
        """``log p(x, z) = log p(x|z) + log p(z)`` in nats, shape ``(*S, B)`` (what AIS/HMC need)."""
        return self.log_likelihood(x, z, **cond) + self.prior(**cond).log_prob(z)

    def forward(self, x: Tensor, k: int = 1, **cond: Any) -> VAEOutput:
        """Draw ``k`` reparameterised samples per input and score them (see :class:`VAEOutput`).

        Raises:
            ValueError: ``k`` is not a positive int.
        """
        _check_k(k)
        q, p = self.posterior(x, **cond), self.prior(**cond)
        if has_analytic_kl(q, p):
            z = q.rsample((k,)) if q.has_rsample else q.sample((k,))
            kl = kl_divergence(q, p)
        else:
            z, log_q = q.rsample_and_log_prob((k,))
            kl = kl_estimate(q, p, log_q, p.log_prob(z))
        return VAEOutput(z, self.log_likelihood(x, z, **cond), kl, q, p)

    def log_weights(self, x: Tensor, k: int, *, chunk_size: int | None = None, **cond: Any) -> Tensor:
        r"""``(k, B)`` importance log-weights :math:`\log w_i = \log p(x, z_i) - \log q(z_i|x)`, ``z_i ~ q(z|x)``
        (Burda et al. 2015, arXiv:1509.00519, Eq. 8), in nats.

        ``x`` is encoded once; the samples are drawn and scored ``chunk_size`` at a time (default: as many as
        keep ``chunk * B * x[0].numel()`` within :attr:`chunk_elements`), so memory is bounded for any ``k``.
        Samples are reparameterised: with grad enabled the result differentiates to every parameter (the
        IWAE objective).

        Raises:
            ValueError: ``k`` or ``chunk_size`` is not a positive int.
        """
        _check_k(k)
        if chunk_size is None:
            chunk_size = max(1, self.chunk_elements // max(1, x.shape[0] * x[0].numel()))
        elif chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        q, p = self.posterior(x, **cond), self.prior(**cond)

        def chunk(c: int) -> Tensor:
            z, log_q = q.rsample_and_log_prob((c,))
            return self.log_likelihood(x, z, **cond) + p.log_prob(z) - log_q

        if chunk_size >= k:
            return chunk(k)
        if torch.is_grad_enabled():
            return torch.cat([chunk(min(chunk_size, k - i)) for i in range(0, k, chunk_size)])
        out = None
        for i in range(0, k, chunk_size):
            lw = chunk(min(chunk_size, k - i))
            if out is None:
                # allocated once: small per-chunk results kept alive between the chunks' large freed
                # buffers fragment the heap (RSS grew by up to 0.9 GB during an IWAE-5000 evaluation)
                out = lw.new_empty((k, *lw.shape[1:]))
            out[i:i + lw.shape[0]] = lw
        return out

    @property
    def latent_space(self) -> LatentSpace:
        """Support, geometry and unconstraining bijection of ``z`` (:class:`~vaekit.latents.LatentSpace`)."""
        return latent_space_of(self.prior())

    def reconstruct(self, x: Tensor, **cond: Any) -> Tensor:
        """The mean of ``p(x | encode(x))``, ``(B, data_dim)``."""
        return self.decode(self.encode(x, **cond), **cond).mean

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, **cond: Any) -> Tensor:
        """``n`` draws ``z ~ p(z)`` decoded to ``(n, data_dim)``: the mean of ``p(x|z)``, or a draw if ``mean`` is False."""
        px = self.decode(self.prior(**cond).sample((n,)), **cond)
        return px.mean if mean else px.sample()

    def validate_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a ``ValueError`` naming the problem if this model's likelihood cannot score ``x``."""
        likelihood = getattr(self, "likelihood", None)
        if likelihood is not None:
            likelihood.validate(x, name)
