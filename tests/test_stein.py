"""The Stein VAE (Pu et al. 2017): its protocol, its amortised SVGD objective, and AIS/BDMC on it.

References are independent of the code under test: log p(x) and the posterior's moments by quadrature on
a 2-D grid, gradients recomputed by hand from the particles. Statistical checks use 4 standard errors
(two-sided failure rate about 6e-5 each).
"""

from __future__ import annotations

import math

import pytest
import torch

from families import NO_DENSITY_MODEL_SPECS
from vaekit.evaluation import ais, bdmc, elbo_estimate, iwae_estimate, run_estimators
from vaekit.inference import svgd_direction
from vaekit.models import SteinVAE, build_model
from vaekit.objectives import build_objective
from vaekit.objectives.stein import fitted_gaussian_log_weights
from vaekit.registry import ConfigError

DT = torch.float64
D_X = 10


@pytest.fixture(autouse=True)
def _seeded(one_thread_seeded):
    yield


def _model(dim=2, particles=4, **kw) -> SteinVAE:
    spec = {**NO_DENSITY_MODEL_SPECS["stein_vae"](dim), "particles": particles, **kw}
    return build_model(spec, data_dim=D_X).double()


def _x(b=5, seed=1):
    return (torch.rand(b, D_X, generator=torch.Generator().manual_seed(seed), dtype=DT) < 0.4).double()


def _grid(n=161, lim=6.0):
    t = torch.linspace(-lim, lim, n, dtype=DT)
    zz = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 1, 2)  # (n^2, 1, 2)
    return zz, math.log((t[1] - t[0]).item() ** 2)


@torch.no_grad()
def _quadrature(model, x):
    """log p(x) (B,) and the posterior mean (B, 2) and sd (B, 2), by a 161 x 161 grid on [-6, 6]^2."""
    zz, log_da = _grid()
    lj = model.log_joint(x, zz.expand(-1, x.shape[0], 2))  # (G, B)
    log_px = torch.logsumexp(lj, 0) + log_da
    w = torch.softmax(lj, 0)[..., None]  # (G, B, 1)
    mean = (w * zz).sum(0)
    sd = ((w * (zz - mean) ** 2).sum(0)).sqrt()
    return log_px, mean, sd


# ----- protocol ----------------------------------------------------------------------------------------------
def test_protocol_shapes_and_the_parts_that_exist():
    model, x = _model(dim=3), _x()
    z = model.particles(x)
    assert z.shape == (4, 5, 3) and model.particles(x, 7).shape == (7, 5, 3)
    assert not model.posterior_density
    p = model.prior()
    torch.testing.assert_close(model.log_joint(x, z), model.log_likelihood(x, z) + p.log_prob(z))
    assert model.log_likelihood(x, z).shape == (4, 5)
    code = model.encode(x)
    assert code.shape == (5, 3)
    torch.testing.assert_close(model.encode(x), code, rtol=0, atol=0)  # deterministic
    assert model.reconstruct(x).shape == (5, D_X) and model.sample(3).shape == (3, D_X)
    assert model.latent_space.geometry == "euclidean" and model.latent_space.dim == 3


def test_what_needs_a_density_is_refused_naming_ais():
    model, x = _model(), _x()
    for call in (lambda: model.posterior(x), lambda: model(x, k=1), lambda: model.log_weights(x, 3),
                 lambda: iwae_estimate(model, x, 10), lambda: elbo_estimate(model, x)):
        with pytest.raises(NotImplementedError, match=r"no density.*AIS"):
            call()
    with pytest.raises(NotImplementedError, match=r"elbo, iwae need log q.*AIS"):
        run_estimators(model, x, "ais:3,elbo,iwae:10")  # refused before the AIS row runs


