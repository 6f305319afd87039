"""Issue 13: the conditional VAE, M2 and their data, checked against brute-force sums and quadrature.

Statistical checks use fixed seeds and 4-s.e. tolerances (failure rate about 6e-5 per compared value); the
independent references are a Python loop over classes (for the vectorised enumeration) and trapezoid
quadrature over a 1-D latent (for the marginal likelihoods the estimators target).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from vaekit.data import labelled_subset, make_mask, paired_batches
from vaekit.models import ConditionError, MaskedPredictor, build_masked_predictor, build_model
from vaekit.objectives.conditional import cvae_objective, gsnn_bound, m2_objective, paper_alpha
from vaekit.registry import ConfigError

D, K = 6, 3


def _net(hidden):
    return {"type": "mlp", "hidden": hidden, "activation": "tanh"}


def _m2(y_treatment="enumerate", dim=1):
    torch.manual_seed(0)
    return build_model({"type": "m2", "classifier": _net([8]), "encoder": _net([8]),
                        "latent": {"type": "gaussian", "dim": dim}, "decoder": _net([8]),
                        "likelihood": {"type": "bernoulli"}, "n_classes": K, "y_treatment": y_treatment},
                       data_dim=D).double()


def _cvae(condition, prior_net=True, dim=1):
    torch.manual_seed(0)
    return build_model({"type": "cvae", "encoder": _net([8]), "latent": {"type": "gaussian", "dim": dim},
                        "decoder": _net([8]), "likelihood": {"type": "bernoulli"}, "condition": condition,
                        "prior_net": _net([8]) if prior_net else None}, data_dim=D).double()


def _x(b=4, seed=1):
    return (torch.rand(b, D, generator=torch.Generator().manual_seed(seed)) < 0.5).double()


GRID = torch.linspace(-10, 10, 4001, dtype=torch.float64)


def _integrate(log_f):
    """log of the trapezoid integral over GRID of exp(log_f), log_f (G, B)."""
    dz = GRID[1] - GRID[0]
    w = torch.full_like(GRID, float(dz))
    w[0] = w[-1] = dz / 2
    return torch.logsumexp(log_f + w.log().unsqueeze(1), 0)


def _normal_logpdf(z, loc=0.0, scale=1.0):
    return -0.5 * ((z - loc) / scale) ** 2 - torch.log(torch.as_tensor(scale, dtype=torch.float64)) - 0.5 * math.log(2 * math.pi)


# ----- M2: exact enumeration --------------------------------------------------------------------------------
@torch.no_grad()
def test_m2_log_weights_sum_classes_exactly_against_quadrature():
    """E[w] with y summed out by enumeration equals p(x) = sum_y p(y) int p(z) p(x|y,z) dz (quadrature, brute-force
    loop over classes). Replacing the sum by q(y|x)-weighting or one class would miss by far more than 4 s.e."""
    model, x = _m2(), _x()
    z = GRID.view(-1, 1, 1).expand(-1, x.shape[0], 1)
    per_class = [math.log(1 / K) + _integrate(_normal_logpdf(GRID).unsqueeze(1)
                                              + model.decoder_log_prob(x, z, y)) for y in range(K)]
    log_px = torch.logsumexp(torch.stack(per_class), 0)
    torch.manual_seed(2)
    n = 40_000
    ratio = (model.log_weights(x, n) - log_px).exp()  # w / p(x): mean 1 when unbiased
    mean, se = ratio.mean(0), ratio.std(0) / math.sqrt(n)
    assert (se < 0.1).all(), se  # power: one class alone, or q(y|x)-weighting, moves the mean by far more
    assert ((mean - 1).abs() < 4 * se).all(), (mean, se)


@torch.no_grad()
def test_m2_unlabelled_elbo_is_the_enumerated_sum():
    """forward(x) without labels gives U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)), split as the joint latent (y, z)
    splits it: the KL part is KL(q(y|x)||p(y)) + sum_y q(y|x) KL_y (a true KL, >= 0), equal to the loop over classes
    exactly, and the likelihood part E_q log p(x|y,z) matches quadrature within 4 s.e."""
    model, x = _m2(), _x()
    probs = model.classifier_logits(x).softmax(-1)
    torch.manual_seed(3)
    n = 20_000
    out = model(x, k=n)
    kl_loop = sum(probs[:, y] * kl_divergence(model.posterior(x, label=y), model.prior()) for y in range(K))
    entropy = -(probs * probs.log()).sum(-1)
    torch.testing.assert_close(out.kl, kl_loop - entropy + math.log(K), rtol=1e-10, atol=1e-10)
    assert (out.kl >= 0).all()
    z = GRID.view(-1, 1, 1).expand(-1, x.shape[0], 1)
    expected = 0.0
    for y in range(K):
        q = model.posterior(x, label=y).base_dist
        log_q = _normal_logpdf(GRID.view(-1, 1), q.loc.view(1, -1), q.scale.view(1, -1))
        e_ll = (log_q.exp() * model.decoder_log_prob(x, z, y)).sum(0) * float(GRID[1] - GRID[0])
        expected = expected + probs[:, y] * e_ll
    got = out.log_likelihood
    assert ((got.mean(0) - expected).abs() < 4 * got.std(0) / math.sqrt(n)).all(), (got.mean(0), expected)


def test_m2_relaxed_treatment_reaches_the_classifier_through_the_likelihood():
    """The Gumbel-softmax y is reparameterised: the reconstruction term alone has a gradient on q(y|x)."""
    model, x = _m2("relaxed"), _x()
    torch.manual_seed(4)
    out = model(x, k=2)
    out.log_likelihood.sum().backward()
    g = torch.cat([p.grad.flatten() for p in model.classifier.parameters()])
    assert g.abs().sum() > 0
    assert out.kl.shape == (x.shape[0],) and torch.isfinite(out.kl).all()


def test_m2_objective_weights_the_classifier_by_alpha():
    """d loss / d alpha is the labelled batch's classifier NLL (the alpha term enters linearly)."""
    model, x = _m2(), _x()
    y = torch.tensor([0, 1, 2, 0])
    torch.manual_seed(5)
    l0, m = m2_objective(model, x, x, y, alpha=0.0)
    torch.manual_seed(5)
    l1, _ = m2_objective(model, x, x, y, alpha=2.0)
    torch.testing.assert_close(l1 - l0, 2.0 * m["classifier_nll"])
    assert paper_alpha(60_000, 100) == pytest.approx(60.0) and paper_alpha(60_000, 3000) == pytest.approx(2.0)


