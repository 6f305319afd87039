"""Distributions torch lacks (sphere families, reparameterised mixtures); KLs registered on import.

* :class:`VonMisesFisher` — vMF on S^{m-1}, Wood's sampler, implicit-reparameterisation kappa-gradient.
* :class:`HypersphericalUniform` — the uniform prior on S^{m-1}.
* :class:`PowerSpherical` — De Cao & Aziz (2020), exact reparameterised sampler.
* :mod:`.bessel` — log-space modified Bessel functions in torch.
* :mod:`.kl` — every registered KL, with its formula and source.
* :class:`DiagonalNormal`, :class:`FullCovNormal` — torch's Gaussians with the fast path.
* :class:`RsampleAndLogProb` — the one fast-path method, ``rsample_and_log_prob(sample_shape)``.
"""

from . import bessel
from .constraints import sphere
from .hyperspherical_uniform import HypersphericalUniform
from .power_spherical import PowerSpherical
from .von_mises_fisher import VonMisesFisher
from . import kl  # noqa: E402,F401  (registers the KLs; must come after the classes)

__all__ = ["VonMisesFisher", "HypersphericalUniform", "PowerSpherical", "sphere", "bessel"]
from .mixture import MixtureOfDiagonalNormals  # noqa: E402
from .normal import DiagonalNormal, FullCovNormal, standard_normal  # noqa: E402
from .sampling import RsampleAndLogProb  # noqa: E402
from .relaxed import GroupedRelaxedOneHotCategorical  # noqa: E402

__all__ += ["MixtureOfDiagonalNormals", "GroupedRelaxedOneHotCategorical", "DiagonalNormal", "FullCovNormal",
            "standard_normal", "RsampleAndLogProb"]
