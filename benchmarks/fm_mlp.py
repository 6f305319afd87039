#!/usr/bin/env python
r"""FM-MLP: vaekit against a minimal hand-written PyTorch loop (../shared/bench/fm-mlp/PROTOCOL.md v1).

The systems (``ref``: the hand-written loop; ``vaekit``: vaekit's model, ``train_step``, optimiser
and binarisation exactly as ``vaekit.train.fit`` uses them) train the
one-stochastic-layer MLP VAE of Burda et al. (2015, arXiv:1509.00519) on dynamically
binarised Fashion-MNIST from the same initial weights, and are scored by one shared
evaluator (test ELBO with 10 samples, seed 1234; IWAE-5000 NLL on the first 1000 test
images, seed 4321). Each (system, round) runs in its own subprocess so that ``ru_maxrss``
is per system; odd rounds run the systems in ``--systems`` order, even rounds in reverse
(PROTOCOL.md section 5). Section 6's GEMM timings give the machine's limit, and a last
worker times an IWAE training step at k=50 against k=1.

Usage::

    python benchmarks/fm_mlp.py                    # the protocol: 10 epochs, two rounds
    python benchmarks/fm_mlp.py --quick            # 2 epochs, 100 NLL images: a smoke check
    python benchmarks/fm_mlp.py --epochs 3 --out /tmp/fm.json

The last line printed is one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "fm_mlp.json"
FM_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE = Path(os.environ.get("VAEKIT_CACHE", Path.home() / ".cache" / "vaekit"))

TEST_SHA256 = "54e39ecf71491e6a1227165723f9562e4d39939cd14b794230ed52c5cf74db1f"
TEST_MEAN = 0.2869043
D, H, Z = 784, 200, 50
BATCH = 100
N_TRAIN = 60_000
ELBO_SEED, NLL_SEED = 1234, 4321
#: forward matmul FLOPs per image (PROTOCOL.md section 6)
FWD_FLOPS = 2 * (D * H + H * H + 2 * H * Z + Z * H + H * H + H * D)
#: the GEMMs of one training step per image: forward + two backward GEMMs per layer, minus enc.l1's input gradient
TRAIN_GEMM_FLOPS = 3 * FWD_FLOPS - 2 * D * H
#: decoder forward FLOPs per posterior sample (IWAE evaluation)
DEC_FLOPS = 2 * (Z * H + H * H + H * D)
ENC_FLOPS = 2 * (D * H + H * H + 2 * H * Z)


def rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------
# 1. data
# ----------------------------------------------------------------------------------------------


def _read_idx_images(path: Path) -> np.ndarray:
    """An IDX3 ubyte file (gzip) -> (N, rows*cols) uint8."""
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, n, r, c = np.frombuffer(buf[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError(f"{path}: bad IDX3 magic {magic}")
    return np.frombuffer(buf[16:], dtype=np.uint8).reshape(n, r * c).copy()


def _fashion_mnist() -> tuple[Tensor, np.ndarray]:
    """Training intensities (60000, 784) float32 and the raw test images (10000, 784) uint8.

    Through ``vaekit.data.load_dataset("fashion_mnist")`` when it is there, else the IDX files.
    No float64 copy of the training set is made: the training process's peak RSS is a metric.
    """
    try:
        from vaekit.data import load_dataset

        ds = load_dataset("fashion_mnist", data_dir=FM_DIR, val_size=0)
        # k/255 in float32 times 255 is within 1e-4 of k: rounding recovers the raw byte exactly
        te = torch.round(ds.test.x * 255).to(torch.uint8).numpy()
        if ds.train.x.shape == (N_TRAIN, D) and te.shape == (10_000, D):
            return ds.train.x, te
    except Exception as e:  # the loader is optional here: the IDX files are the protocol's source
        print(f"[fm_mlp] vaekit.data fashion_mnist unavailable ({type(e).__name__}: {e}); reading IDX", file=sys.stderr)
    raw = _read_idx_images(FM_DIR / "train-images-idx3-ubyte.gz")
    train = torch.from_numpy(raw).float().div_(255.0)
    return train, _read_idx_images(FM_DIR / "t10k-images-idx3-ubyte.gz")


def binarize_test(raw: np.ndarray) -> np.ndarray:
    """PROTOCOL.md section 1: ``(RandomState(0).random_sample((10000, 784)) < raw/255).astype(uint8)``."""
    x = raw.astype(np.float64) / 255.0
    u = np.random.RandomState(0).random_sample((10000, 784))
    return (u < x).astype(np.uint8)


def load_data() -> tuple[Tensor, Tensor]:
    """Training intensities (60000, 784) float32 in [0,1] and the fixed binary test set (10000, 784) float32.

    The binary test set is cached as ``~/.cache/vaekit/fm_test_bin.npy`` and checked against
    the protocol's sha256 and mean pixel every time.
    """
    train, raw_test = _fashion_mnist()
    cache = CACHE / "fm_test_bin.npy"
    x_bin = None
    if cache.exists():
        x_bin = np.load(cache, allow_pickle=False)
    if x_bin is None or hashlib.sha256(np.ascontiguousarray(x_bin).tobytes()).hexdigest() != TEST_SHA256:
        x_bin = binarize_test(raw_test)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cache, x_bin)
    digest = hashlib.sha256(np.ascontiguousarray(x_bin).tobytes()).hexdigest()
    if digest != TEST_SHA256 or x_bin.shape != (10000, 784) or abs(x_bin.mean() - TEST_MEAN) > 5e-8:
        raise RuntimeError(f"binary test set does not match PROTOCOL.md: sha256 {digest}, mean {x_bin.mean():.7f}")
    return train, torch.from_numpy(x_bin.astype(np.float32))


# ----------------------------------------------------------------------------------------------
# 2. model: the reference module and the same weights in vaekit
# ----------------------------------------------------------------------------------------------


class RefVAE(nn.Module):
    """The protocol's reference model: separate mu / logvar heads, closed-form KL, BCEWithLogits."""

    def __init__(self) -> None:
        super().__init__()
        # creation order fixes the initial weights (PROTOCOL.md section 2)
        self.enc_l1, self.enc_l2 = nn.Linear(D, H), nn.Linear(H, H)
        self.enc_mu, self.enc_logvar = nn.Linear(H, Z), nn.Linear(H, Z)
        self.dec_l1, self.dec_l2, self.dec_out = nn.Linear(Z, H), nn.Linear(H, H), nn.Linear(H, D)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.enc_l2(torch.tanh(self.enc_l1(x))))
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        return self.dec_out(torch.tanh(self.dec_l2(torch.tanh(self.dec_l1(z)))))

    def loss(self, x: Tensor) -> Tensor:
        """Batch mean of -ELBO: sum BCEWithLogits + closed-form KL (PROTOCOL.md section 3)."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.decode(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (rec + kl) / x.shape[0]


def reference_model() -> RefVAE:
    torch.manual_seed(0)
    return RefVAE()


VAEKIT_SPEC = {
    "type": "vae",
    "encoder": {"type": "mlp", "hidden": [H, H], "activation": "tanh"},
    # scale="exp": the head's second half is log sigma^2; min_scale=0 keeps sigma = exp(logvar/2) exactly
    "latent": {"type": "gaussian", "dim": Z, "scale": "exp", "min_scale": 0.0},
    "decoder": {"type": "mlp", "hidden": [H, H], "activation": "tanh"},
    "likelihood": {"type": "bernoulli"},
}


def vaekit_model() -> nn.Module:
    """vaekit's model from its config spec, with the reference's initial weights copied in."""
    from vaekit.models import build_model

    model = build_model(VAEKIT_SPEC, data_dim=D)
    ref = reference_model()
    pairs = [(model.encoder[0], ref.enc_l1), (model.encoder[2], ref.enc_l2), (model.decoder[0], ref.dec_l1),
             (model.decoder[2], ref.dec_l2), (model.decoder[4], ref.dec_out)]
    with torch.no_grad():
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        # the fused head is Linear(200, 100) = [mu; logvar]
        model.latent.head.weight.copy_(torch.cat([ref.enc_mu.weight, ref.enc_logvar.weight]))
        model.latent.head.bias.copy_(torch.cat([ref.enc_mu.bias, ref.enc_logvar.bias]))
    if sum(p.numel() for p in model.parameters()) != 425_284:
        raise RuntimeError("vaekit model does not have the protocol's 425,284 parameters")
    return model


def vaekit_encode_decode(model: nn.Module) -> tuple[Callable, Callable]:
    """``encode(x) -> (mu, logvar)`` and ``decode(z) -> logits`` for the shared evaluator."""

    def encode(x: Tensor) -> tuple[Tensor, Tensor]:
        mu, a = model.latent.head(model.encoder(x)).chunk(2, dim=-1)
        return mu, a

    return encode, model.decoder


# ----------------------------------------------------------------------------------------------
# 3. training: one epoch per call
# ----------------------------------------------------------------------------------------------


def reference_trainer(model: RefVAE) -> Callable[[Tensor], None]:
    """The hand-written eager loop: Adam(lr 1e-3, eps 1e-4), batch 100, reshuffle, torch.bernoulli."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)

    def epoch(train: Tensor) -> None:
        perm = torch.randperm(train.shape[0])
        for i in range(0, train.shape[0], BATCH):
            x = torch.bernoulli(train[perm[i:i + BATCH]])
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return epoch


