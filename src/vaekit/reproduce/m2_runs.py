r"""M2 runs trained by ``vaekit train`` (``configs/conditional/m2_mnist.yaml``), tabulated by number of labels.

For every run directory under ``RUNS_DIR`` whose config trains ``train.objective: {type: m2}`` with
``data.labels = n``: the test error of M2's classifier :math:`\arg\max_y q(y|x)` at the **last** checkpoint (nothing
selected by a validation number) on the run's test split (binarised as the run saw it), and, as the paired
baseline of Kingma et al. (2014, Table 1, "NN"), the same classifier network trained on the **same** ``n``
labelled rows alone (the subset is redrawn from the run's config: :func:`vaekit.train.data.with_labels_kept` with
the run's seed): Adam 1e-3, ``--sup-steps`` steps of batch 100 drawn with replacement, dynamic binarisation as the
run's, no early stopping. Per ``n``: errors by seed, their mean and standard deviation over seeds, and the
paired difference (baseline − M2, percentage points; positive favours M2) with its standard error over seeds.

    python -m vaekit.reproduce.m2_runs runs/m2cfg [MORE_DIRS ...] --out docs/results/m2_config.json

prints the summary as one JSON object on its last line and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..train.outputs import OutputError, refuse_to_drop, write_output
from .seed_pairs import seed_spread

__all__ = ["run_rows", "supervised_baseline", "summarise", "main"]

PAPER_M2 = {100: 11.97, 600: 4.94, 1000: 3.60, 3000: 3.92}  # Kingma et al. 2014 Table 1 (100: verified; rest from memory)
PAPER_NN = {100: 25.80, 600: 11.44, 1000: 10.7, 3000: 6.04}


def supervised_baseline(cfg: Any, steps: int = 2000, batch_size: int = 100, lr: float = 1e-3) -> float:
    """Test error (fraction) of M2's classifier network (``cfg.model.classifier``) trained on the run's labelled
    rows alone, seeded with the run's seed. Raises ``ValueError`` for a config without ``data.labels``."""
    from ..evaluation import classification_error
    from ..models import build_classifier
    from ..pipeline.data import eval_data
    from ..train.data import load_data, prepare_data, with_labels_kept

    if cfg.data.labels is None:
        raise ValueError("the run keeps every label (no data.labels): there is no labelled subset to train on")
    ds = load_data(cfg)
    data = with_labels_kept(prepare_data(cfg, torch.device("cpu"), ds), cfg.data.labels, None, cfg.seed)
    lab = data.semi.labelled
    x, y = data.train[lab], data.semi.train_y[lab]
    torch.manual_seed(cfg.seed)
    clf = build_classifier(data.dim, net=cfg.model["classifier"], n_classes=cfg.model.get("n_classes", 10))
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(steps):
        idx = torch.randint(len(lab), (batch_size,), generator=g)
        xb = torch.bernoulli(x[idx], generator=g) if data.dynamic else x[idx]
        loss = F.cross_entropy(clf.classifier_logits(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    xt, yt, _ = eval_data(cfg, "test")
    return classification_error(clf, xt, yt)["error"]


def finished_runs(runs_dir: Path) -> list[Path]:
    """The ``config.json`` of every M2 run under ``runs_dir`` (objective ``m2`` with ``data.labels``) that has a last
    checkpoint."""
    from ..config import load_config_json

    found = []
    for cfg_file in sorted(runs_dir.glob("*/config.json")):
        cfg = load_config_json(cfg_file)
        if (cfg.train.objective or {}).get("type") == "m2" and cfg.data.labels is not None \
                and (cfg_file.parent / "checkpoints" / "last.json").is_file():
            found.append(cfg_file)
    return found


def _planned_keys(runs_dirs: Sequence[Path]) -> list[str]:
    """The row keys (:func:`_row_key`) the runs would give, from their last checkpoints' JSON alone: what ``--out``
    is checked against before any evaluation or baseline training."""
    return [_row_key({"run": f.parent.name,
                      "epochs": json.loads((f.parent / "checkpoints" / "last.json").read_text())["epoch"]})
            for d in runs_dirs for f in finished_runs(d)]


def run_rows(runs_dir: Path, sup_steps: int = 2000) -> list[dict[str, Any]]:
    """One row per finished M2 run under ``runs_dir`` (``labels``, ``seed``, ``epochs``, ``m2_error``,
    ``sup_error``, ``train_seconds``); runs without a last checkpoint are skipped."""
    from ..config import load_config_json
    from ..evaluation import classification_error
    from ..pipeline.data import eval_data
    from ..train import load_run

    rows = []
    for cfg_file in finished_runs(runs_dir):
        cfg = load_config_json(cfg_file)
        run = load_run(cfg_file.parent, "last")
        xt, yt, _ = eval_data(run.config, "test")
        rows.append({"run": cfg_file.parent.name, "labels": cfg.data.labels, "seed": cfg.seed,
                     "epochs": run.meta["epoch"], "alpha": cfg.train.objective.get("alpha"),
                     "m2_error": classification_error(run.model, xt, yt)["error"],
                     "sup_error": supervised_baseline(cfg, sup_steps),
                     "train_seconds": float(run.meta.get("extra", {}).get("elapsed", float("nan")))})
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per number of labels (and epochs): M2 and baseline errors in percent by seed, mean ± sd, and the paired
    difference baseline − M2 with its s.e. over seeds."""
    out: dict[str, Any] = {}
    for key in sorted({(r["labels"], r["epochs"]) for r in rows}):
        rs = sorted((r for r in rows if (r["labels"], r["epochs"]) == key), key=lambda r: r["seed"])
        m2 = [100 * r["m2_error"] for r in rs]
        sup = [100 * r["sup_error"] for r in rs]
        out[f"l{key[0]}_e{key[1]}"] = {
            "labels": key[0], "epochs": key[1], "seeds": [r["seed"] for r in rs],
            "m2_error_pct": [round(v, 2) for v in m2], "sup_error_pct": [round(v, 2) for v in sup],
            "m2": seed_spread(m2, ""), "sup": seed_spread(sup, ""),
            "sup_minus_m2": seed_spread([s - m for s, m in zip(sup, m2)], ""),
            "paper_m2": PAPER_M2.get(key[0]), "paper_nn": PAPER_NN.get(key[0]),
            "train_seconds": [round(r["train_seconds"]) for r in rs]}
    return out


def _row_key(row: dict[str, Any]) -> str:
    """A row's name across run folders: one run resumed to more epochs is another result (m2_l100_s0 at 30 and 60)."""
    return f"{row['run']}@{row['epochs']}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.m2_runs", description=__doc__.split("\n")[0])
    p.add_argument("runs_dir", type=Path, nargs="+", help="folder(s) holding the M2 run directories")
    p.add_argument("--out", type=Path, help="write the JSON here as well (refused if that drops runs it holds)")
    p.add_argument("--force", action="store_true", help="rewrite --out even if it drops runs it holds")
    p.add_argument("--sup-steps", type=int, default=2000, help="steps of the labels-only baseline (default 2000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = p.parse_args(argv)
    for d in a.runs_dir:
        if not d.is_dir():
            p.error(f"runs directory {d} does not exist")
    if a.sup_steps < 1:
        p.error(f"--sup-steps must be >= 1, got {a.sup_steps}")
    torch.set_num_threads(a.threads)
    if a.out:  # before the evaluations and the baselines' training (minutes per run)
        try:
            refuse_to_drop(a.out, _planned_keys(a.runs_dir), names=lambda d: map(_row_key, d["rows"]), force=a.force)
        except OutputError as e:
            p.error(str(e))
    rows = [r for d in a.runs_dir for r in run_rows(d, a.sup_steps)]
    if not rows:
        p.error(f"no finished M2 run (train.objective.type m2 with data.labels) under {', '.join(map(str, a.runs_dir))}")
    res = {"what": "M2 trained by vaekit train (configs/conditional/m2_mnist.yaml): test error of q(y|x) at the last "
                   "checkpoint, and the same classifier network trained on the same labelled rows alone",
           "runs_dirs": [str(d) for d in a.runs_dir], "rows": rows, "by_labels": summarise(rows)}
    print(json.dumps(res))  # first: the figures reach the terminal even if the write fails
    if a.out:
        write_output(a.out, json.dumps(res, indent=1) + "\n", payload=res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
