"""Latent layers: pluggable, differentiable stochastic layers (one module per family)."""

from .base import LATENTS, LatentLayer, has_analytic_kl, kl_by_dimension, kl_estimate, slerp
from .gaussian import GaussianLatent
from .space import LatentSpace, latent_space_of

__all__ = ["LATENTS", "LatentLayer", "GaussianLatent", "has_analytic_kl", "kl_estimate", "kl_by_dimension", "slerp",
           "LatentSpace", "latent_space_of"]
from .categorical import RelaxedCategoricalLatent
from .full_cov import FullCovGaussianLatent
from .iaf import IAFLatent, IAFPosterior
from .mixture import MixtureLatent

__all__ += ["RelaxedCategoricalLatent", "FullCovGaussianLatent", "IAFLatent", "IAFPosterior", "MixtureLatent"]
from .power_spherical import PowerSphericalLatent
from .vmf import SphereLatent, VMFLatent

__all__ += ["SphereLatent", "VMFLatent", "PowerSphericalLatent"]
