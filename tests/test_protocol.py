"""Protocol conformance: every registered model type, built small, with every latent family it can take.

Each check is a property of the protocol (ARCHITECTURE.md, "The protocol every model speaks"): the
shapes of every method, ``log_weights`` equal to ``log_joint - log q`` on the same sample (replayed
noise, and ``log q`` re-evaluated independently by ``posterior(x).log_prob``), a deterministic
``encode``, the KL's one shape, and prior samples inside the support that ``latent_space`` declares.
The families and model types come from ``tests/families.py``; one registered without a spec there fails
``test_families.py::test_every_registered_family_and_model_type_is_in_the_table``.
"""

from __future__ import annotations

import pytest
import torch

from families import FAMILY_SPECS, MODEL_SPECS, _hvae, _vae, model_conditions  # noqa: F401 (the table)
from vaekit.latents import LatentSpace
from vaekit.models import build_model

D_X, B, K = 12, 5, 4

#: the one table of latent families (tests/families.py)
LATENT_SPECS = FAMILY_SPECS


CASES = [(m, f) for m in sorted(MODEL_SPECS) for f in sorted(LATENT_SPECS)]


def _leaves(z):
    return list(z) if isinstance(z, tuple) else [z]


@pytest.mark.parametrize("model_type,family", CASES, ids=[f"{m}-{f}" for m, f in CASES])
def test_protocol(model_type, family, seed):
    model = build_model(MODEL_SPECS[model_type](LATENT_SPECS[family]), data_dim=D_X).double()
    x = (torch.rand(B, D_X, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    c = model_conditions(model_type, x)  # {} for an unconditional model

    q, p = model.posterior(x, **c), model.prior(**c)
    assert q.batch_shape == (B,) and p.batch_shape in ((), (B,))  # (B,): a learned conditional prior
    z, log_q = q.rsample_and_log_prob((K,))
    assert all(t.shape[:2] == (K, B) for t in _leaves(z)) and log_q.shape == (K, B)
    torch.testing.assert_close(q.log_prob(z), log_q, rtol=1e-6, atol=1e-6)  # the fast path is the density

    ll, lj = model.log_likelihood(x, z, **c), model.log_joint(x, z, **c)
    assert ll.shape == (K, B) and lj.shape == (K, B)
    torch.testing.assert_close(lj, ll + p.log_prob(z))

    torch.manual_seed(7)
    lw = model.log_weights(x, K, **c)
    torch.manual_seed(7)
    z2, log_q2 = model.posterior(x, **c).rsample_and_log_prob((K,))
    assert lw.shape == (K, B) and torch.isfinite(lw).all()
    torch.testing.assert_close(lw, model.log_joint(x, z2, **c) - model.posterior(x, **c).log_prob(z2),
                               rtol=1e-6, atol=1e-6)
    assert model.log_weights(x, 2 * K + 1, chunk_size=K, **c).shape == (2 * K + 1, B)  # chunked, any k

    out = model(x, k=K, **c)
    assert out.log_likelihood.shape == (K, B) and out.kl.shape == (B,) and torch.isfinite(out.kl).all()

    code = model.encode(x, **c)
    assert code.shape == (B, model.latent_dim)
    torch.testing.assert_close(model.encode(x, **c), code, rtol=0, atol=0)  # deterministic
    assert model.reconstruct(x, **c).shape == (B, D_X)
    assert model.sample(3, **model_conditions(model_type, x[:3])).shape == (3, D_X)

    space = model.latent_space
    assert isinstance(space, LatentSpace)
    spaces = list(space.parts) if space.geometry == "product" else [space]
    assert all(s.geometry in ("euclidean", "sphere", "simplex", "discrete", "constrained") for s in spaces)
    draws = p.sample((6,))
    if p.batch_shape == (B,):  # a conditional prior: the draws for the first condition
        draws = tuple(t[:, 0] for t in draws) if isinstance(draws, tuple) else draws[:, 0]
    for s, zp in zip(spaces, _leaves(draws)):
        assert bool(s.support.check(zp).all()), (s, zp)
        assert (s.bijection is None) <= bool(s.note)  # no bijection comes with what is used instead
        if s.geometry != "discrete":  # every other space has a chart to R^U that round-trips (AIS moves in it)
            u = s.to_unconstrained(zp)
            assert u.shape == (6, s.unconstrained_dim)
            torch.testing.assert_close(s.from_unconstrained(u)[0], zp, rtol=1e-6, atol=1e-6)


def test_protocol_errors_name_the_problem():
    model = build_model(_vae(LATENT_SPECS["gaussian"]), data_dim=D_X)
    x = torch.zeros(2, D_X)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            model.log_weights(x, bad)
        with pytest.raises(ValueError, match="k must be"):
            model(x, k=bad)
    with pytest.raises(ValueError, match="chunk_size"):
        model.log_weights(x, 3, chunk_size=0)
    stacked = build_model(_hvae(LATENT_SPECS["gaussian"]), data_dim=D_X)
    with pytest.raises(ValueError, match="sequence of 2"):
        stacked.log_joint(x, torch.zeros(1, 2, 7))
