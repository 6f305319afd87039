"""The S-VAE/N-VAE seed-pair summary (vaekit.reproduce.seed_pairs) against a hand computation."""

import json
import math
import statistics

import numpy as np
import pytest

from vaekit.reproduce.seed_pairs import family_pairs, main, pair_difference, summarise


def _write(run, epoch, iwae, elbo):
    (run / "eval").mkdir(parents=True)
    d = {"checkpoint": {"epoch": epoch}, "n": len(iwae), "elbo": {"mean": float(np.mean(elbo))},
         "iwae": {"mean": float(np.mean(iwae))}, "per_image": {"iwae": list(map(float, iwae))}}
    (run / "eval" / "test_n3_k500_x.json").write_text(json.dumps(d))


def test_pair_difference_is_the_paired_mean_and_standard_error():
    r = pair_difference([1.0, 2.0, 4.0], [0.0, 0.5, 1.0])
    d = [1.0, 1.5, 3.0]
    assert r["mean"] == pytest.approx(sum(d) / 3)
    assert r["paired_se"] == pytest.approx(statistics.stdev(d) / math.sqrt(3))
    with pytest.raises(ValueError, match="equal-length"):
        pair_difference([1.0, 2.0], [1.0])


def test_summary_over_seeds_matches_a_hand_computation(tmp_path):
    rng = np.random.default_rng(0)
    diffs = []
    for suffix in ("", "_s1", "_s2"):
        g = rng.normal(-100, 5, size=50)
        v = g + rng.normal(0.7, 1.0, size=50)
        diffs.append(float(np.mean(v - g)))
        _write(tmp_path / f"gaussian_d5{suffix}", 100, g, g - 4)
        _write(tmp_path / f"vmf_d5{suffix}", 100, v, v - 4)
    _write(tmp_path / "gaussian_d2", 100, [1.0, 2.0], [0.0, 0.0])  # its vMF partner is missing: skipped
    _write(tmp_path / "gaussian_d10", 30, [1.0, 2.0], [0.0, 0.0])
    _write(tmp_path / "vmf_d10", 30, [1.0, 2.0], [0.0, 0.0])  # other epoch: skipped
    s = summarise(tmp_path, 100)
    assert set(s) == {"5"}
    row = s["5"]
    assert [x["mean"] for x in row["ll_diff_by_seed"]] == pytest.approx(diffs, abs=1e-3)
    assert row["ll_diff_seed_mean"] == pytest.approx(statistics.fmean(diffs), abs=1e-3)
    assert row["ll_diff_seed_se"] == pytest.approx(statistics.stdev(diffs) / math.sqrt(3), abs=1e-3)
    assert row["elbo_diff_by_seed"] == pytest.approx(diffs, abs=1e-3)
    assert row["paper_ll_diff"] == 1.78


def test_a_corrupt_evaluation_file_is_named(tmp_path, capsys):
    (tmp_path / "gaussian_d5" / "eval").mkdir(parents=True)
    bad = tmp_path / "gaussian_d5" / "eval" / "test_n3_k500_x.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="test_n3_k500_x.json"):
        summarise(tmp_path, 100)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope"), "--epochs", "100"])
    assert "does not exist" in capsys.readouterr().err


def _four_seeds(tmp_path, seed):
    """Seeds 0-3 of a d = 5 pair in ``every``; seeds 0-2 also in ``old``, seed 3 in ``new``; the 4-seed summary."""
    rng = np.random.default_rng(seed)
    for k, suffix in enumerate(("", "_s1", "_s2", "_s3")):
        g = rng.normal(-110, 5, size=40)
        v = g + rng.normal(0.8, 1.0, size=40)
        for root in (tmp_path / "every", tmp_path / ("new" if k == 3 else "old")):
            _write(root / f"gaussian_d5{suffix}", 100, g, g - 3)
            _write(root / f"vmf_d5{suffix}", 100, v, v - 2)
    return summarise(tmp_path / "every", 100, (5,))["5"]


