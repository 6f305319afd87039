"""The stacked (hierarchical) VAE of Burda et al. 2015 (arXiv:1509.00519, Sec. 5): protocol, bounds, exactness."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from vaekit.evaluation import active_units, iwae_estimate
from vaekit.models import HierarchicalVAE, build_model
from vaekit.objectives import build_objective
from vaekit.registry import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread, restored after each test


def _layer(hid_enc, dim, hid_dec, scale_link="exp"):
    return {"encoder": {"type": "mlp", "hidden": hid_enc, "activation": "tanh"},
            "latent": {"type": "gaussian", "dim": dim, "scale_link": scale_link, "min_scale": 0.0},
            "decoder": {"type": "mlp", "hidden": hid_dec, "activation": "tanh"}}


SMALL = {"type": "hvae", "layers": [_layer([32], 8, [32]), _layer([16], 4, [16])], "likelihood": {"type": "bernoulli"}}


def _digits() -> torch.Tensor:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0))


def test_build_and_protocol_shapes() -> None:
    torch.manual_seed(0)
    m = build_model(SMALL, data_dim=64)
    assert isinstance(m, HierarchicalVAE) and m.num_layers == 2 and m.latent_dims == [8, 4]
    x = _digits()[:5]
    out = m(x, k=3)
    assert out.log_likelihood.shape == (3, 5) and out.kl.shape == (5,)
    assert [t.shape for t in out.z] == [(3, 5, 8), (3, 5, 4)]
    assert m.log_weights(x, 7).shape == (7, 5)
    assert m.encode(x).shape == (5, 12) and [t.shape for t in m.encode_layers(x)] == [(5, 8), (5, 4)]
    assert m.sample(4).shape == (4, 64) and m.reconstruct(x).shape == (5, 64)
    zs = [torch.randn(2, 5, 8), torch.randn(2, 5, 4)]
    assert m.log_joint(x, zs).shape == (2, 5)
    with pytest.raises(ValueError, match="sequence of 2"):
        m.log_joint(x, torch.randn(2, 5, 12))
    q = m.posterior(x)
    zs, log_q = q.rsample_and_log_prob((6,))
    assert [t.shape for t in zs] == [(6, 5, 8), (6, 5, 4)] and log_q.shape == (6, 5)
    assert torch.allclose(q.log_prob(zs), log_q, atol=1e-5)
    assert m.latent_space.geometry == "product" and [p.dim for p in m.latent_space.parts] == [8, 4]
    with pytest.raises(ValueError):
        m.validate_input(x * 3)
    # log_weights is exactly log p(x, z_1:L) - log q(z_1:L | x) summed over every layer
    torch.manual_seed(1)
    lw = m.log_weights(x, 4)
    torch.manual_seed(1)
    zs, log_q = m.posterior(x).rsample_and_log_prob((4,))
    assert torch.allclose(lw, m.log_joint(x, zs) - log_q, atol=1e-4)
    # the Monte Carlo KL of the output is the average over the k samples of log q - log p
    torch.manual_seed(1)
    out = m(x, k=4)
    assert torch.allclose(out.kl, (log_q - m.prior().log_prob(zs)).mean(0), atol=1e-4)
    assert active_units(m, _digits()[:200]) <= 12


def test_builder_rejects_bad_layer_specs() -> None:
    bad = {"type": "hvae", "layers": [dict(_layer([8], 4, [8]), extra=1)], "likelihood": {"type": "bernoulli"}}
    with pytest.raises(ConfigError, match=r"layers\[0\].*extra"):
        build_model(bad, data_dim=64)
    with pytest.raises(ConfigError, match="non-empty"):
        build_model({"type": "hvae", "layers": [], "likelihood": {"type": "bernoulli"}}, data_dim=64)
    with pytest.raises(ConfigError, match="missing"):
        build_model({"type": "hvae", "layers": [{"encoder": {"type": "mlp"}}], "likelihood": {"type": "bernoulli"}}, 64)


def test_iwae_bound_above_elbo_and_training_improves() -> None:
    r"""A 2-layer model trains with the IWAE objective (bound on held-out digits rises by > 4 s.e.) and,
    after training, L_50 exceeds the ELBO L_1 on every check by > 4 s.e. of the per-image gap.
    Deterministic (fixed seeds); the measured margins are tens of s.e., so a false failure is < 1e-4."""
    torch.manual_seed(0)
    data = _digits()
    train, test = data[:1400], data[1400:]
    m = build_model(SMALL, data_dim=64)
    before = iwae_estimate(m, test, 10)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    obj = build_objective({"type": "iwae", "k": 5})
    g = torch.Generator().manual_seed(1)
    for step in range(150):
        loss, metrics = obj(m, train[torch.randint(0, 1400, (64,), generator=g)], step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = iwae_estimate(m, test, 10)
    d = after - before
    assert float(d.mean()) > 4 * float(d.std() / math.sqrt(d.numel()))
    l1 = torch.stack([iwae_estimate(m, test, 1) for _ in range(10)]).mean(0)
    l50 = iwae_estimate(m, test, 50)
    gap = l50 - l1
    assert float(gap.mean()) > 4 * float(gap.std() / math.sqrt(gap.numel())), float(gap.mean())


def test_dreg_on_stacked_model_matches_iwae_decoder_gradient() -> None:
    """DReG's generative-parameter gradient equals IWAE's on the same (replayed) sample; float64, exact."""
    torch.manual_seed(0)
    m = build_model(SMALL, data_dim=64).double()
    x = _digits()[:6].double()
    gen = [p for n, p in m.named_parameters() if n.startswith(("decoders", "p_layers"))]
    torch.manual_seed(3)
    a = torch.autograd.grad(build_objective({"type": "iwae", "k": 7})(m, x, 0)[0], gen)
    torch.manual_seed(3)
    b = torch.autograd.grad(build_objective({"type": "dreg", "k": 7})(m, x, 0)[0], gen)
    for ga, gb in zip(a, b):
        assert torch.allclose(ga, gb, rtol=1e-9, atol=1e-12)


# ---- a linear-Gaussian 2-layer model with exact log p(x) ----------------------------------------
# z2 ~ N(0, 1);  z1 | z2 ~ N(a z2 + c, s1^2);  x | z1 ~ N(b z1 + d, sig^2 I),  x in R^3, 1-D latents.
A, C, S1, SIG = 0.8, 0.3, 0.6, 0.5
B = torch.tensor([1.0, -0.5, 0.7], dtype=torch.float64)
D = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
LINEAR = {"type": "hvae", "layers": [
    {"encoder": {"type": "mlp", "hidden": []}, "latent": {"type": "gaussian", "dim": 1, "scale_link": "exp", "min_scale": 0.0},
     "decoder": {"type": "mlp", "hidden": []}},
    {"encoder": {"type": "mlp", "hidden": []}, "latent": {"type": "gaussian", "dim": 1, "scale_link": "exp", "min_scale": 0.0},
     "decoder": {"type": "mlp", "hidden": []}}],
    "likelihood": {"type": "gaussian", "learn_scale": False, "scale": SIG}}


def _set_head(head: torch.nn.Linear, loc_w, loc_b, log_var: float) -> None:
    """Linear head -> (loc, a) with sigma = exp(a/2): loc = loc_w . h + loc_b, constant a = log_var."""
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0] = torch.as_tensor(loc_w, dtype=torch.float64)
        head.bias.copy_(torch.tensor([loc_b, log_var], dtype=torch.float64))


def _linear_model(exact_posterior: bool) -> tuple[HierarchicalVAE, MultivariateNormal]:
    m = build_model(LINEAR, data_dim=3).double()
    _set_head(m.p_layers[0].head, [A], C, math.log(S1 ** 2))
    with torch.no_grad():
        m.decoders[0][0].weight.copy_(B.view(3, 1))
        m.decoders[0][0].bias.copy_(D)
    v1 = A ** 2 + S1 ** 2  # marginal variance of z1
    marginal = MultivariateNormal(B * C + D, v1 * torch.outer(B, B) + SIG ** 2 * torch.eye(3, dtype=torch.float64))
    prec = 1 / v1 + float(B @ B) / SIG ** 2  # p(z1 | x) = N(m(x), 1/prec)
    post1 = (B / (SIG ** 2 * prec), (C / v1 - float(B @ D) / SIG ** 2) / prec, -math.log(prec))
    post2 = ([A / v1], -A * C / v1, math.log(1 - A ** 2 / v1))  # p(z2 | z1), exact since x _|_ z2 | z1
    if not exact_posterior:  # a deliberately wrong q
        post1 = (post1[0] * 0.7, post1[1] + 0.3, post1[2] + 0.8)
        post2 = ([A / v1 * 0.5], -A * C / v1 - 0.2, math.log(1 - A ** 2 / v1) - 0.5)
    _set_head(m.q_layers[0].head, post1[0], post1[1], post1[2])
    _set_head(m.q_layers[1].head, post2[0], post2[1], post2[2])
    return m, marginal


def test_linear_gaussian_exact_posterior_gives_exact_log_px() -> None:
    """With q equal to the true posterior p(z1|x) p(z2|z1), every log-weight equals log p(x) (closed form)."""
    m, marginal = _linear_model(exact_posterior=True)
    torch.manual_seed(0)
    x = marginal.sample((50,))
    lw = m.log_weights(x, 20)
    assert torch.allclose(lw, marginal.log_prob(x).expand(20, -1), atol=1e-10)


def test_linear_gaussian_bounds_ordered_below_exact_log_px() -> None:
    r"""With a wrong q: ELBO <= L_k <= log p(x) (Burda et al. Theorem 1) against the closed-form log p(x).

    On 400 x's from the model, the per-image gaps E[L_20 - L_1] and E[log p(x) - L_20] must exceed
    4 s.e., and L_2000 must be within 0.05 nat of log p(x) on average (it converges as 1/k). The measured
    margins are > 10 s.e.; a false failure needs a > 4-sigma event (rate < 1e-4). Fixed seed.
    """
    m, marginal = _linear_model(exact_posterior=False)
    torch.manual_seed(1)
    x = marginal.sample((400,))
    logpx = marginal.log_prob(x)
    l1 = torch.stack([iwae_estimate(m, x, 1) for _ in range(20)]).mean(0)
    l20 = iwae_estimate(m, x, 20)
    for lo, hi in ((l1, l20), (l20, logpx)):
        d = hi - lo
        assert float(d.mean()) > 4 * float(d.std() / math.sqrt(d.numel())), float(d.mean())
    l2000 = iwae_estimate(m, x, 2000)
    assert abs(float((logpx - l2000).mean())) < 0.05


def test_active_units_of_a_stacked_layer_follow_the_authors_rule() -> None:
    """Layer 2's unit activity is Var_x of the mean of q(z2 | z1) at a *sample* z1 (Burda et al.'s code,
    get_units_variances). Here q(z1|x) = N(0, I) whatever x is, so E[z1|x] is constant (0 active units in
    layer 1), and q(z2|z1) has mean 3 z1: its means at sampled z1 vary with variance 9 per unit (all 4
    active), while at the mean passed upwards (z1 = 0) they would not vary at all."""
    from torch import nn

    from vaekit.reproduce.iwae import active_units_per_layer

    spec = {"type": "hvae", "likelihood": {"type": "bernoulli"},
            "layers": [{"encoder": {"type": "mlp", "hidden": []}, "latent": {"type": "gaussian", "dim": 4},
                        "decoder": {"type": "mlp", "hidden": [8]}},
                       {"encoder": {"type": "mlp", "hidden": []}, "latent": {"type": "gaussian", "dim": 4},
                        "decoder": {"type": "mlp", "hidden": [8]}}]}
    m = build_model(spec, data_dim=64)
    with torch.no_grad():
        for p in m.encoders.parameters():
            p.zero_()
        head1, head2 = m.q_layers[0].head, m.q_layers[1].head  # (loc, a) heads on the encoders' outputs
        head1.weight.zero_()
        head1.bias.zero_()
        head1.bias[4:] = math.log(math.expm1(1.0))  # softplus(a) = 1: unit scale
        head2.weight.zero_()
        head2.bias.zero_()
        head2.bias[4:] = -10.0
    m.encoders[1] = nn.Identity()  # q(z2|z1) sees z1 itself
    with torch.no_grad():
        head2.weight[:4, :4] = 3 * torch.eye(4)
    x = _digits()[:500]
    assert active_units_per_layer(m, x) == [0, 4]
    var2 = torch.cat([m.posterior(x).conditionals(m.posterior(x).sample())[1].loc]).var(0)
    assert torch.allclose(var2, torch.full((4,), 9.0), rtol=0.2)  # 9 Var(z1) = 9
    assert [int((v.var(0) > 0.01).sum()) for v in m.encode_layers(x)] == [0, 0]  # the old rule saw none
