r"""S-VAE vs N-VAE over training seeds: paired differences per seed, then the spread between seeds.

The latents reproduction (:mod:`vaekit.reproduce.latents`) evaluates each run on the same test images with
the same evaluation seeds and stores the per-image estimates (``eval/test_n{N}_k{K}_*.json``). For a pair
``gaussian_d{d}{s}`` / ``vmf_d{d}{s}`` (``s`` = ``""`` for training seed 0, ``"_s{k}"`` for seed k) this module
computes, per training seed,

.. math:: \Delta_s = \frac1N \sum_{i=1}^N \bigl(\mathcal L^{S}_{500}(x_i) - \mathcal L^{N}_{500}(x_i)\bigr)

in nats (S-VAE minus N-VAE, so positive favours the S-VAE, Davidson et al. 2018, Table 1) with the paired
standard error over images, and over seeds the mean of :math:`\Delta_s`, their standard deviation and the
standard error of the mean (sd / sqrt(n_seeds)), the uncertainty that decides the claim (the paired s.e. over
images omits the seed spread).

``python -m vaekit.reproduce.seed_pairs RUNS_DIR --epochs 100 --out docs/results/svae_e100.json`` prints the
summary as one JSON object on its last line and writes it to ``--out``. Only pairs whose two runs have an
evaluation at exactly ``--epochs`` are used; a d with fewer than two complete seeds gets no seed statistics.
``--merge EARLIER.json`` adds the seeds of an earlier summary whose run directories are no longer here (run
directories are not committed; the committed summary keeps each seed's paired difference and log-likelihoods);
with ``--pair`` too (an earlier ``--pair`` summary at the same ``--epochs``).

Any other posterior family against the Gaussian, the same way (:func:`family_pairs`): ``--pair gaussian:iaf``
(and ``gaussian:mixture``) compares ``iaf_d{d}{s}`` with ``gaussian_d{d}{s}`` in the test ELBO (the claim of
Kingma et al. 2016 and of PAPERS.md §10(c) for Graves 2016) and in :math:`\mathcal L_{500}`, per seed paired over
images, then over seeds::

    python -m vaekit.reproduce.seed_pairs runs/posteriors --epochs 30 --dims 20 --pair gaussian:iaf,gaussian:mixture \
        --out docs/results/posteriors_e30.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from ..config import int_list
from ..train.outputs import OutputError, refuse_to_drop, write_output

__all__ = ["load_eval", "pair_difference", "summarise", "family_pairs", "seed_spread", "seeds_held", "main"]

SEEDS = (("", 0), ("_s1", 1), ("_s2", 2))  # the seeds of the committed tables; others are found by name


def _seeds(runs_dir: Path, dim: int, family: str = "gaussian") -> list[tuple[str, int]]:
    """``(suffix, seed)`` of every training seed with a ``{family}_d{dim}...`` run in ``runs_dir``, seed order."""
    found = {0: ""} if (runs_dir / f"{family}_d{dim}").is_dir() else {}
    for p in runs_dir.glob(f"{family}_d{dim}_s*"):
        tail = p.name[len(f"{family}_d{dim}_s"):]
        if tail.isdigit():
            found[int(tail)] = f"_s{tail}"
    return [(found[k], k) for k in sorted(found)]
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


def summarise(runs_dir: Path, epochs: int, dims: Sequence[int] = (2, 5, 10),
              earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-d table of paired S − N differences by seed and their mean, sd and s.e. over seeds (nats).

    ``earlier``: the ``dims`` of an earlier summary; its seeds that have no pair of runs here are kept (each with
    its paired difference, ELBO difference and, where recorded, the two log-likelihoods; an earlier summary that
    recorded only their mean over its seeds contributes that mean with its seed count).

    Raises:
        ValueError: a pair evaluated on different numbers of images; an earlier seed also measured here with
            another result is not an error: the run here wins.
    """
    out: dict[str, Any] = {}
    for dim in dims:
        by_seed, elbo_by_seed, ll = [], [], {"gaussian": [], "vmf": []}
        ll_by_seed: list[dict[str, float]] = []
        for suffix, seed in _seeds(runs_dir, dim):
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
            ll_by_seed.append({"seed": seed, "nvae": round(g["iwae"]["mean"], 3), "svae": round(v["iwae"]["mean"], 3)})
        weights = [1.0] * len(by_seed)
        old = (earlier or {}).get(str(dim))
        if old:
            here = {s["seed"] for s in by_seed}
            kept = [i for i, s in enumerate(old["ll_diff_by_seed"]) if s["seed"] not in here]
            for i in kept:
                by_seed.append(dict(old["ll_diff_by_seed"][i]))
                elbo_by_seed.append(old["elbo_diff_by_seed"][i])
            per = {r["seed"]: r for r in old.get("ll_by_seed", [])}
            if kept and all(old["ll_diff_by_seed"][i]["seed"] in per for i in kept):
                for i in kept:
                    r = per[old["ll_diff_by_seed"][i]["seed"]]
                    ll["gaussian"].append(r["nvae"])
                    ll["vmf"].append(r["svae"])
                    ll_by_seed.append(dict(r))
                    weights.append(1.0)
            elif kept:  # only the earlier mean over its seeds: it counts for the seeds it averaged
                # seeds measured here that the earlier mean also covered are taken out of it (the same runs)
                again = [r for r in ll_by_seed if r["seed"] in {s["seed"] for s in old["ll_diff_by_seed"]}]
                if len(kept) + len(again) != old["n_seeds"]:
                    raise ValueError(f"d={dim}: the earlier summary has no per-seed log-likelihoods, and its "
                                     f"{old['n_seeds']} seeds are neither kept nor measured here")
                for key, name in (("gaussian", "nvae"), ("vmf", "svae")):
                    total = old[f"{name}_ll_seed_mean"] * old["n_seeds"] - sum(r[name] for r in again)
                    ll[key].append(total / len(kept))
                weights.append(float(len(kept)))
            order = sorted(range(len(by_seed)), key=lambda i: by_seed[i]["seed"])
            by_seed, elbo_by_seed = [by_seed[i] for i in order], [elbo_by_seed[i] for i in order]
            ll_by_seed.sort(key=lambda r: r["seed"])
        if not by_seed:
            continue

        def wmean(xs: list[float]) -> float:
            return sum(w * x for w, x in zip(weights, xs)) / sum(weights)
        row: dict[str, Any] = {"ll_diff_by_seed": by_seed, "elbo_diff_by_seed": elbo_by_seed,
                               "paper_ll_diff": PAPER_LL_DIFF.get(dim),
                               "nvae_ll_seed_mean": round(wmean(ll["gaussian"]), 2),
                               "svae_ll_seed_mean": round(wmean(ll["vmf"]), 2), "n_seeds": len(by_seed)}
        if len(ll_by_seed) == len(by_seed):
            row["ll_by_seed"] = ll_by_seed
        if len(by_seed) >= 2:
            means = [s["mean"] for s in by_seed]
            sd = statistics.stdev(means)
            row.update(ll_diff_seed_mean=round(statistics.fmean(means), 3), ll_diff_seed_sd=round(sd, 3),
                       ll_diff_seed_se=round(sd / math.sqrt(len(means)), 3))
        out[str(dim)] = row
    return out


