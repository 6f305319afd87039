"""Evaluate IWAE-reproduction checkpoints (test NLL by -L_k, active units) and print a markdown table + JSON.

    python scripts/iwae_eval_checkpoints.py CKPT [CKPT ...] [--eval-k 5000] [--eval-n 2000] [--threads 1]

CKPT is a checkpoint written by ``vaekit reproduce iwae`` (``runs/.../l1_iwae_k50`` or a per-epoch
snapshot such as ``runs/iwae_mnist/snap/l1_iwae_k50.e5``). Used to compare runs at equal epochs.
"""

from __future__ import annotations

import argparse
import json

from vaekit.reproduce.iwae import evaluate_checkpoint, markdown_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--eval-k", type=int, default=5000)
    p.add_argument("--eval-n", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    rows = [evaluate_checkpoint(c, a.eval_k, a.eval_n, a.seed, a.threads) for c in a.checkpoints]
    print(markdown_table(rows))
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
