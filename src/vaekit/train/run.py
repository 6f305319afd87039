"""Re-open a finished (or interrupted) run: its config and a model loaded from a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig, load_config_json
from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint, read_checkpoint

__all__ = ["load_run", "LoadedRun"]


class LoadedRun:
    """A run directory opened for evaluation: ``config``, ``model`` (eval mode), checkpoint ``meta``, ``which``."""

    def __init__(self, run_dir: Path, config: RunConfig, model: nn.Module, meta: dict[str, Any], which: str) -> None:
        self.run_dir, self.config, self.model, self.meta, self.which = run_dir, config, model, meta, which


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu",
             fallback: bool = True) -> LoadedRun:
    """Open ``run_dir``: read ``config.json``, build the model, load checkpoint ``best`` or ``last``.

    With ``fallback``, a missing ``best`` (no validation set) falls back to ``last``.
    The model is built from the data size recorded in the checkpoint, so no data need loading.
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
        which = "last"
    meta, _ = read_checkpoint(ckpt_dir, which)
    extra = meta.get("extra", {})
    if "data_dim" not in extra:
        raise CheckpointError(f"checkpoint {which!r} in {run_dir} does not record the data size")
    image_shape = tuple(extra["image_shape"]) if extra.get("image_shape") else None
    model = build_model(cfg.model, data_dim=int(extra["data_dim"]), image_shape=image_shape)
    meta = load_checkpoint(ckpt_dir, which, model, map_location="cpu")
    model.to(device).eval()
    return LoadedRun(run_dir, cfg, model, meta, which)
