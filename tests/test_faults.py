"""Faults injected into training runs: a run directory is never corrupted, and every fault is reported.

SIGKILL at random points (writes slowed so that kills land inside them too), SIGINT (mid-epoch save and
exact resume, a second Ctrl-C, the command line's hint), a full disk during a checkpoint (an injected
OSError), a torn last line of metrics.jsonl, edited and deleted checkpoint sidecars, stale temporary files,
and a resume that asks for fewer epochs than were done.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vaekit.config import TrainConfig, from_dict, load_config
from vaekit.train import (CheckpointError, OutputError, TrainingInterrupted, fit, load_checkpoint, load_run,
                          read_checkpoint, read_metrics)
from vaekit.train import checkpoint as ckpt_mod

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "vae_digits.yaml")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}
#: a small model of the digits demo, cheap enough to be trained several times per test
SMALL = ["model.encoder.hidden=[32]", "model.decoder.hidden=[32]", "eval.estimators=elbo", "train.eval_every=1",
         "train.checkpoint_every=1", "train.init_output_bias=false"]

pytestmark = pytest.mark.usefixtures("one_thread")  # bit-identical comparisons need one reduction order


def tiny(tmp_path: Path, name: str, **train) -> "RunConfig":  # noqa: F821
    t = {"epochs": 3, "batch_size": 64, "lr": 3e-3, "log_every": 10, **train}
    return from_dict({"data": {"name": "digits"},
                      "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [32]},
                                "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [32]},
                                "likelihood": {"type": "bernoulli"}},
                      "train": t, "seed": 3, "device": "cpu", "out_dir": str(tmp_path), "run_name": name})


def model_tensors(run_dir: Path, which: str = "last") -> dict[str, torch.Tensor]:
    _, tensors = read_checkpoint(run_dir / "checkpoints", which)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def tmp_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------- SIGKILL

KILL_SCRIPT = """
import os, sys, time
real_fsync = os.fsync
def slow_fsync(fd):  # widens every atomic write, so that random kills land inside writes too
    time.sleep(0.01)
    real_fsync(fd)
