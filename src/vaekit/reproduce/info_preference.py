r"""The information-preference experiment (Zhao, Song & Ermon 2017, arXiv:1702.08658; PAPERS.md §13; issue 17).

Six runs on statically binarised MNIST, z = 32, trained by ``vaekit train`` from ``configs/info_preference``:
a factorised Bernoulli decoder or an autoregressive one (``made_bernoulli``, a MADE over the pixels, or
``pixelcnn_bernoulli``, a PixelCNN with dilated masked convolutions that sees every earlier row), each with the
ELBO or the InfoVAE/MMD objective (alpha = 1, lambda = 1000). This module measures the last checkpoint of each on the test
set: the ELBO and its two terms (nats, mean ± s.e. over the 10,000 test images), the IWAE-k bound on the first
``--iwae-n`` images, the mutual information I_q(x; z) over ``--mi-n`` test images (Hoffman & Johnson's estimator,
:func:`vaekit.evaluation.mutual_information`; at most log M), and draws a sample grid per run in which each row
shares one z ~ p(z) (an ignored latent shows as rows no more alike than the grid).

    for c in bernoulli_elbo made_elbo made_mmd bernoulli_mmd pixelcnn_elbo pixelcnn_mmd; do
        trainslot vaekit train --config configs/info_preference/$c.yaml --threads 1; done
    python -m vaekit.reproduce.info_preference --runs runs/info_pref --json docs/results/info_preference.json \
        --figures docs/results
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset
from ..evaluation import active_units, iwae_estimate, mutual_information
from ..train.outputs import write_output
from ..train.run import load_run
from ..viz.plots import sample_grid

RUNS = ("bernoulli_elbo", "made_elbo", "bernoulli_mmd", "made_mmd", "pixelcnn_elbo", "pixelcnn_mmd")


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


@torch.no_grad()
def measure(run_dir: Path, x: torch.Tensor, iwae_n: int, iwae_k: int, mi_n: int, seed: int = 0) -> dict[str, Any]:
    """The test numbers of one run's last checkpoint (see the module docstring)."""
    torch.manual_seed(seed)
    run = load_run(run_dir, checkpoint="last")
    model = run.model
    val = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in val if r.get("split") == "val"]
    ll, kl = [], []
    for i in range(0, x.shape[0], 500):
        out = model(x[i:i + 500])
        ll.append(out.log_likelihood.mean(0).double())
        kl.append(out.kl.double())
    ll_t, kl_t = torch.cat(ll), torch.cat(kl)
    elbo = ll_t - kl_t
    iw = torch.cat([iwae_estimate(model, x[i:i + 100], iwae_k) for i in range(0, iwae_n, 100)])
    mi = mutual_information(model, x[:mi_n], batch_size=500)
    res = {"epochs": run.meta["epoch"], "train_seconds": val[-1]["time"] if val else None,
           "val_kl_by_epoch": [round(r["kl"], 3) for r in val]}
    for name, v in (("elbo", elbo), ("log_likelihood", ll_t), ("kl", kl_t)):
        res[name], res[name + "_se"] = _mean_se(v)
    res[f"iwae_{iwae_k}"], res[f"iwae_{iwae_k}_se"] = _mean_se(iw)
    res["iwae_n"] = iwae_n
    res[f"iwae_{iwae_k}_minus_elbo"], res[f"iwae_{iwae_k}_minus_elbo_se"] = _mean_se(iw - elbo[:iwae_n])  # paired
    res.update({k: v for k, v in mi.items() if k != "n"})
    res["mi_n"] = mi_n
    res["active_units"] = active_units(model, x[:1000])
    return res


@torch.no_grad()
def figure(run_dir: Path, path: Path, rows: int = 6, cols: int = 8, seed: int = 0) -> Path:
    """Samples x ~ p(x|z): each row one z ~ p(z), ``cols`` draws of x for it."""
    torch.manual_seed(seed)
    model = load_run(run_dir, checkpoint="last").model
    z = model.prior().sample((rows,)).repeat_interleave(cols, 0)
    x = model.decode(z).sample()
    return sample_grid(x, (1, 28, 28), path, nrow=cols, title=f"{run_dir.name}: a row per z")