def vaekit_trainer(model: nn.Module) -> Callable[[Tensor], None]:
    """vaekit's trainer hot path: ``vaekit.train.train_step`` on the registered ``elbo`` objective.

    Batches come from ``vaekit.data.batch_indices`` (one randperm per epoch, index slices) and
    ``dynamic_binarize(..., check=False)`` (the range is checked once per data set), as in
    ``vaekit.train.fit``; the optimiser is the one ``vaekit.train.build_optimizer`` makes (fused
    Adam where available) with the protocol's settings. ``fit``'s per-epoch extras (validation,
    checkpoint, logging) are not part of the timed epoch.
    """
    from types import SimpleNamespace

    from vaekit.data import batch_indices, dynamic_binarize
    from vaekit.objectives import OBJECTIVES
    from vaekit.train import ObjectiveModule, build_optimizer, train_step

    compute = ObjectiveModule(model, OBJECTIVES.get("elbo")())
    cfg = SimpleNamespace(train=SimpleNamespace(lr=1e-3, betas=(0.9, 0.999), eps=1e-4, weight_decay=0.0))
    opt = build_optimizer(model, cfg)
    state = {"step": 0}

    def epoch(train: Tensor) -> None:
        for idx in batch_indices(train.shape[0], BATCH, None, shuffle=True):
            train_step(compute, opt, dynamic_binarize(train[idx], None, check=False), state["step"])
            state["step"] += 1

    return epoch


