"""Full-covariance, relaxed-categorical, mixture and IAF latent layers, alone and inside a VAE.

Statistical tests compare a Monte Carlo mean with its target at 4 standard errors (failure rate
about 6e-5 per comparison; if one fails after an unrelated change, bump the seed once).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import OneHotCategorical, RelaxedOneHotCategorical, kl_divergence
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from vaekit.distributions import GroupedRelaxedOneHotCategorical
from vaekit.distributions.relaxed import MAX_TEMPERATURE, MIN_TEMPERATURE
from vaekit.evaluation.bounds import elbo_estimate, iwae_estimate
from vaekit.latents import (LATENTS, FullCovGaussianLatent, IAFPosterior, MixtureLatent,
                            RelaxedCategoricalLatent, has_analytic_kl)
from vaekit.models.build import build_model
from vaekit.registry import ConfigError

DT = torch.float64


@pytest.fixture(autouse=True)
def _seed(one_thread):
    torch.manual_seed(7)


# ----- full covariance -----------------------------------------------------------------------------
def test_full_cov_scale_tril_is_valid():
    layer = FullCovGaussianLatent(5, 4)
    p = layer.params(torch.randn(3, 5))
    tril = p["scale_tril"]
    assert tril.shape == (3, 4, 4)
    assert torch.equal(tril.triu(1), torch.zeros_like(tril))
    assert (tril.diagonal(dim1=-2, dim2=-1) >= 1e-4).all()
    r, c = torch.tril_indices(4, 4, -1)
    assert (tril[:, r, c].abs() > 0).all()  # off-diagonal entries are free, not zero


def test_full_cov_analytic_kl_matches_monte_carlo():
    # failure rate: 3 comparisons at 4 s.e., about 2e-4
    layer = FullCovGaussianLatent(5, 4).double()
    q = layer(torch.randn(3, 5, dtype=DT))
    p = layer.prior()
    assert has_analytic_kl(q, p)
    kl = kl_divergence(q, p)
    assert kl.shape == (3,)
    n = 40000
    z = q.sample((n,))
    est = q.log_prob(z) - p.log_prob(z)
    assert ((est.mean(0) - kl).abs() <= 4 * est.std(0) / math.sqrt(n)).all()
    assert torch.allclose(kl_divergence(q, q), torch.zeros(3, dtype=DT), atol=1e-10)


# ----- relaxed categorical -------------------------------------------------------------------------
def test_relaxed_samples_lie_on_each_group_simplex():
    layer = RelaxedCategoricalLatent(6, dim=12, n_categories=4, temperature=0.5)
    q = layer(torch.randn(5, 6))
    z = q.rsample((3,))
    assert z.shape == (3, 5, 12) and q.event_shape == (12,) and q.batch_shape == (5,)
    g = z.unflatten(-1, (3, 4))
    assert (g >= 0).all() and torch.allclose(g.sum(-1), torch.ones(3, 5, 3))
    assert bool(q.support.check(z).all())
    assert not bool(((g == 0) | (g == 1)).all())  # relaxed, not hard


def test_relaxed_log_prob_matches_torch_per_group_and_normalises():
    logits = torch.randn(2, 3, 4, dtype=DT)
    q = GroupedRelaxedOneHotCategorical(0.7, logits)
    z = q.sample((5,))
    ref = RelaxedOneHotCategorical(torch.tensor(0.7, dtype=DT), logits=logits).log_prob(z.unflatten(-1, (3, 4)))
    assert torch.allclose(q.log_prob(z), ref.sum(-1), atol=1e-10)
    # n = 2: the density of y_1 on (0, 1) integrates to one (independent check of the normaliser)
    q2 = GroupedRelaxedOneHotCategorical(0.7, torch.tensor([[0.3, -0.4]], dtype=DT))
    y = torch.linspace(1e-7, 1 - 1e-7, 400001, dtype=DT)
    dens = q2.log_prob(torch.stack([y, 1 - y], -1)).exp()
    assert torch.trapezoid(dens, y).item() == pytest.approx(1.0, abs=2e-3)


def _replayed_log_values(logits: torch.Tensor, tau: float, n_draws: int, seed: int) -> torch.Tensor:
    """The float64 log-values ``x = log y`` that seed ``seed`` gives, replayed with torch's ``ExpRelaxedCategorical``."""
    torch.manual_seed(seed)
    return ExpRelaxedCategorical(torch.tensor(tau, dtype=DT), logits=logits.detach().double()).rsample((n_draws,))


