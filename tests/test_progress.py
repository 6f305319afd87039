"""Progress on long work without a terminal: periodic plain lines and the cost estimate (issue 18, item 5).

A log file, ``nohup`` or CI gets whole lines (``[vaekit] DESC: n/total UNIT ...``) every
``VAEKIT_PROGRESS_EVERY`` seconds, and a long step says what it costs and how long it will take once a
pilot of a few seconds has run. The tests set the interval to 0 (a line at every update, the estimate after
the first) where they check that lines come, and drive a fake clock where they check the numbers.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaekit import progress as progress_mod
from vaekit.progress import Progress, format_seconds, progress_mode

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "vae_digits.yaml")
LINE = re.compile(r"^\[vaekit\] (?P<desc>.+?): (?P<n>\d+)/(?P<total>\d+) (?P<unit>\w+)")
pytestmark = pytest.mark.usefixtures("one_thread")


def _lines(text: str, desc: str) -> list[tuple[int, int]]:
    """``(n, total)`` of every plain progress line of ``desc`` in ``text``."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m and m["desc"] == desc:
            out.append((int(m["n"]), int(m["total"])))
    return out


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_lines_come_every_interval_and_the_estimate_extrapolates_the_pilot(monkeypatch) -> None:
    """100 units of 1 s each, lines every 30 s: the estimate after the 5 s pilot says 1m40s in all, 1m35s
    left; lines come at 30, 60 and 90 s, and a last one at the end."""
    clock = FakeClock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    out = io.StringIO()
    with Progress(100, "work", "units", mode="lines", every=30, stream=out, cost="100 units of work") as bar:
        for _ in range(100):
            clock.t += 1.0
            bar.update(1)
    text = out.getvalue()
    est = [ln for ln in text.splitlines() if "estimate" in ln]
    assert est == ["[vaekit] work: 100 units of work; estimate 1m40s in all, 1m35s left (1.0s per unit over the "
                   "first 5, the pilot)"]
    assert _lines(text, "work") == [(30, 100), (60, 100), (90, 100), (100, 100)]
    assert "~1m10s left" in text.splitlines()[1]  # at 30 of 100 units, 1 unit/s


