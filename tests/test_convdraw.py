"""Convolutional DRAW (issue 17; Gregor et al. 2016): the protocol, the bits-back bookkeeping, conceptual
compression and the errors, on a tiny model of 8x8 images (2x2 latent grid, T = 3; tests/families.py lists
this file for the model type ``convdraw``, which the flat rows of the generic table do not fit).

Statistical checks compare at 4 standard errors (two-sided failure rate about 6e-5 each, a handful here): if one
fails after an unrelated change, bump its seed once; a second failure is a bug.
"""

from __future__ import annotations

import math

import pytest
import torch

from families import IMAGE_MODEL_TESTS
from vaekit.evaluation import ais, iwae_estimate
from vaekit.models import ConvDRAW, build_model
from vaekit.objectives import build_objective
from vaekit.registry import ConfigError
from vaekit.train import validate

SHAPE = (1, 8, 8)
D_X, B, K, T = 64, 5, 4, 3


@pytest.fixture(autouse=True)
def _seeded(one_thread_seeded):
    yield


def _model(steps: int = T, dtype=torch.float64) -> ConvDRAW:
    spec = {"type": "convdraw", "steps": steps, "channels": 6, "latent_channels": 2}
    return build_model(spec, data_dim=D_X, image_shape=SHAPE).to(dtype)


