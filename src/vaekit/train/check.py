"""What can be checked of a run before any data are loaded: its objective and learning-rate schedule.

:mod:`vaekit.config` only describes a run; building the specs it names needs the layers above it
(objectives, schedules), so the early check lives here, in the trainer, and :func:`vaekit.train.fit`
runs it first.
"""

from __future__ import annotations

from typing import Any, Callable

from ..config import RunConfig, TrainConfig
from ..registry import ConfigError
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

    Builds (and discards) the objective and the schedule (:func:`build_training`). The model spec
    needs the data size and is checked by :func:`vaekit.models.build_model` once the data are loaded.

    Raises:
        ConfigError: naming the dotted key; ``model`` when ``cfg.model`` is None (a run of a model
            built by hand, which ``fit(cfg)`` cannot rebuild).
    """
    if cfg.model is None:
        raise ConfigError("model: null means a model built by hand; fit(cfg) and `vaekit train` need a model spec "
                          "such as {type: vae, encoder: ..., latent: ..., ...} (or call fit(model, data, ...))")
    build_training(cfg.train)
