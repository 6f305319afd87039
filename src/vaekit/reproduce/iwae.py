"""Reproduce Burda, Grosse & Salakhutdinov (2015), *Importance Weighted Autoencoders*, arXiv:1509.00519, Table 1.

What it runs (PAPERS.md section 2): MNIST with the last 400 training images held out, dynamically
binarised every time a batch is drawn; batch 20; Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-4);
the paper's schedule "for i = 0..7: 3^i passes at lr 1e-3 * 10^(-i/7)", truncated to the first
``epochs`` passes; the decoder's output bias initialised to the logit of the mean training pixel;
1 stochastic layer (784-200-200-50, tanh, ``sigma = exp(a/2)``) or 2 (x-200-200-z1(100)-100-100-z2(50)).
Models: "VAE" = the ``elbo`` objective with k samples averaged, "IWAE" = the ``iwae`` objective.

Evaluation: test NLL = ``-L_{eval_k}`` (IWAE bound, Burda et al. use k = 5000) on the first
``eval_n`` test images (all 10,000 by default), with its standard error over images; active units
= latent units whose posterior-mean variance over 500 training images exceeds 0.01 (per layer for
stacked models).

This module carries its own small training loop (Adam + schedule + dynamic binarisation +
safetensors/JSON checkpoints every epoch, resumable) built only from library parts, so the
reproduction does not depend on the general trainer's configuration schema.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..evaluation import active_units, evaluate_bound, iwae_bound
from ..models import build_model
from ..objectives import build_objective

#: Table 1 of Burda et al. (2015): test NLL (L_5000, nats) on dynamically binarised MNIST, and active units.
PAPER_NLL: dict[tuple[int, str, int], float] = {
    (1, "vae", 1): 86.76, (1, "vae", 5): 86.47, (1, "vae", 50): 86.35,
    (1, "iwae", 1): 86.76, (1, "iwae", 5): 85.54, (1, "iwae", 50): 84.78,
    (2, "vae", 1): 85.33, (2, "vae", 5): 85.01, (2, "vae", 50): 84.78,
    (2, "iwae", 1): 85.33, (2, "iwae", 5): 83.89, (2, "iwae", 50): 82.90,
}
#: Only these entries are checked against PAPERS.md in the brief; the others are from memory.
PAPER_NLL_CHECKED = {(1, "vae", 1), (1, "iwae", 5), (1, "iwae", 50), (2, "vae", 1), (2, "iwae", 5), (2, "iwae", 50)}

MNIST_FILES = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")


def iwae_passes(max_stage: int = 7, base_lr: float = 1e-3) -> list[tuple[float, int]]:
    r"""The schedule of Burda et al. (2015, Sec. 5): stage ``i = 0..max_stage`` trains ``3^i`` passes at
    ``lr = base_lr * 10^{-i/7}``. Returns ``[(lr, passes), ...]`` (``max_stage = 7``: 3280 passes)."""
    if max_stage < 0:
        raise ValueError(f"max_stage must be >= 0, got {max_stage}")
    return [(base_lr * 10 ** (-i / 7), 3 ** i) for i in range(max_stage + 1)]


def epoch_lrs(epochs: int, max_stage: int = 7, base_lr: float = 1e-3) -> list[float]:
    """Learning rate of each of the first ``epochs`` passes of :func:`iwae_passes` (the truncated schedule)."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    lrs = [lr for lr, n in iwae_passes(max_stage, base_lr) for _ in range(n)]
    if epochs > len(lrs):
        raise ValueError(f"the schedule with max_stage={max_stage} has only {len(lrs)} passes, asked for {epochs}")
    return lrs[:epochs]


def _read_idx_images(path: Path) -> Tensor:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">i4")
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX image file (magic {magic})")
    arr = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows * cols)
    return torch.from_numpy(arr.astype(np.float32) / 255.0)


