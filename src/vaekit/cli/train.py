"""``vaekit train --config FILE [dotted.key=value ...] [--resume RUN_DIR] [--data-dir D] [--out DIR] [--device D]``.

Trains, then (rank 0) evaluates the best-on-validation checkpoint, writes plots into
``RUN_DIR/plots`` and ``RUN_DIR/eval.json``, and prints the estimates (``eval.estimators``,
e.g. the test ELBO and IWAE bound) and the NLL they give; see :func:`vaekit.pipeline.train_run`.
Under ``torchrun`` every rank trains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, RunConfig, apply_overrides, from_dict, load_config, to_dict
from ..train import check_config


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
    """The config from ``--config`` or the resumed run's ``config.json``, with overrides and flags applied,
    checked (:func:`vaekit.train.check_config`); raises ConfigError naming a bad key."""
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
    cfg = from_dict(raw)
    check_config(cfg)  # the objective and schedule specs, before any data are loaded
    return cfg, run_dir


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit train`` (:func:`vaekit.pipeline.train_run`); returns the exit status."""
    from ..pipeline import train_run

    cfg, run_dir = resolve_config(args)

    def show(ev: Any) -> None:  # before the report is written, so that a failed write cannot hide it
        print(ev.summary(), flush=True)

    report = train_run(cfg, run_dir=run_dir, resume=run_dir is not None, evaluate=not args.no_final_eval,
                       threads=args.threads, show=show)
    result = report.fit
    if result.is_main:
        print(f"run directory: {result.run_dir}")
        if result.state.best_val is not None:
            print(f"best checkpoint: epoch {result.state.best_epoch}, selected by validation {result.state.select_by} "
                  f"{result.state.best_val:.3f} (validation ELBO {result.state.best_val_elbo:.3f} nats)")
        if result.state.skipped:
            print(f"skipped {result.state.skipped} batches with a non-finite loss or gradient (train.nonfinite=skip); "
                  f"{result.state.step} optimiser steps taken")
    if report.evaluation is not None:
        print(f"wrote {report.evaluation.path}")
        print("plots: " + ", ".join(p.name for p in report.evaluation.plots))
    return 0
