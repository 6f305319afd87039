"""``vaekit homotopy RUN_DIR "a sentence" "another one" [--steps 7]``: decoded points between two sentences' codes."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit homotopy`` on the argparse subparsers ``sub``."""
    from .common import add_checkpoint_arg, add_run_dir_arg, int_at_least

    p = sub.add_parser(
        "homotopy", help="decode the path between two sentences' codes (text VAE runs)",
        description="Encode two sentences with a trained text VAE, walk from one code to the other (a straight line; "
                    "a great circle on a sphere latent) and print each point's decoded sentence, one per line "
                    "(Bowman et al. 2016, Sec. 5.3). Words are split on whitespace; words outside the run's "
                    "vocabulary are read as <unk> (said on stderr).")
    add_run_dir_arg(p)
    p.add_argument("a", help="the first sentence (quoted)")
    p.add_argument("b", help="the second sentence (quoted)")
    p.add_argument("--steps", type=int_at_least(2), default=7, help="points on the path, ends included (default: 7)")
    p.add_argument("--mode", choices=["greedy", "beam"], default="greedy",
                   help="decode each point greedily or by beam search of width 5 (default: greedy)")
    p.add_argument("--keep-case", action="store_true",
                   help="do not lower-case the sentences (the shipped corpora are lower case; default: lower-case)")
    add_checkpoint_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit homotopy`` (:func:`vaekit.pipeline.text.homotopy_text`); returns the exit status."""
    from ..pipeline.text import homotopy_text

    for s in homotopy_text(args.run_dir, args.a, args.b, args.steps, args.mode, checkpoint=args.checkpoint,
                           lowercase=not args.keep_case):
        print(s)
    return 0