def test_config_errors_name_the_key():
    base = NO_DENSITY_MODEL_SPECS["stein_vae"](2)
    for key, value, match in (("particles", 1, r"model\.particles: SVGD moves sets of at least 2"),
                              ("particles", 0, r"model\.particles: expected an integer >= 1"),
                              ("bandwidth", "mean", r"model\.bandwidth"), ("bandwidth", -1.0, r"model\.bandwidth"),
                              ("head_activation", "rleu", r"model\.head_activation"),
                              ("noise", 3, r"model\.noise: unknown key")):
        with pytest.raises(ConfigError, match=match):
            build_model({**base, key: value}, data_dim=D_X)
    with pytest.raises(ValueError, match=r"train\.objective\.type: 'stein' trains a model with an implicit"):
        build_objective({"type": "stein"})(build_model(
            {"type": "vae", "encoder": base["encoder"], "decoder": base["decoder"], "likelihood": base["likelihood"],
             "latent": {"type": "gaussian", "dim": 2}}, data_dim=D_X), _x().float(), 0)


# ----- the objective's gradients ----------------------------------------------------------------------------
@pytest.mark.parametrize("bandwidth", ["median", "median_diag"])
def test_gradients_are_the_svgd_push_for_the_encoder_and_the_likelihood_for_the_decoder(bandwidth):
    model, x = _model(dim=3, particles=6, bandwidth=bandwidth), _x()
    enc = list(model.encoder.parameters()) + list(model.head.parameters())
    dec = list(model.decoder.parameters())
    torch.manual_seed(5)
    loss, _ = build_objective({"type": "stein"})(model, x, 0)
    grads = torch.autograd.grad(loss, enc + dec)
    # by hand, same noise: z, the score by autograd of log p(x, z), phi from the batched formula
    torch.manual_seed(5)
    z = model.particles(x)
    zc = z.detach().requires_grad_()
    lj = model.log_likelihood(x, zc) + model.prior().log_prob(zc)
    (score,) = torch.autograd.grad(lj.sum(), zc)
    phi = svgd_direction(zc, score, bandwidth)
    assert not torch.allclose(phi, svgd_direction(zc, score, "median_log"))  # the rule matters here
    want_enc = torch.autograd.grad(z, enc, grad_outputs=-phi / x.shape[0])  # -(1/B) sum_j phi_j dz_j/deta
    want_dec = torch.autograd.grad(-model.log_likelihood(x, z.detach()).mean(), dec)
    for g, w in zip(grads, want_enc + want_dec):
        torch.testing.assert_close(g, w)


def test_a_small_encoder_step_moves_the_particles_along_phi():
    model, x = _model(dim=3, particles=6), _x()
    obj = build_objective({"type": "stein"})
    torch.manual_seed(2)
    loss, _ = obj(model, x, 0)
    loss.backward()
    torch.manual_seed(2)
    z0 = model.particles(x).detach()
    zc = z0.clone().requires_grad_()
    (score,) = torch.autograd.grad(model.log_joint(x, zc).sum(), zc)
    phi = svgd_direction(z0, score)
    with torch.no_grad():
        for p in list(model.encoder.parameters()) + list(model.head.parameters()):
            p -= 1e-4 * p.grad
    torch.manual_seed(2)
    dz = model.particles(x).detach() - z0
    cos = (dz * phi).sum() / (dz.norm() * phi.norm())
    assert cos > 0.3, cos  # gradient descent on the surrogate moves z along +phi (first order: <dz, phi> > 0)


# ----- amortised SVGD finds the posterior ----------------------------------------------------------------------
SIGMA = 0.5


def _linear_gaussian(particles=16):
    """A Stein VAE with a linear decoder and fixed-scale Gaussian likelihood: p(z|x) and p(x) in closed form."""
    spec = {**NO_DENSITY_MODEL_SPECS["stein_vae"](2), "particles": particles,
            "decoder": {"type": "mlp", "hidden": []}, "likelihood": {"type": "gaussian", "learn_scale": False,
                                                                      "scale": SIGMA}}
    model = build_model(spec, data_dim=D_X).double()
    with torch.no_grad():
        model.decoder[0].weight.copy_(torch.randn(D_X, 2, dtype=DT) * 0.4)
        model.decoder[0].bias.zero_()
    return model


