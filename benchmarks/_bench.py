"""Shared helpers of the benchmark scripts: the image data, interleaved block timing, summaries.

Interleaving (../shared/bench/fm-mlp/PROTOCOL.md section 5, version 1.1): a speed ratio is
measured in one process, the systems run one block each per round, the order rotated every
round, and the ratio is the median over rounds of the per-round ratio, so that both systems of
a round share the machine's phase (slow phases of the shared VM last tens of seconds).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from vaekit.train.outputs import write_output

FM_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_DIR = Path("/work/shared/data/mnist")


def read_idx_images(path: Path) -> np.ndarray:
    """An IDX3 ubyte file (gzip) -> (N, rows*cols) uint8."""
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, n, r, c = np.frombuffer(buf[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError(f"{path}: bad IDX3 magic {magic}")
    return np.frombuffer(buf[16:], dtype=np.uint8).reshape(n, r * c).copy()


def image_source() -> tuple[str, Path]:
    """``("fashion_mnist", FM_DIR)`` when the Debian package is installed, else MNIST from /work/shared/data."""
    if (FM_DIR / "train-images-idx3-ubyte.gz").exists():
        return "fashion_mnist", FM_DIR
    if (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        print(f"[bench] {FM_DIR} missing (apt-get install dataset-fashion-mnist); falling back to MNIST in {MNIST_DIR}",
              file=sys.stderr)
        return "mnist (fallback: Fashion-MNIST not installed)", MNIST_DIR
    raise FileNotFoundError(f"neither {FM_DIR} (apt-get install dataset-fashion-mnist) nor {MNIST_DIR} has the IDX files")


def load_raw_images(n_train: int | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(dataset name, raw training images (N, 784) uint8, raw test images (10000, 784) uint8)."""
    name, root = image_source()
    train = read_idx_images(root / "train-images-idx3-ubyte.gz")
    test = read_idx_images(root / "t10k-images-idx3-ubyte.gz")
    return name, (train if n_train is None else train[:n_train]), test


def to_unit(raw: np.ndarray) -> Tensor:
    """uint8 images -> float32 intensities ``raw / 255`` in [0, 1]."""
    return torch.from_numpy(raw).float().div_(255.0)


#: the other processes' share of the machine's CPU time above which a round counts as disturbed
DISTURBED = 0.10
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds() -> tuple[float, float, float]:
    """(busy CPU seconds of the whole machine, steal seconds, this process's CPU seconds) so far.

    Busy = user + nice + system + irq + softirq from /proc/stat (all cores); NaNs where it is missing.
    """
    r = resource.getrusage(resource.RUSAGE_SELF)
    own = r.ru_utime + r.ru_stime
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return math.nan, math.nan, own
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq) / _HZ, steal / _HZ, own


