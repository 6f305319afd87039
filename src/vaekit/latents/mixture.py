"""Mixture-of-diagonal-Gaussians latent layer with reparameterised samples (Graves 2016)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions.mixture import MixtureOfDiagonalNormals
from ..distributions.normal import standard_normal
from ..registry import NonNegativeFloat, PositiveInt
from .base import LATENTS, LatentLayer
from .gaussian import check_scale_args, scale_from


@LATENTS.register("mixture")
class MixtureLatent(LatentLayer):
    r"""Posterior: a ``K``-component mixture of diagonal Gaussians; prior ``N(0, I)``.

    .. math::
        q(z|h) = \sum_{k=1}^K \pi_k(h)\, \mathcal N(z; \mu_k(h), \mathrm{diag}\,\sigma_k(h)^2)

    Samples carry gradients to ``π``, ``μ`` and ``σ`` through Graves's (2016,
    arXiv:1607.05690) conditional-CDF / implicit reparameterisation
    (:class:`~vaekit.distributions.MixtureOfDiagonalNormals`). The KL to the prior has no
    closed form; the VAE uses the Monte Carlo estimate ``log q(z) - log p(z)``.

    Args:
        in_features: width of ``h``.
        dim: latent size ``D``.
        components: ``K``.
        scale_link: ``"softplus"`` or ``"exp"`` map for ``σ`` (as :class:`GaussianLatent`).
        min_scale: floor on ``σ``.

    One fused ``Linear(in_features, K (2D + 1))`` head gives logits, means and scales.
    The mean biases are spread at initialisation so the components start apart (with equal
    initial means they would receive identical gradients and never separate).
    """

    def __init__(self, in_features: int, dim: int, components: PositiveInt = 5,
                 scale_link: Literal["softplus", "exp"] = "softplus", min_scale: NonNegativeFloat = 1e-4) -> None:
        super().__init__(in_features, dim)
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        check_scale_args(scale_link, min_scale)
        self.components, self.scale_link, self.min_scale = components, scale_link, float(min_scale)
        self.head = nn.Linear(in_features, components * (2 * dim + 1))
        with torch.no_grad():
            # bias layout: [logits (K) | loc (K*D) | scale pre-activation (K*D)]
            self.head.bias[components:components * (dim + 1)].normal_(0.0, 0.5)

    def params(self, h: Tensor) -> dict[str, Tensor]:
        k, d = self.components, self.dim
        out = self.head(h)
        logits = out[..., :k]
        loc = out[..., k:k * (d + 1)].unflatten(-1, (k, d))  # (*batch, K, D)
        a = out[..., k * (d + 1):].unflatten(-1, (k, d))
        return {"logits": logits, "loc": loc, "scale": scale_from(a, self.scale_link, self.min_scale)}

    def distribution(self, logits: Tensor, loc: Tensor, scale: Tensor) -> Distribution:
        return MixtureOfDiagonalNormals(logits, loc, scale)

    def prior(self) -> Distribution:
        return standard_normal(self.dim, self.head.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, components={self.components}"
