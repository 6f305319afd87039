"""Latent layers: pluggable, differentiable stochastic layers (one module per family)."""

from .base import LATENTS, LatentLayer, has_analytic_kl, kl_term, slerp
from .gaussian import GaussianLatent

__all__ = ["LATENTS", "LatentLayer", "GaussianLatent", "has_analytic_kl", "kl_term", "slerp"]
