r"""Convolutional DRAW on binarised MNIST (Gregor et al. 2016, arXiv:1604.08772; PAPERS.md §12; issue 17).

Three runs, ``t1``, ``t4`` and ``t8`` (``T`` = 1, 4, 8 steps), of :class:`~vaekit.models.ConvDRAW` with 16-channel
conv-LSTMs and 4x7x7 Gaussian latent maps, trained by :func:`vaekit.train.fit` (the registered ELBO objective,
Adam 1e-3, batches of 100, checkpoints in safetensors + JSON) on the statically binarised MNIST of Larochelle &
Murray (``binarized_mnist``: 50,000 training, 10,000 validation, 10,000 test images; no dynamic binarisation).
The runs are trained round-robin, one epoch each per round, so an interrupted call leaves them at equal epochs
(or one apart) and a second call resumes each.

    trainslot python -m vaekit.reproduce.convdraw --runs t1,t4,t8 --epochs 5 --out runs/convdraw --threads 1
    trainslot python -m vaekit.reproduce.convdraw --out runs/convdraw --eval          # RUN/eval.json
    python -m vaekit.reproduce.convdraw --out runs/convdraw --report docs/results     # convdraw.json + figure

Evaluation (``--eval``, on the last checkpoint): the test ELBO and its per-step KLs and reconstruction term on
``--n-test`` test images drawn at random (seed 0; the split is ordered by class) (one posterior sample each, seeded), IWAE-k on the same images (paired
differences T8 - T1 per image), and, for every ``t = 0..T``, the rate ``sum_{s<=t} KL_s`` (bits) against the
distortion ``-log p(x | partial canvas)`` (nats) of :meth:`~vaekit.models.ConvDRAW.partial_reconstruction` and
the accuracy of an independent MNIST CNN (``benchmarks/mnist_classifier.py``, ``runs/classifier``) on those
partial reconstructions of the labelled MNIST test images (binarised once with seed 0, so they are labelled
binary images of the same kind as the training data). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..config import from_dict
from ..train import fit
from ..train.outputs import refuse_to_drop, write_output

RUNS = {"t1": 1, "t4": 4, "t8": 8}
CHANNELS, LATENT_CHANNELS = 16, 4


def config_of(name: str, epochs: int, out: Path, seed: int = 0) -> dict[str, Any]:
    """The run config of ``name`` (``t1``, ``t4`` or ``t8``) as plain data.

    Raises:
        ValueError: an unknown run name.
    """
    if name not in RUNS:
        raise ValueError(f"unknown run {name!r}; choose from {sorted(RUNS)}")
    return {"data": {"name": "binarized_mnist", "binarize": "none"},
            "model": {"type": "convdraw", "steps": RUNS[name], "channels": CHANNELS,
                      "latent_channels": LATENT_CHANNELS, "kernel_size": 3},
            # eval_every = epochs: one validation pass, at the end (a pass over 10,000 images costs T=8 about
            # a tenth of an epoch); grad_clip only guards the LSTMs against a rare exploding step
            "train": {"epochs": epochs, "batch_size": 100, "lr": 1e-3, "objective": {"type": "elbo"},
                      "eval_every": epochs, "checkpoint_every": 1, "log_every": 100, "grad_clip": 100.0},
            "seed": seed, "device": "cpu", "out_dir": str(out), "run_name": name}


def _epochs_done(run_dir: Path) -> int:
    last = run_dir / "checkpoints" / "last.json"
    return int(json.loads(last.read_text())["epoch"]) if last.is_file() else 0


def train(names: list[str], epochs: int, out: Path, max_seconds: float | None = None) -> dict[str, Any]:
    """Train ``names`` round-robin, one epoch per run per round, up to ``epochs`` each (resuming what exists).

    ``max_seconds``: start no round whose cost (the last round's wall time) would end past this budget.
    Returns ``{name: {"epochs", "seconds"}}`` for this call.
    """
    t0 = time.perf_counter()
    spent = {n: 0.0 for n in names}
    last_round = 0.0
    for epoch in range(1, epochs + 1):
        todo = [n for n in names if _epochs_done(out / n) < epoch]
        if not todo:
            continue
        if max_seconds is not None and time.perf_counter() - t0 + last_round > max_seconds:
            print(f"[convdraw] budget of {max_seconds:.0f} s reached before round {epoch}; stopping", flush=True)
            break
        r0 = time.perf_counter()
        for n in todo:
            s0 = time.perf_counter()
            run_dir = out / n
            cfg = from_dict(config_of(n, epochs, out))
            resume = (run_dir / "checkpoints" / "last.json").is_file()
            fit(cfg, run_dir=run_dir, resume=resume, stop_after_epoch=epoch, tensorboard=False)
            spent[n] += time.perf_counter() - s0
            print(f"[convdraw] {n}: epoch {epoch} done, {spent[n]:.0f} s this call", flush=True)
        last_round = time.perf_counter() - r0
    return {n: {"epochs": _epochs_done(out / n), "seconds": round(spent[n], 1)} for n in names}


LOG2 = math.log(2.0)


def _mean_se(v: torch.Tensor) -> dict[str, float]:
    v = v.double()
    return {"mean": float(v.mean()), "se": float(v.std() / math.sqrt(v.numel()))}


def load_classifier(script: str | Path, folder: str | Path) -> torch.nn.Module:
    """The independent MNIST CNN of ``benchmarks/mnist_classifier.py`` (not a package module, so loaded by path),
    with its weights from ``folder/cnn.safetensors``.

    Raises:
        FileNotFoundError: naming the missing script or weights.
    """
    import importlib.util

    script = Path(script)
    if not script.is_file():
        raise FileNotFoundError(f"no classifier script at {script} (run from the repository root)")
    spec = importlib.util.spec_from_file_location("mnist_classifier", script)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.load_classifier(folder)


def test_subset(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images of the binarised MNIST test split drawn without replacement (seeded): that split is ordered
    by digit class (its first images are all zeros), so a prefix would not be a sample of it."""
    from ..data import load_dataset

    x = load_dataset("binarized_mnist").test.x
    return x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]]


