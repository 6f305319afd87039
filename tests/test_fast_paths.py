"""The speed paths compute exactly what the plain ``nn.Sequential`` / ``torch.distributions`` code computes.

Each hand-written backward is checked by ``gradcheck`` (finite differences, float64) and each
fused forward against the unfused composition it replaces.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

from vaekit import compile as vk_compile
from vaekit.evaluation import iwae_estimate
from vaekit.distributions import DiagonalNormal
from vaekit.latents.gaussian import GaussianLatent
from vaekit.likelihoods.bernoulli import (BernoulliLikelihood, _bernoulli_log_prob_sum, _bernoulli_log_prob_sum_eager,
                                          _BernoulliLogLik)
from vaekit.models import build_model
from vaekit.nets.fused import linear_chain
from vaekit.nets.mlp import MLP


# ----- fused MLP --------------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_fused_mlp_matches_sequential(act, shape, seed):
    fused = MLP(7, [6, 5], 3, activation=act).double()
    plain = MLP(7, [6, 5], 3, activation=act, fused=False).double()
    plain.load_state_dict(fused.state_dict())
    assert fused._acts == (act, act, None) and plain._acts is None
    x = torch.randn(*shape, 7, dtype=torch.float64, requires_grad=True)
    y, y_ref = fused(x), plain(x)
    assert y.shape == (*shape, 3)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *fused.parameters()], g)
    want = torch.autograd.grad(y_ref, [x, *plain.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # the no-grad path (in-place activations, no node) agrees as well
        torch.testing.assert_close(fused(x), y_ref.detach(), rtol=1e-12, atol=1e-12)


def test_linear_chain_gradcheck(seed):
    ws = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True),
          torch.randn(2, 4, dtype=torch.float64, requires_grad=True)]
    bs = [torch.randn(4, dtype=torch.float64, requires_grad=True),
          torch.randn(2, dtype=torch.float64, requires_grad=True)]
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    for acts in [("tanh", None), ("sigmoid", "tanh")]:
        assert torch.autograd.gradcheck(lambda x, *p: linear_chain(x, p[0::2], p[1::2], acts),
                                        (x, ws[0], bs[0], ws[1], bs[1]))


def test_unfusable_activation_uses_sequential_and_wrong_width_is_named():
    assert MLP(3, [4], 2, activation="elu")._acts is None
    with pytest.raises(ValueError, match="width 3"):
        MLP(3, [4], 2)(torch.zeros(2, 5))


# ----- Gaussian sample-and-density and the one-node KL ------------------------------------------

def test_diagonal_normal_fast_paths_match_torch_distributions(seed):
    """``rsample``/``rsample_and_log_prob``/``log_prob``/KL of DiagonalNormal against torch's Independent(Normal)."""
    lat = GaussianLatent(6, 4).double()
    params = lat.params(torch.randn(5, 6, dtype=torch.float64))
    q = lat.distribution(**params)
    ref = Independent(Normal(params["loc"], params["scale"]), 1)
    torch.manual_seed(3)
    z, log_q = q.rsample_and_log_prob((7,))
    torch.manual_seed(3)
    torch.testing.assert_close(q.rsample((7,)), z, rtol=0, atol=0)  # same noise stream
    torch.testing.assert_close(log_q, ref.log_prob(z), rtol=1e-12, atol=1e-12)
    prior = lat.prior()
    std = Independent(Normal(torch.zeros(4, dtype=torch.float64), 1.0), 1)
    torch.testing.assert_close(prior.log_prob(z), std.log_prob(z), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kl_divergence(q, prior), kl_divergence(ref, std), rtol=1e-10, atol=1e-12)
    other = DiagonalNormal(params["loc"].flip(0), params["scale"].flip(0))  # a non-standard p: torch's formula
    ref_other = Independent(Normal(params["loc"].flip(0), params["scale"].flip(0)), 1)
    torch.testing.assert_close(kl_divergence(q, other), kl_divergence(ref, ref_other), rtol=1e-10, atol=1e-12)


