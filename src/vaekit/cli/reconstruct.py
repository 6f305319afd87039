"""``vaekit reconstruct RUN_DIR``: test images (top rows) and the decoder means of their codes (rows below)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit reconstruct`` on the argparse subparsers ``sub``."""
    from .common import add_image_run_args, int_at_least

    p = sub.add_parser(
        "reconstruct", help="write originals next to their reconstructions",
        description="Encode the first N images of a split with a trained run's model, decode the codes and save "
                    "originals and reconstructions (the mean of p(x|z) at z = the encoder's code) as one grid: "
                    "rows of up to 8 originals, each followed by the row of their reconstructions. Prints the "
                    "PNG's path.")
    add_image_run_args(p, "reconstructions.png")
    p.add_argument("--n", type=int_at_least(1), default=32,
                   help="number of images, the first N of the split (default: 32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit reconstruct`` (:func:`vaekit.pipeline.reconstruct_images`); returns the exit status."""
    from ..pipeline import reconstruct_images

    print(reconstruct_images(args.run_dir, args.n, checkpoint=args.checkpoint, split=args.split,
                             data_dir=args.data_dir, out=args.out, overwrite=args.force))
    return 0
