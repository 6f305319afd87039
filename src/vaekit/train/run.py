"""Re-open a finished (or interrupted) run: its config and a model loaded from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig, load_config_json
from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint, model_record, read_checkpoint

__all__ = ["load_run", "LoadedRun"]


@dataclass
class LoadedRun:
    """A run directory opened for evaluation.

    Attributes:
        run_dir: the directory.
        config: its ``config.json`` (``config.model`` is None for a model built by hand).
        model: the model in eval mode, with the checkpoint's weights, on the requested device.
        meta: the checkpoint's metadata (``epoch``, ``step``, ``extra``, ...).
        which: the checkpoint loaded, ``"best"`` or ``"last"``.
        model_spec, data_dim, image_shape: what the checkpoint says the model is
            (see :func:`vaekit.train.checkpoint.model_record`).
    """

    run_dir: Path
    config: RunConfig
    model: nn.Module
    meta: dict[str, Any]
    which: str
    model_spec: dict[str, Any] | None = None
    data_dim: int | None = None
    image_shape: tuple[int, ...] | None = None


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu",
             fallback: bool = True, model: nn.Module | None = None) -> LoadedRun:
    """Open ``run_dir``: read ``config.json``, build the model, load checkpoint ``best`` or ``last``.

    With ``fallback``, ``best`` falls back to ``last`` when the run never saved one (no validation split, or
    no validation yet); a ``best`` that ``last`` says was saved but is missing is an error. The model is
    rebuilt from the checkpoint's ``model_spec`` and ``data_dim``/``image_shape``, so no data need
    loading; pass ``model`` to load the weights into a model you built (required for a run of a model
    built by hand, whose ``model_spec`` is null).

    Raises:
        FileNotFoundError: no such directory, or no ``config.json`` in it.
        CheckpointError: the checkpoint is missing or corrupted, does not fit ``model``, does not record
            the data size, or records no model spec and no ``model`` was passed.
        ValueError: ``checkpoint`` is not ``"best"`` or ``"last"``.
    """
    from ..models import build_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    cfg = load_config_json(run_dir / "config.json")
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    ckpt_dir = run_dir / "checkpoints"
    which = checkpoint
    if which == "best" and fallback and not checkpoint_path(ckpt_dir, "best").exists():
        last, _ = read_checkpoint(ckpt_dir, "last")
        recorded = (last.get("extra") or {}).get("best_epoch")
        if recorded is not None:
            # the run validated and saved a best checkpoint, so its absence is a loss to report, not a default
            raise CheckpointError(f"no checkpoint 'best' in {run_dir}: {checkpoint_path(ckpt_dir, 'best')} is "
                                  f"missing, but last.json records a best checkpoint from epoch {recorded} (deleted "
                                  "or lost); use the last checkpoint explicitly (--checkpoint last)")
        which = "last"
    meta, _ = read_checkpoint(ckpt_dir, which)
    rec = model_record(meta)
    if model is None:
        if rec["model_spec"] is None:
            raise CheckpointError(f"checkpoint {which!r} in {run_dir} holds a model built by hand (model_spec: null); "
                                  "build the same model and pass it: load_run(run_dir, model=model)")
        if rec["data_dim"] is None:
            raise CheckpointError(f"checkpoint {which!r} in {run_dir} does not record the data size")
        model = build_model(rec["model_spec"], data_dim=rec["data_dim"], image_shape=rec["image_shape"])
    meta = load_checkpoint(ckpt_dir, which, model, map_location="cpu")
    model.to(device).eval()
    return LoadedRun(run_dir, cfg, model, meta, which, **rec)
