"""Generic checks run over the table of every latent family (``tests/families.py``).

Statistical checks compare a Monte Carlo mean with its reference at 4 standard errors (two-sided
failure rate about 6e-5 per compared number; a few hundred numbers here, so < 2% per full run under
the null): if one fails after an unrelated change, bump the seed once; a second failure is a bug.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, OneHotCategorical
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from families import (FAMILY_CASES, FAMILY_SPECS, IMAGE_MODEL_TESTS, MODEL_SPECS, NO_DENSITY_MODEL_SPECS, SET_MODEL_TESTS, TOKEN_MODEL_SPECS, make_layer,
                      make_posterior, model_conditions)
from vaekit.distributions import GroupedRelaxedOneHotCategorical as GroupedRelaxed
from vaekit.distributions import MixtureOfDiagonalNormals
from vaekit.latents import LATENTS, IAFPosterior, has_analytic_kl, kl_estimate
from vaekit.models import MODELS, build_model

DT = torch.float64


@pytest.fixture(autouse=True)
def _seeded(one_thread_seeded):
    yield


def test_every_registered_family_and_model_type_is_in_the_table():
    types = {spec["type"] for spec in FAMILY_SPECS.values()}
    assert set(LATENTS.names()) <= types, f"add a small spec for {set(LATENTS.names()) - types} to tests/families.py"
    specs = (set(MODEL_SPECS) | set(NO_DENSITY_MODEL_SPECS) | set(TOKEN_MODEL_SPECS) | set(SET_MODEL_TESTS)
             | set(IMAGE_MODEL_TESTS))
    assert set(MODELS.names()) <= specs, f"add a spec for {set(MODELS.names()) - specs}"
    st = {spec.get("straight_through", False) for spec in FAMILY_SPECS.values()
          if spec["type"] == "relaxed_categorical"}
    assert st == {False, True}, "the relaxed categorical is in the table both relaxed and straight-through"


# ------------------------------------------------------------------------------------------------
# Zero-probability classes and components (issue 12, item 2): 0 * (-inf) must not reach a sum
# ------------------------------------------------------------------------------------------------
WITH_LOGITS = [c for c in FAMILY_CASES if FAMILY_SPECS[c]["type"] in ("mixture", "relaxed_categorical")]


def _impossible_first(case: str):
    """The family's posterior with the first class/component made impossible (logit -inf), live parameters."""
    layer, _, params = make_posterior(case, batch=3)
    params = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    with torch.no_grad():
        params["logits"][..., 0] = -math.inf
    return layer, layer.distribution(**params), params


def test_the_audit_covers_every_family_with_classes_or_components():
    assert {FAMILY_SPECS[c]["type"] for c in WITH_LOGITS} == {"mixture", "relaxed_categorical"}
    for case in FAMILY_CASES:  # every other family has no class/component weights a logit could zero
        assert ("logits" in make_posterior(case)[2]) == (case in WITH_LOGITS), case


@pytest.mark.parametrize("case", WITH_LOGITS)
def test_an_impossible_class_or_component_gives_finite_values_and_gradients(case):
    layer, q, params = _impossible_first(case)
    z, log_q = q.rsample_and_log_prob((200,))
    assert torch.isfinite(z).all() and torch.isfinite(log_q).all(), case
    terms = [log_q.sum(), q.log_prob(z).sum(), (z * torch.linspace(-1, 1, z.shape[-1], dtype=DT)).sum()]
    if FAMILY_SPECS[case].get("straight_through"):
        terms.append(q.entropy().sum())
    grads = torch.autograd.grad(sum(terms), list(params.values()), allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads), case


def test_straight_through_with_an_impossible_class_is_the_categorical_of_the_rest():
    # the input: two equal classes left, so H = log 2 and log q(draw) = -log 2
    logits = torch.tensor([[0.0, 0.0, -math.inf]], dtype=DT)
    q = GroupedRelaxed(0.5, logits, straight_through=True)
    assert q.entropy().item() == pytest.approx(math.log(2), abs=1e-15)
    z = q.rsample((1000,))
    assert (z[:, 2] == 0).all()
    assert torch.allclose(q.log_prob(z), torch.full((1000,), -math.log(2), dtype=DT), atol=1e-15)
    # an impossible value scores -inf (not NaN)
    assert q.log_prob(torch.tensor([0.0, 0.0, 1.0], dtype=DT)).item() == -math.inf
    # in general: torch's Categorical (which clamps -inf log-probabilities) over several groups
    logits = torch.randn(4, 2, 5, dtype=DT)
    logits[..., 1] = -math.inf
    logits[0, 1, 3] = -math.inf
    q = GroupedRelaxed(0.7, logits, straight_through=True)
    torch.testing.assert_close(q.entropy(), Categorical(logits=logits).entropy().sum(-1), rtol=1e-12, atol=1e-12)
    z = q.sample((50,))
    ref = OneHotCategorical(logits=logits).log_prob(z.unflatten(-1, (2, 5))).sum(-1)
    torch.testing.assert_close(q.log_prob(z), ref, rtol=1e-12, atol=1e-12)


