"""AIS, reverse AIS, BDMC and the HMC kernel, against a linear-Gaussian model with exact log p(x).

Model: z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I_D) built as a vaekit VAE (Linear decoder,
GaussianLikelihood(learn_scale=False, scale=s), GaussianLatent prior); exactly x ~ N(b, W W^T + s^2 I).
"""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from vaekit.evaluation.ais import ais, linear_schedule, log_mean_exp_with_se, make_schedule, sigmoid_schedule
from vaekit.evaluation.bdmc import bdmc, simulate
from vaekit.evaluation.bounds import elbo_estimate, iwae_estimate
from vaekit.evaluation.hmc import StepSizeAdapter, hmc_step, run_hmc
from vaekit.latents.gaussian import GaussianLatent
from vaekit.models import build_model
from vaekit.likelihoods.bernoulli import BernoulliLikelihood
from vaekit.likelihoods.gaussian import GaussianLikelihood
from vaekit.models import VAE
from vaekit.nets import MLP

D_Z, D_X, SIGMA = 5, 20, 0.5


pytestmark = pytest.mark.usefixtures("one_thread_seeded")


def linear_gaussian(scale: float = SIGMA):
    torch.manual_seed(0)
    model = VAE(nn.Linear(D_X, 16), GaussianLatent(16, D_Z), nn.Linear(D_Z, D_X),
                GaussianLikelihood(D_X, learn_scale=False, scale=scale)).double()
    W, b = model.decoder.weight.detach(), model.decoder.bias.detach()
    marginal = MultivariateNormal(b, W @ W.T + SIGMA ** 2 * torch.eye(D_X, dtype=torch.float64))
    return model, marginal


def pooled(err: torch.Tensor, se: torch.Tensor) -> tuple[float, float]:
    """Mean over images of per-image errors and the s.e. of that mean (independent images)."""
    return float(err.mean()), float(se.pow(2).sum().sqrt() / err.numel())


# ----- schedules and helpers --------------------------------------------------------------------------------
def test_schedules():
    s = sigmoid_schedule(50)
    assert s.shape == (51,) and s[0] == 0 and s[-1] == 1 and bool((s[1:] > s[:-1]).all())
    # denser near the ends than in the middle
    assert (s[1] - s[0]) < (s[26] - s[25])
    assert torch.allclose(linear_schedule(4), torch.tensor([0, .25, .5, .75, 1.], dtype=torch.float64))
    with pytest.raises(ValueError, match="T \\+ 1"):
        make_schedule(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="increase"):
        make_schedule(torch.tensor([0.0, 0.7, 0.5, 1.0]), 3)
    with pytest.raises(ValueError, match="schedule"):
        make_schedule("cosine", 3)


def test_log_mean_exp_with_se_matches_direct_formula():
    lw = torch.randn(30, 4, dtype=torch.float64) * 3 + 100.0
    est, se = log_mean_exp_with_se(lw)
    w = torch.exp(lw - 100.0)
    assert torch.allclose(est, torch.log(w.mean(0)) + 100.0)
    assert torch.allclose(se, w.std(0) / (math.sqrt(30) * w.mean(0)))


