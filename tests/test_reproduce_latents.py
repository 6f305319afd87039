"""``vaekit reproduce latents`` (vaekit.reproduce.latents) and the shared runner end to end.

The bookkeeping (run names, plan, paired differences, claims, report, JSON) is tested on synthetic
per-image results with known differences, which go through the same code that writes
docs/results/latents.md; the runner is tested by a tiny reproduction on the embedded digits, run twice
through the CLI.
"""

from __future__ import annotations

import json

import pytest
import torch

from vaekit.reproduce import latents as rl
from vaekit.reproduce.runner import Report, mean_se, paired


def _row(name: str, elbo: torch.Tensor, ll: torch.Tensor, seed: int = 0, epochs: int = 3) -> dict:
    """An evaluated row as the runner writes it (the fields the report reads)."""
    spec = rl.run_spec(name)
    return {"run": name, "config": spec.config, "overrides": list(spec.overrides), "seed": seed, "epochs": epochs,
            "epochs_done": epochs, "run_dir": f"runs/{name}", "command": f"vaekit train {name}", "trained": 0,
            "train_seconds": 61.0, "checkpoint": {"epoch": epochs, "step": 10},
            "settings": {"eval": {"iwae_k": 500, "elbo_k": 10, "n": len(ll), "seed": 1234, "batch_size": 100,
                                  "split": "test"}, "extra": {}},
            "n": len(ll), "elbo": mean_se(elbo), "re": mean_se(elbo + 5), "kl": {"mean": 5.0, "se": 0.0},
            "iwae": mean_se(ll), "gap": mean_se(ll - elbo), "seconds": {"elbo": 1.0, "iwae": 2.0},
            "per_image": {"elbo": elbo.tolist(), "iwae": ll.tolist()}}


META = {"budget": "small", "settings": {"epochs": 3}, "command": "vaekit reproduce latents --epochs 3",
        "threads": 1, "machine": "test", "torch": "test", "finished": "f", "doc": "docs/results/latents.md"}


def test_run_names_plan_and_dimensions() -> None:
    runs = rl.plan([5, 40], ["gaussian", "vmf", "iaf", "mixture"], pair_dim=20)
    assert runs[:4] == [("gaussian", 5), ("vmf", 5), ("gaussian", 40), ("vmf", 40)]
    # the IAF/mixture baseline is trained even when 20 is not among the S-VAE dims
    assert runs[4:] == [("gaussian", 20), ("iaf", 20), ("mixture", 20)]
    assert rl.plan([20], ["gaussian", "iaf"], 20) == [("gaussian", 20), ("iaf", 20)]
    # S^d lives in R^(d+1): the vMF's ambient dimension is d + 1, the Gaussian's d
    assert rl.latent_dim("vmf", 5) == 6 and rl.latent_dim("gaussian", 5) == 5 and rl.latent_dim("iaf", 20) == 20
    assert rl.run_spec("vmf_d5").overrides == ("model.latent.dim=6",)
    assert rl.run_spec("gaussian_d2_s1_e30").overrides == ("model.latent.dim=2", "seed=1", "train.epochs=30")
    assert rl.parse_run("vmf_d5_s1") == rl.LatentRun("vmf", 5, 1, None) and rl.parse_run("vmf_d5").main
    for bad in ("vmf", "vmf_d0", "normal_d5", "vmf_d5_x"):
        with pytest.raises(ValueError, match="bad run name"):
            rl.run_spec(bad)
    small = rl.BUDGETS["small"]
    assert len(small.runs) == 16 and small.runs[:2] == ("gaussian_d5", "vmf_d5") and "vmf_d2_s1" in small.runs
    assert (small.epochs, small.eval.n, small.eval.iwae_k, small.eval.elbo_k) == (10, 2000, 500, 10)


