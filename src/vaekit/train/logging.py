"""Run logging: one JSON record per line in ``metrics.jsonl``, mirrored to TensorBoard when installed."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "read_metrics"]


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
        if self.path.exists():
            records, torn = _parse(self.path)
            keep = [r for r in records if purge_step is None or r.get("step", 0) <= purge_step]
            if torn or len(keep) < len(records):
                # rewritten whole and atomically: a crash here must not cost the records before it
                from .checkpoint import atomic_write_bytes

                atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in keep).encode())
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


def _parse(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The records of a ``metrics.jsonl``, and whether its last line was torn (dropped, with a warning, or kept
    when only its newline is missing): the file then needs rewriting before anything is appended.

    A process killed while appending leaves a last line without its newline or cut inside the JSON; that
    record is lost anyway, and the lines before it are whole. A bad line anywhere else is corruption.

    Raises:
        ValueError: a line other than the last is not a JSON object, naming the file and the line.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    ended = lines[-1] == ""  # the file ends with a newline: its last line was written whole
    if ended:
        lines.pop()
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(lines):
                warnings.warn(f"{path}: dropped a torn last line {i} ({line[:40]!r}...): the run was stopped while "
                              "writing it", stacklevel=3)
                return out, True
            raise ValueError(f"{path}: line {i} is not a JSON record ({e}); the file is corrupted") from None
        out.append(rec)
    # a whole record whose newline was not written yet is kept; the rewrite adds the newline
    return out, not ended and bool(text)


def read_metrics(run_dir: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """All records of ``RUN_DIR/metrics.jsonl`` (optionally only one split); a torn last line is dropped with a
    warning, any other bad line raises ``ValueError`` naming the file and the line."""
    records, _ = _parse(Path(run_dir) / "metrics.jsonl")
    return [r for r in records if split is None or r.get("split") == split]
