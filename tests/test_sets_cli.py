"""``vaekit fewshot`` and ``vaekit sample --support`` on a Neural Statistician run (issue 15)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vaekit.cli.main import main
from vaekit.data.base import data_dir_for
from vaekit.pipeline.sets import fewshot_accuracy, load_set_data, load_sets_run, train_sets
from vaekit.reproduce.sets import spec_of
from vaekit.models import build_model


@pytest.fixture(scope="module")
def ns_run(tmp_path_factory):
    try:
        data_dir_for("omniglot", None)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    torch.manual_seed(0)
    spec = spec_of("omni_ns")
    spec["model"]["encoder"]["hidden"] = [32]
    for key in ("pool", "z_encoder", "prior_net", "decoder"):
        spec["model"][key]["hidden"] = [16]
    spec["model"]["context"]["dim"] = 4
    data = load_set_data(spec["data"])
    small = type(data)(data.name, data.train[:40], data.test, data.train_ids[:40], data.test_ids, data.image_shape)
    run = tmp_path_factory.mktemp("sets") / "ns"
    train_sets(build_model(spec["model"], data_dim=784), small, run, spec, epochs=1, log=lambda s: None,
               **{k: v for k, v in spec["train"].items()})
    return run, data


def test_fewshot_cli_prints_accuracy_with_interval(ns_run, capsys):
    run, data = ns_run
    assert main(["fewshot", str(run), "--way", "5", "--shot", "1", "--episodes", "60", "--seed", "3"]) == 0
    text, payload = capsys.readouterr().out.strip().splitlines()
    res = json.loads(payload)
    assert text.startswith("5-way 1-shot:") and "95 % interval, 60 episodes" in text
    # the same numbers as the library call, and the interval is 1.96 standard errors of per-episode accuracy
    model, _ = load_sets_run(run)
    ref = fewshot_accuracy(model, data.test, 5, 1, 60, seed=3)
    assert res["accuracy"] == pytest.approx(ref["accuracy"]) and res["epochs"] == 1
    assert res["ci95"] == pytest.approx(1.96 * ref["se"])
    assert 0 < res["se"] <= 0.5 / math.sqrt(59)  # per-episode accuracies lie in [0, 1]: sd <= 1/2


def test_sample_support_writes_a_grid(ns_run, tmp_path, capsys):
    run, _ = ns_run
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--support", "3", "--support", "10:0,1,2,3,4", "--n", "4", "--out",
                 str(out)]) == 0
    assert out.is_file() and capsys.readouterr().out.strip().endswith("grid.png")
    assert main(["sample", str(run), "--support", "999:0"]) == 2
    assert "class must be in 0..658" in capsys.readouterr().err
    assert main(["sample", str(run), "--support", "3:0,1", "--support", "4"]) == 2
    assert "one size" in capsys.readouterr().err


def test_fewshot_refuses_other_runs(tmp_path, capsys):
    assert main(["fewshot", str(tmp_path)]) == 2
    assert "not a run of a Neural Statistician or Homoencoder" in capsys.readouterr().err