os.fsync = slow_fsync
from vaekit.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _step(last: Path) -> int:
    try:
        return json.loads(last.read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def test_sigkill_at_random_points_then_resume_is_bit_identical_and_leaves_no_tmp(tmp_path):
    epochs, rng = 8, random.Random(7)
    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.json"
    train = ["train", "--config", CONFIG, *SMALL, f"train.epochs={epochs}", "run_name=killed", "--out", str(tmp_path),
             "--device", "cpu", "--no-final-eval"]
    resume = ["train", "--resume", str(run), "--no-final-eval"]
    kills = []
    for argv in (train, resume):
        before = _step(last)
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, *argv], env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and _step(last) <= before:
            time.sleep(0.005)  # until this process has written a checkpoint of its own
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        kills.append(_step(last))
    assert json.loads(last.read_text())["epoch"] < epochs, kills  # the kills interrupted training
    r = subprocess.run([sys.executable, "-m", "vaekit.cli.main", *resume], env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert tmp_files(run) == []
    full = fit(load_config(CONFIG, [*SMALL, f"train.epochs={epochs}", "run_name=full", f"out_dir={tmp_path}",
                                    "device=cpu"]), tensorboard=False)
    assert read_checkpoint(run / "checkpoints", "last")[0]["epoch"] == epochs
    assert_same(model_tensors(run), model_tensors(full.run_dir))
    steps = [(m["step"], m["split"]) for m in read_metrics(run)]
    assert len(steps) == len(set(steps)) and {s for s, _ in steps} == {s for s, _ in
                                                                      ((m["step"], 0) for m in read_metrics(full.run_dir))}


# ------------------------------------------------------------------------------------------- SIGINT


def _hand_built():
    from vaekit.latents import GaussianLatent
    from vaekit.likelihoods import BernoulliLikelihood
    from vaekit.models import VAE
    from vaekit.nets import MLP

    torch.manual_seed(11)
    return VAE(MLP(64, [32]), GaussianLatent(32, 2), MLP(2, [32], out_features=64), BernoulliLikelihood(64))


class Interrupting(torch.nn.Module):
    """The hand-built VAE; its ``at``-th training forward sends this process SIGINT ``times`` times."""

    def __init__(self, at: int | None = None, times: int = 1):
        super().__init__()
        self.vae, self.at, self.times, self.calls = _hand_built(), at, times, 0

    def forward(self, x, k=1):
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                for _ in range(self.times):
                    os.kill(os.getpid(), signal.SIGINT)
        return self.vae(x, k=k)


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test, whatever the process inherited (a shell starts a background job
    with SIGINT ignored), and the inherited one back afterwards."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def test_sigint_mid_epoch_saves_where_it_stopped_and_resumes_bit_for_bit(tmp_path, digits, python_sigint):
    settings = dict(train=TrainConfig(epochs=3, batch_size=64, log_every=10), seed=4, device="cpu",
                    binarize="dynamic", tensorboard=False)
    full = fit(Interrupting(), digits, run_dir=tmp_path / "full", **settings)
    with pytest.raises(TrainingInterrupted, match=rf"SIGINT in epoch 2 after batch 5 of 21 \(step 26\); saved "
                                                  rf"{re.escape(str(tmp_path / 'cut'))}.*last.json; resume with: "
                                                  rf"vaekit train --resume {re.escape(str(tmp_path / 'cut'))}"):
        fit(Interrupting(at=21 + 5), digits, run_dir=tmp_path / "cut", **settings)
    meta, _ = read_checkpoint(tmp_path / "cut" / "checkpoints", "last")
    assert (meta["epoch"], meta["step"], meta["extra"]["batch_in_epoch"]) == (1, 26, 5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    resumed = fit(Interrupting(), digits, run_dir=tmp_path / "cut", resume=True, **settings)
    assert resumed.state.step == full.state.step == 63
    assert_same(model_tensors(tmp_path / "cut"), model_tensors(tmp_path / "full"))
    assert_same(model_tensors(tmp_path / "cut", "best"), model_tensors(tmp_path / "full", "best"))


def test_a_second_sigint_interrupts_at_once_and_keeps_the_last_checkpoint(tmp_path, digits, python_sigint):
    settings = dict(train=TrainConfig(epochs=3, batch_size=64), device="cpu", tensorboard=False)
    with pytest.raises(KeyboardInterrupt) as e:
        fit(Interrupting(at=21 + 5, times=2), digits, run_dir=tmp_path / "twice", **settings)
    assert not isinstance(e.value, TrainingInterrupted)
    meta, _ = read_checkpoint(tmp_path / "twice" / "checkpoints", "last")
    assert (meta["epoch"], meta["step"]) == (1, 21) and tmp_files(tmp_path / "twice") == []


def test_a_sigint_the_process_inherited_as_ignored_stays_ignored(tmp_path, digits):
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job
    try:
        res = fit(Interrupting(at=5), digits, run_dir=tmp_path / "bg",
                  train=TrainConfig(epochs=1, batch_size=64), device="cpu", tensorboard=False)
        assert res.state.step == 21 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_ctrl_c_on_the_command_line_saves_and_prints_the_resume_command(tmp_path):
    run = tmp_path / "cc"
    last = run / "checkpoints" / "last.json"
    proc = subprocess.Popen([sys.executable, "-m", "vaekit.cli.main", "train", "--config", CONFIG, *SMALL,
                             "train.epochs=40", "run_name=cc", "--out", str(tmp_path), "--device", "cpu",
                             "--no-final-eval"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a terminal's Ctrl-C, even when the tests run in a background job (SIGINT ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and _step(last) < 0:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    hint = f"resume with: vaekit train --resume {run}"
    assert err.startswith("vaekit: interrupted: SIGINT ") and err.rstrip().endswith(hint), err
    assert "Traceback" not in err
    # the checkpoint the hint resumes from is where the message says training stopped
    meta, _ = read_checkpoint(last.parent)
    assert f"(step {meta['step']}); saved {last}" in err and tmp_files(run) == []


# ------------------------------------------------------------------------------------------- full disk


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    full = fit(tiny(tmp_path, "full", epochs=3), tensorboard=False)
    real, calls = ckpt_mod.atomic_write_bytes, []

    def disk_full_at_the_third_last_json(path, data):
        if Path(path).name == "last.json":
            calls.append(path)
            if len(calls) == 3:
                # the tensor file of the new pair is already written at this point
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(ckpt_mod, "atomic_write_bytes", disk_full_at_the_third_last_json)
    with pytest.raises(OutputError, match=r"could not write checkpoint 'last' \(epoch 3, step 63\) in .*: No space "
                                          r"left on device; the previous checkpoint is intact"):
        fit(tiny(tmp_path, "cut", epochs=3), tensorboard=False)
    monkeypatch.undo()
    ck = tmp_path / "cut" / "checkpoints"
    assert read_checkpoint(ck, "last")[0]["epoch"] == 2 and tmp_files(tmp_path / "cut") == []
    fit(tiny(tmp_path, "cut", epochs=3), run_dir=tmp_path / "cut", resume=True, tensorboard=False)
    assert_same(model_tensors(tmp_path / "cut"), model_tensors(full.run_dir))
    assert sorted(p.name for p in ck.iterdir() if p.name.startswith("last")) == ["last-e000003.safetensors",
                                                                                 "last.json"]


# ------------------------------------------------------------------------------------------- metrics.jsonl


def test_a_torn_last_metrics_line_is_dropped_at_resume_with_a_message(tmp_path):
    part = fit(tiny(tmp_path, "torn"), stop_after_epoch=1, tensorboard=False)
    metrics = part.run_dir / "metrics.jsonl"
    whole = metrics.read_text()
    metrics.write_text(whole + '{"step": 30, "epoch": 2, "split": "tra')  # killed while appending
    with pytest.warns(UserWarning, match=rf"{re.escape(str(metrics))}: dropped a torn last line"):
        assert len(read_metrics(part.run_dir)) == whole.count("\n")
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        fit(tiny(tmp_path, "torn"), run_dir=part.run_dir, resume=True, tensorboard=False)
    full = fit(tiny(tmp_path, "whole"), tensorboard=False)
    assert [(r["step"], r["split"]) for r in read_metrics(part.run_dir)] == \
        [(r["step"], r["split"]) for r in read_metrics(full.run_dir)]
    # a bad line that is not the last is corruption, named by file and line
    lines = metrics.read_text().splitlines()
    lines[1] = lines[1][:10]
    metrics.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(metrics))}: line 2 is not a JSON record"):
        fit(tiny(tmp_path, "torn", epochs=4), run_dir=part.run_dir, resume=True, tensorboard=False)


# ------------------------------------------------------------------------------------------- sidecars


@pytest.fixture
def trained(tmp_path):
    return fit(tiny(tmp_path, "run", epochs=2), tensorboard=False).run_dir


@pytest.mark.parametrize("which,field,value", [("last", "epoch", 7), ("best", "image_shape", [1, 4, 16]),
                                               ("last", "step", 1)])
def test_an_edited_sidecar_is_refused(trained, which, field, value):
    path = trained / "checkpoints" / f"{which}.json"
    meta = json.loads(path.read_text())
    meta[field] = value
    path.write_text(json.dumps(meta, indent=1))
    with pytest.raises(CheckpointError, match=rf"{which}.json was edited or corrupted: its fields do not match"):
        load_run(trained, which)


def test_a_deleted_best_checkpoint_is_an_error_not_a_fallback(trained, tmp_path, digits):
    (trained / "checkpoints" / "best.json").unlink()
    with pytest.raises(CheckpointError, match=r"best.json is missing, but last.json records a best checkpoint from "
                                              r"epoch 2 \(deleted or lost\); use the last checkpoint explicitly"):
        load_run(trained)
    assert load_run(trained, "last").which == "last"
    # a run that never validated has no best, and falls back to last as before
    res = fit(tiny(tmp_path, "noval", epochs=5, eval_every=5), stop_after_epoch=1, tensorboard=False)
    assert not (res.run_dir / "checkpoints" / "best.json").exists() and load_run(res.run_dir).which == "last"


def test_stale_tmp_files_are_removed_when_a_run_resumes(tmp_path):
    part = fit(tiny(tmp_path, "stale"), stop_after_epoch=1, tensorboard=False)
    ck = part.run_dir / "checkpoints"
    stale = [ck / ".last.json.0a1b2c3d4e5f.tmp", ck / ".last-e000002.safetensors.k3j_x9.tmp",
             ck / ".best.json.abcdef.tmp", part.run_dir / ".config.json.123456789abc.tmp",
             part.run_dir / ".metrics.jsonl.aaaaaaaaaaaa.tmp"]
    for f in stale:
        f.write_bytes(b"half a write")
    mine = part.run_dir / "notes.tmp"
    mine.write_text("not vaekit's")
    fit(tiny(tmp_path, "stale"), run_dir=part.run_dir, resume=True, tensorboard=False)
    assert tmp_files(part.run_dir) == [mine]


# ------------------------------------------------------------------------------------------- epochs


def test_resuming_with_fewer_epochs_than_done_leaves_the_run_alone(trained, capsys):
    from vaekit.cli.main import main

    before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(trained), "train.epochs=1", "--no-final-eval"]) == 2
    err = capsys.readouterr().err
    assert err == (f"vaekit: error: train.epochs: 1, but {trained} has trained 2 epochs; resume with "
                   "train.epochs >= 2 (the run directory is unchanged)\n")
    assert {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()} == before