def test_m2_classifies_and_samples_labels():
    model, x = _m2(), _x()
    assert model.classify(x).shape == (4,) and model.classify(x).dtype == torch.long
    assert model.sample(5, label=2).shape == (5, D)


# ----- the structured-output CVAE -----------------------------------------------------------------------------
@torch.no_grad()
def test_masked_cvae_scores_only_hidden_pixels():
    model, x = _cvae({"type": "mask"}), _x()
    mask = torch.arange(D) < 2
    z = torch.randn(3, 4, 1, dtype=torch.float64)
    base = model.log_likelihood(x, z, mask=mask, observed=x)
    x2 = x.clone()
    x2[:, 0] = 1 - x2[:, 0]  # an observed pixel: the condition still says what was observed
    torch.testing.assert_close(model.log_likelihood(x2, z, mask=mask, observed=x), base)
    x2 = x.clone()
    x2[:, -1] = 1 - x2[:, -1]  # a hidden pixel: scored
    assert (model.log_likelihood(x2, z, mask=mask, observed=x) != base).all()
    s = model.sample(4, mask=mask, observed=x)
    torch.testing.assert_close(s[:, mask], x[:, mask])  # a completion keeps what was observed


@torch.no_grad()
def test_masked_cvae_iwae_targets_the_conditional_likelihood():
    """E[w] of the CVAE's log-weights equals p(y | x_obs) = int p(z|x_obs) p(y|z, x_obs) dz (quadrature); the
    GSNN bound (Sohn et al. 2015, Eq. 6) with many samples approaches the same value from below."""
    model, x = _cvae({"type": "mask"}), _x()
    mask = torch.arange(D) < 2
    cond = {"mask": mask, "observed": x}
    p = model.prior(**cond).base_dist
    z = GRID.view(-1, 1, 1).expand(-1, x.shape[0], 1)
    log_ref = _integrate(_normal_logpdf(GRID.view(-1, 1), p.loc.view(1, -1), p.scale.view(1, -1))
                         + model.log_likelihood(x, z, **cond))
    torch.manual_seed(6)
    n = 40_000
    ratio = (model.log_weights(x, n, **cond) - log_ref).exp()
    mean, se = ratio.mean(0), ratio.std(0) / math.sqrt(n)
    assert ((mean - 1).abs() < 4 * se).all(), (mean, se)
    gsnn = gsnn_bound(model, x, 40_000, **cond)
    assert (gsnn <= log_ref + 1e-3).all() and (gsnn > log_ref - 0.05).all(), (gsnn, log_ref)


