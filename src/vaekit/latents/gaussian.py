"""Diagonal Gaussian latent layer (Kingma & Welling 2013)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributions.normal import DiagonalNormal, standard_normal
from ..registry import NonNegativeFloat
from .base import LATENTS, LatentLayer

#: The links from an unconstrained head output ``a`` to a standard deviation, by name.
SCALE_LINKS = ("softplus", "exp")


def scale_from(a: Tensor, link: str, min_scale: float) -> Tensor:
    r"""A standard deviation from the head output ``a``: ``softplus(a)`` or ``exp(a/2)`` (``a`` a log-variance),
    plus ``min_scale``."""
    scale = F.softplus(a) if link == "softplus" else torch.exp(0.5 * a)
    return scale + min_scale if min_scale else scale


def check_scale_args(scale_link: str, min_scale: float) -> None:
    """Raise ``ValueError`` naming the argument for an unknown link or a negative floor."""
    if scale_link not in SCALE_LINKS:
        raise ValueError(f"scale_link must be one of {SCALE_LINKS}, got {scale_link!r}")
    if min_scale < 0:
        raise ValueError(f"min_scale must be >= 0, got {min_scale}")


@LATENTS.register("gaussian")
class GaussianLatent(LatentLayer):
    r"""Diagonal Gaussian posterior with a standard normal prior.

    .. math::
        q(z|h) = \mathcal N(z; \mu(h), \mathrm{diag}\,\sigma(h)^2), \qquad p(z) = \mathcal N(0, I),

        \mathrm{KL}(q\|p) = \tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)

    (Kingma & Welling 2013, arXiv:1312.6114, App. B). Samples are
    reparameterised: ``z = mu + sigma * eps``. The posterior is a
    :class:`~vaekit.distributions.DiagonalNormal` (``log q`` from the noise, one-node KL).

    Args:
        in_features: width of ``h``.
        dim: latent size ``D``.
        scale_link: how the head's second half ``a`` becomes the standard deviation ``sigma``:
            ``"softplus"`` gives ``sigma = softplus(a) + min_scale`` (bounded gradients, the default);
            ``"exp"`` gives ``sigma = exp(a / 2) + min_scale``, i.e. ``a`` is the log-variance head of
            Kingma & Welling and Burda et al.
        min_scale: floor on ``sigma`` that keeps ``log q`` finite.

    The two heads (``mu`` and the scale pre-activation) are one fused
    ``Linear(in_features, 2*dim)``: one GEMM instead of two.
    """

    def __init__(self, in_features: int, dim: int, scale_link: Literal["softplus", "exp"] = "softplus",
                 min_scale: NonNegativeFloat = 1e-4) -> None:
        super().__init__(in_features, dim)
        check_scale_args(scale_link, min_scale)
        self.scale_link = scale_link
        self.min_scale = float(min_scale)
        self.head = nn.Linear(in_features, 2 * dim)

    def params(self, h: Tensor) -> dict[str, Tensor]:
        loc, a = self.head(h).chunk(2, dim=-1)
        return {"loc": loc, "scale": scale_from(a, self.scale_link, self.min_scale)}

    def distribution(self, loc: Tensor, scale: Tensor) -> DiagonalNormal:
        return DiagonalNormal(loc, scale)

    def prior(self) -> DiagonalNormal:
        return standard_normal(self.dim, self.head.bias)
