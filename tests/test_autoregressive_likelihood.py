"""The autoregressive Bernoulli likelihood (``made_bernoulli``, issue 17): a normalised, autoregressive, exactly
sampled p(x|z) that the model protocol and the estimators take unchanged.

References are independent of the code under test: enumeration of all 2^n binary images, autograd Jacobians,
and quadrature over a 1-D latent.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from vaekit.likelihoods import MADEBernoulliLikelihood
from vaekit.models import build_model
from vaekit.registry import ConfigError


def _all_images(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _strong(lik: MADEBernoulliLikelihood, seed: int) -> MADEBernoulliLikelihood:
    """Large random weights, so that every pixel depends strongly on the earlier ones (the default init is small)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lik.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.8)
    return lik


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("hidden", [[6], [5, 7]])
def test_log_probs_of_all_images_sum_to_one(skip, hidden):
    n = 5
    lik = _strong(MADEBernoulliLikelihood(n, hidden=hidden, skip=skip).double(), seed=1)
    X = _all_images(n)  # (32, n)
    h = torch.randn(4, 1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2
    lp = lik.log_prob(h.expand(4, 2 ** n, n), X)  # (4, 32)
    assert lp.shape == (4, 2 ** n)
    torch.testing.assert_close(torch.logsumexp(lp, 1), torch.zeros(4, dtype=torch.float64), atol=1e-7, rtol=0)
    # (1e-7, not 1e-15: torch's softplus returns l itself for l > 20, an error of up to e^-20 per pixel)
    # not trivially a product of marginals: the pixels are dependent (else the check above is a weak one)
    p = lp[0].exp()
    marg = (p[:, None] * X).sum(0)
    prod = (X * marg + (1 - X) * (1 - marg)).prod(1)
    assert (p - prod).abs().max() > 1e-3


def test_logits_are_autoregressive_by_gradient():
    """d l_i / d x_j = 0 for j >= i (raster order), and not identically 0 for j < i."""
    n = 6
    lik = _strong(MADEBernoulliLikelihood(n, hidden=[12, 12], activation="tanh").double(), seed=3)  # no dead units
    h = torch.randn(n, dtype=torch.float64)
    x = torch.rand(n, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: lik(h).logits(v), x)  # (n outputs, n inputs)
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool))  # j >= i
    assert jac[upper].abs().max() == 0
    lower = jac[~upper]
    assert (lower.abs() > 1e-6).all()  # every earlier pixel is used
    # every logit depends on the context h, the first one included
    jh = torch.autograd.functional.jacobian(lambda c: lik(c).logits(x), h)
    assert (jh.abs().sum(1) > 1e-6).all()


def test_samples_and_mean_match_the_enumerated_distribution():
    """Ancestral samples' frequencies of the 2^n images, and the one-draw mean estimate averaged over draws, agree
    with the enumerated probabilities within 4.5 standard errors (Bonferroni over the cells)."""
    torch.manual_seed(0)
    n, N = 4, 20000
    lik = _strong(MADEBernoulliLikelihood(n, hidden=[8]).double(), seed=4)
    h = torch.randn(n, dtype=torch.float64)
    X = _all_images(n)
    p = lik.log_prob(h.expand(2 ** n, n), X).exp().detach()
    px = lik(h.expand(N, n))
    xs = px.sample()
    assert set(xs.unique().tolist()) <= {0.0, 1.0}
    idx = (xs * (2 ** torch.arange(n - 1, -1, -1, dtype=torch.float64))).sum(1).long()
    freq = torch.bincount(idx, minlength=2 ** n).double() / N
    z = (freq - p) / (p * (1 - p) / N).clamp_min(1e-12).sqrt()
    assert z.abs().max() < 4.5, z
    mean = px.mean  # (N, n): one estimate per row
    exact = (p[:, None] * X).sum(0)
    se = mean.std(0) / math.sqrt(N)
    assert ((mean.mean(0) - exact).abs() <= 4.5 * se + 1e-12).all()  # the first pixel: se = 0, exact


def _tiny_vae(data_dim: int, hidden: list[int]):
    spec = {"type": "vae", "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 1},
            "decoder": {"type": "mlp", "hidden": [8]}, "likelihood": {"type": "made_bernoulli", "hidden": hidden}}
    return build_model(spec, data_dim=data_dim).double()


def test_vae_with_made_decoder_speaks_the_protocol_against_quadrature():
    """p(x) = ∫ p(x|z) p(z) dz by quadrature over the 1-D latent sums to 1 over all images, and the model's
    IWAE-k estimate (log_weights) lies below it and approaches it."""
    torch.manual_seed(5)
    n = 4
    model = _tiny_vae(n, [6])
    _strong(model.likelihood, seed=6)
    X = _all_images(n)
    zs = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    dz = zs[1] - zs[0]
    with torch.no_grad():
        log_pxz = model.log_likelihood(X, zs[:, None, None].expand(-1, 2 ** n, 1))  # (Z, 16)
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(zs)
        log_px = torch.logsumexp(log_pxz + log_pz[:, None], 0) + dz.log()
        torch.testing.assert_close(torch.logsumexp(log_px, 0), torch.tensor(0.0, dtype=torch.float64), atol=1e-6,
                                   rtol=0)
        lw = model.log_weights(X, 4000, chunk_size=1000)
        assert lw.shape == (4000, 2 ** n)
        iwae = torch.logsumexp(lw, 0) - math.log(4000)
    w = (lw - log_px).exp()  # p(x,z)/q(z|x)/p(x): mean 1
    se = w.std(0) / math.sqrt(4000)
    assert ((iwae - log_px).abs() < 5 * se + 1e-6).all()
    s = model.sample(3, mean=False)
    assert s.shape == (3, n) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert model.reconstruct(X[:2]).shape == (2, n)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model\.likelihood.*narrower than the 9 degrees"):
        _tiny_vae(9, [5])
    with pytest.raises(ConfigError, match=r"model\.likelihood\.hidden\[0\]: expected an integer >= 1"):
        _tiny_vae(4, [0])
    spec = {"type": "vae", "encoder": {"type": "mlp"}, "latent": {"type": "gaussian", "dim": 1},
            "decoder": {"type": "mlp"}, "likelihood": {"type": "made_bernoulli", "activation": "rleu"}}
    with pytest.raises(ConfigError, match=r"model\.likelihood\.activation: expected one of"):
        build_model(spec, data_dim=4)
