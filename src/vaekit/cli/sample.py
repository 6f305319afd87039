"""``vaekit sample RUN_DIR [--n 64]``: decoder means of prior samples as an image grid."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit sample`` on the argparse subparsers ``sub``."""
    p = sub.add_parser("sample", help="write a grid of samples from the prior")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--binary", action="store_true", help="draw x ~ p(x|z) instead of showing its mean")
    p.add_argument("--out", help="PNG path (default RUN_DIR/plots/samples.png)")
    p.set_defaults(func=run)


def image_shape_of(meta: dict[str, Any]) -> tuple[int, ...]:
    shape = meta.get("extra", {}).get("image_shape")
    if not shape:
        raise ValueError("this run's data are not images (no image_shape recorded); nothing to draw")
    return tuple(shape)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit sample``; returns the exit status (errors propagate to :func:`vaekit.cli.main.main`)."""
    import torch

    from .. import viz
    from ..train import load_run

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    lr = load_run(args.run_dir, args.checkpoint)
    shape = image_shape_of(lr.meta)
    torch.manual_seed(args.seed)
    x = lr.model.sample(args.n, mean=not args.binary)
    out = Path(args.out) if args.out else lr.run_dir / "plots" / "samples.png"
    print(viz.sample_grid(x, shape, out))
    return 0
