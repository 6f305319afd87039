"""The plots of a trained run, chosen by the geometry of the model's latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["latent_plots", "decode_mean", "write_plots", "conditional_samples", "caption"]

#: points per grid of the decoded-latent plots
_CIRCLE_POINTS = 16
_SPHERE_GRID = (16, 8)  # longitudes, latitude bands
_ENCODE_BATCH = 500
_MANIFOLD_QUANTILES = (0.05, 0.95)


def caption(kind: str, n: int | None = None, mean: bool = True, steps: int | None = None) -> str:
    """The title of an image grid: what it shows and, for decoded latent grids, what runs along each axis
    (the grids are pixel-exact images with no axes of their own). At most 56 characters: the narrowest grid,
    Frey faces' 20 x 21 px manifold, is about 420 px wide.

    Args:
        kind: ``samples``, ``reconstructions``, ``manifold``, ``circle``, ``sphere`` or ``interpolation``.
        n: the number of samples (``samples``).
        mean: samples show the mean of ``p(x|z)`` (True) or a draw from it.
        steps: points per interpolation path.

    Raises:
        ValueError: an unknown ``kind``.
    """
    lo, hi = (float(torch.special.ndtri(torch.tensor(q, dtype=torch.float64))) for q in _MANIFOLD_QUANTILES)
    captions = {
        "samples": f"{n} draws z ~ p(z), decoded: " + ("the mean of p(x|z)" if mean else "x ~ p(x|z)"),
        "reconstructions": "odd rows: data; even rows: their reconstructions",
        "manifold": f"z1 to the right, z2 up: {lo:.2f} to {hi:.2f} (N(0,1) 5%-95%)",
        "circle": "z on the circle: angle 0 to 2π in reading order",
        "sphere": "z on the sphere: longitude 0-2π across, north to south",
        "interpolation": f"each row: a latent path between two images, {steps} points",
    }
    if kind not in captions:
        raise ValueError(f"unknown caption {kind!r}; choose one of {sorted(captions)}")
    return captions[kind]


def latent_plots(space: Any) -> tuple[str, ...]:
    r"""The latent plots that suit a :class:`~vaekit.latents.LatentSpace`, chosen by its geometry.

    * ``"manifold"``: a 2-D Euclidean latent: decoder means on a grid of :math:`\mathcal N(0, 1)`
      quantiles (Kingma & Welling 2013, Fig. 4; :func:`vaekit.viz.latent_manifold`).
    * ``"circle"``: a circle (sphere geometry, ``dim == 2``): decoder means along the angle
      :math:`0..2\pi` (:func:`vaekit.viz.latent_circle`). A Gaussian-quantile grid would decode points
      off the circle, which the decoder never saw.
    * ``"sphere"``: :math:`S^2` (sphere geometry, ``dim == 3``): decoder means on a longitude/latitude
      grid (:func:`vaekit.viz.latent_sphere`).
    * ``"scatter"``: any space whose encodings have at least 2 coordinates (a product of layers, a
      simplex, a higher-dimensional latent...): encodings coloured by label, PCA above 2-D
      (:func:`vaekit.viz.latent_scatter`).

    Returns:
        the names, in the order above (empty for a 1-D latent).
    """
    kinds: list[str] = []
    decoded = {("euclidean", 2): "manifold", ("sphere", 2): "circle", ("sphere", 3): "sphere"}
    if (space.geometry, space.dim) in decoded:
        kinds.append(decoded[(space.geometry, space.dim)])
    if space.dim >= 2:
        kinds.append("scatter")
    return tuple(kinds)


def decode_mean(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """``z -> E[x|z]`` on the CPU: the mean of ``model.decode(z)`` for ``z`` ``(M, D)``, a ``(M, data_dim)`` tensor
    (what the image plots show); ``z`` is moved to the model's device first."""

    def fn(z: Tensor) -> Tensor:
        return model.decode(z.to(next(model.parameters()).device)).mean.cpu()

    return fn


@torch.no_grad()
def conditional_samples(model: nn.Module, x: Tensor, cond: dict[str, Any], per_row: int = 8, mean: bool = True
                        ) -> tuple[Tensor, str]:
    """Decoder means of a conditional model's samples for ``samples.png``, and the grid's title.

    A label condition: ``per_row`` draws ``z ~ p(z|y)`` for each class ``y`` in order, a row per class,
    ``(K * per_row, D)``. A mask condition (``cond`` holds the rows ``x``' ``mask`` and ``observed``): ``per_row``
    completions of each row of ``x``, a row per image, ``(len(x) * per_row, D)``. ``mean``: the mean of p(x|z, c)
    (True) or a draw from it.
    """
    from ..models.conditions import LabelCondition

    c = model.condition
    if isinstance(c, LabelCondition):
        labels = torch.arange(c.n_classes, device=x.device).repeat_interleave(per_row)
        return (model.sample(len(labels), mean=mean, label=labels),
                f"{per_row} draws z ~ p(z|y) per row, y = 0..{c.n_classes - 1}")
    rows = [model.sample(per_row, mean=mean, **{k: (v[i:i + 1] if k == "observed" else v) for k, v in cond.items()})
            for i in range(x.shape[0])]
    return torch.cat(rows), f"{per_row} completions per row, z ~ p(z|observed)"


