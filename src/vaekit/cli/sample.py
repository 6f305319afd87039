"""``vaekit sample RUN_DIR [--n 64]``: decoder means of prior samples as an image grid."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit sample`` on the argparse subparsers ``sub``."""
    from .common import add_out_args

    p = sub.add_parser("sample", help="write a grid of samples from the prior")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--binary", action="store_true", help="draw x ~ p(x|z) instead of showing its mean")
    add_out_args(p, "samples.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit sample`` (:func:`vaekit.pipeline.sample_images`); returns the exit status."""
    from ..pipeline import sample_images

    print(sample_images(args.run_dir, args.n, checkpoint=args.checkpoint, seed=args.seed, mean=not args.binary,
                        out=args.out, overwrite=args.force))
    return 0
