"""Progress and cost estimates for long work: a tqdm bar on a terminal, a plain line every so often otherwise.

Training, the end-of-training evaluation, ``vaekit eval`` (ELBO, IWAE, AIS), BDMC and ``vaekit reproduce``
report through one :class:`Progress` each. Without a terminal (a log file, ``nohup``, CI) a bar would write
nothing useful (tqdm redraws one line with carriage returns), so the same counts come out as whole lines::

    [vaekit] training: 1200/3280 steps (37%), 14.1 steps/s, 1m25s elapsed, ~2m28s left; val_elbo=-31.20

What a long step will cost is said as it starts: its size (``cost``, e.g. AIS's examples x chains x
transitions x leapfrog steps) and a time, from a pilot: the first few seconds of the real work are timed
(nothing is computed twice) and extrapolated. The line is printed once, and only when the rest is predicted
to take longer than a plain line's interval, so short work stays quiet::

    [vaekit] eval ais:1000: 10000 examples x 16 chains x 1000 transitions x 10 leapfrog steps = 1,600,160,000
    decoder forward+backward passes, in 100 batch(es) of 100; estimate 17h52m in all, 17h52m left (643ms per
    transition over the first 8, the pilot)

Environment:

* ``VAEKIT_PROGRESS``: ``auto`` (default: a bar when standard error is a terminal and ``CI`` is unset, plain
  lines otherwise), ``bar``, ``lines`` or ``off``.
* ``VAEKIT_PROGRESS_EVERY``: seconds between plain lines (default 30; ``0``: a line at every update, and the
  estimate after the first one).

Everything goes to standard error (standard output stays for results), flushed at once. Short work prints
nothing: the first plain line comes after ``every`` seconds.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import IO, Any, Literal

__all__ = ["Progress", "progress_mode", "progress_every", "format_seconds", "MODES"]

#: what ``VAEKIT_PROGRESS`` may say
MODES = ("auto", "bar", "lines", "off")
_DEFAULT_EVERY = 30.0
#: seconds of real work timed before the estimate (at most the plain-line interval)
_PILOT_SECONDS = 5.0


def progress_mode(stream: IO[str] | None = None) -> Literal["bar", "lines", "off"]:
    """How progress is shown: ``VAEKIT_PROGRESS`` if set, else a bar on a terminal outside CI, plain lines otherwise.

    Raises:
        ValueError: ``VAEKIT_PROGRESS`` is not one of :data:`MODES`, naming the variable and its value.
    """
    mode = os.environ.get("VAEKIT_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"VAEKIT_PROGRESS: expected one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode  # type: ignore[return-value]
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        tty = False
    return "bar" if tty and not os.environ.get("CI") else "lines"


def progress_every() -> float:
    """Seconds between plain progress lines: ``VAEKIT_PROGRESS_EVERY`` (default 30).

    Raises:
        ValueError: the variable is not a number >= 0, naming it and its value.
    """
    text = os.environ.get("VAEKIT_PROGRESS_EVERY", "").strip()
    if not text:
        return _DEFAULT_EVERY
    try:
        every = float(text)
    except ValueError:
        every = math.nan
    if not every >= 0:
        raise ValueError(f"VAEKIT_PROGRESS_EVERY: expected seconds >= 0, got {text!r}")
    return every


def format_seconds(s: float) -> str:
    """``0.072`` -> ``"72ms"``, ``75.2`` -> ``"1m15s"``, ``64800`` -> ``"18h00m"``; seconds below a minute keep
    one decimal."""
    if not math.isfinite(s):
        return "?"
    if s < 1:
        return f"{1000 * s:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    return f"{h // 24}d{h % 24:02d}h"


class Progress:
    """Progress of one long step of ``total`` units: a tqdm bar, plain lines, or nothing.

    Args:
        total: units of work in all (steps, images, AIS transitions...); > 0.
        desc: what the work is, first on every line (``"training"``, ``"eval iwae:5000"``).
        unit: the unit's name, plural (``"steps"``).
        cost: what the work amounts to (``"250 examples x 16 chains x 1000 transitions x 10 leapfrog steps"``),
            printed with the time estimate.
        initial: units already done (a resumed run).
        enabled: False shows nothing at all (ranks other than 0, the pre-training check).
        mode: ``bar``, ``lines`` or ``off``; default :func:`progress_mode`.
        every: seconds between plain lines; default :func:`progress_every`.
        stream: where to write (default standard error).

    Use as a context manager, or call :meth:`close`; :meth:`update` after each piece of work.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", *, cost: str | None = None, initial: int = 0,
                 enabled: bool = True, mode: str | None = None, every: float | None = None,
                 stream: IO[str] | None = None) -> None:
        if total < 0:
            raise ValueError(f"Progress: total must be >= 0, got {total}")
        self.total, self.desc, self.unit, self.cost = int(total), desc, unit, cost
        self.n = self.start_n = int(initial)
        self.stream = stream
        self.mode = "off" if not enabled else (mode or progress_mode(stream))
        if self.mode not in ("bar", "lines", "off"):
            raise ValueError(f"Progress: mode must be 'bar', 'lines' or 'off', got {self.mode!r}")
        self.every = progress_every() if every is None else float(every)
        self.postfix: dict[str, Any] = {}
        self.t0 = self._last_line = time.perf_counter()
        self._estimated = False
        self._shown: int | None = None  #: the count the last plain line showed
        self._bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=self.n, desc=desc, unit=f" {unit}", dynamic_ncols=True,
                             file=stream if stream is not None else sys.stderr)

    # -- output ----------------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        if self.mode == "off":
            return
        out = self.stream if self.stream is not None else sys.stderr
        if self._bar is not None:
            self._bar.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    def note(self, text: str) -> None:
        """Print one line about this work (its cost before it starts): ``[vaekit] DESC: TEXT``."""
        self._write(f"[vaekit] {self.desc}: {text}")

    # -- counting --------------------------------------------------------------------------------

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the counts (``val_elbo=-31.2``), kept until replaced."""
        self.postfix.update(values)
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def rate(self) -> float:
        """Units per second over this object's lifetime (NaN before the first unit)."""
        dt = time.perf_counter() - self.t0
        done = self.n - self.start_n
        return done / dt if done > 0 and dt > 0 else math.nan

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; may print a plain line or the estimate."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        if self.mode == "off":
            return
        now = time.perf_counter()
        elapsed = now - self.t0
        if not self._estimated and self.n < self.total and elapsed >= min(_PILOT_SECONDS, self.every):
            self._estimated = True
            left = (self.total - self.n) / self.rate()
            if left >= self.every:
                done = self.n - self.start_n
                self.note((f"{self.cost}; " if self.cost else "")
                          + f"estimate {format_seconds(elapsed + left)} in all, {format_seconds(left)} left "
                          f"({format_seconds(elapsed / done)} per {self.unit.rstrip('s')} over the first {done}, "
                          "the pilot)")
        if self.mode == "lines" and now - self._last_line >= self.every:
            self._last_line = now
            self._shown = self.n
            self._write(self.line())

    def line(self) -> str:
        """The plain progress line for the counts so far."""
        elapsed = time.perf_counter() - self.t0
        r = self.rate()
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        left = (self.total - self.n) / r if r > 0 else math.nan
        text = (f"[vaekit] {self.desc}: {self.n}/{self.total} {self.unit}{pct}, {_fmt_rate(r, self.unit)}, "
                f"{format_seconds(elapsed)} elapsed")
        if self.n < self.total:
            text += f", ~{format_seconds(left)} left"
        if self.postfix:
            text += "; " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return text

    def close(self) -> None:
        """End the bar; in plain-line mode, a last line if the work took a line's interval or printed a line
        (so a log shows the end), unless the last line already showed these counts."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self._shown != self.n and \
                (self._shown is not None or time.perf_counter() - self.t0 >= self.every):
            self._write(self.line())
        self.mode = "off"

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt_rate(r: float, unit: str) -> str:
    if not r > 0:
        return f"? {unit}/s"
    if r >= 1:
        return f"{r:.1f} {unit}/s"
    return f"{1 / r:.2f} s/{unit.rstrip('s')}"