def _cvae_mixture_prior(components=3):
    torch.manual_seed(0)
    return build_model({"type": "cvae", "encoder": _net([8]), "latent": {"type": "gaussian", "dim": 1},
                        "decoder": _net([8]), "likelihood": {"type": "bernoulli"}, "condition": {"type": "mask"},
                        "prior_net": _net([8]), "prior_latent": {"type": "mixture", "dim": 1,
                                                                  "components": components}}, data_dim=D).double()


@torch.no_grad()
def test_mixture_prior_cvae_targets_its_conditional_likelihood_and_kl():
    """A Gaussian posterior under a mixture p(z|x_obs) (``model.prior_latent``): E[w] of the log-weights equals
    p(y | x_obs) = int p(z|x_obs) p(y|z, x_obs) dz, and the forward pass's Monte Carlo KL averages to
    KL(q || p) = int q log(q/p) dz, both by quadrature with the mixture density written out from its parameters."""
    model, x = _cvae_mixture_prior(), _x()
    mask = torch.arange(D) < 2
    cond = {"mask": mask, "observed": x}
    p, q = model.prior(**cond), model.posterior(x, **cond)
    assert type(p).__name__ == "MixtureOfDiagonalNormals" and p.batch_shape == (4,)
    g = GRID.view(-1, 1)
    log_p = torch.logsumexp(torch.log_softmax(p.logits, -1)
                            + _normal_logpdf(g.unsqueeze(-1), p.loc[..., 0], p.scale[..., 0]), -1)  # (G, B)
    z = GRID.view(-1, 1, 1).expand(-1, x.shape[0], 1)
    log_ref = _integrate(log_p + model.log_likelihood(x, z, **cond))
    torch.manual_seed(6)
    n = 40_000
    ratio = (model.log_weights(x, n, **cond) - log_ref).exp()
    mean, se = ratio.mean(0), ratio.std(0) / math.sqrt(n)
    assert ((mean - 1).abs() < 4 * se).all(), (mean, se)
    log_q = _normal_logpdf(g, q.base_dist.loc.view(1, -1), q.base_dist.scale.view(1, -1))
    kl_ref = (log_q.exp() * (log_q - log_p)).sum(0) * (GRID[1] - GRID[0])
    kl = model(x, k=3, **cond).kl
    kls = torch.stack([model(x, **cond).kl for _ in range(20_000)])
    assert kl.shape == (4,)
    mean, se = kls.mean(0), kls.std(0) / math.sqrt(kls.shape[0])
    assert ((mean - kl_ref).abs() < 4 * se).all(), (mean, se, kl_ref)
    assert (kl_ref > 0.05).all()  # a test that can fail: the prior is not the posterior


def test_prior_latent_is_refused_where_it_cannot_be_a_prior():
    base = {"type": "cvae", "encoder": _net([8]), "latent": {"type": "gaussian", "dim": 2}, "decoder": _net([8]),
            "likelihood": {"type": "bernoulli"}, "condition": {"type": "mask"}, "prior_net": _net([8])}
    with pytest.raises(ConfigError, match=r"model\.prior_latent: .*euclidean of dimension 3.*dimension 2"):
        build_model({**base, "prior_latent": {"type": "mixture", "dim": 3}}, data_dim=D)
    with pytest.raises(ConfigError, match=r"model\.prior_latent: a 'vmf' prior lives on sphere"):
        build_model({**base, "prior_latent": {"type": "vmf", "dim": 2}}, data_dim=D)
    with pytest.raises(ConfigError, match=r"model\.prior_latent: a prior family needs a prior network"):
        build_model({**base, "prior_net": None, "prior_latent": {"type": "mixture", "dim": 2}}, data_dim=D)
    with pytest.raises(ConfigError, match=r"model\.prior_latent"):
        build_model({**base, "prior_latent": {"type": "mixture", "dim": 2, "components": "five"}}, data_dim=D)


def test_hybrid_objective_mixes_cvae_and_gsnn():
    model, x = _cvae({"type": "mask"}), _x()
    cond = {"mask": torch.arange(D) < 2, "observed": x}
    torch.manual_seed(7)
    loss1, m1 = cvae_objective(model, x, hybrid_alpha=1.0, **cond)
    torch.testing.assert_close(loss1, -m1["elbo"])
    with pytest.raises(ValueError, match="hybrid_alpha"):
        cvae_objective(model, x, hybrid_alpha=1.5, **cond)


