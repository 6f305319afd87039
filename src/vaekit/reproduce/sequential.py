r"""Sequential VAE, T = 1 against T = 4 at equal total latent size (Zhao, Song & Ermon 2017, arXiv:1702.08658;
PAPERS.md §13; issue 17).

Two runs of :class:`~vaekit.models.SequentialVAE` on statically binarised MNIST (Larochelle's 50k/10k/10k split),
``total_latent_dim`` 32 (T = 1: one 32-d Gaussian; T = 4: four 8-d ones), MLP encoders and decoders of one hidden
layer per step, trained with the paper's per-step loss (``sequential``, ``bound: per_step``; for T = 1 it is the
ELBO). Each run trains into ``OUT/T1`` / ``OUT/T4`` with a checkpoint per epoch and resumes where it stopped. The
``best`` checkpoint (selected by the training objective on the validation split, ``train.select_by: objective``)
is measured on the test set:

* the ELBO :math:`\mathcal L_T` (nats, mean ± s.e. over the 10,000 test images) and its terms; for T = 4 the
  reconstruction after every step, :math:`\log p(x|\eta_t)`;
* the IWAE-k bound on ``--iwae-n`` test images drawn at random (seeded; the split is ordered by class), and the
  paired differences T4 − T1 of both bounds (the ELBO's over all test images);
* a sharpness proxy of samples (the paper's claim is qualitative): the mean Bernoulli entropy of the decoded
  :math:`\mathbb E\,p(x|z)`, :math:`z\sim p(z)`, in nats per image, over ``--samples`` draws (lower = sharper);
* a side-by-side grid PNG: T = 1 samples, T = 4 samples, and T = 4's outputs after steps 1-4 for a few draws.

    trainslot python -m vaekit.reproduce.sequential --minutes 40 --out runs/sequential --json \
        docs/results/sequential.json --figure docs/results/sequential_samples.png

Without ``--epochs`` the runs get as many epochs as ``--minutes`` allows: one pilot epoch of each is timed (and
kept), then both resume to the planned count. Run again, it resumes, and measures.

The last stdout line is the results JSON on one line.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import from_dict, int_list
from ..data import load_dataset
from ..evaluation import iwae_estimate
from ..train import fit, load_run, read_checkpoint
from ..train.outputs import OutputError, refuse_other_settings, write_output

TOTAL_LATENT = 32
STEPS = (1, 4)


def config(steps: int, epochs: int, out: Path, hidden: int = 200, seed: int = 0) -> Any:
    """The run config of ``T = steps`` (see the module docstring)."""
    net = {"type": "mlp", "hidden": [hidden], "activation": "tanh"}
    return from_dict({
        "data": {"name": "binarized_mnist"},
        "model": {"type": "sequential_vae", "steps": steps, "total_latent_dim": TOTAL_LATENT, "encoder": net,
                  "latent": {"type": "gaussian"}, "decoder": net, "likelihood": {"type": "bernoulli"}},
        "train": {"epochs": epochs, "batch_size": 100, "lr": 1e-3, "objective": {"type": "sequential"},
                  "eval_every": 1, "checkpoint_every": 1, "log_every": 100},
        "seed": seed, "device": "cpu", "out_dir": str(out), "run_name": f"T{steps}",
    })


def epochs_done(run_dir: Path) -> int:
    """Completed epochs of the run in ``run_dir`` (0 when there is none)."""
    if not (run_dir / "checkpoints" / "last.json").exists():
        return 0
    return int(read_checkpoint(run_dir / "checkpoints", "last")[0]["epoch"])


def train(steps: int, epochs: int, out: Path, hidden: int = 200) -> Path:
    """Train ``T = steps`` into ``out/T<steps>`` up to ``epochs`` completed epochs; resumes a run that stopped (or
    that a pilot started), leaves one that has them as it is. The learning rate is constant, so a run resumed with
    more epochs is the run that was asked for them from the start."""
    cfg = config(steps, epochs, out, hidden)
    run_dir = out / f"T{steps}"
    done = epochs_done(run_dir)
    if done >= epochs:
        return run_dir
    if done:
        fit(cfg, run_dir=run_dir, resume=True, tensorboard=False)
    else:
        fit(cfg, tensorboard=False)
    return run_dir


def plan_epochs(steps: list[int], out: Path, hidden: int, minutes: float, max_epochs: int) -> int:
    """The epochs both runs get: a pilot epoch of each (kept: the runs resume from it) is timed, and the budget
    ``minutes`` (training of all runs together) divided by their sum, at most ``max_epochs``, at least 1."""
    per_epoch = 0.0
    for t in steps:
        run_dir = train(t, 1, out, hidden)
        lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines() if s.strip()]
        val = [r for r in lines if r.get("split") == "val"]
        per_epoch += val[0]["time"]  # the first epoch's wall time, its validation included
    return max(1, min(max_epochs, int(minutes * 60 // per_epoch)))


def _mean_se(v: Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


@torch.no_grad()
def measure(run_dir: Path, x: Tensor, iwae_n: int, iwae_k: int, samples: int, seed: int = 0) -> tuple[dict[str, Any],
                                                                                                      dict[str, Tensor]]:
    """The test numbers of one run's best checkpoint, and the per-image bounds (for the paired differences)."""
    torch.manual_seed(seed)
    run = load_run(run_dir, checkpoint="best")
    model = run.model
    lls, kls = [], []
    for i in range(0, x.shape[0], 500):
        _, ll, kl = model.step_terms(x[i:i + 500], 1)
        lls.append(ll[:, 0].double())
        kls.append(kl[:, 0].double())
    ll, kl = torch.cat(lls, 1), torch.cat(kls, 1)  # (T, N)
    elbo = ll[-1] - kl.sum(0)
    # a seeded random subset: the test split is ordered by class, so its first images are not a fair sample
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:iwae_n]
    xs = x[idx]
    iw = torch.cat([iwae_estimate(model, xs[i:i + 100], iwae_k) for i in range(0, iwae_n, 100)]).double()
    p = model.sample(samples).clamp(1e-6, 1 - 1e-6).double()
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1)  # (samples,) nats per image
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines() if s.strip()]
    val = [r for r in lines if r.get("split") == "val"]
    extra = run.meta.get("extra", {})
    res: dict[str, Any] = {
        "steps": model.steps, "latent_dims": model.latent_dims, "parameters": sum(q.numel() for q in model.parameters()),
        "epochs_trained": read_checkpoint(run_dir / "checkpoints", "last")[0]["epoch"], "best_epoch": run.meta["epoch"],
        "select_by": extra.get("select_by"), "train_seconds": val[-1]["time"] if val else None,
        "val_elbo_by_epoch": [round(r["elbo"], 3) for r in val],
        "val_objective_by_epoch": [round(r["objective"], 3) for r in val if "objective" in r]}
    for name, v in (("elbo", elbo), ("log_likelihood", ll[-1]), ("kl", kl.sum(0)), ("sample_entropy", entropy)):
        res[name], res[name + "_se"] = _mean_se(v)
    res["log_likelihood_by_step"] = [round(float(v), 3) for v in ll.mean(1)]
    res["kl_by_step"] = [round(float(v), 3) for v in kl.mean(1)]
    res[f"iwae_{iwae_k}"], res[f"iwae_{iwae_k}_se"] = _mean_se(iw)
    res[f"iwae_{iwae_k}_minus_elbo"], res[f"iwae_{iwae_k}_minus_elbo_se"] = _mean_se(iw - elbo[idx])
    res["elbo_on_iwae_subset"], res["elbo_on_iwae_subset_se"] = _mean_se(elbo[idx])
    res.update({"iwae_n": iwae_n, "iwae_subset": f"random, seed {seed}", "iwae_k": iwae_k, "samples": samples, "test_n": x.shape[0]})
    return res, {"elbo": elbo, "iwae": iw}


