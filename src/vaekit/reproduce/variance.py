r"""LeNet-5 with variance layers on MNIST (Neklyudov et al. 2018, arXiv:1803.03764; PAPERS.md §16 CPU check; issue 17).

The network of the authors' ``scripts/lenet5-vn.py``: conv(20, 5) → BN → ReLU → pool → conv(50, 5) → BN → ReLU →
pool → dense 500 → BN → ReLU → dense 10, with the two dense layers as :class:`~vaekit.nets.LinearVariance`
(``--var3 --var4``, weights' standard deviations as the parameters, like the authors' layers: see
:class:`~vaekit.nets.LinearVariance`'s ``parameterization``), against the same network with ordinary dense layers. Adam 1e-3 with a linear decay to 0,
batch 200 (the variance layers' log-uniform KL is 0).

The training loss of the variance network is the negative log of the ensemble's predictive probability over
``S = --train-ens`` noise samples (the authors' ``--train-ens``),

.. math:: -\log \frac1S \sum_{s=1}^S \mathrm{softmax}(f(x, \varepsilon_s))_y .

``S = 1`` (plain cross-entropy on one sample) **cannot** train this network: its last layer is a variance layer,
so given everything before it the logits are symmetric about the bias, :math:`E_\varepsilon[l] = \mathrm{bias}`,
and :math:`\log\mathrm{softmax}_y` is concave in :math:`l`, so by Jensen's inequality the expected loss is at
least that of the input-independent logits ``bias``: chance level, whatever the earlier layers learn (measured:
train NLL 2.38 after 2 epochs, ensemble 9.93 %). With ``S > 1`` a large logit variance on the true class pays
(the ensemble gives it about 1/2 of the probability), so the signal can travel through the variance.

Measured on the 10,000 test images: the 20-sample ensemble (softmax probabilities averaged; also continued to 100
and 500 samples, to separate the Monte Carlo noise of 20 draws from what the network computes), one sample (mean and
s.e. over the 20 draws), the mean pass (ε = 0), and the expected calibration error (15 equal-width confidence bins)
of the ensemble and of the deterministic network.

    python -m vaekit.reproduce.variance --epochs 5 --train-ens 10 --out runs/variance   # trains both (resumable)
    python -m vaekit.reproduce.variance --train-ens 10 --out runs/variance --report docs/results/variance_layers.json

``--no-bias`` builds both dense layers (of both networks) without biases, as the authors' script does: with a bias
on the last variance layer, long training lets the class of the largest bias take the probability the true class
leaves, and the ensemble's accuracy collapses (64.89 % after 30 epochs against 96.02 % without biases;
``docs/results/objectives_architectures.md``). The report's ``runner_up`` measures it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import load_dataset
from ..nets import LinearVariance, set_noise
from ..train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from ..train.outputs import OutputError, refuse_other_settings, write_output


class LeNet5(nn.Module):
    """LeNet-5 as in da-molchanov/variance-networks; ``variance=True`` makes both dense layers variance layers.
    ``bias=False`` builds the dense layers without biases, as the authors' script does (``bias=False``).

    Input ``(B, 784)`` grey levels in [0, 1]; output ``(B, 10)`` logits."""

    def __init__(self, variance: bool, bias: bool = True) -> None:
        super().__init__()
        # sigma, not log sigma^2, as the authors' layers: Adam grows a variance fast enough only in sigma
        dense = partial(LinearVariance, bias=bias, parameterization="sigma") if variance else partial(nn.Linear, bias=bias)
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.BatchNorm2d(20), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), nn.BatchNorm2d(50), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(dense(800, 500), nn.BatchNorm1d(500), nn.ReLU(), dense(500, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x.view(-1, 1, 28, 28)))


def expected_calibration_error(probs: Tensor, y: Tensor, bins: int = 15) -> float:
    r"""``ECE = sum_b (n_b / n) |acc_b - conf_b|`` over ``bins`` equal-width bins of the top-class probability
    (Guo et al. 2017, Eq. 3); ``probs`` ``(n, classes)``, ``y`` ``(n,)``. A fraction in [0, 1]."""
    conf, pred = probs.max(1)
    correct = (pred == y).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=probs.dtype)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += float(m.double().mean()) * abs(float(correct[m].mean()) - float(conf[m].double().mean()))
    return ece


def ensemble_nll(model: LeNet5, x: Tensor, y: Tensor, samples: int) -> Tensor:
    r"""Mean over the batch of :math:`-\log \frac1S \sum_s \mathrm{softmax}(f(x, \varepsilon_s))_y`, nats; ``x``
    ``(B, 784)``, ``y`` ``(B,)``. The convolutional trunk has no noise, so it runs once and the head ``S`` times.

    Raises:
        ValueError: ``samples < 1``.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    feats = model.features(x.view(-1, 1, 28, 28))
    logp = torch.stack([F.log_softmax(model.head(feats), 1) for _ in range(samples)])  # (S, B, 10)
    logp_y = logp.gather(2, y.view(1, -1, 1).expand(samples, -1, 1)).squeeze(2)
    return -(torch.logsumexp(logp_y, 0) - math.log(samples)).mean()