def seed_spread(values: Sequence[float], prefix: str = "seed_") -> dict[str, float]:
    """Mean, sd and s.e. (sd / sqrt(n)) of per-seed values, keys ``{prefix}mean`` etc. (rounded to 3 places); the mean
    alone for one seed, ``{}`` for none."""
    if len(values) < 2:
        return {f"{prefix}mean": round(values[0], 3)} if values else {}
    sd = statistics.stdev(values)
    return {f"{prefix}mean": round(statistics.fmean(values), 3), f"{prefix}sd": round(sd, 3),
            f"{prefix}se": round(sd / math.sqrt(len(values)), 3)}


def lr_schedules(runs_dir: Path, families: set[str], dims: Sequence[int]) -> list[dict[str, Any]]:
    """The distinct ``train.lr_schedule`` specs of the runs ``{family}_d{d}[_sN]`` under ``runs_dir`` (read from
    each run's ``config.json``; a run without one counts as ``{"type": "constant"}``, the trainer's default)."""
    found: list[dict[str, Any]] = []
    for fam in sorted(families):
        for dim in dims:
            for run in sorted(runs_dir.glob(f"{fam}_d{dim}*")):
                if not (run.name == f"{fam}_d{dim}" or run.name.startswith(f"{fam}_d{dim}_s")):
                    continue
                cfg = run / "config.json"
                spec = (json.loads(cfg.read_text()).get("train", {}).get("lr_schedule") if cfg.is_file() else None) \
                    or {"type": "constant"}
                if spec not in found:
                    found.append(spec)
    return found


