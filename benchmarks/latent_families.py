#!/usr/bin/env python
r"""Training step time of every registered latent family relative to the Gaussian, at k = 1 and k = 5.

For each family in ``vaekit.latents.LATENTS.names()`` a small MLP VAE (784-200-200 tanh encoder,
the family's latent layer, 200-200-784 tanh decoder, Bernoulli likelihood) is trained with
vaekit's hot path (``vaekit.train.train_step`` on ``build_objective({"type": "elbo", "k": k})``,
``build_optimizer``, ``batch_indices`` + ``dynamic_binarize``; batch 100, dynamically binarised
Fashion-MNIST, or MNIST if the Debian package is missing) interleaved with a Gaussian model of
the same size, as ``fm_mlp.py`` times its systems (../shared/bench/fm-mlp/PROTOCOL.md section 5,
version 1.1): one block each per round, the order alternating, ``--rounds`` rounds after
``--warmup-rounds``; the figure is the median over rounds of the per-round ratio of the step
times, family / Gaussian (> 1: the family's step is slower). Blocks are ``--block`` steps; a
family that the warm-up shows to be s times slower than the Gaussian runs ``--block / s`` steps
per block (at least ``--min-block``), so both blocks of a round last about as long.

Each family gets latent dim ``--dim`` or the nearest dim it accepts (``relaxed_categorical``:
a multiple of its ``n_categories``), its other keys at their defaults. Only public API that
exists before and after issue 11 is used.

Usage::

    python benchmarks/latent_families.py --out benchmarks/results/latent_families.json
    python benchmarks/latent_families.py --quick --out /tmp/lf.json      # smoke check

Prints a markdown table; the last line is one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _bench  # noqa: E402
from fm_mlp import vaekit_stepper  # noqa: E402

DEFAULT_OUT = HERE / "results" / "latent_families.json"
D, H = 784, 200


def model_spec(latent: dict[str, Any]) -> dict[str, Any]:
    return {"type": "vae",
            "encoder": {"type": "mlp", "hidden": [H, H], "activation": "tanh"},
            "latent": latent,
            "decoder": {"type": "mlp", "hidden": [H, H], "activation": "tanh"},
            "likelihood": {"type": "bernoulli"}}


def build_family(family: str, dim: int, seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """The family's model at latent dim ``dim`` or the nearest dim its constructor accepts."""
    from vaekit.models import build_model

    errors = []
    for d in sorted(range(max(1, dim - 10), dim + 11), key=lambda d: (abs(d - dim), d)):
        spec = model_spec({"type": family, "dim": d})
        torch.manual_seed(seed)
        try:
            return build_model(spec, data_dim=D), spec["latent"]
        except (ValueError, TypeError) as e:  # ConfigError is a ValueError
            errors.append(f"dim {d}: {type(e).__name__}: {e}")
    raise RuntimeError(f"{family}: no latent dim near {dim} builds: {errors[:2]}")


def finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--ks", default="1,5", help="comma-separated sample counts of the elbo objective")
    p.add_argument("--block", type=int, default=40, help="training steps per block")
    p.add_argument("--min-block", type=int, default=10,
                   help="fewest steps per block of a family slower than the Gaussian (its block is shortened to"
                        " last about as long as the Gaussian's)")
    p.add_argument("--rounds", type=int, default=16, help="rounds per (family, k) pair (at least 12)")
    p.add_argument("--warmup-rounds", type=int, default=1)
    p.add_argument("--families", default="", help="comma-separated subset (default: every registered family)")
    p.add_argument("--train-images", type=int, default=10_000, help="training images cycled through")
    _bench.add_quiet_args(p)
    p.add_argument("--quick", action="store_true", help="smoke check: 2 rounds of 5 steps; figures meaningless")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    if a.quick:
        a.block, a.min_block, a.rounds, a.warmup_rounds = min(a.block, 5), min(a.min_block, 2), min(a.rounds, 2), 1
        a.train_images, a.quiet = min(a.train_images, 1000), 0.0
    torch.set_num_threads(a.threads)
    _bench.WAIT_BUDGET["left"] = a.wait_budget
    import vaekit
    from vaekit.latents import LATENTS

    print(f"[latent_families] vaekit from {vaekit.__file__}, {a.threads} threads", file=sys.stderr, flush=True)
    t0, load0 = time.perf_counter(), os.getloadavg()
    data_name, raw_train, _ = _bench.load_raw_images(a.train_images)
    train = _bench.to_unit(raw_train)
    registered = LATENTS.names()
    families = [f for f in (a.families.split(",") if a.families else registered) if f != "gaussian"]
    ks = [int(k) for k in a.ks.split(",")]
    res: dict[str, Any] = {"benchmark": "latent_families",
                           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                           "versions": _bench.versions(), "vaekit_commit": _bench.vaekit_commit(),
                           "dataset": data_name, "registered": registered, "load_avg_start": load0,
                           "results": {}, "skipped": {}}
    for k in ks:
        objective = {"type": "elbo", "k": k}
        gauss, gauss_spec = build_family("gaussian", a.dim)
        g_step, _ = vaekit_stepper(gauss, train, objective, seed=1)
        res["results"].setdefault("gaussian", {"latent": gauss_spec})[f"k{k}"] = {"ratio": {"median": 1.0}, "steps_ms": []}
        for fam in families:
            try:
                model, spec = build_family(fam, a.dim)
                f_step, _ = vaekit_stepper(model, train, objective, seed=1)
                steps = {"gaussian": a.block, fam: a.block}
                warm = _bench.interleave({"gaussian": lambda: g_step(steps["gaussian"]), fam: lambda: f_step(steps[fam])},
                                         a.warmup_rounds, 0, label=f"{fam} k={k} warm-up")
                # a family much slower than the Gaussian runs fewer steps per block, so that both blocks
                # of a round last about as long (and share the machine's phase); ratios are per step
                slow = min(warm["s"][fam]) / min(warm["s"]["gaussian"])
                steps[fam] = max(a.min_block, min(a.block, round(a.block / slow)))
                timing = _bench.interleave({"gaussian": lambda: g_step(steps["gaussian"]), fam: lambda: f_step(steps[fam])},
                                           a.rounds, 0, label=f"{fam} k={k}", quiet=a.quiet, max_wait=a.max_wait)
            except Exception as e:  # one family failing must not lose the others' figures
                res["skipped"][f"{fam} k={k}"] = f"{type(e).__name__}: {e}"
                print(f"[latent_families] {fam} k={k} skipped: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                continue
            summ = _bench.ratio_summary(timing, fam, "gaussian", per=steps, unit="ms")
            res["results"].setdefault(fam, {"latent": spec})[f"k{k}"] = {
                "ratio": {q: summ[q] for q in ("median", "q25", "q75", "min", "max", "n")},
                "undisturbed_rounds": summ.get("undisturbed_rounds"), "others_share": summ.get("others_share"),
                "waited_s": sum(timing["waited_s"]),
                "per_round": summ["per_round"], "step_ms": summ[f"{fam}_ms"], "gaussian_step_ms": summ["gaussian_ms"],
                "block_steps": steps, "orders": timing["orders"], "params_finite_after": finite(model)}
            res["results"]["gaussian"][f"k{k}"]["steps_ms"].append(summ["gaussian_ms"]["median"])
        gk = res["results"]["gaussian"][f"k{k}"]
        steps = gk.pop("steps_ms")
        gk["step_ms"] = {"median": statistics.median(steps) if steps else math.nan,
                         "note": "median over the family pairs of the Gaussian's median step"}
    res["load_avg_end"] = os.getloadavg()
    res["wall_s"] = time.perf_counter() - t0
    res["table"] = table(res, ks)
    print(res["table"])
    _bench.write_result(res, a.out)
    return res


def table(res: dict[str, Any], ks: list[int]) -> str:
    """Markdown: one row per family, per k its median step (the Gaussian's in the same rounds) and the
    median per-round ratio with IQR and min-max. The Gaussian row: the median over the pairs."""
    head = "| family | latent spec |" + "".join(f" k={k} step ms (Gaussian) | k={k} / Gaussian (IQR; min-max) |"
                                              for k in ks)
    lines = [head, "|---|---|" + "---:|---:|" * len(ks)]
    for fam, r in res["results"].items():
        extra = {key: v for key, v in r["latent"].items() if key != "type"}
        row = f"| `{fam}` | {extra} |"
        for k in ks:
            c = r.get(f"k{k}")
            if c is None:
                row += " – | skipped |"
            elif fam == "gaussian":
                row += f" {c['step_ms']['median']:.2f} | 1 |"
            else:
                q = c["ratio"]
                row += (f" {c['step_ms']['median']:.2f} ({c['gaussian_step_ms']['median']:.2f}) | "
                        f"**{q['median']:.2f}** ({q['q25']:.2f}–{q['q75']:.2f}; "
                        f"{q['min']:.2f}–{q['max']:.2f}) |")
        lines.append(row)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
