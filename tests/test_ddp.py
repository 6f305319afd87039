"""DDP under torchrun: two processes on a global batch take the same steps as one process.

The latent noise is the one thing that legitimately differs between ranks (each rank
draws from its own stream), so the script trains with a deterministic objective: the
ELBO with z at the posterior mean and the analytic KL. Everything else is the real
loop: the shared permutation, sharding, gradient all-reduce, Adam, and rank-0-only
logging and checkpointing.

The data are 27 training rows, so no batch size below divides evenly into two ranks
everywhere: batch 1 leaves rank 1 without a row in every step, batch 2 in the last step of
each epoch (the case that lost 2 of 164 steps on digits at batch 16), batch 5 gives shards
of 3 and 2. One process and two ranks must take the same number of steps (every batch
used) to the same weights.

A poisoned objective (NaN loss on any shard that holds the all-ones row) checks that the
ranks agree on skipping a batch when only one of them sees the non-finite loss, and that
``train.nonfinite: stop`` ends every rank with an error instead of hanging one of them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

N_TRAIN, EPOCHS = 27, 2
#: (run name, batch size, poisoned objective, train.nonfinite)
RUNS = [("b1", 1, False, "stop"), ("b2", 2, False, "stop"), ("b5", 5, False, "stop"),
        ("skip", 5, True, "skip"), ("stop", 5, True, "stop")]

SCRIPT = r'''
import json, os, sys, torch
from vaekit.config import from_dict
from vaekit.objectives import OBJECTIVES
from vaekit.train import TrainingError, fit, shutdown_distributed

HITS = [0]

@OBJECTIVES.register("deterministic_elbo")
class DeterministicELBO:
    """-(log p(x | z = E_q[z]) - KL(q || p)): no sampling, so ranks agree with one process.

    With ``poison``, the loss is NaN whenever this process's rows include the all-ones row."""
    def __init__(self, poison: bool = False):
        self.poison = poison
    def __call__(self, model, x, step):
        q = model.posterior(x)
        ll = model.log_likelihood(x, q.mean)
        kl = torch.distributions.kl_divergence(q, model.prior())
        loss = -(ll - kl).mean()
        if self.poison and bool((x == 1).all(1).any()):
            HITS[0] += 1
            loss = loss + float("nan")
        return loss, {"elbo": -loss.detach()}

out, tag, data, runs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
rank = int(os.environ.get("RANK", "0"))
report = {}
for name, batch, poison, policy in runs:
    cfg = from_dict({
        "data": {"name": "array", "binarize": "none", "options": {"path": data}},
        "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 2},
                  "decoder": {"type": "mlp", "hidden": [8]}, "likelihood": {"type": "bernoulli"}},
        "train": {"epochs": %d, "batch_size": batch, "lr": 3e-3, "log_every": 5, "grad_clip": 10.0,
                  "objective": {"type": "deterministic_elbo", "poison": poison}, "nonfinite": policy},
        "seed": 5, "device": "cpu", "out_dir": out, "run_name": f"{tag}-{name}"})
    HITS[0] = 0
    try:
        res = fit(cfg, tensorboard=False)
        rec = {"step": res.state.step, "skipped": res.state.skipped,
               "params": {k: v.tolist() for k, v in res.model.state_dict().items()}}
    except TrainingError as e:
        rec = {"error": str(e)}
    rec["hits"] = HITS[0]
    report[name] = rec
with open(f"{out}/{tag}-rank{rank}.json", "w") as f:
    json.dump(report, f)