def test_ais_input_errors():
    model, _ = linear_gaussian()
    x = torch.zeros(3, D_X, dtype=torch.float64)
    with pytest.raises(ValueError, match="init_z"):
        ais(model, x, 2, 5, reverse=True)
    with pytest.raises(ValueError, match="init_z"):
        ais(model, x, 2, 5, init_z=torch.zeros(3, D_Z, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_chains"):
        ais(model, x, 0, 5)
    with pytest.raises(ValueError, match="shape"):
        ais(model, x[0], 2, 5)
    with pytest.raises(ValueError, match="init_z must be"):
        ais(model, x, 2, 5, reverse=True, init_z=torch.zeros(4, D_Z, dtype=torch.float64))


# ----- HMC ---------------------------------------------------------------------------------------------------
def test_hmc_leaves_gaussian_invariant():
    # Chains start at exact draws from a correlated 3-D Gaussian (smallest scale about 0.15); after 30
    # transitions with per-chain step sizes 0.05-0.4 (acceptance well below 1, so the Metropolis test matters)
    # the first and second moments must still match. 4000 chains; each of the 9 checks is a 4.5-s.e. z-test,
    # family-wise failure rate < 1e-4 (bump the seed once if it fails).
    torch.manual_seed(1)
    mu = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    L = torch.tensor([[1.0, 0, 0], [0.8, 0.5, 0], [-0.3, 0.4, 0.2]], dtype=torch.float64)
    cov = L @ L.T
    prec = torch.linalg.inv(cov)

    def log_density(z):  # unnormalised log N(mu, cov); cheaper than MultivariateNormal.log_prob
        d = z - mu
        return -0.5 * ((d @ prec) * d).sum(-1)

    n = 4000
    z = mu + torch.randn(n, 3, dtype=torch.float64) @ L.T
    eps = torch.linspace(0.05, 0.4, n, dtype=torch.float64)
    z, _, acc = run_hmc(z, log_density, n_steps=30, step_size=eps, n_leapfrog=5)
    assert 0.2 < float(acc.mean()) < 0.98
    zc = z - mu
    for i in range(3):
        m = zc[:, i]
        assert abs(float(m.mean())) <= 4.5 * float(m.std()) / math.sqrt(n)
    for i, j in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
        p = zc[:, i] * zc[:, j]
        assert abs(float(p.mean()) - float(cov[i, j])) <= 4.5 * float(p.std()) / math.sqrt(n), (i, j)


def test_hmc_rejects_divergent_proposals_and_bad_args():
    target = MultivariateNormal(torch.zeros(2), torch.eye(2))
    z = torch.randn(50, 2)
    r = hmc_step(z, target.log_prob, step_size=50.0, n_leapfrog=3)  # wildly unstable: almost all rejected
    assert r.z.shape == z.shape and torch.isfinite(r.z).all()
    assert torch.equal(r.z[~r.accepted], z[~r.accepted])
    with pytest.raises(ValueError, match="step_size"):
        hmc_step(z, target.log_prob, step_size=0.0)
    with pytest.raises(ValueError, match="n_leapfrog"):
        hmc_step(z, target.log_prob, step_size=0.1, n_leapfrog=0)
    with pytest.raises(ValueError, match="StepSize|min_step|target"):
        StepSizeAdapter(target=1.5)


def test_step_size_adapter_moves_toward_target():
    a = StepSizeAdapter()
    eps, avg = a.init(torch.Size([2]), torch.float64, torch.device("cpu"))
    for _ in range(50):
        eps, avg = a.update(eps, avg, torch.tensor([True, False]))
    assert eps[0] > 0.01 > eps[1] >= a.min_step


# ----- AIS on the linear-Gaussian model ------------------------------------------------------------------------
def test_ais_matches_exact_log_px_and_error_shrinks_with_T():
    # 8 data points from the model, 16 chains. At T=500 the pooled error must be within 3 pooled s.e. and
    # every image within 4.5 of its own s.e. (delta-method s.e.; failure rate about 0.3% for the pooled
    # check, bump the seed once). Mean absolute error must fall T=10 -> 100 -> 500 (observed about 4.8, 0.7, 0.07).
    model, marginal = linear_gaussian()
    torch.manual_seed(2)
    x = marginal.sample((8,))
    exact = marginal.log_prob(x)
    mae = []
    for T in (10, 100, 500):
        r = ais(model, x, n_chains=16, T=T, seed=3)
        mae.append(float((r.log_px - exact).abs().mean()))
    err, se = pooled(r.log_px - exact, r.stderr)
    assert abs(err) <= 3 * se, (err, se)
    assert bool(((r.log_px - exact).abs() <= 4.5 * r.stderr).all())
    assert mae[0] > mae[1] > mae[2], mae
    assert 0.3 < r.acceptance < 0.95


def test_forward_below_and_reverse_above_at_small_T():
    # On data simulated with known z, at T=10 forward AIS is a clear under-estimate and reverse AIS (from the
    # true z) a clear over-estimate: both beyond 3 pooled s.e. (observed margins of several nats).
    model, marginal = linear_gaussian()
    z, x = simulate(model, 8, seed=4)
    exact = marginal.log_prob(x)
    f = ais(model, x, n_chains=16, T=10, seed=5)
    r = ais(model, x, n_chains=16, T=10, seed=6, reverse=True, init_z=z)
    ef, sf = pooled(f.log_px - exact, f.stderr)
    er, sr = pooled(r.log_px - exact, r.stderr)
    assert ef < -3 * sf, (ef, sf)
    assert er > 3 * sr, (er, sr)


def test_bdmc_sandwiches_exact_and_gap_shrinks():
    model, marginal = linear_gaussian()
    z, x = simulate(model, 8, seed=7)
    exact = float(marginal.log_prob(x).mean())
    rows = bdmc(model, 8, [10, 50, 300], n_chains=8, seed=8, data=(z, x))
    gaps = [row.gap for row in rows]
    ses = [math.hypot(row.lower_stderr, row.upper_stderr) for row in rows]
    # Observed gaps are several nats at T=10 and a fraction of a nat at T=300; each drop must exceed 3 s.e.
    assert gaps[0] - gaps[1] > 3 * math.hypot(ses[0], ses[1]), (gaps, ses)
    assert gaps[1] - gaps[2] > 3 * math.hypot(ses[1], ses[2]), (gaps, ses)
    for row in rows:  # the sandwich, within 3 s.e. on each side
        assert row.lower <= exact + 3 * row.lower_stderr
        assert row.upper >= exact - 3 * row.upper_stderr


def test_elbo_le_iwae_le_ais_on_same_data():
    # Paired per-image differences; each inequality within 3 s.e. of the paired differences (the true
    # differences are positive, so the failure rate is below 0.2% each). The random encoder makes the gaps large,
    # and AIS must also be within 3 s.e. of the exact value.
    model, marginal = linear_gaussian()
    torch.manual_seed(9)
    x = marginal.sample((16,))
    exact = marginal.log_prob(x)
    elbo = elbo_estimate(model, x)
    iwae = iwae_estimate(model, x, 200)
    a = ais(model, x, n_chains=16, T=300, seed=10)
    d1, d2 = iwae - elbo, a.log_px - iwae
    assert float(d1.mean()) >= -3 * float(d1.std()) / 4
    assert float(d2.mean()) >= -3 * float(d2.std()) / 4
    assert float(d1.mean()) > 0 and float(d2.mean()) > 0
    err, se = pooled(a.log_px - exact, a.stderr)
    assert abs(err) <= 3 * se


def test_fixed_observation_scale_option():
    # A model whose own likelihood has scale 1 is scored under N(decode(z).mean, SIGMA^2 I) via obs_scale,
    # which must reproduce the exact marginal with scale SIGMA (within 3 pooled s.e.).
    model, marginal = linear_gaussian(scale=1.0)
    torch.manual_seed(11)
    x = marginal.sample((8,))
    r = ais(model, x, n_chains=16, T=300, seed=12, obs_scale=SIGMA)
    err, se = pooled(r.log_px - marginal.log_prob(x), r.stderr)
    assert abs(err) <= 3 * se, (err, se)
    own = ais(model, x, n_chains=4, T=50, seed=12)
    assert float((own.log_px - r.log_px).abs().mean()) > 1.0  # the option really changes the likelihood


def test_ais_is_seeded_and_restores_global_rng():
    model, marginal = linear_gaussian()
    x = marginal.sample((2,))
    state = torch.get_rng_state()
    a = ais(model, x, n_chains=4, T=20, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    b = ais(model, x, n_chains=4, T=20, seed=5)
    c = ais(model, x, n_chains=4, T=20, seed=6)
    assert torch.equal(a.log_weights, b.log_weights) and not torch.equal(a.log_weights, c.log_weights)
    assert all(p.requires_grad for p in model.parameters())


# ----- BDMC on a small trained Bernoulli VAE ------------------------------------------------------------------
@pytest.mark.slow
def test_bdmc_gap_shrinks_on_trained_bernoulli_vae():
    # A 64-32-4 tanh VAE trained for 300 Adam steps on binarised sklearn digits (about 1 s), then BDMC on 4
    # simulated images with 4 chains and 1 leapfrog step (kept small for the CI budget: about 22k batched
    # gradient evaluations) at T = 100, 1000, 10000: the gap must shrink at each step by more than 2 combined
    # Monte Carlo s.e. (or be below 0.1 nat at T=10000).
    from sklearn.datasets import load_digits
    torch.manual_seed(13)
    data = torch.as_tensor(load_digits().data > 7, dtype=torch.float32)
    model = VAE(MLP(64, [32], activation="tanh"), GaussianLatent(32, 4), MLP(4, [32], out_features=64,
                activation="tanh"), BernoulliLikelihood(64))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        xb = data[torch.randint(0, data.shape[0], (100,))]
        out = model(xb)
        loss = -(out.log_likelihood.mean(0) - out.kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows = bdmc(model, 4, [100, 1000, 10000], n_chains=4, seed=14, leapfrog_steps=1)
    gaps = [r.gap for r in rows]
    ses = [math.hypot(r.lower_stderr, r.upper_stderr) for r in rows]
    assert gaps[0] - gaps[1] > 2 * math.hypot(ses[0], ses[1]), (gaps, ses)
    assert gaps[1] - gaps[2] > 2 * math.hypot(ses[1], ses[2]) or gaps[2] < 0.1, (gaps, ses)
    assert gaps[2] > -3 * ses[2]