def write_plots(run_dir: str | Path, model: nn.Module, x: Tensor, y: Tensor | None,
                image_shape: Sequence[int] | None, seed: int = 0, n_samples: int = 64) -> list[Path]:
    """Write a run's plots into ``run_dir/plots`` and return their paths.

    Image grids carry a :func:`caption` as their title. For image data (``image_shape`` ``(C, H, W)``):
    ``samples.png`` (64 prior samples' decoder means),
    ``reconstructions.png`` (the first 32 rows of ``x``) and the decoded latent plot of
    :func:`latent_plots` (``latent_manifold.png``, ``latent_circle.png`` or ``latent_sphere.png``).
    For every data set: ``latent_scatter.png`` (``model.encode`` of every row of ``x``, coloured by
    ``y``) when :func:`latent_plots` lists it, and ``training_curves.png`` from ``metrics.jsonl``.

    A conditional model (``model.condition``; :func:`vaekit.train.conditions.data_conditions`) is drawn given
    its condition: a label-conditioned one's ``samples.png`` has one row of 8 draws per class
    (:func:`conditional_samples`), a mask-conditioned one's shows 8 completions of each of the first 8 rows of
    ``x`` (observed pixels copied), and its reconstructions and latent scatter use each row's own condition;
    the decoded latent grids, which would need one fixed condition, are left out (for M2 too, whose label is a
    latent but whose decoder reads one).

    Args:
        run_dir: the run directory.
        model: speaks the protocol (``latent_space``, ``sample``, ``reconstruct``, ``encode``, ``decode``).
        x: ``(N, data_dim)`` rows to reconstruct and encode (on the model's device).
        y: ``(N,)`` labels or None.
        image_shape: ``(C, H, W)`` of one row, or None for non-image data.
        seed: seeds the prior samples (the global RNG is restored afterwards).
        n_samples: prior samples in ``samples.png`` (the pre-training check draws a few: with an autoregressive
            decoder every sample and reconstruction costs one network pass per pixel).
    """
    from .. import viz

    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    from ..train.conditions import condition_kwargs, data_conditions

    conditions = data_conditions(model, image_shape, has_labels=y is not None, data_name="the plotted rows")
    yd = None if y is None else y.to(x.device)

    def cond(a: int, b: int) -> dict[str, Any]:
        return condition_kwargs(conditions, x, yd, slice(a, b))
    kinds = latent_plots(model.latent_space)
    out: list[Path] = []
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if image_shape is not None:
            if conditions is None:
                out.append(viz.sample_grid(model.sample(n_samples).cpu(), image_shape, plots / "samples.png",
                                           title=caption("samples", n_samples)))
            else:
                imgs, title = conditional_samples(model, x[:8], cond(0, 8))
                out.append(viz.sample_grid(imgs.cpu(), image_shape, plots / "samples.png", nrow=8, title=title))
            xs = x[:32]
            out.append(viz.reconstruction_grid(xs.cpu(), model.reconstruct(xs, **cond(0, 32)).cpu(), image_shape,
                                               plots / "reconstructions.png", n=32, title=caption("reconstructions")))
            if getattr(model, "condition", None) is not None:
                # one fixed condition per grid is not what the model draws from; M2's label is a latent whose
                # conditions are None here, and its decoder needs a label all the same
                kinds = tuple(k for k in kinds if k == "scatter")
            dec = decode_mean(model)
            if "manifold" in kinds:
                out.append(viz.latent_manifold(dec, image_shape, plots / "latent_manifold.png",
                                               quantiles=_MANIFOLD_QUANTILES, title=caption("manifold")))
            if "circle" in kinds:
                out.append(viz.latent_circle(dec, image_shape, plots / "latent_circle.png", n=_CIRCLE_POINTS,
                                             title=caption("circle")))
            if "sphere" in kinds:
                out.append(viz.latent_sphere(dec, image_shape, plots / "latent_sphere.png", *_SPHERE_GRID,
                                             title=caption("sphere")))
        if "scatter" in kinds:
            z = torch.cat([model.encode(x[i:i + _ENCODE_BATCH], **cond(i, i + _ENCODE_BATCH)).cpu()
                           for i in range(0, x.shape[0], _ENCODE_BATCH)])
            out.append(viz.latent_scatter(z, None if y is None else y.cpu(), plots / "latent_scatter.png"))
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists() and metrics.stat().st_size > 0:
        # a posterior without a density (the Stein VAE) has no ELBO or KL to plot
        keys = ("elbo", "kl") if getattr(model, "posterior_density", True) else ("log_likelihood",)
        out.append(viz.training_curves(metrics, plots / "training_curves.png", keys=keys))
    return out
