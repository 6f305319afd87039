"""``vaekit generate RUN_DIR [--n 10] [--mode greedy|sample|beam]``: sentences from a text run's prior."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit generate`` on the argparse subparsers ``sub``."""
    from .common import add_checkpoint_arg, add_run_dir_arg, int_at_least

    p = sub.add_parser(
        "generate", help="print sentences decoded from a text run's prior",
        description="Draw z ~ p(z) from a trained text VAE (configs/text/...) and print one decoded sentence per "
                    "line; a language model run prints its own samples (--mode sample). Needs the run's vocab.json.")
    add_run_dir_arg(p)
    p.add_argument("--n", type=int_at_least(1), default=10, help="number of sentences (default: 10)")
    p.add_argument("--mode", choices=["greedy", "sample", "beam"], default="greedy",
                   help="greedy: the most probable word at each step; sample: w_t ~ p(w_t | w_<t, z) at "
                        "--temperature; beam: beam search for the most probable sentence of each z (default: greedy)")
    p.add_argument("--beam", type=int_at_least(1), default=5, help="beam width for --mode beam (default: 5)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="softmax temperature for --mode sample; below 1 is more conservative (default: 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the codes and draws (default: 0)")
    add_checkpoint_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit generate`` (:func:`vaekit.pipeline.text.generate_text`); returns the exit status."""
    from ..pipeline.text import generate_text

    if not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {args.temperature}")
    for s in generate_text(args.run_dir, args.n, args.mode, seed=args.seed, checkpoint=args.checkpoint,
                           beam=args.beam, temperature=args.temperature):
        print(s)
    return 0