shutdown_distributed()
open(f"{out}/{tag}-rank{rank}.left", "w").close()
''' % EPOCHS


def _data(path: Path) -> Path:
    """Binary rows, with exactly one all-ones row in the training split (the poison)."""
    rng = np.random.default_rng(0)
    train = (rng.random((N_TRAIN, 16)) < 0.4).astype(np.float32)
    train[:, 0] = 0.0  # so that no random row is all ones
    train[17] = 1.0  # with seed 5 and batch 5: on rank 0's shard in epoch 1, on rank 1's in epoch 2
    test = (rng.random((4, 16)) < 0.4).astype(np.float32)
    np.savez(path, train=train, test=test)
    return path


def _params_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        err = np.linalg.norm(x - y) / np.linalg.norm(x)
        assert err <= 1e-5, f"{k}: relative difference {err:.2e}"


def _launch(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _failure(proc: subprocess.CompletedProcess, tmp: Path, tag: str) -> str:
    """What a failed launch left: which ranks wrote their reports and left the group, and stderr's head and tail
    (the tail alone shows only torchrun's summary, not where a rank died)."""
    files = {p.name for p in tmp.glob(f"{tag}-rank*")}
    err = proc.stderr
    return (f"exit {proc.returncode}; files written: {sorted(files)}\n--- stderr head ---\n{err[:2500]}"
            f"\n--- stderr tail ---\n{err[-2500:]}")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "ddp_train.py"
    script.write_text(SCRIPT)
    data = _data(tmp / "rows.npz")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}
    args = [str(script), str(tmp), "", str(data), json.dumps(RUNS)]
    args[2] = "single"
    one = _launch([sys.executable, *args], env, 120)
    assert one.returncode == 0, _failure(one, tmp, "single")
    args[2] = "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    two = _launch(cmd, env, 180)
    if two.returncode != 0 and all((tmp / f"ddp-rank{r}.json").exists() for r in (0, 1)):
        # Both ranks finished every run and wrote their reports; the process died afterwards, in gloo's
        # teardown (CI once saw rank 0 abort there: "terminate called without an active exception", 1 in
        # more than 100 local launches). That is torch's teardown, not what this file tests; one more
        # launch is allowed, and it is reported. A second failure, or any failure before the reports, fails.
        warnings.warn(f"torchrun failed after both ranks reported; launching again. {_failure(two, tmp, 'ddp')}")
        for p in tmp.glob("ddp-*"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        two = _launch(cmd, env, 180)
    assert two.returncode == 0, _failure(two, tmp, "ddp")
    load = lambda name: json.loads((tmp / name).read_text())  # noqa: E731
    return tmp, load("single-rank0.json"), load("ddp-rank0.json"), load("ddp-rank1.json")


@pytest.mark.parametrize("name,batch", [("b1", 1), ("b2", 2), ("b5", 5)])
def test_two_ranks_take_one_process_steps_at_batch_sizes_that_do_not_divide(reports, name, batch):
    tmp, single, rank0, rank1 = reports
    steps = EPOCHS * math.ceil(N_TRAIN / batch)  # every batch, the last short one too
    assert single[name]["step"] == rank0[name]["step"] == rank1[name]["step"] == steps
    meta = json.loads((tmp / f"ddp-{name}" / "checkpoints" / "last.json").read_text())
    assert meta["step"] == steps and meta["epoch"] == EPOCHS
    _params_close(single[name]["params"], rank0[name]["params"])
    _params_close(rank0[name]["params"], rank1[name]["params"])
    recs = [json.loads(line) for line in (tmp / f"ddp-{name}" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in recs if r["split"] == "train"]
    assert len(logged) == len(set(logged)), "more than one rank wrote metrics"
    # the runs trained, so equality is not that of two untouched initialisations
    assert recs[-1]["elbo"] > recs[0]["elbo"]


def test_ranks_skip_a_non_finite_batch_together(reports):
    _, single, rank0, rank1 = reports
    # the poisoned row fell on each rank's shard once: in one of the skipped batches only rank 1 saw NaN
    assert rank0["skip"]["hits"] == rank1["skip"]["hits"] == 1 and single["skip"]["hits"] == EPOCHS
    assert single["skip"]["skipped"] == rank0["skip"]["skipped"] == rank1["skip"]["skipped"] == EPOCHS
    assert single["skip"]["step"] == rank0["skip"]["step"] == EPOCHS * (math.ceil(N_TRAIN / 5) - 1)
    _params_close(single["skip"]["params"], rank0["skip"]["params"])
    _params_close(rank0["skip"]["params"], rank1["skip"]["params"])


def test_stop_on_a_non_finite_loss_ends_every_rank(reports):
    _, single, rank0, rank1 = reports
    for rep in (single, rank0, rank1):
        assert "train.nonfinite=stop" in rep["stop"]["error"] and "epoch 1" in rep["stop"]["error"]