def test_baseline_predictor_is_exact_on_hidden_pixels():
    torch.manual_seed(0)
    base = build_masked_predictor(D, _net([8]), {"type": "bernoulli"}).double()
    assert isinstance(base, MaskedPredictor)
    x, mask = _x(), torch.arange(D) < 2
    ll = base.conditional_log_likelihood(x, mask)
    probs = base.predict(x, mask)
    ref = (x * probs.log() + (1 - x) * (1 - probs).log())[:, ~mask].sum(-1)
    torch.testing.assert_close(ll, ref)


# ----- errors name the problem --------------------------------------------------------------------------------
def test_conditions_refuse_what_is_wrong():
    label = _cvae({"type": "label", "n_classes": K})
    x = _x()
    with pytest.raises(ConditionError, match=r"label out of range.*classes 0\.\.2"):
        label.log_weights(x, 2, label=torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ConditionError, match="needs the condition 'label'"):
        label.posterior(x)
    with pytest.raises(ConditionError, match="not \\['mask'\\]"):
        label.posterior(x, label=0, mask=torch.ones(D, dtype=torch.bool))
    with pytest.raises(ConditionError, match=r"sample\(n, \.\.\.\) needs the condition \['label'\]"):
        label.sample(3)
    with pytest.raises(ConditionError, match="integer class indices"):
        label.posterior(x, label=torch.zeros(4))
    masked = _cvae({"type": "mask"})
    with pytest.raises(ConditionError, match=r"mask must have shape \(6,\) or \(4, 6\), got \(5,\)"):
        masked.log_weights(x, 2, mask=torch.ones(5, dtype=torch.bool), observed=x)
    with pytest.raises(ConditionError, match="mask must be a bool tensor"):
        masked.posterior(x, mask=torch.ones(D), observed=x)
    with pytest.raises(ConditionError, match="needs the condition 'observed'"):
        masked.posterior(x, mask=torch.ones(D, dtype=torch.bool))
    with pytest.raises(ConditionError, match="sample\\(n, mask=m, observed=x\\)"):
        masked.sample(2)
    tensor = _cvae({"type": "tensor", "dim": 2}, prior_net=False)
    with pytest.raises(ConditionError, match=r"c must have shape \(4, 2\), got \(4, 3\)"):
        tensor.posterior(x, c=torch.zeros(4, 3, dtype=torch.float64))
    m2 = _m2()
    with pytest.raises(ConditionError, match="needs label=.*sum y out exactly"):
        m2.posterior(x)
    with pytest.raises(ConditionError, match="label out of range"):
        m2.log_weights(x, 2, label=torch.tensor([0, 1, 2, 7]))


# ----- data ------------------------------------------------------------------------------------------------
def test_labelled_subset_is_balanced_seeded_and_disjoint():
    y = torch.arange(1000) % 10
    lab, unl = labelled_subset(y, 100, seed=0)
    assert torch.bincount(y[lab], minlength=10).tolist() == [10] * 10
    assert len(lab) + len(unl) == 1000 and not set(lab.tolist()) & set(unl.tolist())
    assert torch.equal(lab, labelled_subset(y, 100, seed=0)[0])
    assert not torch.equal(lab, labelled_subset(y, 100, seed=1)[0])
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        labelled_subset(y, 105)


def test_stratified_subset_keeps_each_class_share_and_is_seeded():
    """TREC's coarse classes (86, 1162, 1250, 1223, 835, 896 questions): 545 labels (10 %) keep every class's share
    to within one example, which a balanced draw cannot (90 ABBR questions asked for 540 labels, 86 exist)."""
    from vaekit.data import stratified_subset

    counts = [86, 1162, 1250, 1223, 835, 896]
    y = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])[torch.randperm(sum(counts),
                                                                              generator=torch.Generator().manual_seed(3))]
    lab, unl = stratified_subset(y, 545, seed=0)
    assert len(lab) == 545 and len(lab) + len(unl) == len(y)
    assert torch.equal(torch.cat([lab, unl]).sort().values, torch.arange(len(y)))
    got = torch.bincount(y[lab], minlength=6)
    want = torch.tensor(counts, dtype=torch.float64) * 545 / sum(counts)
    assert ((got - want).abs() < 1).all(), (got, want)
    assert torch.equal(lab, stratified_subset(y, 545, seed=0)[0])
    assert not torch.equal(lab, stratified_subset(y, 545, seed=1)[0])
    with pytest.raises(ValueError, match="fewer than the 90 asked"):
        labelled_subset(y, 540)
    with pytest.raises(ValueError, match=r"n labels must lie in \[6, 5446\]"):
        stratified_subset(y, 5)
    with pytest.raises(ValueError, match="class 1 has a single example"):
        stratified_subset(torch.tensor([0, 0, 0, 1, 2, 2]), 3)


