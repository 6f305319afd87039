"""The step trainer of issue 13 (exact resume) and the conditional commands on a tiny trained run."""

from __future__ import annotations

import json

import pytest
import torch

from vaekit.cli.main import main
from vaekit.models import build_model
from vaekit.objectives.conditional import cvae_objective
from vaekit.train.steps import fit_steps, load_steps_run, read_state

SPEC = {"kind": "cvae_label", "model": {
    "type": "cvae", "condition": {"type": "label", "n_classes": 10}, "encoder": {"type": "mlp", "hidden": [8]},
    "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [8]},
    "likelihood": {"type": "bernoulli"}}}
X = torch.rand(64, 784, generator=torch.Generator().manual_seed(0))
Y = torch.arange(64) % 10


def _steps(epoch, g):
    yield from torch.randperm(64, generator=g).split(16)


def _loss(m, idx):
    return cvae_objective(m, torch.bernoulli(X[idx]), label=Y[idx])


def _train(run_dir, epochs, log=lambda s: None):
    torch.manual_seed(0)
    model = build_model(SPEC["model"], data_dim=784)
    return fit_steps(model, _steps, _loss, epochs=epochs, run_dir=run_dir, spec=SPEC, log=log), model


def test_fit_steps_resumes_exactly(tmp_path):
    _, straight = _train(tmp_path / "a", 2)
    _train(tmp_path / "b", 1)
    said: list[str] = []
    state, resumed = _train(tmp_path / "b", 2, said.append)
    assert said[0] == "[b] resuming at epoch 1 of 2"
    assert state["epoch"] == 2 and read_state(tmp_path / "b")["step"] == 8
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    loaded = load_steps_run(tmp_path / "b")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), straight.state_dict().values()))
    said.clear()
    _train(tmp_path / "b", 2, said.append)  # a finished run is not 'resumed': nothing trains
    assert said == ["[b] already trained for 2 epochs"]
    from vaekit.train.steps import RunFolderError
    with pytest.raises(RunFolderError, match=r"holds 2 epochs, more than the 1 asked; use another folder"):
        _train(tmp_path / "b", 1)


def test_the_conditional_command_reports_a_folder_of_more_epochs_as_a_usage_error(tmp_path, capsys):
    """It was a traceback; every command training through fit_steps reports it by its parser (exit 2)."""
    from vaekit.reproduce import conditional
    run = tmp_path / "cvae_label"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({"epoch": 5, "spec": {}}))  # another run's folder
    with pytest.raises(SystemExit) as e:
        conditional.main(["--runs", "cvae_label", "--epochs", "1", "--out", str(tmp_path), "--no-eval"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "cvae_label holds" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:  # an unknown run among known ones: refused before any trains
        conditional.main(["--runs", "vae_full,bogus", "--out", str(tmp_path / "other"), "--no-eval"])
    assert e.value.code == 2 and "--runs: unknown run 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_fit_steps_names_the_settings_a_folder_holds_and_refuses_zero_epochs(tmp_path):
    """A folder trained under other settings is refused naming each differing key (it said only 'another spec'), and
    epochs < 1 is refused before the folder is made (it crashed on max() of an empty history, leaving the folder)."""
    import pytest

    from vaekit.train.steps import spec_differences

    _train(tmp_path / "a", 1)
    other = {**SPEC, "alpha": 10.0, "model": {**SPEC["model"], "latent": {"type": "gaussian", "dim": 3}}}
    model = build_model(other["model"], data_dim=784)
    with pytest.raises(ValueError, match=r"other settings \(alpha: None → 10\.0; model\.latent\.dim: 2 → 3\); "
                                         r"resuming it would mix the two: use another output folder"):
        fit_steps(model, _steps, _loss, epochs=2, run_dir=tmp_path / "a", spec=other, log=lambda s: None)
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        fit_steps(model, _steps, _loss, epochs=0, run_dir=tmp_path / "b", spec=SPEC, log=lambda s: None)
    assert not (tmp_path / "b").exists()
    assert spec_differences({"a": [1, 2]}, {"a": [1, 2]}) == [] and spec_differences(1, 2) == ["spec: 1 → 2"]


def test_sample_command_needs_and_uses_the_condition(tmp_path, capsys):
    _train(tmp_path / "run", 1)
    assert main(["sample", str(tmp_path / "run"), "--condition", "label=3", "--n", "4",
                 "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    assert main(["sample", str(tmp_path / "run"), "--n", "4", "--out", str(tmp_path / "t.png")]) == 2
    assert "needs the condition ['label']" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "run"), "--condition", "label=10", "--out", str(tmp_path / "u.png")]) == 2
    assert "label out of range" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "state.json").read_text())["spec"] == SPEC


@pytest.mark.parametrize("module,runs", [("sets", "syn_ns,bogus"), ("acn", "acn,bogus")])
def test_the_other_commands_refuse_an_unknown_run_as_a_usage_error(module, runs, capsys):
    import importlib
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"vaekit.reproduce.{module}").main(["--runs", runs])
    assert e.value.code == 2 and "unknown run 'bogus'" in capsys.readouterr().err
