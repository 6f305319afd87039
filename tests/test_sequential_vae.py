"""The sequential VAE (Zhao, Song & Ermon 2017; issue 17): shapes, T = 1 is a VAE, its bounds, its objective, errors.

The protocol checks with every latent family run from ``tests/families.py`` (``sequential_vae``, T = 2) in
tests/test_protocol.py and tests/test_families.py. Statistical checks here compare means at 4 paired standard
errors (two-sided failure rate about 6e-5 each, fixed seeds).
"""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.config import from_dict
from vaekit.evaluation import iwae_estimate
from vaekit.models import VAE, SequentialVAE, build_model
from vaekit.objectives import build_objective
from vaekit.registry import ConfigError

D = 12


@pytest.fixture(autouse=True)
def _seeded(one_thread_seeded):
    yield


def spec(steps: int = 3, **kw) -> dict:
    net = {"type": "mlp", "hidden": [16], "activation": "tanh"}
    return {"type": "sequential_vae", "steps": steps, "encoder": net, "latent": {"type": "gaussian", "dim": 2},
            "decoder": net, "likelihood": {"type": "bernoulli"}, **kw}


def data(n: int = 6, seed: int = 1) -> torch.Tensor:
    return (torch.rand(n, D, generator=torch.Generator().manual_seed(seed)) < 0.4).double()


def test_shapes_of_every_method():
    m = build_model(spec(3), data_dim=D).double()
    x, k = data(), 5
    assert isinstance(m, SequentialVAE) and m.steps == 3 and m.latent_dims == [2, 2, 2] and m.latent_dim == 6
    out = m(x, k=k)
    assert len(out.z) == 3 and all(z.shape == (k, 6, 2) for z in out.z)
    assert out.log_likelihood.shape == (k, 6) and out.kl.shape == (6,) and (out.kl >= 0).all()
    zs, ll, kl = m.step_terms(x, k)
    assert ll.shape == kl.shape == (3, k, 6) and (kl >= 0).all()
    assert m.log_weights(x, k).shape == (k, 6)
    assert m.encode(x).shape == (6, 6) and m.reconstruct(x).shape == (6, D)
    assert m.sample(4).shape == (4, D) and m.sample_steps(4).shape == (3, 4, D)
    # the steps' sampled outputs end at what sample() decodes from the same draws
    torch.manual_seed(3)
    steps = m.sample_steps(4)
    torch.manual_seed(3)
    torch.testing.assert_close(steps[-1], m.sample(4))
    # the encoder of step t >= 2 reads [x, previous output]; its decoder [z_t, previous output]
    assert m.encoders[0].in_features == D and m.encoders[1].in_features == 2 * D
    assert m.decoders[0].in_features == 2 and m.decoders[2].in_features == 2 + D


def test_forward_kl_is_the_sum_of_the_steps_kls_and_the_elbo_matches_log_weights():
    # ELBO = E[log p(x|eta_T)] - sum_t KL_t (analytic per step, chain rule) and E[log w] are the same quantity:
    # their means over many paths agree within 4 s.e. (the Monte Carlo KL of log_weights is the noisier one)
    m = build_model(spec(3), data_dim=D).double()
    x, k = data(4), 4000
    torch.manual_seed(0)
    out = m(x, k=k)
    elbo = out.log_likelihood - out.kl  # (k, B), per path (its KL is the mean over paths: compare means only)
    lw = m.log_weights(x, k)
    se = lw.std(0) / math.sqrt(k)
    assert ((elbo.mean(0) - lw.mean(0)).abs() < 4 * se + 4 * out.log_likelihood.std(0) / math.sqrt(k)).all()


def test_t1_is_a_plain_vae_with_the_same_parameters():
    m = build_model(spec(1), data_dim=D).double()
    vae = VAE(m.encoders[0], m.latents[0], m.decoders[0], m.likelihood)
    x = data()
    for k in (1, 3):
        torch.manual_seed(5)
        a = m(x, k=k)
        torch.manual_seed(5)
        b = vae(x, k=k)
        torch.testing.assert_close(a.log_likelihood, b.log_likelihood)
        torch.testing.assert_close(a.kl, b.kl)
    torch.manual_seed(5)
    lw1 = m.log_weights(x, 7)
    torch.manual_seed(5)
    torch.testing.assert_close(lw1, vae.log_weights(x, 7))
    # both objectives are the ELBO at T = 1
    for bound in ("per_step", "final"):
        torch.manual_seed(5)
        loss, met = build_objective({"type": "sequential", "bound": bound})(m, x, 0)
        torch.manual_seed(5)
        ref, _ = build_objective({"type": "elbo"})(vae, x, 0)
        torch.testing.assert_close(loss, ref)
        torch.testing.assert_close(met["elbo"], -ref)


