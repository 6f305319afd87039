"""How heavy are the tails of the mixture's reparameterised gradients? (issue 12, item 7)

``MixtureOfDiagonalNormals.rsample`` carries Graves's implicit gradient ``dz_d/dθ = -∂_θF_d(z_d|z_<d) / p_d(z_d|z_<d)``.
Each draw's Jacobian is exact, but where a draw falls between well-separated components the conditional
density ``p_d`` is tiny and the per-draw gradient huge. This script measures, on the same ``f`` and the same
mixtures, the per-draw gradients of ``E_q[f(z)]`` with respect to the logits, means and scales from

* ``reparam``: the pathwise (implicit) gradient of ``f(rsample())``;
* ``score``: the score-function estimator ``f(z) ∇ log q(z)`` (no baseline);
* ``score_baseline``: the same with ``f(z) - mean(f)`` (the batch mean as baseline),

against the closed-form gradient of ``E_q[f]`` for ``f(z) = sum_d (z_d + z_d^2)``
(``E_q f = sum_k π_k sum_d (μ_kd + μ_kd^2 + σ_kd^2)``). For each estimator and parameter it reports

* ``z``: ``|mean - exact| / s.e.`` over the ``n`` draws (s.e. from the sample; for a finite-variance
  estimator this is |N(0,1)|-distributed, so a median near 0.67 and a max of a few over the parameters);
* ``hill_alpha``: the Hill estimate of the tail index of ``|g - exact|`` from the top 1% of draws (below 2:
  the variance is infinite in practice and the s.e. meaningless; Gaussian-like tails give large values);
* ``top_share``: the share of ``sum (g - exact)^2`` that the top 0.1% of draws carry (0.001 to a few % for
  light tails);
* ``block_z_over_4``: the ``n`` draws cut into 20 blocks, the fraction of (block, parameter) pairs whose block
  mean misses the exact gradient by more than 4 of the block's own s.e. (6e-5 for a finite-variance
  estimator; with heavy tails a block without a rare huge draw has a small s.e. and a mean far off), and
  ``block_z_max``, the largest such miss.

Mixtures: ``K = 5`` components with means ``s·v_k`` (``v_k`` orthonormal in ``D = 10``, or ``s·(k - 2)`` in
``D = 1``: neighbours ``s√2``, resp. ``s`` standard deviations apart), scales 1, logits from N(0, 0.5^2),
for separations ``s`` from 0.5 to 8.

    python benchmarks/mixture_gradient_tails.py --out benchmarks/results/mixture_gradient_tails.json
    python benchmarks/mixture_gradient_tails.py --quick --out /tmp/mgt.json     # smoke check

Prints a table and, on its last line, the whole result as one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import time
from pathlib import Path

import torch

from vaekit.distributions import MixtureOfDiagonalNormals
from vaekit.train.outputs import write_output

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "mixture_gradient_tails.json"
DT = torch.float64
K = 5


def mixture(d: int, sep: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if d >= K:
        v = torch.linalg.qr(torch.randn(d, K, generator=g, dtype=DT))[0].T  # (K, d) orthonormal rows
    else:
        v = (torch.arange(K, dtype=DT) - (K - 1) / 2).unsqueeze(-1).expand(K, d)
    logits = 0.5 * torch.randn(K, generator=g, dtype=DT)
    return logits, sep * v, torch.ones(K, d, dtype=DT)


def f(z: torch.Tensor) -> torch.Tensor:
    return (z + z ** 2).sum(-1)


def exact_gradient(logits, loc, scale) -> list[torch.Tensor]:
    leaves = [t.clone().requires_grad_() for t in (logits, loc, scale)]
    pi = leaves[0].softmax(-1)
    expectation = (pi * (leaves[1] + leaves[1] ** 2 + leaves[2] ** 2).sum(-1)).sum()
    return list(torch.autograd.grad(expectation, leaves))


def per_draw_gradients(logits, loc, scale, n: int, estimator: str) -> list[torch.Tensor]:
    """``[(n, K), (n, K, D), (n, K, D)]``: one gradient per draw (the parameters are copied per draw)."""
    reps = [t.expand(n, *t.shape).clone().requires_grad_() for t in (logits, loc, scale)]
    q = MixtureOfDiagonalNormals(*reps, validate_args=False)
    if estimator == "reparam":
        return list(torch.autograd.grad(f(q.rsample()).sum(), reps))
    z = q.sample()
    fz = f(z)
    if estimator == "score_baseline":
        fz = fz - fz.mean()
    return list(torch.autograd.grad((fz * q.log_prob(z)).sum(), reps))


def hill_alpha(x: torch.Tensor, frac: float = 0.01) -> float:
    """Hill's (1975) tail-index estimate from the top ``frac`` of ``|x|``."""
    a = x.abs().sort(descending=True).values
    k = max(10, int(frac * a.numel()))
    tail = torch.log(a[:k] / a[k]).mean().item()
    return float("inf") if tail <= 0 else 1.0 / tail