def test_new_seeds_merge_with_an_earlier_summary_as_if_all_were_run_here(tmp_path):
    """Seeds 0-3 all here, against seeds 0-2 summarised earlier and seed 3 here: the same table."""
    full = _four_seeds(tmp_path, 1)
    assert full["n_seeds"] == 4 and [s["seed"] for s in full["ll_diff_by_seed"]] == [0, 1, 2, 3]
    old = summarise(tmp_path / "old", 100, (5,))
    merged = summarise(tmp_path / "new", 100, (5,), old)["5"]
    for key in ("ll_diff_seed_mean", "ll_diff_seed_sd", "ll_diff_seed_se", "nvae_ll_seed_mean", "svae_ll_seed_mean",
                "elbo_diff_by_seed", "n_seeds"):
        assert merged[key] == pytest.approx(full[key], abs=2e-3), key
    # an earlier summary without per-seed log-likelihoods (written before they were recorded) weighs its mean
    for row in old.values():
        row.pop("ll_by_seed")
    merged = summarise(tmp_path / "new", 100, (5,), old)["5"]
    assert merged["nvae_ll_seed_mean"] == pytest.approx(full["nvae_ll_seed_mean"], abs=0.01)
    assert "ll_by_seed" not in merged


def test_a_merged_summary_merges_again_when_a_seed_it_holds_is_also_here(tmp_path):
    full = _four_seeds(tmp_path, 2)
    old = summarise(tmp_path / "old", 100, (5,))
    for row in old.values():
        row.pop("ll_by_seed")  # an earlier summary without per-seed log-likelihoods
    once = {"5": summarise(tmp_path / "new", 100, (5,), old)["5"]}  # 4 seeds, no per-seed log-likelihoods
    twice = summarise(tmp_path / "new", 100, (5,), once)["5"]  # seed 3 both in it and here
    for key in ("ll_diff_seed_mean", "ll_diff_seed_se", "n_seeds"):
        assert twice[key] == pytest.approx(full[key], abs=2e-3), key
    assert twice["nvae_ll_seed_mean"] == pytest.approx(full["nvae_ll_seed_mean"], abs=0.01)


def _write_both(run, epoch, iwae, elbo):
    (run / "eval").mkdir(parents=True)
    d = {"checkpoint": {"epoch": epoch}, "n": len(iwae), "elbo": {"mean": float(np.mean(elbo))},
         "iwae": {"mean": float(np.mean(iwae))},
         "per_image": {"iwae": list(map(float, iwae)), "elbo": list(map(float, elbo))}}
    (run / "eval" / "test_n3_k500_x.json").write_text(json.dumps(d))


def test_family_pairs_compare_elbo_and_likelihood_per_seed_then_over_seeds(tmp_path):
    rng = np.random.default_rng(1)
    elbo_d, ll_d = [], []
    for suffix in ("", "_s1", "_s2"):
        ge = rng.normal(-105, 5, size=40)
        ie = ge + rng.normal(0.4, 1.0, size=40)
        gl, il = ge + 4.8, ie + 4.5
        elbo_d.append(float(np.mean(ie - ge)))
        ll_d.append(float(np.mean(il - gl)))
        _write_both(tmp_path / f"gaussian_d20{suffix}", 30, gl, ge)
        _write_both(tmp_path / f"iaf_d20{suffix}", 30, il, ie)
    _write_both(tmp_path / "mixture_d20", 30, [1.0, 2.0], [0.0, 0.0])  # no Gaussian of 2 images: not paired
    s = family_pairs(tmp_path, 30, "gaussian", "iaf", (20,))
    row = s["20"]
    assert row["n_seeds"] == 3 and row["n_images"] == [40]
    assert [r["mean"] for r in row["elbo_diff_by_seed"]] == pytest.approx(elbo_d, abs=1e-3)
    assert row["elbo_diff"]["seed_mean"] == pytest.approx(statistics.fmean(elbo_d), abs=1e-3)
    assert row["elbo_diff"]["seed_se"] == pytest.approx(statistics.stdev(elbo_d) / math.sqrt(3), abs=1e-3)
    assert row["ll_diff"]["seed_mean"] == pytest.approx(statistics.fmean(ll_d), abs=1e-3)
    # one Gaussian evaluated on other images than its partner is an error naming the sizes
    with pytest.raises(ValueError, match="40 and 2"):
        family_pairs(tmp_path, 30, "gaussian", "mixture", (20,))


