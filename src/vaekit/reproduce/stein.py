r"""The Stein VAE against a same-size Gaussian VAE on MNIST by AIS (issue 16; PAPERS.md §14 (c) 2).

The runs are trained with ``vaekit train`` (commands in docs/results/stein_acn.md): ``configs/stein_mnist.yaml``
(objective ``stein`` or ``stein_viwae``) and ``configs/aevb_mnist.yaml`` (the same 784-500-20 tanh MLPs with a
Gaussian posterior). This module evaluates them on the same test images, binarised as ``vaekit eval`` does
(:func:`vaekit.pipeline.eval_data`), and keeps the per-image numbers so that differences between models are
paired:

* AIS (:func:`vaekit.evaluation.ais`, forward, a stochastic lower bound on ``log p(x)``) for every run: it needs
  only the prior and the likelihood, so it scores the Stein VAE, whose posterior has no density, and the VAE alike.
* For a Gaussian VAE, the IWAE-k bound (:func:`vaekit.evaluation.iwae_estimate`) on the same images, to show how
  far below it AIS at this ``T`` sits.
* For a Stein VAE, the IWAE-k bound with the diagonal Gaussian fitted to ``M`` of its particles as the proposal
  (:func:`vaekit.objectives.stein.fitted_gaussian_log_weights`; a valid lower bound for any proposal).

``python -m vaekit.reproduce.stein RUN_DIR [RUN_DIR ...] --n 100 --T 1000 --chains 4 --out stein_eval.json``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..evaluation import ais, iwae_estimate
from ..objectives.stein import fitted_gaussian_log_weights
from ..pipeline import eval_data
from ..train import load_run
from ..train.outputs import OutputError, refuse_other_settings, write_output


@torch.no_grad()
def fitted_gaussian_bound(model: nn.Module, x: Tensor, k: int, particles: int = 64, chunk: int = 500) -> Tensor:
    """Per-image ``log (1/k) Σ_i p(x, z_i)/q̂(z_i|x)``, ``z_i ~ q̂`` the Gaussian fitted to ``particles`` encoder
    samples, ``(B,)`` float64 nats; the ``k`` samples are drawn ``chunk`` at a time (running log-sum-exp)."""
    z = model.particles(x, particles)
    total = None
    for i in range(0, k, chunk):
        lw = fitted_gaussian_log_weights(model, x, z, min(chunk, k - i)).double()
        lse = torch.logsumexp(lw, 0)
        total = lse if total is None else torch.logaddexp(total, lse)
    return total - math.log(k)


def evaluate_run(run_dir: str | Path, n: int, T: int, chains: int, leapfrog: int = 10, k: int = 5000,
                 seed: int = 0, batch_size: int = 50) -> dict[str, Any]:
    """AIS (and the IWAE bound that fits the model) on the first ``n`` test images of a run's last checkpoint."""
    run = load_run(run_dir, "last")
    model = run.model.eval()
    x, _, _ = eval_data(run.config, "test")
    x = x[:n]
    out: dict[str, Any] = {"run_dir": str(run_dir), "epoch": run.meta["epoch"],
                           "train_seconds": run.meta.get("extra", {}).get("elapsed"),
                           "model": run.config.model.get("type") if isinstance(run.config.model, dict) else None,
                           "objective": run.config.train.objective, "n": int(x.shape[0]),
                           "ais_settings": {"T": T, "chains": chains, "leapfrog": leapfrog, "seed": seed}}
    t0 = time.perf_counter()
    vals, ses, acc = [], [], []
    for j, i in enumerate(range(0, x.shape[0], batch_size)):
        r = ais(model, x[i:i + batch_size], n_chains=chains, T=T, leapfrog_steps=leapfrog, seed=seed + j)
        vals.append(r.log_px)
        ses.append(r.stderr)
        acc.append(r.acceptance)
    out["ais"] = torch.cat(vals).tolist()
    # one chain has no Monte Carlo s.e. (NaN), which strict JSON cannot hold
    out["ais_mc_se"] = [v if math.isfinite(v) else None for v in torch.cat(ses).tolist()]
    out["ais_acceptance"] = sum(acc) / len(acc)
    out["ais_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if getattr(model, "posterior_density", True):
            out["iwae_k"] = k
            out["iwae"] = torch.cat([iwae_estimate(model, x[i:i + batch_size], k)
                                     for i in range(0, x.shape[0], batch_size)]).tolist()
        else:
            out["fitted_gaussian_k"] = k
            out["fitted_gaussian"] = torch.cat([fitted_gaussian_bound(model, x[i:i + batch_size], k)
                                                for i in range(0, x.shape[0], batch_size)]).tolist()
    out["bound_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """Means and standard errors over images of every per-image list in ``res``."""
    s = {}
    for key in ("ais", "iwae", "fitted_gaussian"):
        if key in res:
            v = torch.tensor(res[key], dtype=torch.float64)
            s[key] = {"mean": float(v.mean()), "se": float(v.std() / math.sqrt(v.numel()))}
    return s


def paired(a: dict[str, Any], b: dict[str, Any], key: str = "ais") -> dict[str, float]:
    """Mean and s.e. of ``a[key] - b[key]`` over the images both evaluated (the same first ``n`` test images)."""
    n = min(len(a[key]), len(b[key]))
    d = torch.tensor(a[key][:n], dtype=torch.float64) - torch.tensor(b[key][:n], dtype=torch.float64)
    return {"mean": float(d.mean()), "se": float(d.std() / math.sqrt(n)), "n": n}


def _verdict_within(d: dict[str, float], band: float) -> bool | None:
    """True if ``mean ± 2 s.e.`` lies inside ``±band``, False if entirely outside it, else None (unresolved)."""
    lo, hi = d["mean"] - 2 * d["se"], d["mean"] + 2 * d["se"]
    if -band < lo and hi < band:
        return True
    if hi < -band or lo > band:
        return False
    return None


def _verdict_positive(d: dict[str, float]) -> bool | None:
    """True if ``mean > 2 s.e.``, False if ``mean < -2 s.e.``, else None."""
    return True if d["mean"] > 2 * d["se"] else False if d["mean"] < -2 * d["se"] else None


def report(evals: dict[str, Any], stein: str, gauss_time: str, gauss_epochs: str | None = None,
           viwae: str | None = None, budget: str = "") -> dict[str, Any]:
    """``docs/results/stein.json``: per-run summaries, paired AIS differences and the dashboard's claims.

    ``evals`` maps run names to :func:`evaluate_run` results; the other arguments name the runs.
    """
    runs = {name: {k: v for k, v in r.items() if not isinstance(v, list)} | summary(r) for name, r in evals.items()}
    d_time = paired(evals[stein], evals[gauss_time])
    out: dict[str, Any] = {"runs": runs, "stein_minus_gauss_equal_time": d_time}
    claims = [
        {"claim": "Stein VAE (M = 8, z = 20) test NLL by AIS within 2 nats of a same-size Gaussian VAE trained for the "
                  "same time", "ours": f"AIS log p(x), Stein - Gaussian: {d_time['mean']:+.2f} ± {d_time['se']:.2f} "
                                      f"nats (paired, {d_time['n']} images)",
         "paper": "sanity band of PAPERS.md §14 (not a paper number)", "holds": _verdict_within(d_time, 2.0)},
        {"claim": "the Stein VAE beats the Gaussian VAE (equal training time)",
         "ours": f"{d_time['mean']:+.2f} ± {d_time['se']:.2f} nats", "paper": "Stein VAE ≥ VAE on MNIST (from memory)",
         "holds": _verdict_positive(d_time)},
    ]
    if gauss_epochs is not None:
        d_ep = paired(evals[stein], evals[gauss_epochs])
        out["stein_minus_gauss_equal_epochs"] = d_ep
        claims.append({"claim": "the Stein VAE beats the Gaussian VAE (equal epochs)",
                       "ours": f"{d_ep['mean']:+.2f} ± {d_ep['se']:.2f} nats", "paper": "Stein VAE ≥ VAE (from memory)",
                       "holds": _verdict_positive(d_ep)})
    if viwae is not None:
        d_v = paired(evals[viwae], evals[stein])
        out["viwae_minus_stein"] = d_v
        claims.append({"claim": "Stein VIWAE beats the Stein VAE", "ours": f"{d_v['mean']:+.2f} ± {d_v['se']:.2f} nats",
                       "paper": "Stein VIWAE best (from memory)", "holds": _verdict_positive(d_v)})
    out["dashboard"] = {"budget": budget, "claims": claims}
    return out


def eval_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """What makes two evaluations of one run the same measurement: the run folder, images, AIS settings,
    importance samples."""
    return {"run_dir": os.path.normpath(entry["run_dir"]), "n": entry["n"], **entry["ais_settings"],
            "k": entry.get("iwae_k", entry.get("fitted_gaussian_k"))}


def read_evaluations(path: Path) -> dict[str, Any]:
    """The run-name -> evaluation entries of an ``--out`` file (``{}`` when absent).

    Raises:
        OutputError: the file is not such a file (not JSON, or a report such as ``docs/results/stein.json``, whose
            summary adding run entries would corrupt).
    """
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise OutputError(f"{path}: not JSON ({e}); --out takes a file of run evaluations", path) from e
    if not isinstance(data, dict) or any(not isinstance(v, dict) or "ais_settings" not in v for v in data.values()):
        raise OutputError(f"{path} is not a file of run evaluations (one entry per run with its 'ais_settings'); "
                          "write them elsewhere", path)
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.stein", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--n", type=int, default=100, help="test images (default: 100)")
    p.add_argument("--T", type=int, default=1000, help="AIS intermediate distributions (default: 1000)")
    p.add_argument("--chains", type=int, default=4, help="AIS chains per image (default: 4)")
    p.add_argument("--leapfrog", type=int, default=10, help="HMC leapfrog steps (default: 10)")
    p.add_argument("--k", type=int, default=5000, help="importance samples of the IWAE bounds (default: 5000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--out", required=True, help="JSON file: one entry per run, per-image values included; a run "
                   "already in it at other settings is refused (another result), unless --force")
    p.add_argument("--force", action="store_true", help="replace entries evaluated at other settings")
    a = p.parse_args(argv)
    for key in ("n", "T", "chains", "leapfrog", "k", "threads"):
        if getattr(a, key) < 1:
            p.error(f"--{key} must be >= 1, got {getattr(a, key)}")
    path = Path(a.out)
    # everything is checked before any AIS runs: an hour of evaluation is not spent to be refused at the end
    if path.is_dir():
        p.error(f"--out {path} is a folder; give the JSON file to write")
    names = [Path(r).name for r in a.runs]
    if len(set(names)) < len(names):
        p.error(f"run folders of the same name {sorted(n for n in set(names) if names.count(n) > 1)}: --out keys "
                "its entries by folder name")
    for r in a.runs:
        if not (Path(r) / "checkpoints" / "last.json").is_file():
            p.error(f"{r}: not a trained run folder (no checkpoints/last.json)")
    try:
        results = read_evaluations(path)
        for r in a.runs:
            name = Path(r).name
            if name in results:
                wanted = {"run_dir": os.path.normpath(r), "n": a.n, "T": a.T, "chains": a.chains,
                          "leapfrog": a.leapfrog, "seed": 0, "k": a.k}
                refuse_other_settings(path, wanted, lambda data, name=name: eval_settings(data[name]), a.force,
                                      f"pass --force to replace run {name!r}")
    except OutputError as e:
        p.error(str(e))
    torch.set_num_threads(a.threads)
    for r in a.runs:
        res = evaluate_run(r, a.n, a.T, a.chains, a.leapfrog, a.k)
        results[Path(r).name] = res
        try:
            write_output(path, json.dumps(results), payload=results)
        except OutputError as e:  # computed but not written: the results go to stdout rather than nowhere
            print(json.dumps(e.payload))
            print(f"error: {e}; the results are printed above", file=sys.stderr)
            return 1
        # one JSON object per run: its summary, named
        print(json.dumps({"run": Path(r).name, "epoch": res["epoch"], "train_seconds": res["train_seconds"],
                          **summary(res), "ais_seconds": res["ais_seconds"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
