"""Conditional models through ``vaekit train``: conditions formed from the data, trained, validated, evaluated, drawn.

The label-conditioned tests train on scikit-learn's digits (1,797 8x8 images with labels) for a few seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vaekit.config import ConfigError, from_dict
from vaekit.evaluation import iwae_estimate, run_estimators
from vaekit.models.conditions import ConditionError
from vaekit.pipeline import evaluate_run, finish_run
from vaekit.pipeline.data import eval_data
from vaekit.train import fit, load_run
from vaekit.train.conditions import data_conditions
from vaekit.train.ddp import DistInfo
from vaekit.train.loop import _rank_shard


@pytest.fixture(autouse=True)
def _one_thread(one_thread):  # conftest's: a fixed reduction order, and CI has 2 shared cores
    yield


def cvae_cfg(tmp_path: Path, condition: dict, name: str = "run", epochs: int = 4, **extra) -> "RunConfig":  # noqa: F821
    model = {"type": "cvae", "condition": condition, "encoder": {"type": "mlp", "hidden": [64]},
             "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [64]},
             "likelihood": {"type": "bernoulli"}}
    if condition["type"] == "mask":
        model["prior_net"] = {"type": "mlp", "hidden": [32]}
    model.update(extra.pop("model", {}))
    cfg = {"data": {"name": "digits", "binarize": "dynamic"}, "model": model,
           "train": {"epochs": epochs, "batch_size": 64, "lr": 3e-3, "log_every": 10, **extra.pop("train", {})},
           "eval": {"estimators": "elbo,iwae:20", "split": "test"}, "seed": 1, "device": "cpu",
           "out_dir": str(tmp_path), "run_name": name}
    return from_dict(cfg)


def test_a_label_cvae_learns_to_use_the_labels_it_was_trained_with(tmp_path):
    """If the loop paired rows with the wrong labels, the decoder could not use them and the ELBO given the true
    labels would not beat the ELBO given shuffled ones; with 2 latent dimensions the label carries much of x."""
    res = fit(cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}), tensorboard=False)
    x, y, _ = eval_data(load_run(res.run_dir).config, "test")
    model = res.model.eval()
    g = torch.Generator().manual_seed(0)
    wrong = (y + torch.randint(1, 10, y.shape, generator=g)) % 10  # every label changed
    torch.manual_seed(0)
    with torch.no_grad():
        right = iwae_estimate(model, x, 20, label=y)
        off = iwae_estimate(model, x, 20, label=wrong)
    d = (right - off).double()
    se = float(d.std() / math.sqrt(d.numel()))
    assert float(d.mean()) > 10 * se and float(d.mean()) > 2.0, (float(d.mean()), se)


def test_validation_scores_the_rows_given_their_own_labels(tmp_path):
    cfg = cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}, epochs=4)
    cfg.data.val_size = 300
    res = fit(cfg, tensorboard=False)
    rec = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rec if r.get("split") == "val"][-1]
    x, y, _ = eval_data(load_run(res.run_dir, "last").config, "val")
    from vaekit.train import validate

    given = validate(res.model, x, 100, 0, y, lambda xb, yb: {"label": yb})["elbo"]
    shuffled = validate(res.model, x, 100, 0, (y + 1) % 10, lambda xb, yb: {"label": yb})["elbo"]
    # the loop's own validation (with its seed) agrees with the labelled one, far from the shuffled one
    assert abs(val["elbo"] - given) < 0.5 < 2.0 < given - shuffled, (val["elbo"], given, shuffled)


def test_the_final_report_scores_log_p_x_given_y_and_says_so(tmp_path):
    res = fit(cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}, epochs=1), tensorboard=False)
    ev = finish_run(res.run_dir, plots=True, progress=False)
    p = ev.payload
    assert p["condition"]["type"] == "label"
    assert "conditional NLL -log p(x|y)" in ev.summary()
    x, y, _ = eval_data(load_run(res.run_dir).config, "test")
    # the same numbers as calling the estimator with the labels by hand (same seeds: seed + batch index)
    direct = run_estimators(res.model, x, "iwae:20", seed=p["seed"], batch_size=100, y=y,
                            conditions=lambda xb, yb: {"label": yb})
    assert p["estimates"]["iwae:20"]["mean"] == pytest.approx(direct["iwae:20"]["mean"], abs=1e-9)
    names = {q.name for q in ev.plots}
    assert {"samples.png", "reconstructions.png"} <= names


def test_a_mask_cvae_reports_the_conditional_likelihood_of_the_hidden_pixels(tmp_path):
    from vaekit.data import make_mask

    res = fit(cvae_cfg(tmp_path, {"type": "mask", "observe": "left"}, epochs=1), tensorboard=False)
    ev = evaluate_run(res.run_dir, estimators="iwae:10", n=100, write=False, progress=False)
    x, _, _ = eval_data(load_run(res.run_dir).config, "test")
    m = make_mask("left", (1, 8, 8))
    torch.manual_seed(ev.payload["seed"])  # batch 0's seed
    with torch.no_grad():
        direct = iwae_estimate(res.model.eval(), x[:100], 10, mask=m, observed=x[:100])
    assert ev.payload["estimates"]["iwae:10"]["mean"] == pytest.approx(float(direct.double().mean()), abs=1e-6)
    # only the 32 hidden pixels are scored: far fewer nats than a whole image's
    full = run_estimators(res.model, x[:100], "iwae:10", y=None,
                          conditions=lambda xb, yb: {"mask": torch.zeros(64, dtype=torch.bool), "observed": xb})
    assert ev.payload["estimates"]["iwae:10"]["mean"] > full["iwae:10"]["mean"] + 5.0
    assert "hidden pixels" in ev.summary()


def test_conditions_the_data_cannot_give_are_refused_before_training(tmp_path):
    with pytest.raises(ConditionError, match="model.condition.observe: a mask-conditioned model"):
        fit(cvae_cfg(tmp_path, {"type": "mask"}, name="a"), tensorboard=False)
    with pytest.raises(ConditionError, match="model.condition.observe: unknown mask 'lft'"):
        fit(cvae_cfg(tmp_path, {"type": "mask", "observe": "lft"}, name="b"), tensorboard=False)
    with pytest.raises(ConditionError, match="tensor.*pass c=... from your own training loop"):
        fit(cvae_cfg(tmp_path, {"type": "tensor", "dim": 3}, name="c"), tensorboard=False)
    with pytest.raises(ConfigError, match="train.objective.type: 'infovae' cannot train a conditional model"):
        fit(cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}, name="d",
                     train={"objective": {"type": "infovae", "alpha": 0.5, "lam": 1.0}}), tensorboard=False)
    for name in "abcd":
        assert not (tmp_path / name).exists()  # nothing was left behind


def test_a_label_condition_on_data_without_labels_names_the_problem():
    from vaekit.models import build_model

    model = build_model({"type": "cvae", "condition": {"type": "label", "n_classes": 3},
                         "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 2},
                         "decoder": {"type": "mlp", "hidden": [8]}, "likelihood": {"type": "bernoulli"}}, data_dim=4)
    with pytest.raises(ConditionError, match="needs class labels, but 'tensor' has none"):
        fit(model, torch.rand(20, 4).round(), tensorboard=False, run_dir=None)
    assert data_conditions(build_model({"type": "vae", "encoder": {"type": "mlp", "hidden": [8]},
                                        "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [8]},
                                        "likelihood": {"type": "bernoulli"}}, data_dim=4)) is None


@pytest.mark.parametrize("condition", [{"type": "label", "n_classes": 10}, {"type": "mask", "observe": "left"}])
def test_ais_on_a_conditional_model_agrees_with_a_large_iwae_bound(tmp_path, condition):
    """AIS given the condition estimates log p(x|c) (forward: a stochastic lower bound); on a 2-d latent IWAE-2000 is
    within a small fraction of a nat of it, so the two agree within 4 standard errors of their difference."""
    res = fit(cvae_cfg(tmp_path, condition, epochs=3), tensorboard=False)
    x, y, _ = eval_data(load_run(res.run_dir).config, "test")
    conditions = data_conditions(res.model, (1, 8, 8))
    est = run_estimators(res.model, x[:40], "iwae:2000,ais:200", batch_size=40, y=y[:40], conditions=conditions,
                         ais_chains=16, ais_leapfrog=5)
    iw, a = est["iwae:2000"], est["ais:200"]
    d = a["mean"] - iw["mean"]
    # the per-row s.e. of the means is dominated by the spread between rows, which cancels: use AIS's own MC s.e.
    assert abs(d) < 4 * a["mc_stderr"] + 0.05, (d, a["mc_stderr"])
    if condition["type"] != "label":
        return
    # ... and it is an estimate given each row's own label: the neighbour's labels score worse
    shifted = run_estimators(res.model, x[:40], "ais:200", batch_size=40, y=y[:40].roll(1), ais_chains=16,
                             ais_leapfrog=5, conditions=lambda xb, yb: conditions(xb.roll(1, 0), yb))["ais:200"]
    assert shifted["mean"] < a["mean"] - 1.0, (shifted["mean"], a["mean"])
    # BDMC on data simulated from p(x|c) with the conditions of the first rows: the sandwich holds and tightens
    ev = evaluate_run(res.run_dir, estimators="elbo", n=8, bdmc_T=[5, 200], bdmc_n=8, ais_chains=8, ais_leapfrog=5,
                      write=False, progress=False)
    short, long = ev.payload["bdmc"]["rows"]
    for r in (short, long):
        assert r["lower"] <= r["upper"] + 4 * math.hypot(r["lower_stderr"], r["upper_stderr"]), r
    assert long["gap"] < short["gap"] and long["gap"] < 0.5, (short["gap"], long["gap"])


def test_ddp_shards_give_each_rank_the_labels_of_its_own_rows():
    x = torch.arange(7.0).unsqueeze(1).expand(7, 3)
    y = torch.arange(7) * 10
    seen = []
    for rank in range(3):
        xs, scale, ys = _rank_shard(x, DistInfo(rank=rank, local_rank=rank, world_size=3), y)
        assert torch.equal(ys, xs[:, 0].long() * 10)
        seen += ys.tolist()
    assert seen == y.tolist()
    # a rank without rows scores the first row with weight 0, and its label with it
    xs, scale, ys = _rank_shard(x[:1], DistInfo(rank=1, local_rank=1, world_size=2), y[:1])
    assert scale == 0.0 and ys.tolist() == [0]


def test_a_conditional_run_resumes_bit_for_bit(tmp_path):
    full = fit(cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}, name="full", epochs=3), tensorboard=False)
    part = fit(cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}, name="part", epochs=3), stop_after_epoch=1,
               tensorboard=False)
    resumed = fit(cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}, name="part", epochs=3), run_dir=part.run_dir,
                  resume=True, tensorboard=False)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_the_command_line_draws_a_conditional_run(tmp_path, capsys):
    from vaekit.cli.main import main

    res = fit(cvae_cfg(tmp_path, {"type": "label", "n_classes": 10}, name="lab", epochs=1), tensorboard=False)
    assert main(["sample", str(res.run_dir), "--condition", "label=3", "--n", "16"]) == 0
    assert (res.run_dir / "plots" / "samples-label3.png").is_file()
    assert main(["sample", str(res.run_dir)]) == 0  # a row per class
    assert main(["reconstruct", str(res.run_dir)]) == 0
    assert main(["interpolate", str(res.run_dir)]) == 0
    capsys.readouterr()
    assert main(["sample", str(res.run_dir), "--condition", "label=12"]) == 2
    assert "label out of range" in capsys.readouterr().err
    assert main(["complete", str(res.run_dir)]) == 2
    assert "without a mask condition does not complete images" in capsys.readouterr().err
    masked = fit(cvae_cfg(tmp_path, {"type": "mask", "observe": "quadrant1"}, name="mask", epochs=1), tensorboard=False)
    assert main(["complete", str(masked.run_dir), "--n", "3", "--samples", "2"]) == 0
    assert (masked.run_dir / "plots" / "complete-quadrant1.png").is_file()
    assert main(["sample", str(masked.run_dir)]) == 2
    assert "draw completions with vaekit complete" in capsys.readouterr().err


def test_ais_imputation_matches_quadrature_on_a_one_dimensional_latent():
    """log p(x_obs) and log p(x_hidden | x_obs) of an unconditional VAE by AIS, against quadrature over z."""
    from vaekit.models import build_model
    from vaekit.pipeline.conditional import ais_imputation_log_likelihood

    torch.manual_seed(0)
    vae = build_model({"type": "vae", "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 1},
                       "decoder": {"type": "mlp", "hidden": [16]}, "likelihood": {"type": "bernoulli"}}, data_dim=6)
    with torch.no_grad():
        for p in vae.parameters():
            p.mul_(3.0)  # a decoder that depends strongly on z: a peaked, non-Gaussian posterior
    x = torch.bernoulli(torch.full((5, 6), 0.5), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([True, True, True, False, False, False])
    z = torch.linspace(-9, 9, 6001, dtype=torch.float64).view(-1, 1, 1)
    with torch.no_grad():
        per = vae.double().decode(z).base_dist.log_prob(x.double())             # (Z, B, 6)
        log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).view(-1, 1)
        dz = float(z[1] - z[0])
        exact_x = torch.logsumexp(per.sum(-1) + log_prior, 0) + math.log(dz)
        exact_obs = torch.logsumexp((per * mask).sum(-1) + log_prior, 0) + math.log(dz)
    vae.float()
    r = ais_imputation_log_likelihood(vae, x, mask, T=300, n_chains=32, leapfrog_steps=5, seed=0)
    for est, se, exact in ((r["log_px"], r["log_px_se"], exact_x), (r["log_pobs"], r["log_pobs_se"], exact_obs)):
        err = (est.double() - exact).abs()
        assert bool((err < 4 * se.double() + 0.02).all()), (err, se)
    assert torch.allclose(r["log_cond"].double(), (exact_x - exact_obs), atol=0.1)
    assert bool((exact_x < exact_obs - 0.1).all())  # the test is not trivial: the hidden pixels cost nats


def test_report_refuses_to_drop_runs_the_results_file_holds(tmp_path, capsys):
    """``python -m vaekit.reproduce.conditional --report`` rebuilds conditional.json from the run folders under
    --out; runs the existing file holds and this machine lacks are named, and nothing is written."""
    from vaekit.reproduce.conditional import main as reproduce_main

    docs, out = tmp_path / "docs", tmp_path / "runs"
    docs.mkdir()
    (out / "cvae_q0").mkdir(parents=True)
    (out / "cvae_q0" / "eval.json").write_text("{}")
    held = {"runs": {"cvae_q0": {}, "m2_l100_s0": {"test_error": {"error": 0.14}}}}
    (docs / "conditional.json").write_text(json.dumps(held))
    with pytest.raises(SystemExit):
        reproduce_main(["--report", "--out", str(out), "--docs", str(docs)])
    err = capsys.readouterr().err
    assert "m2_l100_s0" in err and "cvae_q0" not in err.split("(")[-1] and "--force" in err
    assert json.loads((docs / "conditional.json").read_text()) == held
    assert not (out / "table.md").exists()


def test_ais_imputation_never_replaces_a_result_of_other_settings(tmp_path, capsys):
    """``--ais-imputation`` wrote to docs/results/conditional_ais.json by default whatever its T, images or models,
    so a T = 2000 run on 40-epoch models replaced the T = 100/500 study of 10-epoch ones. Now a --json file of other
    settings is refused before any AIS (exit 2, naming the settings that differ); the same settings rewrite it."""
    import json

    from vaekit.reproduce.conditional import check_same_ais_settings, main
    from vaekit.train.outputs import OutputError

    out = tmp_path / "runs"
    for d in ("vae_full", "cvae_q0"):
        (out / d).mkdir(parents=True)
        (out / d / "state.json").write_text(json.dumps({"epoch": 40}))
    f = tmp_path / "ais.json"
    f.write_text(json.dumps({"settings": {"n_images": 50, "T": [2000], "k": 100, "epochs": {"vae": 40, "cvae": 40},
                                          "runs": {"vae": str(out / "vae_full"), "cvae": str(out / "cvae_q0")}}}))
    check_same_ais_settings(f, out, 50, (2000,), 100)  # the same experiment again: allowed
    with pytest.raises(OutputError, match=r"T: \[2000\] → \[500\]"):
        check_same_ais_settings(f, out, 50, (500,), 100)
    (out / "vae_full" / "state.json").write_text(json.dumps({"epoch": 100}))
    with pytest.raises(OutputError, match=r"epochs: \{'vae': 40, 'cvae': 40\} → \{'vae': 100, 'cvae': 40\}"):
        check_same_ais_settings(f, out, 50, (2000,), 100)
    check_same_ais_settings(f, out, 50, (500,), 100, force=True)
    check_same_ais_settings(tmp_path / "absent.json", out, 50, (500,), 100)
    with pytest.raises(SystemExit) as e:  # refused before the models are even loaded (there are none here)
        main(["--out", str(out), "--ais-imputation", "2000", "--eval-n", "50", "--json", str(f)])
    assert e.value.code == 2 and "epochs:" in capsys.readouterr().err


def _tiny_steps_run(run_dir: Path, name: str, seed: int) -> None:
    """An untrained run folder of the step trainer for ``name``'s spec with 8-unit networks (784 pixels)."""
    from vaekit.reproduce.conditional import build, spec_of
    from vaekit.train.steps import fit_steps

    spec = spec_of(name)
    for part in ("encoder", "decoder", "prior_net"):
        if part in spec["model"]:
            spec["model"][part] = {"type": "mlp", "hidden": [8], "activation": "relu"}
    spec["model"]["latent"]["dim"] = 2
    if "prior_latent" in spec["model"]:
        spec["model"]["prior_latent"]["dim"] = 2
    torch.manual_seed(seed)
    model = build(spec)
    fit_steps(model, lambda e, g: [None], lambda m, b: (sum(p.sum() for p in m.parameters()) * 0.0, {}),
              epochs=1, run_dir=run_dir, spec=spec, log=lambda s: None)


