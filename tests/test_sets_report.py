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


def test_purity_and_mean_r2_against_hand_values():
    import numpy as np

    from vaekit.reproduce.sets import _mean_r2, _purity

    fam = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    # clusters {0,0,0,1} {1,2} {2,2} {3,3}: majorities 3 + 1 + 2 + 2 of 10
    assert _purity(np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3]), fam) == 0.8
    assert _purity(fam.copy(), fam) == 1.0
    # one cluster holding everything: its majority family (2, three sets) is all that counts; the inverse
    # (each family's majority cluster) would give 1.0
    assert _purity(np.zeros(10, int), fam) == 0.3
    g = torch.Generator().manual_seed(0)
    sets_ = torch.randn(200, 50, 1, generator=g) + 3 * torch.rand(200, 1, 1, generator=g)
    means = sets_.mean(dim=(1, 2)).double().numpy()[:, None]
    assert _mean_r2(means, sets_) > 0.999  # the mean itself explains the mean
    # noise does not; held-out R² of noise is below 0, where an in-sample R² could not be
    assert _mean_r2(torch.randn(200, 3, generator=g).numpy(), sets_) < 0.0


def test_oracle_summaries_separate_the_families_only_without_location_and_scale():
    """The generator's families are told apart by their shape: k-means on shape quantiles finds them (purity well
    above the 0.25 of chance and the ≥ 0.9 bar); a 3-D summary that keeps location and scale does far worse."""
    from vaekit.data.sets import synthetic_sets
    from vaekit.reproduce.sets import oracle_clusters

    s = synthetic_sets(400, 200, seed=5)
    got = oracle_clusters(s.x, s.family)
    assert got["shape"]["dim"] == 5 and got["loc_scale_shape"]["dim"] == 3
    assert got["shape"]["purity"] > 0.9 and got["shape"]["logreg_accuracy"] > 0.9
    assert got["loc_scale_shape"]["purity"] < 0.7
    assert got["loc_scale_shape2"]["logreg_accuracy"] > got["loc_scale_shape"]["logreg_accuracy"]


def test_residual_purity_finds_families_hidden_behind_location_and_scale():
    """Features = (set mean, set sd, a family offset far smaller than their spread): raw k-means mixes the
    families, removing what the mean and sd explain leaves the offset alone, and k-means finds them."""
    import numpy as np
    from sklearn.cluster import KMeans

    from vaekit.reproduce.sets import _purity, _residual_purity

    g = torch.Generator().manual_seed(1)
    fam = torch.arange(400) % 4
    sets_ = torch.randn(400, 100, 1, generator=g) * (0.7 + torch.rand(400, 1, 1, generator=g)) \
        + 4 * torch.rand(400, 1, 1, generator=g)
    x = sets_.squeeze(-1).double().numpy()
    m, s = x.mean(1), x.std(1)
    feats = np.c_[m, s, 0.3 * fam.numpy()]
    feats = feats / feats.std(0) * np.array([3.0, 3.0, 1.0])
    assert _purity(KMeans(4, n_init=10, random_state=0).fit_predict(feats), fam.numpy()) < 0.6
    assert _residual_purity(feats, sets_, fam.numpy()) == 1.0
    # the family offset added to a quadratic in m and s: only the quadratic terms of the design remove it
    quad = np.c_[m, s, (m - m.mean()) ** 2 + 0.05 * fam.numpy() + (s - s.mean()) ** 2]
    assert _residual_purity(quad, sets_, fam.numpy()) == 1.0
    lin = quad - np.c_[np.ones_like(m), m, s] @ np.linalg.lstsq(np.c_[np.ones_like(m), m, s], quad, rcond=None)[0]
    assert _purity(KMeans(4, n_init=10, random_state=0).fit_predict(lin), fam.numpy()) < 0.6