def _reference_log_prob(logits: torch.Tensor, tau: float, x: torch.Tensor) -> torch.Tensor:
    """Float64 Concrete log-density of ``y = exp(x)``, summed over groups: torch's ``ExpRelaxedCategorical.log_prob``
    minus ``sum_i x_i`` (the change of variables), independent of vaekit's scoring code."""
    e = ExpRelaxedCategorical(torch.tensor(tau, dtype=DT), logits=logits.detach().double())
    return (e.log_prob(x) - x.sum(-1)).sum(-1)


@pytest.mark.parametrize("tau", [MIN_TEMPERATURE, 1 / 29, 0.5, MAX_TEMPERATURE])
def test_relaxed_log_prob_of_a_float32_draw_is_the_float64_log_space_value(tau):
    # issue 12 item 3: 30 classes at tau = 1/29, every float32 draw has an entry that underflows to 0, and
    # log_prob rebuilt from it was off by up to 9.5e3 nats; the draw now carries its log-space coordinates
    logits = (2 * torch.randn(2, 1, 30)).float()
    q = GroupedRelaxedOneHotCategorical(tau, logits)
    torch.manual_seed(11)
    z = q.rsample((100,))
    assert z.dtype == torch.float32 and bool(q.support.check(z).all())
    if tau <= 1 / 29:
        assert (z == 0).any(-1).all()  # the case the fix is for: every draw has underflowed entries
    ref = _reference_log_prob(logits, tau, _replayed_log_values(logits, tau, 100, 11))
    torch.testing.assert_close(q.log_prob(z).double(), ref, rtol=1e-6, atol=1e-6)
    torch.manual_seed(11)  # the fast path draws the same way
    torch.testing.assert_close(q.rsample_and_log_prob((100,))[1].double(), ref, rtol=1e-6, atol=1e-6)


def test_relaxed_monte_carlo_kl_at_low_temperature_is_the_float64_value_and_positive():
    # before: the MC KL of 30 classes at tau = 1/29 came out at -23.7 where the float64 value is +51.9
    layer = RelaxedCategoricalLatent(4, dim=30, n_categories=30, temperature=1 / 29)
    with torch.no_grad():
        layer.head.weight.mul_(10)  # a posterior far from the uniform prior
    q, p = layer(torch.randn(2, 4)), layer.prior()
    torch.manual_seed(12)
    z, log_q = q.rsample_and_log_prob((400,))
    est = (log_q - p.log_prob(z)).double()  # what kl_estimate averages
    x = _replayed_log_values(q.logits, 1 / 29, 400, 12)
    ref_q, ref_p = _reference_log_prob(q.logits, 1 / 29, x), _reference_log_prob(torch.zeros(1, 30), 1 / 29, x)
    torch.testing.assert_close(est, ref_q - ref_p, rtol=1e-5, atol=1e-2)
    se = est.std(0) / math.sqrt(400)
    assert (est.mean(0) > 4 * se).all() and (est.mean(0) > 10).all(), est.mean(0)