class OtherLoad:
    """The share of the machine's CPU time that other processes (and, as steal, other VMs) used."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.t, (self.busy, self.steal, self.own) = time.perf_counter(), _cpu_seconds()

    def read(self) -> dict[str, float]:
        t, (busy, steal, own) = time.perf_counter(), _cpu_seconds()
        cap = max(1e-9, (t - self.t) * (os.cpu_count() or 1))
        return {"others": max(0.0, (busy - self.busy) - (own - self.own)) / cap, "steal": (steal - self.steal) / cap}


#: seconds that wait_for_quiet may still spend over the whole run (set by the scripts' --wait-budget)
WAIT_BUDGET = {"left": 360.0}


def wait_for_quiet(threshold: float, max_wait: float, probe: float = 0.5) -> float:
    """Sleep until other processes use under ``threshold`` of the CPU over ``probe`` s.

    At most ``max_wait`` s, and at most what is left of ``WAIT_BUDGET`` for the whole run (then
    rounds run whatever the load; each round's ``others`` share says how disturbed it was).
    Returns the seconds waited beyond the first probe (0 when ``threshold`` <= 0).
    """
    if threshold <= 0:
        return 0.0
    t0 = time.perf_counter()
    limit = min(max_wait, WAIT_BUDGET["left"])
    while True:
        meter = OtherLoad()
        time.sleep(probe)
        if meter.read()["others"] < threshold or time.perf_counter() - t0 >= limit:
            waited = time.perf_counter() - t0 - probe
            WAIT_BUDGET["left"] = max(0.0, WAIT_BUDGET["left"] - waited)
            return waited


def add_quiet_args(p: Any) -> None:
    """``--quiet``, ``--max-wait``, ``--wait-budget`` on an argparse parser (see :func:`interleave`)."""
    p.add_argument("--quiet", type=float, default=DISTURBED,
                   help="before each round wait until other processes use under this share of the CPU (0: never wait)")
    p.add_argument("--max-wait", type=float, default=60.0, help="most seconds one round waits for quiet")
    p.add_argument("--wait-budget", type=float, default=360.0, help="most seconds all rounds together wait")


def interleave(blocks: dict[str, Callable[[], Any]], rounds: int, warmup_rounds: int = 1,
               label: str = "", quiet: float = 0.0, max_wait: float = 120.0) -> dict[str, Any]:
    """Run each system's block once per round, the order rotated by one every round; time each block.

    ``blocks[name]()`` runs one block of the system (e.g. 60 training steps). The first
    ``warmup_rounds`` rounds are run the same way and discarded. With ``quiet`` > 0, each round
    first waits (at most ``max_wait`` s) until other processes use under that share of the CPU.
    Every round records the share other processes used while it ran (``others``, from /proc/stat
    minus this process's CPU time) and the steal time. Returns ``{"orders": [...],
    "s": {name: [block seconds per round]}, "others": [...], "steal": [...], "waited_s": [...]}``.
    """
    names = list(blocks)
    out: dict[str, Any] = {"orders": [], "s": {n: [] for n in names}, "others": [], "steal": [], "waited_s": []}
    for r in range(-warmup_rounds, rounds):
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        waited = wait_for_quiet(quiet, max_wait) if r >= 0 else 0.0
        times = {}
        meter = OtherLoad()
        for n in order:
            t = time.perf_counter()
            blocks[n]()
            times[n] = time.perf_counter() - t
        load = meter.read()
        if r >= 0:
            out["orders"].append(order)
            for n in names:
                out["s"][n].append(times[n])
            out["others"].append(load["others"])
            out["steal"].append(load["steal"])
            out["waited_s"].append(waited)
        if label:
            tag = f"round {r + 1}/{rounds}" if r >= 0 else f"warm-up {r + warmup_rounds + 1}/{warmup_rounds}"
            print(f"[{label}] {tag}: " + ", ".join(f"{n} {times[n]:.3f} s" for n in order)
                  + f"; others {100 * load['others']:.0f}% of the CPU" + (f", waited {waited:.0f} s" if waited >= 1 else ""),
                  file=sys.stderr, flush=True)
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles, min and max of a list (the figures quoted for a per-round ratio)."""
    v = sorted(values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "q25": q[0], "q75": q[2], "min": v[0], "max": v[-1], "n": len(v)}


def ratio_summary(timing: dict[str, Any], num: str, den: str, per: int | dict[str, int] = 1,
                  unit: str = "ms") -> dict[str, Any]:
    """Per-round ``time[num] / time[den]`` per step, with its spread, and each system's median / min time per step.

    ``per`` (one int, or one per system) divides a block's seconds into per-step (or per-item)
    times, reported in ``unit``; the ratios are of these per-step times.
    """
    scale = {"ms": 1e3, "s": 1.0}[unit]
    n_per = per if isinstance(per, dict) else {num: per, den: per}
    s = {n: [t / n_per[n] for t in timing["s"][n]] for n in (num, den)}
    ratios = [a / b for a, b in zip(s[num], s[den])]
    res = {"ratio": f"{num}_time / {den}_time", "per_round": ratios, **spread(ratios),
           # a second robust reading: each system's fastest block (the least disturbed one)
           "ratio_of_minimums": min(s[num]) / min(s[den])}
    if timing.get("others"):
        # the same figure over the rounds in which other processes used under DISTURBED of the CPU
        calm = [x for x, o in zip(ratios, timing["others"]) if o < DISTURBED]
        res["undisturbed_rounds"] = {"threshold_others": DISTURBED, **(spread(calm) if calm else {"n": 0})}
        res["others_share"] = spread(timing["others"])
    for n in (num, den):
        per_item = [t * scale for t in s[n]]
        res[f"{n}_{unit}"] = {"median": statistics.median(per_item), "min": min(per_item), "max": max(per_item)}
    return res


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def versions() -> dict[str, Any]:
    import vaekit

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "vaekit": getattr(vaekit, "__version__", "?"), "vaekit_file": vaekit.__file__,
            "machine": platform.machine(), "cpu": cpu_name(), "threads": torch.get_num_threads(),
            "cores": os.cpu_count()}


def git_head(path: Path) -> str | None:
    """The commit checked out in the git tree that holds ``path`` (for the result's record)."""
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def vaekit_commit() -> str | None:
    import vaekit

    return git_head(Path(vaekit.__file__).resolve().parent)


def write_result(result: dict[str, Any], out: Path) -> None:
    """Print ``result`` as the last stdout line, then write it to ``out`` (indented, atomically: a failed write
    raises :class:`vaekit.train.outputs.OutputError` naming the file, after the figures were printed)."""
    print(json.dumps(result), flush=True)
    write_output(out, json.dumps(result, indent=1) + "\n", payload=result)
