"""``vaekit reconstruct RUN_DIR``: test images (top rows) and the decoder means of their codes (rows below)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit reconstruct`` on the argparse subparsers ``sub``."""
    p = sub.add_parser("reconstruct", help="write originals next to their reconstructions")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--data-dir", help="override data.data_dir")
    p.add_argument("--out", help="PNG path (default RUN_DIR/plots/reconstructions.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit reconstruct``; returns the exit status (errors propagate to :func:`vaekit.cli.main.main`)."""
    import torch

    from .. import viz
    from ..train import load_run
    from .common import eval_data
    from .sample import image_shape_of

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    lr = load_run(args.run_dir, args.checkpoint)
    shape = image_shape_of(lr.meta)
    if args.data_dir is not None:
        lr.config.data.data_dir = args.data_dir
    x, _, _ = eval_data(lr.config, args.split)
    x = x[:args.n]
    with torch.no_grad():
        rec = lr.model.reconstruct(x)
    out = Path(args.out) if args.out else lr.run_dir / "plots" / "reconstructions.png"
    print(viz.reconstruction_grid(x, rec, shape, out, n=args.n))
    return 0
