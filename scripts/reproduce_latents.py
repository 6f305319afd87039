"""Reproduce the latent-family comparisons of issue 5 on dynamically binarised MNIST; write docs/results/latents.md.

Three comparisons, all with the S-VAE reference architecture (Davidson et al. 2018, arXiv:1804.00891;
nicola-decao/s-vae-pytorch examples/mnist.py with h = 128): encoder 784-256-128 ReLU, decoder z-128-256-784
ReLU, Bernoulli likelihood, batch 64, Adam 1e-3, single-sample ELBO, all 60,000 training images with fresh
Bernoulli pixels every batch, equal epochs for every model:

* S-VAE (``vmf``) against N-VAE (``gaussian``) for d in ``--dims``. As in the reference code
  (``ModelVAE(z_dim=Z_DIM + 1, distribution='vmf')``), an S-VAE of dimensionality d has codes on the
  d-dimensional sphere S^d in R^(d+1), so its ``latent.dim`` (vaekit's ambient dimension) is d + 1; the
  N-VAE of the same d is Gaussian in R^d. Both have d degrees of freedom.
* IAF (Kingma et al. 2016, arXiv:1606.04934; 2 steps, MADE [320, 320]) against the diagonal Gaussian, d = 20.
* A K = 5 mixture of diagonal Gaussians (Graves 2016, arXiv:1607.05690) against the diagonal Gaussian, d = 20.

Each model is trained by the library's CLI (``vaekit train --config configs/latents/<family>_mnist.yaml
model.latent.dim=... train.epochs=... --threads N --no-final-eval``, one subprocess at a time) and evaluated
from its last checkpoint with :mod:`vaekit.evaluation` on the first ``--eval-n`` test images (binarised once
with the run's fixed seed, identical for every model):

* ELBO = E_q[log p(x|z)] - KL(q||p), Kingma & Welling 2013 (arXiv:1312.6114), with ``--elbo-k`` posterior
  samples per image (analytic KL for ``gaussian``/``vmf``, Monte Carlo for ``iaf``/``mixture``); also its two
  terms RE = E_q[log p(x|z)] and KL, the columns of Davidson et al.'s Table 1;
* L_k = E log (1/k) sum_i p(x, z_i)/q(z_i|x), Burda et al. 2015 (arXiv:1509.00519), k = ``--eval-k``
  (500 as in Davidson et al.), the "LL" of the table.

Per-image values are kept so that differences between two models on the same images come with a paired
standard error (over images; it does not include the spread over training seeds, which one run per model
cannot measure). Results are written after every run (``--out``/results.json and the markdown file), so an
interrupted set keeps what finished; re-running skips models whose ``result.json`` exists. The last stdout
line is one JSON object.

    python scripts/reproduce_latents.py --epochs 10 --dims 5,40,20,10,2 --eval-n 2000 --eval-k 500 \
        --repeat-seeds 1 --repeat-dims 5,2 --extra-results runs/latents_e30
    # the 30-epoch pairs reported under --extra-results:
    python scripts/reproduce_latents.py --epochs 30 --dims 5,40 --families gaussian,vmf --out runs/latents_e30 \
        --doc runs/latents_e30/latents.md --json runs/latents_e30/latents.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"gaussian": "configs/latents/nvae_mnist.yaml", "vmf": "configs/latents/svae_mnist.yaml",
           "iaf": "configs/latents/iaf_mnist.yaml", "mixture": "configs/latents/mixture_mnist.yaml"}
FAMILIES = tuple(CONFIGS)
LABEL = {"gaussian": "N-VAE (diagonal Gaussian)", "vmf": "S-VAE (vMF)", "iaf": "IAF, 2 steps",
         "mixture": "mixture, K = 5"}

#: Davidson et al. (2018) Table 1, dynamically binarised MNIST, LL = L_500; from docs PAPERS.md section 8
#: (cells marked FROM MEMORY there are flagged with "*").
PAPER_SVAE: dict[tuple[str, int], dict[str, Any]] = {
    ("gaussian", 2): {"ll": -135.73, "elbo": -137.08, "note": "ELBO*"},
    ("vmf", 2): {"ll": -132.50, "elbo": -133.72, "note": "ELBO*"},
    ("gaussian", 5): {"ll": -110.21, "elbo": -112.98, "note": ""},
    ("vmf", 5): {"ll": -108.43, "elbo": -111.19, "note": ""},
    ("gaussian", 10): {"ll": -93.84, "elbo": -98.36, "note": "*"},
    ("vmf", 10): {"ll": -93.16, "elbo": -97.70, "note": ""},
    ("gaussian", 20): {"ll": -88.90, "elbo": -94.79, "note": ""},
    ("vmf", 20): {"ll": -89.02, "elbo": -96.15, "note": "*"},
    ("gaussian", 40): {"ll": -88.93, "elbo": -94.91, "note": "*"},
    ("vmf", 40): {"ll": -90.87, "elbo": -101.26, "note": "*"},
}
#: Kingma et al. (2016) Table 1: conv ResNet VAE, 32-d latent, log p from 128 importance samples.
PAPER_IAF = {"gaussian": {"elbo": -84.08, "ll": -81.08}, "iaf": {"elbo": -82.02, "ll": -79.77}}


def run_name(family: str, d: int, seed: int | None = None) -> str:
    """``vmf_d5`` for the main set (seed ``--seed``), ``vmf_d5_s1`` for an extra training seed."""
    return f"{family}_d{d}" + ("" if seed is None else f"_s{seed}")


def latent_dim(family: str, d: int) -> int:
    """vaekit's ``latent.dim`` for a model with d degrees of freedom (S^d lives in R^(d+1))."""
    return d + 1 if family == "vmf" else d


