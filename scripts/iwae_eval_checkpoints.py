"""Evaluate IWAE-reproduction run directories (test NLL by -L_k, active units) and print a markdown table + JSON.

    python scripts/iwae_eval_checkpoints.py RUN_DIR [RUN_DIR ...] [--eval-k 5000] [--eval-n 2000] [--threads 1]

RUN_DIR is a run directory written by ``vaekit reproduce iwae`` (``runs/reproduce_iwae/l1_iwae_k50``) or
by ``vaekit train --config configs/iwae/...``; its ``last`` checkpoint is scored. To compare runs at
equal epochs, train them to the same ``train.epochs`` (or copy run directories at the epochs wanted).
"""

from __future__ import annotations

import argparse
import json

from vaekit.reproduce.iwae import evaluate_run, markdown_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--eval-k", type=int, default=5000)
    p.add_argument("--eval-n", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    rows = [evaluate_run(d, a.eval_k, a.eval_n, a.seed, a.threads) for d in a.run_dirs]
    print(markdown_table(rows))
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
