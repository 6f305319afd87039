"""One call for a whole training run: train a config, then evaluate and plot the best checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..train import FitResult
from .evaluate import RunEvaluation, finish_run

__all__ = ["train_run", "TrainReport"]


@dataclass
class TrainReport:
    """What :func:`train_run` produced: the :class:`~vaekit.train.FitResult` and, on rank 0 when asked
    for, the post-training :class:`RunEvaluation` (None otherwise)."""

    fit: FitResult
    evaluation: RunEvaluation | None = None


def train_run(cfg: RunConfig, run_dir: str | Path | None = None, resume: bool = False, evaluate: bool = True,
              threads: int | None = None, show: Callable[[RunEvaluation], None] | None = None) -> TrainReport:
    """Train ``cfg`` (:func:`vaekit.train.fit`), then on rank 0 evaluate and plot it (:func:`finish_run`).

    ``cfg`` is checked (:func:`vaekit.train.check_config`) before any data are loaded, and the run
    directory is created and probed before the first step, so a folder that cannot take the results
    fails before training. Under ``torchrun`` every rank trains; the process group is left once
    training ends (also on errors), before rank 0 evaluates alone.

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
    import torch

    from ..train import fit, shutdown_distributed

    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        result = fit(cfg, run_dir=run_dir, resume=resume)
    finally:
        shutdown_distributed()
    if not (evaluate and result.is_main):
        return TrainReport(result)
    ev = finish_run(result.run_dir, write=False)
    if show is not None:
        show(ev)
    return TrainReport(result, ev.write())
