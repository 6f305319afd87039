"""Plots for VAE runs: sample grids, reconstructions, decoded latent grids (a 2-D Gaussian manifold, a
circle, a sphere), latent scatter plots, training curves and interpolation strips.

Every function draws on its own :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot
state, no ``plt.show``), saves one PNG and returns its :class:`~pathlib.Path`. Image grids are
drawn pixel-exact: each data pixel becomes a ``scale x scale`` block, so the PNG size is known
in advance (see :func:`grid_pixel_size`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

PathLike = str | os.PathLike[str]

#: Pixels per inch used for every saved figure.
DPI = 100
#: Height in pixels of the title strip above an image grid.
TITLE_PX = 24
#: Grid lines between images, in data pixels, and their grey level.
PAD = 1
PAD_VALUE = 0.5

#: One colour per data split in every plot (matplotlib's default cycle would give a split the next free
#: colour of each panel, so ``val`` changed colour wherever ``train`` had no points).
SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
#: Colours of integer labels 0..9 (``tab10``), the same for a label in every plot whichever labels occur
#: (a colour map normalised over the labels present gave label 3 another colour when 4..9 were absent).
LABEL_COLOURS = tuple(f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray",
                                           "olive", "cyan"))
#: Axis labels of the metrics the trainer logs (per example, natural log); others are labelled by name.
METRIC_LABELS = {
    "elbo": "ELBO (nats)", "kl": "KL(q(z|x) || p(z)) (nats)", "log_likelihood": "E_q log p(x|z) (nats)",
    "iwae_bound": "IWAE bound (nats)", "loss": "loss (nats)", "ess": "effective sample size", "beta": "KL weight β",
    "lr": "learning rate",
}
STEP_LABELS = {"step": "optimiser step", "epoch": "epoch"}


# ----------------------------------------------------------------------------- helpers


def _out_path(path: PathLike) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"plots are saved as PNG; path must end in .png, got {str(path)!r}")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(image_shape) != 3 or any(not isinstance(s, (int, np.integer)) or s <= 0 for s in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) with positive ints, got {tuple(image_shape)!r}")
    c, h, w = (int(s) for s in image_shape)
    if c not in (1, 3):
        raise ValueError(f"image_shape must have 1 (grey) or 3 (RGB) channels, got C={c}")
    return c, h, w


def _as_images(images: Tensor | np.ndarray, image_shape: Sequence[int], what: str = "images") -> np.ndarray:
    """``(N, C*H*W)`` row-major -> ``(N, H, W, C)`` float numpy, checking the sizes."""
    c, h, w = _check_image_shape(image_shape)
    a = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if a.ndim != 2:
        raise ValueError(f"{what} must have shape (N, D) with D = C*H*W = {c * h * w}, got {tuple(a.shape)}")
    if a.shape[1] != c * h * w:
        raise ValueError(f"{what} have D = {a.shape[1]} features but image_shape {(c, h, w)} needs {c * h * w}")
    if a.shape[0] == 0:
        raise ValueError(f"{what}: nothing to plot (N = 0)")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return a.reshape(-1, c, h, w).transpose(0, 2, 3, 1)


def grid_pixel_size(n: int, image_shape: Sequence[int], nrow: int, scale: int, title: bool = False) -> tuple[int, int]:
    """``(height, width)`` in PNG pixels of a grid of ``n`` images with ``nrow`` images per row.

    ``rows = ceil(n / nrow)``; each image is ``H x W`` data pixels with ``PAD`` between images
    and around the border; every data pixel is ``scale x scale`` PNG pixels; a title adds
    ``TITLE_PX`` rows on top.
    """
    _, h, w = _check_image_shape(image_shape)
    rows = math.ceil(n / nrow)
    gh = rows * (h + PAD) + PAD
    gw = nrow * (w + PAD) + PAD
    return gh * scale + (TITLE_PX if title else 0), gw * scale


def _tile(imgs: np.ndarray, nrow: int) -> np.ndarray:
    """``(N, H, W, C)`` -> one ``(rows*(H+PAD)+PAD, nrow*(W+PAD)+PAD, C)`` mosaic, row by row."""
    n, h, w, c = imgs.shape
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + PAD) + PAD, nrow * (w + PAD) + PAD, c), PAD_VALUE)
    for i in range(n):
        r, col = divmod(i, nrow)
        y0, x0 = PAD + r * (h + PAD), PAD + col * (w + PAD)
        grid[y0 : y0 + h, x0 : x0 + w] = imgs[i]
    return grid


def _auto_scale(grid_w: int, scale: int | None) -> int:
    if scale is None:
        # aim for a figure about 400-800 px wide without blurring: integer upscaling only
        return max(1, min(12, math.ceil(400 / grid_w)))
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    return scale


def _save_grid(grid: np.ndarray, path: PathLike, scale: int | None, title: str | None) -> Path:
    """Save a mosaic pixel-exact: size ``(gh*scale + title strip, gw*scale)`` PNG pixels."""
    out = _out_path(path)
    gh, gw, c = grid.shape
    s = _auto_scale(gw, scale)
    img_h, img_w = gh * s, gw * s
    top = TITLE_PX if title else 0
    total_h = img_h + top
    # +0.25 px: Agg truncates figsize*dpi to int, so a float just below an integer would lose a row
    fig = Figure(figsize=((img_w + 0.25) / DPI, (total_h + 0.25) / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, img_h / total_h))
    shown = np.clip(grid, 0.0, 1.0)  # display range only; data outside [0, 1] saturates
    if c == 1:
        ax.imshow(shown[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    else:
        ax.imshow(shown, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    if title:
        fig.text(0.5, 1.0 - (top / 2) / total_h, title, ha="center", va="center", fontsize=10)
    fig.savefig(out, dpi=DPI, facecolor="white")
    return out


# ----------------------------------------------------------------------------- image grids


def sample_grid(images: Tensor, image_shape: Sequence[int], path: PathLike, nrow: int | None = None,
                title: str | None = None, scale: int | None = None) -> Path:
    """Save a grid of images (e.g. decoder means of prior samples :math:`x \\sim p_\\theta(x|z), z \\sim p(z)`).

    Args:
        images: ``(N, C*H*W)``, flattened row-major, values in ``[0, 1]`` (clipped for display).
        image_shape: ``(C, H, W)`` with ``C`` in {1, 3}.
        path: output ``.png``.
        nrow: images per row; default ``ceil(sqrt(N))``.
        title: optional title strip.
        scale: PNG pixels per data pixel; default chosen so the grid is about 400 px wide.

    Returns:
        the PNG path; its size is :func:`grid_pixel_size` ``(N, image_shape, nrow, scale, title)``.
    """
    imgs = _as_images(images, image_shape)
    n = imgs.shape[0]
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    return _save_grid(_tile(imgs, min(nrow, n)), path, scale, title)


def reconstruction_grid(x: Tensor, x_rec: Tensor, image_shape: Sequence[int], path: PathLike, n: int = 16,
                        ncol: int = 8, title: str | None = None, scale: int | None = None) -> Path:
    """Save originals and their reconstructions in alternating rows (originals first).

    Args:
        x, x_rec: ``(N, C*H*W)`` each, same shape; the first ``min(n, N)`` pairs are shown.
        n: pairs to show; ``ncol`` pairs per row pair.

    Returns:
        the PNG path; size :func:`grid_pixel_size` ``(2*ncol*ceil(m/ncol), image_shape, ncol, scale, title)``
        with ``m = min(n, N)`` and ``ncol`` capped at ``m``.
    """
    a = _as_images(x, image_shape, "x")
    b = _as_images(x_rec, image_shape, "x_rec")
    if a.shape != b.shape:
        raise ValueError(f"x and x_rec must have the same shape, got {tuple(x.shape)} and {tuple(x_rec.shape)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or isinstance(ncol, bool) or not isinstance(ncol, int) or ncol < 1:
        raise ValueError(f"n and ncol must be positive ints, got n={n!r}, ncol={ncol!r}")
    m = min(n, a.shape[0])
    ncol = min(ncol, m)
    rows = math.ceil(m / ncol)
    blank = np.full(a.shape[1:], PAD_VALUE)
    tiles = []
    for r in range(rows):
        idx = range(r * ncol, (r + 1) * ncol)
        tiles += [a[i] if i < m else blank for i in idx]
        tiles += [b[i] if i < m else blank for i in idx]
    return _save_grid(_tile(np.stack(tiles), ncol), path, scale, title)


def interpolation_strip(images: Tensor, image_shape: Sequence[int], path: PathLike, title: str | None = None,
                        scale: int | None = None) -> Path:
    """Save decoded points along a latent path (e.g. ``LatentLayer.interpolate(z0, z1, steps)``) as one row.

    Args:
        images: ``(steps, C*H*W)`` decoder means in path order, ``steps >= 2``.

    Returns:
        the PNG path; size :func:`grid_pixel_size` ``(steps, image_shape, steps, scale, title)``.
    """
    imgs = _as_images(images, image_shape)
    if imgs.shape[0] < 2:
        raise ValueError(f"an interpolation needs at least 2 steps, got {imgs.shape[0]}")
    return _save_grid(_tile(imgs, imgs.shape[0]), path, scale, title)


# ----------------------------------------------------------------------------- latent space


def manifold_grid(n: int = 20, quantiles: tuple[float, float] = (0.05, 0.95)) -> Tensor:
    r"""Latent points of a 2-D manifold plot, Kingma & Welling (2013) Fig. 4 (arXiv:1312.6114).

    Linearly spaced quantiles :math:`u_i = q_0 + (q_1 - q_0)\,i/(n-1)` are mapped through the
    inverse CDF of :math:`\mathcal N(0, 1)`, :math:`z_i = \Phi^{-1}(u_i)` (``torch.special.ndtri``),
    so the grid covers the prior's mass evenly. The ends must stay inside (0, 1) because
    :math:`\Phi^{-1}(0) = -\infty`.

    Returns:
        ``(n*n, 2)`` float32, row-major over the displayed grid: entry ``r*n + c`` is
        ``(z_c, z_{n-1-r})`` so ``z_1`` grows to the right and ``z_2`` grows upward.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    lo, hi = float(quantiles[0]), float(quantiles[1])
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(f"quantiles must satisfy 0 < lo < hi < 1, got {quantiles!r}")
    z = torch.special.ndtri(torch.linspace(lo, hi, n, dtype=torch.float64)).to(torch.float32)
    z1 = z.repeat(n)                                # column index -> z_1
    z2 = z.flip(0).repeat_interleave(n)             # row index (top first) -> z_2, decreasing
    return torch.stack([z1, z2], dim=1)             # (n*n, 2)