@torch.no_grad()
def figure(runs: dict[int, Path], path: Path, n: int = 48, chain: int = 8, seed: int = 0) -> Path:
    """One PNG: ``n`` samples of T = 1 (left) and of T = 4 (right), and below them T = 4's output after each step
    for ``chain`` draws (a row per step). Decoder means of :math:`z\\sim p(z)`."""
    from PIL import Image, ImageDraw

    models = {t: load_run(d, checkpoint="best").model for t, d in runs.items()}
    side = math.isqrt(models[1].data_dim)  # square grey images (MNIST: 28)

    def tile(imgs: Tensor, cols: int) -> Image.Image:
        rows, s = math.ceil(imgs.shape[0] / cols), side + 1
        canvas = torch.ones(rows * s + 1, cols * s + 1)
        for i, im in enumerate(imgs.reshape(-1, side, side)):
            r, c = divmod(i, cols)
            canvas[1 + r * s:1 + r * s + side, 1 + c * s:1 + c * s + side] = im
        return Image.fromarray((canvas.clamp(0, 1) * 255).byte().numpy(), "L")

    torch.manual_seed(seed)
    left = tile(models[1].sample(n), 8)
    torch.manual_seed(seed)
    right = tile(models[4].sample(n), 8)
    torch.manual_seed(seed + 1)
    steps = tile(models[4].sample_steps(chain).reshape(-1, side * side), chain)
    gap, head = 12, 14
    w = left.width + gap + right.width
    img = Image.new("L", (w, head + left.height + head + steps.height), 255)
    draw = ImageDraw.Draw(img)
    draw.text((2, 1), "T = 1 (z: 32)", fill=0)
    draw.text((left.width + gap + 2, 1), "T = 4 (z: 4 x 8)", fill=0)
    img.paste(left, (0, head))
    img.paste(right, (left.width + gap, head))
    draw.text((2, head + left.height + 1), "T = 4: output after steps 1, 2, 3, 4 (a row per step)", fill=0)
    img.paste(steps, (0, 2 * head + left.height))
    img = img.resize((img.width * 2, img.height * 2), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)
    return path


