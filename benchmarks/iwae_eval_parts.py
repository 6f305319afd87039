"""Where the time of an IWAE-k evaluation goes beyond its GEMMs (issue 3's 1.3x target), part by part.

Times, per 1,000 decoded rows of the FM-MLP decoder (50-200-200-784, tanh, Bernoulli logits), each
part of one evaluation chunk alone, hot in cache, best of ``--repeats`` interleaved rounds:

* ``gemm``: the decoder's three GEMMs (``torch.mm`` with ``out=``): the limit of PROTOCOL.md section 6;
* ``decoder_shipped``: ``addmm`` + in-place ``tanh_`` + vaekit's compiled Bernoulli sum (what
  ``VAE.log_weights`` runs); ``decoder_bias_folded``: ``mm`` + ``add_`` + ``tanh_`` with the last bias
  added inside the compiled sum (a variant, not shipped);
* ``bernoulli_sum`` (compiled), ``row_sum`` (compiled, a read of the same logits: the memory floor),
  ``tanh`` (two in-place passes), ``randn`` (the chunk's normal draws), ``randn_two_threads`` (the same
  draws split over two generators on two threads), ``latent`` (``z = mu + sigma eps`` and the log ratio).

The last line is one JSON object (also written to ``--out``) with the parts, the 1.3x budget
(``0.3 * gemm``) and ``floor = bernoulli_sum + tanh + min(randn, randn_two_threads)``: work that stays
whatever the dispatch overhead; ``floor_within_budget`` tests ``floor + latent <= budget``. Run: ``python benchmarks/iwae_eval_parts.py --threads 2``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from vaekit.train.outputs import write_output

D, H, Z, BATCH = 784, 200, 50, 100


def best_us_per_1000_rows(fn: Callable[[], object], rows: int, inner: int) -> float:
    """One timed round: ``inner`` calls of ``fn``, in microseconds per 1,000 rows."""
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t) / inner * 1e6 / (rows / 1000)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=4000, help="rows per chunk (vaekit's default: 4,000 at B=100)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/iwae_eval_parts.json"))
    a = p.parse_args(argv)
    if a.rows % BATCH:
        sys.exit(f"--rows must be a multiple of {BATCH}, got {a.rows}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from vaekit.likelihoods.bernoulli import _bernoulli_log_prob_sum

    rows, c = a.rows, a.rows // BATCH
    w = [torch.randn(H, Z) * 0.1, torch.randn(H, H) * 0.07, torch.randn(D, H) * 0.07]
    b = [torch.randn(H), torch.randn(H), torch.randn(D)]
    x = (torch.rand(BATCH, D) < 0.3).float()
    loc, scale = torch.randn(BATCH, Z), torch.rand(BATCH, Z) + 0.5
    z = torch.randn(rows, Z)
    h1, h2, logits = torch.empty(rows, H), torch.empty(rows, H), torch.empty(rows, D)
    bern = torch.compile(_bernoulli_log_prob_sum, dynamic=True)
    bern_bias = torch.compile(lambda l, bias, x: _bernoulli_log_prob_sum(l + bias, x), dynamic=True)
    row_sum = torch.compile(lambda l: l.sum(-1), dynamic=True)
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    pool = concurrent.futures.ThreadPoolExecutor(1)
    eps = torch.empty(c, BATCH, Z)

    def gemm() -> None:
        torch.mm(z, w[0].t(), out=h1)
        torch.mm(h1, w[1].t(), out=h2)
        torch.mm(h2, w[2].t(), out=logits)

    def decoder_shipped() -> torch.Tensor:
        h = torch.addmm(b[0], z, w[0].t()).tanh_()
        h = torch.addmm(b[1], h, w[1].t()).tanh_()
        return bern(torch.addmm(b[2], h, w[2].t()).view(c, BATCH, D), x)

    def decoder_bias_folded() -> torch.Tensor:
        h = torch.mm(z, w[0].t()).add_(b[0]).tanh_()
        h = torch.mm(h, w[1].t()).add_(b[1]).tanh_()
        return bern_bias(torch.mm(h, w[2].t()).view(c, BATCH, D), b[2], x)

    def randn_two_threads() -> None:
        half = pool.submit(lambda: eps[c // 2:].normal_(generator=gens[1]))
        eps[:c // 2].normal_(generator=gens[0])
        half.result()

    def latent() -> torch.Tensor:
        zz = torch.addcmul(loc, scale, eps)
        return 0.5 * (eps * eps - zz * zz).sum(-1) + scale.log().sum(-1)

    l3 = logits.view(c, BATCH, D)
    parts: dict[str, Callable[[], object]] = {
        "gemm": gemm, "decoder_shipped": decoder_shipped, "decoder_bias_folded": decoder_bias_folded,
        "bernoulli_sum": lambda: bern(l3, x), "row_sum": lambda: row_sum(l3),
        "tanh": lambda: (h1.tanh_(), h2.tanh_()), "randn": lambda: torch.randn(c, BATCH, Z),
        "randn_two_threads": randn_two_threads, "latent": latent,
    }
    with torch.no_grad():
        t0 = time.perf_counter()
        for fn in parts.values():  # compile and warm up
            fn()
            fn()
        compile_s = time.perf_counter() - t0
        inner = max(3, int(40 * 4000 / rows))
        best = {k: math.inf for k in parts}
        for _ in range(a.repeats):
            for k, fn in parts.items():
                best[k] = min(best[k], best_us_per_1000_rows(fn, rows, inner))
    res = {k: round(v, 1) for k, v in best.items()}
    g = best["gemm"]
    floor = best["bernoulli_sum"] + best["tanh"] + min(best["randn"], best["randn_two_threads"])
    res.update({
        "unit": "us per 1000 decoded rows", "threads": a.threads, "rows_per_chunk": rows, "repeats": a.repeats,
        "warmup_and_compile_s": round(compile_s, 1),
        "decoder_shipped_over_gemm": round(best["decoder_shipped"] / g, 3),
        "decoder_bias_folded_over_gemm": round(best["decoder_bias_folded"] / g, 3),
        "budget_1.3x": round(0.3 * g, 1), "floor": round(floor, 1), "floor_over_gemm": round(floor / g, 3),
        "floor_within_budget": floor + best["latent"] <= 0.3 * g,
        "torch": torch.__version__,
    })
    print(json.dumps(res))  # first: the figures reach the terminal even if the write fails
    write_output(a.out, json.dumps(res, indent=1), payload=res)
    return res


if __name__ == "__main__":
    main()