def plan(dims: list[int], families: list[str], pair_dim: int) -> list[tuple[str, int]]:
    """Runs in the order given by ``dims`` (most important first); IAF/mixture right after their baseline."""
    runs: list[tuple[str, int]] = []
    for d in dims:
        for fam in ("gaussian", "vmf"):
            if fam in families:
                runs.append((fam, d))
        if d == pair_dim:
            if ("iaf" in families or "mixture" in families) and ("gaussian", d) not in runs:
                runs.append(("gaussian", d))
            runs += [(f, d) for f in ("iaf", "mixture") if f in families]
    if pair_dim not in dims and ("iaf" in families or "mixture" in families):
        runs.append(("gaussian", pair_dim))
        runs += [(f, pair_dim) for f in ("iaf", "mixture") if f in families]
    return runs


def train(family: str, d: int, args: argparse.Namespace, out: Path, seed: int, name: str) -> dict[str, Any]:
    """Train one model with ``vaekit train`` in a subprocess; returns the command and its wall time."""
    cmd = ["vaekit", "train", "--config", CONFIGS[family], f"model.latent.dim={latent_dim(family, d)}",
           f"train.epochs={args.epochs}", f"seed={seed}", f"run_name={name}",
           "--out", str(out), "--threads", str(args.threads), "--device", "cpu", "--no-final-eval"]
    log = out / f"{name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode}; see {log}")
    return {"command": shlex.join(cmd), "train_seconds": wall, "log": str(log)}


@torch.no_grad()
def evaluate(run_dir: Path, n: int, k: int, elbo_k: int, seed: int, batch_size: int = 100) -> dict[str, Any]:
    """ELBO (and its RE, KL terms) and L_k per test image for the last checkpoint of ``run_dir``.

    Batch j is evaluated under ``torch.manual_seed(seed + j)`` (the scheme of
    ``vaekit.evaluation.estimators.run_estimators``), so every model sees the same images and seeds.
    """
    from vaekit.pipeline import eval_data
    from vaekit.evaluation import iwae_bound
    from vaekit.train import load_run

    run = load_run(run_dir, "last", fallback=False)
    x, _, _ = eval_data(run.config, "test", "cpu")
    x = x[:n]
    model = run.model.eval()
    res, kls, iw = [], [], []
    t0 = time.perf_counter()
    for j, i in enumerate(range(0, x.shape[0], batch_size)):
        xb = x[i:i + batch_size]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + j)
            out = model(xb, k=elbo_k)
            kl = out.kl.mean(0) if out.kl.dim() == out.log_likelihood.dim() else out.kl
            res.append(out.log_likelihood.mean(0).double())
            kls.append(kl.double())
    t_elbo = time.perf_counter() - t0
    t0 = time.perf_counter()
    for j, i in enumerate(range(0, x.shape[0], batch_size)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + j)
            iw.append(iwae_bound(model, x[i:i + batch_size], k).double())
    t_iwae = time.perf_counter() - t0
    re, kl, ll = torch.cat(res), torch.cat(kls), torch.cat(iw)
    elbo = re - kl
    return {"epoch": run.meta["epoch"], "n": int(x.shape[0]), "k": k, "elbo_k": elbo_k, "seed": seed,
            "elbo": _mean_se(elbo), "iwae": _mean_se(ll), "re": _mean_se(re), "kl": _mean_se(kl),
            "gap": _mean_se(ll - elbo), "elbo_seconds": t_elbo, "iwae_seconds": t_iwae,
            "per_image": {"elbo": elbo.tolist(), "iwae": ll.tolist()}}


