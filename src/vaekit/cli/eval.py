"""``vaekit eval RUN_DIR [--estimators elbo,iwae:5000] [--checkpoint best|last] [--split test] [--n N]``.

Checks where it will write before it evaluates, prints the table, then writes ``RUN_DIR/eval.json``
(``eval-2.json``, ... when taken; estimates with standard errors, settings, seed, wall time). If the
write fails, the JSON is printed instead and the message names the path.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import int_list


def _iwae_k(spec: str | None) -> int:
    """k of ``iwae:K`` in ``--estimators`` (100 when absent): what a conditional run's bounds use."""
    for item in (spec or "").split(","):
        name, _, k = item.strip().partition(":")
        if name == "iwae" and k:
            return int(k)
    return 100


def add_parser(sub: Any) -> None:
    """Register ``vaekit eval`` on the argparse subparsers ``sub``."""
    from .common import add_checkpoint_arg, add_run_dir_arg, int_at_least

    p = sub.add_parser("eval", help="estimate log p(x) of a trained run",
                       description="Evaluate a run with ELBO / IWAE-k / AIS estimators.")
    add_run_dir_arg(p)
    p.add_argument("--estimators", help="e.g. elbo,iwae:5000 (default: the run's eval.estimators)")
    add_checkpoint_arg(p)
    p.add_argument("--split", choices=["train", "val", "test"], help="which split to evaluate (default: the run's eval.split)")
    p.add_argument("--n", type=int_at_least(1), help="evaluate only the first N examples (default: the run's eval.n; all when null)")
    p.add_argument("--seed", type=int, help="estimator seed (default: the run's eval.seed)")
    p.add_argument("--batch-size", type=int_at_least(1), help="examples per batch (default: the run's eval.batch_size)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where to evaluate; auto: cuda if available (default: cpu)")
    p.add_argument("--data-dir", help="where the data set's files are, if not where training found them "
                                      "(overrides the run's data.data_dir)")
    p.add_argument("--out", help="where to write the JSON: a file, or a folder (existing, or written with a trailing "
                                 "/) for eval.json in it; checked before evaluating (default RUN_DIR/eval.json, or "
                                 "eval-2.json, ... when taken)")
    p.add_argument("--force", action="store_true", help="replace the file --out names if it exists")
    p.add_argument("--ais-chains", type=int_at_least(1), default=16, help="AIS chains per example (default: 16)")
    p.add_argument("--ais-leapfrog", type=int_at_least(1), default=10, help="HMC leapfrog steps per AIS transition (default: 10)")
    p.add_argument("--bdmc", action="store_true",
                   help="also run bidirectional Monte Carlo on data simulated from the model (Wu et al. 2017)")
    p.add_argument("--bdmc-n", type=int_at_least(1), default=16, help="simulated examples for --bdmc (default: 16)")
    p.add_argument("--bdmc-T", type=int_list, default=[100, 1000],
                   help="comma-separated AIS lengths for --bdmc (default: 100,1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit eval`` (:func:`vaekit.pipeline.evaluate_run`); returns the exit status."""
    from ..pipeline import evaluate_run
    from ..pipeline.conditional import evaluate_steps_run, is_steps_run, summary

    if is_steps_run(args.run_dir):  # a conditional / semi-supervised run: conditional NLL, classification error
        res = evaluate_steps_run(args.run_dir, data_dir=args.data_dir, n_eval=args.n or 1000,
                                 k=_iwae_k(args.estimators))
        print(summary(res), flush=True)
        print(f"wrote {args.run_dir}/eval.json")
        return 0
    ev = evaluate_run(args.run_dir, checkpoint=args.checkpoint, estimators=args.estimators, split=args.split, n=args.n,
                      seed=args.seed, batch_size=args.batch_size, device=args.device, data_dir=args.data_dir,
                      ais_chains=args.ais_chains, ais_leapfrog=args.ais_leapfrog,
                      bdmc_T=args.bdmc_T if args.bdmc else (), bdmc_n=args.bdmc_n, out=args.out,
                      overwrite=args.force, write=False)
    print(ev.summary(), flush=True)
    ev.write()
    kept = f" ({ev.path.parent / 'eval.json'} was there and is kept)" if args.out is None and \
        ev.path.name != "eval.json" else ""
    print(f"wrote {ev.path}{kept}")
    return 0