def test_relaxed_values_that_are_not_draws_are_scored_from_their_entries():
    logits = torch.randn(3, 2, 4, dtype=DT)
    q = GroupedRelaxedOneHotCategorical(0.8, logits)
    z = q.sample((6,))
    ref = RelaxedOneHotCategorical(torch.tensor(0.8, dtype=DT), logits=logits).log_prob(z.unflatten(-1, (2, 4)))
    torch.testing.assert_close(q.log_prob(z.clone()), ref.sum(-1), rtol=1e-10, atol=1e-10)  # no underflow here
    z.mul_(1.0)  # modified in place: the carried coordinates no longer count, the entries do
    torch.testing.assert_close(q.log_prob(z), ref.sum(-1), rtol=1e-10, atol=1e-10)
    # the value's own derivative exists for a non-draw (HMC needs it)
    v = z.clone().requires_grad_()
    (g,) = torch.autograd.grad(q.log_prob(v).sum(), v)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_relaxed_temperature_outside_the_accepted_range_is_refused():
    for bad in (0.0, -1.0, MIN_TEMPERATURE / 2, 2 * MAX_TEMPERATURE, True, "0.5"):
        with pytest.raises(ValueError, match=r"temperature must be a number in \[0.001, 1000.0\]"):
            GroupedRelaxedOneHotCategorical(bad, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="temperature must be in"):
        RelaxedCategoricalLatent(4, dim=6, n_categories=3, temperature=1e-4)


