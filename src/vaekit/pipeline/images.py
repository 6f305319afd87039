"""Images from a trained run: prior samples, reconstructions, latent interpolations."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .data import eval_data
from .plots import caption

__all__ = ["load_run_images", "sample_images", "reconstruct_images", "interpolate_images", "complete_run_images"]


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
    run, x, _ = _run_rows(run_dir, checkpoint, split, data_dir)
    return run, x


def _run_rows(run_dir: str | Path, checkpoint: str, split: str, data_dir: str | None) -> tuple[Any, Tensor, Any]:
    """``(run, x, cond)``: :func:`load_run_images`'s two and ``cond(rows)``, the keyword arguments of ``x[rows]``
    for a conditional model (``{}`` for the others; :func:`vaekit.train.conditions.condition_kwargs`)."""
    from ..train.conditions import condition_kwargs, data_conditions

    run = _image_run(run_dir, checkpoint)
    if data_dir is not None:
        run.config.data.data_dir = data_dir
    x, y, _ = eval_data(run.config, split)
    conditions = data_conditions(run.model, run.image_shape, has_labels=y is not None, data_name=f"the {split} split")
    return run, x, lambda rows: condition_kwargs(conditions, x, y, rows)


def sample_images(run_dir: str | Path, n: int = 64, *, checkpoint: str = "best", seed: int = 0, mean: bool = True,
                  out: str | Path | None = None, overwrite: bool = False,
                  condition: dict[str, Any] | None = None) -> Path:
    """Save ``n`` draws ``x ~ p(x|z), z ~ p(z)`` of a run's model as an image grid (``model.sample``).

    A label-conditioned model (``model.condition: {type: label}``) draws ``z ~ p(z|y)`` for ``condition``
    (``{"label": 3}``), or without one 8 draws per class, a row each (``n`` is then ignored).

    Args:
        condition: a conditional model's condition, e.g. ``{"label": 3}``.
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

    from ..models.conditions import LabelCondition
    from .plots import conditional_samples

    _check_n(n)
    name = "samples-" + "-".join(f"{k}{v}" for k, v in condition.items()) + ".png" if condition else "samples.png"
    dest = _plan(run_dir, out, name, overwrite)
    run = _image_run(run_dir, checkpoint)
    c = getattr(run.model, "condition", None)
    if c is None and condition:
        raise ValueError(f"{run_dir}: its model is unconditional; --condition applies to conditional runs")
    if c is not None and not isinstance(c, LabelCondition):
        raise ValueError(f"{run_dir}: its model completes images given the observed pixels; draw completions with "
                         "vaekit complete RUN")
    nrow = None
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if c is not None and not condition:
            x, title = conditional_samples(run.model, torch.zeros(0), {}, mean=mean)
            nrow = 8
        else:
            x = run.model.sample(n, mean=mean, **(condition or {}))
            title = caption("samples", n, mean) if not condition else \
                f"{n} draws z ~ p(z|c), " + ", ".join(f"{k} = {v}" for k, v in condition.items())
    return _save(lambda p: viz.sample_grid(x, run.image_shape, p, nrow=nrow, title=title), dest)


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
    run, x, cond = _run_rows(run_dir, checkpoint, split, data_dir)
    c = cond(slice(0, n))  # a conditional model reconstructs each row given its own condition
    x = x[:n]
    with torch.no_grad():
        rec = run.model.reconstruct(x, **c)
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
    run, x, cond = _run_rows(run_dir, checkpoint, split, data_dir)
    if x.shape[0] < 2 * pairs:
        raise ValueError(f"the {split} split has {x.shape[0]} examples; {pairs} pairs need {2 * pairs}")
    model = run.model
    # a conditional model: each row encoded given its own condition, the path decoded given its first end's
    c, first = cond(slice(0, 2 * pairs)), cond(slice(0, 2 * pairs, 2))
    with torch.no_grad():
        z = model.encode(x[:2 * pairs], **c)                                   # (2P, D)
        path = model.latent_space.interpolate(z[0::2], z[1::2], steps)         # (steps, P, D)
        imgs = model.decode(path, **first).mean                                # (steps, P, data_dim)
    imgs = imgs.transpose(0, 1).reshape(steps * pairs, -1)                     # one row per pair
    title = caption("interpolation", steps=steps)
    if pairs == 1:
        return _save(lambda p: viz.interpolation_strip(imgs, run.image_shape, p, title=title), dest)
    return _save(lambda p: viz.sample_grid(imgs, run.image_shape, p, nrow=steps, title=title), dest)


def complete_run_images(run_dir: str | Path, mask: str | None = None, n_inputs: int = 8, n_samples: int = 7, *,
                        checkpoint: str = "best", seed: int = 0, split: str = "test", data_dir: str | None = None,
                        out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Completion grid of a mask-conditioned run of ``vaekit train``: one row per ``split`` row, the observed part
    (hidden pixels grey), ``n_samples`` completions ``z ~ p(z|x_obs)`` and the truth.

    Args:
        mask: the observed region (:data:`vaekit.data.MASKS`); None: the one the model was trained with
            (``model.condition.observe``).

    Raises:
        ValueError: a model without a mask condition, an unknown mask.
    """
    from ..data import make_mask
    from ..models.conditions import MaskCondition

    _check_n(n_inputs)
    run, x, _ = _run_rows(run_dir, checkpoint, split, data_dir)
    c = getattr(run.model, "condition", None)
    if not isinstance(c, MaskCondition):
        raise ValueError(f"{run_dir}: a {type(run.model).__name__} without a mask condition does not complete images; "
                         "train a cvae with model.condition: {type: mask, observe: quadrant1}")
    mask = mask or c.observe
    m = make_mask(mask, run.image_shape)
    dest = _plan(run_dir, out, f"complete-{mask}.png", overwrite)
    x = x[:n_inputs]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        fills = [run.model.sample(x.shape[0], mask=m, observed=x) for _ in range(n_samples)]
    return completion_grid(x, m, fills, run.image_shape, mask, dest)


def completion_grid(x: Tensor, mask: Tensor, fills: list[Tensor], image_shape: Sequence[int], mask_name: str,
                    dest: Path) -> Path:
    """Save the completion grid to ``dest``: one row per row of ``x`` ``(B, D)``: its observed part (``mask``
    True; hidden pixels grey), each completion of ``fills`` (``(B, D)`` each), then the truth."""
    from .. import viz

    shown = torch.where(mask, x, torch.full_like(x, 0.5))
    rows = torch.stack([shown, *fills, x], 1).reshape(-1, x.shape[1])
    return _save(lambda p: viz.sample_grid(rows, image_shape, p, nrow=len(fills) + 2,
                                           title=f"{mask_name} observed: input, {len(fills)} completions, truth"), dest)