# ----------------------------------------------------------------------------------------------
# 4. the shared evaluator (given only encode and decode)
# ----------------------------------------------------------------------------------------------

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def bernoulli_log_lik(x: Tensor, logits: Tensor) -> Tensor:
    r"""``log p(x|z) = sum_i x_i l_i - softplus(l_i)`` over the last dim (exact, no clamping)."""
    return (x * logits - F.softplus(logits)).sum(-1)


@torch.no_grad()
def evaluate_elbo(encode: Callable, decode: Callable, x: Tensor, k: int = 10, seed: int = ELBO_SEED,
                  batch: int = 500, log_lik: Callable[[Tensor, Tensor], Tensor] = bernoulli_log_lik
                  ) -> dict[str, float]:
    r"""Test ELBO: mean over images of :math:`\frac1k\sum_i \log p(x|z_i) - \mathrm{KL}(q\|p)`, closed-form KL.

    Noise ``eps ~ N(0, I)`` of shape ``(k, B, Z)`` per image batch comes from a private
    ``torch.Generator(seed)`` in batch order, so every system sees the same noise.
    ``log_lik(x, decoder_output) -> (..., B)`` is the protocol's Bernoulli by default
    (the tests swap in a Gaussian to compare with a closed form).
    """
    g = torch.Generator().manual_seed(seed)
    vals = []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch]
        mu, logvar = encode(xb)
        eps = torch.randn((k, *mu.shape), generator=g, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, Z)
        ll = log_lik(xb, decode(z)).double().mean(0)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).double()
        vals.append(ll - kl)
    v = torch.cat(vals)
    return {"elbo": float(v.mean()), "stderr": float(v.std() / math.sqrt(v.numel())), "n": v.numel(), "k": k}


