"""Generic checks run over the table of every latent family (``tests/families.py``).

Statistical checks compare a Monte Carlo mean with its reference at 4 standard errors (two-sided
failure rate about 6e-5 per compared number; a few hundred numbers here, so < 2% per full run under
the null): if one fails after an unrelated change, bump the seed once; a second failure is a bug.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Independent, Normal, OneHotCategorical

from families import FAMILY_CASES, FAMILY_SPECS, MODEL_SPECS, make_posterior
from vaekit.latents import LATENTS
from vaekit.models import MODELS

DT = torch.float64


@pytest.fixture(autouse=True)
def _seeded(one_thread_seeded):
    yield


def test_every_registered_family_and_model_type_is_in_the_table():
    types = {spec["type"] for spec in FAMILY_SPECS.values()}
    assert set(LATENTS.names()) <= types, f"add a small spec for {set(LATENTS.names()) - types} to tests/families.py"
    assert set(MODELS.names()) <= set(MODEL_SPECS), f"add a spec for {set(MODELS.names()) - set(MODEL_SPECS)}"
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
    from vaekit.distributions import MixtureOfDiagonalNormals

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


from vaekit.distributions import GroupedRelaxedOneHotCategorical as GroupedRelaxed  # noqa: E402
