"""Reproduce Burda, Grosse & Salakhutdinov (2015), *Importance Weighted Autoencoders*, arXiv:1509.00519, Table 1.

Each run of the set is the config file ``configs/iwae/l{L}_{method}_k{k}.yaml`` (PAPERS.md section 2:
MNIST with the last 400 training images held out and dynamically binarised, batch 20, Adam with
eps 1e-4, the ``{type: iwae}`` schedule "3^i passes at lr 1e-3 * 10^(-i/7)" truncated to the first
``epochs`` passes, decoder output bias = logit of the mean training pixel; 1 stochastic layer
784-200-200-50 or 2, x-200-200-z1(100)-100-100-z2(50), tanh, ``sigma = exp(a/2)``). "VAE" is the
``elbo`` objective with k samples averaged, "IWAE" the ``iwae`` objective. Training is
:func:`vaekit.train.fit` into ``OUT/l{L}_{method}_k{k}/`` (the trainer's run directory, checkpoints
and resume).

Evaluation: test NLL = ``-L_{eval_k}`` (IWAE bound, Burda et al. use k = 5000) on the first ``eval_n``
test images (all 10,000 by default), binarised exactly as the trainer binarises its test split, with
its standard error over images; active units = latent units whose posterior-mean variance over 500
(fixed-binarised) training images exceeds 0.01, per layer for stacked models.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config import RunConfig, load_config
from ..evaluation import elbo_estimate, evaluate_bound, iwae_bound, posterior_mean_variance
from ..train import fit, load_run
from ..train.checkpoint import checkpoint_path

#: Table 1 of Burda et al. (2015): test NLL (L_5000, nats) on dynamically binarised MNIST, and active units.
PAPER_NLL: dict[tuple[int, str, int], float] = {
    (1, "vae", 1): 86.76, (1, "vae", 5): 86.47, (1, "vae", 50): 86.35,
    (1, "iwae", 1): 86.76, (1, "iwae", 5): 85.54, (1, "iwae", 50): 84.78,
    (2, "vae", 1): 85.33, (2, "vae", 5): 85.01, (2, "vae", 50): 84.78,
    (2, "iwae", 1): 85.33, (2, "iwae", 5): 83.89, (2, "iwae", 50): 82.90,
}
#: Active units in Table 1 (PAPERS.md marks these "from memory, medium"; the NLLs above are verified).
PAPER_ACTIVE_UNITS: dict[tuple[int, str, int], tuple[int, ...]] = {
    (1, "vae", 1): (19,), (1, "vae", 5): (20,), (1, "vae", 50): (20,),
    (1, "iwae", 1): (19,), (1, "iwae", 5): (22,), (1, "iwae", 50): (25,),
    (2, "vae", 1): (16, 5), (2, "vae", 5): (17, 5), (2, "vae", 50): (17, 5),
    (2, "iwae", 1): (16, 5), (2, "iwae", 5): (21, 5), (2, "iwae", 50): (26, 7),
}

#: Where the run configs live (the repository's ``configs/iwae``).
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "iwae"

#: Active-unit threshold and number of training images (Burda et al. 2015, Sec. 5.2).
AU_THRESHOLD = 1e-2
AU_IMAGES = 500


@dataclass
class RunSpec:
    """One training run of the reproduction set."""

    layers: int
    method: str  # "vae" or "iwae"
    k: int

    @property
    def name(self) -> str:
        return f"l{self.layers}_{self.method}_k{self.k}"

    def config_path(self, config_dir: str | Path = CONFIG_DIR) -> Path:
        """``config_dir/l{L}_{method}_k{k}.yaml``; raises FileNotFoundError naming the run if absent."""
        p = Path(config_dir) / f"{self.name}.yaml"
        if not p.is_file():
            raise FileNotFoundError(f"no config for run {self.name}: {p} (available: layers 1,2; k 1,5,50)")
        return p


_RUN_NAME = re.compile(r"l(\d+)_(vae|iwae)_k(\d+)")


def parse_runs(names: str | Sequence[str]) -> list[RunSpec]:
    """``"l1_vae_k1,l2_iwae_k50"`` (or a list of such names) -> run specs; a ``ValueError`` names a bad one."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    runs = []
    for n in items:
        m = _RUN_NAME.fullmatch(n)
        if m is None:
            raise ValueError(f"bad run name {n!r}: expected l{{layers}}_{{vae|iwae}}_k{{k}}, e.g. l1_iwae_k50")
        runs.append(RunSpec(int(m.group(1)), m.group(2), int(m.group(3))))
    return runs


