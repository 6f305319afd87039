"""One call for a whole training run: train a config, then evaluate and plot the best checkpoint."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..config import RunConfig
from ..train import FitResult, PreparedData
from .evaluate import RunEvaluation, finish_run

__all__ = ["train_run", "TrainReport", "check_report"]


@dataclass
class TrainReport:
    """What :func:`train_run` produced: the :class:`~vaekit.train.FitResult` and, on rank 0 when asked
    for, the post-training :class:`RunEvaluation` (None otherwise)."""

    fit: FitResult
    evaluation: RunEvaluation | None = None


def train_run(cfg: RunConfig, run_dir: str | Path | None = None, resume: bool = False, evaluate: bool = True,
              threads: int | None = None, show: Callable[[RunEvaluation], None] | None = None) -> TrainReport:
    """Train ``cfg`` (:func:`vaekit.train.fit`), then on rank 0 evaluate and plot it (:func:`finish_run`).

    ``cfg`` is checked (:func:`vaekit.train.check_config`) before any data are loaded, the run
    directory is created and probed, and the end-of-training report is tried on the untrained model
    (:func:`check_report`), all before the first step: nothing that the config decides fails after
    training. Under ``torchrun`` every rank trains; the process group is left once
    training ends (also on errors, then without waiting for the other ranks: one of them may be lost),
    before rank 0 evaluates alone.

    Args:
        cfg: the run configuration.
        run_dir: the run directory (default: a new one under ``cfg.out_dir``); required with ``resume``.
        resume: continue the run in ``run_dir`` from its ``last`` checkpoint.
        evaluate: run :func:`finish_run` after training (``eval.json``, a metrics record, plots).
        threads: torch intra-op threads for this process (None: leave as it is).
        show: called with the evaluation after it is computed and before anything of it is written
            (the command line prints it there, so a failed write cannot hide the numbers).

    Raises:
        ValueError: ``threads < 1``; and what ``fit`` and ``finish_run`` raise (a bad config key, missing
            data, data the model cannot score; :class:`~vaekit.train.OutputError` with the results in its
            ``payload`` when the report cannot be written).
    """
    from ..train import LostPeerError, fit, shutdown_distributed

    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        result = fit(cfg, run_dir=run_dir, resume=resume, before_training=check_report(cfg) if evaluate else None)
    except BaseException as e:
        # The barrier lets rank 0 finish its last write (an interrupt's checkpoint) before the group goes; but
        # after a lost peer it would wait for that peer a second time, and if it fails (a peer went since),
        # the error to report is still the first one. Every wait is bounded by train.ddp_timeout.
        try:
            shutdown_distributed(wait=not isinstance(e, LostPeerError))
        except RuntimeError:
            pass
        raise
    shutdown_distributed()
    if not (evaluate and result.is_main):
        return TrainReport(result)
    ev = finish_run(result.run_dir, write=False)
    if show is not None:
        show(ev)
    return TrainReport(result, ev.write())


def check_report(cfg: RunConfig) -> Callable[[nn.Module, PreparedData], None]:
    """A ``fit(..., before_training=...)`` check that :func:`finish_run` will work on this run.

    Before the first step it checks that ``eval.split`` exists and holds at least ``eval.n`` rows, runs
    every estimator of ``eval.estimators`` on two rows at the smallest settings (``iwae:2``, ``ais:2``
    with 2 chains: the same code paths, so a spec that cannot run on this model, such as AIS on a
    latent it has no chart for, fails now), and draws the plots into a temporary folder. The RNGs and
    the model's mode are restored; its weights are not touched (everything runs without gradients).

    Raises:
        ConfigError: naming ``eval.split``, ``eval.n``, ``eval.estimators`` or ``plots`` and the reason.
    """
    from ..config import ConfigError
    from ..evaluation import parse_spec, run_estimators
    from .plots import write_plots

    ev = cfg.eval

    def check(model: nn.Module, data: PreparedData) -> None:
        rows = {"train": data.train, "val": data.val, "test": data.test}[ev.split]
        if rows is None:
            raise ConfigError(f"eval.split: {ev.split!r}, but data set {cfg.data.name!r} has no {ev.split} split in "
                              f"this run (data.val_size={cfg.data.val_size}); evaluate on 'test' or set data.val_size")
        if ev.n is not None and ev.n > rows.shape[0]:
            raise ConfigError(f"eval.n: {ev.n}, but the {ev.split} split of {cfg.data.name!r} has "
                              f"{rows.shape[0]} rows; use at most {rows.shape[0]} or null for all")
        x = rows[:32]
        if ev.split == "train" and data.dynamic:
            x = torch.bernoulli(x, generator=torch.Generator(x.device).manual_seed(0))
        y = getattr(getattr(data.dataset, ev.split, None), "y", None)
        small = ",".join(name if name == "elbo" else f"{name}:2" for name, _ in parse_spec(ev.estimators))
        was = model.training
        try:
            with torch.random.fork_rng(devices=[x.device.index or 0] if x.device.type == "cuda" else []):
                try:
                    run_estimators(model, x[:2], small, seed=0, batch_size=2, ais_chains=2, ais_leapfrog=1,
                                   y=None if y is None else y[:2].to(x.device), conditions=data.conditions)
                except (ValueError, TypeError, NotImplementedError, RuntimeError) as e:
                    raise ConfigError(f"eval.estimators: {ev.estimators!r} cannot run on this model: {e}") from None
                with tempfile.TemporaryDirectory(prefix="vaekit-plots-") as tmp:
                    try:
                        # a few rows and samples: enough to fail early, cheap with an autoregressive decoder
                        write_plots(tmp, model, x[:4], None if y is None else y[:4], data.image_shape, seed=ev.seed,
                                    n_samples=4)
                    except (ValueError, TypeError, NotImplementedError, RuntimeError) as e:
                        raise ConfigError(f"plots: the end-of-training plots cannot be drawn for this model: {e} "
                                          "(--no-final-eval skips the evaluation and the plots)") from None
        finally:
            model.train(was)
            model.zero_grad(set_to_none=True)

    return check
