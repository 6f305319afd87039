"""Model compositions speaking the protocol of ARCHITECTURE.md."""

from .base import MODELS, LatentVariableModel, VAEOutput
from .build import build_model, build_net
from .hierarchical import HierarchicalVAE, StackedPosterior, StackedPrior, build_hvae  # registers model type 'hvae'
from .vae import VAE

__all__ = ["MODELS", "VAEOutput", "LatentVariableModel", "VAE", "HierarchicalVAE", "StackedPosterior",
           "StackedPrior", "build_model", "build_net", "build_hvae"]
