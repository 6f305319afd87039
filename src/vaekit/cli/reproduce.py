"""``vaekit reproduce NAME``: re-run a paper's experiment set and print our numbers next to the paper's.

Prints the markdown table, then one JSON object on the last line (the files written, each run in brief).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _epilog() -> str:
    from ..reproduce import REPRODUCTIONS, get_reproduction

    lines = ["reproductions:"]
    for name in REPRODUCTIONS:
        rep = get_reproduction(name)
        lines.append(f"  {name}: {rep.title}")
        for b, budget in rep.budgets.items():
            lines += [f"    --budget {b}: {budget.describe()}", f"      runs: {','.join(budget.runs)}"]
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    """Register ``reproduce`` on the ``vaekit`` sub-parsers."""
    from ..reproduce import REPRODUCTIONS

    p = sub.add_parser("reproduce", help=f"reproduce a paper's experiments ({', '.join(REPRODUCTIONS)})",
                       usage="vaekit reproduce [options] NAME [KEY=VALUE ...]\n"
                             "       vaekit reproduce --all [--budget ci|small|paper] [options] [KEY=VALUE ...]",
                       description="Train, evaluate and tabulate a paper's experiment set next to its published "
                                   "numbers. Finished runs are not retrained and saved evaluations not redone.",
                       epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME", help=f"{', '.join(REPRODUCTIONS)} (or --all)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides for every run")
    p.add_argument("--all", action="store_true",
                   help="run every reproduction at --budget, then write the dashboard (docs/results/README.md and "
                        "dashboard.json: one row per seed paper, our number, the paper's, the status)")
    p.add_argument("--budget", choices=["ci", "small", "paper"], default=None,
                   help="ci: minutes per reproduction (the CI smoke run; default with --all); small (default for "
                        "NAME): fits a 2-core CPU in under an hour each; paper: the paper's settings (see below)")
    p.add_argument("--results", default="docs/results",
                   help="with --all: folder of the committed results read for the statuses, and where the "
                        "dashboard is written (default docs/results)")
    p.add_argument("--runs", default=None, help="comma list of run names instead of the budget's")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run instead of the budget's")
    p.add_argument("--eval-k", type=int, default=None, help="IWAE samples instead of the budget's")
    p.add_argument("--eval-n", type=int, default=None, help="number of test images instead of the budget's")
    p.add_argument("--max-seconds", type=float, default=None, help="total training seconds, split over the runs")
    p.add_argument("--out", default=None, help="output folder (default runs/reproduce/NAME-BUDGET; with --all, the "
                                               "parent of the NAME-BUDGET folders, default runs/reproduce)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--write-doc", action="store_true",
                   help="also write docs/results/NAME.md and .json (refused where that would replace a page kept by "
                        "hand or drop runs the JSON holds)")
    p.add_argument("--force", action="store_true", help="with --write-doc, replace the page and JSON even so")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run :func:`vaekit.reproduce.reproduce` (or, with ``--all``, :func:`vaekit.reproduce.dashboard.reproduce_all`);
    print the table, then the summary as one JSON line."""
    from ..reproduce import REPRODUCTIONS, reproduce

    if args.all:
        if args.name is not None and "=" in args.name:  # `--all KEY=VALUE`: the first override lands in NAME
            args.overrides, args.name = [args.name, *args.overrides], None
        if args.name is not None:
            raise SystemExit(f"vaekit reproduce: --all runs every reproduction; drop NAME ({args.name!r})")
        per_run = {"--runs": args.runs, "--epochs": args.epochs, "--eval-k": args.eval_k, "--eval-n": args.eval_n,
                   "--max-seconds": args.max_seconds, "--write-doc": args.write_doc or None,
                   "--force": args.force or None}
        bad = [k for k, v in per_run.items() if v is not None]
        if bad:
            raise SystemExit(f"vaekit reproduce --all: {', '.join(bad)} apply to one reproduction; use the "
                             "budget's settings or run NAME alone")
        from ..reproduce.dashboard import reproduce_all

        res = reproduce_all(args.budget or "ci", results=args.results, out=args.out, overrides=args.overrides,
                            threads=args.threads)
        print(res.pop("markdown"))
        print(json.dumps(res))
        return 0
    if args.name is None:
        raise SystemExit(f"vaekit reproduce: name a reproduction ({', '.join(REPRODUCTIONS)}) or pass --all")
    if args.name not in REPRODUCTIONS:
        raise SystemExit(f"vaekit reproduce: unknown reproduction {args.name!r}; choose from "
                         f"{', '.join(REPRODUCTIONS)} or pass --all")
    summary = reproduce(args.name, args.budget or "small", args.runs, epochs=args.epochs, eval_k=args.eval_k, eval_n=args.eval_n,
                        max_seconds=args.max_seconds, out=args.out, overrides=args.overrides, threads=args.threads,
                        write_doc=args.write_doc, force=args.force)
    print(Path(summary["table"]).read_text())
    print(json.dumps(summary))
    return 0
