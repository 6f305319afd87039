"""Diagonal Gaussian latent layer (Kingma & Welling 2013)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from .base import LATENTS, LatentLayer


@LATENTS.register("gaussian")
class GaussianLatent(LatentLayer):
    r"""Diagonal Gaussian posterior with a standard normal prior.

    .. math::
        q(z|h) = \mathcal N(z; \mu(h), \mathrm{diag}\,\sigma(h)^2), \qquad p(z) = \mathcal N(0, I),

        \mathrm{KL}(q\|p) = \tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)

    (Kingma & Welling 2013, arXiv:1312.6114, App. B). Samples are
    reparameterised: ``z = mu + sigma * eps``.

    Args:
        in_features: width of ``h``.
        dim: latent size ``D``.
        scale: ``"softplus"`` gives ``sigma = softplus(a) + min_scale`` (bounded
            gradients, the default); ``"exp"`` gives ``sigma = exp(a / 2) + min_scale``,
            i.e. ``a`` is the log-variance head of Kingma & Welling and Burda et al.
        min_scale: floor on ``sigma`` that keeps ``log q`` finite.

    The two heads (``mu`` and the scale pre-activation) are one fused
    ``Linear(in_features, 2*dim)``: one GEMM instead of two.
    """

    def __init__(self, in_features: int, dim: int, scale: Literal["softplus", "exp"] = "softplus",
                 min_scale: float = 1e-4) -> None:
        super().__init__(in_features, dim)
        if scale not in ("softplus", "exp"):
            raise ValueError(f"scale must be 'softplus' or 'exp', got {scale!r}")
        if min_scale < 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale}")
        self.scale_fn = scale
        self.min_scale = float(min_scale)
        self.head = nn.Linear(in_features, 2 * dim)
        self.register_buffer("_zero", torch.zeros(dim), persistent=False)

    def params(self, h: Tensor) -> dict[str, Tensor]:
        loc, a = self.head(h).chunk(2, dim=-1)
        if self.scale_fn == "softplus":
            scale = F.softplus(a)
        else:
            scale = torch.exp(0.5 * a)
        if self.min_scale:
            scale = scale + self.min_scale
        return {"loc": loc, "scale": scale}

    def distribution(self, loc: Tensor, scale: Tensor) -> Distribution:
        return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)

    def prior(self) -> Distribution:
        zero = self._zero
        return Independent(Normal(zero, torch.ones_like(zero), validate_args=False), 1, validate_args=False)