def labelled_binary_test(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` MNIST test images binarised once (``x ~ Bernoulli(intensity)``, seed ``seed``) and labels."""
    from ..data import load_dataset

    ds = load_dataset("mnist")
    x = torch.bernoulli(ds.test.x[:n], generator=torch.Generator().manual_seed(seed))
    return x, ds.test.y[:n]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, x_lab: torch.Tensor, y_lab: torch.Tensor,
             classifier: torch.nn.Module | None, k: int, seed: int = 0, batch: int = 100) -> dict[str, Any]:
    """The test numbers of one ConvDRAW (see the module docstring); per-image arrays under ``per_image``."""
    model.eval()
    T = model.steps
    ll, kls, gap, iw = [], [], [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch]
        torch.manual_seed(seed + i)
        tr = model.trace(xb, 1)
        torch.manual_seed(seed + i)
        out = model(xb, k=1)  # the bound as the trainer reports it, from the same draws
        ll.append(tr.log_likelihood[0].double())
        kls.append(tr.kl_steps[:, 0].double())
        # float32 and the same summation order on both sides: the two numbers agree bit for bit
        gap.append((out.log_likelihood.mean(0) - out.kl) - (tr.log_likelihood[0] - tr.kl_steps[:, 0].sum(0)))
        torch.manual_seed(seed + 100_000 + i)
        lw = model.log_weights(xb, k).double()
        iw.append(torch.logsumexp(lw, 0) - math.log(k))
    ll_t, kl_t, iw_t = torch.cat(ll), torch.cat(kls, 1), torch.cat(iw)
    elbo = ll_t - kl_t.sum(0)
    res: dict[str, Any] = {"T": T, "n_test": int(x.shape[0]), "iwae_k": k, "elbo": _mean_se(elbo),
                           "recon": _mean_se(-ll_t), "kl_total": _mean_se(kl_t.sum(0)),
                           f"iwae_{k}": _mean_se(iw_t), f"iwae_{k}_minus_elbo": _mean_se(iw_t - elbo),
                           "kl_steps": [_mean_se(kl_t[t]) for t in range(T)],
                           "bookkeeping_max_abs_gap": float(torch.cat(gap).abs().max())}
    # rate (bits, from the sampled-history KLs) against distortion and classifier accuracy, t = 0..T
    cum = torch.cat([torch.zeros(1, kl_t.shape[1], dtype=kl_t.dtype), kl_t.cumsum(0)])  # (T+1, n)
    curve = []
    for t in range(T + 1):
        dist, correct = [], []
        for i in range(0, x.shape[0], batch):
            dist.append(-model.partial_decode(x[i:i + batch], t).log_prob(x[i:i + batch]).double())
        if classifier is not None:
            for i in range(0, x_lab.shape[0], batch):
                rec = model.partial_reconstruction(x_lab[i:i + batch], t)
                correct.append((classifier(rec).argmax(1) == y_lab[i:i + batch]).double())
        row = {"t": t, "rate_bits": _mean_se(cum[t] / LOG2), "distortion_nats": _mean_se(torch.cat(dist))}
        if correct:
            acc = torch.cat(correct)
            row["accuracy"] = {"mean": float(acc.mean()), "se": float(acc.std() / math.sqrt(acc.numel()))}
        curve.append(row)
    res["rate_distortion"] = curve
    if classifier is not None:
        acc = (classifier(x_lab).argmax(1) == y_lab).double()
        res["classifier_on_binarised_test"] = {"mean": float(acc.mean()), "se": float(acc.std() / math.sqrt(acc.numel())),
                                               "n": int(acc.numel())}
    res["per_image"] = {"elbo": elbo.tolist(), "iwae": iw_t.tolist()}
    return res


def eval_run(name: str, out: Path, n_test: int, k: int, n_lab: int, classifier: torch.nn.Module | None) -> dict[str, Any]:
    """Evaluate the last checkpoint of ``out/name`` into ``out/name/eval.json``; returns it without per-image arrays."""
    from ..train.run import load_run

    run = load_run(out / name, checkpoint="last")
    x = test_subset(n_test)
    x_lab, y_lab = labelled_binary_test(n_lab)
    t0 = time.perf_counter()
    res = evaluate(run.model, x, x_lab, y_lab, classifier, k)
    metrics = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train_rows = [r for r in metrics if r.get("split") == "train"]
    res.update(epochs=int(run.meta["epoch"]), eval_seconds=round(time.perf_counter() - t0, 1),
               train_seconds=_train_seconds(out / name), last_train_elbo=train_rows[-1]["elbo"] if train_rows else None,
               n_labelled=int(x_lab.shape[0]))
    write_output(out / name / "eval.json", json.dumps(res), payload=res)
    return {key: v for key, v in res.items() if key != "per_image"}


def _train_seconds(run_dir: Path) -> float | None:
    """Training wall time of the run: the trainer's ``time`` of the last logged step (it carries over resumes, so
    it sums the round-robin calls' epochs; data loading and model set-up of each call are not in it)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [r["time"] for r in rows if r.get("split") == "train"]
    return round(max(times), 1) if times else None


PAPER_NLL = "≈ 80–81 nats (PAPERS.md §12 (b): FROM MEMORY, low confidence)"


def _paired(a: dict[str, Any], b: dict[str, Any], key: str) -> dict[str, float]:
    """Per-image difference ``a - b`` of ``per_image[key]`` (the same test images, so paired)."""
    n = min(len(a["per_image"][key]), len(b["per_image"][key]))
    d = torch.tensor(a["per_image"][key][:n], dtype=torch.float64) - torch.tensor(b["per_image"][key][:n],
                                                                                 dtype=torch.float64)
    return {"mean": float(d.mean()), "se": float(d.std() / math.sqrt(n)), "n": n}


def _verdict(lo_ok: bool, hi_bad: bool) -> bool | None:
    return True if lo_ok else False if hi_bad else None


def dashboard(runs: dict[str, dict[str, Any]], diffs: dict[str, Any]) -> dict[str, Any]:
    """The claims of PAPERS.md §12 (c) against the measured numbers (2 s.e.), in the dashboard's form."""
    k = next(iter(runs.values()))["iwae_k"] if runs else 100
    epochs = sorted({r["epochs"] for r in runs.values()})
    n = sorted({r["n_test"] for r in runs.values()})
    budget = (f"16-channel conv-LSTMs, 4x7x7 latents, T = 1/4/8, {'/'.join(map(str, epochs))} epochs each, 1 seed, "
              f"static binarised MNIST; {'/'.join(map(str, n))} test images, IWAE-{k}")
    claims = []
    d = diffs.get("t8_minus_t1", {}).get("iwae")
    claims.append({"claim": "the NLL bound improves with T: T = 8 better than T = 1 by >= 2 nats",
                   "ours": "not run" if d is None else f"IWAE-{k} T8 - T1 = {d['mean']:+.2f} ± {d['se']:.2f} nats (paired)",
                   "paper": "improves with T (PAPERS.md §12 (c) expectation)",
                   "holds": None if d is None else _verdict(d["mean"] - 2 * d["se"] >= 2, d["mean"] + 2 * d["se"] < 2)})
    t8 = runs.get("t8")
    if t8 is not None and t8["T"] >= 3:
        ks = t8["kl_steps"]
        first = max(ks[:2], key=lambda v: v["mean"])
        later = max(ks[2:], key=lambda v: v["mean"])
        sep = math.sqrt(first["se"] ** 2 + later["se"] ** 2)
        words = ", ".join(f"{v['mean']:.1f}" for v in ks)
        claims.append({"claim": "per-step KL is largest in the first steps (T = 8: max of steps 1-2 > every later step)",
                       "ours": f"KL_t = {words} nats", "paper": "early steps carry the most information (qualitative)",
                       "holds": _verdict(first["mean"] - later["mean"] > 2 * sep, first["mean"] - later["mean"] < -2 * sep)})
        rd = t8["rate_distortion"]
        acc = rd[2].get("accuracy") if len(rd) > 2 else None
        claims.append({"claim": "a classifier on partial reconstructions from z_1..z_2 (T = 8) reaches > 80 %",
                       "ours": "not measured" if acc is None else
                       f"{100 * acc['mean']:.1f} ± {100 * acc['se']:.1f} % at {rd[2]['rate_bits']['mean']:.0f} bits",
                       "paper": "digit identity visible by t = 1, 2 (qualitative)",
                       "holds": None if acc is None else _verdict(acc["mean"] - 2 * acc["se"] > 0.8,
                                                                   acc["mean"] + 2 * acc["se"] < 0.8)})
    gaps = [r["bookkeeping_max_abs_gap"] for r in runs.values()]
    claims.append({"claim": "bits-back bookkeeping: sum_t KL_t + reconstruction equals the reported bound exactly",
                   "ours": f"max |difference| over the test images of all runs: {max(gaps):.3g} nats; "
                           "tests/test_convdraw.py checks it against the trainer's objective and validation",
                   "paper": "by construction", "holds": bool(gaps) and max(gaps) == 0.0})
    if t8 is not None:
        b = t8[f"iwae_{k}"]
        claims.append({"claim": "binarised MNIST NLL bound near the paper's (T = 8, within 3 nats of 81)",
                       "ours": f"-IWAE-{k} = {-b['mean']:.2f} ± {b['se']:.2f} nats ({t8['epochs']} epochs)",
                       "paper": PAPER_NLL,
                       "holds": _verdict(-b["mean"] + 2 * b["se"] <= 84, -b["mean"] - 2 * b["se"] > 84)})
    return {"budget": budget, "claims": claims}


def figures(runs: dict[str, dict[str, Any]], out: Path, folder: Path, images: int = 8) -> list[Path]:
    """``convdraw_rate_distortion.png`` (distortion and classifier accuracy against the rate, t = 0..T, every run)
    and ``convdraw_partial.png`` (the T = 8 model's partial reconstructions of ``images`` test images, t = 0..8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..train.run import load_run
    from ..viz.plots import sample_grid

    folder.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, r in sorted(runs.items(), key=lambda kv: kv[1]["T"]):
        rd = r["rate_distortion"][1:]  # t = 0 has rate 0 and the prior-mean image: off the log-free scale
        rate = [v["rate_bits"]["mean"] for v in rd]
        a1.plot(rate, [v["distortion_nats"]["mean"] for v in rd], "o-", label=f"T = {r['T']}")
        if all("accuracy" in v for v in rd):
            a2.plot(rate, [100 * v["accuracy"]["mean"] for v in rd], "o-", label=f"T = {r['T']}")
    a1.set(xlabel="rate: sum of KL_s, s <= t (bits)", ylabel="distortion: -log p(x | partial) (nats)",
           title="rate vs distortion, t = 1..T")
    a2.axhline(80, color="grey", lw=0.8, ls="--")
    a2.set(xlabel="rate (bits)", ylabel="CNN accuracy (%)", title="classifier on partial reconstructions")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    rd_path = folder / "convdraw_rate_distortion.png"
    fig.savefig(rd_path, dpi=80)
    plt.close(fig)
    paths = [rd_path]
    if "t8" in runs:
        model = load_run(out / "t8", checkpoint="last").model
        x = test_subset(images)
        with torch.no_grad():
            cols = [x] + [model.partial_reconstruction(x, t) for t in range(model.steps + 1)]
        grid = torch.stack(cols, 1).reshape(-1, x.shape[1])  # a row per image: the image, then t = 0..T
        paths.append(sample_grid(grid, (1, 28, 28), folder / "convdraw_partial.png", nrow=len(cols),
                                 title="test image, then decoded from z_1..z_t, t = 0..8 (T = 8)"))
    return paths


def report(out: Path, folder: Path, names: list[str], force: bool = False) -> dict[str, Any]:
    """``folder/convdraw.json`` (the runs' summaries, paired differences, the dashboard block) and the figures.

    Raises:
        OutputError: the existing ``convdraw.json`` holds runs not evaluated under ``out`` (they would be dropped),
            unless ``force``.
    """
    runs = {n: json.loads((out / n / "eval.json").read_text()) for n in names if (out / n / "eval.json").is_file()}
    refuse_to_drop(folder / "convdraw.json", runs, field="runs", force=force)
    for n, r in runs.items():
        r["train_seconds"] = _train_seconds(out / n)  # eval.json of the first version summed cumulative times
    diffs: dict[str, Any] = {}
    for a, b in (("t8", "t1"), ("t4", "t1"), ("t8", "t4")):
        if a in runs and b in runs:
            diffs[f"{a}_minus_{b}"] = {"elbo": _paired(runs[a], runs[b], "elbo"),
                                       "iwae": _paired(runs[a], runs[b], "iwae")}
    strip = {n: {k: v for k, v in r.items() if k != "per_image"} for n, r in runs.items()}
    res = {"paper": "Gregor et al. 2016, Towards Conceptual Compression (arXiv:1604.08772)", "runs": strip,
           "paired_differences": diffs, "paper_nll_binarised_mnist": PAPER_NLL,
           "dashboard": dashboard(runs, diffs)}
    write_output(folder / "convdraw.json", json.dumps(res, indent=1) + "\n", payload=res)
    res["figures"] = [str(p) for p in figures(runs, out, folder)]
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.convdraw", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="t1,t4,t8", help="comma-separated runs (default: t1,t4,t8)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per run (default: 5)")
    p.add_argument("--out", default="runs/convdraw", help="parent folder of the run directories")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--max-minutes", type=float, default=None, help="training budget of this call (rounds)")
    p.add_argument("--until", default=None, help="UTC time HH:MM: start no round that would end after it")
    p.add_argument("--eval", action="store_true", help="evaluate the runs (RUN/eval.json) instead of training")
    p.add_argument("--n-test", type=int, default=1000, help="test images for the ELBO, IWAE and distortion")
    p.add_argument("--iwae-k", type=int, default=100, help="importance samples of the IWAE bound (default 100)")
    p.add_argument("--n-labelled", type=int, default=10000, help="labelled MNIST test images for the classifier")
    p.add_argument("--classifier", default="runs/classifier", help="folder of the MNIST CNN's cnn.safetensors")
    p.add_argument("--classifier-script", default="benchmarks/mnist_classifier.py")
    p.add_argument("--report", default=None, help="write convdraw.json and the figures into this folder")
    p.add_argument("--force", action="store_true", help="--report: rewrite convdraw.json even if it drops runs it holds")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    names = [n for n in a.runs.split(",") if n]
    for n in names:
        config_of(n, 1, out)
    if a.report:
        res = report(out, Path(a.report), names, force=a.force)
        print(json.dumps({"dashboard": res["dashboard"], "figures": res["figures"]}))
        return 0
    if a.eval:
        clf = load_classifier(a.classifier_script, a.classifier)
        summary = {}
        for n in names:
            summary[n] = eval_run(n, out, a.n_test, a.iwae_k, a.n_labelled, clf)
            print(n, json.dumps(summary[n]), flush=True)
        print(json.dumps({"evaluated": {n: {"elbo": v["elbo"], f"iwae_{a.iwae_k}": v[f"iwae_{a.iwae_k}"]}
                                        for n, v in summary.items()}}))
        return 0
    budget = None if a.max_minutes is None else 60 * a.max_minutes
    if a.until:
        now = datetime.datetime.now(datetime.timezone.utc)
        hh, mm = (int(v) for v in a.until.split(":"))
        left = (now.replace(hour=hh, minute=mm, second=0, microsecond=0) - now).total_seconds() % 86400
        budget = left if budget is None else min(budget, left)
    res = train(names, a.epochs, out, budget)
    print(json.dumps({"trained": res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
