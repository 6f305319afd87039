#!/usr/bin/env python
r"""GPU speed: vaekit's training step against a hand-written eager loop, and IWAE-5000 / AIS-1000 timings.

Issue 18 ("Scale and the GPU"): on CUDA, the FM-MLP model (../shared/bench/fm-mlp/PROTOCOL.md §2, the
protocol's ``torch.manual_seed(0)`` weights for every system) is trained in one process by

* ``eager``: the protocol's hand-written eager loop (separate mu/logvar heads, closed-form KL,
  ``BCEWithLogits``, ``torch.optim.Adam`` with its default for-each kernels, ``torch.randperm`` and
  ``torch.bernoulli`` on the device);
* ``vaekit``: vaekit's trainer hot path (``train_step`` on ``ObjectiveModule(model, elbo)``, the optimiser of
  ``build_optimizer``, ``batch_indices`` + ``dynamic_binarize``), eager;
* ``vaekit_compiled``: the same with the trainer's ``train.compile`` option (``compiled_objective``, default
  ``reduce-overhead``: forward and backward replayed as CUDA graphs), unless ``--compile off``;

interleaved in blocks of ``--block`` steps, the order rotated every round (PROTOCOL.md §5, v1.1), each block
ended by ``torch.cuda.synchronize()``. Reported: the median over rounds of ``eager time / system time`` (the
system's images/s over the eager loop's; the issue's goal is >= 2 for ``vaekit_compiled``), each system's
median and minimum step time, and the compile time (the first warm-up block).

Then, with the ``vaekit`` model the blocks left behind (timings only: its numbers are those of a briefly
trained model), on MNIST test images binarised as PROTOCOL.md §1 does for Fashion-MNIST:

* IWAE-``--iwae-k`` (5000) with ``vaekit.evaluation.iwae_estimate`` on ``--eval-images`` images;
* AIS-``--ais-T`` (1000) with ``vaekit.evaluation.ais`` (``--ais-chains`` 16 chains, 10 leapfrog steps),
  all chains of the ``--ais-images`` images in one batch;

each timed and extrapolated linearly to all 10,000 test images (``seconds x 10000 / images``: that many
batches of the same size).

Without CUDA the script runs a tiny CPU setting (``--quick`` forces it anywhere): a few short blocks,
IWAE-50 and AIS-5 on a handful of images. Its JSON says ``"device": "cpu"`` and ``"setting": "cpu-smoke"``;
its figures are not GPU figures and say nothing about the goals. ``tests/test_benchmark_gpu.py`` runs it.

Usage::

    python benchmarks/gpu.py                                  # on a CUDA machine: the full setting
    python benchmarks/gpu.py --quick --out /tmp/gpu.json      # smoke check (CPU or GPU)

The last line printed is one JSON object, also written to ``--out`` (default
``benchmarks/results/gpu_<device>.json``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _bench  # noqa: E402
import fm_mlp  # noqa: E402

BATCH = fm_mlp.BATCH
N_TEST = 10_000


def log(msg: str) -> None:
    print(f"[gpu] {msg}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def training_images(n: int | None) -> tuple[str, Tensor]:
    """(name, intensities (n, 784) in [0, 1]): Fashion-MNIST (the protocol's), else MNIST, else synthetic."""
    try:
        name, raw, _ = _bench.load_raw_images(n)
        return name, _bench.to_unit(raw)
    except FileNotFoundError as e:
        log(f"{e}; using synthetic images (timings only)")
        g = torch.Generator().manual_seed(0)
        return "synthetic (no image files found)", torch.rand((n or 60_000, 784), generator=g)


def mnist_test_binary() -> tuple[str, Tensor]:
    """MNIST's 10,000 test images binarised once as PROTOCOL.md §1 binarises Fashion-MNIST's
    (``RandomState(0).random_sample((10000, 784)) < raw / 255``), as float32; synthetic if MNIST is missing."""
    path = _bench.MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if path.exists():
        return "mnist test", torch.from_numpy(fm_mlp.binarize_test(_bench.read_idx_images(path)).astype(np.float32))
    log(f"{path} missing; using synthetic binary images (timings only)")
    g = torch.Generator().manual_seed(1)
    return "synthetic (MNIST missing)", torch.bernoulli(torch.full((N_TEST, 784), 0.13), generator=g)


# ----------------------------------------------------------------------------------------------
# the systems: each a stepper ``run(steps)`` over its own copy of the protocol's initial weights
# ----------------------------------------------------------------------------------------------


def eager_stepper(train: Tensor, device: torch.device) -> Callable[[int], None]:
    """The protocol's hand-written loop (``fm_mlp.reference_stepper``: Adam(lr 1e-3, eps 1e-4), randperm,
    bernoulli) on ``device``, where ``train`` lies."""
    return fm_mlp.reference_stepper(fm_mlp.reference_model().to(device), train)


def vaekit_stepper(train: Tensor, device: torch.device, compile_mode: str = "off"
                   ) -> tuple[Callable[[int], None], nn.Module]:
    """vaekit's trainer hot path on ``device`` (``fm_mlp.vaekit_stepper``, ``train.compile=compile_mode``) on a
    copy of the protocol's weights; returns the stepper and the model."""
    model, _ = fm_mlp.vaekit_model()
    run, _ = fm_mlp.vaekit_stepper(model.to(device), train, seed=1, compile_mode=compile_mode)
    return run, model


# ----------------------------------------------------------------------------------------------
# evaluation timings
# ----------------------------------------------------------------------------------------------


def time_iwae(model: nn.Module, x: Tensor, k: int, batch: int, device: torch.device) -> dict[str, Any]:
    from vaekit.evaluation import iwae_estimate

    model.eval()
    sync(device)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fm_mlp.NLL_SEED)
        vals = torch.cat([iwae_estimate(model, x[i:i + batch], k).double().cpu() for i in range(0, x.shape[0], batch)])
    sync(device)
    s = time.perf_counter() - t0
    return {"k": k, "images": x.shape[0], "batch": batch, "seconds": s,
            "seconds_all_test_images": s * N_TEST / x.shape[0], "mean_log_px_bound": float(vals.mean()),
            "stderr": float(vals.std() / math.sqrt(vals.numel())) if vals.numel() > 1 else float("nan")}


