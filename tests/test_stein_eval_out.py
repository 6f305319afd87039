"""``python -m vaekit.reproduce.stein --out``: an evaluation at other settings is another result, not a stale copy."""

from __future__ import annotations

import json

import pytest

from vaekit.config import from_dict
from vaekit.reproduce import stein
from vaekit.train import fit


@pytest.fixture
def run_dir(tmp_path):
    cfg = from_dict({"data": {"name": "digits"},
                     "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [16]},
                               "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [16]},
                               "likelihood": {"type": "bernoulli"}},
                     "train": {"epochs": 1, "batch_size": 128}, "seed": 0, "device": "cpu",
                     "out_dir": str(tmp_path), "run_name": "r1"})
    return fit(cfg, tensorboard=False).run_dir


def _main(run_dir, out, *extra):
    return stein.main([str(run_dir), "--n", "3", "--T", "4", "--chains", "1", "--leapfrog", "2", "--k", "8",
                       "--out", str(out), *extra])


def test_another_ais_length_is_refused_before_any_evaluation(run_dir, tmp_path, capsys, one_thread):
    out = tmp_path / "eval.json"
    assert _main(run_dir, out) == 0
    first = json.loads(out.read_text())
    assert first["r1"]["n"] == 3 and first["r1"]["ais_settings"]["T"] == 4 and len(first["r1"]["ais"]) == 3
    assert first["r1"]["ais_mc_se"] == [None] * 3  # one chain: no s.e.; the file is strict JSON (no NaN)
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the summary: one JSON object per run
    assert line["run"] == "r1" and line["epoch"] == 1 and "ais" in line
    assert _main(run_dir, out) == 0  # the same measurement again: replaced, as before
    with pytest.raises(SystemExit) as e:
        _main(run_dir, out, "--T", "9")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "holds this experiment at other settings (T: 4 → 9)" in err
    assert "pass --force to replace run 'r1'" in err
    assert json.loads(out.read_text())["r1"]["ais_settings"]["T"] == 4  # untouched
    assert _main(run_dir, out, "--T", "9", "--force") == 0
    assert json.loads(out.read_text())["r1"]["ais_settings"]["T"] == 9


def test_a_report_or_a_broken_file_is_not_taken_for_an_evaluation_file(run_dir, tmp_path, capsys):
    report = tmp_path / "stein.json"
    report.write_text(json.dumps({"runs": {}, "dashboard": {"claims": []}}))
    with pytest.raises(SystemExit):
        _main(run_dir, report)
    assert "is not a file of run evaluations" in capsys.readouterr().err
    assert json.loads(report.read_text()) == {"runs": {}, "dashboard": {"claims": []}}
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit):
        _main(run_dir, broken)
    assert "not JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _main(run_dir, tmp_path / "x.json", "--chains", "0")
    assert "--chains must be >= 1, got 0" in capsys.readouterr().err


def test_another_run_of_the_same_folder_name_and_bad_targets_are_refused_before_any_ais(run_dir, tmp_path, capsys,
                                                                                         one_thread):
    import shutil
    out = tmp_path / "eval.json"
    assert _main(run_dir, out) == 0
    other = tmp_path / "elsewhere" / "r1"
    shutil.copytree(run_dir, other)
    with pytest.raises(SystemExit):
        _main(other, out)  # entries are keyed by folder name: this would have replaced r1's silently
    assert "run_dir:" in capsys.readouterr().err
    assert json.loads(out.read_text())["r1"]["run_dir"] == str(run_dir)
    for bad, said in ((["--out", str(tmp_path)], "is a folder"),):
        with pytest.raises(SystemExit):
            stein.main([str(run_dir), *bad])
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _main(tmp_path / "nope", tmp_path / "x.json")
    assert "not a trained run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        stein.main([str(run_dir), str(other), "--out", str(tmp_path / "y.json")])
    assert "run folders of the same name ['r1']" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()


def test_a_failed_write_prints_the_computed_results(run_dir, tmp_path, capsys, one_thread, monkeypatch):
    from vaekit.train.outputs import OutputError

    def fail(path, data, payload=None):
        raise OutputError(f"could not write {path}: disk full", path, payload)
    monkeypatch.setattr(stein, "write_output", fail)
    assert _main(run_dir, tmp_path / "eval.json") == 1
    out, err = capsys.readouterr()
    printed = json.loads(out.splitlines()[0])
    assert len(printed["r1"]["ais"]) == 3 and "disk full; the results are printed above" in err
