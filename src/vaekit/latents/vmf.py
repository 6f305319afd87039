"""Hyperspherical latent layer: von Mises-Fisher posterior, uniform prior (S-VAE; fixed-kappa vMF-VAE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions import HypersphericalUniform, VonMisesFisher
from ..registry import NonNegativeFloat, PositiveFloat
from .base import LATENTS, LatentLayer


class SphereLatent(LatentLayer):
    r"""Shared machinery of the sphere families: a normalised direction head, an optional concentration head.

    .. math::
        \mu(h) = \frac{W_\mu h + b_\mu}{\|W_\mu h + b_\mu\|}, \qquad
        \kappa(h) = \mathrm{softplus}(w_\kappa^\top h + b_\kappa) + \kappa_{\min}
        \quad\text{or}\quad \kappa \equiv \kappa_{\text{fixed}},

    with prior :math:`p(z) = U(S^{D-1})`. ``encode`` returns :math:`\mu` (the mean
    *direction*; the mean itself lies inside the ball) and interpolation follows
    great circles (:func:`slerp`).

    Args:
        in_features: width of ``h``.
        dim: ambient dimension ``D >= 2``; codes lie on :math:`S^{D-1}`.
        fixed_kappa: if set, :math:`\kappa` is this constant and there is no
            concentration head (Xu & Durrett 2018); the KL to the prior is then a
            constant that depends only on ``(kappa, D)``.
        min_kappa: the floor :math:`\kappa_{\min}` of the learned concentration.
    """

    def __init__(self, in_features: int, dim: int, fixed_kappa: PositiveFloat | None = None,
                 min_kappa: NonNegativeFloat = 1.0) -> None:
        super().__init__(in_features, dim)
        if dim < 2:
            raise ValueError(f"a sphere latent needs dim >= 2 (codes on S^(dim-1)), got {dim}")
        if fixed_kappa is not None and not fixed_kappa > 0:
            raise ValueError(f"fixed_kappa must be positive or None, got {fixed_kappa}")
        if not min_kappa >= 0:
            raise ValueError(f"min_kappa must be >= 0, got {min_kappa}")
        self.fixed_kappa = None if fixed_kappa is None else float(fixed_kappa)
        self.min_kappa = float(min_kappa)
        self.loc_head = nn.Linear(in_features, dim)
        self.kappa_head = nn.Linear(in_features, 1) if fixed_kappa is None else None
        # carries the device and dtype for the parameter-free prior
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def params(self, h: Tensor) -> dict[str, Tensor]:
        loc = F.normalize(self.loc_head(h), dim=-1)
        if self.kappa_head is None:
            kappa = torch.full(h.shape[:-1], self.fixed_kappa, dtype=loc.dtype, device=loc.device)
        else:
            kappa = F.softplus(self.kappa_head(h)).squeeze(-1) + self.min_kappa
        return {"loc": loc, "concentration": kappa}

    def prior(self) -> Distribution:
        return HypersphericalUniform(self.dim, dtype=self._anchor.dtype, device=self._anchor.device)

    def point_estimate(self, q: Distribution) -> Tensor:
        """The mean direction ``loc`` (unit norm), ``(*B, D)``."""
        return q.loc  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        kappa = f"fixed_kappa={self.fixed_kappa}" if self.fixed_kappa is not None else f"min_kappa={self.min_kappa}"
        return f"{super().extra_repr()}, {kappa}"


@LATENTS.register("vmf")
class VMFLatent(SphereLatent):
    r"""von Mises-Fisher posterior :math:`q(z|h) = \mathrm{vMF}(\mu(h), \kappa(h))` with a uniform prior on :math:`S^{D-1}`.

    .. math::
        \mathrm{KL}(q\|p) = \kappa A_D(\kappa) + \log C_D(\kappa) + \log|S^{D-1}|

    (analytic, registered in :mod:`vaekit.distributions.kl`). Learned :math:`\kappa`
    with :math:`\kappa_{\min} = 1` follows the S-VAE reference code (Davidson et al.
    2018, arXiv:1804.00891); ``fixed_kappa`` gives the vMF-VAE of Xu & Durrett
    (2018, arXiv:1808.10805), whose KL is constant so the posterior cannot collapse.
    Samples are reparameterised (Wood's sampler + implicit kappa-gradient, see
    :class:`vaekit.distributions.VonMisesFisher`). Args as :class:`SphereLatent`.
    """

    def distribution(self, loc: Tensor, concentration: Tensor) -> Distribution:
        return VonMisesFisher(loc, concentration)
