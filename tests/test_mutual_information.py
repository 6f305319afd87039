"""The mutual-information diagnostic I_q(x; z) (Hoffman & Johnson 2016) against closed forms: a linear-Gaussian
encoder (I = -1/2 log(1 - rho^2)), an encoder that ignores x (I = 0) and a near-deterministic one (I = log M)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vaekit.distributions.normal import DiagonalNormal
from vaekit.evaluation import mutual_information
from vaekit.models import build_model


class _LinearGaussian(nn.Module):
    """q(z|x) = N(rho x, (1 - rho^2) I), x ~ N(0, I): q(z) = N(0, I) and I(x; z) = -d/2 log(1 - rho^2)."""

    def __init__(self, rho: float, sd: float | None = None) -> None:
        super().__init__()
        self.rho = rho
        self.sd = math.sqrt(1 - rho ** 2) if sd is None else sd

    def posterior(self, x):
        return DiagonalNormal(self.rho * x, torch.full_like(x, self.sd))

    def prior(self):
        return DiagonalNormal(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("rho", [0.0, 0.6, 0.9])
def test_linear_gaussian_closed_form(rho):
    torch.manual_seed(0)
    m = 3000
    x = torch.randn(m, 2, dtype=torch.float64)
    r = mutual_information(_LinearGaussian(rho), x, batch_size=1000)
    exact = -math.log(1 - rho ** 2)  # d = 2
    # the empirical q(z) (M = 3000 atoms) differs from N(0, I) by O(1/M): allow 0.03 nats on top of 4 s.e.
    assert abs(r["mutual_information"] - exact) < 4 * r["mutual_information_se"] + 0.03, (r, exact)
    assert r["mean_kl"] == pytest.approx(r["mutual_information"] + r["marginal_kl"], abs=1e-9)
    assert abs(r["marginal_kl"]) < 0.05  # q(z) is the prior here


def test_saturates_at_log_m_for_a_near_deterministic_encoder():
    m = 500
    x = torch.randn(m, 2, dtype=torch.float64)
    r = mutual_information(_LinearGaussian(1.0, sd=1e-4), x, batch_size=128)
    assert r["mutual_information"] == pytest.approx(math.log(m), abs=1e-6)


def test_a_model_through_the_protocol():
    spec = {"type": "vae", "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 3},
            "decoder": {"type": "mlp", "hidden": [8]}, "likelihood": {"type": "bernoulli"}}
    model = build_model(spec, data_dim=5)
    x = torch.bernoulli(torch.full((64, 5), 0.5))
    r = mutual_information(model, x, batch_size=20)
    assert 0.0 <= r["mutual_information"] + 4 * r["mutual_information_se"]
    assert r["mutual_information"] <= math.log(64) + 1e-6
    with pytest.raises(ValueError, match="at least 2 data rows"):
        mutual_information(model, x[:1])