def test_relaxed_impossible_class_is_the_concrete_density_of_the_rest():
    # issue 12 item 2, relaxed: a logit of -inf puts every draw on the face y_i = 0, scored there
    logits = torch.randn(5, 1, 4, dtype=DT)
    logits[..., 2] = -math.inf
    q = GroupedRelaxedOneHotCategorical(0.6, logits)
    z, log_q = q.rsample_and_log_prob((20,))
    assert (z[..., 2] == 0).all()
    rest = [0, 1, 3]
    ref = RelaxedOneHotCategorical(torch.tensor(0.6, dtype=DT), logits=logits[..., rest]).log_prob(
        z.unflatten(-1, (1, 4))[..., rest])
    torch.testing.assert_close(log_q, ref.sum(-1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(q.log_prob(z.clone()), ref.sum(-1), rtol=1e-10, atol=1e-10)
    off = torch.tensor([0.5, 0.3, 0.1, 0.1], dtype=DT)  # mass on the impossible class: density 0
    assert (q.log_prob(off) == -math.inf).all()


def test_straight_through_forward_is_one_hot_with_nonzero_gradients():
    logits = torch.randn(4, 3, 5, requires_grad=True)
    q = GroupedRelaxedOneHotCategorical(0.5, logits, straight_through=True)
    z = q.rsample((2,))
    g = z.unflatten(-1, (3, 5))
    assert ((g == 0) | (g == 1)).all() and torch.equal(g.sum(-1), torch.ones(2, 4, 3))
    weights = torch.randn(15)
    (z * weights).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_straight_through_forward_is_an_exact_categorical_draw():
    # failure rate: 5 comparisons at 4 s.e., about 3e-4
    logits = torch.tensor([[0.5, -1.0, 0.0, 1.2, -0.3]], dtype=DT)
    q = GroupedRelaxedOneHotCategorical(2.0, logits, straight_through=True)  # high temperature: still exact
    n = 40000
    freq = q.sample((n,)).mean(0)
    p = logits.softmax(-1).flatten()
    assert ((freq - p).abs() <= 4 * (p * (1 - p) / n).sqrt()).all()


def test_straight_through_log_prob_and_mc_kl_are_discrete():
    # failure rate: 2 comparisons at 4 s.e., about 1e-4
    layer = RelaxedCategoricalLatent(3, dim=8, n_categories=4, temperature=0.5, straight_through=True).double()
    q, p = layer(torch.randn(2, 3, dtype=DT)), layer.prior()
    z = q.sample((30000,))
    ref = OneHotCategorical(logits=q.logits).log_prob(z.unflatten(-1, (2, 4))).sum(-1)
    assert torch.allclose(q.log_prob(z), ref, atol=1e-12)
    est = q.log_prob(z) - p.log_prob(z)
    exact = kl_divergence(OneHotCategorical(logits=q.logits), OneHotCategorical(logits=torch.zeros(2, 4, dtype=DT)))
    exact = exact.sum(-1)
    assert ((est.mean(0) - exact).abs() <= 4 * est.std(0) / math.sqrt(z.shape[0])).all()


def test_relaxed_categorical_bad_config():
    with pytest.raises(ValueError, match="multiple"):
        RelaxedCategoricalLatent(4, dim=10, n_categories=4)
    with pytest.raises(ValueError, match="temperature"):
        GroupedRelaxedOneHotCategorical(0.0, torch.zeros(1, 3))
    with pytest.raises(ConfigError):
        build_model(_spec({"type": "relaxed_categorical", "dim": 8, "n_categories": 4, "tau": 1.0}), 12)


def test_mixture_latent_gradients_reach_the_weights_head():
    layer = MixtureLatent(5, dim=3, components=4)
    q = layer(torch.randn(6, 5))
    z = q.rsample((2,))
    (z ** 2).sum().backward()
    grad_logit_rows = layer.head.weight.grad[:4]
    assert grad_logit_rows.abs().sum() > 0


# ----- every family inside a VAE ---------------------------------------------------------------------
FAMILIES = {
    "mixture": {"type": "mixture", "dim": 3, "components": 3},
    "iaf": {"type": "iaf", "dim": 3, "steps": 2, "hidden": [12, 12], "context_dim": 4},
    "full_cov_gaussian": {"type": "full_cov_gaussian", "dim": 3},
    "relaxed_categorical": {"type": "relaxed_categorical", "dim": 8, "n_categories": 4, "temperature": 0.7},
    "relaxed_categorical_st": {"type": "relaxed_categorical", "dim": 8, "n_categories": 4, "straight_through": True},
}


def _spec(latent):
    return {"type": "vae", "encoder": {"type": "mlp", "hidden": [24]}, "latent": latent,
            "decoder": {"type": "mlp", "hidden": [24]}, "likelihood": {"type": "bernoulli"}}


def test_every_family_is_registered():
    for name in ("mixture", "iaf", "full_cov_gaussian", "relaxed_categorical"):
        assert name in LATENTS


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_vae_trains_and_iwae_bound_is_above_elbo(family):
    """A few Adam steps on random binary data without NaN; then mean IWAE-50 >= mean ELBO (on average).

    Jensen gives E[L_50] >= E[L_1]; the estimates use 50 samples per input over 48 inputs, so the
    gap (typically 0.1-1 nat here) dominates the noise; failure rate well under 1e-3.
    """
    x = (torch.rand(48, 12) < 0.3).float()
    model = build_model(_spec(FAMILIES[family]), data_dim=12)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        out = model(x, k=1)
        assert out.z.shape[:2] == (1, 48) and out.log_likelihood.shape == (1, 48) and out.kl.shape == (48,)
        loss = -(out.log_likelihood.mean(0) - out.kl).mean()
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
    model.eval()
    elbo = elbo_estimate(model, x, k=50)
    iwae = iwae_estimate(model, x, k=50)
    assert torch.isfinite(elbo).all() and torch.isfinite(iwae).all()
    assert iwae.mean() >= elbo.mean()
    assert model.encode(x).shape == (48, model.latent_dim)
    assert model.sample(4).shape == (4, 12)


def test_vae_uses_the_iaf_single_pass_log_q_consistently():
    model = build_model(_spec(FAMILIES["iaf"]), data_dim=12).double()
    x = (torch.rand(5, 12) < 0.5).double()
    q = model.posterior(x)
    assert isinstance(q, IAFPosterior)
    z, log_q = q.rsample_and_log_prob((3,))
    assert torch.allclose(log_q, q.log_prob(z), atol=1e-9)  # the one-pass density equals the inverted flow's
    out = model(x, k=3)  # the IAF has no analytic KL: the output's KL is the mean over samples of log q - log p
    assert out.kl.shape == (5,) and torch.isfinite(out.kl).all()
    lw = model.log_weights(x, 4)
    assert lw.shape == (4, 5) and torch.isfinite(lw).all()