def test_report_and_claims() -> None:
    g = torch.Generator().manual_seed(0)
    base = -100 + 10 * torch.randn(400, generator=g, dtype=torch.float64)
    noise = lambda: 0.1 * torch.randn(400, generator=g, dtype=torch.float64)  # noqa: E731
    rows = []
    for name, shift in [("gaussian_d5", 0.0), ("vmf_d5", 1.5), ("gaussian_d40", 0.0), ("vmf_d40", -2.0),
                        ("gaussian_d20", 0.0), ("iaf_d20", 1.0), ("mixture_d20", -0.3)]:
        ll = base + shift + noise()
        rows.append(_row(name, ll - (1.0 if name.startswith("iaf") else 3.0), ll))
    for name, shift in [("gaussian_d5_s1", 0.0), ("vmf_d5_s1", -0.5)]:  # an extra training seed of the d = 5 pair
        ll = base + shift + noise()
        rows.append(_row(name, ll - 3.0, ll, seed=1))
    for name, shift in [("gaussian_d5_e30", 0.0), ("vmf_d5_e30", 0.7)]:  # a longer pair
        ll = base + shift + noise()
        rows.append(_row(name, ll - 3.0, ll, epochs=30))
    rows.append({**_row("vmf_d2", base, base), "epochs_done": 0})  # a run stopped before its first epoch
    for key in ("iwae", "elbo", "re", "kl", "gap", "per_image", "settings", "n"):
        rows[-1].pop(key)

    cl = rl.claims(rows)
    d5, d40 = cl["svae_vs_nvae"]["5"], cl["svae_vs_nvae"]["40"]
    # paired differences remove the shared per-image spread (sd 10): se ~ 0.14 / sqrt(400)
    assert d5["ll_svae_minus_nvae"]["mean"] == pytest.approx(1.5, abs=0.05)
    assert d5["ll_svae_minus_nvae"]["se"] < 0.02
    assert d5["winner_ll"] == "S-VAE" and d5["significant_2se"]
    assert d40["winner_ll"] == "N-VAE" and d40["significant_2se"]
    assert set(cl["svae_vs_nvae"]) == {"5", "40"}  # the extra-seed and longer runs stay out of the main claims
    iaf = cl["iaf_vs_gaussian"]
    assert iaf["gap"] == pytest.approx(1.0) and iaf["gap_gaussian"] == pytest.approx(3.0)
    assert iaf["gap_diff"]["mean"] == pytest.approx(-2.0)

    rep = rl.report(rows, META)
    assert isinstance(rep, Report)
    text = rep.markdown
    assert "| 5 | S-VAE (vMF) | 6 |" in text and "| 40 | N-VAE (diagonal Gaussian) | 40 |" in text
    assert "-108.43" in text and "-110.21" in text and "−84.08" in text  # paper numbers next to ours
    assert "Paper claim 'N-VAE wins at d = 40': reproduced." in text
    assert META["command"] in text and "**3 epochs**" in text
    # the seed-spread table lists both seeds of the d = 5 pair; the extra seeds stay out of the main table
    assert "## Seed spread" in text and "| 5 | 1 |" in text and "| 5 | 0 |" in text
    assert "| vmf_d5_e30 | 30 | 0 |" in text and "| 5 | 30 | 0.70 ± 0.01 |" in text
    assert "Also d = 5, 30 epochs, training seed 0: S-VAE − N-VAE LL = +0.70" in text
    assert "Also d = 5, 3 epochs, training seed 1: S-VAE − N-VAE LL = -0.50" in text
    assert "| 2 | S-VAE (vMF) | 3 | not run |" in text
    dumped = json.dumps(rep.data)
    assert "per_image" not in dumped and rep.data["paper"]["svae_table1"]["vmf_d5"]["ll"] == -108.43
    with pytest.raises(ValueError, match="different lengths"):
        paired(rows[0], {**rows[1], "per_image": {"iwae": [0.0]}}, "iwae")


def test_cli_end_to_end_twice_reuses_the_cache(tmp_path, monkeypatch, capsys) -> None:
    """A tiny reproduction (digits, 1 epoch, k = 4) through ``vaekit reproduce``: the last stdout line is one
    JSON object; run again, it neither trains nor evaluates and writes the same table."""
    from vaekit.cli.main import main
    from vaekit.reproduce import runner

    argv = ["reproduce", "latents", "data.name=digits", "--runs", "gaussian_d2,vmf_d2", "--epochs", "1",
            "--eval-k", "4", "--eval-n", "40", "--out", str(tmp_path), "--threads", "1"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["run"] for r in first["rows"]] == ["gaussian_d2", "vmf_d2"]
    assert all(r["epochs_done"] == 1 and r["n"] == 40 for r in first["rows"])
    table = (tmp_path / "table.md").read_text()
    assert "| 2 | S-VAE (vMF) | 3 |" in table and "--epochs 1 --eval-k 4 --eval-n 40" in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert "2" in results["claims"]["svae_vs_nvae"] and results["meta"]["settings"]["epochs"] == 1
    assert all("per_image" not in r for r in results["rows"])

    calls = []
    monkeypatch.setattr(runner, "fit", lambda *a, **k: calls.append("fit"))
    monkeypatch.setattr(runner, "load_run", lambda *a, **k: calls.append("load_run"))
    assert main(argv) == 0
    out = capsys.readouterr().out
    second = json.loads(out.strip().splitlines()[-1])
    assert calls == [] and second["rows"] == first["rows"]
    assert (tmp_path / "table.md").read_text().split("## Setup")[1] == table.split("## Setup")[1]
    assert out.startswith("# Latent families")