def _exact_posterior(model, x):
    """Mean (B, 2) and covariance (2, 2) of p(z|x) = N(S W^T x / s^2, S), S = (I + W^T W / s^2)^-1 (bias 0)."""
    w = model.decoder[0].weight.detach()
    cov = torch.linalg.inv(torch.eye(2, dtype=DT) + w.T @ w / SIGMA ** 2)
    return x @ w @ cov / SIGMA ** 2, cov


def test_amortised_svgd_with_a_fixed_decoder_matches_the_exact_posterior():
    """Decoder frozen (linear-Gaussian, so p(z|x) is an exact Gaussian); the encoder alone trained by the objective
    on 4 inputs. The particles' mean lands within 0.2 posterior sd of the exact mean, which is 1-4 sd away from the
    prior's, and their spread is of the posterior's size (0.6x-1.2x per dimension: 16 SVGD particles)."""
    model = _linear_gaussian()
    z_true = 1.5 * torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], dtype=DT)
    x = model.decoder(z_true).detach() + SIGMA * torch.randn(4, D_X, dtype=DT)
    mean, cov = _exact_posterior(model, x)
    sd = cov.diagonal().sqrt()
    assert ((mean.norm(dim=-1) / sd.max()) > 1.0).all(), "the check needs posteriors away from the prior"
    opt = torch.optim.Adam(list(model.encoder.parameters()) + list(model.head.parameters()), lr=3e-3)
    obj = build_objective({"type": "stein"})
    for step in range(1000):
        if step == 600:  # a smaller step for the last 400: the particles' targets are noisy
            opt.param_groups[0]["lr"] = 1e-3
        loss, _ = obj(model, x, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = model.particles(x, 2000)
    err = ((z.mean(0) - mean) / sd).abs()
    assert err.max() < 0.2, (z.mean(0), mean, sd)
    ratio = z.std(0) / sd
    assert ((ratio > 0.6) & (ratio < 1.2)).all(), ratio


# ----- evaluation: AIS, BDMC, the fitted-Gaussian bound --------------------------------------------------------
def test_ais_on_a_stein_vae_matches_quadrature():
    model, x = _model(dim=2), _x()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)
    exact, _, _ = _quadrature(model, x)
    r = ais(model, x, n_chains=16, T=300, leapfrog_steps=5, seed=0)
    assert ((r.log_px - exact).abs() <= 4 * r.stderr + 0.05).all(), (r.log_px, exact, r.stderr)


def test_bdmc_sandwiches_a_stein_vae():
    model = _model(dim=2)
    rows = bdmc(model, 4, [20, 200], n_chains=8, seed=0, leapfrog_steps=5)
    assert all(r.lower <= r.upper + 4 * math.hypot(r.lower_stderr, r.upper_stderr) for r in rows)
    assert rows[1].gap < rows[0].gap + 0.05 and rows[1].gap < 0.5, rows


def test_fitted_gaussian_importance_weights_bound_log_px():
    """logmeanexp of the fitted-Gaussian log-weights is a lower bound in expectation, rising with k."""
    model, x = _model(dim=2, particles=8), _x()
    exact, _, _ = _quadrature(model, x)
    with torch.no_grad():
        z = model.particles(x)
        lw = torch.stack([fitted_gaussian_log_weights(model, x, z, 1000) for _ in range(4)])  # (4, 1000, B)
    b1 = lw.mean(1)  # the 1-sample bound's mean over 1000 draws, 4 times
    b1000 = torch.logsumexp(lw, 1) - math.log(1000)  # (4, B)
    assert (b1.mean(0) < exact).all() and (b1000.mean(0) > b1.mean(0)).all()
    se = b1000.std(0) / 2 + 1e-3
    assert (b1000.mean(0) <= exact + 4 * se).all(), (b1000, exact)


def test_stein_viwae_objective_logs_a_bound_below_log_px():
    model, x = _model(dim=2, particles=8), _x()
    exact, _, _ = _quadrature(model, x)
    loss, m = build_objective({"type": "stein_viwae", "k": 64})(model, x, 0)
    assert torch.isfinite(loss) and 1 <= m["ess"] <= 64
    assert m["iwae_bound"] <= exact.mean() + 0.5  # a 64-sample bound, one draw: below log p(x) but for noise
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