def dashboard(results: dict[str, Any]) -> dict[str, Any]:
    """The checks of PAPERS.md §13 for the sequential VAE, in the form :mod:`vaekit.reproduce.dashboard` reads.

    ``holds`` is True or False only where a difference is beyond 2 s.e.; the paper gives no numbers (its claim,
    sharper samples at matched code size, is qualitative), so the sharpness check is a proxy and says so."""
    t1, t4, d = results.get("T1"), results.get("T4"), results.get("paired")
    if not (t1 and t4 and d):
        return {"budget": "not run", "claims": []}

    def verdict(m: float, se: float, sign: float) -> bool | None:
        return True if sign * m > 2 * se else False if sign * m < -2 * se else None

    k = t4["iwae_k"]
    steps = t4["log_likelihood_by_step"]
    ent_d, ent_se = t4["sample_entropy"] - t1["sample_entropy"], math.hypot(t4["sample_entropy_se"],
                                                                             t1["sample_entropy_se"])
    return {
        "budget": f"binarised MNIST, total latent 32 (T = 1: 32; T = 4: 4 x 8), MLP [{results['hidden']}] tanh per "
                  f"step, per-step loss, {t1['epochs_trained']}/{t4['epochs_trained']} epochs (T1/T4), 1 seed, "
                  f"best checkpoint by the validation objective, {t1['test_n']} test images, IWAE-{k} on "
                  f"{t1['iwae_n']} of them at random",
        "claims": [
            {"claim": "sequential VAE: every refinement step improves the reconstruction (log p(x|eta_t) rises "
                      "with t, T = 4)",
             "ours": " < ".join(f"{v:.2f}" for v in steps) + " nats",
             "paper": "a reconstruction loss at every step (design; no number)",
             "holds": all(b > a for a, b in zip(steps, steps[1:]))},
            {"claim": "sequential VAE: T = 4 samples are sharper than T = 1 at equal total latent size (proxy: "
                      "mean Bernoulli entropy of decoded samples, lower = sharper)",
             "ours": f"T4 − T1 {ent_d:+.2f} ± {ent_se:.2f} nats/image ({t4['sample_entropy']:.1f} vs "
                     f"{t1['sample_entropy']:.1f})",
             "paper": "sharper LSUN/CelebA samples (qualitative; side-by-side grid)",
             "holds": verdict(ent_d, ent_se, -1.0)},
            {"claim": "sequential VAE: T = 4 has a log-likelihood bound no worse than T = 1 (IWAE-k, paired; our "
                      "check, the paper reports no likelihoods)",
             "ours": f"T4 − T1 IWAE-{k} {d['iwae_diff']:+.2f} ± {d['iwae_diff_se']:.2f}, ELBO "
                     f"{d['elbo_diff']:+.2f} ± {d['elbo_diff_se']:.2f} nats",
             "paper": "none (not measured by the paper)",
             "holds": None if d["iwae_diff"] > -2 * d["iwae_diff_se"] and d["iwae_diff"] < 2 * d["iwae_diff_se"]
             else d["iwae_diff"] > 0},
        ]}


