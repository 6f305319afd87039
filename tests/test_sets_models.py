"""The Neural Statistician and the Variational Homoencoder (issue 15): invariances, objectives, bounds, protocol."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from vaekit.evaluation import iwae_estimate
from vaekit.latents import GaussianLatent
from vaekit.likelihoods import GaussianLikelihood
from vaekit.models import HomoEncoder, NeuralStatistician, build_model
from vaekit.models.conditions import ConditionError
from vaekit.models.sets import ns_bound, vhe_bound


def _mlp(*h):
    return {"type": "mlp", "hidden": list(h), "activation": "tanh"}


def small_spec(kind="neural_statistician", **extra):
    spec = {"type": kind, "encoder": _mlp(16), "pool": _mlp(16), "context": {"type": "gaussian", "dim": 3},
            "z_encoder": _mlp(16), "latent": {"type": "gaussian", "dim": 2}, "prior_net": _mlp(16),
            "decoder": _mlp(16), "likelihood": {"type": "bernoulli"}, **extra}
    return spec


def _gauss_kl_to_standard(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """KL(N(loc, diag scale^2) || N(0, I)) in nats, written out independently of torch."""
    return 0.5 * np.sum(loc ** 2 + scale ** 2 - 1.0 - 2.0 * np.log(scale), axis=-1)


def test_statistic_network_is_permutation_invariant(seed):
    m = build_model(small_spec(), data_dim=10).double()
    x = torch.rand(4, 7, 10, dtype=torch.float64)
    q = m.context_posterior(x)
    perm = torch.randperm(7)
    qp = m.context_posterior(x[:, perm])
    torch.testing.assert_close(qp.base_dist.loc, q.base_dist.loc, rtol=0, atol=1e-12)
    torch.testing.assert_close(qp.base_dist.scale, q.base_dist.scale, rtol=0, atol=1e-12)
    # mean pooling: a set and the same set twice give the same context posterior ...
    q2 = m.context_posterior(torch.cat([x, x], 1))
    torch.testing.assert_close(q2.base_dist.loc, q.base_dist.loc)
    # ... and the network does read the items: changing one changes q(c|D)
    y = x.clone()
    y[:, 3] = torch.rand(4, 10, dtype=torch.float64)
    assert (m.context_posterior(y).base_dist.loc - q.base_dist.loc).abs().min() > 1e-6
    # the protocol's q(c|D ∪ {x}) is the statistic network on the union
    xq = torch.rand(4, 10, dtype=torch.float64)
    post = m.posterior(xq, support=x)
    union = m.context_posterior(torch.cat([x, xq[:, None]], 1))
    torch.testing.assert_close(post.top.base_dist.loc, union.base_dist.loc)


def test_ns_context_kl_counted_once_per_set(seed):
    m = build_model(small_spec(), data_dim=10)
    x = torch.bernoulli(torch.rand(5, 6, 10))
    torch.manual_seed(1)
    bound, t = m.training_bound(x)
    q = m.context_posterior(x)
    kl = _gauss_kl_to_standard(q.base_dist.loc.detach().numpy(), q.base_dist.scale.detach().numpy())
    np.testing.assert_allclose(t.kl_c.detach().numpy(), kl, rtol=1e-5)
    expect = (t.log_likelihood - t.kl_z).sum(-1) - torch.as_tensor(kl)
    torch.testing.assert_close(bound, expect.float(), rtol=1e-5, atol=1e-4)
    assert t.log_likelihood.shape == (5, 6) and t.kl_c.shape == (5,)


def test_vhe_kl_scaling_equals_its_formula(seed):
    m = build_model(small_spec("homoencoder", class_size=20, support_size=5), data_dim=10)
    assert isinstance(m, HomoEncoder)
    # every item distinct, so the split can be checked by value
    x = torch.bernoulli(torch.rand(3, 20, 10))
    g = torch.Generator().manual_seed(4)
    bound, t = m.training_bound(x, generator=g)
    assert t.support_items.shape == (3, 5) and t.scored_items.shape == (3, 15)
    for s in range(3):  # D never holds a scored item, and together they are the class
        sup, sc = set(t.support_items[s].tolist()), set(t.scored_items[s].tolist())
        assert not sup & sc and sup | sc == set(range(20))
    # q(c|D) is the statistic network on exactly the support items
    support = x[torch.arange(3)[:, None], t.support_items]
    q = m.context_posterior(support)
    torch.testing.assert_close(t.context.base_dist.loc, q.base_dist.loc)
    kl = _gauss_kl_to_standard(q.base_dist.loc.detach().double().numpy(), q.base_dist.scale.detach().double().numpy())
    # objective = sum over the 15 scored items of [log p(x|z,c) - KL_z - KL_c / |X|], |X| = 20
    expect = (t.log_likelihood - t.kl_z).sum(-1).double() - 15 * torch.as_tensor(kl) / 20
    torch.testing.assert_close(bound.double(), expect, rtol=1e-5, atol=1e-4)
    # and the NS bound of the same terms differs by exactly the rescaling
    torch.testing.assert_close((ns_bound(t) - bound).double(), -torch.as_tensor(kl) * (1 - 15 / 20),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="class_size"):
        vhe_bound(t, 0)


# ----------------------------------------------------------------------------- linear-Gaussian hierarchy
A, SZ, SX = 1.5, 0.7, 0.5
W = torch.tensor([[1.0], [-0.5]])   # x's loading on z
V = torch.tensor([[0.8], [1.2]])    # x's loading on c
B = torch.tensor([0.3, -0.2])


def _inv_softplus(y: float) -> float:
    return math.log(math.expm1(y))


def linear_gaussian_model(kind: str, n: int, support_size: int, disjoint: bool) -> NeuralStatistician:
    r"""c ~ N(0, 1), z|c ~ N(A c, SZ^2), x|z,c ~ N(W z + V c + B, SX^2 I_2): every part fixed except the encoders."""
    torch.manual_seed(0)
    item_enc, pool = nn.Linear(2, 4), nn.Identity()
    ctx = GaussianLatent(4, 1)
    zenc = nn.Linear(4 + 1, 4)
    zlat = GaussianLatent(4, 1)
    prior_lat = GaussianLatent(1, 1, min_scale=0.0)
    with torch.no_grad():  # p(z|c) = N(A c, SZ^2): loc = A c, scale = softplus(0 * c + b) = SZ
        prior_lat.head.weight.copy_(torch.tensor([[A], [0.0]]))
        prior_lat.head.bias.copy_(torch.tensor([0.0, _inv_softplus(SZ)]))
    dec = nn.Linear(2, 2)  # input [z, c]
    with torch.no_grad():
        dec.weight.copy_(torch.cat([W, V], 1))
        dec.bias.copy_(B)
    lik = GaussianLikelihood(2, learn_scale=False, scale=SX)
    parts = (item_enc, pool, ctx, zenc, zlat, nn.Identity(), prior_lat, dec, lik)
    for p in itertools.chain(prior_lat.parameters(), dec.parameters()):
        p.requires_grad_(False)
    if kind == "ns":
        return NeuralStatistician(*parts).double()
    return HomoEncoder(*parts, class_size=n, support_size=support_size, disjoint=disjoint).double()


def exact_class_log_likelihood(x: torch.Tensor) -> float:
    """log p(X) of one class ``(n, 2)`` under the hierarchy: X is jointly Gaussian (scipy, independent of vaekit)."""
    n = x.shape[0]
    u = (W[:, 0] * A + V[:, 0]).double().numpy()   # x_i = u c + W SZ eta_i + B + eps_i
    w = W[:, 0].double().numpy()
    block_same = np.outer(u, u) + SZ ** 2 * np.outer(w, w) + SX ** 2 * np.eye(2)
    cov = np.kron(np.ones((n, n)), np.outer(u, u)) + np.kron(np.eye(n), block_same - np.outer(u, u))
    mean = np.tile(B.double().numpy(), n)
    return float(stats.multivariate_normal(mean, cov).logpdf(x.double().numpy().reshape(-1)))


def _sample_class(n: int, g: torch.Generator) -> torch.Tensor:
    c = torch.randn(1, generator=g, dtype=torch.float64)
    z = A * c + SZ * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return z @ W.double().T + c * V.double().T + B.double() + SX * torch.randn(n, 2, generator=g, dtype=torch.float64)


def test_vhe_bound_is_below_the_exact_class_log_likelihood(one_thread):
    """On the linear-Gaussian hierarchy, the VHE objective summed over a whole class, with D a random subset drawn
    independently of the scored items, is a lower bound on the exact log p(X); after fitting the encoders it is also
    close to it (within 1 nat), so the comparison is not won by a loose bound. Dropping the context KL instead of
    rescaling it gives a value above log p(X): the check can fail."""
    n, s = 8, 3
    g = torch.Generator().manual_seed(0)
    x = _sample_class(n, g)
    exact = exact_class_log_likelihood(x)
    m = linear_gaussian_model("vhe", n, s, disjoint=False)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.02)
    torch.manual_seed(1)
    for _ in range(600):
        bound, _ = m.training_bound(x[None].expand(16, n, 2))
        opt.zero_grad()
        (-bound.mean()).backward()
        opt.step()
    torch.manual_seed(2)
    with torch.no_grad():
        bound, t = m.training_bound(x[None].expand(20000, n, 2))
        no_kl = (t.log_likelihood - t.kl_z).sum(-1)
    mean, se = bound.mean().item(), bound.std().item() / math.sqrt(bound.numel())
    # a false failure needs a 4-sigma excursion (rate ~3e-5); bump the seed once if an RNG change trips it
    assert mean <= exact + 4 * se, (mean, se, exact)
    assert exact - mean < 1.0, (mean, exact)
    assert no_kl.mean().item() - 4 * no_kl.std().item() / math.sqrt(no_kl.numel()) > exact


def test_protocol_bound_given_support_on_linear_gaussian(one_thread):
    """Without a support set the prior of v = [c, z] is p(c) p(z|c): after fitting the encoders by the ELBO,
    the ELBO and IWAE-500 through the protocol are below the exact marginal log p(x) within 4 standard errors,
    and IWAE-500 reaches log p(x) within 0.05 nats (the posterior of [c, z] is exact within this family)."""
    m = linear_gaussian_model("ns", 2, 1, True)
    g = torch.Generator().manual_seed(3)
    train = torch.stack([_sample_class(1, g)[0] for _ in range(256)])
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.02)
    torch.manual_seed(1)
    for _ in range(300):
        loss = -m.log_weights(train, 1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.stack([_sample_class(1, g)[0] for _ in range(6)])
    exact = torch.tensor([exact_class_log_likelihood(xi[None]) for xi in x])
    torch.manual_seed(0)
    with torch.no_grad():
        l1 = torch.stack([iwae_estimate(m, x, k=1) for _ in range(400)])
        l500 = torch.stack([iwae_estimate(m, x, k=500) for _ in range(20)])
    for lk in (l1, l500):
        mean, se = lk.mean(0), lk.std(0) / math.sqrt(lk.shape[0])
        assert (mean <= exact + 4 * se).all()
    assert ((exact - l500.mean(0)).abs() < 0.05).all(), (exact, l500.mean(0))


def test_protocol_shapes_and_condition_errors(seed):
    m = build_model(small_spec(), data_dim=10)
    x = torch.bernoulli(torch.rand(4, 10))
    sup = torch.bernoulli(torch.rand(4, 5, 10))
    assert m.log_weights(x, 7, support=sup).shape == (7, 4)
    assert m.log_weights(x, 7, support=sup[0]).shape == (7, 4)   # one set for the batch
    assert m.log_weights(x, 3).shape == (3, 4)                      # unconditional: p(c) as the prior
    out = m(x, k=2, support=sup)
    assert out.log_likelihood.shape == (2, 4) and out.kl.shape == (4,)
    assert m.sample(6, support=sup[0]).shape == (6, 10) and m.encode(x, support=sup).shape == (4, 5)
    assert m.latent_space.dim == 5 and m.latent_space.geometry == "euclidean"
    with pytest.raises(ConditionError, match=r"support must have shape \(K, 10\)"):
        m.log_weights(x, 2, support=torch.rand(4, 5, 9))
    with pytest.raises(ConditionError, match="not \\['label'\\]"):
        m.log_weights(x, 2, label=3)
    assert m.classify(sup, x).shape == (4,)


def test_classification_recovers_clearly_separated_classes(seed):
    """With a statistic network that passes the items through, KL classification picks the class whose support
    mean is nearest: on well-separated Gaussian classes it is right on every query."""
    m = build_model(small_spec(), data_dim=10)
    centres = torch.randn(5, 10) * 3
    sup = centres[:, None] + 0.1 * torch.randn(5, 4, 10)
    qry = centres + 0.1 * torch.randn(5, 10)
    with torch.no_grad():
        m.item_encoder = nn.Identity()
        m.pool_net = nn.Identity()
        m.context_latent = GaussianLatent(10, 10)
        m.context_latent.head.weight.copy_(torch.cat([torch.eye(10), torch.zeros(10, 10)]))
        m.context_latent.head.bias.zero_()
    for rule in m.RULES:
        assert m.classify(sup, qry, rule).tolist() == [0, 1, 2, 3, 4]
        assert m.classify(sup.flip(0), qry, rule).tolist() == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="fewshot.rule"):
        m.classify(sup, qry, "euclid")


def test_builder_errors_name_the_key():
    from vaekit.registry import ConfigError
    with pytest.raises(ConfigError, match="model.context.dim"):
        build_model(small_spec(context={"type": "gaussian", "dim": 0}), data_dim=10)
    with pytest.raises(ValueError, match="model.class_size"):
        build_model(small_spec("homoencoder", class_size=5, support_size=5), data_dim=10)


def test_vhe_variable_support_size_keeps_supports_and_scored_items_apart(seed):
    m = build_model(small_spec("homoencoder", class_size=20, support_size=5, min_support_size=1), data_dim=10)
    x = torch.bernoulli(torch.rand(2, 20, 10))
    g = torch.Generator().manual_seed(0)
    sizes = []
    for _ in range(60):
        _, t = m.training_bound(x, generator=g)
        sizes.append(t.support_items.shape[1])
        assert t.scored_items.shape == (2, 15)
        for s in range(2):
            assert not set(t.support_items[s].tolist()) & set(t.scored_items[s].tolist())
    # |D| uniform on 1..5: every size appears (60 draws; P(a size missing) < 5 * 0.8^60 ~ 1e-5)
    assert set(sizes) == {1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="model.min_support_size"):
        build_model(small_spec("homoencoder", class_size=20, support_size=5, min_support_size=6), data_dim=10)


@pytest.mark.parametrize("kind", ["neural_statistician", "homoencoder"])
def test_conv_item_networks_take_the_data_image_shape(seed, kind):
    # the image shape reached no network of a model of sets: a conv encoder assumed 28x28 and refused 8x8 data
    extra = {"class_size": 4, "support_size": 2} if kind == "homoencoder" else {}
    spec = small_spec(kind, encoder={"type": "conv", "channels": [4, 8], "out_features": 16},
                      decoder={"type": "deconv", "channels": [8, 4]}, **extra)
    model = build_model(spec, data_dim=64, image_shape=(1, 8, 8))
    assert model.item_encoder.image_shape == (1, 8, 8) and model.decoder.image_shape == (1, 8, 8)
    bound, _ = model.training_bound(torch.bernoulli(torch.full((3, 4, 64), 0.3)))
    assert torch.isfinite(bound).all()
    with pytest.raises(ValueError, match="784 values but in_features is 64"):
        build_model(spec, data_dim=64)  # no shape given: the default 28x28 is refused, not used


def test_support_nll_is_reproducible_and_leaves_the_global_generator_alone(seed):
    # its importance samples came from the unseeded global generator: a re-evaluation moved the figure by 0.16 nats
    from vaekit.pipeline.sets import support_nll
    model = build_model(small_spec(), data_dim=10)
    classes = torch.rand(7, 6, 10)
    state = torch.get_rng_state()
    a = support_nll(model, classes, shot=3, k=20)
    torch.rand(5)  # the global stream moves between the calls
    b = support_nll(model, classes, shot=3, k=20)
    assert a == b and a["n"] == 7 and a["k"] == 20 and math.isfinite(a["nll"])
    assert support_nll(model, classes, shot=3, k=20, seed=1)["nll"] != a["nll"]
    torch.set_rng_state(state)
    support_nll(model, classes, shot=3, k=20)
    assert torch.equal(torch.get_rng_state(), state)
