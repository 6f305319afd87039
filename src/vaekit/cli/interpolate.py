"""``vaekit interpolate RUN_DIR``: decode a latent path between the codes of two test images.

The path follows the model's latent space (``model.latent_space.interpolate``: straight lines for
Euclidean latents, great circles for hyperspherical ones); see :func:`vaekit.pipeline.interpolate_images`.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit interpolate`` on the argparse subparsers ``sub``."""
    from .common import add_image_run_args, int_at_least

    p = sub.add_parser(
        "interpolate", help="decode a latent interpolation between two test images",
        description="Encode pairs of images of a split (rows 0 and 1, 2 and 3, ...), walk the latent path "
                    "between each pair's codes (a straight line for Euclidean latents, a great circle on a "
                    "sphere) and save the decoded points, the mean of p(x|z), one row per pair. Prints the "
                    "PNG's path.")
    add_image_run_args(p, "interpolation.png")
    p.add_argument("--steps", type=int_at_least(2), default=10,
                   help="points per path, both ends included (default: 10)")
    p.add_argument("--pairs", type=int_at_least(1), default=4,
                   help="number of image pairs, one row each (default: 4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit interpolate`` (:func:`vaekit.pipeline.interpolate_images`); returns the exit status."""
    from ..pipeline import interpolate_images

    print(interpolate_images(args.run_dir, args.steps, args.pairs, checkpoint=args.checkpoint, split=args.split,
                             data_dir=args.data_dir, out=args.out, overwrite=args.force))
    return 0