def test_masks_partition_the_image():
    quads = torch.stack([make_mask(f"quadrant{i}") for i in range(4)])
    assert quads.sum(1).tolist() == [196] * 4 and (quads.sum(0) == 1).all()
    assert torch.equal(make_mask("three_quadrants2"), ~quads[2])
    assert make_mask("left").view(28, 28)[:, :14].all() and not make_mask("left").view(28, 28)[:, 14:].any()
    assert make_mask("quadrant0").view(28, 28)[0, 0] and make_mask("quadrant3").view(28, 28)[27, 27]
    with pytest.raises(ValueError, match="unknown mask 'corner'; choose one of left"):
        make_mask("corner")


def test_paired_batches_use_every_labelled_example_equally():
    g = torch.Generator().manual_seed(0)
    pairs = list(paired_batches(1000, 30, 64, g))
    u = torch.cat([p[0] for p in pairs])
    lab = torch.cat([p[1] for p in pairs])
    assert torch.equal(u.sort().values, torch.arange(1000))
    assert all(len(a) == len(b) for a, b in pairs)
    counts = torch.bincount(lab, minlength=30)
    assert counts.max() - counts.min() <= 1


@torch.no_grad()
def test_vae_imputation_estimate_converges_to_quadrature():
    """The unconditional VAE's estimate of log p(y | x_obs) (two IWAE terms) against quadrature of
    int p(z) p(x_obs|z) p(y|z) dz / int p(z) p(x_obs|z) dz; 8 independent estimates give the s.e. (k = 20,000
    makes the O(1/k) bias of the two IWAE terms far smaller than it; 1e-4 covers the quadrature)."""
    from vaekit.pipeline.conditional import imputation_log_likelihood

    torch.manual_seed(0)
    vae = build_model({"type": "vae", "encoder": _net([8]), "latent": {"type": "gaussian", "dim": 1},
                       "decoder": _net([8]), "likelihood": {"type": "bernoulli"}}, data_dim=D).double()
    x, mask = _x(), torch.arange(D) < 3
    z = GRID.view(-1, 1, 1)
    per_pixel = vae.decode(z.expand(-1, x.shape[0], 1)).base_dist.log_prob(x)  # (G, B, D)
    log_obs = per_pixel[..., mask].sum(-1) + _normal_logpdf(GRID).unsqueeze(1)
    ref = _integrate(log_obs + per_pixel[..., ~mask].sum(-1)) - _integrate(log_obs)
    torch.manual_seed(8)
    est = torch.stack([imputation_log_likelihood(vae, x, mask, 20_000, gibbs_steps=5) for _ in range(8)])
    mean, se = est.mean(0), est.std(0) / math.sqrt(8)
    assert ((mean - ref).abs() < 4 * se + 1e-4).all(), (mean, ref, se)


def test_m1m2_standardised_active_features():
    """M1's inactive code dimensions (variance <= 0.01) are dropped and the rest put on unit scale; the M1M2
    wrapper applies the same map; missing or inconsistent statistics are refused."""
    from vaekit.models.m2 import M1M2, standardised_active_features

    g = torch.Generator().manual_seed(0)
    codes = torch.randn(4000, 5, generator=g) * torch.tensor([2.0, 0.03, 1.0, 0.05, 0.5]) + torch.arange(5.0)
    f = standardised_active_features(codes)
    assert f["active"] == [0, 2, 4]
    z = (codes[:, f["active"]] - torch.tensor(f["shift"])) / torch.tensor(f["scale"])
    assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-5) and torch.allclose(z.std(0), torch.ones(3), atol=1e-5)

    class Code(torch.nn.Module):
        def encode(self, x):
            return x

    wrapped = M1M2(Code(), torch.nn.Identity(), **f)
    assert torch.allclose(wrapped.features(codes[:10]), z[:10])
    with pytest.raises(ValueError, match="no dimension"):
        standardised_active_features(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="together"):
        M1M2(Code(), torch.nn.Identity(), active=[0])
    with pytest.raises(ValueError, match="> 0"):
        M1M2(Code(), torch.nn.Identity(), active=[0], shift=[0.0], scale=[0.0])
