r"""Associative Compression Networks vs a VAE with the same autoregressive decoder (issue 16; PAPERS.md §15).

Runs (``python -m vaekit.reproduce.acn --runs acn,vae_made --epochs 10 --out runs/acn``), both on MNIST
(60 000 training images, dynamic binarisation; the test images binarised once with seed 0), z = 32 Gaussian
posterior, ReLU MLPs 784-500 (encoder) and 32-500-784 (decoder) feeding the ``made_bernoulli`` likelihood
(a MADE over the pixels, hidden 800, conditioned on the decoder's output), Adam 1e-3, batches of 100:

* ``acn`` — :class:`~vaekit.models.ACN`: MDN prior p(z | neighbour code) (32-512-512, 10 components), the
  code table of the training set's posterior means refreshed at the start of every epoch (so also after a
  resume: :func:`acn_batches` rebuilds it from the weights the epoch starts with), the neighbour drawn uniformly
  from the K = 5 nearest codes of the current posterior mean, the example itself excluded; KL by sampling.
* ``vae_made`` — the plain VAE (prior N(0, I), analytic KL) with the same encoder and decoder.
* ``acn_pixelcnn``, ``vae_pixelcnn`` — the same pair with the ``pixelcnn_bernoulli`` likelihood (16 channels, eight
  dilated masked blocks that see every earlier row: :mod:`vaekit.likelihoods.pixelcnn`), a decoder that can model
  x without z, under which the VAE's ELBO sheds most of the latent's information (issue 17's measurement).

``--report PATH`` writes the comparison of the first two ``--runs`` (an ACN, then a VAE) from their eval.json.

Evaluation (``RUN/eval.json``): on the test images, reconstruction ``E_q[-log p(x|z)]``, KL (ACN: to the prior
given a neighbour drawn from the *training* table, Monte Carlo; VAE: analytic) and their sum, the total cost,
each with its standard error over images; 1-nearest-neighbour test accuracy from posterior means against the
training table (scikit-learn). Daydream chains (:meth:`~vaekit.models.ACN.daydream`) as a PNG grid.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..data import load_dataset
from ..models import build_model
from ..models.acn import ACN, CodeTable, build_acn
from ..train.outputs import OutputError, refuse_other_settings, write_output
from ..train.steps import RunFolderError, fit_steps, load_weights, read_state

BATCH = 100
K = 5
RUNS = ("acn", "vae_made", "acn_pixelcnn", "vae_pixelcnn")
PIXELCNN = {"type": "pixelcnn_bernoulli", "channels": 16, "dilations": [1, 2, 4, 8, 1, 2, 4, 8]}


def spec_of(name: str, dim: int = 32, made_hidden: int = 800) -> dict[str, Any]:
    """The JSON spec of run ``name`` (what :func:`build` needs)."""
    if name not in RUNS:
        raise ValueError(f"unknown run {name!r}; choose from {list(RUNS)}")
    relu = lambda h: {"type": "mlp", "hidden": h, "activation": "relu"}  # noqa: E731
    likelihood = PIXELCNN if name.endswith("_pixelcnn") else {"type": "made_bernoulli", "hidden": [made_hidden]}
    model = {"encoder": relu([500]), "latent": {"type": "gaussian", "dim": dim}, "decoder": relu([500]),
             "likelihood": likelihood}
    if name.startswith("acn"):
        return {"kind": "acn", "model": {**model, "prior_hidden": [512, 512], "components": 10}, "k": K}
    return {"kind": "vae", "model": {"type": "vae", **model}}


def build(spec: dict[str, Any], data_dim: int) -> nn.Module:
    """The model of a spec from :func:`spec_of`."""
    if spec["kind"] == "acn":
        return build_acn(data_dim, **spec["model"])
    return build_model(spec["model"], data_dim=data_dim)


def acn_batches(model: nn.Module, x_train: Tensor, x_table: Tensor, epoch_gen: torch.Generator, k: int = K,
                batch_size: int = BATCH, tables: list | None = None) -> Iterator[tuple[Tensor, Tensor | None]]:
    r"""One epoch of ``(x, code)`` batches: ``x`` dynamically binarised, ``code`` a neighbour's posterior mean.

    The code table is rebuilt from ``model`` before the first batch (``x_table``: the fixed binarisation of the
    training images it encodes), so it is a function of the weights the epoch starts with: an interrupted run
    resumed at this epoch gets the same table as an uninterrupted one. For an ACN, each example's code is drawn
    uniformly from the ``k`` nearest rows to its current posterior mean, its own row excluded; for another model
    ``code`` is None. Every random choice comes from ``epoch_gen``. ``tables``, if given, receives the table.
    """
    table = CodeTable.build(model, x_table, k) if isinstance(model, ACN) else None
    if tables is not None:
        tables.append(table)
    for idx in torch.randperm(x_train.shape[0], generator=epoch_gen).split(batch_size):
        xb = torch.bernoulli(x_train[idx], generator=epoch_gen)
        if table is None:
            yield xb, None
            continue
        with torch.no_grad():
            query = model.encode(xb)
        yield xb, table.draw(query, exclude=idx, generator=epoch_gen)


def step_loss(model: nn.Module, batch: tuple[Tensor, Tensor | None]) -> tuple[Tensor, dict[str, Tensor]]:
    """``-ELBO`` with one posterior sample: reconstruction + KL (ACN: to p(z|code), by sampling)."""
    x, code = batch
    out = model(x, k=1, **({} if code is None else {"code": code}))
    recon = -out.log_likelihood.mean(0)
    loss = (recon + out.kl).mean()
    return loss, {"loss": loss.detach(), "recon": recon.mean().detach(), "kl": out.kl.mean().detach()}


def _data(data_dir: str | None) -> tuple[Any, Tensor, Tensor]:
    ds = load_dataset("mnist", data_dir=data_dir)
    x_table = torch.bernoulli(ds.train.x, generator=torch.Generator().manual_seed(1))
    x_test = torch.bernoulli(ds.test.x, generator=torch.Generator().manual_seed(0))
    return ds, x_table, x_test


def train_run(name: str, out: Path, epochs: int, data_dir: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Train run ``name`` into ``out/name`` for ``epochs`` epochs (resuming a partial run)."""
    spec = spec_of(name)
    ds, x_table, _ = _data(data_dir)
    torch.manual_seed(seed)
    model = build(spec, ds.train.x.shape[1])
    return fit_steps(model, lambda e, g: acn_batches(model, ds.train.x, x_table, g), step_loss, epochs=epochs,
                     run_dir=out / name, spec=spec, seed=seed)


