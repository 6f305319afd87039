"""Images from a trained run: prior samples, reconstructions, latent interpolations."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from .data import eval_data
from .plots import caption

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


def _plan(run_dir: str | Path, out: str | Path | None, name: str, overwrite: bool) -> Path:
    """The PNG to write, settled before any work: ``out`` (a file or a folder), or ``run_dir/plots/name`` with
    the next free number when taken (``samples-2.png``), so an earlier image is never replaced unasked."""
    from ..train import plan_output

    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    if out is not None and not (Path(out).is_dir() or str(out).endswith(("/", os.sep))) \
            and Path(out).suffix.lower() != ".png":
        raise ValueError(f"--out {out}: images are saved as PNG; give a path ending in .png (or a folder)")
    return plan_output(out, Path(run_dir) / "plots" / name, overwrite=overwrite)


def _save(draw: Callable[[Path], Path], dest: Path) -> Path:
    """``draw(dest)``; if the file system refuses it, draw into a temporary file instead so that the image
    is not lost, and raise :class:`~vaekit.train.OutputError` naming both."""
    from ..train import OutputError

    try:
        return draw(dest)
    except OSError as e:
        reason = e.strerror or str(e)
        fd, tmp = tempfile.mkstemp(prefix="vaekit-", suffix=f"-{dest.name}")
        os.close(fd)
        try:
            draw(Path(tmp))
        except OSError:
            os.unlink(tmp)
            raise OutputError(f"could not write {dest}: {reason}", dest) from None
        raise OutputError(f"could not write {dest}: {reason}; the image was saved to {tmp} instead", dest) from None


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
                  out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Save ``n`` draws ``x ~ p(x|z), z ~ p(z)`` of a run's model as an image grid (``model.sample``).

    Args:
        mean: show the mean of ``p(x|z)`` (True) or a draw from it.
        seed: seeds the draws (the global RNG is restored afterwards).
        out: the PNG path or a folder (default ``run_dir/plots/samples.png``, numbered when taken).
        overwrite: replace the file ``out`` names if it exists (otherwise an error, raised before any work).

    Returns:
        the PNG path.

    Raises:
        OutputError: ``out`` exists or cannot be written (before the work), or the write failed (the image
            is then saved to a temporary file, named in the message).
    """
    from .. import viz

    _check_n(n)
    dest = _plan(run_dir, out, "samples.png", overwrite)
    run = _image_run(run_dir, checkpoint)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        x = run.model.sample(n, mean=mean)
    return _save(lambda p: viz.sample_grid(x, run.image_shape, p, title=caption("samples", n, mean)), dest)


def reconstruct_images(run_dir: str | Path, n: int = 32, *, checkpoint: str = "best", split: str = "test",
                       data_dir: str | None = None, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Save the first ``n`` rows of ``split`` next to ``model.reconstruct`` of them (originals on top).

    ``out`` and ``overwrite`` as in :func:`sample_images`.

    Returns:
        the PNG path (default ``run_dir/plots/reconstructions.png``, numbered when taken).
    """
    from .. import viz

    _check_n(n)
    dest = _plan(run_dir, out, "reconstructions.png", overwrite)
    run, x = load_run_images(run_dir, checkpoint, split, data_dir)
    x = x[:n]
    with torch.no_grad():
        rec = run.model.reconstruct(x)
    return _save(lambda p: viz.reconstruction_grid(x, rec, run.image_shape, p, n=n,
                                                   title=caption("reconstructions")), dest)


def interpolate_images(run_dir: str | Path, steps: int = 10, pairs: int = 4, *, checkpoint: str = "best",
                       split: str = "test", data_dir: str | None = None, out: str | Path | None = None,
                       overwrite: bool = False) -> Path:
    """Decode latent paths between the codes of ``pairs`` pairs of ``split`` rows, ``steps`` points each.

    The codes are ``model.encode`` of rows ``(0, 1), (2, 3), ...``; each path follows the latent space's
    geometry (``model.latent_space.interpolate``: great circles on a sphere, straight lines elsewhere) and
    is decoded to the mean of ``p(x|z)``. One pair is saved as a strip, several as one row per pair.

    ``out`` and ``overwrite`` as in :func:`sample_images`.

    Returns:
        the PNG path (default ``run_dir/plots/interpolation.png``, numbered when taken).

    Raises:
        ValueError: ``steps < 2``, ``pairs < 1``, too few rows, or a latent space with no single path (a
            stacked model's product space).
    """
    from .. import viz

    if steps < 2 or pairs < 1:
        raise ValueError(f"need steps >= 2 and pairs >= 1, got {steps} and {pairs}")
    dest = _plan(run_dir, out, "interpolation.png", overwrite)
    run, x = load_run_images(run_dir, checkpoint, split, data_dir)
    if x.shape[0] < 2 * pairs:
        raise ValueError(f"the {split} split has {x.shape[0]} examples; {pairs} pairs need {2 * pairs}")
    model = run.model
    with torch.no_grad():
        z = model.encode(x[:2 * pairs])                                        # (2P, D)
        path = model.latent_space.interpolate(z[0::2], z[1::2], steps)         # (steps, P, D)
        imgs = model.decode(path).mean                                         # (steps, P, data_dim)
    imgs = imgs.transpose(0, 1).reshape(steps * pairs, -1)                     # one row per pair
    title = caption("interpolation", steps=steps)
    if pairs == 1:
        return _save(lambda p: viz.interpolation_strip(imgs, run.image_shape, p, title=title), dest)
    return _save(lambda p: viz.sample_grid(imgs, run.image_shape, p, nrow=steps, title=title), dest)