def _settings(results: dict[str, Any]) -> dict[str, Any]:
    """What makes a ``--json`` file one experiment: the network sizes, each model's epochs and the evaluation sizes."""
    runs = sorted(k for k in results if k[:1] == "T" and k[1:].isdigit())
    return {"hidden": results.get("hidden"), "total_latent_dim": results.get("total_latent_dim"),
            "epochs": {k: results[k].get("epochs_trained") for k in runs},
            "iwae": {k: [results[k].get("iwae_n"), results[k].get("iwae_k")] for k in runs}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.sequential", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/sequential", help="folder of the two runs (default runs/sequential)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of each run (default: as many as --minutes allows, "
                                                            "after a timed pilot epoch of each)")
    p.add_argument("--minutes", type=float, default=40.0, help="training budget of all runs together (default 40)")
    p.add_argument("--max-epochs", type=int, default=50, help="cap of the planned epochs (default 50)")
    p.add_argument("--hidden", type=int, default=200, help="hidden units per step's MLPs (default 200)")
    p.add_argument("--steps", type=int_list, default="1,4", help="which runs to train and measure (default 1,4)")
    p.add_argument("--json", default=None, help="write the results here (refused if the file holds the "
                                                "comparison at other epochs or sizes)")
    p.add_argument("--force", action="store_true", help="--json: replace a file of other settings")
    p.add_argument("--figure", default=None, help="write the side-by-side sample grid here (.png)")
    p.add_argument("--iwae-n", type=int, default=2000, help="test images for the IWAE bound (default 2000)")
    p.add_argument("--iwae-k", type=int, default=100, help="IWAE samples (default 100)")
    p.add_argument("--samples", type=int, default=1000, help="prior samples for the sharpness proxy (default 1000)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    wanted = a.steps
    runs: dict[int, Path] = {}
    epochs = a.epochs
    if epochs is None:
        epochs = plan_epochs(wanted, out, a.hidden, a.minutes, a.max_epochs)
        print(f"planned {epochs} epochs per run from the pilot epochs (budget {a.minutes:g} min)", flush=True)
    for t in wanted:
        t0 = time.perf_counter()
        runs[t] = train(t, epochs, out, a.hidden)
        print(f"T{t}: trained in {time.perf_counter() - t0:.0f} s this call ({runs[t]})", flush=True)
    x = load_dataset("binarized_mnist").test.x
    results: dict[str, Any] = {"hidden": a.hidden, "total_latent_dim": TOTAL_LATENT}
    per_image: dict[int, dict[str, Tensor]] = {}
    for t, run_dir in runs.items():
        t0 = time.perf_counter()
        results[f"T{t}"], per_image[t] = measure(run_dir, x, a.iwae_n, a.iwae_k, a.samples)
        results[f"T{t}"]["eval_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"T{t}", json.dumps(results[f"T{t}"]), flush=True)
    if 1 in per_image and 4 in per_image:
        paired = {}
        for name in ("elbo", "iwae"):
            paired[f"{name}_diff"], paired[f"{name}_diff_se"] = _mean_se(per_image[4][name] - per_image[1][name])
        results["paired"] = paired
        if a.figure:
            results["figure"] = str(figure(runs, Path(a.figure)))
    results["dashboard"] = dashboard(results)
    print(json.dumps(results))  # first: the figures reach the terminal even if the write fails
    if a.json:
        try:
            refuse_other_settings(a.json, _settings(results), _settings, a.force)
        except OutputError as e:
            p.error(f"{e}; the results are printed above")
        write_output(a.json, json.dumps(results, indent=2) + "\n", payload=results)


if __name__ == "__main__":
    main()