@torch.no_grad()
def evaluate(model: nn.Module, x_table: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, k: int = 5,
             seed: int = 0) -> dict[str, Any]:
    """Test reconstruction, KL and total cost (nats, mean and s.e. over images, ``k`` posterior samples each) and
    1-NN accuracy of the test posterior means against the training table's (see the module docs)."""
    from sklearn.neighbors import KNeighborsClassifier

    model.eval()
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    table = CodeTable.build(model, x_table, K)
    recon, kl, codes = [], [], []
    for i in range(0, x_test.shape[0], 500):
        xb = x_test[i:i + 500]
        mean = model.encode(xb)
        codes.append(mean)
        cond = {"code": table.draw(mean, None, g)} if isinstance(model, ACN) else {}
        o = model(xb, k=k, **cond)
        recon.append(-o.log_likelihood.mean(0).double())
        kl.append(o.kl.double())
    recon_t, kl_t = torch.cat(recon), torch.cat(kl)
    se = lambda v: float(v.std() / math.sqrt(v.numel()))  # noqa: E731
    knn = KNeighborsClassifier(n_neighbors=1).fit(table.codes.numpy(), y_train.numpy())
    correct = torch.from_numpy(knn.predict(torch.cat(codes).numpy()) == y_test.numpy()).double()
    acc = float(correct.mean())
    return {"recon": float(recon_t.mean()), "recon_se": se(recon_t), "kl": float(kl_t.mean()), "kl_se": se(kl_t),
            "total": float((recon_t + kl_t).mean()), "total_se": se(recon_t + kl_t), "knn1_acc": acc,
            "knn1_se": math.sqrt(acc * (1 - acc) / correct.numel()), "n_test": int(x_test.shape[0]), "k": k,
            "per_image": {"recon": recon_t.tolist(), "kl": kl_t.tolist(), "correct": correct.tolist()}}


