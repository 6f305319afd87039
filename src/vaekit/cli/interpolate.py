"""``vaekit interpolate RUN_DIR``: decode a latent path between the codes of two test images.

The path comes from ``model.latent.interpolate`` (straight lines for Euclidean
latents, slerp for hyperspherical ones), so each latent family interpolates
along its own geometry.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit interpolate`` on the argparse subparsers ``sub``."""
    from .common import add_image_run_args

    p = sub.add_parser("interpolate", help="decode a latent interpolation between two test images")
    add_image_run_args(p, "interpolation.png")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--pairs", type=int, default=4, help="number of image pairs (one strip each)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit interpolate``; returns the exit status (errors propagate to :func:`vaekit.cli.main.main`)."""
    import torch

    from .. import viz
    from .common import load_run_images

    if args.steps < 2 or args.pairs < 1:
        raise ValueError(f"need --steps >= 2 and --pairs >= 1, got {args.steps} and {args.pairs}")
    lr, shape, x = load_run_images(args)
    if x.shape[0] < 2 * args.pairs:
        raise ValueError(f"the {args.split} split has {x.shape[0]} examples; {args.pairs} pairs need {2 * args.pairs}")
    model = lr.model
    with torch.no_grad():
        z = model.encode(x[:2 * args.pairs])                                   # (2P, D)
        path = model.latent.interpolate(z[0::2], z[1::2], args.steps)          # (steps, P, D)
        imgs = model.decode(path).mean                                         # (steps, P, data_dim)
    imgs = imgs.transpose(0, 1).reshape(args.steps * args.pairs, -1)           # one row per pair
    out = Path(args.out) if args.out else lr.run_dir / "plots" / "interpolation.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.pairs == 1:
        print(viz.interpolation_strip(imgs, shape, out))
    else:
        print(viz.sample_grid(imgs, shape, out, nrow=args.steps))
    return 0
