"""Sphere families: Bessel functions, VonMisesFisher, HypersphericalUniform, PowerSpherical, their KLs and latents.

Statistical tests use fixed seeds and a z = 4 standard-error threshold: under the null each compared
number fails with probability about 6e-5 (two-sided normal), and there are about 150 such numbers
here, so a full run fails by chance with probability < 1%. If one fails after an unrelated change,
bump the seed once; a second failure is a bug. The KS tests use p > 1e-4 (failure rate 1e-4 each).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from torch.distributions import kl_divergence

from vaekit.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher
from vaekit.distributions.bessel import (bessel_ratio, log_ive, log_ive_over_xv, log_ive_over_xv_and_ratio,
                                        log_iv_over_xv)
from vaekit.distributions.von_mises_fisher import vmf_marginal_dw_dkappa
from vaekit.latents import LATENTS
from vaekit.models import build_model

DT = torch.float64
Z = 4.0


@pytest.fixture(autouse=True)
def _seed(one_thread):
    torch.manual_seed(20260521)


def _unit(*shape: int, dtype=DT) -> torch.Tensor:
    x = torch.randn(*shape, dtype=dtype)
    return x / x.norm(dim=-1, keepdim=True)


def _log_area(m: int) -> float:
    return math.log(2) + m / 2 * math.log(math.pi) - special.gammaln(m / 2)


def _scipy_log_c(m: int, kappa: float) -> float:
    """log C_m(kappa) from scipy.special.ive (independent of vaekit.bessel)."""
    v = m / 2 - 1
    return v * math.log(kappa) - (v + 1) * math.log(2 * math.pi) - (math.log(special.ive(v, kappa)) + kappa)


def _on_sphere(z: torch.Tensor, atol: float) -> bool:
    return bool(((z.detach().norm(dim=-1) - 1).abs() <= atol).all())


def _assert_mean(samples: torch.Tensor, truth: float, what: str) -> None:
    s = samples.double()
    se = s.std().item() / math.sqrt(s.numel())
    err = abs(s.mean().item() - truth)
    assert err <= Z * se + 1e-12, f"{what}: mean {s.mean().item():.6g} vs {truth:.6g}, |err| {err:.3g} > {Z} se = {Z * se:.3g}"


# ------------------------------------------------------------------------------------------------
# Bessel functions
# ------------------------------------------------------------------------------------------------
ORDERS = [0.0, 0.5, 1.0, 1.5, 4.0, 24.0, 39.5, 49.0, 511.0, 1024.0]
ARGS = np.sort(np.concatenate([np.logspace(-3, 5, 33), [0.5, 3.0, 39.0, 41.0, 700.0, 1025.0]]))


@pytest.mark.parametrize("v", ORDERS)
def test_log_ive_and_ratio_match_scipy(v):
    x = torch.tensor(ARGS, dtype=DT)
    got = log_ive(v, x).numpy()
    ref_ive = special.ive(v, ARGS)
    ok = (ref_ive > 1e-290) & np.isfinite(ref_ive)  # where scipy does not underflow
    assert ok.sum() >= 4
    ref = np.log(ref_ive[ok])
    np.testing.assert_allclose(got[ok], ref, rtol=1e-11, atol=1e-11)
    ratio = bessel_ratio(v, x).numpy()
    ref_ratio = special.ive(v + 1, ARGS[ok]) / ref_ive[ok]
    ok2 = special.ive(v + 1, ARGS[ok]) > 1e-290
    np.testing.assert_allclose(ratio[ok][ok2], ref_ratio[ok2], rtol=1e-11)


def test_log_ive_where_scipy_underflows_matches_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    for v, x in [(511.0, 1e-3), (1024.0, 0.5), (511.0, 10.0), (200.5, 1e-2)]:
        ref = float(mpmath.log(mpmath.besseli(v, mpmath.mpf(x)))) - x
        got = log_ive(v, torch.tensor([x], dtype=DT)).item()
        assert abs(got - ref) <= 1e-11 * abs(ref), (v, x, got, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bessel_finite_over_the_whole_range(dtype):
    # d in [2, 1024] -> v = d/2 - 1 in [0, 511]; kappa in [0, 1e5]
    x = torch.cat([torch.zeros(1), torch.logspace(-8, 5, 60)]).to(dtype).requires_grad_()
    for v in [0.0, 0.5, 3.0, 49.0, 511.0]:
        for fn in (log_iv_over_xv, log_ive_over_xv, bessel_ratio):
            y = fn(v, x)
            (g,) = torch.autograd.grad(y.sum(), x)
            assert torch.isfinite(y).all() and torch.isfinite(g).all(), (fn.__name__, v, dtype)
        r = bessel_ratio(v, x.detach())
        assert ((r >= 0) & (r < 1)).all()
        assert torch.all(r[1:] >= r[:-1] - 1e-6)  # A_v is increasing


def test_bessel_gradcheck():
    x = torch.tensor([1e-3, 0.7, 5.0, 60.0, 900.0], dtype=DT, requires_grad=True)
    for v in [0.0, 1.5, 45.0]:
        assert torch.autograd.gradcheck(lambda t: log_ive(v, t), (x,))
        assert torch.autograd.gradcheck(lambda t: bessel_ratio(v, t), (x,))
    # second derivatives (the backward is itself differentiable)
    assert torch.autograd.gradgradcheck(lambda t: log_iv_over_xv(2.5, t), (x[1:3],))


def test_one_recurrence_gives_both_the_log_normaliser_part_and_the_ratio():
    """``log_ive_over_xv_and_ratio`` (the vMF entropy's one call) equals the two separate functions, values and
    gradients, from x = 0 through the small-x series (< 1e-5) to 1e5, including float32 inputs."""
    for dtype in (torch.float64, torch.float32):
        x = torch.cat([torch.zeros(1), torch.logspace(-8, 5, 40)]).to(dtype)
        for v in [0.0, 0.5, 1.5, 9.0, 49.0, 511.0]:
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            log_part, ratio = log_ive_over_xv_and_ratio(v, xa)
            ref_log, ref_ratio = log_ive_over_xv(v, xb), bessel_ratio(v, xb)
            tol = 1e-13 if dtype == torch.float64 else 1e-6
            torch.testing.assert_close(log_part, ref_log, rtol=tol, atol=tol)
            # the recurrence and the Debye start carry up to ~1e-12 relative; below 1e-5 this uses the (exact) series
            torch.testing.assert_close(ratio, ref_ratio, rtol=max(tol, 1e-11), atol=1e-300)
            w = torch.linspace(0.5, 2.0, x.numel(), dtype=dtype)  # weights so the two outputs' gradients mix
            (ga,) = torch.autograd.grad((log_part * w + ratio * w.flip(0)).sum(), xa)
            (gb,) = torch.autograd.grad((ref_log * w + ref_ratio * w.flip(0)).sum(), xb)
            # dA/dx = 1 - A^2 - (2v+1) A / x cancels at small x (to 1/(2v+2)), amplifying A's last-bit
            # differences between the series and the recurrence by up to ~(2v+1)(2v+2)
            torch.testing.assert_close(ga, gb, rtol=max(tol, 1e-9), atol=tol)


def test_bessel_first_and_second_derivatives_without_recomputation():
    """The backward passes reuse the ratio of the forward pass instead of running the recurrence again; at small x
    (the series branch of the log functions) that ratio is the series A_v(x) ~ x / (2v + 2), which must agree with
    the recurrence at the same x, and the second derivatives must still be exact (gradgradcheck)."""
    x = torch.tensor([1e-7, 3e-6, 9.9e-6], dtype=DT, requires_grad=True)
    for v in [0.0, 1.5, 9.0]:
        for fn, shift in ((log_iv_over_xv, 0.0), (log_ive_over_xv, 1.0)):  # derivatives A_v and A_v - 1
            (g,) = torch.autograd.grad(fn(v, x).sum(), x)
            torch.testing.assert_close(g, bessel_ratio(v, x.detach()) - shift, rtol=1e-12, atol=0.0)
    x = torch.tensor([1e-3, 0.7, 5.0, 60.0], dtype=DT, requires_grad=True)
    for v in [0.0, 1.5, 45.0]:
        assert torch.autograd.gradgradcheck(lambda t: bessel_ratio(v, t), (x,))
        assert torch.autograd.gradgradcheck(lambda t: log_ive_over_xv(v, t), (x,))
        assert torch.autograd.gradcheck(lambda t: log_ive_over_xv_and_ratio(v, t), (x,))
        assert torch.autograd.gradgradcheck(lambda t: log_ive_over_xv_and_ratio(v, t), (x,))


def test_bessel_rejects_bad_input():
    with pytest.raises(ValueError, match="order"):
        log_ive(-1.0, torch.ones(2))
    with pytest.raises(TypeError, match="floating"):
        bessel_ratio(1.0, torch.ones(2, dtype=torch.long))


# ------------------------------------------------------------------------------------------------
# von Mises-Fisher: density
# ------------------------------------------------------------------------------------------------
KAPPAS = [1e-3, 1.0, 40.0, 1e3]


@pytest.mark.parametrize("m", [3, 5, 10, 50])
def test_vmf_log_prob_and_entropy_match_scipy(m):
    mu = _unit(m)
    for kappa in KAPPAS:
        q = VonMisesFisher(mu, torch.tensor(kappa, dtype=DT), validate_args=True)
        # uniform points (where the sampler rarely goes) and samples
        z = torch.cat([_unit(50, m), q.sample((50,))])
        got = q.log_prob(z).numpy()
        ref_formula = _scipy_log_c(m, kappa) + kappa * (z @ mu).numpy()
        np.testing.assert_allclose(got, ref_formula, rtol=1e-10, atol=1e-10)
        sp = stats.vonmises_fisher(mu.numpy(), kappa)
        np.testing.assert_allclose(got, sp.logpdf(z.numpy()), rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(q.entropy().item(), sp.entropy(), rtol=1e-8, atol=1e-8)


def test_vmf_kappa_zero_is_uniform():
    m = 6
    q = VonMisesFisher(_unit(m), torch.tensor(0.0, dtype=DT))
    z = _unit(7, m)
    np.testing.assert_allclose(q.log_prob(z).numpy(), -_log_area(m), rtol=1e-12)
    np.testing.assert_allclose(q.entropy().item(), _log_area(m), rtol=1e-12)


def test_vmf_log_prob_gradcheck():
    loc = _unit(3, 5).requires_grad_()
    kappa = torch.tensor([0.5, 7.0, 300.0], dtype=DT, requires_grad=True)
    z = _unit(2, 3, 5)
    # gradcheck steps loc off the sphere, so the constraint check is off here
    assert torch.autograd.gradcheck(lambda l, k: VonMisesFisher(l, k, validate_args=False).log_prob(z), (loc, kappa))
    assert torch.autograd.gradcheck(lambda k: VonMisesFisher(loc.detach(), k).entropy(), (kappa,))


# ------------------------------------------------------------------------------------------------
# von Mises-Fisher: sampler
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [3, 10, 50])
@pytest.mark.parametrize("kappa", KAPPAS)
def test_vmf_mean_resultant_length_and_direction(m, kappa):
    mu = _unit(m)
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=DT))
    z = q.sample((20000,))
    assert z.shape == (20000, m)
    assert _on_sphere(z, 1e-12)
    w = z @ mu
    a = special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa)  # A_m(kappa) from scipy
    _assert_mean(w, a, f"E[mu^T z] m={m} kappa={kappa}")
    # the tangent part averages to zero (checks the Householder map and the tangent draw)
    tangent = z - w.unsqueeze(-1) * mu
    basis = torch.linalg.svd(torch.eye(m, dtype=DT) - torch.outer(mu, mu))[0][:, :2]
    for j in range(2):
        _assert_mean(tangent @ basis[:, j], 0.0, f"tangent {j}")


@pytest.mark.parametrize("m,kappa", [(3, 2.0), (5, 40.0), (20, 10.0)])
def test_vmf_w_matches_scipy_sampler(m, kappa):
    mu = np.eye(m)[0]
    w = (VonMisesFisher(torch.tensor(mu), kappa).sample((4000,)).numpy() @ mu)
    w_ref = stats.vonmises_fisher(mu, kappa).rvs(4000, random_state=np.random.default_rng(5)) @ mu
    assert stats.ks_2samp(w, w_ref).pvalue > 1e-4


@pytest.mark.parametrize("cls", [VonMisesFisher, PowerSpherical])
def test_batched_draws_are_distinct_and_shaped(cls):
    q = cls(_unit(1, 4).expand(3, 4), torch.full((3,), 5.0, dtype=DT))
    z = q.rsample((2,))
    assert z.shape == (2, 3, 4) and q.log_prob(z).shape == (2, 3)
    flat = z.reshape(6, 4)
    d = torch.cdist(flat, flat) + torch.eye(6, dtype=DT)
    assert (d > 1e-6).all()  # identical parameters, six different draws
    e = q.expand(torch.Size((5, 3)))
    assert type(e) is cls and e.sample().shape == (5, 3, 4) and e.entropy().shape == (5, 3)
    assert e.mean.shape == (5, 3, 4) and q.support.check(z).all()
    assert kl_divergence(e, HypersphericalUniform(4, dtype=DT)).shape == (5, 3)


@pytest.mark.parametrize("m", [3, 5])
@pytest.mark.parametrize("kappa", [0.5, 2.0, 5.0])
def test_vmf_importance_identity(m, kappa):
    # E_q[1/q(z)] = |S^{m-1}| ties the sampler to the density (TFP's check)
    q = VonMisesFisher(_unit(m), torch.tensor(kappa, dtype=DT))
    z = q.sample((40000,))
    _assert_mean(torch.exp(-q.log_prob(z)), math.exp(_log_area(m)), f"E[1/q] m={m} kappa={kappa}")


# ------------------------------------------------------------------------------------------------
# KL divergences
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [3, 10, 50])
def test_kl_vmf_uniform_monte_carlo(m):
    p = HypersphericalUniform(m, dtype=DT)
    for kappa in KAPPAS:
        q = VonMisesFisher(_unit(2, m), torch.tensor([kappa, kappa], dtype=DT))
        kl = kl_divergence(q, p)
        assert kl.shape == (2,)
        assert torch.allclose(kl[0], kl[1])  # constant in mu
        ref = (_scipy_log_c(m, kappa) + kappa * special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa)
               + _log_area(m))
        assert abs(kl[0].item() - ref) < 1e-9 * max(1, ref)
        z = q.sample((5000,))
        _assert_mean((q.log_prob(z) - p.log_prob(z))[:, 0], kl[0].item(), f"KL MC m={m} kappa={kappa}")


def test_kl_vmf_uniform_vanishes_at_zero_concentration():
    p = HypersphericalUniform(7, dtype=DT)
    kappa = torch.tensor([0.0, 1e-8, 1e-4], dtype=DT, requires_grad=True)
    kl = kl_divergence(VonMisesFisher(_unit(3, 7), kappa), p)
    assert kl[0].item() == pytest.approx(0.0, abs=1e-15)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-14)
    # KL ~ kappa^2 / (2 m) near 0
    assert kl[2].item() == pytest.approx(1e-8 / 14, rel=1e-3)
    (g,) = torch.autograd.grad(kl.sum(), kappa)
    assert torch.isfinite(g).all() and g[0].item() == 0.0


def test_kl_vmf_vmf_monte_carlo_and_self():
    m = 6
    p = VonMisesFisher(_unit(m), torch.tensor(8.0, dtype=DT))
    q = VonMisesFisher(_unit(m), torch.tensor(3.0, dtype=DT))
    kl = kl_divergence(p, q)
    z = p.sample((20000,))
    _assert_mean(p.log_prob(z) - q.log_prob(z), kl.item(), "KL(vMF||vMF)")
    assert abs(kl_divergence(p, p).item()) < 1e-12


def test_kl_dimension_mismatch_raises():
    with pytest.raises(ValueError, match="event dimensions differ"):
        kl_divergence(VonMisesFisher(_unit(4), 1.0), HypersphericalUniform(5, dtype=DT))


# ------------------------------------------------------------------------------------------------
# The kappa gradient is unbiased (implicit reparameterisation)
# ------------------------------------------------------------------------------------------------
def _exp_moment(m: int, kappa: float, a_par: float, a_perp: float) -> float:
    """E_q[exp(a^T z)] = C_m(kappa) / C_m(|kappa mu + a|) in closed form (scipy ive), with a = a_par mu + a_perp e_perp."""
    r = math.hypot(kappa + a_par, a_perp)
    return math.exp(_scipy_log_c(m, kappa) - _scipy_log_c(m, r))


@pytest.mark.parametrize("m", [3, 5, 10])
@pytest.mark.parametrize("kappa", [2.0, 25.0])
def test_vmf_kappa_gradient_unbiased(m, kappa):
    a_par, a_perp = 0.8, 1.3
    mu = torch.zeros(m, dtype=DT)
    mu[0] = 1.0
    a = torch.zeros(m, dtype=DT)
    a[0], a[1] = a_par, a_perp
    n = 20000
    k = torch.full((n,), kappa, dtype=DT, requires_grad=True)
    z = VonMisesFisher(mu.expand(n, m), k).rsample()
    (g,) = torch.autograd.grad(torch.exp(z @ a).sum(), k)  # per-sample d f(z_i) / d kappa
    h = 1e-4 * kappa
    fd = (_exp_moment(m, kappa + h, a_par, a_perp) - _exp_moment(m, kappa - h, a_par, a_perp)) / (2 * h)
    _assert_mean(g, fd, f"d/dkappa E[exp(a^T z)] m={m} kappa={kappa}")


def test_vmf_loc_gradient_unbiased():
    # E[exp(a^T z)] depends on mu through |kappa mu + a|: compare the pathwise gradient with finite differences
    m, kappa, n = 4, 6.0, 20000
    a = torch.tensor([0.3, -0.7, 0.5, 0.2], dtype=DT)
    raw0 = torch.tensor([0.5, 0.1, -0.4, 0.8], dtype=DT)

    def closed_form(r: torch.Tensor) -> float:
        mu = r / r.norm()
        return math.exp(_scipy_log_c(m, kappa) - _scipy_log_c(m, (kappa * mu + a).norm().item()))

    raw = raw0.expand(n, m).clone().requires_grad_()  # one copy per draw -> per-draw gradients
    z = VonMisesFisher(raw / raw.norm(dim=-1, keepdim=True), kappa).rsample()
    (g,) = torch.autograd.grad(torch.exp(z @ a).sum(), raw)
    for j in range(m):
        e = torch.zeros(m, dtype=DT)
        e[j] = 1e-5
        fd = (closed_form(raw0 + e) - closed_form(raw0 - e)) / 2e-5
        _assert_mean(g[:, j], fd, f"d/dloc_{j} E[exp(a^T z)]")


@pytest.mark.parametrize("m", [2, 3, 7, 1024])
def test_dw_dkappa_matches_cdf_finite_differences(m):
    # dw/dkappa = -(dF/dkappa)/f(w) with F the CDF of w ~ f(w) ∝ exp(kappa w)(1-w^2)^((m-3)/2), by scipy quad
    for kappa in ([0.3, 4.0, 60.0] if m < 1024 else [300.0, 1e5]):
        q = VonMisesFisher(torch.eye(m, dtype=DT)[0], kappa)
        w = q.sample((3,))[:, 0]
        got = vmf_marginal_dw_dkappa(1 - w, torch.tensor(kappa, dtype=DT), m)
        a = special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa)
        for wi, gi in zip(w.tolist(), got.tolist()):
            def logf(s):
                return kappa * (s - wi) + (m - 3) / 2 * (math.log1p(-s * s) - math.log1p(-wi * wi))
            # the same quantity as an independent 1-d integral in s (no cos substitution), positive side
            if wi < a:
                ref = integrate.quad(lambda s: (a - s) * math.exp(logf(s)), -1, wi, limit=200,
                                     points=None, epsabs=0, epsrel=1e-10)[0]
            else:
                ref = integrate.quad(lambda s: (s - a) * math.exp(logf(s)), wi, 1, limit=200,
                                     epsabs=0, epsrel=1e-10)[0]
            assert gi == pytest.approx(ref, rel=1e-6, abs=1e-14), (m, kappa, wi)


# ------------------------------------------------------------------------------------------------
# Hyperspherical uniform
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [2, 3, 8])
def test_uniform(m):
    p = HypersphericalUniform(m, dtype=DT)
    z = p.rsample((20000,))
    assert z.shape == (20000, m) and _on_sphere(z, 1e-12)
    area = {2: 2 * math.pi, 3: 4 * math.pi}.get(m, 2 * math.pi ** (m / 2) / math.gamma(m / 2))
    assert torch.allclose(p.log_prob(z[:3]), torch.full((3,), -math.log(area), dtype=DT))
    assert p.entropy().item() == pytest.approx(math.log(area))
    _assert_mean(z[:, 0], 0.0, "uniform E[z_0]")
    _assert_mean(z[:, 0] ** 2, 1 / m, "uniform E[z_0^2]")
    assert kl_divergence(p, p).item() == 0.0
    with pytest.raises(ValueError, match="dim must be >= 2"):
        HypersphericalUniform(1)


# ------------------------------------------------------------------------------------------------
# Power spherical
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [3, 10, 50])
@pytest.mark.parametrize("kappa", [0.0, 1.0, 40.0, 1e3])
def test_power_spherical_t_is_beta(m, kappa):
    mu = _unit(m)
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=DT))
    z = q.sample((20000,))
    assert _on_sphere(z, 1e-12)
    t = (1 + z @ mu) / 2
    beta = stats.beta((m - 1) / 2 + kappa, (m - 1) / 2)
    _assert_mean(t, beta.mean(), f"E[t] m={m} kappa={kappa}")
    _assert_mean((t - beta.mean()) ** 2, beta.var(), f"Var[t] m={m} kappa={kappa}")
    assert torch.allclose(q.mean, (z @ mu).mean() * mu, atol=Z * (z @ mu).std().item() / math.sqrt(20000))


@pytest.mark.parametrize("m,kappa", [(3, 2.0), (5, 10.0)])
def test_power_spherical_density_integrates_to_one(m, kappa):
    q = PowerSpherical(_unit(m), torch.tensor(kappa, dtype=DT))
    p = HypersphericalUniform(m, dtype=DT)
    u = p.sample((100000,))
    # area * E_uniform[q(u)] = 1
    _assert_mean(torch.exp(q.log_prob(u) - p.log_prob(u)), 1.0, f"int q m={m}")


@pytest.mark.parametrize("m", [3, 10, 50])
def test_kl_power_spherical_uniform_monte_carlo(m):
    p = HypersphericalUniform(m, dtype=DT)
    for kappa in [0.0, 1.0, 40.0, 1e3]:
        q = PowerSpherical(_unit(m), torch.tensor(kappa, dtype=DT))
        z = q.sample((5000,))
        kl = kl_divergence(q, p)
        _assert_mean(q.log_prob(z) - p.log_prob(z), kl.item(), f"PS KL m={m} kappa={kappa}")
        assert kl.item() >= -1e-12
    assert kl_divergence(PowerSpherical(_unit(4), 0.0), HypersphericalUniform(4, dtype=DT)).abs().item() < 1e-12


def test_power_spherical_log_prob_gradcheck_and_kappa_gradient():
    loc = _unit(2, 4).requires_grad_()
    kappa = torch.tensor([0.5, 30.0], dtype=DT, requires_grad=True)
    z = _unit(3, 2, 4)
    assert torch.autograd.gradcheck(lambda l, k: PowerSpherical(l, k, validate_args=False).log_prob(z), (loc, kappa))
    # reparameterised gradient of E[w^2], w = mu^T z, against the Beta closed form by finite differences
    m, k0, n = 5, 3.0, 40000
    mu = torch.eye(m, dtype=DT)[0]

    def ew2(k: float) -> float:
        a, b = (m - 1) / 2 + k, (m - 1) / 2
        et, et2 = a / (a + b), a * (a + 1) / ((a + b) * (a + b + 1))
        return 4 * et2 - 4 * et + 1

    kk = torch.full((n,), k0, dtype=DT, requires_grad=True)
    w = PowerSpherical(mu.expand(n, m), kk).rsample() @ mu
    (g,) = torch.autograd.grad((w ** 2).sum(), kk)
    _assert_mean(g, (ew2(k0 + 1e-4) - ew2(k0 - 1e-4)) / 2e-4, "d/dkappa E[w^2] (power spherical)")


# ------------------------------------------------------------------------------------------------
# Validation and float32 robustness
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [VonMisesFisher, PowerSpherical])
def test_validation_errors(cls):
    with pytest.raises(ValueError, match="m >= 2"):
        cls(torch.ones(1), 1.0)
    with pytest.raises(ValueError):
        cls(torch.tensor([1.0, 1.0]), 1.0, validate_args=True)  # not unit norm
    with pytest.raises(ValueError):
        cls(torch.tensor([1.0, 0.0]), -1.0, validate_args=True)
    with pytest.raises(TypeError, match="loc"):
        cls([1.0, 0.0], 1.0)
    q = cls(torch.tensor([1.0, 0.0]), 1.0, validate_args=True)
    with pytest.raises(ValueError):
        q.log_prob(torch.tensor([2.0, 0.0]))


@pytest.mark.parametrize("cls", [VonMisesFisher, PowerSpherical])
def test_float32_extremes_are_finite(cls):
    for m, kappa in [(2, 0.0), (2, 1e5), (1024, 0.0), (1024, 1e5), (1024, 1e-3), (3, 1e5)]:
        loc = _unit(4, m, dtype=torch.float32).requires_grad_()
        k = torch.full((4,), kappa, requires_grad=True)
        q = cls(loc, k)
        z = q.rsample((3,))
        assert z.dtype == torch.float32 and torch.isfinite(z).all()
        assert _on_sphere(z, 1e-5)
        kl = kl_divergence(q, HypersphericalUniform(m))
        total = q.log_prob(z).sum() + kl.sum() + z.sum()
        assert torch.isfinite(total), (cls.__name__, m, kappa)
        g = torch.autograd.grad(total, (loc, k))
        assert all(torch.isfinite(t).all() for t in g), (cls.__name__, m, kappa)
        if kappa >= 1e5:  # concentrated: every draw within a few (m-1)/kappa of mu
            assert ((z.detach() * loc.detach()).sum(-1) > 1 - 50 * (m - 1) / kappa).all()


# ------------------------------------------------------------------------------------------------
# Latent layers inside the VAE
# ------------------------------------------------------------------------------------------------
LATENT_SPECS = [{"type": "vmf", "dim": 3}, {"type": "vmf", "dim": 5, "fixed_kappa": 40.0},
                {"type": "power_spherical", "dim": 3}, {"type": "power_spherical", "dim": 6, "fixed_kappa": 10.0}]


def _vae(latent: dict):
    spec = {"type": "vae", "encoder": {"type": "mlp", "hidden": [32]}, "latent": latent,
            "decoder": {"type": "mlp", "hidden": [32]}, "likelihood": {"type": "bernoulli"}}
    return build_model(spec, data_dim=24)


@pytest.mark.parametrize("latent", LATENT_SPECS, ids=lambda s: f"{s['type']}-{s.get('fixed_kappa')}")
def test_sphere_latent_in_vae_trains(latent):
    from vaekit.objectives import iwae_from_log_weights

    model = _vae(latent)
    assert model.latent_space.geometry == "sphere" and model.latent_space.bijection is None
    x = torch.bernoulli(torch.full((16, 24), 0.3))
    out = model(x, k=2)
    d = latent["dim"]
    assert out.z.shape == (2, 16, d) and out.kl.shape == (16,) and out.log_likelihood.shape == (2, 16)
    assert _on_sphere(out.z, 1e-5)
    lw = model.log_weights(x, 5)
    assert lw.shape == (5, 16) and iwae_from_log_weights(lw).shape == (16,)
    code = model.encode(x)
    assert _on_sphere(code, 1e-5)
    path = model.latent_space.interpolate(code[0], code[1], 7)
    assert path.shape == (7, d) and _on_sphere(path, 1e-5)
    assert torch.allclose(path[0], code[0], atol=1e-5) and torch.allclose(path[-1], code[1], atol=1e-5)
    assert model.sample(4).shape == (4, 24)
    if latent.get("fixed_kappa"):
        assert model.latent.kappa_head is None
        assert torch.allclose(out.kl, out.kl[0].expand(16))  # a constant KL (Xu & Durrett 2018)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        out = model(x)
        loss = -(out.log_likelihood.mean(0) - out.kl).mean()
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        first = loss.item() if first is None else first
    assert math.isfinite(loss.item()) and loss.item() < first


def test_sphere_latent_config_errors():
    assert {"vmf", "power_spherical"} <= set(LATENTS.names())
    with pytest.raises(ValueError, match="dim >= 2"):
        _vae({"type": "vmf", "dim": 1})
    with pytest.raises(ValueError, match="fixed_kappa"):
        _vae({"type": "power_spherical", "dim": 3, "fixed_kappa": -2.0})


# ------------------------------------------------------------------------------------------------
# Float32 precision over the grid (issue 12, item 4): everything against mpmath, KL never negative
# ------------------------------------------------------------------------------------------------
# the dimensions and concentrations the tests above use for the vMF, with the 64 and 512
GRID_DIMS = [2, 3, 5, 10, 50, 64, 512, 1024]
GRID_KAPPAS = [0.0, 1e-3, 1.0, 40.0, 1e3, 1e5]


def _mp_sphere_reference(cls, m: int, kappa: float) -> dict[str, float]:
    """log-normaliser (log C for the vMF, log N for power spherical), entropy, KL to the uniform and dKL/dkappa,
    at 50 digits with mpmath (independent of vaekit.bessel and of torch's lgamma/digamma)."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    k, mm = mp.mpf(kappa), mp.mpf(m)
    log_area = mp.log(2) + mm / 2 * mp.log(mp.pi) - mp.loggamma(mm / 2)
    if cls is PowerSpherical:
        b = (mm - 1) / 2
        log_n = (2 * b + k) * mp.log(2) + b * mp.log(mp.pi) + mp.loggamma(b + k) - mp.loggamma(2 * b + k)
        ent = log_n - k * (mp.log(2) + mp.digamma(b + k) - mp.digamma(2 * b + k))
        dkl = k * (mp.psi(1, b + k) - mp.psi(1, 2 * b + k))
        return {"log_norm": float(log_n), "entropy": float(ent), "kl": float(log_area - ent), "dkl": float(dkl)}
    v = mm / 2 - 1
    if kappa == 0:
        return {"log_norm": float(-log_area), "entropy": float(log_area), "kl": 0.0, "dkl": 0.0}
    iv = mp.besseli(v, k)
    a = mp.besseli(v + 1, k) / iv
    log_c = v * mp.log(k) - (v + 1) * mp.log(2 * mp.pi) - mp.log(iv)
    da = 1 - a * a - (mm - 1) * a / k  # A' (DLMF 10.29.2)
    return {"log_norm": float(log_c), "entropy": float(-log_c - k * a), "kl": float(k * a + log_c + log_area),
            "dkl": float(k * da)}


def _mp_log_prob(cls, m: int, kappa: float, loc: torch.Tensor, z: torch.Tensor, log_norm: float) -> list[float]:
    import mpmath as mp

    out = []
    for zi in z.double().tolist():
        cos = mp.fsum(mp.mpf(a) * mp.mpf(b) for a, b in zip(loc.double().tolist(), zi))
        if cls is PowerSpherical:
            out.append(float(mp.mpf(kappa) * mp.log(1 + cos) - log_norm))
        else:
            out.append(float(log_norm + mp.mpf(kappa) * cos))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, DT])