@torch.no_grad()
def evaluate_nll(encode: Callable, decode: Callable, x: Tensor, k: int = 5000, seed: int = NLL_SEED,
                 images: int = 100, samples: int = 50,
                 log_lik: Callable[[Tensor, Tensor], Tensor] = bernoulli_log_lik) -> dict[str, float]:
    r"""IWAE-k estimate of -log p(x) (Burda et al. 2015, Eq. 8), mean over images, float64 log-sum-exp.

    .. math:: \log p(x) \approx \log\frac1k\sum_{j=1}^k \frac{p(x|z_j)p(z_j)}{q(z_j|x)},\quad z_j = \mu + \sigma\epsilon_j

    Images go in blocks of ``images``; samples in chunks of ``samples`` (``images*samples``
    decoder rows at a time bound the memory). Each chunk's noise ``(samples, images, Z)``
    comes from ``torch.Generator(seed)`` in (block, chunk) order. All ``k`` log-weights of an
    image are kept in float64 and reduced once. Also returns the mean log-weight (a k-sample
    ELBO estimate on the same images) and the standard error of the NLL over images.
    ``log_lik`` as in :func:`evaluate_elbo`.
    """
    if k % samples:
        raise ValueError(f"k={k} must be a multiple of the sample chunk {samples}")
    g = torch.Generator().manual_seed(seed)
    nll, mean_lw = [], []
    for i in range(0, x.shape[0], images):
        xb = x[i:i + images]
        mu, logvar = encode(xb)
        sigma = torch.exp(0.5 * logvar)
        # log q(z|x) = sum_j -eps_j^2/2 - log sigma_j - log sqrt(2 pi); the sigma part is per image
        log_q_const = -(0.5 * logvar).sum(-1) - Z * _HALF_LOG_2PI
        lw = torch.empty((k, xb.shape[0]), dtype=torch.float64)
        for s in range(0, k, samples):
            eps = torch.randn((samples, *mu.shape), generator=g, dtype=mu.dtype)
            z = mu + sigma * eps  # (samples, B, Z)
            log_pz = -0.5 * z.pow(2).sum(-1) - Z * _HALF_LOG_2PI
            log_q = -0.5 * eps.pow(2).sum(-1) + log_q_const
            lw[s:s + samples] = (log_lik(xb, decode(z)) + log_pz - log_q).double()
        nll.append(-(torch.logsumexp(lw, 0) - math.log(k)))
        mean_lw.append(lw.mean(0))
    v, m = torch.cat(nll), torch.cat(mean_lw)
    return {"nll": float(v.mean()), "stderr": float(v.std() / math.sqrt(v.numel())), "n": v.numel(), "k": k,
            "mean_log_weight": float(m.mean())}


# ----------------------------------------------------------------------------------------------
# 6. the physical limit: GEMM timings
# ----------------------------------------------------------------------------------------------


