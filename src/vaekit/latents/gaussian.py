"""Diagonal Gaussian latent layer (Kingma & Welling 2013)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution, Independent, Normal

from .base import LATENTS, LatentLayer


def _reparam_kl(loc: Tensor, scale: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    r"""``z = mu + sigma * eps`` and ``KL_j = (mu_j^2 + sigma_j^2 - 1)/2 - log sigma_j`` (no autograd bookkeeping)."""
    z = torch.addcmul(loc, scale, eps)
    kl = (loc * loc).add_(scale * scale).sub_(1.0).mul_(0.5).sub_(scale.log())
    return z, kl


class _ReparamKL(torch.autograd.Function):
    r"""``z = mu + sigma * eps`` and the per-dimension ``KL(N(mu, sigma^2) || N(0, 1))`` as one autograd node.

    .. math::
        \mathrm{KL}_j = \tfrac12(\mu_j^2 + \sigma_j^2 - 1) - \log\sigma_j,\qquad
        \frac{\partial \mathrm{KL}_j}{\partial\mu_j} = \mu_j,\quad
        \frac{\partial \mathrm{KL}_j}{\partial\sigma_j} = \sigma_j - 1/\sigma_j

    Written by hand because autograd records about ten nodes for these few elementwise ops
    (speed: they cost more than the latent layer's GEMM on a batch-100 step).
    """

    @staticmethod
    def forward(ctx, loc: Tensor, scale: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        ctx.save_for_backward(loc, scale, eps)
        return _reparam_kl(loc, scale, eps)

    @staticmethod
    @once_differentiable
    def backward(ctx, gz: Tensor, gkl: Tensor):  # type: ignore[override]
        loc, scale, eps = ctx.saved_tensors
        lead = tuple(range(gz.dim() - loc.dim()))  # the sample dims that broadcast loc/scale
        gloc = gz.sum(lead) if lead else gz.clone()
        gloc.addcmul_(loc, gkl)
        gscale = (gz * eps).sum(lead) if lead else gz * eps
        gscale.addcmul_(scale - scale.reciprocal(), gkl)
        return gloc, gscale, None


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

    def rsample_kl(self, params: dict[str, Tensor], k: int) -> tuple[Tensor, Tensor]:
        r"""``z = mu + sigma * eps`` (``eps`` of shape ``(k, *batch, D)``) and the closed-form per-dim KL.

        One autograd node (:class:`_ReparamKL`); the noise is drawn as ``Normal.rsample`` draws it.
        """
        loc, scale = params["loc"], params["scale"]
        eps = torch.randn((k, *loc.shape), dtype=loc.dtype, device=loc.device)
        if torch.is_grad_enabled() and (loc.requires_grad or scale.requires_grad):
            return _ReparamKL.apply(loc, scale, eps)
        return _reparam_kl(loc, scale, eps)

    def rsample_log_ratio(self, params: dict[str, Tensor], sample_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        r"""``z = mu + sigma * eps`` and, in closed form from ``eps``,

        .. math:: \log p(z) - \log q(z|x) = \sum_j \tfrac12(\epsilon_j^2 - z_j^2) + \log\sigma_j

        (the ``log 2 pi`` terms cancel): no ``Normal.log_prob`` passes over ``z``.
        """
        loc, scale = params["loc"], params["scale"]
        eps = torch.randn((*sample_shape, *loc.shape), dtype=loc.dtype, device=loc.device)
        z = torch.addcmul(loc, scale, eps)
        ratio = 0.5 * (eps * eps - z * z).sum(-1) + scale.log().sum(-1)
        return z, ratio

    def prior(self) -> Distribution:
        zero = self._zero
        return Independent(Normal(zero, torch.ones_like(zero), validate_args=False), 1, validate_args=False)