def test_mixture_with_an_impossible_component_is_its_limit():
    """logit -inf gives the same draws, densities and gradients as logit -1e4 (the issue's working input)."""
    loc = torch.tensor([[-3.0, 0.5], [2.0, 1.0], [40.0, 40.0]], dtype=DT)
    scale = torch.tensor([[1.0, 0.5], [0.7, 1.2], [1.0, 1.0]], dtype=DT)
    out = []
    for low in (-math.inf, -1e4):
        leaves = [torch.tensor([0.3, -0.2, low], dtype=DT).requires_grad_(), loc.clone().requires_grad_(),
                  scale.clone().requires_grad_()]
        q = MixtureOfDiagonalNormals(*leaves)
        torch.manual_seed(5)
        z = q.rsample((500,))
        lp = q.log_prob(z)
        grads = torch.autograd.grad((z ** 2).sum() + lp.sum(), leaves)
        out.append((z, lp, grads))
    (z, lp, g), (z_ref, lp_ref, g_ref) = out
    assert torch.isfinite(z).all() and (z.detach() < 20).all()  # no draw from the impossible component
    torch.testing.assert_close(z, z_ref, rtol=0, atol=0)
    torch.testing.assert_close(lp, lp_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # and the density is the two-component mixture's (torch's MixtureSameFamily, an independent implementation)
    ref = MixtureSameFamily(Categorical(logits=torch.tensor([0.3, -0.2], dtype=DT)),
                            Independent(Normal(loc[:2], scale[:2]), 1))
    torch.testing.assert_close(lp, ref.log_prob(z.detach()), rtol=1e-12, atol=1e-12)



# ------------------------------------------------------------------------------------------------
# The torch.distributions contract (the generic checks of PyTorch's own distribution tests, in our words)
# ------------------------------------------------------------------------------------------------
B = 4


@contextlib.contextmanager
def _default_validation(on: bool):
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(on)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(before)


def _is_straight_through(case: str) -> bool:
    return bool(FAMILY_SPECS[case].get("straight_through"))


def _optional(fn):
    """``fn()``, or None where the family has no closed form (``NotImplementedError``, as torch's classes raise)."""
    try:
        return fn()
    except NotImplementedError:
        return None


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_shapes_of_every_method(case):
    layer, q, _ = make_posterior(case, batch=B)
    d = layer.dim
    assert q.batch_shape == (B,) and q.event_shape == (d,)
    assert q.sample().shape == (B, d) and q.rsample((2, 3)).shape == (2, 3, B, d)
    z, log_q = q.rsample_and_log_prob((5,))
    assert z.shape == (5, B, d) and log_q.shape == (5, B) and q.log_prob(z).shape == (5, B)
    for value in (_optional(lambda: q.mean), _optional(lambda: q.variance)):
        assert value is None or value.shape == (B, d)
    entropy = _optional(q.entropy)
    assert entropy is None or entropy.shape == (B,)
    p = layer.prior()
    assert p.batch_shape == () and p.event_shape == (d,) and p.sample((7,)).shape == (7, d)
    assert p.log_prob(z).shape == (5, B)


@pytest.mark.parametrize("case", FAMILY_CASES)
@pytest.mark.parametrize("validate", [True, False])
def test_expand_keeps_the_type_the_validation_flag_and_the_law(case, validate):
    with _default_validation(validate):
        layer, q, _ = make_posterior(case, batch=B)
        for dist in (q, layer.prior()):
            assert dist._validate_args is validate  # the latent layer leaves validate_args at torch's default
            shape = (3,) + tuple(dist.batch_shape) if dist.batch_shape else (3, B)
            e = dist.expand(torch.Size(shape))
            assert type(e) is type(dist) and e._validate_args is validate and e.batch_shape == shape
            z = e.sample((2,))
            assert z.shape == (2, *shape, layer.dim)
            # the expanded law is the original's, copied along the new dimensions
            torch.testing.assert_close(e.log_prob(z), dist.log_prob(z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_samples_lie_in_the_support_and_parameters_meet_their_constraints(case):
    layer, q, _ = make_posterior(case, batch=B)
    for dist in (q, layer.prior()):
        assert bool(dist.support.check(dist.sample((20,))).all())
        for name, constraint in dist.arg_constraints.items():
            if name in dist.__dict__ or hasattr(type(dist), name) and name in ("loc", "scale_tril", "logits"):
                value = getattr(dist, name)
                if isinstance(value, torch.Tensor):
                    assert bool(constraint.check(value).all()), (case, name)


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_bad_values_and_parameters_raise_when_validating(case):
    layer, q, params = make_posterior(case, batch=B)
    d = layer.dim
    with pytest.raises(ValueError):  # NaN is in no support (real included: NaN != NaN)
        q.log_prob(torch.full((B, d), math.nan, dtype=DT))
    with pytest.raises(ValueError):
        q.log_prob(torch.zeros(B, d + 1, dtype=DT))  # wrong event size
    checked = [n for n in params if n in q.arg_constraints]
    assert checked, f"{case}: no parameter of {sorted(params)} is in arg_constraints"
    for name in checked:
        bad = dict(params)
        bad[name] = torch.full_like(params[name], math.nan)
        with pytest.raises(ValueError, match=name):
            layer.distribution(**bad)


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_batched_draws_are_distinct(case):
    _, q, _ = make_posterior(case, batch=1)
    e = q.expand(torch.Size((50, 1)))  # fifty copies of the same parameters
    z = e.sample().reshape(50, -1)
    if _is_straight_through(case):  # one-hot values repeat; all fifty equal has probability < 1e-6 here
        assert len({tuple(r) for r in z.tolist()}) > 1
    else:
        gaps = torch.cdist(z, z) + torch.eye(50, dtype=DT)
        assert (gaps > 1e-9).all()


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_rsample_and_log_prob_is_log_prob_of_the_same_draw(case):
    _, q, params = make_posterior(case, batch=B)
    z, log_q = q.rsample_and_log_prob((6,))
    torch.testing.assert_close(q.log_prob(z), log_q, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(q.log_prob(z.detach().clone()), log_q.detach(), rtol=1e-9, atol=1e-9)  # a copy
    # reparameterised: the draw depends on the parameters; sample() does not
    live = [t for t in params.values() if t.requires_grad]
    grads = torch.autograd.grad((z * torch.linspace(-1, 2, z.shape[-1], dtype=DT)).sum(), live, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads), case
    assert not q.sample().requires_grad


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_log_prob_broadcasts_the_value_against_the_batch(case):
    layer, q, _ = make_posterior(case, batch=B)
    z = q.sample((5,))  # (5, B, d)
    one = z[:, 1]  # (5, d)
    per_row = q.log_prob(z[0, 1].expand(B, layer.dim))
    torch.testing.assert_close(q.log_prob(z[0, 1]), per_row)  # (d,) -> (B,)
    got = q.log_prob(one.unsqueeze(1))  # (5, 1, d) -> (5, B)
    assert got.shape == (5, B)
    torch.testing.assert_close(got, q.log_prob(one.unsqueeze(1).expand(5, B, layer.dim)))


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_mean_variance_and_entropy_match_monte_carlo(case):
    # failure rate: at most 2 d + 1 = 13 numbers per family at 4 s.e.
    layer, q, _ = make_posterior(case, batch=2)
    n = 20000
    z = q.sample((n,))
    mean, var, ent = _optional(lambda: q.mean), _optional(lambda: q.variance), _optional(q.entropy)
    if mean is not None:
        assert ((z.mean(0) - mean).abs() <= 4 * z.std(0) / math.sqrt(n)).all(), case
    if var is not None:
        sq = (z - mean) ** 2
        assert ((sq.mean(0) - var).abs() <= 4 * sq.std(0) / math.sqrt(n)).all(), case
    if ent is not None:
        neg = -q.log_prob(z)
        assert ((neg.mean(0) - ent).abs() <= 4 * neg.std(0) / math.sqrt(n) + 1e-12).all(), case


# ----- KL against an independent Monte Carlo estimate ------------------------------------------------------
def _independent_kl_estimate(case: str, q, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, s.e.) over ``n`` draws of ``log q - log p`` against the layer's prior, by code other than the family's
    own: torch's distributions for the mixture and the relaxed categorical (float64 log space), the change of
    variables with an autograd Jacobian for the IAF, the family's own sampler and density for the analytic pairs
    (whose closed form is then the thing under test), and the exact discrete KL for the straight-through code."""
    kind = FAMILY_SPECS[case]["type"]
    if kind == "relaxed_categorical" and _is_straight_through(case):
        logp = q.logits.log_softmax(-1)
        exact = (logp.exp() * (logp + math.log(q.n_categories))).sum((-2, -1))
        return exact, torch.zeros_like(exact)
    if kind == "relaxed_categorical":
        t = torch.tensor(q.temperature, dtype=DT)
        e_q = ExpRelaxedCategorical(t, logits=q.logits.detach())
        x = e_q.sample((n,))  # (n, B, G, c); the -sum x Jacobians of q and p cancel
        est = (e_q.log_prob(x) - ExpRelaxedCategorical(t, logits=torch.zeros_like(q.logits)).log_prob(x)).sum(-1)
    elif kind == "mixture":
        mix = MixtureSameFamily(Categorical(logits=q.logits.detach()),
                                Independent(Normal(q.loc.detach(), q.scale.detach()), 1))
        z = mix.sample((n,))
        est = mix.log_prob(z) - Normal(0.0, 1.0).log_prob(z).sum(-1)
    elif kind == "iaf":
        base = Normal(q.loc.detach(), q.scale.detach())
        z0 = base.sample((n,))
        ctx = q.context.detach().expand(n, *q.context.shape)

        def push(z0_row, ctx_row):
            return q.flow(z0_row, ctx_row)[0]

        with torch.no_grad():
            z = push(z0, ctx)
        jac = torch.func.vmap(torch.func.jacrev(push))(z0.reshape(-1, z0.shape[-1]), ctx.reshape(-1, ctx.shape[-1]))
        log_det = torch.linalg.slogdet(jac)[1].reshape(z0.shape[:-1])
        est = base.log_prob(z0).sum(-1) - log_det - Normal(0.0, 1.0).log_prob(z).sum(-1)
    else:
        p = make_layer(case).prior()
        z = q.sample((n,))
        est = q.log_prob(z) - p.log_prob(z)
    return est.mean(0).detach(), est.std(0).detach() / math.sqrt(n)


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_kl_agrees_with_an_independent_monte_carlo_estimate_and_is_never_negative(case):
    # failure rate: B = 4 numbers per family at 4 s.e. of the difference (analytic: of the MC side alone)
    layer, q, _ = make_posterior(case, batch=B)
    p = layer.prior()
    n = 4000
    if has_analytic_kl(q, p):
        kl, se = torch.distributions.kl_divergence(q, p), torch.zeros(B, dtype=DT)
    else:  # what the model reports: the mean of log q - log p over its own draws
        z, log_q = q.rsample_and_log_prob((n,))
        terms = (log_q - p.log_prob(z)).detach()
        kl, se = kl_estimate(q, p, log_q, p.log_prob(z)), terms.std(0) / math.sqrt(n)
    ref, ref_se = _independent_kl_estimate(case, q, n)
    assert kl.shape == (B,) and (kl >= 0).all(), (case, kl)
    assert ((kl - ref).abs() <= 4 * (se ** 2 + ref_se ** 2).sqrt() + 1e-12).all(), (case, kl, ref, se, ref_se)
    assert (ref > 4 * ref_se).all(), "the check needs posteriors away from the prior"


# ----- the bound on every family -------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", sorted(MODEL_SPECS))
@pytest.mark.parametrize("case", FAMILY_CASES)
def test_iwae_grows_with_k_on_a_fixed_sample_budget(model_type, case):
    """N = 64 log-weights per input split into N/k independent IWAE-k estimates for k = 1, 4, 16, 64.

    Splitting one set of draws into nested groups makes L_k <= L_4k exact (log-mean-exp is concave), so the
    statistical part is that L_64 - L_1 (paired, per input) is positive at 4 s.e. over 16 inputs: it fails
    when the k draws of a group are not independent (identical draws make every L_k the ELBO).
    """
    torch.manual_seed(3)
    model = build_model(MODEL_SPECS[model_type](FAMILY_SPECS[case]), data_dim=10).double()
    x = (torch.rand(16, 10, generator=torch.Generator().manual_seed(4)) < 0.4).double()
    with torch.no_grad():
        lw = model.log_weights(x, 64, **model_conditions(model_type, x))  # (64, 16)
    bounds = {k: (torch.logsumexp(lw.reshape(64 // k, k, -1), 1) - math.log(k)).mean(0) for k in (1, 4, 16, 64)}
    for k in (1, 4, 16):
        assert (bounds[4 * k] >= bounds[k] - 1e-9).all(), (case, k)
    gain = bounds[64] - bounds[1]
    assert gain.mean() > 4 * gain.std() / math.sqrt(16), (case, gain)
