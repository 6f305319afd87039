"""Model compositions speaking the protocol of ARCHITECTURE.md."""

from .base import MODELS, VAEOutput
from .build import build_model, build_net
from .hierarchical import HierarchicalVAE, build_hvae  # registers model type 'hvae'
from .vae import VAE

__all__ = ["MODELS", "VAEOutput", "VAE", "HierarchicalVAE", "build_model", "build_net", "build_hvae"]
