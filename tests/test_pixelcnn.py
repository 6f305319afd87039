"""The PixelCNN likelihood: autoregressive in raster order, normalised, sampled from the distribution it scores."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from vaekit.likelihoods import LIKELIHOODS, PixelCNNBernoulliLikelihood
from vaekit.likelihoods.pixelcnn import MaskedConv2d
from vaekit.models import build_model


def _lik(d=9, channels=4, layers=2, seed=0, dilations=None, gated=False):
    torch.manual_seed(seed)
    lik = PixelCNNBernoulliLikelihood(d, channels=channels, layers=None if dilations else layers, dilations=dilations,
                                      gated=gated)
    with torch.no_grad():  # make the dependence on x_{<i} strong, so a leak or a miss would show
        lik.net.out.weight.mul_(30.0)
    return lik


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("dilations", [None, [1, 2, 3]])
def test_each_logit_depends_on_earlier_pixels_only_and_on_them(dilations, gated):
    lik = _lik(d=36, layers=3, dilations=dilations, gated=gated)
    x = torch.bernoulli(torch.full((1, 36), 0.5)).requires_grad_()
    h = torch.randn(1, 36)
    logits = lik(h).logits(x)
    for i in range(36):
        (g,) = torch.autograd.grad(logits[0, i], x, retain_graph=True)
        assert g[0, i:].abs().max() == 0, f"logit {i} sees pixel >= {i}"
        r, c = divmod(i, 6)
        # the left neighbour and the pixel above are always in the receptive field
        if c > 0:
            assert g[0, i - 1].abs() > 0, f"logit {i} ignores its left neighbour"
        if r > 0:
            assert g[0, i - 6].abs() > 0, f"logit {i} ignores the pixel above"


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("dilations", [None, [2, 1]])
def test_probabilities_of_every_binary_image_sum_to_one(dilations, gated):
    lik = _lik(d=9, dilations=dilations, gated=gated)
    h = torch.randn(2, 9)
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9)))  # (512, 9)
    with torch.no_grad():
        lp = lik.log_prob(h.unsqueeze(1), xs)  # (2, 512)
    total = torch.logsumexp(lp.double(), dim=-1)
    assert torch.allclose(total, torch.zeros(2, dtype=torch.float64), atol=1e-5), total


@pytest.mark.parametrize("gated", [False, True])
def test_ancestral_samples_follow_the_scored_distribution(gated):
    lik = _lik(d=4, channels=3, layers=1, gated=gated)
    h = torch.randn(4)
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    with torch.no_grad():
        p = lik.log_prob(h, xs).exp()
    n = 20000
    torch.manual_seed(1)
    s = lik(h).sample((n,))
    idx = (s * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(-1).long()
    counts = torch.bincount(idx, minlength=16).double()
    expected = p.double() * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 37.7, chi2  # chi-square with 15 d.o.f., p = 0.001


def _unseen_earlier_pixels(lik, d):
    x = torch.bernoulli(torch.full((1, d), 0.5)).requires_grad_()
    logits = lik(torch.randn(1, d)).logits(x)
    unseen = 0
    for i in range(d):
        (g,) = torch.autograd.grad(logits[0, i], x, retain_graph=True)
        unseen += int((g[0, :i] == 0).sum())
    return unseen


def test_the_gated_network_has_no_blind_spot_and_the_plain_stack_has_one():
    # 8x8 image, 7 layers of dilation 1: both reach 8 rows up, so every earlier pixel is within reach;
    # the plain masked stack still misses the cone up and to the right (van den Oord et al. 2016b, Fig. 1)
    assert _unseen_earlier_pixels(_lik(d=64, layers=7, gated=True), 64) == 0
    assert _unseen_earlier_pixels(_lik(d=64, layers=7, gated=False), 64) > 100


def test_the_pointwise_condition_equals_the_convolution():
    from vaekit.likelihoods.pixelcnn import _pointwise_maps
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 12, 1)
    h = torch.randn(3, 1, 5, 4)
    got = _pointwise_maps(conv, h, [4, 8])
    ref = conv(h).split([4, 8], dim=1)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, ref))


def test_scores_broadcast_over_latent_samples():
    lik = _lik(d=16)
    x = torch.bernoulli(torch.full((3, 16), 0.5))
    h = torch.randn(5, 3, 16)
    lp = lik.log_prob(h, x)
    assert lp.shape == (5, 3)
    assert torch.allclose(lp[2], lik.log_prob(h[2], x), atol=1e-5)


def test_masks_and_shapes_are_checked():
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, 4, "A")
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")
    with pytest.raises(ValueError, match="not a square"):
        PixelCNNBernoulliLikelihood(10)
    with pytest.raises(ValueError, match="does not divide"):
        PixelCNNBernoulliLikelihood(10, height=3)
    with pytest.raises(ValueError, match="dilations"):
        PixelCNNBernoulliLikelihood(16, layers=2, dilations=[1, 2, 4])
    with pytest.raises(ValueError, match="dilation"):
        MaskedConv2d(1, 1, 3, "B", dilation=0)
    with pytest.raises(ValueError, match="dilations"):
        PixelCNNBernoulliLikelihood(16, dilations=[1, 0], gated=True)
    with pytest.raises(ValueError, match="gated"):
        PixelCNNBernoulliLikelihood(16, gated="yes")
    assert PixelCNNBernoulliLikelihood(10, height=2).shape_hw == (2, 5)


@pytest.mark.parametrize("gated", [False, True])
def test_a_vae_with_the_pixelcnn_decoder_from_a_config(gated):
    assert "pixelcnn_bernoulli" in LIKELIHOODS
    model = build_model({"type": "vae", "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 2},
                         "decoder": {"type": "mlp", "hidden": [8]},
                         "likelihood": {"type": "pixelcnn_bernoulli", "channels": 4, "layers": 1, "gated": gated}},
                        data_dim=16)
    x = torch.bernoulli(torch.full((3, 16), 0.5))
    lw = model.log_weights(x, 7)
    assert lw.shape == (7, 3) and torch.isfinite(lw).all()
    assert math.isfinite(float(lw.detach().mean()))