def test_kl_to_standard_node_gradcheck(seed):
    loc = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(3, 4, dtype=torch.float64) + 0.3).requires_grad_()
    prior = DiagonalNormal(torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64), standard=True)
    assert torch.autograd.gradcheck(lambda m, s: kl_divergence(DiagonalNormal(m, s), prior), (loc, scale))


# ----- Bernoulli log-likelihood -----------------------------------------------------------------

def _bern_ref(logits, x):
    return (x.double() * logits.double() - F.softplus(logits.double())).sum(-1)


def test_bernoulli_node_gradcheck_and_value(seed):
    logits = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    x = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)  # grey levels: the CE of Kingma & Welling
    assert torch.autograd.gradcheck(_BernoulliLogLik.apply, (logits, x))
    torch.testing.assert_close(_BernoulliLogLik.apply(logits, x), _bern_ref(logits, x), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("d", [7, 100, 784, 2032, 3000])
def test_grouped_log_sum_is_as_accurate_as_summing_softplus(d, seed):
    """float32 error of the one-log-per-16 form vs float64, no worse than the plain float32 sum."""
    logits = torch.randn(400, d) * 4
    logits[0, : min(d, 5)] = torch.tensor([90.0, -90.0, 0.0, 30.0, -30.0])[: min(d, 5)]  # no overflow at the extremes
    x = (torch.rand(400, d) < 0.4).float()
    ref = _bern_ref(logits, x)
    err_fast = (_bernoulli_log_prob_sum(logits, x).double() - ref).abs().max().item()
    err_plain = (_bernoulli_log_prob_sum_eager(logits, x).double() - ref).abs().max().item()
    # a float32 sum of d terms of size ~|l| carries an error of order d * eps32 * mean|l|
    assert err_fast <= max(2 * err_plain, 4 * d * 6e-8), (err_fast, err_plain)
    # in float64 the identity itself is exact to rounding
    got64 = _bernoulli_log_prob_sum(logits.double(), x.double())
    torch.testing.assert_close(got64, ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("d", [2032, 2048])
def test_grouped_log_sum_does_not_overflow_at_its_widest(d):
    """All-zero logits make every factor exactly 2: the widest single block (2032 = 127 lanes of 16)
    multiplies 127 of them, 2^127 < float32's max; wider rows are split. Exact: -d log 2."""
    out = _bernoulli_log_prob_sum(torch.zeros(3, d), torch.ones(1, d))
    torch.testing.assert_close(out, torch.full((3,), -d * math.log(2.0)), rtol=1e-6, atol=0)


def test_compiled_kernel_matches_eager_and_falls_back(monkeypatch, seed):
    logits, x = torch.randn(50, 20, 784) * 3, (torch.rand(20, 784) < 0.3).float()
    ref = _bern_ref(logits, x)
    wrapped = vk_compile.maybe_compiled(_bernoulli_log_prob_sum, eager=_bernoulli_log_prob_sum_eager, min_numel=0, warmup_numel=0)
    with torch.no_grad():
        got = wrapped(logits, x)
    assert (got.double() - ref).abs().max() < 1e-3
    # a backend that cannot compile: one warning, then the eager result, and no second attempt
    calls = []

    def broken(fn, **kw):
        calls.append(fn)

        def run(*a):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    failing = vk_compile.maybe_compiled(_bernoulli_log_prob_sum, eager=_bernoulli_log_prob_sum_eager, min_numel=0, warmup_numel=0)
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        out = failing(logits, x)
    torch.testing.assert_close(out, _bernoulli_log_prob_sum_eager(logits, x))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        failing(logits, x)
    assert len(calls) == 1
    # VAEKIT_COMPILE=0: never compiles
    monkeypatch.setenv("VAEKIT_COMPILE", "0")
    off = vk_compile.maybe_compiled(_bernoulli_log_prob_sum, min_numel=0, warmup_numel=0)
    with torch.no_grad():
        off(logits, x)
    assert len(calls) == 1
    # the rent-or-buy warm-up: eager until 2 calls' worth of elements went through, then compiled
    monkeypatch.setenv("VAEKIT_COMPILE", "1")
    lazy = vk_compile.maybe_compiled(_bernoulli_log_prob_sum, min_numel=0, warmup_numel=2 * logits.numel())
    with torch.no_grad(), pytest.warns(RuntimeWarning):
        lazy(logits, x)
        lazy(logits, x)
        assert len(calls) == 1
        lazy(logits, x)
    assert len(calls) == 2


def test_compiled_kernel_lowers_for_every_width_without_falling_back():
    """Compiled with dynamic shapes, the kernel runs (no fallback warning) and agrees with float64 for last
    dims under 16 (no full lane: CI's inductor failed to lower a (0, 16) view of a symbolic size and fell
    back for the rest of the process), at 16, and past a multiple of 16."""
    wrapped = vk_compile.maybe_compiled(_bernoulli_log_prob_sum, eager=_bernoulli_log_prob_sum_eager,
                                        min_numel=0, warmup_numel=0)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for d in (4, 16, 37):
            logits = torch.randn(30, 8, d, generator=gen, dtype=torch.float64) * 3
            x = (torch.rand(8, d, generator=gen) < 0.3).double()
            torch.testing.assert_close(wrapped(logits, x), _bern_ref(logits, x), rtol=1e-12, atol=1e-10)


# ----- the model's forward and chunked log-weights ----------------------------------------

SPEC = {"type": "vae", "encoder": {"type": "mlp", "hidden": [16], "activation": "tanh"},
        "latent": {"type": "gaussian", "dim": 3}, "decoder": {"type": "mlp", "hidden": [16], "activation": "tanh"},
        "likelihood": {"type": "bernoulli"}}


def test_forward_matches_distribution_path(seed):
    model = build_model(SPEC, data_dim=10).double()
    x = (torch.rand(4, 10) < 0.5).double()
    torch.manual_seed(1)
    out = model(x, k=3)
    torch.manual_seed(1)
    q = model.latent(model.encoder(x))
    z = q.rsample((3,))
    p = model.prior()
    torch.testing.assert_close(out.z, z)
    torch.testing.assert_close(out.kl, kl_divergence(q, p), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.log_likelihood, model.decode(z).log_prob(x), rtol=1e-10, atol=1e-12)
    # gradients of the ELBO agree with the torch.distributions composition on the same noise
    loss = -(out.log_likelihood.mean(0) - out.kl).mean()
    ref = -(model.decode(z).log_prob(x).mean(0) - kl_divergence(q, p)).mean()
    for a, b in zip(torch.autograd.grad(loss, list(model.parameters())),
                    torch.autograd.grad(ref, list(model.parameters()))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_chunked_log_weights_are_the_importance_weights(seed):
    model = build_model(SPEC, data_dim=10).double().eval()
    x = (torch.rand(4, 10) < 0.5).double()
    torch.manual_seed(2)
    lw = model.log_weights(x, 7, chunk_size=3)
    assert lw.shape == (7, 4)
    torch.manual_seed(2)
    q = model.latent(model.encoder(x))
    ref = []
    for c in (3, 3, 1):  # the chunks draw their noise in order
        eps = torch.randn(c, 4, 3, dtype=torch.float64)
        z = q.base_dist.loc + q.base_dist.scale * eps
        ref.append(model.decode(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z))
    torch.testing.assert_close(lw, torch.cat(ref), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="chunk_size"):
        iwae_estimate(model, x, 5, chunk_size=0)
    assert math.isfinite(float(BernoulliLikelihood(10).log_prob(torch.zeros(10), x[0])))