#: ensembles beyond the 20 of the claim, drawn after them (the paper's 100, and 500 as the infinite-ensemble proxy)
ENSEMBLE_SIZES = (100, 500)


def run_name(name: str, train_ens: int, bias: bool = True) -> str:
    """The run folder: ``variance`` (one training sample), ``variance_ens{S}``, or ``deterministic``, with
    ``_nobias`` appended for dense layers without biases."""
    base = f"variance_ens{train_ens}" if name == "variance" and train_ens > 1 else name
    return base if bias else base + "_nobias"


def train(name: str, out: Path, epochs: int, seed: int = 0, batch_size: int = 200, lr: float = 1e-3,
          train_ens: int = 1, bias: bool = True) -> Path:
    """Train ``name`` (``variance`` or ``deterministic``) into ``out/run_name(name, train_ens, bias)``, a checkpoint
    per epoch (resumes). ``train_ens``: noise samples in the variance network's loss (:func:`ensemble_nll`);
    ``bias``: whether the dense layers have biases (:class:`LeNet5`).

    Raises:
        ValueError: a resume with another ``train_ens`` or ``bias`` than the run was trained with.
    """
    run = out / run_name(name, train_ens, bias)
    ckpt = run / "checkpoints"
    torch.manual_seed(seed)
    ds = load_dataset("mnist")
    x, y = ds.train.x, ds.train.y
    model = LeNet5(variance=name == "variance", bias=bias)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(x.shape[0] / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    start, log = 0, []
    if checkpoint_path(ckpt, "last").exists():
        meta = load_checkpoint(ckpt, "last", model, opt, restore_rng=True)
        start, log = meta["epoch"], meta["extra"]["log"]
        if meta["extra"].get("train_ens", 1) != train_ens:
            raise ValueError(f"{run} was trained with train_ens={meta['extra'].get('train_ens', 1)}, not {train_ens}")
        if meta["extra"].get("bias", True) != bias:
            raise ValueError(f"{run} was trained with bias={meta['extra'].get('bias', True)}, not {bias}")
        sched.last_epoch = start * steps_per_epoch - 1
        sched.step()
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(x.shape[0])
        tot, n = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i:i + batch_size]
            if name == "variance":
                loss = ensemble_nll(model, x[idx], y[idx], train_ens)
            else:
                loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot, n = tot + float(loss.detach()) * idx.numel(), n + idx.numel()
        log.append({"epoch": epoch + 1, "train_nll": tot / n, "seconds": time.perf_counter() - t0})
        print(f"[{name}] epoch {epoch + 1}/{epochs}: train NLL {tot / n:.4f}, {log[-1]['seconds']:.0f} s", flush=True)
        save_checkpoint(ckpt, "last", model, opt, epoch=epoch + 1, step=(epoch + 1) * steps_per_epoch,
                        extra={"log": log, "epochs": epochs, "train_ens": train_ens, "bias": bias})
    return run


