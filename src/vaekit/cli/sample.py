"""``vaekit sample RUN_DIR [--n 64] [--condition label=3]``: decoder means of prior samples as an image grid."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit sample`` on the argparse subparsers ``sub``."""
    from .common import add_checkpoint_arg, add_out_args, add_run_dir_arg, int_at_least

    p = sub.add_parser(
        "sample", help="write a grid of samples from the prior",
        description="Draw z ~ p(z) from a trained run's prior, decode each z and save the images as one grid "
                    "(about square, row by row): the mean of p(x|z), or with --binary a draw x ~ p(x|z). "
                    "Prints the PNG's path. Needs image data (a run whose data set has an image shape).")
    add_run_dir_arg(p)
    p.add_argument("--n", type=int_at_least(1), default=64, help="number of samples (default: 64)")
    add_checkpoint_arg(p)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the draws: the same seed gives the same grid (default: 0)")
    p.add_argument("--binary", action="store_true",
                   help="show a draw x ~ p(x|z) (binary pixels for a Bernoulli likelihood) instead of the mean "
                        "of p(x|z) (default: the mean)")
    p.add_argument("--condition", action="append", metavar="KEY=VALUE",
                   help="a conditional run's condition, e.g. label=3 (a CVAE needs one; M2 draws y ~ p(y) without); "
                        "repeatable")
    add_out_args(p, "samples.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit sample`` (:func:`vaekit.pipeline.sample_images`); returns the exit status."""
    from ..pipeline import sample_images
    from ..pipeline.conditional import conditional_sample_images, is_steps_run, parse_condition

    if is_steps_run(args.run_dir):
        print(conditional_sample_images(args.run_dir, parse_condition(args.condition), args.n, seed=args.seed,
                                        mean=not args.binary, out=args.out, overwrite=args.force))
        return 0
    if args.condition:
        raise ValueError(f"{args.run_dir}: its model is unconditional; --condition applies to conditional runs")
    print(sample_images(args.run_dir, args.n, checkpoint=args.checkpoint, seed=args.seed, mean=not args.binary,
                        out=args.out, overwrite=args.force))
    return 0
