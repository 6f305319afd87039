"""Helpers shared by the subcommands: evaluation, plots, tables."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..pipeline.data import eval_data

__all__ = ["run_estimators", "evaluate", "write_eval_json", "format_table", "write_plots", "decode_mean",
           "eval_data"]


def _parse_spec(spec: str) -> list[tuple[str, str, int | None]]:
    out = []
    for tok in (t.strip() for t in spec.split(",")):
        if not tok:
            continue
        name, _, arg = tok.partition(":")
        try:
            n = int(arg) if arg else None
        except ValueError:
            raise ValueError(f"estimator {tok!r}: the number after ':' must be an integer") from None
        if name not in ("elbo", "iwae"):
            raise ValueError(f"unknown estimator {name!r} (without vaekit.evaluation.estimators only elbo and "
                             "iwae:K are available)")
        if name == "iwae" and (n is None or n < 1):
            raise ValueError(f"estimator {tok!r}: write iwae:K with K >= 1 samples, e.g. iwae:1000")
        out.append((tok, name, n))
    if not out:
        raise ValueError(f"no estimator in {spec!r}; e.g. 'elbo,iwae:1000'")
    return out


def run_estimators(model: nn.Module, x: Tensor, spec: str, seed: int, batch_size: int = 100,
                   **opts: Any) -> dict[str, Any]:
    """:func:`vaekit.evaluation.estimators.run_estimators` (ELBO, IWAE-k, AIS)."""
    from ..evaluation.estimators import run_estimators as full

    return full(model, x, spec, seed=seed, batch_size=batch_size, **opts)


def evaluate(model: nn.Module, x: Tensor, spec: str, seed: int, batch_size: int = 100, **opts: Any) -> dict[str, Any]:
    """Run the estimators (``opts`` go to ``run_estimators``, e.g. ``ais_chains``); returns
    ``{"estimates": ..., "n": N, "seed": seed, "seconds": ...}``."""
    t0 = time.perf_counter()
    est = run_estimators(model, x, spec, seed, batch_size, **opts)
    return {"estimates": est, "n": int(x.shape[0]), "seed": seed, "spec": spec, "seconds": time.perf_counter() - t0}


def format_table(estimates: dict[str, Any]) -> str:
    """A small text table: estimator, mean log p(x) bound, s.e., NLL, seconds."""
    rows = [("estimator", "log p(x) est.", "s.e.", "NLL", "seconds")]
    for tok, r in estimates.items():
        mean = float(r["mean"]) if isinstance(r, dict) else float(r)
        se = float(r.get("stderr", math.nan)) if isinstance(r, dict) else math.nan
        sec = float(r.get("seconds", math.nan)) if isinstance(r, dict) else math.nan
        rows.append((tok, f"{mean:.3f}", f"{se:.3f}", f"{-mean:.3f}", f"{sec:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def write_eval_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def decode_mean(model: nn.Module):
    """``z -> E[x|z]``, the decoder mean (what the image plots show)."""

    def fn(z: Tensor) -> Tensor:
        return model.decode(z.to(next(model.parameters()).device)).mean.cpu()

    return fn


@torch.no_grad()
def write_plots(run_dir: Path, model: nn.Module, x: Tensor, y: Tensor | None, image_shape: Any,
                seed: int = 0) -> list[Path]:
    """Samples, reconstructions, a latent plot (manifold if 2-D, else scatter by label), training curves."""
    from .. import viz

    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    out: list[Path] = []
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if image_shape is not None:
            out.append(viz.sample_grid(model.sample(64).cpu(), image_shape, plots / "samples.png"))
            xs = x[:32]
            out.append(viz.reconstruction_grid(xs.cpu(), model.reconstruct(xs).cpu(), image_shape,
                                               plots / "reconstructions.png", n=32))
            if getattr(model, "latent_dim", None) == 2:
                out.append(viz.latent_manifold(decode_mean(model), image_shape, plots / "latent_manifold.png"))
        z = torch.cat([model.encode(x[i:i + 500]).cpu() for i in range(0, x.shape[0], 500)])
        if z.shape[1] >= 2:
            out.append(viz.latent_scatter(z, None if y is None else y.cpu(), plots / "latent_scatter.png"))
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists() and metrics.stat().st_size > 0:
        out.append(viz.training_curves(metrics, plots / "training_curves.png", keys=("elbo", "kl")))
    return out


def add_image_run_args(p: Any, default_png: str) -> None:
    """The arguments every "draw from a run's data" command shares (``reconstruct``, ``interpolate``)."""
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--data-dir", help="override data.data_dir")
    p.add_argument("--out", help=f"PNG path (default RUN_DIR/plots/{default_png})")


def load_run_images(args: Any) -> tuple[Any, tuple[int, ...], Tensor]:
    """The run (``args.run_dir``, ``args.checkpoint``), its image shape, and its ``args.split`` data as training saw it."""
    from ..train import load_run
    from .sample import image_shape_of

    lr = load_run(args.run_dir, args.checkpoint)
    shape = image_shape_of(lr.meta)
    if args.data_dir is not None:
        lr.config.data.data_dir = args.data_dir
    x, _, _ = eval_data(lr.config, args.split)
    return lr, shape, x
