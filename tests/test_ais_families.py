"""AIS, reverse AIS and BDMC on every latent family and on stacked models, against exact log p(x).

The models are small enough for an independent exact answer: a 16-pixel Bernoulli decoder on a latent of
dimension 2 or 3, scored by quadrature over the circle (sphere families, dim 2), by enumeration of every
code (straight-through one-hot codes), and by 400k prior draws elsewhere (relaxed simplex codes, R^2
families, the 2-layer model), whose own standard error enters the tolerance. Forward AIS is a stochastic
lower bound and reverse AIS (from the exact posterior sample that simulated ``x``) a stochastic upper one;
both must agree with the exact value within 4 standard errors pooled over the images.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from vaekit.evaluation.ais import LatentChart, ais
from vaekit.evaluation.bdmc import bdmc, simulate
from vaekit.latents import LATENTS, LatentSpace, latent_space_of
from vaekit.likelihoods.bernoulli import BernoulliLikelihood
from vaekit.models import VAE, build_model

from families import FAMILY_CASES, FAMILY_SPECS, make_layer

D_X, B = 16, 6

pytestmark = pytest.mark.usefixtures("one_thread_seeded")

#: the AIS size of each geometry: latent dim and the exact reference (quadrature needs the circle, enumeration
#: needs few codes: 2 groups of 3 classes = 9)
AIS_DIM = {"euclidean": (2, "prior"), "sphere": (2, "circle"), "simplex": (3, "prior"), "discrete": (6, "enumerate")}


def ais_latent_spec(case: str) -> tuple[dict, str]:
    """``FAMILY_SPECS[case]`` resized for an exact reference, and that reference's name."""
    spec = dict(FAMILY_SPECS[case])
    geometry = latent_space_of(make_layer(case).prior()).geometry
    spec["dim"], how = AIS_DIM[geometry]
    return spec, how


def small_vae(case: str) -> VAE:
    spec, _ = ais_latent_spec(case)
    kind = spec.pop("type")
    torch.manual_seed(1)
    decoder = nn.Sequential(nn.Linear(spec["dim"], 32), nn.Tanh(), nn.Linear(32, D_X))
    with torch.no_grad():  # a sharper likelihood than the default init gives, so the posterior is not the prior
        for p in decoder.parameters():
            p.mul_(3)
    latent = LATENTS.get(kind)(8, **spec)
    return VAE(nn.Linear(D_X, 8), latent, decoder, BernoulliLikelihood(D_X)).double()