def eval_run(name: str, out: Path, data_dir: str | None = None) -> dict[str, Any]:
    """Evaluate ``out/name`` (its last epoch) and write ``out/name/eval.json``; returns the summary."""
    state = read_state(out / name)
    if state is None:
        raise FileNotFoundError(f"{out / name} holds no finished epoch; train it first")
    ds, x_table, x_test = _data(data_dir)
    model = load_weights(build(state["spec"], ds.train.x.shape[1]), out / name)
    t0 = time.perf_counter()
    res = evaluate(model, x_table, ds.train.y, x_test, ds.test.y)
    res.update(epochs=state["epoch"], train_seconds=state["elapsed"], eval_seconds=round(time.perf_counter() - t0, 1))
    write_output(out / name / "eval.json", json.dumps(res), payload=res)
    return {k: v for k, v in res.items() if k != "per_image"}


def report(acn: dict[str, Any], vae: dict[str, Any], budget: str, vae_name: str = "vae_made") -> dict[str, Any]:
    """``docs/results/acn.json``: the two runs' summaries, paired differences and the dashboard's claims (the
    issue's thresholds: VAE KL < 2 nats; ACN KL >= 8; total cost within 2 nats; 1-NN >= 5 points better)."""
    def diff(key: str) -> dict[str, float]:
        d = torch.tensor(acn["per_image"][key], dtype=torch.float64) - torch.tensor(vae["per_image"][key],
                                                                                  dtype=torch.float64)
        return {"mean": float(d.mean()), "se": float(d.std() / math.sqrt(d.numel()))}

    tot_a = torch.tensor(acn["per_image"]["recon"], dtype=torch.float64) + torch.tensor(acn["per_image"]["kl"])
    tot_v = torch.tensor(vae["per_image"]["recon"], dtype=torch.float64) + torch.tensor(vae["per_image"]["kl"])
    dt = tot_a - tot_v
    total = {"mean": float(dt.mean()), "se": float(dt.std() / math.sqrt(dt.numel()))}
    knn = diff("correct")
    side = lambda ok, bad: True if ok else False if bad else None  # noqa: E731
    claims = [
        {"claim": "the VAE with the same autoregressive decoder lets its KL collapse (< 2 nats)",
         "ours": f"VAE test KL {vae['kl']:.2f} ± {vae['kl_se']:.2f} nats", "paper": "KL near 0 with a PixelCNN decoder "
         "(from memory)", "holds": side(vae["kl"] + 2 * vae["kl_se"] < 2, vae["kl"] - 2 * vae["kl_se"] > 2)},
        {"claim": "ACN keeps an informative code (KL >= 8 nats)", "ours": f"ACN test KL {acn['kl']:.2f} ± "
         f"{acn['kl_se']:.2f} nats", "paper": "several to tens of nats (from memory)",
         "holds": side(acn["kl"] - 2 * acn["kl_se"] >= 8, acn["kl"] + 2 * acn["kl_se"] < 8)},
        {"claim": "ACN's total cost (recon + KL) within 2 nats of the VAE's", "ours": f"ACN - VAE {total['mean']:+.2f} ± "
         f"{total['se']:.2f} nats (paired)", "paper": "similar total NLL (from memory)",
         "holds": side(abs(total["mean"]) + 2 * total["se"] < 2, abs(total["mean"]) - 2 * total["se"] > 2)},
        {"claim": "1-NN test accuracy from ACN posterior means >= 5 points above the VAE's",
         "ours": f"{100 * acn['knn1_acc']:.2f} % vs {100 * vae['knn1_acc']:.2f} % ({100 * knn['mean']:+.2f} ± "
                 f"{100 * knn['se']:.2f} points, paired)", "paper": "ACN codes classify better (from memory)",
         "holds": side(knn["mean"] - 2 * knn["se"] >= 0.05, knn["mean"] + 2 * knn["se"] < 0.05)},
    ]
    strip = lambda r: {k: v for k, v in r.items() if k != "per_image"}  # noqa: E731
    return {"acn": strip(acn), vae_name: strip(vae), "acn_minus_vae": {"kl": diff("kl"), "recon": diff("recon"),
            "total": total, "knn1_acc": knn}, "dashboard": {"budget": budget, "claims": claims}}


