"""Semi-supervised sentence VAE (Xu et al. 2017): the score-function estimator against exact enumeration."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.models import build_model
from vaekit.nets.text import EOS_ID
from vaekit.objectives.text import (RunningBaseline, enumerated_unlabelled_bound, sampled_unlabelled_surrogate,
                                    score_function_surrogate, ssvae_loss)


def tiny(k=3):
    return build_model({"type": "text_m2", "vocab_size": 12, "num_classes": k, "embed_dim": 8,
                        "latent": {"type": "gaussian", "dim": 2}, "classifier": {"hidden": 8},
                        "encoder": {"hidden": 8}, "decoder": {"hidden": 8}}, data_dim=6)


def batch(b=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(4, 12, (b, 6), generator=g)
    x[:, 4] = EOS_ID
    return x


def _entropy(logits):
    lp = torch.log_softmax(logits, -1)
    return -(lp.exp() * lp).sum(-1)


def test_score_function_gradient_is_unbiased_and_the_baseline_halves_its_variance():
    """For fixed class-conditional bounds L (B, K), the mean over N draws of the sampled surrogate's gradient in the
    classifier logits equals the gradient of sum_y q(y|x) L(x, y) + H within 4 s.e. per component, with and without a
    baseline, and the baseline cuts the summed variance to at most half (measured)."""
    torch.manual_seed(0)
    b, k, n = 4, 3, 4000
    logits0 = torch.randn(b, k)
    L = -100 + 5 * torch.randn(b, k)  # sentence bounds are large negative numbers: the case a baseline is for
    lg = logits0.clone().requires_grad_()
    ((torch.softmax(lg, -1) * L).sum() + _entropy(lg).sum()).backward()
    exact = lg.grad

    def draws(base):
        rep = logits0.expand(n, b, k).clone().requires_grad_()
        y = torch.multinomial(torch.softmax(logits0, -1), n, replacement=True).t()  # (n, b)
        signal = L.gather(1, y.t()).t() - base
        (score_function_surrogate(rep, y, signal) + _entropy(rep)).sum().backward()
        return rep.grad  # (n, b, k): one gradient per draw

    var = {}
    for name, base in (("none", 0.0), ("mean", float(L.mean()))):
        g = draws(base)
        mean, se = g.mean(0), g.std(0) / math.sqrt(n)
        assert ((mean - exact).abs() <= 4 * se + 1e-6).all(), (name, mean, exact, se)
        var[name] = float(g.var(0).sum())
    assert var["mean"] <= 0.5 * var["none"], var


def test_per_token_baseline_removes_the_length_spread():
    """Bounds proportional to sentence length (-5 nats a token, lengths 3..30): the per-token running baseline leaves
    a signal smaller than the batch-mean baseline's (measured on the second batch, after one update)."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 31, (64,), generator=g)
    L = -5.0 * lengths + 0.5 * torch.randn(64, generator=g)
    const, tok = RunningBaseline(decay=0.0), RunningBaseline(decay=0.0, per_token=True)
    const.signal(L), tok.signal(L, lengths)
    s_const, s_tok = const.signal(L), tok.signal(L, lengths)
    assert s_tok.pow(2).mean() <= 0.05 * s_const.pow(2).mean()
    with pytest.raises(ValueError, match="needs the sentence lengths"):
        tok.signal(L)


def test_sampled_estimate_matches_enumeration_on_a_model():
    """E_y,z[L(x, y) + H] = E_z[U(x)]: 300 draws of each, means within 4 combined s.e."""
    torch.manual_seed(1)
    m = tiny().eval()
    x = batch()
    with torch.no_grad():  # 300 copies of the batch in one call: independent draws per row
        xr = x.repeat(300, 1)
        enum = enumerated_unlabelled_bound(m, xr).view(300, -1)
        samp = sampled_unlabelled_surrogate(m, xr)[1].view(300, -1)
    se = (enum.var(0) / 300 + samp.var(0) / 300).sqrt()
    assert ((enum.mean(0) - samp.mean(0)).abs() <= 4 * se).all(), (enum.mean(0), samp.mean(0), se)
    # the surrogate's value is the estimate (the score-function term adds 0)
    torch.manual_seed(2)
    sur, est = sampled_unlabelled_surrogate(m, x)
    torch.testing.assert_close(sur.detach(), est)


@pytest.mark.parametrize("treatment", ["enumerate", "sample"])
def test_ssvae_loss_trains_every_part(treatment):
    torch.manual_seed(0)
    m = tiny()
    x = batch(6)
    loss, metrics = ssvae_loss(m, x, x[:3], torch.tensor([0, 1, 2]), alpha=1.0, treatment=treatment,
                               baseline=RunningBaseline())
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
    assert set(metrics) == {"elbo_unlabelled", "elbo_labelled", "classifier_nll", "error"}
    with pytest.raises(ValueError, match=r"labels must be int64 in \[0, 3\)"):
        m.elbo(x[:2], torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="treatment must be"):
        ssvae_loss(m, x, x, torch.zeros(6, dtype=torch.int64), 1.0, treatment="gumbel")


def test_running_baseline():
    b = RunningBaseline(decay=0.5)
    torch.testing.assert_close(b.signal(torch.tensor([1.0, 3.0])), torch.tensor([-1.0, 1.0]))  # first batch: its mean
    assert b.mean == pytest.approx(2.0)
    torch.testing.assert_close(b.signal(torch.tensor([4.0])), torch.tensor([2.0]))
    assert b.mean == pytest.approx(3.0)
    with pytest.raises(ValueError, match="decay"):
        RunningBaseline(decay=1.0)
