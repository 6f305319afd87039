"""Model compositions speaking the protocol of ARCHITECTURE.md."""

from .base import MODELS, VAEOutput
from .build import build_model, build_net
from .vae import VAE

__all__ = ["MODELS", "VAEOutput", "VAE", "build_model", "build_net"]
