#!/usr/bin/env python
r"""IWAE evaluation of a sentence VAE with its rows batched by length against row order (issue 14's evaluation cost).

``vaekit.evaluation.run_estimators`` batches a text model's rows in ``model.evaluation_order(x)`` (sentences by
length), so each batch's LSTM runs to about its own sentences' length; before, batches took the rows as they
come and ran to the longest sentence of a random batch of 100. This times the same ``iwae:K`` estimate of the
same untrained PTB sentence VAE (embeddings and LSTMs of 128, Gaussian z of 32, as docs/results/text.md; speed
does not depend on the weights) on the first ``--n`` test sentences both ways, interleaved as
../shared/bench/fm-mlp/PROTOCOL.md section 5 asks (one block each per round, order rotated, the median of the
per-round ratio), one thread. The two estimates must agree within their Monte Carlo error (the per-batch seeds
fall on other rows); both means are reported.

Usage::

    python benchmarks/text_eval_order.py --out benchmarks/results/text_eval_order.json
    python benchmarks/text_eval_order.py --n 200 --rounds 2 --out /tmp/teo.json     # smoke check

The last stdout line is one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import add_quiet_args, interleave, ratio_summary, vaekit_commit, versions, write_result  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="test sentences (default 1000)")
    p.add_argument("--k", type=int, default=10, help="importance samples (default 10)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--data-dir", default=None, help="where ptb.{train,valid,test}.txt are (default: the loader's)")
    p.add_argument("--out", required=True)
    add_quiet_args(p)
    a = p.parse_args(argv)
    torch.set_num_threads(1)

    from vaekit.data import load_dataset
    from vaekit.evaluation import run_estimators
    from vaekit.models import build_model

    ds = load_dataset("ptb", **({"data_dir": a.data_dir} if a.data_dir else {}))
    x = ds.test.x[: a.n]
    torch.manual_seed(0)
    model = build_model({"type": "text_vae", "vocab_size": len(ds.vocab), "embed_dim": 128,
                         "encoder": {"hidden": 128}, "decoder": {"hidden": 128},
                         "latent": {"type": "gaussian", "dim": 32}}, data_dim=x.shape[1])
    spec = f"iwae:{a.k}"
    means: dict[str, float] = {}

    def block(ordered: bool):
        tag = "by_length" if ordered else "row_order"

        def run() -> None:
            if not ordered:
                model.evaluation_order = None  # an instance attribute that hides the method: row order
            try:
                r = run_estimators(model, x, spec, seed=0, batch_size=a.batch_size)[spec]
            finally:
                model.__dict__.pop("evaluation_order", None)
            means[tag], means[tag + "_stderr"] = r["mean"], r["stderr"]
        return run

    timing = interleave({"by_length": block(True), "row_order": block(False)}, a.rounds, label="text_eval_order",
                        quiet=a.quiet, max_wait=a.max_wait)
    res = {"benchmark": "text_eval_order", "estimator": spec, "sentences": int(x.shape[0]),
           "batch_size": a.batch_size, "padded_width": int(x.shape[1]),
           "speed": ratio_summary(timing, "by_length", "row_order", per=1, unit="s"),
           "estimates": means, "timing": timing, "versions": versions(), "vaekit_commit": vaekit_commit()}
    write_result(res, Path(a.out))
    return res


if __name__ == "__main__":
    main()
