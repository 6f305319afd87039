"""``vaekit reconstruct RUN_DIR``: test images (top rows) and the decoder means of their codes (rows below)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit reconstruct`` on the argparse subparsers ``sub``."""
    from .common import add_image_run_args

    p = sub.add_parser("reconstruct", help="write originals next to their reconstructions")
    add_image_run_args(p, "reconstructions.png")
    p.add_argument("--n", type=int, default=32)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit reconstruct``; returns the exit status (errors propagate to :func:`vaekit.cli.main.main`)."""
    import torch

    from .. import viz
    from .common import load_run_images

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    lr, shape, x = load_run_images(args)
    x = x[:args.n]
    with torch.no_grad():
        rec = lr.model.reconstruct(x)
    out = Path(args.out) if args.out else lr.run_dir / "plots" / "reconstructions.png"
    print(viz.reconstruction_grid(x, rec, shape, out, n=args.n))
    return 0