def dashboard(results: dict[str, Any]) -> dict[str, Any]:
    """The claims of PAPERS.md §13 (c) against the measured KLs (test means, 2 s.e.), in the form
    :mod:`vaekit.reproduce.dashboard` reads; a run not measured gives ``holds: null``."""

    def kl(name: str) -> tuple[float, float] | None:
        r = results.get(name)
        return None if r is None else (r["kl"], r["kl_se"])

    def between(v: tuple[float, float] | None, lo: float, hi: float) -> bool | None:
        if v is None:
            return None
        m, se = v
        if lo + 2 * se <= m <= hi - 2 * se:
            return True
        if m + 2 * se < lo or m - 2 * se > hi:
            return False
        return None

    def words(v: tuple[float, float] | None) -> str:
        return "not run" if v is None else f"KL {v[0]:.2f} ± {v[1]:.2f} nats"

    epochs = sorted({r["epochs"] for r in results.values() if isinstance(r, dict) and "epochs" in r})
    # the claim is about a decoder strong enough to model x alone: the PixelCNN when it was run, else the MADE
    ar = "pixelcnn" if "pixelcnn_elbo" in results else "made"
    decoder = {"pixelcnn": "PixelCNN (16 channels, 8 dilated masked blocks)", "made": "MADE [1000]"}[ar]
    return {"budget": f"MLP 784-500-32 (tanh), {decoder} decoder, {'/'.join(map(str, epochs))} epochs, 1 seed, "
                      "static binarised MNIST, 10,000 test images",
            "claims": [
                {"claim": "a factorised Bernoulli decoder ends with KL about 20-30 nats (ELBO)",
                 "ours": words(kl("bernoulli_elbo")), "paper": "20-30 (PAPERS.md §13 expectation, not a paper table)",
                 "holds": between(kl("bernoulli_elbo"), 20.0, 30.0)},
                {"claim": f"an autoregressive decoder ({ar}) trained on the ELBO ignores the latent (KL < 2 nats)",
                 "ours": words(kl(f"{ar}_elbo")), "paper": "KL ≈ 0 with a PixelCNN decoder (qualitative)",
                 "holds": between(kl(f"{ar}_elbo"), 0.0, 2.0)},
                {"claim": f"the same decoder ({ar}) with the InfoVAE/MMD objective keeps KL >= 10 nats",
                 "ours": words(kl(f"{ar}_mmd")), "paper": "latent used (qualitative)",
                 "holds": between(kl(f"{ar}_mmd"), 10.0, math.inf)},
            ]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.info_preference", description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="runs/info_pref", help="folder holding the runs (default runs/info_pref)")
    p.add_argument("--names", default=",".join(RUNS), help="runs to measure (default all six; missing ones skipped)")
    p.add_argument("--json", default=None, help="write the table here (runs measured before and not named in "
                   "--names are kept)")
    p.add_argument("--figures", default=None, help="folder for the per-run sample grids")
    p.add_argument("--iwae-n", type=int, default=1000, help="test images for the IWAE bound (default 1000)")
    p.add_argument("--iwae-k", type=int, default=100, help="IWAE samples (default 100)")
    p.add_argument("--mi-n", type=int, default=10000, help="test images for I(x; z) (default 10000)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    x = load_dataset("binarized_mnist").test.x
    results: dict[str, Any] = {}
    if a.json and Path(a.json).is_file():
        old = json.loads(Path(a.json).read_text())
        results = {k: v for k, v in old.items() if k in RUNS}
    for name in a.names.split(","):
        run_dir = Path(a.runs) / name
        if not (run_dir / "checkpoints").is_dir():
            print(f"{name}: no run at {run_dir}, skipped", flush=True)
            continue
        results[name] = measure(run_dir, x, a.iwae_n, a.iwae_k, a.mi_n)
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "val_kl_by_epoch"}), flush=True)
        if a.figures:
            figure(run_dir, Path(a.figures) / f"info_preference_{name}.png")
        if a.json:
            full = {**results, "dashboard": dashboard(results)}
            write_output(a.json, json.dumps(full, indent=2) + "\n", payload=full)


if __name__ == "__main__":
    main()
