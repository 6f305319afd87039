"""Images from a trained run: prior samples, reconstructions, latent interpolations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .data import eval_data

__all__ = ["load_run_images", "sample_images", "reconstruct_images", "interpolate_images"]


def _image_run(run_dir: str | Path, checkpoint: str) -> Any:
    from ..train import load_run

    run = load_run(run_dir, checkpoint)
    if run.image_shape is None:
        raise ValueError("this run's data are not images (no image_shape recorded); nothing to draw")
    return run


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


def _out(run: Any, out: str | Path | None, name: str) -> Path:
    return Path(out) if out is not None else run.run_dir / "plots" / name


def load_run_images(run_dir: str | Path, checkpoint: str = "best", split: str = "test",
                    data_dir: str | None = None) -> tuple[Any, Tensor]:
    """A run of image data (:func:`vaekit.train.load_run`, on the CPU) and its ``split`` rows as training saw them.

    Returns:
        ``(run, x)``: the :class:`~vaekit.train.LoadedRun` (``run.image_shape`` is ``(C, H, W)``) and ``x``
        ``(N, C*H*W)`` (:func:`vaekit.pipeline.eval_data`).

    Raises:
        ValueError: the run's data are not images; and what ``load_run`` and ``eval_data`` raise.
    """
    run = _image_run(run_dir, checkpoint)
    if data_dir is not None:
        run.config.data.data_dir = data_dir
    x, _, _ = eval_data(run.config, split)
    return run, x


def sample_images(run_dir: str | Path, n: int = 64, *, checkpoint: str = "best", seed: int = 0, mean: bool = True,
                  out: str | Path | None = None) -> Path:
    """Save ``n`` draws ``x ~ p(x|z), z ~ p(z)`` of a run's model as an image grid (``model.sample``).

    Args:
        mean: show the mean of ``p(x|z)`` (True) or a draw from it.
        seed: seeds the draws (the global RNG is restored afterwards).
        out: the PNG path (default ``run_dir/plots/samples.png``).

    Returns:
        the PNG path.
    """
    from .. import viz

    _check_n(n)
    run = _image_run(run_dir, checkpoint)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        x = run.model.sample(n, mean=mean)
    return viz.sample_grid(x, run.image_shape, _out(run, out, "samples.png"))


def reconstruct_images(run_dir: str | Path, n: int = 32, *, checkpoint: str = "best", split: str = "test",
                       data_dir: str | None = None, out: str | Path | None = None) -> Path:
    """Save the first ``n`` rows of ``split`` next to ``model.reconstruct`` of them (originals on top).

    Returns:
        the PNG path (default ``run_dir/plots/reconstructions.png``).
    """
    from .. import viz

    _check_n(n)
    run, x = load_run_images(run_dir, checkpoint, split, data_dir)
    x = x[:n]
    with torch.no_grad():
        rec = run.model.reconstruct(x)
    return viz.reconstruction_grid(x, rec, run.image_shape, _out(run, out, "reconstructions.png"), n=n)


def interpolate_images(run_dir: str | Path, steps: int = 10, pairs: int = 4, *, checkpoint: str = "best",
                       split: str = "test", data_dir: str | None = None, out: str | Path | None = None) -> Path:
    """Decode latent paths between the codes of ``pairs`` pairs of ``split`` rows, ``steps`` points each.

    The codes are ``model.encode`` of rows ``(0, 1), (2, 3), ...``; each path follows the latent space's
    geometry (``model.latent_space.interpolate``: great circles on a sphere, straight lines elsewhere) and
    is decoded to the mean of ``p(x|z)``. One pair is saved as a strip, several as one row per pair.

    Returns:
        the PNG path (default ``run_dir/plots/interpolation.png``).

    Raises:
        ValueError: ``steps < 2``, ``pairs < 1``, too few rows, or a latent space with no single path (a
            stacked model's product space).
    """
    from .. import viz

    if steps < 2 or pairs < 1:
        raise ValueError(f"need steps >= 2 and pairs >= 1, got {steps} and {pairs}")
    run, x = load_run_images(run_dir, checkpoint, split, data_dir)
    if x.shape[0] < 2 * pairs:
        raise ValueError(f"the {split} split has {x.shape[0]} examples; {pairs} pairs need {2 * pairs}")
    model = run.model
    with torch.no_grad():
        z = model.encode(x[:2 * pairs])                                        # (2P, D)
        path = model.latent_space.interpolate(z[0::2], z[1::2], steps)         # (steps, P, D)
        imgs = model.decode(path).mean                                         # (steps, P, data_dim)
    imgs = imgs.transpose(0, 1).reshape(steps * pairs, -1)                     # one row per pair
    dest = _out(run, out, "interpolation.png")
    if pairs == 1:
        return viz.interpolation_strip(imgs, run.image_shape, dest)
    return viz.sample_grid(imgs, run.image_shape, dest, nrow=steps)