@torch.no_grad()
def evaluate(out: Path, samples: int = 20, seed: int = 0, train_ens: int = 1, bias: bool = True) -> dict[str, Any]:
    """The test-set numbers of both runs (see the module docstring); the variance run is the one trained with
    ``train_ens`` samples; both with (``bias``) or without biases in their dense layers."""
    torch.manual_seed(seed)
    ds = load_dataset("mnist")
    x, y = ds.test.x, ds.test.y
    res: dict[str, Any] = {"n_test": int(x.shape[0]), "samples": samples, "train_ens": train_ens, "bias": bias}
    for name in ("variance", "deterministic"):
        model = LeNet5(variance=name == "variance", bias=bias)
        meta = load_checkpoint(out / run_name(name, train_ens, bias) / "checkpoints", "last", model)
        model.eval()
        feats = torch.cat([model.features(x[i:i + 1000].view(-1, 1, 28, 28)) for i in range(0, x.shape[0], 1000)])
        r: dict[str, Any] = {"epochs": meta["epoch"], "train_seconds": sum(e["seconds"] for e in meta["extra"]["log"])}
        if name == "variance":
            probs = torch.stack([F.softmax(model.head(feats), 1) for _ in range(samples)])  # (S, n, 10)
            single = (probs.argmax(2) == y).double().mean(1)  # (S,)
            ens = probs.mean(0)
            set_noise(model, False)
            mean_pass = F.softmax(model.head(feats), 1)
            set_noise(model, True)
            ens_probs = ens.double()
            # larger ensembles, continuing the same draws: is the gap to the paper the Monte Carlo noise of 20?
            total, sizes = probs.sum(0), {}
            for s in range(samples + 1, max(ENSEMBLE_SIZES) + 1):
                total += F.softmax(model.head(feats), 1)
                if s in ENSEMBLE_SIZES:
                    sizes[str(s)] = float((total.argmax(1) == y).double().mean())
            r["ensemble_accuracy_by_size"] = sizes
            r.update({"ensemble_accuracy": float((ens.argmax(1) == y).double().mean()),
                      "single_sample_accuracy": float(single.mean()),
                      "single_sample_accuracy_sd": float(single.std()),
                      "mean_pass_accuracy": float((mean_pass.argmax(1) == y).double().mean()),
                      "ensemble_nll": float(F.nll_loss(ens.clamp_min(1e-12).log(), y)),
                      "ensemble_ece": expected_calibration_error(ens.double(), y),
                      "runner_up": runner_up(ens, y)})
        else:
            probs = F.softmax(model.head(feats), 1)
            det_probs = probs.double()
            r.update({"accuracy": float((probs.argmax(1) == y).double().mean()),
                      "nll": float(F.nll_loss(probs.clamp_min(1e-12).log(), y)),
                      "ece": expected_calibration_error(probs.double(), y)})
        res[name] = r
    # bootstrap s.e. of the ECE difference (ensemble - deterministic), the same resampled test images for both
    g = torch.Generator().manual_seed(seed)
    diffs = []
    for _ in range(200):
        i = torch.randint(0, x.shape[0], (x.shape[0],), generator=g)
        diffs.append(expected_calibration_error(ens_probs[i], y[i]) - expected_calibration_error(det_probs[i], y[i]))
    res["ece_difference"] = res["variance"]["ensemble_ece"] - res["deterministic"]["ece"]
    res["ece_difference_se"] = float(torch.tensor(diffs).std())
    res["dashboard"] = dashboard(res)
    return res