def _seed(r: dict[str, Any]) -> int | None:
    """The training seed of a result (older result files only have it in the command)."""
    if r.get("seed_train") is not None:
        return int(r["seed_train"])
    tok = next((t for t in r.get("command", "").split() if t.startswith("seed=")), None)
    return None if tok is None else int(tok.split("=", 1)[1])


def _mean_se(v: torch.Tensor) -> dict[str, float]:
    return {"mean": float(v.mean()), "se": float(v.std(unbiased=True) / math.sqrt(v.numel()))}


def paired(a: dict[str, Any], b: dict[str, Any], key: str) -> dict[str, float]:
    """Mean of ``a - b`` per image and its standard error over images (same images, same eval seeds)."""
    va = torch.tensor(a["per_image"][key], dtype=torch.float64)
    vb = torch.tensor(b["per_image"][key], dtype=torch.float64)
    return _mean_se(va - vb)


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def _f(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _pm(m: dict[str, float], nd: int = 2) -> str:
    return f"{m['mean']:.{nd}f} ± {m['se']:.{nd}f}"


def _mmss(s: float) -> str:
    return f"{int(s // 60)}:{int(s % 60):02d}"


def claims(results: dict[str, Any], dims: list[int], pair_dim: int) -> dict[str, Any]:
    """The paper claims, decided from our numbers (difference and its paired s.e.)."""
    c: dict[str, Any] = {"svae_vs_nvae": {}}
    for d in sorted(dims):
        s, g = results.get(run_name("vmf", d)), results.get(run_name("gaussian", d))
        if s and g:
            dll, delbo = paired(s, g, "iwae"), paired(s, g, "elbo")
            c["svae_vs_nvae"][str(d)] = {"ll_svae_minus_nvae": dll, "elbo_svae_minus_nvae": delbo,
                                         "winner_ll": "S-VAE" if dll["mean"] > 0 else "N-VAE",
                                         "significant_2se": abs(dll["mean"]) > 2 * dll["se"]}
    g = results.get(run_name("gaussian", pair_dim))
    for fam in ("iaf", "mixture"):
        r = results.get(run_name(fam, pair_dim))
        if r and g:
            c[f"{fam}_vs_gaussian"] = {"elbo_diff": paired(r, g, "elbo"), "ll_diff": paired(r, g, "iwae"),
                                       "gap": r["gap"]["mean"], "gap_gaussian": g["gap"]["mean"],
                                       "gap_diff": _mean_se(
                                           (torch.tensor(r["per_image"]["iwae"]) - torch.tensor(r["per_image"]["elbo"]))
                                           - (torch.tensor(g["per_image"]["iwae"]) - torch.tensor(g["per_image"]["elbo"])))}
    return c


def write_report(results: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    """docs/results/latents.md: tables next to the paper's numbers, commands, epochs, wall times."""
    dims, pair_dim = meta["dims"], meta["pair_dim"]
    cl = claims(results, dims, pair_dim)
    ev = next(iter(results.values()))
    n, k, ek = ev["n"], ev["k"], ev["elbo_k"]
    L: list[str] = []
    L += ["# Latent families on dynamically binarised MNIST: S-VAE vs N-VAE, IAF, mixture", "",
          f"Generated by `scripts/reproduce_latents.py`"
          + (f" from runs trained between {meta['runs_started']} and {meta['runs_finished']}"
             if meta.get("runs_started") else "")
          + f" (this report written {meta['finished'] or '— set still running'}). "
          "Every number in the main tables is from one training run per model (seed "
          f"{meta['seed']}), trained for **{meta['epochs']} epoch{'s' if meta['epochs'] != 1 else ''}** and evaluated on the **first {n} test "
          f"images** (binarised once with a fixed seed, the same images and evaluation seeds for every model).", "",
          "Command:", "", "```", meta["command"], "```", "",
          "## Setup", "",
          "- Architecture: the S-VAE reference code (nicola-decao/s-vae-pytorch `examples/mnist.py`, h = 128): "
          "encoder 784-256-128 ReLU, latent head from the 128 features, decoder z-128-256-784 ReLU, Bernoulli "
          "logits. Configs: `configs/latents/{nvae,svae,iaf,mixture}_mnist.yaml`.",
          "- Data: MNIST, all 60,000 training images with fresh Bernoulli pixels every batch (dynamic "
          "binarisation), as the reference code; no validation split, each model is evaluated at its last epoch.",
          "- Training: batch 64, Adam lr 1e-3, single-sample ELBO (analytic KL for the Gaussian and the vMF, "
          f"Monte Carlo KL for IAF and the mixture), {meta['epochs']} epochs for every model, "
          f"`--threads {meta['threads']}`, runs one after another on a shared 2-core CPU.",
          "- Dimensions: an S-VAE of dimensionality d has codes on S^d, embedded in R^(d+1), so its vaekit "
          "`latent.dim` is d + 1 (the reference code's `z_dim=Z_DIM + 1`); the N-VAE of the same d is "
          "Gaussian in R^d. Both have d degrees of freedom, as in the paper's Table 1.",
          f"- Evaluation (`vaekit.evaluation`): ELBO = RE − KL with {ek} posterior samples per image "
          f"(RE = E_q log p(x|z)); LL = the IWAE bound L_{k} (Burda et al. 2015) with k = {k}, as the paper's "
          f"500-sample importance-sampling LL. Both on the first {n} of the 10,000 test images"
          + (" (the CPU recipe of docs PAPERS.md §8(c); all 10,000 did not fit the time budget). "
             if n < 10000 else ". ") +
          "± is the standard error over test images; for differences between two models it is the paired "
          "standard error on the same images. Neither includes the spread between training seeds "
          "(the paper's ± over runs is 0.1–0.8 nats); see the seed-spread section where a pair was retrained.", ""]

    L += ["## S-VAE vs N-VAE (Davidson et al. 2018, Table 1)", "",
          f"| d | model | latent.dim | ELBO | LL (L_{k}) | LL − ELBO | RE | KL | paper LL | paper ELBO | "
          "train (m:s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in sorted(dims):
        for fam in ("gaussian", "vmf"):
            r = results.get(run_name(fam, d))
            p = PAPER_SVAE.get((fam, d), {})
            if r is None:
                L.append(f"| {d} | {LABEL[fam]} | {latent_dim(fam, d)} | not run | | | | | {_f(p.get('ll'))} | "
                         f"{_f(p.get('elbo'))} | |")
                continue
            L.append(f"| {d} | {LABEL[fam]} | {latent_dim(fam, d)} | {_pm(r['elbo'])} | {_pm(r['iwae'])} | "
                     f"{r['gap']['mean']:.2f} | {r['re']['mean']:.2f} | {r['kl']['mean']:.2f} | "
                     f"{_f(p.get('ll'))}{'*' if p.get('note') == '*' else ''} | "
                     f"{_f(p.get('elbo'))}{'*' if p.get('note') else ''} | {_mmss(r['train_seconds'])} |")
    L += ["", "Paper cells marked * are FROM MEMORY in docs PAPERS.md §8 (the others are verified against a "
          "second-hand restatement of the table). The paper's models were trained to convergence "
          "(early stopping), ours for a fixed small number of epochs, so our absolute numbers are lower; "
          "the comparison is between models trained identically.", "",
          "S-VAE − N-VAE, paired over the same test images:", "",
          "| d | Δ LL (S − N) | Δ ELBO (S − N) | better LL here | paper Δ LL |", "|---|---|---|---|---|"]
    for d, v in cl["svae_vs_nvae"].items():
        ps, pn = PAPER_SVAE.get(("vmf", int(d))), PAPER_SVAE.get(("gaussian", int(d)))
        pd = _f(ps["ll"] - pn["ll"]) if ps and pn else "—"
        sig = "" if v["significant_2se"] else " (within 2 s.e.)"
        L.append(f"| {d} | {_pm(v['ll_svae_minus_nvae'])} | {_pm(v['elbo_svae_minus_nvae'])} | "
                 f"{v['winner_ll']}{sig} | {pd} |")

    g = results.get(run_name("gaussian", pair_dim))
    L += ["", f"## IAF and mixture posteriors vs the diagonal Gaussian (d = {pair_dim})", "",
          f"| posterior | ELBO | LL (L_{k}) | LL − ELBO | RE | KL | train (m:s) |", "|---|---|---|---|---|---|---|"]
    for fam in ("gaussian", "iaf", "mixture"):
        r = results.get(run_name(fam, pair_dim))
        if r is not None:
            L.append(f"| {LABEL[fam]} | {_pm(r['elbo'])} | {_pm(r['iwae'])} | {r['gap']['mean']:.2f} | "
                     f"{r['re']['mean']:.2f} | {r['kl']['mean']:.2f} | {_mmss(r['train_seconds'])} |")
        else:
            L.append(f"| {LABEL[fam]} | not run | | | | | |")
    L += ["", "Differences from the diagonal Gaussian, paired over the same test images:", "",
          "| posterior | Δ ELBO | Δ LL | Δ (LL − ELBO) gap |", "|---|---|---|---|"]
    for fam in ("iaf", "mixture"):
        v = cl.get(f"{fam}_vs_gaussian")
        if v:
            L.append(f"| {LABEL[fam]} | {_pm(v['elbo_diff'])} | {_pm(v['ll_diff'])} | {_pm(v['gap_diff'])} |")
    L += ["", "Paper (Kingma et al. 2016, Table 1; a convolutional ResNet VAE with a 32-d latent, 2-layer MADE "
          "IAF steps, log p from 128 importance samples, trained far longer than here): diagonal ELBO −84.08, "
          "log p −81.08 (gap 3.00); IAF depth 2, width 320: ELBO −82.02, log p −79.77 (gap 2.25). "
          "Those numbers are for a much bigger model and much longer training than this MLP with a fixed "
          "small epoch budget, so only the direction of the effect is comparable. Graves (2016) reports no "
          "benchmark numbers; docs PAPERS.md §10(c) sets only a sanity target: the mixture's ELBO is at least "
          "the diagonal Gaussian's − 0.5 nat.", ""]

    extra = sorted({(r["d"], r["seed_train"]) for r in results.values()
                    if r.get("seed_train") is not None and r["seed_train"] != meta["seed"] and r["family"] == "vmf"})
    if extra:
        L += ["## Seed spread (extra training seeds, same settings)", "",
              "Only the S-VAE vs N-VAE pairs listed were retrained with another seed (as time allowed); "
              "the spread of Δ LL between seeds is the uncertainty the single-seed tables above do not show.", "",
              "| d | training seed | N-VAE LL | S-VAE LL | Δ LL (S − N) | Δ ELBO (S − N) |", "|---|---|---|---|---|---|"]
        for d in sorted({d for d, _ in extra}):
            for sd in [meta["seed"]] + sorted(s_ for d_, s_ in extra if d_ == d):
                tag = None if sd == meta["seed"] else sd
                s_r, g_r = results.get(run_name("vmf", d, tag)), results.get(run_name("gaussian", d, tag))
                if s_r and g_r:
                    L.append(f"| {d} | {sd} | {g_r['iwae']['mean']:.2f} | {s_r['iwae']['mean']:.2f} | "
                             f"{_pm(paired(s_r, g_r, 'iwae'))} | {_pm(paired(s_r, g_r, 'elbo'))} |")
        L += [""]

    if meta.get("extra_results"):
        ex = meta["extra_results"]
        L += ["## Other runs (`--extra-results`)", "",
              "Runs made by other invocations of this script (e.g. longer training), evaluated the same way; "
              "the command of each is listed below.", "",
              "| run | epochs | seed | ELBO | LL | LL − ELBO | RE | KL | train (m:s) |",
              "|---|---|---|---|---|---|---|---|---|"]
        for name, r in ex.items():
            L.append(f"| {name} | {r['epoch']} | {_seed(r)} | {_pm(r['elbo'])} | {_pm(r['iwae'])} | "
                     f"{r['gap']['mean']:.2f} | {r['re']['mean']:.2f} | {r['kl']['mean']:.2f} | "
                     f"{_mmss(r['train_seconds'])} |")
        pairs = [(a, b) for a in ex.values() for b in ex.values() if a["family"] == "vmf" and b["family"] == "gaussian"
                 and (a["d"], a["epoch"], _seed(a)) == (b["d"], b["epoch"], _seed(b))]
        if pairs:
            L += ["", "| d | epochs | Δ LL (S − N) | Δ ELBO (S − N) |", "|---|---|---|---|"]
            for a, b in pairs:
                L.append(f"| {a['d']} | {a['epoch']} | {_pm(paired(a, b, 'iwae'))} | {_pm(paired(a, b, 'elbo'))} |")
        L += ["", "Produced by:", "", "```"] + meta.get("extra_commands", []) + [r["command"] for r in ex.values()]
        L += ["```", ""]

    L += ["## Wall times", "",
          f"| run | epochs | train (m:s) | s/epoch | ELBO eval (s) | L_{k} eval (s) |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        L.append(f"| {name} | {r['epoch']} | {_mmss(r['train_seconds'])} | {r['train_seconds'] / max(1, r['epoch']):.1f} | "
                 f"{r['elbo_seconds']:.1f} | {r['iwae_seconds']:.1f} |")
    L += ["", f"Machine: {meta['machine']}; torch {torch.__version__}; `--threads {meta['threads']}`; the 2 cores "
          "were shared with other jobs during the runs ("
          + (f"load average {meta['load_start']} at the start, {meta['load_end'] or '—'} at the end"
             if meta.get("trained_now", True) else "the load average at training time is not known to this "
             "report-only rebuild") + "), so the wall times are "
          "only indicative; a run's training time includes starting `vaekit` and loading MNIST (about 8 s). "
          "Total of the runs' training and evaluation times: "
          f"{_mmss(sum(r['train_seconds'] + r['elbo_seconds'] + r['iwae_seconds'] for r in results.values()))}.",
          "",
          "Per-model training commands (each run's resolved config is in its run directory as config.json):", "",
          "```"]
    L += [r["command"] for r in results.values()]
    L += ["```", ""]
    if meta.get("verdict"):
        L += ["## What the runs show", ""] + meta["verdict"] + [""]
    L += [f"Machine-readable results: `{meta['json_doc']}`.", ""]
    path.write_text("\n".join(L))


def summary(results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Everything but the per-image values (the JSON kept next to the markdown)."""
    runs = {n: {k: v for k, v in r.items() if k != "per_image"} for n, r in results.items()}
    extra = {n: {k: v for k, v in r.items() if k != "per_image"} for n, r in meta.get("extra_results", {}).items()}
    return {"meta": {k: v for k, v in meta.items() if k not in ("verdict", "extra_results")}, "runs": runs,
            "extra_runs": extra,
            "claims": claims(results, meta["dims"], meta["pair_dim"]),
            "paper": {"svae_table1": {f"{f}_d{d}": v for (f, d), v in PAPER_SVAE.items()}, "iaf_table1": PAPER_IAF}}


def verdict(results: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """Plain statements of what our numbers say about each paper claim (no judgement beyond the numbers)."""
    cl = claims(results, meta["dims"], meta["pair_dim"])
    out = []
    sv = cl["svae_vs_nvae"]
    for d, v in sv.items():
        m = v["ll_svae_minus_nvae"]
        sig = "a difference larger than 2 paired s.e." if v["significant_2se"] else "within 2 paired s.e. (not resolved)"
        out.append(f"- d = {d}: S-VAE − N-VAE LL = {m['mean']:+.2f} ± {m['se']:.2f} nats, {sig}; "
                   f"{v['winner_ll']} has the better LL in this run.")
    low = [d for d in sv if int(d) <= 10]
    if low:
        wins = [d for d in low if sv[d]["winner_ll"] == "S-VAE" and sv[d]["significant_2se"]]
        out.append(f"- Paper claim 'S-VAE wins at low d' (d ≤ 10 here: {', '.join(low)}): S-VAE is significantly "
                   "better " + (f"at d ∈ {{{', '.join(wins)}}} only." if wins else "at none of them in this run."))
    if "40" in sv:
        v = sv["40"]
        ok = v["winner_ll"] == "N-VAE" and v["significant_2se"]
        out.append("- Paper claim 'N-VAE wins at d = 40': " + ("reproduced." if ok else "not reproduced in this run."))
    for fam, name in (("iaf", "IAF"), ("mixture", "mixture")):
        v = cl.get(f"{fam}_vs_gaussian")
        if v:
            e, l, gd = v["elbo_diff"], v["ll_diff"], v["gap_diff"]
            out.append(f"- {name} vs diagonal Gaussian (d = {meta['pair_dim']}): ELBO {e['mean']:+.2f} ± {e['se']:.2f}, "
                       f"LL {l['mean']:+.2f} ± {l['se']:.2f}, LL − ELBO gap {v['gap_gaussian']:.2f} → {v['gap']:.2f} "
                       f"({gd['mean']:+.2f} ± {gd['se']:.2f}).")
    # the same S - N difference for every extra training seed and every --extra-results pair
    others = [r for r in results.values() if r["family"] == "vmf" and _seed(r) not in (None, meta["seed"])]
    others += [r for r in meta.get("extra_results", {}).values() if r["family"] == "vmf"]
    pool = list(results.values()) + list(meta.get("extra_results", {}).values())
    for s_r in others:
        g_r = next((g for g in pool if g["family"] == "gaussian"
                    and (g["d"], g["epoch"], _seed(g)) == (s_r["d"], s_r["epoch"], _seed(s_r))), None)
        if g_r is not None:
            m = paired(s_r, g_r, "iwae")
            out.append(f"- Also d = {s_r['d']}, {s_r['epoch']} epochs, training seed {_seed(s_r)}: S-VAE − N-VAE LL = "
                       f"{m['mean']:+.2f} ± {m['se']:.2f} (N-VAE {g_r['iwae']['mean']:.2f}, "
                       f"S-VAE {s_r['iwae']['mean']:.2f}).")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10, help="training epochs for every model (equal epochs)")
    p.add_argument("--dims", default="2,5,10,20,40",
                   help="d for S-VAE vs N-VAE, comma-separated, trained in this order (put the important ones first)")
    p.add_argument("--families", default="gaussian,vmf,iaf,mixture", help=f"subset of {','.join(FAMILIES)}")
    p.add_argument("--pair-dim", type=int, default=20, help="latent d of the IAF/mixture vs Gaussian comparison")
    p.add_argument("--eval-n", type=int, default=2000, help="evaluate on the first N test images")
    p.add_argument("--eval-k", type=int, default=500, help="importance samples of the IWAE bound (the paper: 500)")
    p.add_argument("--elbo-k", type=int, default=10, help="posterior samples per image for the ELBO estimate")
    p.add_argument("--eval-seed", type=int, default=1234)
    p.add_argument("--seed", type=int, default=0, help="training seed of every model")
    p.add_argument("--repeat-seeds", default="", help="extra training seeds (comma-separated) for the S-VAE/N-VAE "
                   "pairs at --repeat-dims, trained after the main set, to show the spread between seeds")
    p.add_argument("--repeat-dims", default="5", help="the d of the pairs retrained with --repeat-seeds")
    p.add_argument("--extra-results", action="append", default=[], metavar="DIR",
                   help="also report the finished runs (*/result.json) of another --out directory, e.g. a "
                        "longer-training invocation of this script (repeatable)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training and evaluation")
    p.add_argument("--out", default="runs/latents", help="parent directory of the run directories")
    p.add_argument("--doc", default="docs/results/latents.md")
    p.add_argument("--json", default="docs/results/latents.json")
    args = p.parse_args(argv)

    dims = [int(s) for s in args.dims.split(",") if s.strip()]
    rseeds = [int(s) for s in args.repeat_seeds.split(",") if s.strip()]
    rdims = [int(s) for s in args.repeat_dims.split(",") if s.strip()]
    families = [s.strip() for s in args.families.split(",") if s.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        p.error(f"unknown families {bad}; choose from {list(FAMILIES)}")
    if any(d < 1 for d in dims) or args.epochs < 1 or args.eval_n < 1 or args.eval_k < 1:
        p.error("--dims, --epochs, --eval-n and --eval-k must be positive")
    torch.set_num_threads(args.threads)
    out = (ROOT / args.out).resolve() if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc, js = ROOT / args.doc, ROOT / args.json
    doc.parent.mkdir(parents=True, exist_ok=True)

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    meta: dict[str, Any] = {
        "command": "python scripts/reproduce_latents.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "epochs": args.epochs, "dims": dims, "families": families, "pair_dim": args.pair_dim,
        "eval_n": args.eval_n, "eval_k": args.eval_k, "elbo_k": args.elbo_k, "seed": args.seed,
        "threads": args.threads, "machine": f"{cpu}, {os.cpu_count()} cores",
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "finished": None,
        "load_start": f"{os.getloadavg()[0]:.1f}", "load_end": None, "json_doc": args.json,
    }
    t_all = time.perf_counter()
    trained_now = False
    results: dict[str, Any] = {}
    todo = [(fam, d, args.seed, run_name(fam, d)) for fam, d in plan(dims, families, args.pair_dim)]
    todo += [(fam, d, sd, run_name(fam, d, sd)) for sd in rseeds if sd != args.seed for d in rdims
             for fam in ("gaussian", "vmf") if fam in families]
    for fam, d, seed, name in todo:
        rdir = out / name
        cached = rdir / "result.json"
        if cached.exists():
            r = json.loads(cached.read_text())
            if r["epoch"] != args.epochs or r["n"] != args.eval_n or r["k"] != args.eval_k:
                raise SystemExit(f"{cached} is for epochs={r['epoch']}, n={r['n']}, k={r['k']}; remove {rdir} "
                                 "or use another --out")
            results[name] = r
            print(f"[{name}] cached", flush=True)
            continue
        if rdir.exists():
            raise SystemExit(f"{rdir} exists without result.json (an interrupted run?); remove it or use another --out")
        trained_now = True
        print(f"[{name}] training {args.epochs} epochs ({datetime.now(timezone.utc):%H:%M:%S} UTC)", flush=True)
        tr = train(fam, d, args, out, seed, name)
        print(f"[{name}] trained in {tr['train_seconds']:.0f} s; evaluating", flush=True)
        ev = evaluate(rdir, args.eval_n, args.eval_k, args.elbo_k, args.eval_seed)
        r = {"family": fam, "d": d, "latent_dim": latent_dim(fam, d), "seed_train": seed, **tr, **ev}
        cached.write_text(json.dumps(r) + "\n")
        results[name] = r
        print(f"[{name}] ELBO {r['elbo']['mean']:.2f}  L_{args.eval_k} {r['iwae']['mean']:.2f}  "
              f"KL {r['kl']['mean']:.2f}  (eval {r['elbo_seconds'] + r['iwae_seconds']:.0f} s)", flush=True)
        meta["total_seconds"] = time.perf_counter() - t_all
        write_report(results, meta, doc)
        js.write_text(json.dumps(summary(results, meta), indent=1) + "\n")

    meta["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # When the runs were trained, from their files (also right when this call only re-reads cached results).
    stamps = [(out / n / "config.json").stat().st_mtime for n in results if (out / n / "config.json").exists()]
    ends = [(out / n / "result.json").stat().st_mtime for n in results if (out / n / "result.json").exists()]
    if stamps and ends:
        fmt = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: E731
        meta["runs_started"], meta["runs_finished"] = fmt(min(stamps)), fmt(max(ends))
    meta["load_end"] = f"{os.getloadavg()[0]:.1f}"
    meta["total_seconds"] = time.perf_counter() - t_all
    if not trained_now and js.exists():
        # Everything came from result.json files (a re-run to rebuild the report): keep the timing and
        # load of the run that trained them rather than this near-instant one.
        old = json.loads(js.read_text()).get("meta", {})
        if old.get("command") == meta["command"]:
            meta.update({k: old[k] for k in ("started", "finished", "load_start", "load_end", "total_seconds")
                         if old.get(k) is not None})
    extra: dict[str, Any] = {}
    for d_ in args.extra_results:
        base = (ROOT / d_) if not Path(d_).is_absolute() else Path(d_)
        for f in sorted(base.glob("*/result.json")):
            extra[f"{Path(d_).name}/{f.parent.name}"] = json.loads(f.read_text())
    if extra:
        meta["extra_results"] = extra
        cmds = []
        for d_ in args.extra_results:
            base = (ROOT / d_) if not Path(d_).is_absolute() else Path(d_)
            for f in sorted(base.glob("*.json")):
                try:
                    c = json.loads(f.read_text()).get("meta", {}).get("command")
                except (json.JSONDecodeError, AttributeError):
                    c = None
                if c and c not in cmds:
                    cmds.append(c)
        meta["extra_commands"] = cmds
    meta["trained_now"] = trained_now
    if results:
        meta["verdict"] = verdict(results, meta)
        write_report(results, meta, doc)
    final = summary(results, meta)
    js.write_text(json.dumps(final, indent=1) + "\n")
    print(json.dumps({"doc": str(doc), "json": str(js), "claims": final["claims"],
                      "runs": {n: {"elbo": r["elbo"]["mean"], "iwae": r["iwae"]["mean"], "kl": r["kl"]["mean"],
                                   "train_seconds": round(r["train_seconds"], 1)} for n, r in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