def test_ais_imputation_pieces_are_saved_and_reused_only_for_the_same_weights(tmp_path, capsys):
    """``--ais-imputation`` ran both models' AIS in one process and kept nothing until the end, so a stop in the
    CVAE's AIS lost the VAE's (17 min at T = 2000 on 200 images). Each piece is now saved as it finishes: the VAE
    and the CVAE run as separate processes (``--ais-models``) and a call with both gives the same numbers, bit for
    bit, as one fresh call; a piece whose model's weights changed is computed again, not reused."""
    import shutil

    from safetensors.torch import load_file, save_file

    from vaekit.reproduce.conditional import main

    a, b = tmp_path / "a", tmp_path / "b"
    _tiny_steps_run(a / "vae_full", "vae_full", 0)
    _tiny_steps_run(a / "cvae_q0", "cvae_q0", 1)
    shutil.copytree(a, b)
    common = ["--ais-imputation", "3,4", "--eval-n", "3", "--eval-k", "20"]
    main(["--out", str(a), *common, "--ais-models", "vae"])
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"saved": str(a / "ais_imputation"),
                                                                    "models": ["vae"]}
    assert sorted(p.name for p in (a / "ais_imputation").iterdir()) == [
        "vae_ais_T3_n3.json", "vae_ais_T4_n3.json", "vae_is_k20_n3.json"]
    main(["--out", str(a), *common, "--ais-models", "cvae"])
    main(["--out", str(a), *common, "--json", str(tmp_path / "a.json")])
    assert capsys.readouterr().err.count("reusing") == 6  # every piece came from the two separate processes
    main(["--out", str(b), *common, "--json", str(tmp_path / "b.json")])
    ra, rb = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert ra["per_image"] == rb["per_image"] and len(ra["per_image"]["vae_ais_T4"]) == 3
    assert ra["paired_differences"] == rb["paired_differences"]

    weights = a / "vae_full" / "model.safetensors"  # the VAE retrained (here: one weight changed)
    w = load_file(str(weights))
    first = sorted(w)[0]
    w[first] = w[first] + 1.0
    save_file(w, str(weights))
    capsys.readouterr()
    main(["--out", str(a), *common, "--json", str(tmp_path / "a.json"), "--force"])
    err = capsys.readouterr().err
    assert err.count("reusing") == 3 and "vae_is_k20_n3: reusing" not in err  # the CVAE's three only
    assert json.loads((tmp_path / "a.json").read_text())["per_image"]["vae_is_k20"] != rb["per_image"]["vae_is_k20"]