@torch.no_grad()
def batchnorm_modes(out: Path, train_ens: int = 10, seeds: tuple[int, ...] = (0, 1, 2), samples: int = 20,
                    batch: int = 200, modes: tuple[str, ...] = ("running", "batch_all", "batch_head"),
                    bias: bool = True) -> dict[str, Any]:
    """Test accuracy of the trained variance network's ``samples``-draw ensemble when its BatchNorm layers use
    their running averages (``model.eval()``, as :func:`evaluate`), the statistics of each test batch of ``batch``
    images in every BatchNorm (the authors' ``net.train()`` at test time), or in the one after the first variance
    layer only; and of one sample (mean over the draws). Each seed draws the noise anew, the same draws for the
    three modes, so the spread over seeds is the Monte Carlo noise a difference between modes must exceed. Every
    (mode, seed) starts from the checkpoint's weights and running averages (a BatchNorm in training mode updates
    its running averages with the test batches it normalises).

    Returns:
        ``{mode: {"ensemble": [accuracy per seed], "single": [...], "ensemble_nll": [nats per image]}}`` with
        ``seeds``, ``samples``, ``batch``.
    """
    ds = load_dataset("mnist")
    x, y = ds.test.x, ds.test.y
    model = LeNet5(variance=True, bias=bias)
    load_checkpoint(out / run_name("variance", train_ens, bias) / "checkpoints", "last", model)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    res: dict[str, Any] = {"seeds": list(seeds), "samples": samples, "batch": batch, "train_ens": train_ens,
                           "bias": bias}
    for mode in modes:
        ens, single, nll = [], [], []
        for seed in seeds:
            model.load_state_dict(saved)
            model.eval()
            if mode == "batch_all":
                model.train()
            elif mode == "batch_head":
                model.head.train()
            torch.manual_seed(seed)
            right = right1 = loss = 0.0
            for i in range(0, x.shape[0], batch):
                feats = model.features(x[i:i + batch].view(-1, 1, 28, 28))
                probs = torch.stack([F.softmax(model.head(feats), 1) for _ in range(samples)])
                yb = y[i:i + batch]
                right += float((probs.mean(0).argmax(1) == yb).sum())
                right1 += float((probs.argmax(2) == yb).double().mean(0).sum())
                loss += float(-probs.mean(0).gather(1, yb[:, None]).clamp_min(1e-12).log().sum())
            ens.append(right / x.shape[0])
            single.append(right1 / x.shape[0])
            nll.append(loss / x.shape[0])
        res[mode] = {"ensemble": ens, "single": single, "ensemble_nll": nll}
    return res


def runner_up(probs: Tensor, y: Tensor) -> dict[str, Any]:
    """Where the ensemble's probability goes besides the true class: for each image the runner-up (the wrong class
    of largest probability), and how concentrated those are on one class. ``probs`` ``(n, classes)``, ``y``
    ``(n,)``.

    Why: a last variance layer gives the true class at most about 1/2 of the ensemble's probability; which wrong
    class takes the rest decides the accuracy. If the other logits have small variances, the largest of them is
    the one with the largest bias, the same class for every image, and the argmax becomes a near tie with it.

    Returns:
        ``{"class_shares": [share of images whose runner-up is class k], "top_class": k, "top_share": float,
        "mean_p_true": float, "mean_p_runner_up": float}``.
    """
    wrong = probs.clone()
    wrong.scatter_(1, y[:, None], -1.0)
    p_run, k_run = wrong.max(1)
    shares = torch.bincount(k_run, minlength=probs.shape[1]).double() / y.numel()
    top = int(shares.argmax())
    return {"class_shares": [round(float(s), 4) for s in shares], "top_class": top, "top_share": float(shares[top]),
            "mean_p_true": float(probs.gather(1, y[:, None]).mean()), "mean_p_runner_up": float(p_run.mean())}


