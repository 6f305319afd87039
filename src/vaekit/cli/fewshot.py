"""``vaekit fewshot RUN_DIR --way 5 --shot 1 --episodes 1000``: few-shot accuracy of a Neural Statistician / VHE run."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit fewshot`` on the argparse subparsers ``sub``."""
    from .common import add_run_dir_arg, int_at_least

    p = sub.add_parser(
        "fewshot", help="N-way K-shot classification accuracy of a model of sets",
        description="Classify held-out classes (Omniglot: the evaluation set's characters) in N-way K-shot episodes "
                    "by the context posterior: each query goes to the class whose q(c|D_k) is nearest to q(c|{x}) "
                    "in KL (Edwards & Storkey 2016; --rule picks the direction). Prints the accuracy with a 95%% interval (1.96 standard "
                    "errors over episodes) and the result as JSON. Runs are trained by python -m "
                    "vaekit.reproduce.sets.")
    add_run_dir_arg(p)
    p.add_argument("--way", type=int_at_least(2), default=5, help="classes per episode (default: 5)")
    p.add_argument("--shot", type=int_at_least(1), default=1, help="support images per class (default: 1)")
    p.add_argument("--episodes", type=int_at_least(1), default=1000, help="episodes (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes (default: 0)")
    p.add_argument("--rule", choices=("kl_support_query", "kl_query_support"), default="kl_support_query",
                   help="scoring: minimise KL(q(c|D_k) || q(c|{x})) (default) or KL(q(c|{x}) || q(c|D_k))")
    p.add_argument("--data-dir", default=None, help="the data set's folder (default: the standard places)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit fewshot`` (:func:`vaekit.pipeline.sets.fewshot_run`); returns the exit status."""
    from ..pipeline.sets import fewshot_run

    res = fewshot_run(args.run_dir, args.way, args.shot, args.episodes, seed=args.seed, data_dir=args.data_dir,
                      rule=args.rule)
    print(f"{args.way}-way {args.shot}-shot: {100 * res['accuracy']:.2f} % ± {100 * res['ci95']:.2f} "
          f"(95 % interval, {args.episodes} episodes)")
    print(json.dumps(res))
    return 0