def test_family_pairs_cli_writes_one_entry_per_pair(tmp_path, capsys):
    for fam in ("gaussian", "iaf"):
        _write_both(tmp_path / f"{fam}_d20", 30, [1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    out = tmp_path / "s.json"
    assert main([str(tmp_path), "--epochs", "30", "--dims", "20", "--pair", "gaussian:iaf", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["pairs"]["iaf_vs_gaussian"]["20"]["elbo_diff"] == {"seed_mean": 0.0}
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == d
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--epochs", "30", "--pair", "gaussian"])
    assert "BASE:OTHER" in capsys.readouterr().err


def test_family_pairs_merge_new_seeds_with_an_earlier_summary_as_if_all_were_run_here(tmp_path):
    rng = np.random.default_rng(2)
    for k, suffix in enumerate(("", "_s1", "_s2", "_s3", "_s4")):
        ge = rng.normal(-100, 5, size=30)
        ie = ge + rng.normal(1.0 + 0.3 * k, 1.0, size=30)
        for root in (tmp_path / "every", tmp_path / ("new" if k >= 3 else "old")):
            _write_both(root / f"gaussian_d20{suffix}", 60, ge + 5, ge)
            _write_both(root / f"iaf_d20{suffix}", 60, ie + 4.7, ie)
    _write_both(tmp_path / "new" / "gaussian_d20_s1", 60, [0.0, 1.0], [0.0, 1.0])  # no partner here: from old
    full = family_pairs(tmp_path / "every", 60, "gaussian", "iaf", (20,))["20"]
    old_summary = tmp_path / "old.json"
    assert main([str(tmp_path / "old"), "--epochs", "60", "--dims", "20", "--pair", "gaussian:iaf",
                 "--out", str(old_summary)]) == 0
    out = tmp_path / "merged.json"
    assert main([str(tmp_path / "new"), "--epochs", "60", "--dims", "20", "--pair", "gaussian:iaf",
                 "--merge", str(old_summary), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())["pairs"]["iaf_vs_gaussian"]["20"]
    assert merged["n_seeds"] == 5 and [r["seed"] for r in merged["elbo_diff_by_seed"]] == [0, 1, 2, 3, 4]
    for key in ("elbo_diff", "ll_diff"):
        assert merged[key] == pytest.approx(full[key], abs=2e-3), key
    assert merged["levels_by_seed"] == full["levels_by_seed"]
    # a pair of the earlier summary not compared here is kept as it was (the mixture runs were not retrained)
    earlier = json.loads(old_summary.read_text())
    earlier["pairs"]["mixture_vs_gaussian"] = {"20": {"n_seeds": 3, "elbo_diff": {"seed_mean": 0.23}}}
    old_summary.write_text(json.dumps(earlier))
    assert main([str(tmp_path / "new"), "--epochs", "60", "--dims", "20", "--pair", "gaussian:iaf",
                 "--merge", str(old_summary), "--out", str(out)]) == 0
    pairs = json.loads(out.read_text())["pairs"]
    assert pairs["mixture_vs_gaussian"] == earlier["pairs"]["mixture_vs_gaussian"]
    assert pairs["iaf_vs_gaussian"]["20"]["n_seeds"] == 5
    # an earlier summary of another epoch count is refused
    with pytest.raises(SystemExit):
        main([str(tmp_path / "new"), "--epochs", "30", "--dims", "20", "--pair", "gaussian:iaf",
              "--merge", str(old_summary)])


def test_out_never_drops_seeds_it_holds(tmp_path, capsys):
    """A summary rebuilt from a folder that lacks some of its seeds (run folders are not committed) used to replace
    it silently; now it is refused (exit 2, naming the seeds, the new figures printed), --merge of the same file
    keeps them, and --force replaces it."""
    rng = np.random.default_rng(5)
    for k, suffix in enumerate(("", "_s1", "_s2")):
        ge = rng.normal(-100, 5, size=20)
        for root in (tmp_path / "all", *((tmp_path / "part",) if k < 2 else ())):
            _write_both(root / f"gaussian_d20{suffix}", 60, ge + 5, ge)
            _write_both(root / f"iaf_d20{suffix}", 60, ge + 6, ge + 1)
    out = tmp_path / "s.json"
    args = ["--epochs", "60", "--dims", "20", "--pair", "gaussian:iaf", "--out", str(out)]
    assert main([str(tmp_path / "all"), *args]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "part"), *args])
    captured = capsys.readouterr()
    assert e.value.code == 2 and "(iaf_vs_gaussian/d20/s2)" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["pairs"]["iaf_vs_gaussian"]["20"]["n_seeds"] == 2
    assert json.loads(out.read_text())["pairs"]["iaf_vs_gaussian"]["20"]["n_seeds"] == 3
    assert main([str(tmp_path / "part"), *args, "--merge", str(out)]) == 0
    assert json.loads(out.read_text())["pairs"]["iaf_vs_gaussian"]["20"]["n_seeds"] == 3
    assert main([str(tmp_path / "part"), *args, "--force"]) == 0
    assert json.loads(out.read_text())["pairs"]["iaf_vs_gaussian"]["20"]["n_seeds"] == 2


def test_a_failed_write_names_the_file_and_the_figures_still_reach_the_terminal(tmp_path, capsys):
    from vaekit.train.outputs import OutputError

    for fam in ("gaussian", "iaf"):
        _write_both(tmp_path / f"{fam}_d20", 30, [1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    out = tmp_path / "blocker" / "s.json"
    with pytest.raises(OutputError, match="blocker") as e:
        main([str(tmp_path), "--epochs", "30", "--dims", "20", "--pair", "gaussian:iaf", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["pairs"]["iaf_vs_gaussian"]["20"]["n_seeds"] == 1 and e.value.payload == printed



def test_summaries_record_the_learning_rate_schedule_and_refuse_to_merge_across_schedules(tmp_path, capsys):
    decay = {"type": "exponential", "gamma": 0.9}
    for root, sched in ((tmp_path / "const", None), (tmp_path / "decay", decay)):
        for fam in ("gaussian", "iaf"):
            _write_both(root / f"{fam}_d20", 30, [1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
            if sched is not None:
                (root / f"{fam}_d20" / "config.json").write_text(json.dumps({"train": {"lr_schedule": sched}}))
    _write_both(tmp_path / "decay" / "gaussian_d2", 30, [1.0], [0.0])  # another d: not read for d = 20
    (tmp_path / "decay" / "gaussian_d2" / "config.json").write_text(json.dumps({"train": {"lr_schedule": {"type": "x"}}}))
    const, dec = tmp_path / "const.json", tmp_path / "decay.json"
    assert main([str(tmp_path / "const"), "--epochs", "30", "--dims", "20", "--pair", "gaussian:iaf", "--out", str(const)]) == 0
    assert main([str(tmp_path / "decay"), "--epochs", "30", "--dims", "20", "--pair", "gaussian:iaf", "--out", str(dec)]) == 0
    assert json.loads(const.read_text())["lr_schedules"] == [{"type": "constant"}]
    assert json.loads(dec.read_text())["lr_schedules"] == [decay]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "decay"), "--epochs", "30", "--dims", "20", "--pair", "gaussian:iaf", "--merge", str(const)])
    assert "exponential" in capsys.readouterr().err


def test_seeds_held_reads_every_summary_format():
    """The names --out guards: per comparison, d and seed; older S-VAE summaries list seeds 0, 1, ... unnamed."""
    from vaekit.reproduce.seed_pairs import seeds_held

    old = {"dims": {"2": {"ll_diff_by_seed": [{"mean": 1.6}, {"mean": 1.5}]}}}
    assert seeds_held(old) == {"d2/s0", "d2/s1"}
    new = {"dims": {"5": {"ll_diff_by_seed": [{"seed": 0, "mean": 1.0}, {"seed": 3, "mean": 0.2}]}}}
    assert seeds_held(new) == {"d5/s0", "d5/s3"}
    pairs = {"pairs": {"iaf_vs_gaussian": {"20": {"elbo_diff_by_seed": [{"seed": 4, "mean": -0.4}]}},
                       "mixture_vs_gaussian": {"20": {"n_seeds": 3}}}}
    assert seeds_held(pairs) == {"iaf_vs_gaussian/d20/s4", "mixture_vs_gaussian/d20"}


def test_an_empty_runs_folder_is_an_error_not_an_empty_summary(tmp_path, capsys):
    """A folder without evaluated pairs wrote an empty summary (exit 0), or, over a committed one, a refusal that
    spoke of dropped seeds; now it says what it looked for and where."""
    for argv in (["--pair", "gaussian:iaf", "--dims", "20"], ["--dims", "2,5"]):
        with pytest.raises(SystemExit) as e:
            main([str(tmp_path), "--epochs", "60", *argv, "--out", str(tmp_path / "s.json")])
        assert e.value.code == 2 and "no evaluated run pairs" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