def time_ais(model: nn.Module, x: Tensor, T: int, chains: int, leapfrog: int, device: torch.device) -> dict[str, Any]:
    from vaekit.evaluation import ais

    sync(device)
    t0 = time.perf_counter()
    r = ais(model, x, n_chains=chains, T=T, leapfrog_steps=leapfrog, seed=fm_mlp.NLL_SEED)
    sync(device)
    s = time.perf_counter() - t0
    return {"T": T, "chains": chains, "leapfrog_steps": leapfrog, "images": x.shape[0], "seconds": s,
            "seconds_all_test_images": s * N_TEST / x.shape[0], "mean_log_px": float(r.log_px.mean()),
            "acceptance": r.acceptance}


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--quick", action="store_true", help="the tiny smoke setting (the default without CUDA)")
    p.add_argument("--compile", choices=["off", "default", "reduce-overhead", "max-autotune"], default=None,
                   help="train.compile of the vaekit_compiled system (default: reduce-overhead on CUDA, off on CPU, "
                        "where inductor's C++ build takes minutes; off drops the system)")
    p.add_argument("--block", type=int, help="training steps per block (default 60; smoke 5)")
    p.add_argument("--rounds", type=int, help="timed rounds (default 30; smoke 3)")
    p.add_argument("--warmup-rounds", type=int, default=2, help="untimed rounds first (compilation happens here)")
    p.add_argument("--train-images", type=int, help="training images (default 60000; smoke 2000)")
    p.add_argument("--iwae-k", type=int, help="importance samples (default 5000; smoke 50)")
    p.add_argument("--eval-images", type=int, help="test images for IWAE (default 1000; smoke 10)")
    p.add_argument("--iwae-batch", type=int, default=100, help="images per iwae_estimate call")
    p.add_argument("--ais-T", type=int, help="AIS transitions (default 1000; smoke 5)")
    p.add_argument("--ais-images", type=int, help="test images for AIS, one batch (default 1000; smoke 4)")
    p.add_argument("--ais-chains", type=int, help="AIS chains per image (default 16; smoke 4)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU work)")
    p.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/gpu_<device>.json)")
    a = p.parse_args(argv)

    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    smoke = a.quick or device.type == "cpu"
    dflt = (lambda full, tiny: tiny if smoke else full)  # noqa: E731
    block, rounds = a.block or dflt(60, 5), a.rounds or dflt(30, 3)
    n_train = a.train_images or dflt(60_000, 2_000)
    iwae_k, eval_images = a.iwae_k or dflt(5000, 50), a.eval_images or dflt(1000, 10)
    ais_T, ais_images, ais_chains = a.ais_T or dflt(1000, 5), a.ais_images or dflt(1000, 4), a.ais_chains or dflt(16, 4)
    compile_mode = a.compile or ("reduce-overhead" if device.type == "cuda" else "off")
    torch.set_num_threads(a.threads)
    setting = "cpu-smoke" if device.type == "cpu" else ("gpu-smoke" if smoke else "gpu")
    log(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else _bench.cpu_name()}), "
        f"setting {setting}, train.compile={compile_mode}")

    data_name, train = training_images(n_train)
    train = train.to(device)
    systems: dict[str, Callable[[int], None]] = {"eager": eager_stepper(train, device)}
    systems["vaekit"], model = vaekit_stepper(train, device)
    if compile_mode != "off":
        systems["vaekit_compiled"], _ = vaekit_stepper(train, device, compile_mode)

    first_block: dict[str, float] = {}

    def block_of(name: str) -> Callable[[], None]:
        def run() -> None:
            t = time.perf_counter()
            systems[name](block)
            sync(device)
            first_block.setdefault(name, time.perf_counter() - t)  # the first block holds the compilation

        return run

    timing = _bench.interleave({n: block_of(n) for n in systems}, rounds, a.warmup_rounds, label="train")
    train_res: dict[str, Any] = {"block_steps": block, "rounds": rounds, "warmup_rounds": a.warmup_rounds,
                                 "data": data_name, "train_images": int(train.shape[0]), "batch": BATCH,
                                 "first_block_s": first_block, "raw_block_s": timing["s"], "orders": timing["orders"]}
    for name in systems:
        if name != "eager":
            # eager time / system time: the system's images/s over the eager loop's (> 1: faster)
            train_res[f"eager_over_{name}"] = _bench.ratio_summary(timing, "eager", name, per=block)
    for name in systems:
        per_step = [s / block for s in timing["s"][name]]
        train_res[f"{name}_images_per_s"] = BATCH / statistics.median(per_step)

    test_name, test = mnist_test_binary()
    model.eval()
    iwae = time_iwae(model, test[:eval_images].to(device), iwae_k, a.iwae_batch, device)
    ais_res = time_ais(model, test[:ais_images].to(device), ais_T, ais_chains, 10, device)
    log(f"IWAE-{iwae_k}: {iwae['seconds']:.1f} s for {eval_images} images, ~{iwae['seconds_all_test_images']:.0f} s "
        f"for 10,000; AIS-{ais_T}: {ais_res['seconds']:.1f} s for {ais_images} images, "
        f"~{ais_res['seconds_all_test_images']:.0f} s for 10,000")

    result: dict[str, Any] = {
        "benchmark": "gpu", "device": device.type, "setting": setting,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "note": ("CPU smoke setting: a check that the script runs; its figures are not GPU figures and say nothing "
                 "about the goals" if device.type == "cpu" else
                 ("smoke setting: figures mean nothing" if smoke else "full setting")),
        "train_compile": compile_mode, "training": train_res,
        "evaluation": {"data": test_name, "iwae": iwae, "ais": ais_res,
                       "model": "the vaekit system's model after the timed blocks (timings only)"},
        "versions": _bench.versions(), "vaekit_commit": _bench.vaekit_commit(),
    }
    out = a.out or HERE / "results" / f"gpu_{device.type}{'_smoke' if smoke else ''}.json"
    _bench.write_result(result, out)
    return result


if __name__ == "__main__":
    main()
