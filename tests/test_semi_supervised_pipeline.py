"""M2 through ``vaekit train``: ``data.labels`` keeps a balanced labelled subset, every step mixes unlabelled and
labelled rows, ``train.objective: {type: m2}`` trains on both, and evaluation scores log p(x) and q(y|x)'s error.

Trains on scikit-learn's digits (1,797 8x8 images with labels) for a few seconds.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from vaekit.config import ConfigError, from_dict
from vaekit.models import build_model
from vaekit.objectives.conditional import M2Objective, m2_objective, paper_alpha
from vaekit.pipeline.data import eval_data
from vaekit.train import fit, load_run
from vaekit.train.data import SemiSupervised


@pytest.fixture(autouse=True)
def _one_thread(one_thread):  # conftest's: a fixed reduction order, and CI has 2 shared cores
    yield


M2_SPEC = {"type": "m2", "classifier": {"type": "mlp", "hidden": [32]}, "encoder": {"type": "mlp", "hidden": [32]},
           "latent": {"type": "gaussian", "dim": 4}, "decoder": {"type": "mlp", "hidden": [32]},
           "likelihood": {"type": "bernoulli"}}


def m2_cfg(tmp_path: Path, data: dict | None = None, objective: dict | None = None, model: dict | None = None,
           epochs: int = 2, name: str = "run"):
    return from_dict({"data": {"name": "digits", "binarize": "dynamic", **({"labels": 50} if data is None else data)},
                      "model": model or M2_SPEC,
                      "train": {"epochs": epochs, "batch_size": 50, "lr": 3e-3, "log_every": 10,
                                "objective": objective or {"type": "m2"}},
                      "eval": {"estimators": "elbo", "split": "test"}, "seed": 3, "device": "cpu",
                      "out_dir": str(tmp_path), "run_name": name})


def test_batches_take_every_unlabelled_row_once_and_cycle_the_labelled_ones_evenly():
    lab = torch.tensor([3, 8, 11, 20, 31])
    unl = torch.tensor([i for i in range(40) if i not in lab.tolist()])
    y = torch.full((40,), -1)
    y[lab] = torch.arange(5)
    semi = SemiSupervised(lab, unl, y, labelled_batch=4)
    batches = list(semi.batches(8, torch.Generator().manual_seed(0)))
    assert len(batches) == semi.steps(8) == 5  # 35 unlabelled rows in batches of 8
    assert sum(len(b) for b in batches) == semi.rows_per_epoch(8) == 35 + 5 * 4
    seen_u, seen_l = [], []
    for b in batches:
        u, l_ = b[:-4], b[-4:]
        assert set(u.tolist()).isdisjoint(lab.tolist()) and set(l_.tolist()) <= set(lab.tolist())
        seen_u += u.tolist()
        seen_l += l_.tolist()
    assert sorted(seen_u) == unl.tolist()  # one pass over the unlabelled rows
    counts = torch.bincount(torch.tensor(seen_l))[lab]
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == 20  # cycled in fresh orders: even use


def test_the_objective_on_a_mixed_batch_is_m2_objective_on_its_two_parts():
    torch.manual_seed(0)
    model = build_model(M2_SPEC, data_dim=64)
    x = torch.bernoulli(torch.rand(12, 64))
    label = torch.tensor([-1, 4, -1, -1, 7, -1, 0, -1, -1, 9, -1, -1])
    obj = M2Objective(alpha=2.5)
    torch.manual_seed(1)
    loss, metrics = obj(model, x, 0, label=label)
    lab = label >= 0
    torch.manual_seed(1)
    ref, ref_metrics = m2_objective(model, x[~lab], x[lab], label[lab], 2.5)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    assert float(metrics["elbo"]) == pytest.approx(float(ref_metrics["elbo_unlabelled"]), rel=1e-6)
    # no labels (validation): the unlabelled bound alone, -loss = mean U(x) with y summed out
    torch.manual_seed(2)
    loss_u, m_u = obj(model, x, 0)
    torch.manual_seed(2)
    out = model(x, k=1)
    assert float(-loss_u.detach()) == pytest.approx(float((out.log_likelihood.mean(0) - out.kl).mean().detach()), rel=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        M2Objective()(model, x, 0, label=label)


def test_a_semi_supervised_run_keeps_its_labels_records_alpha_and_reports_the_classifier_error(tmp_path):
    res = fit(m2_cfg(tmp_path), tensorboard=False)
    semi = res.data.semi
    assert len(semi.labelled) == 50 and len(semi.unlabelled) == res.data.train.shape[0] - 50
    kept = res.data.dataset.train.y[semi.labelled]
    assert torch.bincount(kept, minlength=10).tolist() == [5] * 10  # balanced
    assert (semi.train_y[semi.unlabelled] == -1).all() and (semi.train_y[semi.labelled] == kept).all()
    cfg = json.loads((res.run_dir / "config.json").read_text())
    assert cfg["train"]["objective"]["alpha"] == pytest.approx(paper_alpha(res.data.train.shape[0], 50))
    val = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in val if r.get("split") == "val"]
    assert len(val) == 2 and all(0.0 <= r["error"] <= 1.0 for r in val)

    from vaekit.pipeline import evaluate_run

    ev = evaluate_run(res.run_dir, checkpoint="last")
    run = load_run(res.run_dir, "last")
    x, y, _ = eval_data(run.config, "test")
    with torch.no_grad():
        expected = float((run.model.classify(x) != y).double().mean())
    c = ev.payload["classification_error"]
    assert c["error"] == pytest.approx(expected) and c["n"] == x.shape[0]
    assert "classification error" in ev.summary()
    assert ev.payload["estimates"]["elbo"]["mean"] < 0  # a bound on log p(x), y summed out
    ev.write()
    from vaekit.pipeline import build_report

    assert f"Classification error {100 * c['error']:.2f} %" in build_report(res.run_dir, checkpoint="last")


def test_a_resumed_semi_supervised_run_equals_the_uninterrupted_one(tmp_path):
    a = fit(m2_cfg(tmp_path, name="a", epochs=2), tensorboard=False)
    fit(m2_cfg(tmp_path, name="b", epochs=2), tensorboard=False, stop_after_epoch=1)
    b = fit(m2_cfg(tmp_path, name="b", epochs=2), tensorboard=False, run_dir=tmp_path / "b", resume=True)
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k


@pytest.mark.parametrize("data, objective, model, key", [
    ({"labels": 50}, {"type": "elbo"}, None, "train.objective.type"),
    ({}, {"type": "m2"}, None, "data.labels"),
    ({"labels": 55}, None, None, "data.labels: .*multiple"),
    ({"labels": 50}, None, {"type": "vae", "encoder": {"type": "mlp", "hidden": [8]},
                            "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [8]},
                            "likelihood": {"type": "bernoulli"}}, "model.type"),
])
def test_a_wrong_semi_supervised_setting_is_refused_naming_the_key_and_leaves_no_run(tmp_path, data, objective,
                                                                                   model, key):
    with pytest.raises(ConfigError, match=key):
        fit(m2_cfg(tmp_path, data=data, objective=objective, model=model, name=None), tensorboard=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data, key", [({"labels": 0}, "data.labels"), ({"labelled_batch": 10}, "data.labelled_batch"),
                                       ({"labels": True}, "data.labels")])
def test_bad_label_keys_are_refused_when_the_config_is_read(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict({"data": {"name": "digits", **data}})


def test_the_m2_table_pairs_each_run_with_a_classifier_on_the_same_labelled_rows(tmp_path):
    from vaekit.reproduce.m2_runs import main, run_rows, summarise
    from vaekit.train.data import load_data, prepare_data, with_labels_kept

    runs = tmp_path / "runs"
    res = fit(m2_cfg(runs, epochs=1), tensorboard=False)
    cfg = load_run(res.run_dir, "last").config
    again = with_labels_kept(prepare_data(cfg, torch.device("cpu"), load_data(cfg)), cfg.data.labels, None, cfg.seed)
    assert torch.equal(again.semi.labelled, res.data.semi.labelled)  # the baseline's rows are the run's
    rows = run_rows(runs, sup_steps=50)
    x, y, _ = eval_data(cfg, "test")
    with torch.no_grad():
        assert rows[0]["m2_error"] == pytest.approx(float((res.model.eval().classify(x) != y).double().mean()))
    assert rows[0]["labels"] == 50 and rows[0]["epochs"] == 1 and 0 <= rows[0]["sup_error"] <= 1
    fake = [{"labels": 100, "epochs": 30, "seed": s, "m2_error": m, "sup_error": u, "train_seconds": 1.0}
            for s, m, u in ((0, 0.20, 0.25), (1, 0.18, 0.26), (2, 0.22, 0.24))]
    t = summarise(fake)["l100_e30"]
    assert t["m2"]["mean"] == pytest.approx(20.0) and t["m2"]["sd"] == pytest.approx(2.0)
    assert t["sup_minus_m2"]["mean"] == pytest.approx(5.0) and t["paper_m2"] == 11.97
    assert t["sup_minus_m2"]["se"] == pytest.approx(statistics.stdev([5.0, 8.0, 2.0]) / 3 ** 0.5, abs=1e-3)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty_nope")])
    # --out never drops rows it holds from runs not found here (one run resumed to more epochs is another row)
    out = tmp_path / "m2.json"
    out.write_text(json.dumps({"rows": [{**rows[0], "epochs": 60}]}))
    with pytest.raises(SystemExit) as e:
        main([str(runs), "--out", str(out), "--sup-steps", "5"])
    assert e.value.code == 2 and json.loads(out.read_text())["rows"][0]["epochs"] == 60
    assert main([str(runs), "--out", str(out), "--sup-steps", "5", "--force"]) == 0
    assert [r["epochs"] for r in json.loads(out.read_text())["rows"]] == [1]
    assert main([str(runs), "--out", str(out), "--sup-steps", "5"]) == 0  # the same rows: rewritten