def load_mnist(val_size: int = 400) -> tuple[Tensor, Tensor]:
    """MNIST grey levels in [0, 1] as ``(train, test)``, ``(N, 784)`` float32, the last ``val_size`` training
    images removed. Uses ``vaekit.data.load_dataset("mnist")`` when registered, else reads the IDX files
    from ``$VAEKIT_DATA_DIR/mnist`` or ``../shared/data/mnist``."""
    try:
        from ..data import load_dataset

        ds = load_dataset("mnist", val_size=val_size)
        return ds.train.x, ds.test.x
    except Exception as err:  # loader not registered yet: read the raw files
        fallback_reason = err
    dirs = []
    if os.environ.get("VAEKIT_DATA_DIR"):
        dirs.append(Path(os.environ["VAEKIT_DATA_DIR"]) / "mnist")
    repo = Path(__file__).resolve().parents[3]
    dirs += [Path.cwd() / "../shared/data/mnist", repo / "../shared/data/mnist"]
    for d in dirs:
        if all((d / f).is_file() for f in MNIST_FILES):
            train = _read_idx_images(d / MNIST_FILES[0])
            test = _read_idx_images(d / MNIST_FILES[1])
            return train[: train.shape[0] - val_size].contiguous(), test
    raise FileNotFoundError(f"MNIST not found in {[str(d) for d in dirs]} (and load_dataset failed: {fallback_reason})")


def model_spec(layers: int) -> dict[str, Any]:
    """The model config of Burda et al. for 1 or 2 stochastic layers (tanh MLPs, ``sigma = exp(a/2)``)."""
    if layers == 1:
        return {"type": "vae", "encoder": {"type": "mlp", "hidden": [200, 200], "activation": "tanh"},
                "latent": {"type": "gaussian", "dim": 50, "scale": "exp", "min_scale": 0.0},
                "decoder": {"type": "mlp", "hidden": [200, 200], "activation": "tanh"},
                "likelihood": {"type": "bernoulli"}}
    if layers == 2:
        return {"type": "hvae", "layers": [
            {"encoder": {"type": "mlp", "hidden": [200, 200], "activation": "tanh"},
             "latent": {"type": "gaussian", "dim": 100, "scale": "exp", "min_scale": 0.0},
             "decoder": {"type": "mlp", "hidden": [200, 200], "activation": "tanh"}},
            {"encoder": {"type": "mlp", "hidden": [100, 100], "activation": "tanh"},
             "latent": {"type": "gaussian", "dim": 50, "scale": "exp", "min_scale": 0.0},
             "decoder": {"type": "mlp", "hidden": [100, 100], "activation": "tanh"}}],
            "likelihood": {"type": "bernoulli"}}
    raise ValueError(f"layers must be 1 or 2, got {layers}")