@pytest.mark.parametrize("args, problem", [(["--ais-imputation", "20x0"], "not a comma-separated list"),
                                           (["--ais-imputation", "0"], "must be ≥ 1"),
                                           (["--ais-imputation", "10", "--ais-models", "vae,gan"], "--ais-models"),
                                           (["--ais-imputation", "10", "--cvae-run", "vae_full"], "--cvae-run"),
                                           (["--ais-imputation", "10", "--ais-block", "0"], "--ais-block"),
                                           (["--ais-imputation", "10", "--eval-n", "0"], "--eval-n")])
def test_ais_imputation_refuses_bad_arguments_by_name(tmp_path, capsys, args, problem):
    from vaekit.reproduce.conditional import main

    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path), *args])
    assert e.value.code == 2 and problem in capsys.readouterr().err


def test_ais_imputation_of_another_cvae_keeps_its_own_pieces(tmp_path, capsys):
    """``--cvae-run cvae_q0_mix`` (a mixture prior network) is compared with the same VAE pieces; its own pieces
    carry its name, so they never replace or get mistaken for cvae_q0's, and the file records which CVAE it read."""
    from vaekit.reproduce.conditional import main

    out = tmp_path / "runs"
    _tiny_steps_run(out / "vae_full", "vae_full", 0)
    _tiny_steps_run(out / "cvae_q0_mix", "cvae_q0_mix", 1)
    common = ["--out", str(out), "--ais-imputation", "3", "--eval-n", "2", "--eval-k", "20"]
    main([*common, "--cvae-run", "cvae_q0_mix", "--json", str(tmp_path / "mix.json")])
    names = sorted(p.name for p in (out / "ais_imputation").iterdir())
    assert names == ["cvae_q0_mix_ais_T3_n2.json", "cvae_q0_mix_iwae_k20_n2.json", "vae_ais_T3_n2.json",
                     "vae_is_k20_n2.json"]
    res = json.loads((tmp_path / "mix.json").read_text())
    assert res["settings"]["runs"]["cvae"] == str(out / "cvae_q0_mix")
    assert len(res["per_image"]["cvae_ais_T3"]) == 2
    with pytest.raises(SystemExit) as e:  # the same file for the other CVAE: another result, refused
        main([*common, "--json", str(tmp_path / "mix.json")])
    assert e.value.code == 2 and "cvae_q0_mix" in capsys.readouterr().err


