"""MMD and the InfoVAE objective (issue 17): the estimator is unbiased, against 0 for equal distributions and
against the closed form for two Gaussians under the RBF kernel; the objective reduces to the ELBO at
alpha = 0, lambda = 1; bad config values are refused by their key."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.models import build_model
from vaekit.objectives import build_objective, gaussian_rbf_mmd2, mmd_unbiased
from vaekit.registry import ConfigError

R, N, D = 600, 40, 3


def _reps(mu_y: float, sd_y: float, kernel: str, seed: int, biased: bool = False) -> torch.Tensor:
    """R independent estimates from n = m = N samples of N(0, I) and N(mu_y, sd_y^2 I) in D dims."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(R, N, D, generator=g, dtype=torch.float64)
    y = mu_y + sd_y * torch.randn(R, N, D, generator=g, dtype=torch.float64)
    if biased:  # the V-statistic, with the i = j terms: biased upwards by (2 - ...)/N
        from vaekit.objectives.mmd import KERNELS
        k = KERNELS[kernel]
        return torch.stack([k(a, a, 2 * D).mean() + k(b, b, 2 * D).mean() - 2 * k(a, b, 2 * D).mean()
                            for a, b in zip(x, y)])
    return torch.stack([mmd_unbiased(a, b, kernel) for a, b in zip(x, y)])


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_unbiased_for_equal_distributions(kernel):
    m, se = _mean_se(_reps(0.0, 1.0, kernel, seed=1))
    assert abs(m) < 4 * se, (m, se)
    # the test has power: the biased V-statistic on the same kind of samples is detected as positive
    mb, seb = _mean_se(_reps(0.0, 1.0, kernel, seed=1, biased=True))
    assert mb > 10 * seb


@pytest.mark.parametrize("mu, sd", [(0.5, 1.0), (0.0, 1.6), (0.3, 0.7)])
def test_rbf_estimate_matches_the_gaussian_closed_form(mu, sd):
    m, se = _mean_se(_reps(mu, sd, "rbf", seed=2))
    z = torch.zeros(D, dtype=torch.float64)
    exact = float(gaussian_rbf_mmd2(z, z + 1, z + mu, z + sd ** 2, scale=2 * D))
    assert exact > 0
    assert abs(m - exact) < 4 * se, (m, exact, se)
    assert m > 4 * se  # positive, detectably


def test_closed_form_against_brute_force_expectations():
    """The closed form's E k(x, y) pieces against a large Monte Carlo average (independent of the estimator)."""
    g = torch.Generator().manual_seed(3)
    mu, var = torch.tensor([0.4, -0.2, 0.0], dtype=torch.float64), torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64)
    z = torch.zeros(3, dtype=torch.float64)
    n = 400_000
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x2 = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = mu + var.sqrt() * torch.randn(n, 3, generator=g, dtype=torch.float64)
    y2 = mu + var.sqrt() * torch.randn(n, 3, generator=g, dtype=torch.float64)
    k = lambda a, b: torch.exp(-((a - b) ** 2).sum(-1) / 6.0)  # noqa: E731
    terms = k(x, x2) + k(y, y2) - 2 * k(x, y)
    mc, se = float(terms.mean()), float(terms.std() / math.sqrt(n))
    exact = float(gaussian_rbf_mmd2(z, z + 1, mu, var, scale=6.0))
    assert abs(mc - exact) < 4 * se, (mc, exact, se)


@pytest.mark.parametrize("mu", [0.5, 1.0])
def test_imq_positive_for_different_distributions(mu):
    m, se = _mean_se(_reps(mu, 1.0, "imq", seed=4))
    assert m > 5 * se


def test_estimator_errors():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd_unbiased(x[:1], x)
    with pytest.raises(ValueError, match=r"\(n, d\) and \(m, d\)"):
        mmd_unbiased(x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="kernel must be one of"):
        mmd_unbiased(x, x, "gauss")


def _model():
    spec = {"type": "vae", "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 2},
            "decoder": {"type": "mlp", "hidden": [8]}, "likelihood": {"type": "bernoulli"}}
    return build_model(spec, data_dim=6)


def test_infovae_at_alpha0_lambda1_is_the_elbo_and_the_mmd_term_has_gradients():
    model = _model()
    x = torch.bernoulli(torch.full((16, 6), 0.4))
    info = build_objective({"type": "infovae", "alpha": 0.0, "lam": 1.0})
    elbo = build_objective({"type": "elbo"})
    torch.manual_seed(0)
    loss_i, m_i = info(model, x, 0)
    torch.manual_seed(0)
    loss_e, _ = elbo(model, x, 0)
    torch.testing.assert_close(loss_i, loss_e)
    assert set(m_i) >= {"elbo", "kl", "mmd", "log_likelihood", "loss"}
    # alpha = 1: no KL term; the loss is -E log p(x|z) + lam * MMD, and the MMD moves the encoder
    info1 = build_objective({"type": "infovae", "alpha": 1.0, "lam": 100.0, "kernel": "rbf"})
    torch.manual_seed(1)
    loss1, m1 = info1(model, x, 0)
    torch.testing.assert_close(loss1, -m1["log_likelihood"] + 100.0 * m1["mmd"])
    # the MMD estimate differentiates to the encoder through the posterior samples
    z = model.posterior(x).rsample()
    mmd_unbiased(z, torch.randn(16, 2), "imq").backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_infovae_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"train\.objective: the MMD weight alpha \+ lam - 1 must be >= 0"):
        build_objective({"type": "infovae", "alpha": 0.0, "lam": 0.5})
    with pytest.raises(ConfigError, match=r"train\.objective\.kernel: expected one of 'rbf', 'imq'"):
        build_objective({"type": "infovae", "kernel": "gauss"})
    with pytest.raises(ConfigError, match=r"train\.objective\.lam: expected a number > 0"):
        build_objective({"type": "infovae", "lam": 0.0})