def output_layer(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of the network that produces the likelihood's parameters."""
    net = model.decoder if hasattr(model, "decoder") else model.decoders[0]
    lin = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not lin:
        raise TypeError(f"no Linear output layer in {type(net).__name__}")
    return lin[-1]


@torch.no_grad()
def init_output_bias(model: nn.Module, train_x: Tensor, eps: float = 1e-3) -> None:
    r"""Set the decoder's output bias to ``logit(mean training pixel)``, clipped to ``[eps, 1-eps]``
    (Burda et al.'s code; it makes the initial model predict the average image)."""
    p = train_x.mean(0).clamp(eps, 1 - eps)
    layer = output_layer(model)
    if layer.bias is None or layer.bias.shape != p.shape:
        raise ValueError(f"output bias has shape {None if layer.bias is None else tuple(layer.bias.shape)}, "
                         f"expected {tuple(p.shape)}")
    layer.bias.copy_(torch.log(p) - torch.log1p(-p))


@dataclass
class RunSpec:
    """One training run of the reproduction set."""

    layers: int
    method: str  # "vae" or "iwae"
    k: int

    @property
    def name(self) -> str:
        return f"l{self.layers}_{self.method}_k{self.k}"

    def objective(self) -> dict[str, Any]:
        return {"type": "elbo", "k": self.k} if self.method == "vae" else {"type": "iwae", "k": self.k}


def _with(path: Path, suffix: str) -> Path:
    """``path`` + ``suffix`` (not ``with_suffix``: snapshot names such as ``run.e5`` contain dots)."""
    return Path(str(path) + suffix)


def _save(path: Path, model: nn.Module, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """Checkpoint as ``path.safetensors`` (model + Adam moments) and ``path.json`` (everything else)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).contiguous()
    tmp = _with(path, ".safetensors.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, _with(path, ".safetensors"))
    tmpj = _with(path, ".json.tmp")
    tmpj.write_text(json.dumps(meta, indent=1))
    os.replace(tmpj, _with(path, ".json"))


def _load(path: Path, model: nn.Module, opt: torch.optim.Optimizer | None) -> dict[str, Any]:
    from safetensors.torch import load_file

    tensors = load_file(str(_with(path, ".safetensors")))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if opt is not None:
        sd = opt.state_dict()
        state: dict[int, dict[str, Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, i, name = k.split(".", 2)
                state.setdefault(int(i), {})[name] = v
        sd["state"] = state
        opt.load_state_dict(sd)
    return json.loads(_with(path, ".json").read_text())


def train_run(run: RunSpec, train_x: Tensor, out_dir: Path, epochs: int, budget_s: float | None = None,
              seed: int = 0, batch_size: int = 20, log: Any = print) -> dict[str, Any]:
    """Train one run for ``epochs`` passes of the truncated schedule (or until ``budget_s`` seconds),
    checkpointing after every epoch to ``out_dir/run.name.{safetensors,json}``; resumes from it if present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / run.name
    torch.manual_seed(seed)
    model = build_model(model_spec(run.layers), data_dim=train_x.shape[1])
    init_output_bias(model, train_x)
    objective = build_objective(run.objective())
    lrs = epoch_lrs(epochs)
    opt = torch.optim.Adam(model.parameters(), lr=lrs[0], betas=(0.9, 0.999), eps=1e-4)
    meta: dict[str, Any] = {"run": run.name, "layers": run.layers, "method": run.method, "k": run.k,
                            "objective": run.objective(), "model": model_spec(run.layers), "seed": seed,
                            "batch_size": batch_size, "epochs_done": 0, "train_seconds": 0.0, "history": []}
    if _with(ckpt, ".json").is_file():
        meta = _load(ckpt, model, opt)
        log(f"[{run.name}] resumed at epoch {meta['epochs_done']}")
    gen = torch.Generator().manual_seed(seed + 1000 * meta["epochs_done"] + 1)
    t_start = time.perf_counter()
    n = train_x.shape[0]
    model.train()
    while meta["epochs_done"] < epochs:
        if budget_s is not None and time.perf_counter() - t_start >= budget_s:
            log(f"[{run.name}] budget reached after {meta['epochs_done']} epochs")
            break
        lr = lrs[meta["epochs_done"]]
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        nb = 0
        order = torch.randperm(n, generator=gen)
        for s in range(0, n - batch_size + 1, batch_size):
            x = torch.bernoulli(train_x[order[s:s + batch_size]], generator=gen)
            loss, metrics = objective(model, x, meta["epochs_done"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            nb += 1
            if nb % 50 == 0:  # reading metrics syncs; do it rarely
                for key, v in metrics.items():
                    sums[key] = sums.get(key, 0.0) + float(v)
            if budget_s is not None and time.perf_counter() - t_start >= budget_s:
                break
        else:
            dt = time.perf_counter() - t0
            meta["epochs_done"] += 1
            meta["train_seconds"] += dt
            rec = {"epoch": meta["epochs_done"], "lr": lr, "seconds": round(dt, 2),
                   **{k: v / max(1, nb // 50) for k, v in sums.items()}}
            meta["history"].append(rec)
            _save(ckpt, model, opt, meta)
            log(f"[{run.name}] " + json.dumps(rec))
            continue
        log(f"[{run.name}] budget reached inside epoch {meta['epochs_done'] + 1}; that partial epoch is discarded")
        break
    if meta["epochs_done"] > 0:
        _load(ckpt, model, None)  # evaluate the last complete epoch, not a partial one
    return {"model": model, "meta": meta}


@torch.no_grad()
def evaluate_run(model: nn.Module, train_x: Tensor, test_x: Tensor, eval_k: int, eval_n: int | None,
                 seed: int = 0, batch_size: int = 100) -> dict[str, Any]:
    """Test NLL ``-L_{eval_k}`` on dynamically binarised test images (one fixed binarisation, seed
    ``seed``) and active units over the first 500 binarised training images."""
    g = torch.Generator().manual_seed(seed + 12345)
    test = test_x if eval_n is None else test_x[:eval_n]
    test_b = torch.bernoulli(test, generator=g)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    res = evaluate_bound(iwae_bound, model, test_b, batch_size=batch_size, k=eval_k)
    units_x = torch.bernoulli(train_x[:500], generator=g)
    model.eval()
    if hasattr(model, "encode_layers"):
        au = [int((m.double().var(0) > 1e-2).sum()) for m in model.encode_layers(units_x)]
    else:
        au = [active_units(model, units_x)]
    model.train()
    return {"test_nll": -res.mean, "test_nll_se": res.stderr, "eval_k": eval_k, "eval_n": res.n,
            "active_units": au, "eval_seconds": round(time.perf_counter() - t0, 1)}


def evaluate_checkpoint(path: str | Path, eval_k: int = 5000, eval_n: int | None = None, seed: int = 0,
                        threads: int | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint written by :func:`train_run` (``path`` without suffix, or ending in
    ``.json``/``.safetensors``): test NLL by ``-L_{eval_k}`` and active units, as :func:`evaluate_run`."""
    if threads is not None:
        torch.set_num_threads(threads)
    path = Path(path)
    for suffix in (".json", ".safetensors"):
        if str(path).endswith(suffix):
            path = Path(str(path)[: -len(suffix)])
    meta = json.loads(_with(path, ".json").read_text())
    train_x, test_x = load_mnist(400)
    model = build_model(meta["model"], data_dim=train_x.shape[1])
    _load(path, model, None)
    row = {"run": meta["run"], "layers": meta["layers"], "method": meta["method"], "k": meta["k"],
           "epochs_done": meta["epochs_done"], "train_seconds": meta["train_seconds"], "checkpoint": str(path)}
    row.update(evaluate_run(model, train_x, test_x, eval_k, eval_n, seed))
    return row


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Our results next to Burda et al.'s Table 1."""
    lines = ["| layers | method | k | epochs | test NLL (ours) | s.e. | eval k / n | active units | paper NLL (3280 passes) | train time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        key = (r["layers"], r["method"], r["k"])
        paper = PAPER_NLL.get(key)
        ptxt = "" if paper is None else (f"{paper:.2f}" + ("" if key in PAPER_NLL_CHECKED else " (unchecked)"))
        au = "+".join(str(a) for a in r.get("active_units", []))
        nll = f"{r['test_nll']:.2f}" if "test_nll" in r else "n/a"
        se = f"{r['test_nll_se']:.2f}" if "test_nll_se" in r else ""
        lines.append(f"| {r['layers']} | {r['method'].upper()} | {r['k']} | {r['epochs_done']} | {nll} | {se} | "
                     f"{r.get('eval_k', '')} / {r.get('eval_n', '')} | {au} | {ptxt} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def reproduce_iwae(layers: Sequence[int] = (1,), ks: Sequence[int] = (1, 50), methods: Sequence[str] = ("vae", "iwae"),
                   epochs: int = 20, budget_s: float | None = None, out: str | Path = "runs/reproduce_iwae",
                   eval_k: int = 5000, eval_n: int | None = None, seed: int = 0, threads: int | None = None,
                   log: Any = print) -> dict[str, Any]:
    """Train and evaluate the selected set; write ``table.md`` and ``results.json`` under ``out``.

    ``budget_s`` is split evenly over the runs (each stops at its share or at ``epochs``). VAE and IWAE with
    ``k = 1`` are the same objective, so IWAE k=1 is not trained twice when VAE k=1 is in the set.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    for m in methods:
        if m not in ("vae", "iwae"):
            raise ValueError(f"method must be 'vae' or 'iwae', got {m!r}")
    runs = [RunSpec(l, m, k) for l in layers for k in ks for m in methods
            if not (m == "iwae" and k == 1 and "vae" in methods)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_x, test_x = load_mnist(400)
    share = None if budget_s is None else budget_s / len(runs)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for run in runs:
        res = train_run(run, train_x, out, epochs, share, seed, log=log)
        meta = res["meta"]
        row = {"run": run.name, "layers": run.layers, "method": run.method, "k": run.k,
               "epochs_done": meta["epochs_done"], "train_seconds": meta["train_seconds"]}
        if meta["epochs_done"] > 0:
            row.update(evaluate_run(res["model"], train_x, test_x, eval_k, eval_n, seed))
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
    p.add_argument("--k", type=str, default="1,50", help="comma list of sample counts")
    p.add_argument("--methods", type=str, default="vae,iwae", help="comma list of vae,iwae")
    p.add_argument("--out", type=str, default="runs/reproduce_iwae", help="output folder (checkpoints, table, JSON)")
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
