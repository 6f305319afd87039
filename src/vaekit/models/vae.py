"""The VAE: encoder -> latent layer -> decoder -> likelihood (Kingma & Welling 2013)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, kl_divergence

from ..latents.base import LatentLayer, has_analytic_kl
from ..latents.space import LatentSpace, latent_space_of
from ..likelihoods.base import Likelihood
from .base import VAEOutput


def _per_dim_kl(q: Distribution, p: Distribution) -> Tensor | None:
    """Analytic KL per latent dimension, ``(B, D)``, when both are ``Independent`` over a registered base pair."""
    if isinstance(q, Independent) and isinstance(p, Independent) and q.reinterpreted_batch_ndims == 1 \
            and p.reinterpreted_batch_ndims == 1 and has_analytic_kl(q.base_dist, p.base_dist):
        return kl_divergence(q.base_dist, p.base_dist)
    return None


class _LazyDensityOutput(VAEOutput):
    """A :class:`VAEOutput` whose ``log_prior`` and ``log_posterior`` are computed on first read.

    ``log p(z_i)`` and ``log q(z_i|x)`` are pure functions of ``(q, p, z)`` (no random draws), so
    reading them later gives the values an eager pass would; only the cost moves. ``q`` and ``p``
    may be given as zero-argument callables, so that the ``Distribution`` objects themselves are
    built only if a density is read. A value first read under ``torch.no_grad`` is not kept, so
    a later read with grad enabled still gets a graph.
    """

    def __init__(self, q: Distribution | Callable[[], Distribution], p: Distribution | Callable[[], Distribution],
                 **fields: Tensor | None) -> None:
        self._q, self._p = q, p
        super().__init__(**fields)

    def _lazy(self, name: str, which: str) -> Tensor:
        v = self.__dict__.get(name)
        if v is None:
            dist = self.__dict__[which]
            if not isinstance(dist, Distribution):
                dist = self.__dict__[which] = dist()
            v = dist.log_prob(self.z)
            if torch.is_grad_enabled() or not self.z.requires_grad:
                self.__dict__[name] = v
        return v

    @property  # type: ignore[override]
    def log_prior(self) -> Tensor:
        return self._lazy("_log_prior", "_p")

    @log_prior.setter
    def log_prior(self, value: Tensor | None) -> None:
        self.__dict__["_log_prior"] = value

    @property  # type: ignore[override]
    def log_posterior(self) -> Tensor:
        return self._lazy("_log_posterior", "_q")

    @log_posterior.setter
    def log_posterior(self, value: Tensor | None) -> None:
        self.__dict__["_log_posterior"] = value


class VAE(nn.Module):
    r"""A one-stochastic-layer VAE speaking vaekit's model protocol.

    .. math::
        \log p(x) \ge \mathcal L(x) = \mathbb E_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z))

    (Kingma & Welling 2013, arXiv:1312.6114). Any :class:`LatentLayer` gives
    ``q`` and ``p``; any :class:`Likelihood` gives ``p(x|z)``. ``forward``
    computes no loss: it returns a :class:`VAEOutput` from which
    :mod:`vaekit.objectives` and :mod:`vaekit.evaluation` compute theirs.

    Args:
        encoder: ``(…, data_dim) -> (…, latent.in_features)``.
        latent: the stochastic layer.
        decoder: ``(…, latent.dim) -> (…, likelihood.out_features)``.
        likelihood: the observation model.
    """

    def __init__(self, encoder: nn.Module, latent: LatentLayer, decoder: nn.Module, likelihood: Likelihood) -> None:
        super().__init__()
        self.encoder = encoder
        self.latent = latent
        self.decoder = decoder
        self.likelihood = likelihood

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def latent_dim(self) -> int:
        return self.latent.dim

    @property
    def latent_space(self) -> "LatentSpace":
        """The support, geometry and unconstraining bijection of ``z`` (see :class:`~vaekit.latents.LatentSpace`)."""
        return latent_space_of(self.prior())

    # ----- the protocol -------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> Distribution:
        """q(z|x): batch shape ``(B,)``, event shape ``(D,)``."""
        return self.latent(self.encoder(x))

    def prior(self) -> Distribution:
        """p(z): empty batch shape, event shape ``(D,)``."""
        return self.latent.prior()

    def decode(self, z: Tensor) -> Distribution:
        """p(x|z) for z of shape ``(*S, D)``: batch shape ``S``, event shape ``(data_dim,)``."""
        return self.likelihood(self.decoder(z))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z), summed over data dims; ``z`` ``(*S, B, D)``, ``x`` ``(B, data_dim)`` -> ``(*S, B)``."""
        return self.likelihood.log_prob(self.decoder(z), x)

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x, z) = log p(x|z) + log p(z); shape as :meth:`log_likelihood`."""
        return self.log_likelihood(x, z) + self.prior().log_prob(z)

    def forward(self, x: Tensor, k: int = 1) -> VAEOutput:
        """Draw ``k`` reparameterised samples per input and score them (see :class:`VAEOutput`)."""
        params = self.latent.params(self.encoder(x))
        fast = self.latent.rsample_kl(params, k)
        if fast is not None:
            # speed: a family with a fused sample-and-KL path (the Gaussian) never builds its
            # Distribution objects unless log q / log p are read (the IWAE objective does)
            z, kl_dim = fast
            return _LazyDensityOutput(lambda: self.latent.distribution(**params), self.latent.prior, z=z,
                                      log_likelihood=self.log_likelihood(x, z), log_prior=None,
                                      log_posterior=None, kl=kl_dim.sum(-1), kl_per_dim=kl_dim)
        q = self.latent.distribution(**params)
        if hasattr(q, "rsample_and_log_prob"):  # flows: log q from the same pass, no O(D) inversion
            z, log_q = q.rsample_and_log_prob((k,))
        else:
            z = q.rsample((k,)) if q.has_rsample else q.sample((k,))
            log_q = None
        p = self.prior()
        log_lik = self.log_likelihood(x, z)
        if has_analytic_kl(q, p):
            # speed: the analytic-KL ELBO never reads log q / log p, so they are computed on first read
            # only; and the per-dimension KL is computed once and summed rather than twice
            kl_dim = _per_dim_kl(q, p)
            kl = kl_dim.sum(-1) if kl_dim is not None else kl_divergence(q, p)
            return _LazyDensityOutput(q, p, z=z, log_likelihood=log_lik, log_prior=None, log_posterior=log_q,
                                      kl=kl, kl_per_dim=kl_dim)
        log_q = q.log_prob(z) if log_q is None else log_q
        log_p = p.log_prob(z)
        return VAEOutput(z=z, log_likelihood=log_lik, log_prior=log_p, log_posterior=log_q, kl=log_q - log_p,
                         kl_per_dim=None)

    def log_weights(self, x: Tensor, k: int, chunk_size: int | None = None) -> Tensor:
        r"""``(k, B)`` log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x) (Burda et al. 2015).

        ``x`` is encoded once; the ``k`` samples are decoded ``chunk_size`` at a time (all at
        once by default), which bounds the decoder's memory to ``chunk_size * B`` rows.
        """
        params = self.latent.params(self.encoder(x))
        chunk = k if chunk_size is None else max(1, min(int(chunk_size), k))
        if chunk >= k:
            z, log_ratio = self.latent.rsample_log_ratio(params, (k,))
            return self.log_likelihood(x, z) + log_ratio
        out = None
        for done in range(0, k, chunk):
            z, log_ratio = self.latent.rsample_log_ratio(params, (min(chunk, k - done),))
            lw = self.log_likelihood(x, z) + log_ratio
            if out is None:
                # allocated once: small per-chunk results kept alive between the chunks' large freed
                # buffers fragment the heap (RSS grew by up to 0.9 GB during an IWAE-5000 evaluation)
                out = lw.new_empty((k, *lw.shape[1:]))
            out[done:done + lw.shape[0]] = lw
        return out

    def encode(self, x: Tensor) -> Tensor:
        """The posterior's point estimate (mean, or mean direction on a sphere), ``(B, D)``."""
        return self.latent.point_estimate(self.posterior(x))

    def reconstruct(self, x: Tensor) -> Tensor:
        """The mean of p(x | encode(x)), ``(B, data_dim)``."""
        return self.decode(self.encode(x)).mean

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True) -> Tensor:
        """``n`` draws z ~ p(z) decoded to ``(n, data_dim)``: the mean of p(x|z), or a sample if ``mean`` is False."""
        z = self.prior().sample((n,))
        px = self.decode(z)
        return px.mean if mean else px.sample()

    def validate_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a ``ValueError`` naming the problem if this model cannot score ``x``."""
        self.likelihood.validate(x, name)