def summarise(grads: list[torch.Tensor], exact: list[torch.Tensor]) -> dict[str, dict[str, float]]:
    out = {}
    for name, g, e in zip(("logits", "loc", "scale"), grads, exact):
        dev = (g - e).reshape(g.shape[0], -1)  # (n, P)
        n = dev.shape[0]
        z = (dev.mean(0).abs() / (dev.std(0) / math.sqrt(n))).tolist()
        alphas = [hill_alpha(dev[:, j]) for j in range(dev.shape[1])]
        sq = (dev ** 2).sort(0, descending=True).values
        top = max(1, n // 1000)
        shares = (sq[:top].sum(0) / sq.sum(0)).tolist()
        blocks = dev[: n - n % 20].reshape(20, -1, dev.shape[1])  # (20, n/20, P)
        bz = blocks.mean(1).abs() / (blocks.std(1) / math.sqrt(blocks.shape[1]))
        med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
        out[name] = {"z_median": med(z), "z_max": max(z), "hill_alpha_median": med(alphas),
                     "hill_alpha_min": min(alphas), "top_share_median": med(shares), "top_share_max": max(shares),
                     "block_z_over_4": float((bz > 4).double().mean()), "block_z_max": float(bz.max())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=80000, help="draws per (mixture, estimator)")
    ap.add_argument("--seps", type=float, nargs="+", default=[0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
    ap.add_argument("--dims", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="n = 4000, separations 1 and 6, D = 10")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    if args.quick:
        args.n, args.seps, args.dims = 4000, [1.0, 6.0], [10]
    torch.set_num_threads(args.threads)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    res = {"benchmark": "mixture_gradient_tails", "f": "sum_d (z_d + z_d^2)", "K": K, "n": args.n,
           "versions": {"torch": torch.__version__, "python": platform.python_version(), "vaekit_commit": commit},
           "threads": args.threads, "results": {}}
    t0 = time.time()
    print(f"{'D':>3} {'sep':>4} {'estimator':>15} | {'param':>6} {'z med':>7} {'z max':>8} {'alpha med':>9} "
          f"{'alpha min':>9} {'top0.1% share':>13} {'blocks z>4':>10} {'block z max':>11}")
    for d in args.dims:
        for sep in args.seps:
            logits, loc, scale = mixture(d, sep)
            exact = exact_gradient(logits, loc, scale)
            row = {}
            for est in ("reparam", "score", "score_baseline"):
                torch.manual_seed(1)
                row[est] = summarise(per_draw_gradients(logits, loc, scale, args.n, est), exact)
                for name, s in row[est].items():
                    print(f"{d:>3} {sep:>4} {est:>15} | {name:>6} {s['z_median']:7.2f} {s['z_max']:8.2f} "
                          f"{s['hill_alpha_median']:9.2f} {s['hill_alpha_min']:9.2f} {s['top_share_median']:13.4f} "
                          f"{s['block_z_over_4']:10.4f} {s['block_z_max']:11.1f}")
            res["results"][f"D{d}_sep{sep:g}"] = {"D": d, "separation": sep, **row}
    res["seconds"] = round(time.time() - t0, 1)
    line = json.dumps(res)
    print(line)  # first: the figures reach the terminal even if the write fails
    write_output(args.out, line + "\n", payload=res)


if __name__ == "__main__":
    main()
