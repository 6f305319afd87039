"""vaekit: variational autoencoders built from pluggable, differentiable latent layers."""

from . import distributions  # noqa: F401  (registers KLs)
from .latents import LATENTS, GaussianLatent, LatentLayer
from .likelihoods import LIKELIHOODS, BernoulliLikelihood, CategoricalLikelihood, GaussianLikelihood
from .models import MODELS, VAE, VAEOutput, build_model
from .nets import MLP, NETS

__version__ = "0.1.0"

__all__ = ["LATENTS", "LatentLayer", "GaussianLatent", "LIKELIHOODS", "BernoulliLikelihood", "GaussianLikelihood",
           "CategoricalLikelihood", "MODELS", "VAE", "VAEOutput", "build_model", "MLP", "NETS"]
