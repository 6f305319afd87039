"""``vaekit.reproduce.sets.report`` keeps the results of runs it cannot see and names figures by run (issue 15)."""

from __future__ import annotations

import json

import torch

from vaekit.reproduce import sets
from vaekit.reproduce.sets import evaluate_run, report, train_run


def test_report_keeps_entries_of_absent_runs_and_names_figures_by_run(tmp_path, monkeypatch):
    torch.manual_seed(0)
    small = json.loads(json.dumps(sets.RUNS["syn_ns"]))
    small["data"].update(n_train=64, n_test=100)
    monkeypatch.setitem(sets.RUNS, "syn_ns", small)
    out, docs = tmp_path / "runs", tmp_path / "docs"
    train_run("syn_ns", out, epochs=1)
    res = evaluate_run("syn_ns", out)
    assert res["synthetic"]["n_sets"] == 100 and len(res["synthetic"]["family"]) == 100
    docs.mkdir()
    # a run evaluated elsewhere (its folder is not under out), and a stale entry of the run evaluated here
    (docs / "sets.json").write_text(json.dumps({"omni_ns": {"fewshot": {"5way1shot": {"accuracy": 0.81}}},
                                                "syn_ns": {"synthetic": {"purity": -1.0}}}))
    got = report(out, docs)
    saved = json.loads((docs / "sets.json").read_text())
    assert saved == got
    assert saved["omni_ns"] == {"fewshot": {"5way1shot": {"accuracy": 0.81}}}  # kept
    assert saved["syn_ns"]["synthetic"]["purity"] == res["synthetic"]["purity"]  # replaced by this evaluation
    assert (docs / "sets_synthetic_context.png").stat().st_size > 0
    assert not list(docs.glob("*.tmp*"))
