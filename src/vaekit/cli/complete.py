"""``vaekit complete RUN_DIR --mask quadrant3``: completion grids of a structured-output CVAE (or its baseline)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit complete`` on the argparse subparsers ``sub``."""
    from ..data import MASKS
    from .common import add_out_args, add_run_dir_arg, int_at_least

    p = sub.add_parser(
        "complete", help="complete partly observed test images",
        description="Show the observed part of test images (hidden pixels grey), several completions of each "
                    "drawn from a conditional run (a CVAE with a mask condition samples z ~ p(z|x_obs); the "
                    "deterministic baseline repeats its one prediction) and the true image, one row per image.")
    add_run_dir_arg(p)
    p.add_argument("--mask", choices=MASKS, help="which pixels are observed (default for a run of vaekit train: the "
                                                   "region its model was trained with, model.condition.observe)")
    p.add_argument("--n", type=int_at_least(1), default=8, help="test images, one row each (default: 8)")
    p.add_argument("--samples", type=int_at_least(1), default=7, help="completions per image (default: 7)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    p.add_argument("--data-dir", help="where MNIST's files are")
    add_out_args(p, "complete.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit complete`` (:func:`vaekit.pipeline.conditional.complete_images` for a run of the conditional
    reproduction, :func:`vaekit.pipeline.images.complete_run_images` for one of ``vaekit train``)."""
    from ..pipeline.conditional import complete_images, is_steps_run
    from ..pipeline.images import complete_run_images

    if not is_steps_run(args.run_dir):
        print(complete_run_images(args.run_dir, args.mask, args.n, args.samples, seed=args.seed,
                                  data_dir=args.data_dir, out=args.out, overwrite=args.force))
        return 0
    if args.mask is None:
        raise ValueError("--mask: give the observed region (e.g. --mask quadrant1)")
    print(complete_images(args.run_dir, args.mask, args.n, args.samples, seed=args.seed, data_dir=args.data_dir,
                          out=args.out, overwrite=args.force))
    return 0