def family_pairs(runs_dir: Path, epochs: int, base: str, other: str, dims: Sequence[int] = (20,),
                 earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-d paired ``other - base`` differences of the test ELBO and of L_K by training seed, then over seeds.

    Runs are ``{base}_d{d}{s}`` and ``{other}_d{d}{s}`` (``s`` as in the module docstring), each evaluated at
    checkpoint epoch ``epochs`` on the same images with the same evaluation seeds (per-image ``elbo`` and
    ``iwae`` estimates, nats). A seed counts only when both runs have such an evaluation. Returns
    ``{str(d): {"elbo_diff_by_seed": [{seed, mean, paired_se}], "ll_diff_by_seed": [...],
    "elbo_diff": {seed_mean, seed_sd, seed_se}, "ll_diff": {...}, "elbo_by_seed": [{seed, base, other}],
    "n_seeds", "n_images"}}``; positive favours ``other``. The seed s.e. is the one that decides a claim.
    ``earlier``: the same pair's entry of an earlier summary (``{str(d): row}``); its seeds without a pair of
    runs here are kept (their per-seed rows), so new seeds add to the committed ones as if all were run here.

    Raises:
        ValueError: a pair evaluated on different numbers of images, or an evaluation without per-image ELBOs.
    """
    out: dict[str, Any] = {}
    for dim in dims:
        elbo_rows, ll_rows, levels, n_images = [], [], [], set()
        for suffix, seed in _seeds(runs_dir, dim, base):
            a = load_eval(runs_dir / f"{base}_d{dim}{suffix}", epochs)
            b = load_eval(runs_dir / f"{other}_d{dim}{suffix}", epochs)
            if a is None or b is None:
                continue
            if a["n"] != b["n"]:
                raise ValueError(f"d={dim} seed {seed}: {base} and {other} were evaluated on {a['n']} and {b['n']} "
                                 "images")
            for r in (a, b):
                if "elbo" not in r["per_image"]:
                    raise ValueError(f"d={dim} seed {seed}: an evaluation without per-image ELBOs (re-evaluate "
                                     "with ELBO samples)")
            n_images.add(a["n"])
            e = pair_difference(b["per_image"]["elbo"], a["per_image"]["elbo"])
            ll = pair_difference(b["per_image"]["iwae"], a["per_image"]["iwae"])
            elbo_rows.append({"seed": seed, **{k: round(x, 3) for k, x in e.items()}})
            ll_rows.append({"seed": seed, **{k: round(x, 3) for k, x in ll.items()}})
            levels.append({"seed": seed, "elbo": {base: round(a["elbo"]["mean"], 3), other: round(b["elbo"]["mean"], 3)},
                           "ll": {base: round(a["iwae"]["mean"], 3), other: round(b["iwae"]["mean"], 3)}})
        old = (earlier or {}).get(str(dim))
        if old:
            here = {r["seed"] for r in elbo_rows}
            for key, rows in (("elbo_diff_by_seed", elbo_rows), ("ll_diff_by_seed", ll_rows),
                              ("levels_by_seed", levels)):
                rows.extend(dict(r) for r in old.get(key, []) if r["seed"] not in here)
                rows.sort(key=lambda r: r["seed"])
            n_images.update(old.get("n_images", []))
        if not elbo_rows:
            continue
        out[str(dim)] = {"elbo_diff_by_seed": elbo_rows, "ll_diff_by_seed": ll_rows,
                         "elbo_diff": seed_spread([r["mean"] for r in elbo_rows]),
                         "ll_diff": seed_spread([r["mean"] for r in ll_rows]),
                         "levels_by_seed": levels, "n_seeds": len(elbo_rows), "n_images": sorted(n_images)}
    return out


def seeds_held(summary: dict[str, Any]) -> set[str]:
    """The (comparison, d, seed) results a summary of this module holds, as ``"iaf_vs_gaussian/d20/s4"`` (``--pair``)
    or ``"d2/s1"`` (S-VAE/N-VAE): what ``--out`` must not drop."""
    def each(prefix: str, row: dict[str, Any], key: str) -> set[str]:
        seeds = row.get(key)  # a row without its per-seed list counts as one result
        if seeds is None:
            return {prefix}
        # older summaries list seeds 0, 1, ... in order, without naming them
        return {f"{prefix}/s{r['seed'] if isinstance(r, dict) and 'seed' in r else i}" for i, r in enumerate(seeds)}

    if "pairs" in summary:
        return {n for name, by_d in summary["pairs"].items() for d, row in by_d.items()
                for n in each(f"{name}/d{d}", row, "elbo_diff_by_seed")}
    return {n for d, row in summary["dims"].items() for n in each(f"d{d}", row, "ll_diff_by_seed")}


def _write(p: argparse.ArgumentParser, a: argparse.Namespace, res: dict[str, Any]) -> None:
    print(json.dumps(res))  # first: the figures reach the terminal even if the write fails
    if a.out:
        try:
            refuse_to_drop(a.out, seeds_held(res), names=seeds_held,
                           how="keep them with --merge (the same file), or pass --force", force=a.force)
        except OutputError as e:
            p.error(f"{e}; the results are printed above")
        write_output(a.out, json.dumps(res, indent=1) + "\n", payload=res)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.seed_pairs", description=__doc__.split("\n")[0])
    p.add_argument("runs_dir", type=Path, help="directory holding gaussian_d{d}[_s1|_s2] and vmf_d{d}[...] runs")
    p.add_argument("--epochs", type=int, required=True, help="use evaluations of the checkpoint at this epoch")
    p.add_argument("--dims", type=int_list, default="2,5,10", help="comma-separated d values (default 2,5,10)")
    p.add_argument("--out", type=Path, help="write the JSON here as well (refused if that drops seeds it holds)")
    p.add_argument("--force", action="store_true", help="rewrite --out even if it drops seeds it holds")
    p.add_argument("--merge", type=Path, help="an earlier summary (of the same kind) whose seeds without runs here "
                                              "are kept (with --pair, also its pairs not compared here)")
    p.add_argument("--pair", help="comma list of BASE:OTHER families (e.g. gaussian:iaf,gaussian:mixture) compared "
                                  "in ELBO and L_K instead of the S-VAE/N-VAE summary")
    a = p.parse_args(argv)
    if not a.runs_dir.is_dir():
        p.error(f"runs directory {a.runs_dir} does not exist")
    dims = a.dims
    if a.pair is not None:
        pairs = [t.split(":") for t in a.pair.split(",")]
        if any(len(t) != 2 or not all(t) for t in pairs):
            p.error(f"--pair must be BASE:OTHER[,BASE:OTHER...], got {a.pair!r}")
        earlier_pairs: dict[str, Any] = {}
        if a.merge is not None:
            try:
                summary = json.loads(a.merge.read_text())
                earlier_pairs = summary["pairs"]
            except (OSError, ValueError, KeyError) as e:
                p.error(f"--merge {a.merge}: not a --pair summary of this module ({e})")
            if summary.get("epochs") != a.epochs:
                p.error(f"--merge {a.merge}: a summary of {summary.get('epochs')} epochs, not --epochs {a.epochs}")
        schedules = lr_schedules(a.runs_dir, {f for t in pairs for f in t}, dims)
        if a.merge is not None:
            # summaries written before this field existed were all trained at a constant learning rate
            before = summary.get("lr_schedules", [{"type": "constant"}])
            if before != schedules:
                p.error(f"--merge {a.merge}: its runs were trained with learning-rate schedule(s) {before}, those in "
                        f"{a.runs_dir} with {schedules}; seeds of different protocols do not merge")
        computed = {f"{o}_vs_{b}": family_pairs(a.runs_dir, a.epochs, b, o, dims, earlier_pairs.get(f"{o}_vs_{b}"))
                    for b, o in pairs}
        if not any(computed.values()):
            p.error(f"no evaluated run pairs ({', '.join(f'{b}_d{{d}}[_sN] with {o}_d{{d}}[_sN]' for b, o in pairs)}, "
                    f"d in {dims}, checkpoint of epoch {a.epochs}) under {a.runs_dir}")
        res = {"what": f"posterior families against each other, paired test ELBO and L_K differences (OTHER - BASE) "
                       f"per training seed, then over seeds; {a.epochs} epochs",
               "epochs": a.epochs, "runs_dir": str(a.runs_dir), "lr_schedules": schedules,
               # the earlier summary's other pairs are kept as they were: a merge never drops a result
               "pairs": {**{k: v for k, v in earlier_pairs.items() if k not in computed}, **computed}}
        if a.merge is not None:
            res["merged_from"] = str(a.merge)
        _write(p, a, res)
        return 0
    earlier = None
    if a.merge is not None:
        try:
            earlier = json.loads(a.merge.read_text())["dims"]
        except (OSError, ValueError, KeyError) as e:
            p.error(f"--merge {a.merge}: not a summary of this module ({e})")
    summary = summarise(a.runs_dir, a.epochs, dims, earlier)
    if not summary:
        p.error(f"no evaluated run pairs (gaussian_d{{d}}[_sN] with vmf_d{{d}}[_sN], d in {dims}, checkpoint of epoch "
                f"{a.epochs}) under {a.runs_dir}")
    res = {"what": f"S-VAE (vMF) vs N-VAE (Gaussian), paired test L_500 differences per training seed, {a.epochs} epochs",
           "epochs": a.epochs, "runs_dir": str(a.runs_dir), "dims": summary}
    _write(p, a, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
