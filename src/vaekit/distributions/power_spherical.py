r"""The power spherical distribution (De Cao & Aziz 2020): a vMF look-alike with an exact reparameterised sampler."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Dirichlet

from ._sphere import DirectionalDistribution, assemble, householder, uniform_sphere

__all__ = ["PowerSpherical"]


class PowerSpherical(DirectionalDistribution):
    r"""Power spherical distribution on :math:`S^{m-1} \subset \mathbb R^m`.

    .. math::
        q(z) = \frac{(1 + \mu^\top z)^\kappa}{N(\kappa, m)}, \qquad
        N(\kappa, m) = 2^{\alpha+\beta}\pi^\beta\frac{\Gamma(\alpha)}{\Gamma(\alpha+\beta)},
        \quad \alpha = \tfrac{m-1}2 + \kappa,\ \beta = \tfrac{m-1}2,

        E[z] = \frac{\alpha-\beta}{\alpha+\beta}\mu = \frac{\kappa}{\kappa+m-1}\mu, \qquad
        H[q] = \log N(\kappa, m) - \kappa\big(\log 2 + \psi(\alpha) - \psi(\alpha+\beta)\big).

    **Sampler** (no rejection, no Bessel functions): :math:`t \sim \mathrm{Beta}(\alpha, \beta)`,
    :math:`w = 2t - 1`, :math:`v \sim U(S^{m-2})`, :math:`z' = (w, \sqrt{1-w^2}v)`, then
    the Householder reflection taking :math:`e_1` to :math:`\mu`. The Beta draw is torch's
    ``Dirichlet([alpha, beta]).rsample()`` (implicit reparameterisation of the Gamma
    draws, Figurnov et al. 2018), whose second coordinate gives :math:`1 - t` without
    cancellation near :math:`t = 1`. Gradients are pathwise in both parameters, hence
    ``has_rsample = True``.

    Args:
        loc: ``(*B, m)`` unit mean directions, ``m >= 2``.
        concentration: ``(*B)`` (broadcastable, or a float) :math:`\kappa \ge 0`.
        validate_args: check ``loc`` is unit-norm and ``concentration >= 0``.

    Notes:
        ``loc`` is the mean direction and the mode. ``log_prob`` uses
        ``xlogy(kappa, 1 + mu^T z)`` so that :math:`\kappa = 0` at the antipode gives 0, not NaN.

    References:
        De Cao & Aziz (2020), The Power Spherical distribution, arXiv:2006.04437.
    """

    @property
    def _alpha_beta(self) -> tuple[Tensor, float]:
        beta = (self._m - 1) / 2
        return self.concentration + beta, beta

    def log_normalizer(self) -> Tensor:
        r""":math:`\log N(\kappa, m) = (\alpha+\beta)\log 2 + \beta\log\pi + \log\Gamma(\alpha) - \log\Gamma(\alpha+\beta)`."""
        alpha, beta = self._alpha_beta
        return (alpha + beta) * math.log(2) + beta * math.log(math.pi) + torch.lgamma(alpha) - torch.lgamma(alpha + beta)

    @property
    def mean(self) -> Tensor:
        k = self.concentration
        return (k / (k + self._m - 1)).unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`\kappa\log(1+\mu^\top z) - \log N(\kappa, m)`; ``value`` ``(*S, *B, m)`` -> ``(*S, *B)``."""
        if self._validate_args:
            self._validate_sample(value)
        cos = (self.loc * value).sum(-1)
        return torch.xlogy(self.concentration, (1 + cos).clamp_min(0)) - self.log_normalizer()

    def entropy(self) -> Tensor:
        alpha, beta = self._alpha_beta
        return self.log_normalizer() - self.concentration * (
            math.log(2) + torch.digamma(alpha) - torch.digamma(alpha + beta))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> Tensor:
        """``(*sample_shape, *batch_shape, m)`` reparameterised draws."""
        shape = self._extended_shape(torch.Size(sample_shape))
        alpha, beta = self._alpha_beta
        alpha = alpha.expand(shape[:-1])
        conc = torch.stack([alpha, torch.full_like(alpha, beta)], dim=-1)
        one_minus_t = Dirichlet(conc, validate_args=False).rsample()[..., 1]  # (*S, *B)
        tangent = uniform_sphere(tuple(shape[:-1]), self._m - 1, self.loc.dtype, self.loc.device)
        return householder(self.loc, assemble(2 * one_minus_t, tangent))

    def __repr__(self) -> str:
        return f"PowerSpherical(m={self._m}, batch_shape={tuple(self.batch_shape)})"