@pytest.mark.parametrize("cls", [VonMisesFisher, PowerSpherical])
def test_sphere_closed_forms_match_mpmath_over_the_grid(cls, dtype):
    """Before (float32): power spherical's KL to the uniform was 0.131 nats off at m = 64, kappa = 1e5 and
    negative down to -4.9e-4 (m = 1024, kappa = 1e-3); the vMF's 1.1e-4 off at m = 1024, kappa = 1e3.
    Now each is its float64 value rounded once: rtol 2^-23 in float32 (1e-10 in float64), atol 1e-11."""
    rtol = 2.0 ** -23 if dtype == torch.float32 else 1e-10
    for m in GRID_DIMS:
        loc = torch.zeros(m, dtype=dtype)
        loc[0] = 1
        u = HypersphericalUniform(m, dtype=dtype)
        for kappa in GRID_KAPPAS:
            k = torch.tensor(kappa, dtype=dtype, requires_grad=True)
            q = cls(loc, k)
            ref = _mp_sphere_reference(cls, m, k.item())  # the kappa the dtype holds
            kl = kl_divergence(q, u)
            what = f"{cls.__name__} m={m} kappa={kappa} {dtype}"
            assert kl.item() >= 0, what
            for name, got in (("kl", kl), ("entropy", q.entropy()), ("log_norm", q.log_normalizer())):
                assert got.dtype == dtype
                assert abs(got.item() - ref[name]) <= rtol * abs(ref[name]) + 1e-11, (what, name, got.item(), ref[name])
            (dkl,) = torch.autograd.grad(kl, k)
            # the vMF's dKL/dkappa = kappa A'(kappa), A' = 1 - A^2 - (m-1)A/kappa: O(1/kappa) terms cancel to
            # O(1/kappa^2), so float64 rounding of A is amplified ~kappa-fold (measured 5.4e-5 at m=3, kappa=1e5)
            grad_rtol = 16 * rtol + (1e-9 * kappa if cls is VonMisesFisher else 0.0)
            assert dkl.item() >= 0 and abs(dkl.item() - ref["dkl"]) <= grad_rtol * abs(ref["dkl"]) + 1e-11, \
                (what, dkl.item(), ref["dkl"])
            # densities at the mode, a uniform point and three draws, against mpmath on the same (rounded) points
            z = torch.cat([loc[None], _unit(1, m, dtype=dtype), q.sample((3,))])
            got = q.log_prob(z)
            want = _mp_log_prob(cls, m, k.item(), loc, z, ref["log_norm"])
            for g, w in zip(got.tolist(), want):
                assert abs(g - w) <= rtol * abs(w) + 1e-9, (what, g, w)


