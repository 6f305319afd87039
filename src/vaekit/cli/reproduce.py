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
                       usage="vaekit reproduce [options] NAME [KEY=VALUE ...]",
                       description="Train, evaluate and tabulate a paper's experiment set next to its published "
                                   "numbers. Finished runs are not retrained and saved evaluations not redone.",
                       epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=list(REPRODUCTIONS), metavar="NAME", help=", ".join(REPRODUCTIONS))
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides for every run")
    p.add_argument("--budget", choices=["small", "paper"], default="small",
                   help="small (default): fits a 2-core CPU; paper: the paper's settings (see below)")
    p.add_argument("--runs", default=None, help="comma list of run names instead of the budget's")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run instead of the budget's")
    p.add_argument("--eval-k", type=int, default=None, help="IWAE samples instead of the budget's")
    p.add_argument("--eval-n", type=int, default=None, help="number of test images instead of the budget's")
    p.add_argument("--max-seconds", type=float, default=None, help="total training seconds, split over the runs")
    p.add_argument("--out", default=None, help="output folder (default runs/reproduce/NAME-BUDGET)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--write-doc", action="store_true", help="also write docs/results/NAME.md and .json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run :func:`vaekit.reproduce.reproduce`; print the table, then the summary as one JSON line."""
    from ..reproduce import reproduce

    summary = reproduce(args.name, args.budget, args.runs, epochs=args.epochs, eval_k=args.eval_k, eval_n=args.eval_n,
                        max_seconds=args.max_seconds, out=args.out, overrides=args.overrides, threads=args.threads,
                        write_doc=args.write_doc)
    print(Path(summary["table"]).read_text())
    print(json.dumps(summary))
    return 0
