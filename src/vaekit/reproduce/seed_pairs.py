r"""S-VAE vs N-VAE over training seeds: paired differences per seed, then the spread between seeds.

The latents reproduction (:mod:`vaekit.reproduce.latents`) evaluates each run on the same test images with
the same evaluation seeds and stores the per-image estimates (``eval/test_n{N}_k{K}_*.json``). For a pair
``gaussian_d{d}{s}`` / ``vmf_d{d}{s}`` (``s`` = ``""``, ``"_s1"``, ``"_s2"``: training seeds 0, 1, 2) this module
computes, per training seed,

.. math:: \Delta_s = \frac1N \sum_{i=1}^N \bigl(\mathcal L^{S}_{500}(x_i) - \mathcal L^{N}_{500}(x_i)\bigr)

in nats (S-VAE minus N-VAE, so positive favours the S-VAE, Davidson et al. 2018, Table 1) with the paired
standard error over images, and over seeds the mean of :math:`\Delta_s`, their standard deviation and the
standard error of the mean (sd / sqrt(n_seeds)), the uncertainty that decides the claim (the paired s.e. over
images omits the seed spread).

``python -m vaekit.reproduce.seed_pairs RUNS_DIR --epochs 100 --out docs/results/svae_e100.json`` prints the
summary as one JSON object on its last line and writes it to ``--out``. Only pairs whose two runs have an
evaluation at exactly ``--epochs`` are used; a d with fewer than two complete seeds gets no seed statistics.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

__all__ = ["load_eval", "pair_difference", "summarise", "main"]

SEEDS = (("", 0), ("_s1", 1), ("_s2", 2))
PAPER_LL_DIFF = {2: 3.23, 5: 1.78, 10: 0.68}  # Davidson et al. 2018 Table 1 (docs PAPERS.md §8)


def load_eval(run_dir: Path, epochs: int) -> dict[str, Any] | None:
    """The newest evaluation of ``run_dir`` made at checkpoint epoch ``epochs`` (``None`` if there is none).

    Raises ``ValueError`` naming the file when an evaluation JSON cannot be parsed."""
    found = []
    for f in sorted((run_dir / "eval").glob("test_n*_k*.json")):
        try:
            d = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"evaluation file {f} is not readable JSON: {e}") from None
        if d.get("checkpoint", {}).get("epoch") == epochs and "per_image" in d:
            found.append((f.stat().st_mtime, d))
    return max(found, key=lambda t: t[0])[1] if found else None


def pair_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean and paired standard error of ``a_i - b_i`` (nats). Raises ``ValueError`` on unequal lengths."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired difference needs two equal-length lists of ≥ 2 images, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    return {"mean": statistics.fmean(d), "paired_se": statistics.stdev(d) / math.sqrt(len(d))}


def summarise(runs_dir: Path, epochs: int, dims: Sequence[int] = (2, 5, 10)) -> dict[str, Any]:
    """Per-d table of paired S − N differences by seed and their mean, sd and s.e. over seeds (nats)."""
    out: dict[str, Any] = {}
    for dim in dims:
        by_seed, elbo_by_seed, ll = [], [], {"gaussian": [], "vmf": []}
        for suffix, seed in SEEDS:
            g = load_eval(runs_dir / f"gaussian_d{dim}{suffix}", epochs)
            v = load_eval(runs_dir / f"vmf_d{dim}{suffix}", epochs)
            if g is None or v is None:
                continue
            if g["n"] != v["n"]:
                raise ValueError(f"d={dim} seed {seed}: the two runs were evaluated on {g['n']} and {v['n']} images")
            diff = pair_difference(v["per_image"]["iwae"], g["per_image"]["iwae"])
            by_seed.append({"seed": seed, **{k: round(x, 3) for k, x in diff.items()}})
            elbo_by_seed.append(round(v["elbo"]["mean"] - g["elbo"]["mean"], 3))
            ll["gaussian"].append(g["iwae"]["mean"])
            ll["vmf"].append(v["iwae"]["mean"])
        if not by_seed:
            continue
        row: dict[str, Any] = {"ll_diff_by_seed": by_seed, "elbo_diff_by_seed": elbo_by_seed,
                               "paper_ll_diff": PAPER_LL_DIFF.get(dim),
                               "nvae_ll_seed_mean": round(statistics.fmean(ll["gaussian"]), 2),
                               "svae_ll_seed_mean": round(statistics.fmean(ll["vmf"]), 2), "n_seeds": len(by_seed)}
        if len(by_seed) >= 2:
            means = [s["mean"] for s in by_seed]
            sd = statistics.stdev(means)
            row.update(ll_diff_seed_mean=round(statistics.fmean(means), 3), ll_diff_seed_sd=round(sd, 3),
                       ll_diff_seed_se=round(sd / math.sqrt(len(means)), 3))
        out[str(dim)] = row
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.seed_pairs", description=__doc__.split("\n")[0])
    p.add_argument("runs_dir", type=Path, help="directory holding gaussian_d{d}[_s1|_s2] and vmf_d{d}[...] runs")
    p.add_argument("--epochs", type=int, required=True, help="use evaluations of the checkpoint at this epoch")
    p.add_argument("--dims", default="2,5,10", help="comma-separated d values (default 2,5,10)")
    p.add_argument("--out", type=Path, help="write the JSON here as well")
    a = p.parse_args(argv)
    if not a.runs_dir.is_dir():
        p.error(f"runs directory {a.runs_dir} does not exist")
    try:
        dims = [int(x) for x in a.dims.split(",")]
    except ValueError:
        p.error(f"--dims must be comma-separated integers, got {a.dims!r}")
    res = {"what": f"S-VAE (vMF) vs N-VAE (Gaussian), paired test L_500 differences per training seed, {a.epochs} epochs",
           "epochs": a.epochs, "runs_dir": str(a.runs_dir), "dims": summarise(a.runs_dir, a.epochs, dims)}
    text = json.dumps(res)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