def daydream_grid(out: Path, path: Path, chains: int = 8, steps: int = 9, seed: int = 0,
                  data_dir: str | None = None) -> Path:
    """Daydream chains of the ``acn`` run from the first ``chains`` test images: one row per chain, the test image
    first, then ``steps`` encode -> z ~ p(z|code) -> x ~ p(x|z) steps (x drawn pixel by pixel from the MADE)."""
    from ..viz.plots import sample_grid

    state = read_state(out / "acn")
    ds, _, x_test = _data(data_dir)
    model = load_weights(build(state["spec"], ds.train.x.shape[1]), out / "acn")
    torch.manual_seed(seed)
    xs = model.daydream(x_test[:chains], steps)  # (steps + 1, chains, 784)
    return sample_grid(xs.transpose(0, 1).reshape(-1, xs.shape[-1]), (1, 28, 28), path, nrow=steps + 1,
                       title=f"ACN daydreams ({state['epoch']} epochs): test image, then {steps} steps")


def _settings(rep: dict[str, Any]) -> dict[str, Any]:
    """What makes a ``--report`` file one comparison: its two runs and their epochs and test images."""
    return {name: [v.get("epochs"), v.get("n_test")] for name, v in rep.items()
            if isinstance(v, dict) and "epochs" in v}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.acn", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="acn,vae_made", help="comma-separated runs (default: acn,vae_made)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default: 10)")
    p.add_argument("--out", default="runs/acn", help="parent folder of the run directories (default: runs/acn)")
    p.add_argument("--data-dir", help="where MNIST is (default: vaekit's search path)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--eval", action="store_true", help="evaluate the runs (eval.json) instead of training them")
    p.add_argument("--daydream", help="write the ACN run's daydream grid to this PNG")
    p.add_argument("--report", help="write the comparison of the first two --runs (an ACN, then a VAE) to this JSON "
                                    "(refused if it holds the comparison of other runs or epochs)")
    p.add_argument("--force", action="store_true", help="--report: replace a file of other runs or epochs")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    names = [n for n in a.runs.split(",") if n]
    for n in names:
        try:
            spec_of(n)
        except ValueError as e:
            p.error(f"--runs: {e}")
    if a.daydream:
        print(daydream_grid(out, Path(a.daydream), data_dir=a.data_dir))
        return 0
    if a.report:
        if len(names) != 2 or not names[0].startswith("acn") or not names[1].startswith("vae"):
            p.error(f"--report compares an ACN run with a VAE run: --runs ACN,VAE, got {a.runs!r}")
        ev = [json.loads((out / n / "eval.json").read_text()) for n in names]
        budget = (f"MNIST, {ev[0]['epochs']} epochs each, 1 seed, {names[0]} vs {names[1]}, "
                  f"{ev[0]['n_test']:,} test images")
        rep = report(ev[0], ev[1], budget, vae_name=names[1])
        print(json.dumps(rep["dashboard"]))  # first: the figures reach the terminal even if the write fails
        try:  # acn.json and acn_pixelcnn.json are the same comparison with other runs and epochs
            refuse_other_settings(a.report, _settings(rep), _settings, a.force)
        except OutputError as e:
            p.error(str(e))
        write_output(a.report, json.dumps(rep, indent=1) + "\n", payload=rep)
        return 0
    for n in names:
        if a.eval:
            print(n, json.dumps(eval_run(n, out, a.data_dir)), flush=True)
        else:
            try:
                train_run(n, out, a.epochs, a.data_dir)
            except RunFolderError as e:
                p.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
