r"""Associative Compression Networks (Graves, Menick & van den Oord 2018, arXiv:1804.02476).

A VAE whose prior is conditioned on a *neighbour's* code. The training set's posterior means are kept in a
table (:class:`CodeTable`, refreshed once per epoch); for each ``x`` a code ``ĉ`` is drawn uniformly from the
``K = 5`` nearest neighbours of ``x``'s current code in that table, ``x`` itself excluded, and the loss is

.. math::
    \mathcal L(x) = \mathbb E_{q(z|x)}[-\log p(x|z)] + \mathrm{KL}\big(q(z|x)\,\|\,p_\omega(z\mid ĉ)\big),

with ``p_ω(z|ĉ)`` a mixture density network (a mixture of diagonal Gaussians,
:class:`~vaekit.distributions.MixtureOfDiagonalNormals`, the reparameterised mixture family) and the KL
estimated by sampling (it has no closed form). Coding each item relative to a similar one makes the code
cheap to transmit, so ``z`` stays informative even under an autoregressive decoder that lets a plain VAE's
KL collapse. "Daydreaming" (:meth:`ACN.daydream`) chains encode → ``z ~ p(z|code)`` → decode.

Nearest neighbours come from scikit-learn's ``NearestNeighbors`` (exact search; brute force on ``N x D``
codes is about 10 ms per batch of 100 queries against 50 000 codes of 32 numbers, so an approximate index such
as faiss buys nothing here and would add a dependency).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..latents import LATENTS
from ..latents.base import LatentLayer
from ..latents.mixture import MixtureLatent
from ..latents.space import LatentSpace, latent_space_of
from ..likelihoods import LIKELIHOODS
from ..likelihoods.base import Likelihood
from ..registry import ConfigError, PositiveInt, build
from .base import LatentVariableModel
from .build import build_net

__all__ = ["ACN", "CodeTable", "build_acn"]


class ACN(LatentVariableModel):
    r"""An associative compression network: encoder ``q(z|x)``, MDN prior ``p(z | code)``, decoder ``p(x|z)``.

    A conditional model of the protocol with the condition ``code`` (``(B, D)``, a neighbour's posterior
    mean): ``prior(code=c)`` has batch shape ``(B,)``; ``forward(x, k, code=c)`` gives a
    :class:`~vaekit.models.VAEOutput` whose ``kl`` ``(B,)`` is the Monte Carlo mean of
    ``log q(z_i|x) - log p(z_i|c)`` over the ``k`` samples (nats).

    Args:
        encoder: ``(…, data_dim) -> (…, latent.in_features)``.
        latent: the posterior family; it must live on ``R^D`` (the MDN prior does).
        prior_net: ``(…, D) -> (…, H)``, the MDN's trunk.
        prior_head: a :class:`~vaekit.latents.MixtureLatent` on ``H`` features: ``K`` components' logits,
            means and scales.
        decoder: ``(…, D) -> (…, likelihood.out_features)``.
        likelihood: the observation model (``made_bernoulli`` for the autoregressive decoder).

    Raises:
        ValueError: the posterior family does not live on ``R^D``.
    """

    def __init__(self, encoder: nn.Module, latent: LatentLayer, prior_net: nn.Module, prior_head: MixtureLatent,
                 decoder: nn.Module, likelihood: Likelihood) -> None:
        super().__init__()
        if latent_space_of(latent.prior()).geometry != "euclidean":
            raise ValueError(f"ACN's prior is a Gaussian mixture on R^D; the posterior family {type(latent).__name__} "
                             "does not live on R^D (use gaussian, full_cov_gaussian, mixture or iaf)")
        self.encoder, self.latent, self.prior_net, self.prior_head = encoder, latent, prior_net, prior_head
        self.decoder, self.likelihood = decoder, likelihood

    @property
    def latent_dim(self) -> int:
        return self.latent.dim

    def posterior(self, x: Tensor, code: Tensor | None = None) -> Distribution:
        """q(z|x): batch shape ``(B,)``, event shape ``(D,)`` (``code`` is accepted and unused: q sees only x)."""
        return self.latent(self.encoder(x))

    def prior(self, code: Tensor | None = None) -> Distribution:
        r"""``p(z | code) = Σ_k π_k(c) N(z; μ_k(c), diag σ_k(c)^2)``: batch shape ``code.shape[:-1]``.

        Raises:
            ValueError: no ``code`` (ACN has no unconditional prior; pass a neighbour's posterior mean).
        """
        if code is None:
            raise ValueError("ACN.prior needs code=...: the prior is conditioned on a neighbour's posterior mean "
                             "(CodeTable.draw); sample unconditionally with ACN.daydream")
        return self.prior_head(self.prior_net(code))

    def decode(self, z: Tensor, code: Tensor | None = None) -> Distribution:
        """p(x|z) for ``z`` ``(*S, D)`` (``code`` is accepted and unused: the decoder sees only ``z``)."""
        return self.likelihood(self.decoder(z))

    def log_likelihood(self, x: Tensor, z: Tensor, code: Tensor | None = None) -> Tensor:
        """log p(x|z) in nats, summed over data dims: ``z`` ``(*S, B, D)``, ``x`` ``(B, data_dim)`` -> ``(*S, B)``."""
        return self.likelihood.log_prob(self.decoder(z), x)

    def encode(self, x: Tensor, code: Tensor | None = None) -> Tensor:
        """The posterior mean, ``(B, D)``: what the code table holds."""
        return self.latent.point_estimate(self.posterior(x))

    @property
    def latent_space(self) -> LatentSpace:
        """``R^D`` (the posterior family's space; the prior needs a code)."""
        return latent_space_of(self.latent.prior())

    @torch.no_grad()
    def daydream(self, x0: Tensor, steps: int, mean: bool = False) -> Tensor:
        r"""Chains ``x_{t+1} ~ p(x | z)``, ``z ~ p(z | encode(x_t))`` from each row of ``x0``.

        Returns ``(steps + 1, B, data_dim)`` with ``x0`` first. Draws from torch's global RNG. ``mean``
        decodes the mean of ``p(x|z)`` instead of a draw where the likelihood has one cheaply (not for MADE).
        """
        out, x = [x0], x0
        for _ in range(steps):
            z = self.prior(self.encode(x)).sample()
            px = self.decode(z)
            x = px.mean if mean else px.sample()
            out.append(x)
        return torch.stack(out)


class CodeTable:
    r"""The posterior means of a training set and their ``K`` nearest neighbours (scikit-learn, exact search).

    Built from the training split only (:meth:`build`); row ``i`` is the code of training example ``i``.
    :meth:`draw` picks, for each query, one of the ``K`` nearest rows other than the query's own index.

    Args:
        codes: ``(N, D)``.
        k: neighbours to choose among (the paper's ``K = 5``).

    Raises:
        ValueError: ``k < 1`` or fewer than ``k + 1`` rows.
    """

    def __init__(self, codes: Tensor, k: int = 5) -> None:
        from sklearn.neighbors import NearestNeighbors

        if k < 1 or codes.shape[0] < k + 1:
            raise ValueError(f"a code table needs k >= 1 and more than k rows, got k={k} and {codes.shape[0]} rows")
        self.codes = codes.detach().float().cpu().contiguous()
        self.k = k
        self.index = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(self.codes.numpy())

    @classmethod
    @torch.no_grad()
    def build(cls, model: nn.Module, x_train: Tensor, k: int = 5, batch_size: int = 1000) -> "CodeTable":
        """Encode every row of ``x_train`` with ``model.encode`` (eval mode, no noise) into a table."""
        was = model.training
        model.eval()
        try:
            codes = torch.cat([model.encode(x_train[i:i + batch_size]) for i in range(0, x_train.shape[0], batch_size)])
        finally:
            model.train(was)
        return cls(codes, k)

    def __len__(self) -> int:
        return self.codes.shape[0]

    def neighbours(self, query: Tensor, exclude: Tensor | None = None) -> Tensor:
        """``(B, K)`` row indices of the ``K`` nearest codes to each query row, nearest first, never ``exclude[b]``.

        ``exclude``: ``(B,)`` the queries' own rows in the table (training examples), or None for outside queries
        (test data), which then get their ``K`` nearest rows.
        """
        _, idx = self.index.kneighbors(query.detach().float().cpu().numpy(), n_neighbors=self.k + 1)
        idx = torch.from_numpy(idx)
        if exclude is None:
            return idx[:, :self.k]
        keep = idx != exclude.cpu()[:, None]
        # drop the query's own row where it is among the K + 1, else the farthest: K indices per row either way
        keep[:, -1] &= ~keep.all(1)
        return idx[keep].view(-1, self.k)

    def draw(self, query: Tensor, exclude: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """One neighbour code per query, uniform over its ``K`` nearest (``exclude`` as :meth:`neighbours`), ``(B, D)``."""
        nb = self.neighbours(query, exclude)
        pick = torch.randint(self.k, (nb.shape[0],), generator=generator)
        return self.codes[nb[torch.arange(nb.shape[0]), pick]].to(query.device)


def build_acn(data_dim: int, encoder: dict, latent: dict, decoder: dict, likelihood: dict,
              prior_hidden: Sequence[PositiveInt] = (512, 512), components: PositiveInt = 10,
              image_shape: Sequence[int] | None = None) -> ACN:
    """An :class:`ACN` from config sections (paths ``model.*``): the MDN prior is an MLP ``D -> prior_hidden``
    (ReLU) and a ``components``-component mixture head.

    Raises:
        ConfigError: naming the dotted key (``model.latent.type: ...`` for a family not on ``R^D``).
    """
    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    enc = build_net(encoder, "model.encoder", data_dim, None, image_shape)
    lat = build(LATENTS, latent, "model.latent", in_features=enc.out_features)
    if latent_space_of(lat.prior()).geometry != "euclidean":
        raise ConfigError(f"model.latent.type: ACN's prior is a Gaussian mixture on R^D; {latent['type']!r} does not "
                          "live on R^D (use gaussian, full_cov_gaussian, mixture or iaf)")
    trunk = build_net({"type": "mlp", "hidden": list(prior_hidden), "activation": "relu"}, "model.prior_hidden",
                      lat.dim, None, None)
    head = MixtureLatent(trunk.out_features, lat.dim, components=components)
    dec = build_net(decoder, "model.decoder", lat.dim, lik.out_features, image_shape)
    return ACN(enc, lat, trunk, head, dec, lik)
