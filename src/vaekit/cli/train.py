"""``vaekit train --config FILE [dotted.key=value ...] [--resume RUN_DIR] [--data-dir D] [--out DIR] [--device D]``.

Trains, then (rank 0) loads the best-on-validation checkpoint, writes plots into
``RUN_DIR/plots`` and ``RUN_DIR/eval.json``, and prints the test ELBO and IWAE NLL
(estimators from ``eval.estimators``). Under ``torchrun`` every rank trains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, RunConfig, apply_overrides, from_dict, load_config, to_dict


def add_parser(sub: Any) -> None:
    """Register ``vaekit train`` on the argparse subparsers ``sub``."""
    p = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train a model. Overrides look like train.lr=3e-4 model.latent.dim=2.")
    p.add_argument("--config", help="YAML config file (not needed with --resume)")
    p.add_argument("overrides", nargs="*", metavar="dotted.key=value", help="config overrides")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--data-dir", help="set data.data_dir")
    p.add_argument("--out", help="set out_dir (the parent of the run directory)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="set device")
    p.add_argument("--threads", type=int, help="torch intra-op threads (1 is fastest for small models on a busy CPU)")
    p.add_argument("--no-final-eval", action="store_true", help="skip the end-of-training evaluation and plots")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> tuple[RunConfig, Path | None]:
    """The config from ``--config`` or the resumed run's ``config.json``, with overrides and flags applied."""
    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume {run_dir}: no config.json there (is it a vaekit run directory?)")
        raw = json.loads(cfg_path.read_text())
        if args.config:
            raise ConfigError("give either --config or --resume, not both (overrides apply to the resumed config)")
    else:
        if not args.config:
            raise ConfigError("vaekit train needs --config FILE (or --resume RUN_DIR)")
        raw = to_dict(load_config(args.config))  # strict check of the file itself first
        run_dir = None
    raw = apply_overrides(raw, args.overrides)
    if args.data_dir is not None:
        raw.setdefault("data", {})["data_dir"] = args.data_dir
    if args.out is not None:
        raw["out_dir"] = args.out
    if args.device is not None:
        raw["device"] = args.device
    return from_dict(raw), run_dir


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit train``; returns the exit status (errors propagate to :func:`vaekit.cli.main.main`)."""
    from ..train import fit
    from ..train.ddp import init_distributed, shutdown_distributed
    from ..train.loop import resolve_device

    cfg, run_dir = resolve_config(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    try:
        result = fit(cfg, run_dir=run_dir, resume=run_dir is not None)
        info = init_distributed(resolve_device(cfg.device))
        if info.is_main:
            print(f"run directory: {result.run_dir}")
            if result.state.best_val_elbo is not None:
                print(f"best validation ELBO {result.state.best_val_elbo:.3f} at epoch {result.state.best_epoch}")
            if not args.no_final_eval:
                finish(result.run_dir, cfg)
    finally:
        shutdown_distributed()
    return 0


def finish(run_dir: Path, cfg: RunConfig) -> dict[str, Any]:
    """Evaluate the best checkpoint on ``eval.split``, write ``eval.json`` and plots, print a summary."""
    from ..train import RunLogger, load_run
    from ..train.loop import resolve_device
    from .common import eval_data, evaluate, format_table, write_eval_json, write_plots

    run = load_run(run_dir, "best", device=resolve_device(cfg.device))
    device = next(run.model.parameters()).device
    x, y, ds = eval_data(cfg, cfg.eval.split, device)
    xe = x if cfg.eval.n is None else x[:cfg.eval.n]
    res = evaluate(run.model, xe, cfg.eval.estimators, cfg.eval.seed, cfg.eval.batch_size)
    payload = {"run_dir": str(run_dir), "checkpoint": run.which, "epoch": run.meta["epoch"], "step": run.meta["step"],
               "split": cfg.eval.split, **res}
    write_eval_json(run_dir / "eval.json", payload)
    with RunLogger(run_dir, tensorboard=False) as log:
        rec: dict[str, Any] = {"step": run.meta["step"], "epoch": run.meta["epoch"], "split": cfg.eval.split,
                               "checkpoint": run.which, "time": run.meta.get("extra", {}).get("elapsed")}
        for tok, r in res["estimates"].items():
            rec[tok.replace(":", "_")] = r["mean"]
        log.log(rec)
    plots = write_plots(run_dir, run.model, x, y, ds.image_shape, seed=cfg.eval.seed)
    print(f"{cfg.eval.split} set ({xe.shape[0]} examples), {run.which} checkpoint (epoch {run.meta['epoch']}):")
    print(format_table(res["estimates"]))
    print("plots: " + ", ".join(p.name for p in plots))
    return payload
