"""The VAE: encoder -> latent layer -> decoder -> likelihood (Kingma & Welling 2013)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.distributions import Distribution

from ..latents.base import LatentLayer
from ..likelihoods.base import Likelihood
from .base import LatentVariableModel


class VAE(LatentVariableModel):
    r"""A one-stochastic-layer VAE speaking vaekit's model protocol.

    .. math::
        \log p(x) \ge \mathcal L(x) = \mathbb E_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z))

    (Kingma & Welling 2013, arXiv:1312.6114). Any :class:`LatentLayer` gives
    ``q`` and ``p``; any :class:`Likelihood` gives ``p(x|z)``. ``forward``
    computes no loss: it returns a :class:`~vaekit.models.VAEOutput` from which
    :mod:`vaekit.objectives` and :mod:`vaekit.evaluation` compute theirs; the rest
    of the protocol comes from :class:`~vaekit.models.LatentVariableModel`.

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
        """log p(x|z) in nats, summed over data dims; ``z`` ``(*S, B, D)``, ``x`` ``(B, data_dim)`` -> ``(*S, B)``."""
        return self.likelihood.log_prob(self.decoder(z), x)

    def encode(self, x: Tensor) -> Tensor:
        """The posterior's point estimate (mean, or mean direction on a sphere), ``(B, D)``."""
        return self.latent.point_estimate(self.posterior(x))
