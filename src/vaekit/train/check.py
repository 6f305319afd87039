"""What can be checked of a run before any data are loaded: objective, schedule, estimators, run name.

:mod:`vaekit.config` only describes a run; building the specs it names needs the layers above it
(objectives, schedules), so the early check lives here, in the trainer, and :func:`vaekit.train.fit`
runs it first.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

from ..config import RunConfig, TrainConfig
from ..registry import ConfigError, check_kwargs
from .schedules import Schedule, build_schedule

__all__ = ["check_config", "build_training"]


def build_training(train: TrainConfig) -> tuple[Callable[..., Any], Schedule]:
    """Build ``train.objective`` (:func:`vaekit.objectives.build_objective`) and ``train.lr_schedule``.

    Returns:
        ``(objective, schedule)``: ``objective(model, x, step) -> (loss, metrics)`` and
        ``schedule(epoch) -> lr multiplier``.

    Raises:
        ConfigError: naming the dotted key (``train.objective.kk: unknown key ...``,
            ``train.lr_schedule.type: unknown learning-rate schedule ...``); a value an objective's
            constructor rejects is reported under ``train.objective``.
    """
    from ..objectives import build_objective

    return _named(build_objective, train.objective, "train.objective"), \
        _named(build_schedule, train.lr_schedule, "train.lr_schedule")


def _named(build: Callable[[dict[str, Any]], Any], spec: dict[str, Any], path: str) -> Any:
    """``build(spec)``, with a constructor's ``TypeError``/``ValueError`` reported as a ConfigError under ``path``."""
    try:
        return build(spec)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None


def check_config(cfg: RunConfig) -> None:
    """Fail now, before data loading, on anything in ``cfg`` that can be checked without the data.

    Builds (and discards) the objective and the schedule (:func:`build_training`) and evaluates the
    schedule at every epoch; parses ``eval.estimators``; checks that ``run_name`` names one folder and
    that ``eval.split`` can exist. The model spec needs the data size and is checked by
    :func:`vaekit.models.build_model` once the data are loaded; what the end-of-training report needs
    of the model (its estimators and plots) is tried on the untrained model before the first step by
    :func:`vaekit.pipeline.train_run`; the run directory is created and probed by :func:`vaekit.train.fit`
    before any data are loaded.

    Raises:
        ConfigError: naming the dotted key; ``model`` when ``cfg.model`` is None (a run of a model
            built by hand, which ``fit(cfg)`` cannot rebuild).
    """
    from ..evaluation import parse_spec

    if cfg.model is None:
        raise ConfigError("model: null means a model built by hand; fit(cfg) and `vaekit train` need a model spec "
                          "such as {type: vae, encoder: ..., latent: ..., ...} (or call fit(model, data, ...))")
    _, schedule = build_training(cfg.train)
    for epoch in range(cfg.train.epochs):
        m = schedule(epoch)
        if not (isinstance(m, (int, float)) and math.isfinite(m) and m > 0):
            raise ConfigError(f"train.lr_schedule: gives the learning-rate multiplier {m!r} at epoch {epoch + 1} "
                              f"(of train.epochs={cfg.train.epochs}); it must be a finite number > 0")
    try:
        parse_spec(cfg.eval.estimators)
    except ValueError as e:
        raise ConfigError(f"eval.estimators: {e}") from None
    name = cfg.run_name
    if name is not None and (not name.strip() or name in (".", "..") or "/" in name or "\\" in name or "\0" in name):
        raise ConfigError(f"run_name: {name!r} must name one folder inside out_dir (no '/', not '.' or '..'); "
                          "use out_dir for the parent folder")
    from ..data.base import DATASETS

    loader = DATASETS.get(cfg.data.name, "data", key="name")  # ConfigError: data.name, with the names known
    # the loader's own keyword parameters are the schema of data.options (a value's type and bounds included)
    fixed = ("data_dir", "val_size", "seed")
    takes = [n for n, p in inspect.signature(loader).parameters.items()
             if n not in fixed and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if cfg.data.options and not takes:
        raise ConfigError(f"data.options.{next(iter(cfg.data.options))}: data set {cfg.data.name!r} takes no options")
    check_kwargs(loader, dict(cfg.data.options), "data.options", fixed=fixed)
    if cfg.eval.split == "val" and cfg.data.val_size == 0:
        raise ConfigError("eval.split: 'val', but data.val_size=0 holds no validation rows out; evaluate on "
                          "'test', or set data.val_size")