def test_iwae_k_is_at_least_the_elbo_with_paired_standard_errors():
    # L_1 <= L_10 <= L_100 in expectation (Burda et al. 2015, Thm 1), per image with paired s.e. over repetitions
    torch.manual_seed(0)
    m = build_model(spec(2), data_dim=D).double()
    x = data(8)
    with torch.no_grad():
        reps = 200
        l1 = torch.stack([iwae_estimate(m, x, 1) for _ in range(reps)])
        l100 = torch.stack([iwae_estimate(m, x, 100) for _ in range(reps)])
    d = (l100 - l1).mean(1)  # (reps,) batch-mean paired differences
    assert d.mean() > 4 * d.std() / math.sqrt(reps), (d.mean(), d.std())
    # and the ELBO from forward is the k = 1 bound: same expectation
    with torch.no_grad():
        out = m(x, k=2000)
    elbo = (out.log_likelihood.mean(0) - out.kl).mean()
    assert abs(float(elbo - l1.mean())) < 4 * float(l1.mean(1).std() / math.sqrt(reps)) + 0.05


def test_per_step_objective_sums_the_steps_and_final_is_the_elbo():
    m = build_model(spec(3), data_dim=D).double()
    x = data()
    torch.manual_seed(2)
    loss, met = build_objective({"type": "sequential"})(m, x, 0)
    torch.manual_seed(2)
    _, ll, kl = m.step_terms(x, 1)
    torch.testing.assert_close(loss, -(ll - kl).sum(0).mean())
    torch.testing.assert_close(met["elbo"], (ll[-1] - kl.sum(0)).mean())
    torch.manual_seed(2)
    loss_f, met_f = build_objective({"type": "sequential", "bound": "final"})(m, x, 0)
    torch.testing.assert_close(loss_f, -met["elbo"])
    # gradients reach every step's parameters under the per-step loss
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in m.named_parameters() if "weight" in n)


def test_the_sequential_objective_refuses_a_model_without_steps():
    vae = build_model({**{k: v for k, v in spec(1).items() if k != "steps"}, "type": "vae"}, data_dim=D)
    with pytest.raises(ValueError, match="needs a model with refinement steps .* got VAE"):
        build_objective({"type": "sequential"})(vae, data().float(), 0)


def test_total_latent_dim_splits_evenly_over_the_steps():
    m = build_model({**spec(4), "latent": {"type": "gaussian"}, "total_latent_dim": 32}, data_dim=D)
    assert m.latent_dims == [8, 8, 8, 8] and m.latent_dim == 32


@pytest.mark.parametrize("kw,message", [
    ({"steps": 0}, "model.steps: expected an integer >= 1, got int 0"),
    ({"steps": 3, "total_latent_dim": 32}, "model.total_latent_dim: 32 is not divisible by model.steps=3"),
    ({"steps": 4, "total_latent_dim": 32}, "model.latent.dim: 2, but model.total_latent_dim=32 over model.steps=4 "
                                           "gives 8 per step"),
])
def test_clear_errors_name_the_key(kw, message):
    with pytest.raises(ConfigError) as e:
        build_model({**spec(), **kw}, data_dim=D)
    assert str(e.value).startswith(message), str(e.value)


def test_a_hand_built_model_refuses_no_steps_and_unequal_lists():
    with pytest.raises(ValueError, match="T >= 1 steps, got 0"):
        SequentialVAE([], [], [], build_model(spec(1), data_dim=D).likelihood)
    m = build_model(spec(2), data_dim=D)
    with pytest.raises(ValueError, match="one encoder, latent layer and decoder per step; got 2, 2, 1"):
        SequentialVAE(list(m.encoders), list(m.latents), list(m.decoders)[:1], m.likelihood)
    with pytest.raises(ValueError, match="expected a sequence of 2 step samples"):
        m.log_likelihood(data().float(), torch.zeros(6, 2))


def test_a_config_trains_it_with_the_per_step_loss_and_selects_by_it(tmp_path):
    from vaekit.train import fit, read_metrics

    cfg = from_dict({"data": {"name": "digits", "binarize": "dynamic"},
                     "model": {**spec(2), "total_latent_dim": 4, "latent": {"type": "gaussian"}},
                     "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3, "log_every": 10,
                               "objective": {"type": "sequential"}},
                     "seed": 0, "device": "cpu", "out_dir": str(tmp_path), "run_name": "seq"})
    res = fit(cfg, tensorboard=False)
    vals = read_metrics(res.run_dir, "val")
    assert res.state.select_by == "objective:sequential" and len(vals) == 2
    # per_step = (l_1 - KL_1) + (l_2 - KL_2) = ELBO + l_1, and l_1 = log p(x|eta_1) < 0 for a Bernoulli
    assert all(r["objective"] < r["elbo"] for r in vals)
    assert {"per_step", "log_likelihood_1", "elbo"} <= set(read_metrics(res.run_dir, "train")[0])