@torch.no_grad()
def log_px_by_prior_draws(model, x, n: int = 400_000, chunk: int = 20_000) -> tuple[torch.Tensor, torch.Tensor]:
    """``log mean_s p(x|z_s)``, ``z_s ~ p(z)``, and its delta-method s.e. (an independent estimator: no HMC)."""
    out = []
    for _ in range(n // chunk):
        z = model.prior().sample((chunk,))
        z = tuple(t.unsqueeze(1).expand(-1, x.shape[0], -1) for t in z) if isinstance(z, tuple) else \
            z.unsqueeze(1).expand(-1, x.shape[0], -1)
        out.append(model.log_likelihood(x, z))
    lw = torch.cat(out)
    m = lw.max(0).values
    w = (lw - m).exp()
    return m + w.mean(0).log(), w.std(0) / (math.sqrt(lw.shape[0]) * w.mean(0))


@torch.no_grad()
def log_px_on_circle(model, x, n: int = 20_000) -> torch.Tensor:
    """``log ∫ p(z) p(x|z) dθ`` by the trapezoid rule on a periodic grid (exponentially accurate)."""
    th = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    z = torch.stack([th.cos(), th.sin()], -1).unsqueeze(1).expand(-1, x.shape[0], -1)
    return torch.logsumexp(model.log_likelihood(x, z) + model.prior().log_prob(z), 0) + math.log(2 * math.pi / n)


@torch.no_grad()
def log_px_by_enumeration(model, x) -> torch.Tensor:
    space = model.latent_space
    n, g = space.n_categories, space.groups
    codes = torch.stack([torch.eye(n, dtype=torch.float64)[list(c)].flatten()
                         for c in itertools.product(range(n), repeat=g)])  # (n^G, D)
    z = codes.unsqueeze(1).expand(-1, x.shape[0], -1)
    return torch.logsumexp(model.log_likelihood(x, z) + model.prior().log_prob(z), 0)


def exact(model, x, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    if how == "circle":
        return log_px_on_circle(model, x), torch.zeros(x.shape[0], dtype=torch.float64)
    if how == "enumerate":
        return log_px_by_enumeration(model, x), torch.zeros(x.shape[0], dtype=torch.float64)
    return log_px_by_prior_draws(model, x)


def assert_agrees(est, se, ref, ref_se, what: str) -> None:
    err = float((est - ref).mean())
    tol = 4 * float((se.pow(2) + ref_se.pow(2)).sum().sqrt()) / est.numel()
    assert abs(err) < tol, f"{what}: mean error {err:+.3f} nats over {est.numel()} images, 4 s.e. = {tol:.3f}"
    assert tol < 0.3, f"{what}: the test is too weak to catch a bias ({tol:.3f} nats)"


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_forward_and_reverse_ais_match_exact_log_px(case):
    """Every row of the family table (tests/families.py, which fails when a registered family is missing)."""
    model = small_vae(case)
    z, x = simulate(model, B, seed=3)
    ref, ref_se = exact(model, x, ais_latent_spec(case)[1])
    fwd = ais(model, x, n_chains=16, T=300, seed=0)
    rev = ais(model, x, n_chains=16, T=300, seed=1, reverse=True, init_z=z)
    assert fwd.log_px.shape == rev.log_px.shape == (B,)
    assert_agrees(fwd.log_px, fwd.stderr, ref, ref_se, f"{case} forward")
    assert_agrees(rev.log_px, rev.stderr, ref, ref_se, f"{case} reverse")
    support = model.prior().support
    assert bool(support.check(fwd.z).all()), f"{case}: a chain left the support"


def small_hvae(top: dict) -> nn.Module:
    torch.manual_seed(2)
    spec = {"type": "hvae", "likelihood": {"type": "bernoulli"},
            "layers": [{"encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 2},
                        "decoder": {"type": "mlp", "hidden": [16]}},
                       {"encoder": {"type": "mlp", "hidden": [8]}, "latent": top,
                        "decoder": {"type": "mlp", "hidden": [8]}}]}
    model = build_model(spec, data_dim=D_X).double()
    with torch.no_grad():
        for p in model.decoders[0].parameters():
            p.mul_(3)
    return model


@pytest.mark.parametrize("top", [{"type": "gaussian", "dim": 2}, {"type": "vmf", "dim": 2},
                                 {"type": "relaxed_categorical", "dim": 4, "n_categories": 2,
                                  "straight_through": True}], ids=["gaussian", "vmf", "discrete"])
def test_ais_on_a_two_layer_model(top):
    """A stacked latent (z_1, z_2): HMC on the continuous parts, Gibbs on one-hot ones; BDMC sandwiches."""
    model = small_hvae(top)
    z, x = simulate(model, B, seed=4)
    ref, ref_se = log_px_by_prior_draws(model, x)
    fwd = ais(model, x, n_chains=16, T=300, seed=0)
    rev = ais(model, x, n_chains=16, T=300, seed=1, reverse=True, init_z=z)
    assert_agrees(fwd.log_px, fwd.stderr, ref, ref_se, f"hvae/{top['type']} forward")
    assert_agrees(rev.log_px, rev.stderr, ref, ref_se, f"hvae/{top['type']} reverse")
    assert isinstance(fwd.z, tuple) and [t.shape for t in fwd.z] == [(16, B, 2), (16, B, top["dim"])]
    (row,) = bdmc(model, B, [5], n_chains=2, seed=0, data=(z, x))  # the BDMC driver takes the tuple latent
    assert math.isfinite(row.lower) and math.isfinite(row.upper)


def test_the_chart_is_a_normalised_density_whose_image_is_the_prior():
    """``p_z(z(u)) e^{c(u)}`` integrates to 1 over R^U (importance sampling from a wide Gaussian) and
    ``to_unconstrained`` inverts ``from_unconstrained``; checked for each geometry with a chart."""
    torch.manual_seed(0)
    for name, kwargs, dim in [("vmf", {}, 3), ("power_spherical", {}, 2), ("gaussian", {}, 2),
                              ("relaxed_categorical", {"n_categories": 3, "temperature": 2.0}, 3)]:
        prior = LATENTS.get(name)(4, dim, **kwargs).double().prior()
        space = latent_space_of(prior)
        z = prior.sample((5,))
        z2, _ = space.from_unconstrained(space.to_unconstrained(z))
        assert torch.allclose(z, z2, atol=1e-9), name
        u_dim = space.unconstrained_dim
        q = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(u_dim, dtype=torch.float64),
                                                                       torch.full((u_dim,), 3.0, dtype=torch.float64)), 1)
        u = q.sample((200_000,))
        zu, c = space.from_unconstrained(u)
        w = (prior.log_prob(zu) + c - q.log_prob(u)).exp()
        se = float(w.std()) / math.sqrt(w.numel())
        assert abs(float(w.mean()) - 1) < 4 * se and se < 0.02, (name, float(w.mean()), se)


def test_ais_refuses_a_support_without_a_chart_before_running():
    """A latent on a support torch has no bijection for is refused by name, before any chain runs."""
    from torch.distributions import constraints

    model = small_vae("gaussian")
    space = LatentSpace(constraints.integer_interval(0, 3), 2, "constrained", None, "no bijection is registered")
    type(model)  # the protocol's latent_space is a property: shadow it on a subclass
    weird = type("WeirdVAE", (VAE,), {"latent_space": property(lambda self: space)})
    m = weird(model.encoder, model.latent, model.decoder, model.likelihood)
    with pytest.raises(NotImplementedError, match="constrained space .* no chart to R\\^U: no bijection"):
        ais(m, torch.zeros(2, D_X, dtype=torch.float64), n_chains=2, T=3)
    with pytest.raises(NotImplementedError, match="constrained"):
        LatentChart(m)