def test_evaluation_reproduction_measures_ais_and_bdmc(tmp_path) -> None:
    """``vaekit reproduce evaluation`` with tiny settings on digits: the IWAE-k sweep, AIS paired with the
    runner's per-image IWAE and ELBO, and BDMC land in the cached row and in the report."""
    import dataclasses

    from vaekit.reproduce import get_reproduction, reproduce
    from vaekit.reproduce.runner import Budget, EvalSettings

    tiny = Budget(epochs=1, eval=EvalSettings(iwae_k=8, n=12), runs=("vae_mnist",),
                  extra={"iwae_ks": [1, 4], "ais": [[5, 6]], "ais_chains": 3, "bdmc_n": 2, "bdmc_Ts": [5]})
    rep = dataclasses.replace(get_reproduction("evaluation"), budgets={"small": tiny})
    reproduce(rep, out=tmp_path, overrides=["data.name=digits"], tensorboard=False, log=lambda s: None)
    row, = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert list(row["iwae_sweep"]) == ["iwae:1", "iwae:4"] and row["n"] == 12
    a = row["ais"]["ais:5"]
    assert a["n"] == 6 and a["settings"]["n_chains"] == 3 and set(a) >= {"minus_iwae", "minus_elbo", "mc_se"}
    assert [r["T"] for r in row["bdmc"]["rows"]] == [5]
    text = (tmp_path / "table.md").read_text()
    assert "| ais:5 | 6 |" in text and "AIS − IWAE-8" in text and "BDMC gap by T: T=5:" in text
    with pytest.raises(ValueError, match="one run"):
        rep.run_spec("other")


def test_write_doc_never_replaces_a_page_kept_by_hand_or_drops_runs(tmp_path) -> None:
    """``--write-doc`` used to overwrite docs/results/latents.md and evaluation.md, pages kept by hand with every
    session's results, and their JSON (the dashboard's evidence) with whatever the selected runs gave. Now it is
    refused before any training: a page without the generated marker, or a JSON holding runs outside the
    selection, names the file and the way out; a page it wrote itself is rewritten; ``force`` overrides."""
    import dataclasses

    from vaekit.reproduce import get_reproduction, reproduce
    from vaekit.reproduce.runner import DOC_MARKER, Budget, EvalSettings
    from vaekit.train.outputs import OutputError

    doc = tmp_path / "docs" / "evaluation.md"
    doc.parent.mkdir()
    doc.write_text("# Kept by hand\n\nthree sessions of numbers\n")
    tiny = Budget(epochs=1, eval=EvalSettings(iwae_k=4, n=6), runs=("vae_mnist",),
                  extra={"iwae_ks": [1], "ais": [[3, 2]], "ais_chains": 2, "bdmc_n": 1, "bdmc_Ts": [3]})
    rep = dataclasses.replace(get_reproduction("evaluation"), budgets={"small": tiny}, doc=str(doc))
    kw = dict(overrides=["data.name=digits"], tensorboard=False, log=lambda s: None, write_doc=True)
    with pytest.raises(OutputError, match=r"evaluation\.md was not written by `vaekit reproduce evaluation"):
        reproduce(rep, out=tmp_path / "a", **kw)
    assert not (tmp_path / "a").exists()  # refused before training, leaving no output folder
    assert doc.read_text().startswith("# Kept by hand")
    reproduce(rep, out=tmp_path / "a", force=True, **kw)
    assert doc.read_text().split("\n", 1)[0] == DOC_MARKER.format(name="evaluation")
    assert [r["run"] for r in json.loads(doc.with_suffix(".json").read_text())["rows"]] == ["vae_mnist"]
    reproduce(rep, out=tmp_path / "a", **kw)  # its own page, the same runs: rewritten without --force
    data = json.loads(doc.with_suffix(".json").read_text())
    data["rows"].append({"run": "vae_mnist_s1"})
    doc.with_suffix(".json").write_text(json.dumps(data))
    with pytest.raises(OutputError, match=r"holds the results of 1 run\(s\) not found here \(vae_mnist_s1\).*--runs"):
        reproduce(rep, out=tmp_path / "a", **kw)
    doc.with_suffix(".json").write_text(json.dumps({"runs": {"gaussian_d5": {}, "vae_mnist": {}}}))  # older format
    with pytest.raises(OutputError, match=r"\(gaussian_d5\)"):
        reproduce(rep, out=tmp_path / "a", **kw)
