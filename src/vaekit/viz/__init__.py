"""Plots for VAE runs (matplotlib, Agg canvas); every function saves a PNG and returns its path."""

from .plots import (
    grid_pixel_size,
    interpolation_strip,
    latent_manifold,
    latent_scatter,
    manifold_grid,
    read_jsonl,
    reconstruction_grid,
    sample_grid,
    training_curves,
)

__all__ = [
    "grid_pixel_size",
    "interpolation_strip",
    "latent_manifold",
    "latent_scatter",
    "manifold_grid",
    "read_jsonl",
    "reconstruction_grid",
    "sample_grid",
    "training_curves",
]