def _x(n: int = B, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    return (torch.rand(n, D_X, generator=torch.Generator().manual_seed(seed)) < 0.4).to(dtype)


def test_the_table_sends_convdraw_here():
    assert IMAGE_MODEL_TESTS["convdraw"] == "tests/test_convdraw.py"


def test_shapes_of_every_method():
    m, x = _model(), _x()
    d = T * 2 * 2 * 2
    assert m.latent_dim == d and m.step_dim == 8
    q, p = m.posterior(x), m.prior()
    assert q.batch_shape == (B,) and q.event_shape == (d,) and p.batch_shape == () and p.event_shape == (d,)
    z, log_q = q.rsample_and_log_prob((K,))
    assert z.shape == (K, B, d) and log_q.shape == (K, B)
    assert m.log_likelihood(x, z).shape == (K, B) and m.log_joint(x, z).shape == (K, B)
    assert m.log_weights(x, 2 * K + 1, chunk_size=K).shape == (2 * K + 1, B)
    out = m(x, k=K)
    assert out.z.shape == (K, B, d) and out.log_likelihood.shape == (K, B) and out.kl.shape == (B,)
    tr = m.trace(x, K)
    assert tr.kl_steps.shape == (T, K, B) and (tr.kl_steps >= 0).all()
    assert tr.canvas.shape == (K, B, D_X) and tr.log_prior.shape == (K, B)
    assert m.encode(x).shape == (B, d) and m.reconstruct(x).shape == (B, D_X)
    assert m.sample(3).shape == (3, D_X) and p.sample((2, 3)).shape == (2, 3, d)
    assert m.partial_reconstruction(x, 1).shape == (B, D_X)
    torch.testing.assert_close(m.encode(x), m.encode(x), rtol=0, atol=0)  # deterministic


def test_log_weights_are_log_joint_minus_log_q_of_the_same_draws():
    m, x = _model(), _x()
    q, p = m.posterior(x), m.prior()
    torch.manual_seed(7)
    lw = m.log_weights(x, K)
    torch.manual_seed(7)
    z, log_q = m.posterior(x).rsample_and_log_prob((K,))
    torch.testing.assert_close(q.log_prob(z), log_q)  # teacher-forced re-evaluation = the draw's density
    lj = m.log_joint(x, z)
    torch.testing.assert_close(lj, m.log_likelihood(x, z) + p.log_prob(z))
    torch.testing.assert_close(lw, lj - log_q)


def test_sum_of_step_kls_and_reconstruction_is_the_reported_bound_exactly():
    """The bits-back bookkeeping: ELBO = E[log p(x|z)] - sum_t KL_t, the same number from the trace, from the
    model's output, from the trainer's objective and from the trainer's validation pass."""
    m, x = _model(), _x()
    torch.manual_seed(3)
    tr = m.trace(x, 1)
    torch.manual_seed(3)
    out = m(x, k=1)
    torch.manual_seed(3)
    _, metrics = build_objective({"type": "elbo"})(m, x, 0)
    elbo = tr.log_likelihood[0] - tr.kl_steps[:, 0].sum(0)
    torch.testing.assert_close(out.log_likelihood[0] - out.kl, elbo, rtol=0, atol=0)
    torch.testing.assert_close(metrics["elbo"], elbo.mean(), rtol=0, atol=0)
    torch.testing.assert_close(metrics["kl"], tr.kl_steps.sum(0).mean(), rtol=0, atol=0)
    v = validate(m, x, batch_size=B, seed=11)
    assert v["elbo"] == pytest.approx(v["log_likelihood"] - v["kl"], abs=1e-12)


def test_analytic_step_kls_agree_with_log_q_minus_log_p():
    # failure rate: B numbers at 4 s.e.
    m, x = _model(), _x()
    with torch.no_grad():
        tr = m.trace(x, 2000)
    mc = tr.log_q - tr.log_prior  # (k, B): its mean is sum_t E[KL_t] as well
    kl = tr.kl_steps.sum(0)
    diff = mc - kl
    se = diff.std(0) / math.sqrt(diff.shape[0])
    assert (diff.mean(0).abs() <= 4 * se).all(), (diff.mean(0), se)


def test_iwae_beats_the_elbo_on_a_fixed_model():
    # failure rate: one paired comparison at 4 s.e.; the split makes L_k <= L_4k exact, so the check is that
    # the draws of a group are independent (identical draws make every L_k the ELBO)
    m, x = _model(), _x(16, seed=4)
    with torch.no_grad():
        lw = m.log_weights(x, 64)
        bound = {k: (torch.logsumexp(lw.reshape(64 // k, k, -1), 1) - math.log(k)).mean(0) for k in (1, 64)}
        iw = iwae_estimate(m, x, 64)
    gain = bound[64] - bound[1]
    assert gain.mean() > 4 * gain.std() / math.sqrt(16), gain
    assert iw.shape == (16,) and torch.isfinite(iw).all()


def test_ais_agrees_with_iwae_on_a_tiny_model():
    """AIS (HMC on the flattened sequence in R^D, through the learned prior) and IWAE-2000 estimate the same
    log p(x) on a D = 8 latent (T = 2 maps of 1x2x2): both are stochastic lower bounds that are tight here, so
    they agree within 4 combined s.e. plus 0.1 nats of bias."""
    m = build_model({"type": "convdraw", "steps": 2, "channels": 4, "latent_channels": 1}, data_dim=D_X,
                    image_shape=SHAPE)
    x = _x(4, seed=5, dtype=torch.float32)
    with torch.no_grad():
        lw = m.log_weights(x, 2000)
    iw, iw_se = _log_mean_exp_se(lw.double())
    res = ais(m, x, n_chains=16, T=100, leapfrog_steps=5, seed=0)
    gap = res.log_px - iw
    assert (gap.abs() <= 4 * (res.stderr ** 2 + iw_se ** 2).sqrt() + 0.1).all(), (res.log_px, iw, res.stderr, iw_se)
    assert (res.log_px > lw.double().mean(0)).all()  # and above the ELBO, which is not tight here
    assert 0.3 < res.acceptance <= 1.0


def _log_mean_exp_se(lw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.exp(lw - lw.max(0).values)
    est = lw.max(0).values + w.mean(0).log()
    return est, w.std(0) / (math.sqrt(lw.shape[0]) * w.mean(0))


def test_partial_reconstruction_at_T_is_the_reconstruction_and_at_0_the_prior_means():
    m, x = _model(), _x()
    torch.testing.assert_close(m.partial_reconstruction(x, T), m.reconstruct(x), rtol=0, atol=0)
    zero = m.partial_reconstruction(x, 0)
    assert torch.equal(zero, zero[:1].expand_as(zero))  # the same image whatever x is
    torch.testing.assert_close(zero[0], m.decode(m.prior().mean).mean, rtol=1e-12, atol=1e-12)
    # in between, the first t steps depend on x and the rest do not: a different x changes t = 1 too
    one = m.partial_reconstruction(x, 1)
    assert not torch.equal(one[0], one[1])


def test_gradients_reach_every_parameter():
    m, x = _model(), _x()
    out = m(x, k=2)
    (out.kl - out.log_likelihood.mean(0)).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_latent_space_is_euclidean_and_round_trips():
    m = _model()
    s = m.latent_space
    assert s.geometry == "euclidean" and s.dim == m.latent_dim and s.unconstrained_dim == m.latent_dim
    z = m.prior().sample((6,))
    torch.testing.assert_close(s.from_unconstrained(s.to_unconstrained(z))[0], z)


def test_errors_name_the_bad_value():
    m = _model()
    with pytest.raises(ValueError, match=r"x must be \(B, 64\).*\(1, 8, 8\).*\(5, 100\)"):
        m(torch.zeros(5, 100, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"z must be \(\.\.\., 24\)"):
        m.log_likelihood(_x(), torch.zeros(2, B, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not match the batch"):
        m.posterior(_x()).log_prob(torch.zeros(2, B + 1, 24, dtype=torch.float64))
    with pytest.raises(ValueError, match="t must be an int in 0..3"):
        m.partial_reconstruction(_x(), 4)
    with pytest.raises(ValueError, match="k must be"):
        m(_x(), k=0)
    lik = m.likelihood
    with pytest.raises(ValueError, match=r"steps \(T\) must be an int >= 1, got 0"):
        ConvDRAW(lik, SHAPE, steps=0)
    with pytest.raises(ValueError, match=r"divisible by 4.*\(1, 6, 6\)"):
        build_model({"type": "convdraw"}, data_dim=36, image_shape=(1, 6, 6))
    with pytest.raises(ConfigError, match="model.steps: expected an integer >= 1, got int 0"):
        build_model({"type": "convdraw", "steps": 0}, data_dim=D_X, image_shape=SHAPE)
    with pytest.raises(ConfigError, match="needs image data"):
        build_model({"type": "convdraw"}, data_dim=D_X, image_shape=None)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ConvDRAW(lik, SHAPE, kernel_size=2)


def test_the_reproduction_evaluates_a_model_and_decides_its_claims():
    from vaekit.reproduce.convdraw import dashboard, evaluate

    m, x = _model(dtype=torch.float32), _x(20, seed=6, dtype=torch.float32)
    clf = torch.nn.Linear(D_X, 10)
    res = evaluate(m, x, x, torch.arange(20) % 10, clf, k=8, batch=7)
    rd = res["rate_distortion"]
    assert [r["t"] for r in rd] == list(range(T + 1)) and rd[0]["rate_bits"]["mean"] == 0.0
    assert rd[-1]["rate_bits"]["mean"] == pytest.approx(res["kl_total"]["mean"] / math.log(2), rel=1e-9)
    assert res["bookkeeping_max_abs_gap"] == 0.0 and len(res["kl_steps"]) == T
    assert res["elbo"]["mean"] == pytest.approx(-res["recon"]["mean"] - res["kl_total"]["mean"], rel=1e-9)
    assert all(0.0 <= r["accuracy"]["mean"] <= 1.0 for r in rd)
    # verdicts follow the numbers: a paired T8 - T1 gain of 5 +- 1 nats holds, 1 +- 0.2 does not
    runs = {"t8": {**res, "T": 8, "epochs": 1, "kl_steps": [{"mean": v, "se": 0.1} for v in (30, 20, 9, 5, 4, 3, 2, 1)],
                   "rate_distortion": rd[:2] + [{**rd[-1], "accuracy": {"mean": 0.9, "se": 0.01}}]}}
    for gain, se, verdict in ((5.0, 1.0, True), (1.0, 0.2, False), (2.5, 1.0, None)):
        claims = dashboard(runs, {"t8_minus_t1": {"iwae": {"mean": gain, "se": se}}})["claims"]
        assert claims[0]["holds"] is verdict
        assert claims[1]["holds"] is True and claims[2]["holds"] is True and claims[3]["holds"] is True