def test_ais_imputation_in_blocks_extends_a_smaller_run_without_recomputing_it(tmp_path, capsys):
    """More test images were needed to resolve the CVAE - VAE difference (0.3 nats at 200 images is within noise),
    at about 17 min of AIS per 200 images per model. With ``--ais-block B`` the images are computed and saved in
    blocks of B: the first block is the earlier unblocked result (reused, not recomputed, and its numbers unchanged
    in the joined file), later blocks carry their first image in name, key and seed, and a last short block is
    allowed."""
    from vaekit.reproduce.conditional import main

    out = tmp_path / "runs"
    _tiny_steps_run(out / "vae_full", "vae_full", 0)
    _tiny_steps_run(out / "cvae_q0", "cvae_q0", 1)
    common = ["--out", str(out), "--ais-imputation", "3", "--eval-k", "20"]
    main([*common, "--eval-n", "2", "--json", str(tmp_path / "n2.json")])
    capsys.readouterr()
    main([*common, "--eval-n", "5", "--ais-block", "2", "--json", str(tmp_path / "n5.json")])
    err = capsys.readouterr().err
    assert err.count("reusing") == 4 and all(f"_n2: reusing" in line for line in err.splitlines() if "reusing" in line)
    names = sorted(p.name for p in (out / "ais_imputation").iterdir())
    assert "vae_ais_T3_n2_from2.json" in names and "cvae_ais_T3_n1_from4.json" in names and len(names) == 12
    small, big = (json.loads((tmp_path / f).read_text()) for f in ("n2.json", "n5.json"))
    assert big["settings"]["n_images"] == 5 and big["settings"]["ais_block"] == 2
    for name, values in small["per_image"].items():
        assert big["per_image"][name][:2] == values and len(big["per_image"][name]) == 5
    # another block start draws other noise: the AIS of a block is not a copy of the first block's seed stream
    assert big["per_image"]["vae_ais_T3"][2:4] != small["per_image"]["vae_ais_T3"]


def test_joined_blocks_recombine_the_monte_carlo_standard_error_of_the_mean():
    """Each block's ``mc_se`` is sqrt(mean_i s_i^2 / n_b); the join must give sqrt(sum_i s_i^2) / N over all images,
    what one block of all images would have reported."""
    import math

    from vaekit.reproduce.conditional import _join_blocks

    s = [[0.5, 1.0, 2.0], [3.0, 0.1]]
    blocks = [{"a": {"nll": [0.0] * len(b), "mc_se": math.sqrt(sum(v * v for v in b) / len(b)) / math.sqrt(len(b)),
                     "seconds": 1.5}} for b in s]
    joined = _join_blocks(blocks)["a"]
    flat = [v for b in s for v in b]
    assert joined["mc_se"] == pytest.approx(math.sqrt(sum(v * v for v in flat)) / len(flat), rel=1e-12)
    assert joined["seconds"] == 3.0 and len(joined["nll"]) == 5
