"""Gaussian observation model, with a learned per-pixel or a fixed scale."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from ..registry import NonNegativeFloat, PositiveFloat
from .base import LIKELIHOODS, Likelihood


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(Likelihood):
    r"""``p(x|z) = \prod_i \mathcal N(x_i; m_i(z), s_i^2)``.

    Args:
        data_dim: flattened data size ``D``.
        learn_scale: if True the decoder emits ``2D`` numbers, means and
            ``s = softplus(a) + min_scale`` (Kingma & Welling 2013's Frey-face
            decoder learns its variance); if False ``s = scale`` is fixed.
        scale: the fixed standard deviation when ``learn_scale`` is False.
        squash_mean: pass the mean through a sigmoid (data in [0,1], as in
            Kingma & Welling's Frey-face model).
        min_scale: floor on a learned scale: without it the density of a
            pixel that is always the same value diverges.
    """

    def __init__(self, data_dim: int, learn_scale: bool = True, scale: PositiveFloat = 1.0, squash_mean: bool = False,
                 min_scale: NonNegativeFloat = 1e-3) -> None:
        super().__init__(data_dim)
        if scale <= 0 or min_scale < 0:
            raise ValueError(f"scale must be > 0 and min_scale >= 0, got {scale} and {min_scale}")
        self.learn_scale = learn_scale
        self.params_per_value = 2 if learn_scale else 1
        self.fixed_scale = float(scale)
        self.squash_mean = squash_mean
        self.min_scale = float(min_scale)

    def forward(self, params: Tensor) -> Distribution:
        if self.learn_scale:
            mean, a = params.chunk(2, dim=-1)
            scale = F.softplus(a) + self.min_scale
        else:
            mean, scale = params, torch.full_like(params, self.fixed_scale)
        if self.squash_mean:
            mean = torch.sigmoid(mean)
        return Independent(Normal(mean, scale, validate_args=False), 1, validate_args=False)
