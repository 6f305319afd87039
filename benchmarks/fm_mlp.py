#!/usr/bin/env python
r"""FM-MLP speed: vaekit's training step against the hand-written loop, interleaved (PROTOCOL.md v1.1).

../shared/bench/fm-mlp/PROTOCOL.md section 5, version 1.1: a speed *ratio* is measured in one
process with the systems interleaved in blocks of about 60 training steps, the order rotated
every round (at least 12 rounds), and reported as the median over rounds of the per-round ratio,
with each system's median and minimum step time. Whole-run alternation is too coarse on a shared
VM: its slow phases last tens of seconds, and both systems of one round share the phase.

What runs, all in this process on ``--threads`` (protocol: 2) threads:

1. **Training step ratio.** ``ref`` (the protocol's hand-written eager loop) and ``vaekit``
   (``vaekit.models.build_model`` + ``vaekit.train.train_step`` on the ``elbo`` objective from
   ``vaekit.objectives.build_objective``, the optimiser of ``vaekit.train.build_optimizer``,
   batches from ``vaekit.data.batch_indices`` + ``dynamic_binarize``) start from the same
   ``torch.manual_seed(0)`` weights and train on dynamically binarised Fashion-MNIST, batch 100,
   ``--block`` steps per block, ``--rounds`` rounds. Ratio = ref time / vaekit time (> 1: vaekit
   faster).
2. **IWAE-5000 evaluation.** vaekit's own evaluator (``vaekit.evaluation.iwae_estimate``, or
   ``iwae_bound`` on code from before issue 11) on the first ``--iwae-images`` binary test images
   (noise seeded identically every round), interleaved with the GEMM-only work of the same
   evaluation (encoder once per image, the decoder's three GEMMs on every sample, ``torch.mm``
   in the ``nn.Linear`` layout, ``--gemm-rows`` rows per chunk). Ratio = IWAE time / GEMM time.
3. Section 6 of the protocol (best-of-5 GEMM speeds, the machine's limit images/s).
4. Optional (``--epochs E``, default 0): fresh models trained E whole epochs, the epochs of the two
   systems alternating, then scored by the shared evaluator (test ELBO, 10 samples, seed 1234;
   IWAE-5000 NLL on the first ``--eval-images`` images, seed 4321).

Only public API that exists before and after issue 11 is used; the Gaussian latent's link key
is tried as ``scale_link`` and then as ``scale``.

Usage::

    python benchmarks/fm_mlp.py --out benchmarks/results/fm_mlp.json   # defaults: 100 rounds x 60 steps, IWAE 30 rounds
    python benchmarks/fm_mlp.py --quick --out /tmp/fm.json             # smoke check (figures meaningless)
    python benchmarks/fm_mlp.py --epochs 10 --eval-images 1000         # also whole epochs and scores

The last line printed is one JSON object (also written to ``--out``); ``summary`` holds the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _bench  # noqa: E402

DEFAULT_OUT = HERE / "results" / "fm_mlp.json"
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


def binarize_test(raw: np.ndarray) -> np.ndarray:
    """PROTOCOL.md section 1: ``(RandomState(0).random_sample((10000, 784)) < raw/255).astype(uint8)``."""
    x = raw.astype(np.float64) / 255.0
    u = np.random.RandomState(0).random_sample((10000, 784))
    return (u < x).astype(np.uint8)


def load_data(n_train: int = N_TRAIN) -> tuple[str, Tensor, Tensor]:
    """(data set name, training intensities (n, 784) float32 in [0,1], binary test set (10000, 784) float32).

    Fashion-MNIST from the Debian package (the protocol's source); its binary test set is cached
    as ``~/.cache/vaekit/fm_test_bin.npy`` and checked against the protocol's sha256 and mean pixel
    on every run. Without the package, MNIST from /work/shared/data is used and named as such.
    """
    name, raw_train, raw_test = _bench.load_raw_images(n_train)
    if name != "fashion_mnist":
        return name, _bench.to_unit(raw_train), torch.from_numpy(binarize_test(raw_test).astype(np.float32))
    cache = CACHE / "fm_test_bin.npy"
    x_bin = np.load(cache, allow_pickle=False) if cache.exists() else None
    if x_bin is None or hashlib.sha256(np.ascontiguousarray(x_bin).tobytes()).hexdigest() != TEST_SHA256:
        x_bin = binarize_test(raw_test)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cache, x_bin)
    digest = hashlib.sha256(np.ascontiguousarray(x_bin).tobytes()).hexdigest()
    if digest != TEST_SHA256 or x_bin.shape != (10000, 784) or abs(x_bin.mean() - TEST_MEAN) > 5e-8:
        raise RuntimeError(f"binary test set does not match PROTOCOL.md: sha256 {digest}, mean {x_bin.mean():.7f}")
    return name, _bench.to_unit(raw_train), torch.from_numpy(x_bin.astype(np.float32))


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


def _vaekit_spec(link_key: str) -> dict[str, Any]:
    return {
        "type": "vae",
        "encoder": {"type": "mlp", "hidden": [H, H], "activation": "tanh"},
        # link "exp": the head's second half is log sigma^2; min_scale=0 keeps sigma = exp(logvar/2) exactly
        "latent": {"type": "gaussian", "dim": Z, link_key: "exp", "min_scale": 0.0},
        "decoder": {"type": "mlp", "hidden": [H, H], "activation": "tanh"},
        "likelihood": {"type": "bernoulli"},
    }


def build_vaekit(spec_fn: Callable[[str], dict[str, Any]], data_dim: int) -> tuple[nn.Module, dict[str, Any]]:
    """``build_model(spec_fn("scale_link"))``, or with ``"scale"`` where the code predates the rename.

    Returns the model and the spec that built it.
    """
    from vaekit.models import build_model
    from vaekit.registry import ConfigError

    errors = []
    for key in ("scale_link", "scale"):
        spec = spec_fn(key)
        try:
            return build_model(spec, data_dim=data_dim), spec
        except ConfigError as e:
            errors.append(f"{key}: {e}")
    raise ConfigError("no latent link key works: " + "; ".join(errors))


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def vaekit_model() -> tuple[nn.Module, dict[str, Any]]:
    """vaekit's model from its config spec, with the reference's initial weights copied in.

    The copy goes by the order of the ``nn.Linear`` modules of the encoder, the latent layer (one
    fused ``Linear(200, 100)`` head = ``[mu; logvar]``) and the decoder; if the layout differs the
    model keeps vaekit's own initialisation and the returned info says so (timings do not depend
    on the weights' values).
    """
    model, spec = build_vaekit(_vaekit_spec, D)
    n_params = sum(p.numel() for p in model.parameters())
    info: dict[str, Any] = {"spec": spec, "parameters": n_params}
    ref = reference_model()
    enc, dec = _linears(model.encoder), _linears(model.decoder)
    head = _linears(model.latent)
    if ([(m.in_features, m.out_features) for m in enc + head + dec] == [(D, H), (H, H), (H, 2 * Z), (Z, H), (H, H), (H, D)]):
        with torch.no_grad():
            for dst, src in zip(enc + dec, [ref.enc_l1, ref.enc_l2, ref.dec_l1, ref.dec_l2, ref.dec_out]):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
            head[0].weight.copy_(torch.cat([ref.enc_mu.weight, ref.enc_logvar.weight]))
            head[0].bias.copy_(torch.cat([ref.enc_mu.bias, ref.enc_logvar.bias]))
        info["init"] = "the reference's torch.manual_seed(0) weights"
    else:
        info["init"] = "vaekit's own (layer layout differs from the reference's; weights not copied)"
    if n_params != 425_284:
        info["warning"] = f"{n_params} parameters, not the protocol's 425,284"
    return model, info


def vaekit_encode_decode(model: nn.Module) -> tuple[Callable, Callable]:
    """``encode(x) -> (mu, logvar)`` and ``decode(z) -> logits`` for the shared evaluator."""
    head = _linears(model.latent)[0]

    def encode(x: Tensor) -> tuple[Tensor, Tensor]:
        mu, a = head(model.encoder(x)).chunk(2, dim=-1)
        return mu, a

    return encode, model.decoder


# ----------------------------------------------------------------------------------------------
# 3. training: steppers that run n steps per call, epochs following each other
# ----------------------------------------------------------------------------------------------


def reference_stepper(model: RefVAE, train: Tensor) -> Callable[[int], None]:
    """The hand-written eager loop: Adam(lr 1e-3, eps 1e-4), batch 100, randperm each epoch, torch.bernoulli."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
    n = train.shape[0]
    st = {"perm": None, "pos": n}

    def run(steps: int) -> None:
        for _ in range(steps):
            if st["pos"] + BATCH > n:
                st["perm"], st["pos"] = torch.randperm(n, device=train.device), 0  # the CPU stream on the CPU
            x = torch.bernoulli(train[st["perm"][st["pos"]:st["pos"] + BATCH]])
            st["pos"] += BATCH
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def vaekit_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """``vaekit.train.build_optimizer`` with the protocol's Adam settings (lr 1e-3, eps 1e-4).

    It reads ``cfg.train.{lr, betas, eps, weight_decay}``; a plain namespace carries them.
    """
    from vaekit.train import build_optimizer

    train_cfg = SimpleNamespace(lr=1e-3, betas=(0.9, 0.999), eps=1e-4, weight_decay=0.0)
    try:
        return build_optimizer(model, SimpleNamespace(train=train_cfg))
    except AttributeError:  # a signature that takes the train section itself
        return build_optimizer(model, train_cfg)


def vaekit_stepper(model: nn.Module, train: Tensor, objective_spec: dict[str, Any] | None = None,
                   seed: int = 1, compile_mode: str = "off") -> tuple[Callable[[int], None], dict[str, Any]]:
    """vaekit's trainer hot path: ``train_step`` on ``build_objective(objective_spec)`` (default ``elbo``).

    As ``vaekit.train.fit`` does it: ``batch_indices`` (one randperm per epoch from a seeded
    generator), ``dynamic_binarize(..., check=False)`` where the function has ``check`` (the
    trainer checks the range once per data set), the optimiser of ``build_optimizer``.
    ``fit``'s per-epoch extras (validation, checkpoint, logging) are not part of a step.
    The batches go to ``train``'s device (``benchmarks/gpu.py`` passes CUDA tensors and a model there).
    ``compile_mode`` other than ``off`` runs the objective through the trainer's ``train.compile`` path
    (``vaekit.train.compiled_objective``, code after issue 18 only).
    Returns the stepper and a description of what it uses.
    """
    import inspect

    from vaekit.data import batch_indices, dynamic_binarize
    from vaekit.objectives import build_objective
    from vaekit.train import train_step

    objective = build_objective(dict(objective_spec or {"type": "elbo"}))
    opt = vaekit_optimizer(model)
    device = train.device
    g_perm, g_bin = torch.Generator().manual_seed(seed), torch.Generator(device=device).manual_seed(seed + 1)
    bin_kw = {"check": False} if "check" in inspect.signature(dynamic_binarize).parameters else {}
    n = train.shape[0]
    st: dict[str, Any] = {"it": iter(()), "step": 0}

    def compute(x: Tensor, step: int) -> tuple[Tensor, dict[str, Any]]:
        return objective(model, x, step)

    if compile_mode != "off":
        from vaekit.train import ObjectiveModule, compiled_objective

        compute = compiled_objective(ObjectiveModule(model, objective), compile_mode)  # noqa: F811

    def next_idx() -> Tensor:
        for _ in range(2):
            try:
                return next(st["it"])
            except StopIteration:
                st["it"] = batch_indices(n, BATCH, g_perm, shuffle=True, drop_last=True)
        raise RuntimeError("empty epoch")

    def run(steps: int) -> None:
        for _ in range(steps):
            x = dynamic_binarize(train[next_idx().to(device)], g_bin, **bin_kw)
            train_step(compute, opt, x, st["step"])
            st["step"] += 1

    info = {"objective": objective_spec or {"type": "elbo"}, "optimizer": type(opt).__name__,
            "fused": bool(opt.defaults.get("fused")), "foreach": opt.defaults.get("foreach"),
            "dynamic_binarize_kwargs": bin_kw, "compile": compile_mode}
    return run, info


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
# 5. the physical limit: GEMM timings (PROTOCOL.md section 6)
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


def gemm_limits(threads: int) -> dict[str, Any]:
    """PROTOCOL.md section 6: best-of-5 GEMM speeds and the machine's limit images/s."""
    out: dict[str, Any] = {"threads": threads, "square": {}}
    for n in (512, 1024, 2048):
        t = _best_mm(n, n, n)
        out["square"][str(n)] = {"s": t, "gflops": 2 * n ** 3 / t / 1e9}
    t = _best_mm(BATCH, D, H)
    out["100x784@784x200"] = {"s": t, "gflops": 2 * BATCH * D * H / t / 1e9}
    # one training step in autograd's layouts: y = x W^T (forward), dX = dY W (backward), dW = dY^T X
    step_s, step_flops = 0.0, 0
    for i, (fin, fout) in enumerate(_layers()):
        step_s += _best_mm(BATCH, fin, fout, tb=True)          # forward: x @ W.t()
        step_s += _best_mm(fout, BATCH, fin, ta=True)          # dW = dY.t() @ X
        step_flops += 4 * BATCH * fin * fout
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
    return out


# ----------------------------------------------------------------------------------------------
# 6. the IWAE-5000 evaluation against its GEMM-only work
# ----------------------------------------------------------------------------------------------


def vaekit_iwae_fn() -> tuple[Callable[..., Tensor], str]:
    """vaekit's per-example IWAE evaluator ``(model, x, k) -> (B,)``: ``iwae_estimate``, else ``iwae_bound``."""
    from vaekit import evaluation

    fn = getattr(evaluation, "iwae_estimate", None)
    if fn is not None:
        return fn, "vaekit.evaluation.iwae_estimate"
    return evaluation.iwae_bound, "vaekit.evaluation.iwae_bound"


def iwae_block(model: nn.Module, x: Tensor, k: int, batch: int) -> tuple[Callable[[], None], dict[str, list]]:
    """One block = vaekit's IWAE-k of every image of ``x`` in batches of ``batch``, noise seeded the same."""
    fn, _ = vaekit_iwae_fn()
    values: dict[str, list] = {"mean_bound": []}

    def run() -> None:
        torch.manual_seed(NLL_SEED)
        with torch.no_grad():
            b = torch.cat([fn(model, x[i:i + batch], k).double() for i in range(0, x.shape[0], batch)])
        values["mean_bound"].append(float(b.mean()))

    return run, values


def gemm_only_block(images: int, k: int, batch: int, rows: int) -> Callable[[], None]:
    """The GEMMs of an IWAE-k evaluation of ``images`` images alone: the encoder once per image, the
    decoder's three GEMMs on ``k`` samples of each, ``rows`` decoder rows per ``torch.mm`` (the
    ``nn.Linear`` layout ``x @ W.t()``, outputs preallocated). Values are random: the cost is not.
    """
    g = torch.Generator().manual_seed(0)
    enc = [(torch.randn(fout, fin, generator=g), torch.empty(batch, fout)) for fin, fout in [(D, H), (H, H), (H, 2 * Z)]]
    dec = [(torch.randn(fout, fin, generator=g), torch.empty(rows, fout)) for fin, fout in [(Z, H), (H, H), (H, D)]]
    xb = torch.rand(batch, D, generator=g)
    zb = torch.randn(rows, Z, generator=g)
    per_batch = batch * k
    if per_batch % rows:
        raise ValueError(f"--gemm-rows {rows} must divide batch*k = {per_batch}")

    def run() -> None:
        for _ in range(0, images, batch):
            h = xb
            for w, out in enc:
                h = torch.mm(h, w.t(), out=out)
            for _ in range(per_batch // rows):
                h = zb
                for w, out in dec:
                    h = torch.mm(h, w.t(), out=out)

    return run


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (protocol: 2)")
    p.add_argument("--block", type=int, default=60, help="training steps per block (protocol: about 60)")
    p.add_argument("--rounds", type=int, default=100, help="training rounds (protocol: at least 12)")
    p.add_argument("--warmup-rounds", type=int, default=2)
    p.add_argument("--iwae-images", type=int, default=100, help="first N binary test images for the IWAE timing")
    p.add_argument("--iwae-k", type=int, default=5000)
    p.add_argument("--iwae-batch", type=int, default=100, help="images per evaluator call")
    p.add_argument("--iwae-rounds", type=int, default=30)
    p.add_argument("--gemm-rows", type=int, default=4000,
                   help="decoder rows per GEMM in the GEMM-only reference (vaekit's default chunk: 4,000 rows)")
    p.add_argument("--epochs", type=int, default=0, help="also train E whole epochs per system and score them")
    p.add_argument("--eval-images", type=int, default=1000, help="NLL images for --epochs scoring")
    p.add_argument("--train-images", type=int, default=N_TRAIN, help="< 60000 only for smoke checks")
    p.add_argument("--no-section6", action="store_true", help="skip the best-of-5 GEMM speeds")
    _bench.add_quiet_args(p)
    p.add_argument("--quick", action="store_true", help="a smoke check: tiny rounds and blocks; figures meaningless")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    if a.quick:
        a.block, a.rounds, a.warmup_rounds = min(a.block, 10), min(a.rounds, 3), 1
        a.iwae_images, a.iwae_rounds, a.iwae_k = min(a.iwae_images, 10), min(a.iwae_rounds, 2), min(a.iwae_k, 500)
        a.iwae_batch = min(a.iwae_batch, 10)
        a.epochs, a.eval_images, a.train_images = min(a.epochs, 2), min(a.eval_images, 100), min(a.train_images, 2000)
        a.gemm_rows, a.quiet = min(a.gemm_rows, 1000), 0.0
    torch.set_num_threads(a.threads)
    _bench.WAIT_BUDGET["left"] = a.wait_budget
    quiet = {"quiet": a.quiet, "max_wait": a.max_wait}
    import vaekit

    print(f"[fm_mlp] vaekit from {vaekit.__file__}, {a.threads} threads", file=sys.stderr, flush=True)
    t0, load0 = time.perf_counter(), os.getloadavg()
    data_name, train, test = load_data(a.train_images)
    result: dict[str, Any] = {
        "benchmark": "fm_mlp", "protocol": "FM-MLP v1.1 (section 5: interleaved blocks)",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "versions": _bench.versions(), "vaekit_commit": _bench.vaekit_commit(), "dataset": data_name,
        "load_avg_start": load0,
    }

    # 1. training step ratio, interleaved blocks
    ref = reference_model()
    vk, vk_info = vaekit_model()
    torch.manual_seed(1)
    vk_step, step_info = vaekit_stepper(vk, train)
    ref_step = reference_stepper(ref, train)
    ref.train(), vk.train()
    timing = _bench.interleave({"ref": lambda: ref_step(a.block), "vaekit": lambda: vk_step(a.block)},
                               a.rounds, a.warmup_rounds, label="fm_mlp train", **quiet)
    train_ratio = _bench.ratio_summary(timing, "ref", "vaekit", per=a.block, unit="ms")
    result["vaekit_model"] = {**vk_info, **step_info}
    result["train"] = {"block_steps": a.block, "rounds": a.rounds, "batch": BATCH, **timing, "summary": train_ratio}

    # 2. IWAE-k evaluation against its GEMM-only work, interleaved
    vk.eval()
    fn_name = vaekit_iwae_fn()[1]
    x_iwae = test[:a.iwae_images]
    iwae_run, iwae_values = iwae_block(vk, x_iwae, a.iwae_k, a.iwae_batch)
    gemm_run = gemm_only_block(a.iwae_images, a.iwae_k, a.iwae_batch, a.gemm_rows)
    itiming = _bench.interleave({"iwae": iwae_run, "gemm": gemm_run}, a.iwae_rounds, a.warmup_rounds,
                                label="fm_mlp iwae", **quiet)
    iwae_ratio = _bench.ratio_summary(itiming, "iwae", "gemm", per=1, unit="s")
    compile_s = getattr(sys.modules.get("vaekit.compile"), "COMPILE_SECONDS", None)
    result["iwae"] = {"evaluator": fn_name, "images": a.iwae_images, "k": a.iwae_k, "batch": a.iwae_batch,
                      "gemm_rows": a.gemm_rows, "rounds": a.iwae_rounds, **itiming, "summary": iwae_ratio,
                      "nll_of_trained_model": -iwae_values["mean_bound"][-1],
                      # the warm-up rounds may run before torch.compile kicks in: compare the timed rounds
                      "nll_identical_every_timed_round": len(set(iwae_values["mean_bound"][-a.iwae_rounds:])) == 1,
                      "compile_s": dict(compile_s) if compile_s else None,
                      "gemm_flops": a.iwae_images * (a.iwae_k * DEC_FLOPS + ENC_FLOPS)}

    # 3. section 6
    if not a.no_section6:
        result["gemm"] = gemm_limits(a.threads)

    # 4. optional whole epochs and scores
    if a.epochs:
        result["epochs"] = whole_epochs(train, test, a.epochs, a.eval_images)

    result["peak_rss_mb"] = rss_mb()
    result["summary"] = {
        "train_ratio_ref_over_vaekit": {k: train_ratio[k] for k in ("median", "q25", "q75", "min", "max", "n")},
        "train_ratio_undisturbed_rounds": train_ratio.get("undisturbed_rounds"),
        "train_ratio_of_minimums": train_ratio["ratio_of_minimums"],
        "train_step_ms": {"ref": train_ratio["ref_ms"], "vaekit": train_ratio["vaekit_ms"]},
        "iwae_over_gemm": {k: iwae_ratio[k] for k in ("median", "q25", "q75", "min", "max", "n")},
        "iwae_over_gemm_undisturbed_rounds": iwae_ratio.get("undisturbed_rounds"),
        "iwae_over_gemm_ratio_of_minimums": iwae_ratio["ratio_of_minimums"],
        "iwae_s": iwae_ratio["iwae_s"], "gemm_only_s": iwae_ratio["gemm_s"],
        "iwae_images": a.iwae_images, "iwae_k": a.iwae_k, "evaluator": fn_name,
    }
    if "gemm" in result:
        result["summary"]["limit_images_per_s"] = result["gemm"]["limit_images_per_s_at_peak"]
    result["summary"]["others_share_of_cpu"] = {"train": train_ratio.get("others_share"),
                                                "iwae": iwae_ratio.get("others_share")}
    result["summary"]["waited_for_quiet_s"] = sum(timing["waited_s"]) + sum(itiming["waited_s"])
    result["load_avg_end"] = os.getloadavg()
    result["wall_s"] = time.perf_counter() - t0
    _print_summary(result)
    _bench.write_result(result, a.out)
    return result


def whole_epochs(train: Tensor, test: Tensor, epochs: int, eval_images: int) -> dict[str, Any]:
    """Fresh models, ``epochs`` whole epochs each (the systems' epochs alternating), scored by the shared evaluator."""
    ref = reference_model()
    vk, _ = vaekit_model()
    torch.manual_seed(1)
    vk_step, _ = vaekit_stepper(vk, train)
    ref_step = reference_stepper(ref, train)
    steps = train.shape[0] // BATCH
    timing = _bench.interleave({"ref": lambda: ref_step(steps), "vaekit": lambda: vk_step(steps)}, epochs, 0,
                               label="fm_mlp epoch")
    out: dict[str, Any] = {"epochs": epochs, **timing}
    for name, model, (enc, dec) in (("ref", ref, (ref.encode, ref.decode)), ("vaekit", vk, vaekit_encode_decode(vk))):
        s = timing["s"][name]
        later = s[1:] if len(s) > 1 else s
        model.eval()
        t = time.perf_counter()
        elbo = evaluate_elbo(enc, dec, test)
        t_elbo = time.perf_counter() - t
        t = time.perf_counter()
        nll = evaluate_nll(enc, dec, test[:eval_images])
        out[name] = {"first_epoch_s": s[0], "median_s_per_epoch": statistics.median(later),
                     "images_per_s": train.shape[0] / statistics.median(later), "test_elbo": elbo,
                     "elbo_eval_s": t_elbo, "test_nll": nll, "nll_eval_s": time.perf_counter() - t}
    out["nll_diff_vaekit_minus_ref"] = out["vaekit"]["test_nll"]["nll"] - out["ref"]["test_nll"]["nll"]
    return out


def _print_summary(r: dict[str, Any]) -> None:
    s = r["summary"]
    t, i = s["train_ratio_ref_over_vaekit"], s["iwae_over_gemm"]
    print(f"training step, ref time / vaekit time (> 1: vaekit faster): median {t['median']:.3f} "
          f"(IQR {t['q25']:.3f}-{t['q75']:.3f}, min-max {t['min']:.3f}-{t['max']:.3f}, {t['n']} rounds; "
          f"ratio of the minimum step times {s['train_ratio_of_minimums']:.3f})")
    _print_undisturbed(s["train_ratio_undisturbed_rounds"])
    for n in ("ref", "vaekit"):
        m = s["train_step_ms"][n]
        print(f"  {n:7s} step {m['median']:.3f} ms median, {m['min']:.3f} ms min")
    print(f"IWAE-{s['iwae_k']} of {s['iwae_images']} images ({s['evaluator']}): {s['iwae_s']['median']:.3f} s median "
          f"({s['iwae_s']['min']:.3f} min); GEMM-only {s['gemm_only_s']['median']:.3f} s ({s['gemm_only_s']['min']:.3f} min); "
          f"ratio median {i['median']:.3f} (IQR {i['q25']:.3f}-{i['q75']:.3f}, min-max {i['min']:.3f}-{i['max']:.3f}, "
          f"{i['n']} rounds; ratio of the minimums {s['iwae_over_gemm_ratio_of_minimums']:.3f})")
    _print_undisturbed(s["iwae_over_gemm_undisturbed_rounds"])
    print(f"waited {s['waited_for_quiet_s']:.0f} s in all for other processes to go quiet")


def _print_undisturbed(u: dict[str, Any] | None) -> None:
    if u and u.get("n"):
        print(f"  rounds with other processes under {100 * u['threshold_others']:.0f}% of the CPU: {u['n']}, "
              f"median {u['median']:.3f} (IQR {u['q25']:.3f}-{u['q75']:.3f})")
    elif u:
        print(f"  no round had other processes under {100 * u['threshold_others']:.0f}% of the CPU")


if __name__ == "__main__":
    main()