def latent_manifold(decode_mean: Callable[[Tensor], Tensor], image_shape: Sequence[int], path: PathLike,
                    n: int = 20, quantiles: tuple[float, float] = (0.05, 0.95), title: str | None = None,
                    scale: int | None = None) -> Path:
    """Save the learned 2-D data manifold: decoder means on the :func:`manifold_grid` points.

    Args:
        decode_mean: maps ``(M, 2)`` latents to ``(M, C*H*W)`` decoder means (called once under
            ``torch.no_grad``).
        n: points per axis (``n*n`` images).
        quantiles: prior quantiles of the first and last grid line.

    Returns:
        the PNG path; size :func:`grid_pixel_size` ``(n*n, image_shape, n, scale, title)``.
    """
    return _decode_grid(decode_mean, manifold_grid(n, quantiles), image_shape, n, path, scale, title)


def _decode_grid(decode_mean: Callable[[Tensor], Tensor], z: Tensor, image_shape: Sequence[int], nrow: int,
                 path: PathLike, scale: int | None, title: str | None) -> Path:
    """Decode the latent points ``z`` ``(M, d)`` (once, under no_grad) and save the means as a grid, row-major."""
    with torch.no_grad():
        out = decode_mean(z)
    if not isinstance(out, Tensor):
        raise TypeError(f"decode_mean must return a Tensor, got {type(out).__name__}")
    m, d = z.shape
    if out.dim() != 2 or out.shape[0] != m:
        raise ValueError(f"decode_mean must map (M, {d}) latents to (M, D) means; for M={m} it returned "
                         f"{tuple(out.shape)}")
    imgs = _as_images(out, image_shape, "decode_mean output")
    return _save_grid(_tile(imgs, nrow), path, scale, title)


