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
    p.add_argument("--n", type=int_at_least(1), default=None,
                   help="number of samples (default: 64; with --support, samples per support set, default 5)")
    add_checkpoint_arg(p)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the draws: the same seed gives the same grid (default: 0)")
    p.add_argument("--binary", action="store_true",
                   help="show a draw x ~ p(x|z) (binary pixels for a Bernoulli likelihood) instead of the mean "
                        "of p(x|z) (default: the mean)")
    p.add_argument("--condition", action="append", metavar="KEY=VALUE",
                   help="a conditional run's condition, e.g. label=3 (a CVAE needs one; M2 draws y ~ p(y) without); "
                        "repeatable")
    p.add_argument("--support", action="append", metavar="FILE_OR_IDS",
                   help="a Neural Statistician / VHE run's support set: a .npy/.pt file of images (K, D), or "
                        "CLASS[:I,J,...] items of a held-out class (CLASS alone: its first 5); repeatable, one grid "
                        "row per set: the set, then --n samples c ~ q(c|D), z ~ p(z|c)")
    add_out_args(p, "samples.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit sample`` (:func:`vaekit.pipeline.sample_images`); returns the exit status."""
    from ..pipeline import sample_images
    from ..pipeline.conditional import conditional_sample_images, is_steps_run, parse_condition

    from ..pipeline.sets import is_sets_run, support_sample_images

    if is_sets_run(args.run_dir):
        if args.condition:
            raise ValueError(f"{args.run_dir}: a model of sets takes --support, not --condition")
        print(support_sample_images(args.run_dir, args.support or ["0"], args.n or 5,
                                    seed=args.seed, mean=not args.binary, out=args.out, overwrite=args.force))
        return 0
    if args.support:
        raise ValueError(f"{args.run_dir}: --support applies to Neural Statistician / VHE runs")
    if is_steps_run(args.run_dir):
        print(conditional_sample_images(args.run_dir, parse_condition(args.condition), args.n or 64, seed=args.seed,
                                        mean=not args.binary, out=args.out, overwrite=args.force))
        return 0
    print(sample_images(args.run_dir, args.n or 64, checkpoint=args.checkpoint, seed=args.seed, mean=not args.binary,
                        out=args.out, overwrite=args.force, condition=parse_condition(args.condition)))
    return 0