@pytest.mark.parametrize("m", [3, 64])
def test_power_spherical_float32_kappa_gradient_is_unbiased_at_high_concentration(m):
    """Before, the float32 Beta draw's implicit gradient was 21% low at m = 3, kappa = 1e5 (28 s.e.).

    d/dkappa E[1 - mu^T z] = -(m-1)/(kappa+m-1)^2 in closed form. Failure rate 2 x 6e-5."""
    kappa, n = 1e5, 20000
    k = torch.full((n,), kappa, requires_grad=True)
    loc = torch.zeros(m)
    loc[0] = 1
    z = PowerSpherical(loc.expand(n, m), k).rsample()
    assert z.dtype == torch.float32
    (g,) = torch.autograd.grad((1 - z[:, 0]).sum(), k)
    _assert_mean(g, -(m - 1) / (kappa + m - 1) ** 2, f"dE[1-w]/dkappa m={m} float32")


# ------------------------------------------------------------------------------------------------
# Gradients with respect to loc everywhere on the sphere (issue 12, item 6a)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [VonMisesFisher, PowerSpherical])
@pytest.mark.parametrize("where", ["e1", "-e1", "random"])
def test_rsample_loc_gradient_is_the_mean_resultant_length_everywhere(cls, where):
    """E[z] = A(kappa) mu, so d E[t^T z] / d mu along a tangent t is A(kappa): coth(10) - 1/10 = 0.900 for the vMF
    and 10/12 = 0.833 for power spherical at m = 3, kappa = 10. Before, the Householder map's guard at mu = e1
    returned the identity and the gradient there was exactly 0. Failure rate: 2 numbers at 4 s.e."""
    m, kappa, n = 3, 10.0, 20000
    mu = {"e1": torch.tensor([1.0, 0.0, 0.0]), "-e1": torch.tensor([-1.0, 0.0, 0.0]),
          "random": _unit(m)}[where].to(DT)
    expected = 1 / math.tanh(kappa) - 1 / kappa if cls is VonMisesFisher else kappa / (kappa + m - 1)
    loc = mu.expand(n, m).clone().requires_grad_()  # one copy per draw: per-draw gradients
    z = cls(loc, kappa).rsample()
    tangents = torch.linalg.svd(torch.eye(m, dtype=DT) - torch.outer(mu, mu))[0][:, :2]
    for t in tangents.T:
        (g,) = torch.autograd.grad(z @ t, loc, torch.ones(n, dtype=DT), retain_graph=True)
        _assert_mean(g @ t, expected, f"{cls.__name__} at {where}, tangent {t.tolist()}")
