"""Power spherical latent layer (De Cao & Aziz 2020): the vMF's role without rejection sampling or Bessel functions."""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Distribution

from ..distributions import PowerSpherical
from .base import LATENTS
from .vmf import SphereLatent


@LATENTS.register("power_spherical")
class PowerSphericalLatent(SphereLatent):
    r"""Power spherical posterior :math:`q(z|h) \propto (1 + \mu(h)^\top z)^{\kappa(h)}` with a uniform prior on :math:`S^{D-1}`.

    .. math::
        \mathrm{KL}(q\|p) = \log|S^{D-1}| - \log N(\kappa, D) + \kappa\big(\log 2 + \psi(\alpha) - \psi(\alpha+\beta)\big),
        \quad \alpha = \tfrac{D-1}2 + \kappa,\ \beta = \tfrac{D-1}2

    (analytic, registered in :mod:`vaekit.distributions.kl`). Heads, ``fixed_kappa``
    and ``min_kappa`` as :class:`~vaekit.latents.vmf.SphereLatent`.

    References:
        De Cao & Aziz (2020), The Power Spherical distribution, arXiv:2006.04437.
    """

    def distribution(self, loc: Tensor, concentration: Tensor) -> Distribution:
        return PowerSpherical(loc, concentration)