def circle_points(n: int = 16) -> Tensor:
    r"""``n`` evenly spaced points on the unit circle, :math:`z_i = (\cos\theta_i, \sin\theta_i)`,
    :math:`\theta_i = 2\pi i / n` (``i = 0..n-1``; :math:`2\pi` is :math:`\theta_0` again).

    Under the uniform prior on :math:`S^1` these are even quantiles of the angle, the circle's
    analogue of :func:`manifold_grid`. Returns ``(n, 2)`` float32.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    theta = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return torch.stack([theta.cos(), theta.sin()], 1).to(torch.float32)


def sphere_grid(n_lon: int = 16, n_lat: int = 8) -> Tensor:
    r"""A longitude/latitude grid on the unit sphere :math:`S^2` with equal-area latitude bands.

    Longitudes :math:`\phi_j = 2\pi j / n_{lon}`; heights :math:`z_3 = \sin(\mathrm{lat}_i)` at the
    midpoints of ``n_lat`` equal intervals of :math:`[-1, 1]` (top row first). By Archimedes'
    theorem :math:`z_3` is uniform under the uniform prior on :math:`S^2`, so the rows are even
    prior quantiles, as in :func:`manifold_grid`; the poles themselves are not drawn.

    Returns:
        ``(n_lat * n_lon, 3)`` float32 unit vectors, row-major: entry ``r * n_lon + c`` has longitude
        :math:`\phi_c` and the ``r``-th highest latitude.
    """
    for name, v in (("n_lon", n_lon), ("n_lat", n_lat)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an int >= 2, got {v!r}")
    h = 1 - (2 * torch.arange(n_lat, dtype=torch.float64) + 1) / n_lat      # midpoints, top first
    phi = torch.arange(n_lon, dtype=torch.float64) * (2 * math.pi / n_lon)
    r = (1 - h ** 2).sqrt()
    z = torch.stack([r[:, None] * phi.cos()[None, :], r[:, None] * phi.sin()[None, :],
                     h[:, None].expand(n_lat, n_lon)], -1)
    return z.reshape(-1, 3).to(torch.float32)


def latent_circle(decode_mean: Callable[[Tensor], Tensor], image_shape: Sequence[int], path: PathLike,
                  n: int = 16, nrow: int = 8, title: str | None = None, scale: int | None = None) -> Path:
    r"""Save decoder means along a circle latent (``z`` on :math:`S^1`): the :func:`circle_points`,
    angle 0 to :math:`2\pi` in reading order, ``nrow`` per row.

    Args:
        decode_mean: maps ``(M, 2)`` unit vectors to ``(M, C*H*W)`` decoder means.

    Returns:
        the PNG path; size :func:`grid_pixel_size` ``(n, image_shape, nrow, scale, title)``.
    """
    return _decode_grid(decode_mean, circle_points(n), image_shape, nrow, path, scale, title)


def latent_sphere(decode_mean: Callable[[Tensor], Tensor], image_shape: Sequence[int], path: PathLike,
                  n_lon: int = 16, n_lat: int = 8, title: str | None = None, scale: int | None = None) -> Path:
    r"""Save decoder means on the :func:`sphere_grid` of :math:`S^2`: one row per latitude band (north
    first), longitude 0 to :math:`2\pi` along each row.

    Args:
        decode_mean: maps ``(M, 3)`` unit vectors to ``(M, C*H*W)`` decoder means.

    Returns:
        the PNG path; size :func:`grid_pixel_size` ``(n_lon * n_lat, image_shape, n_lon, scale, title)``.
    """
    return _decode_grid(decode_mean, sphere_grid(n_lon, n_lat), image_shape, n_lon, path, scale, title)


def latent_scatter(z: Tensor, labels: Tensor | None, path: PathLike, title: str | None = None,
                   size_px: tuple[int, int] = (600, 600)) -> Path:
    """Scatter plot of latent codes (e.g. posterior means) coloured by label.

    For ``D > 2`` the codes are projected on their first two principal components
    (``sklearn.decomposition.PCA``) and the title says so, with the explained variance.

    Args:
        z: ``(N, D)`` with ``D >= 2``.
        labels: ``(N,)`` labels or ``None`` (one colour). Labels 0..9 get :data:`LABEL_COLOURS` (label ``c`` the
            same colour in every plot) and a legend; other labels a ``viridis`` scale with a colour bar.
        size_px: ``(width, height)`` of the PNG in pixels.
    """
    out = _out_path(path)
    a = z.detach().cpu().numpy() if isinstance(z, Tensor) else np.asarray(z)
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] < 1:
        raise ValueError(f"z must have shape (N, D) with N >= 1 and D >= 2, got {tuple(a.shape)}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("z contains NaN or infinite values")
    lab = None
    if labels is not None:
        lab = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
        if lab.shape != (a.shape[0],):
            raise ValueError(f"labels must have shape ({a.shape[0]},) to match z, got {tuple(lab.shape)}")
    d = a.shape[1]
    if d > 2:
        if a.shape[0] < 2:
            raise ValueError("PCA of latents with D > 2 needs at least 2 points")
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2)
        xy = pca.fit_transform(a)
        ev = pca.explained_variance_ratio_.sum()
        head = f"PCA of {d}-D latents (first 2 PCs, {100 * ev:.0f}% of variance)"
        xlabel, ylabel = "PC 1", "PC 2"
    else:
        xy = a
        head = "2-D latents"
        xlabel, ylabel = "z1", "z2"
    w, h = size_px
    fig = Figure(figsize=((w + 0.25) / DPI, (h + 0.25) / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if lab is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.7, color=LABEL_COLOURS[0])
    else:
        classes = np.unique(lab)
        if len(classes) <= len(LABEL_COLOURS) and np.issubdtype(lab.dtype, np.integer) and classes.min() >= 0 \
                and classes.max() < len(LABEL_COLOURS):
            for c in classes:
                sel = lab == c
                ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.7, color=LABEL_COLOURS[int(c)], label=str(c))
            ax.legend(loc="best", fontsize=7, markerscale=2.5, title="label")
        else:
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=lab, s=4, alpha=0.7, cmap="viridis")
            fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI, facecolor="white")
    return out


# ----------------------------------------------------------------------------- training curves


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """Read a metrics JSONL file (one JSON object per line; blank lines skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i}: not valid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
            records.append(rec)
    return records


