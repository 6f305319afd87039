"""run_estimators / parse_spec / format_table / run_bdmc: the interface ``vaekit eval`` calls."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from vaekit.evaluation.bdmc import run_bdmc
from vaekit.evaluation.estimators import format_table, parse_spec, run_estimators
from vaekit.latents.gaussian import GaussianLatent
from vaekit.likelihoods.gaussian import GaussianLikelihood
from vaekit.models import VAE

D_Z, D_X, SIGMA = 3, 10, 0.5


@pytest.fixture(autouse=True)
def _seed():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors; a second thread only spins on shared CI cores
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def lg():
    model = VAE(nn.Linear(D_X, 8), GaussianLatent(8, D_Z), nn.Linear(D_Z, D_X),
                GaussianLikelihood(D_X, learn_scale=False, scale=SIGMA)).double()
    W, b = model.decoder.weight.detach(), model.decoder.bias.detach()
    return model, MultivariateNormal(b, W @ W.T + SIGMA ** 2 * torch.eye(D_X, dtype=torch.float64))


def test_parse_spec():
    assert parse_spec("elbo,iwae:5000,ais:10000") == [("elbo", 1), ("iwae", 5000), ("ais", 10000)]
    assert parse_spec(" iwae , ais ") == [("iwae", 5000), ("ais", 1000)]
    with pytest.raises(ValueError, match="unknown estimator 'parzen'"):
        parse_spec("elbo,parzen")
    with pytest.raises(ValueError, match="not an integer"):
        parse_spec("iwae:many")
    with pytest.raises(ValueError, match=">= 1"):
        parse_spec("ais:0")
    with pytest.raises(ValueError, match="non-empty"):
        parse_spec("")


def test_run_estimators_structure_ordering_and_exactness(lg):
    # 12 points from the model in batches of 5 (so batching is exercised). AIS (T=200, 16 chains) must be within
    # 3 pooled Monte Carlo s.e. of the exact mean log p(x) (failure rate about 0.3%; bump the seed once);
    # ELBO <= IWAE-100 <= AIS by the paired construction (differences are several nats here).
    model, marginal = lg
    torch.manual_seed(1)
    x = marginal.sample((12,))
    exact = float(marginal.log_prob(x).mean())
    state = torch.get_rng_state()
    res = run_estimators(model, x, "elbo,iwae:100,ais:200", seed=3, batch_size=5)
    assert torch.equal(state, torch.get_rng_state())
    assert list(res) == ["elbo", "iwae:100", "ais:200"]
    for r in res.values():
        assert set(r) >= {"mean", "stderr", "n", "settings", "seconds"} and r["n"] == 12
        assert math.isfinite(r["mean"]) and r["stderr"] > 0 and r["seconds"] >= 0
    a = res["ais:200"]
    assert a["settings"]["T"] == 200 and a["settings"]["n_chains"] == 16 and a["settings"]["leapfrog_steps"] == 10
    assert abs(a["mean"] - exact) <= 3 * a["mc_stderr"], (a, exact)
    assert res["elbo"]["mean"] < res["iwae:100"]["mean"] < a["mean"] + 3 * a["mc_stderr"]
    again = run_estimators(model, x, "iwae:100", seed=3, batch_size=5)
    assert again["iwae:100"]["mean"] == res["iwae:100"]["mean"]  # seeded
    table = format_table(res)
    assert "iwae:100" in table and "ais:200" in table and f"{a['mean']:.3f}" in table


def test_run_estimators_options_and_errors(lg):
    model, marginal = lg
    x = marginal.sample((4,))
    r = run_estimators(model, x, "ais:5", ais_chains=3, ais_leapfrog=2, ais_schedule="linear")["ais:5"]
    assert r["settings"]["n_chains"] == 3 and r["settings"]["leapfrog_steps"] == 2
    assert r["settings"]["schedule"] == "linear"
    with pytest.raises(TypeError, match="unknown options"):
        run_estimators(model, x, "elbo", ais_chain=3)
    with pytest.raises(ValueError, match="shape"):
        run_estimators(model, x[0], "elbo")


def test_run_bdmc_report(lg):
    model, _ = lg
    out = run_bdmc(model, n=4, Ts=[5, 200], seed=2, n_chains=4)
    assert out["settings"]["Ts"] == [5, 200] and out["settings"]["n_simulated"] == 4
    rows = out["rows"]
    assert [r["T"] for r in rows] == [5, 200]
    for r in rows:
        assert r["gap"] == pytest.approx(r["upper"] - r["lower"])
    assert rows[0]["gap"] > rows[1]["gap"]  # several nats vs. a fraction of a nat


def test_the_bounds_refuse_data_the_likelihood_cannot_score():
    """Before, ``iwae_estimate`` and ``elbo_estimate`` scored x = 3 under a Bernoulli likelihood and returned a
    finite, meaningless number, while ``vaekit train``/``eval`` refused the same data. Now the library refuses with
    the command line's sentence (tests/test_cli.py::test_bad_data_is_one_line checks the same words there)."""
    from vaekit.evaluation import elbo_estimate, evaluate_bound, iwae_estimate
    from vaekit.likelihoods import BernoulliLikelihood

    model = VAE(nn.Linear(4, 8), GaussianLatent(8, 2), nn.Linear(2, 4), BernoulliLikelihood(4))
    bad = torch.tensor([[0.0, 1.0, 3.0, 0.5], [0.0, 1.0, 1.0, 0.0]])
    message = ("x has values in [0, 3] but a Bernoulli likelihood needs data in [0, 1]; rescale (e.g. uint8/255) "
               "or choose likelihood.type=gaussian")
    for score in (lambda x: iwae_estimate(model, x, 5), lambda x: elbo_estimate(model, x, k=2),
                  lambda x: evaluate_bound(iwae_estimate, model, x, batch_size=1, k=3)):
        with pytest.raises(ValueError) as e:
            score(bad)
        assert str(e.value) == message
    good = bad[1:]  # binary: scored as before
    assert torch.isfinite(iwae_estimate(model, good, 5)).all() and torch.isfinite(elbo_estimate(model, good)).all()
    assert math.isfinite(evaluate_bound(iwae_estimate, model, good, batch_size=1, k=3).mean)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        evaluate_bound(iwae_estimate, model, bad[1:], batch_size=0, k=3)
