"""DDP: a worker lost mid-run makes the others exit with an error within ``train.ddp_timeout``, not hang.

Two ``vaekit train`` processes form a gloo group the way ``torchrun`` (or one node of a multi-node job)
starts them: ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` in the environment, no agent
around them that would clean up. Once rank 0 has logged training steps, the test

* kills rank 0 (``SIGKILL``; it also hosts the rendezvous store): its connections close, and the
  survivor's next collective fails at once;
* freezes rank 1 (``SIGSTOP``, as a hung process or a node that vanished without closing its
  connections): nothing closes, and only the group's timeout ends the survivor's wait.

Before the fix the survivor waited for torch's default 30 minutes in the frozen case, and in the killed
case it failed in the final barrier with a second traceback. Now it must print one ``vaekit: error:`` line
naming the lost peer and exit with status 1 within the timeout (plus start-up slack).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "vae_digits.yaml")
TIMEOUT = 6.0  #: train.ddp_timeout of the runs, seconds
SLACK = 20.0  #: for a survivor to notice, wind down and exit on 2 busy cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_steps(metrics: Path) -> int:
    if not metrics.exists():
        return 0
    lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
    return sum(1 for ln in lines[:-1] if json.loads(ln).get("split") == "train")


@pytest.mark.slow
@pytest.mark.parametrize("victim,sig", [(1, signal.SIGSTOP), (0, signal.SIGKILL)])
def test_a_lost_worker_ends_the_others_with_an_error_within_the_timeout(tmp_path, victim, sig):
    port = _free_port()
    base = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "WORLD_SIZE": "2", "VAEKIT_PROGRESS": "off"}
    cmd = [sys.executable, "-m", "vaekit.cli.main", "train", "--config", CONFIG, "--out", str(tmp_path),
           "run_name=lost", "train.epochs=1000", "train.lr_schedule={type: constant}", "train.log_every=1", f"train.ddp_timeout={TIMEOUT}",
           "--no-final-eval", "--device", "cpu", "--threads", "1"]
    procs = [subprocess.Popen(cmd, env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        metrics = tmp_path / "lost" / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while _train_steps(metrics) < 3:  # both ranks are in the training loop: rank 0 logs only after all-reduces
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [p.communicate()[1][-2000:] for p in procs if p.poll() is not None]
            time.sleep(0.2)
        survivor = procs[1 - victim]
        os.kill(procs[victim].pid, sig)
        t0 = time.monotonic()
        try:
            _, err = survivor.communicate(timeout=TIMEOUT + SLACK)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rank {1 - victim} still waits {TIMEOUT + SLACK:.0f} s after rank {victim} got "
                        f"{sig.name} (train.ddp_timeout={TIMEOUT})")
        waited = time.monotonic() - t0
        assert survivor.returncode == 1, (survivor.returncode, err[-3000:])
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"vaekit: error: DDP: rank {1 - victim} of 2 lost a peer"), err[-3000:]
        assert f"train.ddp_timeout={TIMEOUT:g} s" in last and "--resume" in last
        assert "Traceback" not in err, err[-3000:]
        assert waited < TIMEOUT + SLACK
        if sig == signal.SIGKILL:
            # a closed connection is noticed at the next collective, not after the timeout
            assert waited < TIMEOUT, f"{waited:.1f} s"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # a frozen (SIGSTOP) process dies on SIGKILL too
            p.communicate()
