"""``vaekit eval RUN_DIR [--estimators elbo,iwae:5000] [--checkpoint best|last] [--split test] [--n N]``.

Writes ``RUN_DIR/eval.json`` (estimates with standard errors, settings, seed,
wall time) and prints a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit eval`` on the argparse subparsers ``sub``."""
    p = sub.add_parser("eval", help="estimate log p(x) of a trained run",
                       description="Evaluate a run with ELBO / IWAE-k / AIS estimators.")
    p.add_argument("run_dir")
    p.add_argument("--estimators", help="e.g. elbo,iwae:5000 (default: the run's eval.estimators)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--split", choices=["train", "val", "test"], help="default: the run's eval.split")
    p.add_argument("--n", type=int, help="evaluate only the first N examples")
    p.add_argument("--seed", type=int, help="estimator seed (default: the run's eval.seed)")
    p.add_argument("--batch-size", type=int, help="examples per batch")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    p.add_argument("--data-dir", help="override data.data_dir")
    p.add_argument("--out", help="where to write the JSON (default RUN_DIR/eval.json)")
    p.add_argument("--ais-chains", type=int, default=16, help="AIS chains per example (default 16)")
    p.add_argument("--ais-leapfrog", type=int, default=10, help="HMC leapfrog steps per AIS transition (default 10)")
    p.add_argument("--bdmc", action="store_true",
                   help="also run bidirectional Monte Carlo on data simulated from the model (Wu et al. 2017)")
    p.add_argument("--bdmc-n", type=int, default=16, help="simulated examples for --bdmc (default 16)")
    p.add_argument("--bdmc-T", default="100,1000", help="comma-separated AIS lengths for --bdmc (default 100,1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit eval``; returns the exit status (errors propagate to :func:`vaekit.cli.main.main`)."""
    from ..train import load_run
    from ..train.loop import resolve_device
    from .common import eval_data, evaluate, format_table, write_eval_json

    device = resolve_device(args.device)
    lr = load_run(args.run_dir, args.checkpoint, device=device)
    cfg = lr.config
    if args.data_dir is not None:
        cfg.data.data_dir = args.data_dir
    split = args.split or cfg.eval.split
    spec = args.estimators or cfg.eval.estimators
    seed = cfg.eval.seed if args.seed is None else args.seed
    n = args.n if args.n is not None else cfg.eval.n
    if n is not None and n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    x, _, _ = eval_data(cfg, split, device)
    x = x if n is None else x[:n]
    if args.ais_chains < 1 or args.ais_leapfrog < 1:
        raise ValueError(f"--ais-chains and --ais-leapfrog must be >= 1, got {args.ais_chains}, {args.ais_leapfrog}")
    res = evaluate(lr.model, x, spec, seed, args.batch_size or cfg.eval.batch_size,
                   ais_chains=args.ais_chains, ais_leapfrog=args.ais_leapfrog)
    payload = {"run_dir": str(lr.run_dir), "checkpoint": lr.which, "epoch": lr.meta["epoch"], "step": lr.meta["step"],
               "split": split, "binarize": cfg.data.binarize, **res}
    if args.bdmc:
        from ..evaluation import run_bdmc

        try:
            ts = [int(t) for t in args.bdmc_T.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"--bdmc-T must be comma-separated integers, got {args.bdmc_T!r}") from None
        if not ts or min(ts) < 1 or args.bdmc_n < 1:
            raise ValueError(f"--bdmc-T needs positive integers and --bdmc-n >= 1, got {args.bdmc_T!r}, {args.bdmc_n}")
        payload["bdmc"] = run_bdmc(lr.model, args.bdmc_n, ts, seed=seed, n_chains=args.ais_chains,
                                   leapfrog_steps=args.ais_leapfrog)
    out = Path(args.out) if args.out else lr.run_dir / "eval.json"
    write_eval_json(out, payload)
    print(f"{split} set ({x.shape[0]} examples), {lr.which} checkpoint (epoch {lr.meta['epoch']}):")
    print(format_table(res["estimates"]))
    if args.bdmc:
        print(f"BDMC on {args.bdmc_n} simulated examples (lower = forward AIS, upper = reverse AIS):")
        for r in payload["bdmc"]["rows"]:
            print(f"  T={r['T']:>6}  lower {r['lower']:.3f}  upper {r['upper']:.3f}  gap {r['gap']:.3f}")
    print(f"wrote {out}")
    return 0
