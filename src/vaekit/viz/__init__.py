"""Plots for VAE runs (matplotlib, Agg canvas); every function saves a PNG and returns its path."""

from .plots import (
    LABEL_COLOURS,
    METRIC_LABELS,
    SPLIT_COLOURS,
    circle_points,
    grid_pixel_size,
    interpolation_strip,
    latent_circle,
    latent_manifold,
    latent_scatter,
    latent_sphere,
    manifold_grid,
    read_jsonl,
    reconstruction_grid,
    sample_grid,
    sphere_grid,
    training_curves,
)

__all__ = [
    "LABEL_COLOURS",
    "METRIC_LABELS",
    "SPLIT_COLOURS",
    "circle_points",
    "grid_pixel_size",
    "interpolation_strip",
    "latent_circle",
    "latent_manifold",
    "latent_scatter",
    "latent_sphere",
    "manifold_grid",
    "read_jsonl",
    "reconstruction_grid",
    "sample_grid",
    "sphere_grid",
    "training_curves",
]
