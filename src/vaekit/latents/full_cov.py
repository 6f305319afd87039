"""Full-covariance Gaussian latent layer: a Cholesky factor from the encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions.normal import FullCovNormal
from ..registry import NonNegativeFloat
from .base import LATENTS, LatentLayer


@LATENTS.register("full_cov_gaussian")
class FullCovGaussianLatent(LatentLayer):
    r"""Gaussian posterior with a full covariance ``L L^T`` and a standard normal prior.

    .. math::
        q(z|h) = \mathcal N(z; \mu(h), L(h) L(h)^\top), \quad
        L_{ii} = \mathrm{softplus}(a_{ii}) + \epsilon_{\min},\ L_{ij} = a_{ij}\ (i > j),\ L_{ij} = 0\ (i < j),

        \mathrm{KL}(q\,\|\,\mathcal N(0, I)) = \tfrac12\big(\mathrm{tr}(LL^\top) + \mu^\top\mu - D\big) - \sum_i \log L_{ii}

    (the analytic KL is torch's ``MultivariateNormal`` pair). Samples are
    reparameterised: ``z = mu + L eps``. This is the posterior that a linear IAF
    step expresses (Kingma et al. 2016, arXiv:1606.04934, §3), and the exact
    posterior family of a linear-Gaussian model.

    Args:
        in_features: width of ``h``.
        dim: latent size ``D``.
        min_scale: floor on the Cholesky diagonal that keeps ``log q`` finite.

    One fused ``Linear(in_features, D + D(D+1)/2)`` head produces ``mu`` and the
    lower triangle of ``L`` (so the head is ``O(D^2)`` wide).
    """

    def __init__(self, in_features: int, dim: int, min_scale: NonNegativeFloat = 1e-4) -> None:
        super().__init__(in_features, dim)
        if min_scale < 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale}")
        self.min_scale = float(min_scale)
        rows, cols = torch.tril_indices(dim, dim)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        self.register_buffer("_diag", rows == cols, persistent=False)
        self.head = nn.Linear(in_features, dim + rows.numel())
        self.register_buffer("_zero", torch.zeros(dim), persistent=False)

    def params(self, h: Tensor) -> dict[str, Tensor]:
        out = self.head(h)
        loc, a = out[..., :self.dim], out[..., self.dim:]  # a: (*batch, D(D+1)/2) lower-triangle entries
        a = torch.where(self._diag, F.softplus(a) + self.min_scale, a)
        tril = a.new_zeros(*a.shape[:-1], self.dim, self.dim)
        tril[..., self._rows, self._cols] = a  # (*batch, D, D)
        return {"loc": loc, "scale_tril": tril}

    def distribution(self, loc: Tensor, scale_tril: Tensor) -> Distribution:
        return FullCovNormal(loc, scale_tril=scale_tril)

    def prior(self) -> Distribution:
        zero = self._zero
        return FullCovNormal(zero, scale_tril=torch.eye(self.dim, dtype=zero.dtype, device=zero.device))
