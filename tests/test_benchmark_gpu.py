"""``benchmarks/gpu.py`` runs on the CPU (no GPU is lent to CI): its tiny setting, marked as CPU in its JSON.

The figures of a CPU smoke run mean nothing; what is checked is that the script runs end to end, prints one
JSON object on its last line and writes the same object to ``--out``, interleaves every system in every round,
and that its summary figures are what its raw block times and settings say (the per-round ratios, the
images/s, the extrapolation to 10,000 test images).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"


def _check(res: dict, systems: list[str]) -> None:
    assert res["device"] == "cpu" and res["setting"] == "cpu-smoke" and res["gpu"] is None
    assert "CPU smoke setting" in res["note"] and "not GPU figures" in res["note"]
    tr = res["training"]
    raw = tr["raw_block_s"]
    assert sorted(raw) == sorted(systems)
    assert all(len(v) == tr["rounds"] and min(v) > 0 for v in raw.values())
    assert all(sorted(order) == sorted(systems) for order in tr["orders"])  # every system in every round
    assert len({tuple(o) for o in tr["orders"]}) == min(len(systems), tr["rounds"])  # the order rotates
    for name in systems:
        assert tr[f"{name}_images_per_s"] == pytest.approx(100 / statistics.median(
            [s / tr["block_steps"] for s in raw[name]]))
        if name != "eager":
            r = tr[f"eager_over_{name}"]
            assert r["per_round"] == pytest.approx([a / b for a, b in zip(raw["eager"], raw[name])])
            assert r["median"] == pytest.approx(statistics.median(r["per_round"]))
    ev = res["evaluation"]
    for key in ("iwae", "ais"):
        e = ev[key]
        assert e["seconds"] > 0 and e["seconds_all_test_images"] == pytest.approx(e["seconds"] * 10_000 / e["images"])
    assert ev["iwae"]["k"] == 50 and ev["ais"]["T"] == 5 and ev["ais"]["chains"] == 4
    assert math.isfinite(ev["iwae"]["mean_log_px_bound"]) and ev["iwae"]["mean_log_px_bound"] < 0
    assert 0 <= ev["ais"]["acceptance"] <= 1 and math.isfinite(ev["ais"]["mean_log_px"])


def test_the_cpu_smoke_setting_runs_and_reports_consistent_figures(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last == json.loads(out.read_text())
    assert last["train_compile"] == "off"  # inductor's C++ build would take minutes on the CPU
    _check(last, ["eager", "vaekit"])


@pytest.mark.usefixtures("one_thread")
def test_the_compiled_system_goes_through_the_trainers_compile_option(tmp_path, monkeypatch, capsys,
                                                                     aot_eager_compile):
    """In-process with the ``aot_eager`` backend (traced as inductor traces, run eagerly): the third system is
    vaekit's step through ``vaekit.train.compiled_objective``, the trainer's ``train.compile`` path."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import gpu

    res = gpu.main(["--quick", "--threads", "1", "--compile", "reduce-overhead", "--out", str(tmp_path / "g.json")])
    assert aot_eager_compile == ["reduce-overhead"]
    assert res["train_compile"] == "reduce-overhead"
    _check(res, ["eager", "vaekit", "vaekit_compiled"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads((tmp_path / "g.json").read_text())