def _best_mm(m: int, k: int, n: int, ta: bool = False, tb: bool = False, reps: int = 5, inner: int = 0) -> float:
    """Best-of-``reps`` seconds of one ``torch.mm`` of (m,k)@(k,n), operands stored transposed if asked."""
    a = torch.randn(k, m).t() if ta else torch.randn(m, k)
    b = torch.randn(n, k).t() if tb else torch.randn(k, n)
    out = torch.empty(m, n)
    if inner == 0:
        inner = max(1, int(2e8 // (2 * m * k * n)))  # ~0.2 GFLOP per timed run
    torch.mm(a, b, out=out)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=out)
        best = min(best, (time.perf_counter() - t) / inner)
    return best


def _layers() -> list[tuple[int, int]]:
    """(in, out) of every linear layer of the model (the two heads as the reference has them)."""
    return [(D, H), (H, H), (H, Z), (H, Z), (Z, H), (H, H), (H, D)]


def gemm_limits(iwae_rows: tuple[int, ...], iwae_images: int, k: int) -> dict[str, Any]:
    """PROTOCOL.md section 6, plus the GEMM-only time of the IWAE-k evaluation."""
    out: dict[str, Any] = {"square": {}}
    for n in (512, 1024, 2048):
        t = _best_mm(n, n, n)
        out["square"][str(n)] = {"s": t, "gflops": 2 * n ** 3 / t / 1e9}
    t = _best_mm(BATCH, D, H)
    out["100x784@784x200"] = {"s": t, "gflops": 2 * BATCH * D * H / t / 1e9}
    # one training step in autograd's layouts: y = x W^T (forward), dX = dY W (backward), dW = dY^T X
    step_s, step_flops = 0.0, 0
    for i, (fin, fout) in enumerate(_layers()):
        step_s += _best_mm(BATCH, fin, fout, tb=True)          # forward: x @ W.t()
        step_flops += 2 * BATCH * fin * fout
        step_s += _best_mm(fout, BATCH, fin, ta=True)          # dW = dY.t() @ X
        step_flops += 2 * BATCH * fin * fout
        if i != 0:                                             # no input gradient for enc.l1
            step_s += _best_mm(BATCH, fout, fin)               # dX = dY @ W
            step_flops += 2 * BATCH * fin * fout
    assert step_flops == BATCH * TRAIN_GEMM_FLOPS, (step_flops, BATCH * TRAIN_GEMM_FLOPS)
    out["train_step"] = {"s": step_s, "gflops": step_flops / step_s / 1e9, "flops": step_flops}
    peak = max([v["gflops"] for v in out["square"].values()] + [out["100x784@784x200"]["gflops"],
                                                                 out["train_step"]["gflops"]])
    out["practical_peak_gflops"] = peak
    out["train_flops_per_image"] = {"approx_3x_forward": 3 * FWD_FLOPS, "exact_gemm": TRAIN_GEMM_FLOPS}
    out["limit_images_per_s_at_peak"] = peak * 1e9 / TRAIN_GEMM_FLOPS
    out["limit_images_per_s_at_step_gemms"] = BATCH / step_s
    # IWAE-k evaluation of `iwae_images` images: the decoder on k samples of each, the encoder once per
    # image. Timed at each row layout in `iwae_rows` (vaekit's default chunk is 1000 rows, the shared
    # evaluator's 5000); the limit is the fastest, so ratios against it are conservative.
    enc_s = sum(_best_mm(100, fin, fout, tb=True) for fin, fout in [(D, H), (H, H), (H, 2 * Z)]) * iwae_images / 100
    layouts = {}
    for rows in iwae_rows:
        dec_chunk = sum(_best_mm(rows, fin, fout, tb=True) for fin, fout in [(Z, H), (H, H), (H, D)])
        layouts[str(rows)] = dec_chunk * iwae_images * k / rows + enc_s
    best = min(layouts, key=layouts.get)
    out["iwae_eval_gemm"] = {"rows_per_chunk": int(best), "s_by_rows_per_chunk": layouts, "images": iwae_images,
                             "k": k, "encoder_s": enc_s, "s": layouts[best],
                             "flops": iwae_images * (k * DEC_FLOPS + ENC_FLOPS)}
    return out


# ----------------------------------------------------------------------------------------------
# workers
# ----------------------------------------------------------------------------------------------


def _timed_epochs(epoch_fn: Callable[[Tensor], None], train: Tensor, epochs: int) -> list[float]:
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        epoch_fn(train)
        times.append(time.perf_counter() - t)
        print(f"[fm_mlp]   epoch {len(times)}: {times[-1]:.2f} s", file=sys.stderr, flush=True)
    return times


def worker_train(system: str, epochs: int, eval_images: int, nll: bool, vaekit_eval: bool,
                 train_images: int = N_TRAIN) -> dict[str, Any]:
    """Train one system for ``epochs`` and score it; everything in this process (per-system RSS)."""
    train, test = load_data()
    train = train[:train_images]
    torch.manual_seed(1)  # the training noise (shuffles, binarisation, eps): same seed for both systems
    if system == "ref":
        model = reference_model()
        epoch_fn = reference_trainer(model)
        encode, decode = model.encode, model.decode
    elif system == "vaekit":
        model = vaekit_model()
        torch.manual_seed(1)
        epoch_fn = vaekit_trainer(model)
        encode, decode = vaekit_encode_decode(model)
    else:
        raise ValueError(f"unknown system {system!r}")
    model.train()
    times = _timed_epochs(epoch_fn, train, epochs)
    later = times[1:] if len(times) > 1 else times
    res: dict[str, Any] = {"system": system, "epochs": epochs, "epoch_s": times, "first_epoch_s": times[0],
                           "median_s_per_epoch": statistics.median(later)}
    res["images_per_s"] = train.shape[0] / res["median_s_per_epoch"]
    res["peak_rss_mb_after_train"] = rss_mb()
    model.eval()
    t = time.perf_counter()
    res["test_elbo"] = evaluate_elbo(encode, decode, test)
    res["elbo_eval_s"] = time.perf_counter() - t
    if nll:
        t = time.perf_counter()
        res["test_nll"] = evaluate_nll(encode, decode, test[:eval_images])
        res["nll_eval_s"] = time.perf_counter() - t
    res["peak_rss_mb_after_eval"] = rss_mb()
    if vaekit_eval and system == "vaekit":
        res["vaekit_iwae"] = _vaekit_iwae(model, test[:eval_images])
    return res


def _vaekit_iwae(model: nn.Module, x: Tensor, k: int = 5000) -> dict[str, Any]:
    """vaekit's own ``evaluation.iwae_bound`` (issue 3's speed target), timed; RSS is the process peak.

    ``vaekit.compile`` compiles the likelihood kernel once 2^28 values went through it eagerly:
    a first pass over the first 100 images (392 M values) does that and is timed separately, so
    ``s`` is the steady-state time of all images.
    """
    from vaekit.compile import COMPILE_SECONDS
    from vaekit.evaluation import evaluate_bound, iwae_bound

    torch.manual_seed(NLL_SEED)
    t = time.perf_counter()
    evaluate_bound(iwae_bound, model, x[:100], batch_size=100, k=k)
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    b = evaluate_bound(iwae_bound, model, x, batch_size=100, k=k)
    return {"nll": -b.mean, "stderr": b.stderr, "n": b.n, "k": k, "s": time.perf_counter() - t,
            "first_pass_100_images_s": first_s, "compile_s": dict(COMPILE_SECONDS), "peak_rss_mb": rss_mb()}


def worker_kscale(steps: int) -> dict[str, Any]:
    """Median time of a vaekit IWAE training step (batch 100) at k=1 and k=50; ratio < 50 is sub-linear."""
    from vaekit.objectives.elbo import iwae_bound as iwae_of_log_weights
    from vaekit.train import train_step

    train, _ = load_data()
    model = vaekit_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    out: dict[str, Any] = {}
    for k in (1, 50, 1, 50):  # interleaved twice: the load on the machine changes by the minute
        def compute(x: Tensor, step: int, k: int = k) -> tuple[Tensor, dict]:
            return -iwae_of_log_weights(model(x, k=k).log_weights).mean(), {}

        times = []
        for s in range(steps + 2):
            x = torch.bernoulli(train[s * BATCH:(s + 1) * BATCH])
            t = time.perf_counter()
            train_step(compute, opt, x, s)
            times.append(time.perf_counter() - t)
        out.setdefault(f"k{k}_ms", []).append(1e3 * statistics.median(times[2:]))
    t1, t50 = min(out["k1_ms"]), min(out["k50_ms"])
    out["ratio_k50_over_k1"] = t50 / t1
    out["sublinear"] = t50 / t1 < 50
    return out


def _run_worker(args: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-out", path, *args]
    print(f"[fm_mlp] {' '.join(args)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    try:
        return json.loads(Path(path).read_text())
    finally:
        os.unlink(path)


def _versions() -> dict[str, str]:
    import vaekit

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "vaekit": getattr(vaekit, "__version__", "?"), "machine": platform.machine(),
            "cpu": _cpu_name(), "threads": torch.get_num_threads()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="2 epochs, NLL on 100 images: a smoke check")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-images", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--nll-rounds", type=int, default=1, help="rounds that also run the IWAE-5000 NLL")
    p.add_argument("--kscale-steps", type=int, default=20)
    p.add_argument("--train-images", type=int, default=N_TRAIN, help="< 60000 only for smoke checks")
    # internal
    p.add_argument("--worker", choices=["ref", "vaekit", "kscale", "gemm"])
    p.add_argument("--systems", default="ref,vaekit", help="round 1 order; round 2 reverses it")
    p.add_argument("--worker-out", type=Path)
    p.add_argument("--nll", action="store_true")
    p.add_argument("--vaekit-eval", action="store_true")
    a = p.parse_args(argv)
    if a.device != "cpu":
        raise SystemExit("--device cuda: this script implements the CPU protocol only (PROTOCOL.md section 3)")
    torch.set_num_threads(a.threads)
    if a.quick:
        a.epochs, a.eval_images, a.kscale_steps = min(a.epochs, 2), min(a.eval_images, 100), min(a.kscale_steps, 5)

    if a.worker:
        if a.worker in ("ref", "vaekit"):
            res = worker_train(a.worker, a.epochs, a.eval_images, a.nll, a.vaekit_eval, a.train_images)
        elif a.worker == "kscale":
            res = worker_kscale(a.kscale_steps)
        else:
            res = gemm_limits(iwae_rows=(1000, 100 * 50), iwae_images=a.eval_images, k=5000)
        a.worker_out.write_text(json.dumps(res))
        return res

    common = ["--epochs", str(a.epochs), "--threads", str(a.threads), "--eval-images", str(a.eval_images),
              "--kscale-steps", str(a.kscale_steps), "--train-images", str(a.train_images)]
    t0, load0 = time.perf_counter(), os.getloadavg()
    rounds = []
    for r in range(a.rounds):
        systems = a.systems.split(",")
        order = systems if r % 2 == 0 else systems[::-1]
        extra = ["--nll", "--vaekit-eval"] if r < a.nll_rounds else []
        rounds.append({s: _run_worker(["--worker", s, *common, *extra]) for s in order})
        rounds[-1]["order"] = order
    gemm = _run_worker(["--worker", "gemm", *common])
    kscale = _run_worker(["--worker", "kscale", *common])

    summary: dict[str, Any] = {"rounds": []}
    for r, rd in enumerate(rounds):
        ref, vk = rd["ref"], rd["vaekit"]
        row: dict[str, Any] = {"round": r + 1, "order": rd["order"],
                               "images_per_s": {s: rd[s]["images_per_s"] for s in rd["order"]},
                               "speed_ratio_vaekit_over_ref": vk["images_per_s"] / ref["images_per_s"]}
        if "test_nll" in ref and "test_nll" in vk:
            row["nll_diff_vaekit_minus_ref"] = vk["test_nll"]["nll"] - ref["test_nll"]["nll"]
        if "vaekit_iwae" in vk:
            row["vaekit_iwae_over_gemm_only"] = vk["vaekit_iwae"]["s"] / gemm["iwae_eval_gemm"]["s"]
            row["shared_eval_over_gemm_only"] = vk["nll_eval_s"] / gemm["iwae_eval_gemm"]["s"]
        summary["rounds"].append(row)
    r1 = summary["rounds"][0]
    summary["issue2"] = {
        "vaekit_ge_0.95x_ref": all(r["speed_ratio_vaekit_over_ref"] >= 0.95 for r in summary["rounds"]),
        "iwae_eval_peak_rss_lt_1500mb": rounds[0]["vaekit"].get("peak_rss_mb_after_eval", math.inf) < 1500,
        "nll_agree_within_1_nat": abs(r1.get("nll_diff_vaekit_minus_ref", math.inf)) < 1.0,
    }
    summary["issue3"] = {
        "vaekit_ge_1.5x_ref": all(r["speed_ratio_vaekit_over_ref"] >= 1.5 for r in summary["rounds"]),
        "vaekit_iwae_le_1.3x_gemm": r1.get("vaekit_iwae_over_gemm_only", math.inf) <= 1.3,
        "vaekit_iwae_peak_rss_lt_1000mb": rounds[0]["vaekit"].get("vaekit_iwae", {}).get("peak_rss_mb", math.inf) < 1000,
        "iwae_k50_over_k1_step": kscale["ratio_k50_over_k1"],
        "k_sublinear": kscale["sublinear"],
    }
    summary["limit_images_per_s"] = gemm["limit_images_per_s_at_peak"]
    result = {"protocol": "FM-MLP v1", "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
              "versions": _versions(), "load_avg_start": load0, "rounds": rounds, "gemm": gemm, "kscale": kscale,
              "summary": summary, "wall_s": time.perf_counter() - t0}
    result["load_avg_end"] = os.getloadavg()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