def run_config(run: RunSpec, epochs: int, out: str | Path, seed: int = 0, overrides: Sequence[str] = (),
               config_dir: str | Path = CONFIG_DIR) -> RunConfig:
    """The run's YAML config with ``train.epochs``, ``out_dir``, ``run_name``, ``seed`` and ``overrides`` applied."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    base = [f"train.epochs={epochs}", f"out_dir={out}", f"run_name={run.name}", f"seed={seed}"]
    return load_config(run.config_path(config_dir), [*base, *overrides])


def train_run(cfg: RunConfig, budget_s: float | None = None, tensorboard: bool = True,
              log: Any = print) -> Path:
    """Train ``cfg`` with :func:`vaekit.train.fit` into ``cfg.out_dir/cfg.run_name``; returns the run directory.

    Resumes from the run directory's ``last`` checkpoint when there is one. Without ``budget_s`` one
    ``fit`` call trains to ``cfg.train.epochs``. With it, training goes one epoch per call
    (``stop_after_epoch``, then ``resume``) and stops before an epoch once ``budget_s`` seconds of this
    call have passed (so it may overrun by at most one epoch; fit's resume is exact, so the result equals
    an uninterrupted run of the same length).
    """
    run_dir = Path(cfg.out_dir) / str(cfg.run_name)
    resume = checkpoint_path(run_dir / "checkpoints", "last").is_file()
    if resume:
        done = json.loads(checkpoint_path(run_dir / "checkpoints", "last").read_text())["epoch"]
        log(f"[{cfg.run_name}] resuming at epoch {done}")
    if budget_s is None:
        fit(cfg, run_dir=run_dir, resume=resume, tensorboard=tensorboard)
        return run_dir
    t0 = time.perf_counter()
    done = json.loads(checkpoint_path(run_dir / "checkpoints", "last").read_text())["epoch"] if resume else 0
    while done < cfg.train.epochs:
        if time.perf_counter() - t0 >= budget_s:
            log(f"[{cfg.run_name}] budget of {budget_s:.0f} s spent after {done} epochs")
            break
        res = fit(cfg, run_dir=run_dir, resume=resume, stop_after_epoch=done + 1, tensorboard=tensorboard)
        done, resume = res.state.epoch, True
        log(f"[{cfg.run_name}] epoch {done} done, {time.perf_counter() - t0:.0f} s")
    return run_dir


def run_identity(cfg: RunConfig) -> dict[str, Any]:
    """``layers``, ``method`` and ``k`` of a run, read from its config (model type and objective)."""
    model, obj = cfg.model, cfg.train.objective
    layers = len(model["layers"]) if model.get("type") == "hvae" else 1
    method = {"elbo": "vae", "iwae": "iwae"}.get(obj.get("type"), obj.get("type"))
    return {"layers": layers, "method": method, "k": int(obj.get("k", 1))}


@torch.no_grad()
def active_units_per_layer(model: nn.Module, x: torch.Tensor, threshold: float = AU_THRESHOLD) -> list[int]:
    r"""Active units ``#{u : Var_x(E_q[u|x]) > threshold}`` (Burda et al. 2015, Sec. 5.2), one count per
    stochastic layer (:func:`vaekit.evaluation.posterior_mean_variance` split by ``encode_layers`` sizes)."""
    var = posterior_mean_variance(model, x)
    if hasattr(model, "encode_layers"):
        sizes = [m.shape[-1] for m in model.encode_layers(x[:1])]
    else:
        sizes = [var.numel()]
    return [int((v > threshold).sum()) for v in var.split(sizes)]


#: the fields of a row that come from the (saved) IWAE-k evaluation
_IWAE_FIELDS = ("test_nll", "test_nll_se", "eval_k", "eval_n", "eval_seconds")


def _eval_cache_path(run_dir: Path, eval_k: int, eval_n: int | None, seed: int) -> Path:
    return run_dir / "eval" / f"iwae_k{eval_k}_n{'all' if eval_n is None else eval_n}_seed{seed}.json"


def evaluate_run(run_dir: str | Path, eval_k: int = 5000, eval_n: int | None = None, seed: int = 0,
                 threads: int | None = None, batch_size: int = 100, reuse: bool = True,
                 elbo_k: int = 10) -> dict[str, Any]:
    r"""Evaluate a run directory's ``last`` checkpoint on the first ``eval_n`` test images as the trainer
    binarised them (:func:`vaekit.pipeline.eval_data`):

    * test NLL ``-L_{eval_k}`` with :math:`\mathcal L_k(x) = \mathbb E[\log \frac1k \sum_i p(x,z_i)/q(z_i|x)]`
      (Burda et al. 2015, Eq. 6), and its standard error over images;
    * the test ELBO (``elbo_k`` samples per image, analytic KL) and the gap ``L_{eval_k} - ELBO``
      (PAPERS.md's check 4 compares it between VAE- and IWAE-trained models);
    * active units over the first 500 training images.

    The IWAE-k result is saved as ``run_dir/eval/iwae_k{eval_k}_n{eval_n}_seed{seed}.json``; with ``reuse``
    a saved result is used instead of re-evaluating when it belongs to the same checkpoint (epoch and
    step), so re-running a finished set (an IWAE-5000 evaluation of 10,000 images is minutes) costs only
    the cheap parts (ELBO, active units), which are always recomputed.
    """
    from ..pipeline import eval_data

    if threads is not None:
        torch.set_num_threads(threads)
    if eval_k < 1:
        raise ValueError(f"eval_k must be >= 1, got {eval_k}")
    if eval_n is not None and eval_n < 1:
        raise ValueError(f"eval_n must be >= 1 or None, got {eval_n}")
    run_dir = Path(run_dir)
    cache = _eval_cache_path(run_dir, eval_k, eval_n, seed)
    run = load_run(run_dir, "last")
    ckpt = {"epoch": run.meta["epoch"], "step": run.meta["step"]}
    cfg, model = run.config, run.model
    ex = run.meta.get("extra", {})
    row: dict[str, Any] = {"run": run_dir.name, **run_identity(cfg), "epochs_done": int(run.meta["epoch"]),
                           "train_seconds": float(ex.get("elapsed", 0.0)), "run_dir": str(run_dir)}
    test, _, _ = eval_data(cfg, "test")
    test = test if eval_n is None else test[:eval_n]
    saved = json.loads(cache.read_text()) if reuse and cache.is_file() else None
    if saved is not None and saved.get("checkpoint") == ckpt:
        iw = {k: saved["row"][k] for k in _IWAE_FIELDS}
    else:
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            res = evaluate_bound(iwae_bound, model, test, batch_size=batch_size, k=eval_k)
        iw = {"test_nll": -res.mean, "test_nll_se": res.stderr, "eval_k": eval_k, "eval_n": res.n,
              "eval_seconds": round(time.perf_counter() - t0, 1)}
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"checkpoint": ckpt, "row": {**row, **iw}}, indent=1))
        os.replace(tmp, cache)  # atomic: an interrupted evaluation never leaves a half-written file
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        elbo = evaluate_bound(elbo_estimate, model, test, batch_size=batch_size, k=elbo_k)
    train, _, _ = eval_data(cfg, "train")
    au = active_units_per_layer(model, train[:AU_IMAGES])
    row.update(iw)
    row.update({"test_elbo": elbo.mean, "test_elbo_se": elbo.stderr, "bound_gap": -iw["test_nll"] - elbo.mean,
                "active_units": au})
    return row


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Our results next to Burda et al.'s Table 1."""
    lines = ["| layers | method | k | epochs | test NLL (ours) | s.e. | eval k / n | test ELBO | L_k - ELBO | "
             "active units | paper NLL (3280 passes) | paper active units | train time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        key = (r["layers"], r["method"], r["k"])
        paper = PAPER_NLL.get(key)
        ptxt = "" if paper is None else f"{paper:.2f}"
        pau = "+".join(str(a) for a in PAPER_ACTIVE_UNITS.get(key, ()))
        au = "+".join(str(a) for a in r.get("active_units", []))
        nll = f"{r['test_nll']:.2f}" if "test_nll" in r else "n/a"
        se = f"{r['test_nll_se']:.2f}" if "test_nll_se" in r else ""
        elbo = f"{r['test_elbo']:.2f}" if "test_elbo" in r else ""
        gap = f"{r['bound_gap']:.2f}" if "bound_gap" in r else ""
        lines.append(f"| {r['layers']} | {r['method'].upper()} | {r['k']} | {r['epochs_done']} | {nll} | {se} | "
                     f"{r.get('eval_k', '')} / {r.get('eval_n', '')} | {elbo} | {gap} | {au} | {ptxt} | {pau} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def reproduce_iwae(layers: Sequence[int] = (1,), ks: Sequence[int] = (1, 50), methods: Sequence[str] = ("vae", "iwae"),
                   epochs: int = 20, budget_s: float | None = None, out: str | Path = "runs/reproduce_iwae",
                   eval_k: int = 5000, eval_n: int | None = None, seed: int = 0, threads: int | None = None,
                   log: Any = print, *, runs: Sequence[RunSpec] | None = None, overrides: Sequence[str] = (),
                   config_dir: str | Path = CONFIG_DIR, tensorboard: bool = True) -> dict[str, Any]:
    """Train (:func:`train_run`) and evaluate (:func:`evaluate_run`) the selected set; write ``table.md``
    and ``results.json`` under ``out``.

    ``budget_s`` is split evenly over the runs (each stops at its share or at ``epochs``). VAE and IWAE with
    ``k = 1`` are the same objective, so IWAE k=1 is not trained twice when VAE k=1 is in the set.
    ``runs`` (e.g. from :func:`parse_runs`) replaces the ``layers x ks x methods`` product with an explicit
    list. ``overrides`` are extra dotted config overrides for every run (e.g. ``data.name=digits`` in tests).
    Finished runs are not retrained and finished evaluations not redone (:func:`evaluate_run`), so the same
    command run again after an interruption picks up where it stopped.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    if budget_s is not None and budget_s <= 0:
        raise ValueError(f"budget_s must be > 0 or None, got {budget_s}")
    if runs is None:
        runs = [RunSpec(l, m, k) for l in layers for k in ks for m in methods
                if not (m == "iwae" and k == 1 and "vae" in methods)]
    runs = list(runs)
    for r in runs:
        if r.method not in ("vae", "iwae"):
            raise ValueError(f"method must be 'vae' or 'iwae', got {r.method!r}")
    if not runs:
        raise ValueError("no run selected (empty layers, ks or methods)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfgs = [run_config(r, epochs, out, seed, overrides, config_dir) for r in runs]  # fail early on a bad config
    share = None if budget_s is None else budget_s / len(runs)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for run, cfg in zip(runs, cfgs):
        run_dir = train_run(cfg, share, tensorboard=tensorboard, log=log)
        if checkpoint_path(run_dir / "checkpoints", "last").is_file():
            row = evaluate_run(run_dir, eval_k, eval_n, seed)
        else:  # the budget ran out before the first epoch
            row = {"run": run.name, "layers": run.layers, "method": run.method, "k": run.k, "epochs_done": 0,
                   "train_seconds": 0.0, "run_dir": str(run_dir)}
        rows.append(row)
        log(f"[{run.name}] " + json.dumps(row))
        (out / "results.json").write_text(json.dumps({"rows": rows}, indent=1))
    table = markdown_table(rows)
    (out / "table.md").write_text(table)
    summary = {"out": str(out), "table": str(out / "table.md"), "rows": rows,
               "wall_seconds": round(time.perf_counter() - t0, 1)}
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``vaekit reproduce iwae``."""
    p.add_argument("--budget", type=float, default=None, help="total training seconds, split over the runs")
    p.add_argument("--epochs", type=int, default=20, help="passes of the truncated 3^i schedule (paper: 3280)")
    p.add_argument("--layers", type=str, default="1", help="comma list of stochastic layer counts (1,2)")
    p.add_argument("--k", type=str, default="1,50", help="comma list of sample counts (1,5,50)")
    p.add_argument("--methods", type=str, default="vae,iwae", help="comma list of vae,iwae")
    p.add_argument("--runs", type=str, default=None,
                   help="comma list of run names such as l1_vae_k1,l2_iwae_k50 (instead of --layers/--k/--methods)")
    p.add_argument("--out", type=str, default="runs/reproduce_iwae",
                   help="output folder (one run directory per run, table.md, results.json)")
    p.add_argument("--eval-k", type=int, default=5000, help="samples of the IWAE bound for test NLL (paper: 5000)")
    p.add_argument("--eval-n", type=int, default=None, help="number of test images (default: all 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")


def run_from_args(args: argparse.Namespace) -> int:
    """Run :func:`reproduce_iwae` from parsed arguments; prints the table and one JSON line last."""
    ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    summary = reproduce_iwae(layers=ints(args.layers), ks=ints(args.k), methods=args.methods.split(","),
                             epochs=args.epochs, budget_s=args.budget, out=args.out, eval_k=args.eval_k,
                             eval_n=args.eval_n, seed=args.seed, threads=args.threads,
                             runs=None if args.runs is None else parse_runs(args.runs),
                             log=lambda s: print(s, file=sys.stderr, flush=True))
    print(Path(summary["table"]).read_text())
    print(json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.iwae", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
