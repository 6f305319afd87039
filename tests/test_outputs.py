"""Outputs are settled before the work, never replaced unasked, and a failed write keeps the result."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from vaekit.train import OutputError, check_folder, plan_output, write_output
from vaekit.train import checkpoint as ckpt_mod


def test_a_taken_default_name_gets_the_next_free_number(tmp_path):
    default = tmp_path / "eval.json"
    assert plan_output(None, default) == default
    default.write_text("{}")
    assert plan_output(None, default) == tmp_path / "eval-2.json"
    (tmp_path / "eval-2.json").write_text("{}")
    assert plan_output(None, default) == tmp_path / "eval-3.json"
    assert default.read_text() == "{}"  # planning touches nothing that is there


def test_an_explicit_path_that_exists_is_refused_unless_overwriting(tmp_path):
    f = tmp_path / "mine.json"
    f.write_text("old")
    with pytest.raises(OutputError, match=r"--out .*mine.json exists; choose another path"):
        plan_output(f, tmp_path / "eval.json")
    assert plan_output(f, tmp_path / "eval.json", overwrite=True) == f
    # a folder (existing, or written with a trailing slash) takes the default name inside it
    assert plan_output(tmp_path, tmp_path / "x" / "eval.json") == tmp_path / "eval.json"
    assert plan_output(f"{tmp_path}/new/", tmp_path / "eval.json") == tmp_path / "new" / "eval.json"
    assert (tmp_path / "new").is_dir()


def test_a_folder_that_cannot_take_the_file_fails_before_the_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # a path under a regular file cannot exist, even for root (permission bits would not stop root)
    with pytest.raises(OutputError, match=r"cannot create the output folder .*a-file/sub") as e:
        plan_output(blocker / "sub" / "eval.json", tmp_path / "eval.json")
    assert e.value.path == blocker / "sub" and e.value.payload is None
    with pytest.raises(OutputError, match="cannot write into the plots folder"):
        check_folder("/proc/self", "plots")


def test_a_failed_write_names_the_path_and_carries_the_result(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.os, "replace", full)
    payload = {"estimates": {"elbo": {"mean": -1.5}}}
    with pytest.raises(OutputError, match=r"could not write .*eval.json: No space left on device") as e:
        write_output(tmp_path / "eval.json", "{}", payload)
    assert e.value.payload is payload and e.value.path == tmp_path / "eval.json"
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_no_reproduction_or_benchmark_writes_results_non_atomically():
    """Every results file of ``vaekit.reproduce``, ``vaekit.pipeline`` and ``benchmarks/`` goes through
    write_output (atomic; on failure an OutputError naming the file and carrying the results), never a bare
    write_text or open(..., "w") that can leave a torn file behind or lose the results."""
    import re

    root = Path(__file__).resolve().parents[1]
    folders = [root / "src" / "vaekit" / "reproduce", root / "src" / "vaekit" / "pipeline", root / "benchmarks"]
    bare = re.compile(r"\.write_text\(|\bopen\([^)]*[\"']w")
    offenders = [f"{p.relative_to(root)}:{i}" for folder in folders for p in sorted(folder.rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert offenders == []



def test_refuse_to_drop_names_the_runs_a_rebuild_would_lose(tmp_path):
    from vaekit.train.outputs import refuse_to_drop

    f = tmp_path / "summary.json"
    refuse_to_drop(f, ["a"])  # no file yet: nothing to lose
    f.write_text('{"runs": {"a": 1, "b": 2, "c": 3}, "paired": {}}')
    refuse_to_drop(f, ["a", "b", "c", "d"], field="runs")  # a superset: fine
    with pytest.raises(OutputError, match=r"2 run\(s\) not found here \(b, c\)") as e:
        refuse_to_drop(f, ["a"], field="runs")
    assert e.value.path == f
    refuse_to_drop(f, ["a"], field="runs", force=True)
    f.write_text('{"A": {}, "B": {}, "paired": {"A-B": 0}}')  # runs at the top level, less the ignored keys
    refuse_to_drop(f, ["A", "B"], ignore=("paired",))
    with pytest.raises(OutputError, match=r"\(B\)"):
        refuse_to_drop(f, ["A"], ignore=("paired",))
    f.write_text("[1, 2]")  # not a JSON object: nothing it holds is a run
    refuse_to_drop(f, [], field="runs")


def test_convdraw_report_refuses_to_drop_runs_its_summary_holds(tmp_path):
    import json

    from vaekit.reproduce.convdraw import report

    held = {"runs": {"t1": {}, "t8": {}}}
    (tmp_path / "convdraw.json").write_text(json.dumps(held))
    with pytest.raises(OutputError, match="t1, t8"):
        report(tmp_path / "runs", tmp_path, ["t1", "t4", "t8"])
    assert json.loads((tmp_path / "convdraw.json").read_text()) == held


def test_refuse_other_settings_names_each_difference(tmp_path):
    """A results file of the same experiment at other settings is another result: refused with ``key: old → new``
    for each difference; equal settings, an absent or non-JSON file, and ``force`` pass."""
    import json

    from vaekit.train.outputs import OutputError, refuse_other_settings

    f = tmp_path / "r.json"
    f.write_text(json.dumps({"settings": {"T": [2000], "epochs": {"vae": 40}}, "nll": 1.0}))
    read = lambda d: d["settings"]  # noqa: E731
    refuse_other_settings(f, {"T": [2000], "epochs": {"vae": 40}}, read)
    with pytest.raises(OutputError, match=r"T: \[2000\] → \[500\]; epochs: \{'vae': 40\} → \{'vae': 100\}"):
        refuse_other_settings(f, {"T": [500], "epochs": {"vae": 100}}, read)
    with pytest.raises(OutputError, match=r"images: None → 50\).*or pass --force"):
        refuse_other_settings(f, {"T": [2000], "images": 50}, read)
    refuse_other_settings(f, {"T": [500]}, read, force=True)
    refuse_other_settings(tmp_path / "absent.json", {"T": [500]}, read)
    (tmp_path / "bad.json").write_text("{not json")
    refuse_other_settings(tmp_path / "bad.json", {"T": [500]}, read)


def test_variance_report_settings_tell_the_committed_files_apart():
    """variance_layers.json (5 epochs) and variance_layers_e30.json are the same comparison at other epochs; the
    settings --report guards differ between them and equal themselves."""
    import json

    from vaekit.reproduce.variance import _settings

    five, thirty = (json.loads((Path(__file__).resolve().parents[1] / "docs" / "results" / f).read_text())
                    for f in ("variance_layers.json", "variance_layers_e30.json"))
    assert _settings(five) != _settings(thirty) and _settings(five)["epochs"] == {"variance": 5, "deterministic": 5}


def test_acn_and_sequential_report_settings_tell_results_apart():
    """acn.json and acn_pixelcnn.json are the same comparison of other runs and epochs: their guarded settings
    differ; the sequential report's settings hold each model's epochs and the IWAE sizes."""
    import json

    from vaekit.reproduce import acn, sequential

    res = Path(__file__).resolve().parents[1] / "docs" / "results"
    made, pixel = (json.loads((res / f).read_text()) for f in ("acn.json", "acn_pixelcnn.json"))
    assert acn._settings(made) == {"acn": [10, 10000], "vae_made": [10, 10000]} != acn._settings(pixel)
    seq = sequential._settings(json.loads((res / "sequential.json").read_text()))
    assert seq["epochs"] == {"T1": 60, "T4": 60} and seq["iwae"]["T4"] == [2000, 100]