def test_short_work_prints_nothing_and_off_prints_nothing(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    for mode, every in (("lines", 30), ("off", 0)):
        out = io.StringIO()
        with Progress(10, "quick", "units", mode=mode, every=every, stream=out, cost="tiny") as bar:
            for _ in range(10):
                clock.t += 0.1  # 1 s in all: below the interval, so no line and no estimate
                bar.update(1)
        assert out.getvalue() == "", mode


def test_no_estimate_when_the_rest_is_shorter_than_the_interval(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    out = io.StringIO()
    with Progress(12, "work", "units", mode="lines", every=30, stream=out) as bar:
        for _ in range(12):
            clock.t += 1.0  # 7 s left after the 5 s pilot: under 30 s
            bar.update(1)
    assert "estimate" not in out.getvalue()


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_auto_mode_draws_a_bar_only_on_a_terminal_outside_ci(monkeypatch) -> None:
    monkeypatch.delenv("VAEKIT_PROGRESS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert progress_mode(_Stream(True)) == "bar"
    assert progress_mode(_Stream(False)) == "lines"
    monkeypatch.setenv("CI", "true")
    assert progress_mode(_Stream(True)) == "lines"
    monkeypatch.setenv("VAEKIT_PROGRESS", "off")
    assert progress_mode(_Stream(True)) == "off"
    monkeypatch.setenv("VAEKIT_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="VAEKIT_PROGRESS: expected one of auto, bar, lines, off, got 'sometimes'"):
        progress_mode()
    monkeypatch.setenv("VAEKIT_PROGRESS_EVERY", "-1")
    with pytest.raises(ValueError, match="VAEKIT_PROGRESS_EVERY: expected seconds >= 0, got '-1'"):
        Progress(3, "x", mode="lines")


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0.072, 9.94, 75.2, 64800, 3 * 86400 + 7200, math.inf)] == \
        ["72ms", "9.9s", "1m15s", "18h00m", "3d02h", "?"]


# ----------------------------------------------------------------------------------------------- AIS


def _model():
    from vaekit.models import build_model

    torch.manual_seed(0)
    return build_model({"type": "vae", "encoder": {"type": "mlp", "hidden": [16]},
                        "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [16]},
                        "likelihood": {"type": "bernoulli"}}, data_dim=12)


def test_the_ais_hook_reports_every_transition_and_changes_nothing() -> None:
    from vaekit.evaluation import ais

    model = _model()
    x = torch.bernoulli(torch.full((3, 12), 0.3), generator=torch.Generator().manual_seed(1))
    seen: list[tuple[int, int]] = []
    a = ais(model, x, n_chains=4, T=7, leapfrog_steps=2, seed=3, progress=lambda t, T: seen.append((t, T)))
    b = ais(model, x, n_chains=4, T=7, leapfrog_steps=2, seed=3)
    assert seen == [(t, 7) for t in range(1, 8)]
    assert torch.equal(a.log_px, b.log_px) and torch.equal(a.log_weights, b.log_weights)


def test_eval_reports_the_ais_cost_and_its_transitions_without_a_terminal(monkeypatch, capsys) -> None:
    """run_estimators(progress=True): the AIS cost (examples x chains x transitions x leapfrog steps, and the
    decoder passes they make) with the estimate, then lines up to batches x T transitions, same numbers."""
    from vaekit.evaluation import run_estimators

    monkeypatch.setenv("VAEKIT_PROGRESS", "lines")
    monkeypatch.setenv("VAEKIT_PROGRESS_EVERY", "0")
    model = _model()
    x = torch.bernoulli(torch.full((5, 12), 0.3), generator=torch.Generator().manual_seed(1))
    quiet = run_estimators(model, x, "iwae:8,ais:6", seed=2, batch_size=2, ais_chains=3, ais_leapfrog=2)
    assert capsys.readouterr().err == ""  # progress is off by default in the library
    loud = run_estimators(model, x, "iwae:8,ais:6", seed=2, batch_size=2, ais_chains=3, ais_leapfrog=2,
                          progress=True, desc="check")
    err = capsys.readouterr().err
    assert loud["ais:6"]["mean"] == quiet["ais:6"]["mean"] and loud["iwae:8"]["mean"] == quiet["iwae:8"]["mean"]
    assert "[vaekit] check ais:6: 5 examples x 3 chains x 6 transitions x 2 leapfrog steps = 195 decoder " \
           "forward+backward passes, in 3 batch(es) of 2; estimate" in err
    assert "[vaekit] check iwae:8: 5 examples x 8 posterior sample(s) = 40 decoder passes" in err
    ais_lines = _lines(err, "check ais:6")
    assert [n for n, _ in ais_lines] == sorted(n for n, _ in ais_lines) and ais_lines[-1] == (18, 18)
    assert len(ais_lines) >= 18  # one per transition at interval 0 (and the last one at the end)
    assert _lines(err, "check iwae:8")[-1] == (5, 5)


def test_bdmc_counts_forward_and_reverse_transitions(monkeypatch, capsys) -> None:
    from vaekit.evaluation import run_bdmc

    monkeypatch.setenv("VAEKIT_PROGRESS", "lines")
    monkeypatch.setenv("VAEKIT_PROGRESS_EVERY", "0")
    run_bdmc(_model(), 3, [2, 5], n_chains=2, leapfrog_steps=1, progress=True)
    err = capsys.readouterr().err
    assert "forward and reverse AIS on 3 simulated examples x 2 chains x T=2,5 transitions" in err
    assert _lines(err, "bdmc")[-1] == (14, 14)


# ------------------------------------------------------------------------------- the command line


def test_train_and_eval_without_a_terminal_print_lines_and_estimates(tmp_path) -> None:
    """``vaekit train`` and ``vaekit eval`` with standard error a pipe (as under nohup or CI): training
    steps counted up to epochs x steps per epoch, the final evaluation and AIS with their costs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VAEKIT_PROGRESS_EVERY": "0"}
    env.pop("VAEKIT_PROGRESS", None)  # auto: not a terminal, so plain lines
    run = lambda *a: subprocess.run([sys.executable, "-m", "vaekit.cli.main", *a], env=env, cwd=ROOT,  # noqa: E731
                                    capture_output=True, text=True, timeout=240)
    r = run("train", "--config", CONFIG, "--out", str(tmp_path), "run_name=p", "train.epochs=2", "--device", "cpu",
            "--threads", "1", "eval.estimators=elbo,iwae:20")
    assert r.returncode == 0, r.stderr[-3000:]
    steps = _lines(r.stderr, "training")
    assert steps[-1] == (42, 42) and [n for n, _ in steps] == sorted(n for n, _ in steps) and len(steps) >= 42
    assert "[vaekit] training: 2 epochs x 21 steps of batch 64 (1297 training rows); estimate" in r.stderr
    assert _lines(r.stderr, "final eval iwae:20")[-1] == (250, 250)
    assert "\r" not in r.stderr  # no bar redraws in a log
    r = run("eval", str(tmp_path / "p"), "--estimators", "ais:3", "--n", "8", "--ais-chains", "2", "--ais-leapfrog", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[vaekit] eval ais:3: 8 examples x 2 chains x 3 transitions x 1 leapfrog steps = 64 decoder" in r.stderr
    assert _lines(r.stderr, "eval ais:3")[-1] == (3, 3)
    assert json.loads((tmp_path / "p" / "eval-2.json").read_text())["estimates"]["ais:3"]["n"] == 8


def test_reproduce_reports_each_run_and_estimates_the_rest(tmp_path, monkeypatch, capsys) -> None:
    from vaekit.reproduce import reproduce

    monkeypatch.setenv("VAEKIT_PROGRESS", "lines")
    monkeypatch.setenv("VAEKIT_PROGRESS_EVERY", "0")
    reproduce("iwae", "small", "l1_vae_k1,l1_iwae_k5", epochs=1, eval_k=4, eval_n=30, out=tmp_path,
              overrides=["data.name=digits", "data.val_size=100"], tensorboard=False, log=lambda s: None)
    err = capsys.readouterr().err
    assert "[vaekit] reproduce iwae: 2 run(s) (l1_vae_k1, l1_iwae_k5), budget small: 1 epochs per run" in err
    plan = next(line for line in err.splitlines() if "run(s) (" in line)
    # the selection's count, not the budget's default set, and not the budget's time estimate for that set
    assert plan.endswith("; 2 runs") and "about 30 min" not in plan, plan
    assert _lines(err, "reproduce iwae") == [(1, 2), (2, 2)]  # one per finished run
    assert "[vaekit] reproduce iwae: estimate" in err  # after the first run, for the second
    assert _lines(err, "[l1_iwae_k5] eval iwae:4")[-1] == (30, 30)
    assert _lines(err, "training")[-1][0] == _lines(err, "training")[-1][1]
