"""Burda, Grosse & Salakhutdinov (2015), *Importance Weighted Autoencoders*, arXiv:1509.00519, Table 1.

Run ``l{L}_{method}_k{k}`` is the config file ``configs/iwae/l{L}_{method}_k{k}.yaml`` (PAPERS.md section 2:
MNIST with the last 400 training images held out and dynamically binarised, batch 20, Adam with eps 1e-4,
the ``{type: iwae}`` schedule "3^i passes at lr 1e-3 * 10^(-i/7)" truncated to the first ``epochs``
passes, decoder output bias = logit of the mean training pixel, every other weight Glorot-uniform with zero biases
(the authors' ``nnet.Linear.random``; ``train.init_weights``); 1 stochastic layer 784-200-200-50 or 2,
x-200-200-z1(100)-100-100-z2(50), tanh, ``sigma = exp(a/2)``). "VAE" is the ``elbo`` objective with k
samples averaged, "IWAE" the ``iwae`` objective; VAE and IWAE with k = 1 are the same objective, so the
budgets train it once (``l{L}_vae_k1``).

Evaluation (:func:`vaekit.reproduce.runner.evaluate_checkpoint`): test NLL = ``-L_k`` (IWAE bound, Burda et al. use
k = 5000 on all 10,000 test images) with its standard error over images, the test ELBO (10 samples,
analytic KL) and the gap ``L_k - ELBO``; active units = latent units whose posterior-mean variance over
500 (fixed-binarised) training images exceeds 0.01 (Sec. 5.2), per layer for stacked models, where layer
``l > 1``'s mean is that of ``q(z_l | z_{l-1})`` at a *sample* ``z_{l-1} ~ q`` (the authors' code,
``get_units_variances``), not at the mean passed upwards.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..evaluation import posterior_mean_variance
from ..pipeline import eval_data
from ..train import LoadedRun
from .runner import Budget, EvalSettings, Report, Reproduction, RunSpec, md_table

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

#: Active-unit threshold and number of training images (Burda et al. 2015, Sec. 5.2).
AU_THRESHOLD = 1e-2
AU_IMAGES = 500

_RUN_NAME = re.compile(r"l(\d+)_(vae|iwae)_k(\d+)")

#: The ten distinct runs of Table 1 (IWAE k=1 is VAE k=1).
TABLE_RUNS = tuple(f"l{layers}_{method}_k{k}" for layers in (1, 2) for method in ("vae", "iwae")
                   for k in (1, 5, 50) if not (method == "iwae" and k == 1))


def parse_run(name: str) -> tuple[int, str, int]:
    """``"l2_iwae_k50"`` -> ``(2, "iwae", 50)``; ``ValueError`` naming a malformed name."""
    m = _RUN_NAME.fullmatch(name)
    if m is None:
        raise ValueError(f"bad run name {name!r}: expected l{{layers}}_{{vae|iwae}}_k{{k}}, e.g. l1_iwae_k50")
    return int(m.group(1)), m.group(2), int(m.group(3))


def run_spec(name: str) -> RunSpec:
    """The config ``configs/iwae/<name>.yaml``; ``FileNotFoundError`` naming the run if there is none."""
    parse_run(name)
    spec = RunSpec(f"configs/iwae/{name}.yaml")
    if not spec.path.is_file():
        raise FileNotFoundError(f"no config for run {name}: {spec.path} (available: layers 1,2; k 1,5,50)")
    return spec


@torch.no_grad()
def active_units_per_layer(model: nn.Module, x: Tensor, threshold: float = AU_THRESHOLD, seed: int = 0) -> list[int]:
    r"""Active units ``#{u : Var_x(E_q[u|·]) > threshold}`` (Burda et al. 2015, Sec. 5.2), one count per layer.

    A one-layer model: ``E_q[u|x]`` (:func:`vaekit.evaluation.posterior_mean_variance`). A stacked model, as
    in the authors' code (``iwae.py``, ``get_units_variances``): draw ``z_{1:L} ~ q(z_{1:L}|x)`` once (seeded)
    and take the mean of ``q(z_l | z_{l-1})`` at that draw (``z_0 = x``), so layer 1 is ``E_q[z_1|x]`` and
    layer ``l > 1`` the mean given a sample of the layer below.

    ``x``: ``(N, data_dim)`` binarised images (N >= 2)."""
    if not hasattr(model, "encode_layers"):
        return [int((posterior_mean_variance(model, x) > threshold).sum())]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        post = model.posterior(x)
        zs = post.sample()
        means = [lat.point_estimate(q) for lat, q in zip(model.q_layers, post.conditionals(zs))]
    return [int((m.double().var(0, unbiased=True) > threshold).sum()) for m in means]


def measure(run: LoadedRun, x: Tensor, values: Mapping[str, Tensor], budget: Budget) -> dict[str, Any]:
    """Active units per layer on the first 500 training images (fixed binarisation)."""
    train = eval_data(run.config, "train", x.device)[0]
    return {"active_units": active_units_per_layer(run.model, train[:AU_IMAGES])}


def report(rows: list[dict], meta: dict) -> Report:
    """Our results next to Burda et al.'s Table 1 (``n/a`` for a run the time budget stopped before epoch 1)."""
    cells = []
    for r in rows:
        key = parse_run(r["run"])
        paper = PAPER_NLL.get(key)
        done = "iwae" in r
        ev = r["settings"]["eval"] if done else {}
        cells.append([key[0], key[1].upper(), key[2], r["epochs_done"],
                      f"{-r['iwae']['mean']:.2f}" if done else "n/a", f"{r['iwae']['se']:.2f}" if done else "",
                      f"{ev.get('iwae_k', '')} / {r.get('n', '')}", f"{r['elbo']['mean']:.2f}" if done else "",
                      f"{r['gap']['mean']:.2f}" if done else "", "+".join(str(a) for a in r.get("active_units", [])),
                      "" if paper is None else f"{paper:.2f}",
                      "+".join(str(a) for a in PAPER_ACTIVE_UNITS.get(key, ())),
                      f"{r['train_seconds']:.0f}"])
    lines = [f"Burda et al. 2015, Table 1 — budget {meta['budget']}: {meta['settings']['description']}.", "",
             f"`{meta['command']}`", ""]
    lines += md_table(["layers", "method", "k", "epochs", "test NLL (ours)", "s.e.", "eval k / n", "test ELBO",
                       "L_k - ELBO", "active units", "paper NLL (3280 passes)", "paper active units",
                       "train time (s)"], cells)
    paper = {f"l{l}_{m}_k{k}": {"nll": v, "active_units": list(PAPER_ACTIVE_UNITS[(l, m, k)])}
             for (l, m, k), v in PAPER_NLL.items()}
    return Report("\n".join(lines) + "\n", {"paper": paper})


BUDGETS = {
    "small": Budget(epochs=20, eval=EvalSettings(iwae_k=5000, elbo_k=10, n=1000), runs=("l1_vae_k1", "l1_iwae_k50"),
                    note="the 1-layer VAE k=1 / IWAE k=50 pair (about 30 min of training on one core)"),
    "ci": Budget(epochs=2, eval=EvalSettings(iwae_k=5000, elbo_k=10, n=100), runs=("l1_vae_k1", "l1_iwae_k50"),
                 note="the same pair for 2 epochs, L_5000 on 100 test images: the CI smoke run of "
                      "`vaekit reproduce --all` (about 2 min)"),
    "paper": Budget(epochs=3280, eval=EvalSettings(iwae_k=5000, elbo_k=10, n=None), runs=TABLE_RUNS,
                    note="the paper's 3,280 passes (days per run on a CPU)"),
}

REPRODUCTION = Reproduction(
    name="iwae", title="Burda et al. 2015 (arXiv:1509.00519), Table 1: test NLL (IWAE-5000) and active units on MNIST",
    budgets=BUDGETS, run_spec=run_spec, report=report, measure=measure, doc=None)
