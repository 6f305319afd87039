"""Run logging: one JSON record per line in ``metrics.jsonl``, mirrored to TensorBoard when installed."""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "read_metrics", "progress_enabled"]


def progress_enabled(rank: int = 0) -> bool:
    """Show a tqdm bar only on rank 0, on a terminal, and not under CI (``CI`` env var set)."""
    if rank != 0 or os.environ.get("CI"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (math.inf if v > 0 else -math.inf)
    return v


class RunLogger:
    """Appends records ``{step, epoch, split, elbo, kl, log_likelihood, lr, time, ...}`` to ``metrics.jsonl``.

    Each record is one line, flushed at once, so a killed run keeps every record it
    wrote. TensorBoard scalars go to ``RUN_DIR/tb`` as ``<split>/<name>`` (skipped with a
    warning if ``tensorboard`` is not installed). ``purge_step`` drops records after
    that step when resuming (from the JSONL file too), so a resumed run has no duplicates.
    """

    def __init__(self, run_dir: str | Path, purge_step: int | None = None, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        if purge_step is not None and self.path.exists():
            keep = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= purge_step]
            self.path.write_text("".join(line + "\n" for line in keep))
        self._f = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra at run time
                warnings.warn("tensorboard is not installed; writing metrics.jsonl only", stacklevel=2)
            else:
                self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge_step)

    def log(self, record: dict[str, Any]) -> None:
        """Write one record (``step`` and ``split`` are required)."""
        rec = {k: _clean(v) for k, v in record.items()}
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        if self._tb is not None:
            split = rec.get("split", "train")
            for k, v in rec.items():
                if k not in ("step", "epoch", "split", "time") and isinstance(v, (int, float)) and v is not None:
                    self._tb.add_scalar(f"{split}/{k}", v, rec["step"])

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(run_dir: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """All records of ``RUN_DIR/metrics.jsonl`` (optionally only one split)."""
    path = Path(run_dir) / "metrics.jsonl"
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if split is None or rec.get("split") == split:
                out.append(rec)
    return out