def training_curves(metrics: PathLike | Iterable[Mapping[str, Any]], path: PathLike,
                    keys: Sequence[str] = ("elbo",), x_key: str | None = None,
                    panel_px: tuple[int, int] = (500, 400)) -> Path:
    """Plot metrics against training progress, one panel per key, one line per split.

    Each split has one colour in every panel (:data:`SPLIT_COLOURS`); the axes are labelled with the
    metric and its unit (:data:`METRIC_LABELS`) and with the progress counter (:data:`STEP_LABELS`).

    Records look like ``{"step": 100, "epoch": 1, "split": "train", "elbo": -95.3}``; records
    without a ``split`` count as ``"train"``. A record lacking a key is skipped for that key.

    Args:
        metrics: a JSONL path or an iterable of dicts.
        keys: metric names to plot; each must occur in at least one record.
        x_key: the x axis; default ``"step"`` if any record has it, else ``"epoch"``.
        panel_px: ``(width, height)`` in pixels of one panel; the PNG is
            ``(height, width * len(keys))``.
    """
    out = _out_path(path)
    records = read_jsonl(metrics) if isinstance(metrics, (str, os.PathLike)) else [dict(r) for r in metrics]
    if not records:
        raise ValueError("training_curves: no records to plot")
    if isinstance(keys, str) or not keys:
        raise ValueError(f"keys must be a non-empty sequence of metric names, got {keys!r}")
    if x_key is None:
        x_key = "step" if any("step" in r for r in records) else "epoch"
    if not any(x_key in r for r in records):
        raise ValueError(f"training_curves: no record has the x-axis key {x_key!r}")
    available = sorted({k for r in records for k in r} - {"split", "step", "epoch"})
    missing = [k for k in keys if not any(k in r for r in records)]
    if missing:
        raise ValueError(f"training_curves: key(s) {missing} occur in no record; available: {available}")
    w, h = panel_px
    fig = Figure(figsize=((w * len(keys) + 0.25) / DPI, (h + 0.25) / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    for i, r in enumerate(records):
        for k in (x_key, *keys):
            v = r.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"training_curves: record {i} has non-numeric {k}={v!r}")
    splits = sorted({str(r.get("split", "train")) for r in records}, key=lambda s: (s != "train", s))
    for j, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), j + 1)
        for split in splits:
            pts = [(float(r[x_key]), float(r[key])) for r in records
                   if str(r.get("split", "train")) == split and key in r and x_key in r and r[key] is not None]
            if not pts:
                continue
            pts.sort()
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if len(pts) < 30 else None, markersize=3, label=split,
                    color=SPLIT_COLOURS.get(split))
        ax.set_xlabel(STEP_LABELS.get(x_key, x_key))
        ax.set_ylabel(METRIC_LABELS.get(key, key))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI, facecolor="white")
    return out