def dashboard(res: dict[str, Any]) -> dict[str, Any]:
    """The claims of PAPERS.md §16 (c) against these numbers, in the form :mod:`vaekit.reproduce.dashboard` reads;
    an accuracy's s.e. is the binomial ``sqrt(p(1-p)/n)``."""
    v, d, n = res["variance"], res["deterministic"], res["n_test"]

    def se(p: float) -> float:
        return math.sqrt(max(p * (1 - p), 1e-12) / n)

    def verdict(lo: float, hi: float) -> bool | None:  # True beyond 2 s.e. inside [lo, hi], False beyond 2 s.e. out
        if lo <= hi:
            return True if lo > 0 and hi > 0 else (False if lo < 0 and hi < 0 else None)
        return None

    ens, mean, single = v["ensemble_accuracy"], v["mean_pass_accuracy"], v["single_sample_accuracy"]
    c1 = ens - 0.98
    c2 = 0.20 - mean
    c3 = min(ens - single, single - mean)
    layout = "" if res.get("bias", True) else ", dense layers without biases (the authors' layout)"
    # the claims of a file of another layout read apart from the 5-epoch file's on the dashboard
    tag = "" if res.get("bias", True) else f" (no dense biases, {v['epochs']} epochs)"
    # the deterministic net of a longer run may be an earlier run's (its epochs are then said)
    epochs = f"{v['epochs']}" + ("" if d["epochs"] == v["epochs"] else f" (the deterministic net {d['epochs']})")
    return {"budget": f"LeNet-5{layout}, {epochs} epochs (paper: 200), batch 200, {res.get('train_ens', 1)} noise "
                      "sample(s) per training example, 1 seed, 10,000 test images, "
                      f"{round(v['train_seconds'] + d['train_seconds'])} s of training on 1 CPU thread",
            "claims": [
                {"claim": "the 20-sample ensemble of the variance network reaches >= 98 % test accuracy" + tag,
                 "ours": f"{100 * ens:.2f} %", "paper": "about 99.3 % (100 samples; from memory)",
                 "holds": verdict(c1 - 2 * se(ens), c1 + 2 * se(ens))},
                {"claim": "the mean pass (eps = 0) is near chance (<= 20 %)" + tag, "ours": f"{100 * mean:.2f} %",
                 "paper": "about chance", "holds": verdict(c2 - 2 * se(mean), c2 + 2 * se(mean))},
                {"claim": "one sample lies between the mean pass and the ensemble" + tag,
                 "ours": f"{100 * single:.2f} % (sd over 20 draws {100 * v['single_sample_accuracy_sd']:.2f})",
                 "paper": "between", "holds": verdict(c3 - 2 * se(single), c3 + 2 * se(single))},
                {"claim": "the ensemble is better calibrated than the deterministic net (lower ECE)" + tag,
                 "ours": f"ECE {100 * v['ensemble_ece']:.2f} % vs {100 * d['ece']:.2f} %",
                 "paper": "better-calibrated uncertainty (qualitative)",
                 "holds": verdict(-res["ece_difference"] - 2 * res["ece_difference_se"],
                                  -res["ece_difference"] + 2 * res["ece_difference_se"])},
            ]}


def _settings(res: dict[str, Any]) -> dict[str, Any]:
    """What makes a ``--report`` file one experiment: both networks' epochs, the loss's and the test ensemble's
    sample counts, the test images."""
    return {"epochs": {"variance": res["variance"]["epochs"], "deterministic": res["deterministic"]["epochs"]},
            "train_ens": res["train_ens"], "samples": res["samples"], "n_test": res["n_test"],
            "bias": res.get("bias", True)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.variance", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/variance", help="folder of the two runs (default runs/variance)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs of each network (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--runs", default="variance,deterministic", help="which to train (default both)")
    p.add_argument("--report", default=None, help="evaluate both runs and write this JSON (no training; refused if "
                                                  "the file holds the comparison at other epochs or settings)")
    p.add_argument("--force", action="store_true", help="--report: replace a file of other settings")
    p.add_argument("--train-ens", type=int, default=10,
                   help="noise samples per example in the variance network's loss (default 10; 1 cannot learn, "
                        "see the module docstring)")
    p.add_argument("--bn-modes", default=None, metavar="JSON",
                   help="score the trained variance run with BatchNorm running averages against each test batch's "
                        "statistics (3 noise seeds) into this JSON; no training")
    p.add_argument("--no-bias", action="store_true",
                   help="dense layers without biases, as the authors' lenet5-vn.py (runs named *_nobias)")
    a = p.parse_args(argv)
    if a.train_ens < 1:
        raise SystemExit(f"--train-ens must be >= 1, got {a.train_ens}")
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    if a.bn_modes:
        res = batchnorm_modes(out, train_ens=a.train_ens, bias=not a.no_bias)
        print(json.dumps(res))  # first: survives a failed write
        write_output(a.bn_modes, json.dumps(res, indent=1) + "\n", payload=res)
        return
    if a.report:
        res = evaluate(out, train_ens=a.train_ens, bias=not a.no_bias)
        print(json.dumps(res))  # first, one line: the figures reach the terminal even if the write fails
        try:  # variance_layers.json (5 epochs) and variance_layers_e30.json differ only in these
            refuse_other_settings(a.report, _settings(res), _settings, a.force)
        except OutputError as e:
            p.error(f"{e}; the results are printed above")
        write_output(a.report, json.dumps(res, indent=2) + "\n", payload=res)
        return
    for name in a.runs.split(","):
        if name not in ("variance", "deterministic"):
            raise SystemExit(f"--runs: unknown run {name!r}; choose variance, deterministic")
        train(name, out, a.epochs, train_ens=a.train_ens, bias=not a.no_bias)


if __name__ == "__main__":
    main()
