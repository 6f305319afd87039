"""Variance layers (Neklyudov et al. 2018; issue 17): the local reparameterisation has the law of sampling the
zero-mean weights directly (first four moments of every output within standard errors), the mean pass ignores the
input, the log-uniform KL approximation, and the config path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vaekit.models import build_model
from vaekit.nets import ConvVariance, LinearVariance, log_uniform_kl, set_noise
from vaekit.registry import ConfigError

S = 20_000


def _moments_agree(a: torch.Tensor, b: torch.Tensor, z: float = 5.0) -> None:
    """a, b: (S, n) independent draws of n outputs; mean, variance and the 4th moment agree within z s.e."""
    for f in (lambda t: t, lambda t: t ** 2, lambda t: t ** 4):
        fa, fb = f(a), f(b)
        diff = fa.mean(0) - fb.mean(0)
        se = torch.sqrt(fa.var(0) / a.shape[0] + fb.var(0) / b.shape[0])
        assert (diff.abs() < z * se).all(), (diff / se)


def test_linear_local_reparameterisation_matches_direct_weight_sampling():
    torch.manual_seed(0)
    layer = LinearVariance(5, 4).double()
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.0, 0.5, -1.0, 2.0]))
    x = torch.randn(5, dtype=torch.float64)
    lrt = layer(x.expand(S, 5)).detach()
    sigma = layer.log_sigma2.detach().exp().sqrt()
    w = torch.randn(S, 4, 5, dtype=torch.float64) * sigma  # W ~ N(0, sigma^2), one draw per row
    direct = torch.einsum("soi,i->so", w, x) + layer.bias.detach()
    _moments_agree(lrt, direct)
    # and the exact variance sum_i x_i^2 sigma_ij^2, against the direct draws
    exact = (x ** 2 * sigma ** 2).sum(1)
    torch.testing.assert_close(direct.var(0), exact, rtol=0.05, atol=0)
    # the test can fail: a layer whose noise ignored x^2 (sqrt(sum sigma^2)) is caught
    wrong = layer.bias.detach() + torch.randn(S, 4, dtype=torch.float64) * (sigma ** 2).sum(1).sqrt()
    with pytest.raises(AssertionError):
        _moments_agree(wrong, direct)


def test_conv_local_reparameterisation_matches_direct_weight_sampling():
    torch.manual_seed(1)
    layer = ConvVariance(2, 3, kernel_size=3, padding=1).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    n = 10_000
    lrt = layer(x.expand(n, 2, 4, 4)).detach().flatten(1)  # (n, 3*4*4)
    sigma = layer.log_sigma2.detach().exp().sqrt()
    w = torch.randn(n, *sigma.shape, dtype=torch.float64) * sigma  # one kernel draw per example, as a grouped conv
    direct = F.conv2d(x.repeat(1, n, 1, 1), w.flatten(0, 1), layer.bias.detach().repeat(n), padding=1, groups=n)
    direct = direct.view(n, -1)
    _moments_agree(lrt, direct)


def test_mean_pass_ignores_the_input():
    torch.manual_seed(2)
    net = torch.nn.Sequential(LinearVariance(6, 5), torch.nn.ReLU(), LinearVariance(5, 3))
    x = torch.randn(10, 6)
    set_noise(net, False)
    out = net(x)
    assert torch.equal(out, out[:1].expand_as(out))  # the same output for every input
    set_noise(net, True)
    assert not torch.allclose(net(x), net(x))  # sampling: two passes differ


def test_log_uniform_kl_approximation():
    # the fit's limits: ~0 for alpha -> inf (a variance layer), 0.5 log(1/alpha) + k1 for alpha -> 0
    assert float(log_uniform_kl(torch.tensor(math.inf))) == 0.0
    la = torch.tensor(-20.0)
    assert float(log_uniform_kl(la)) == pytest.approx(0.63576 - 0.5 * float(la), rel=1e-6)
    assert LinearVariance(3, 2).kl() == 0  # the variational-dropout view: no KL term to train
    la = torch.linspace(-5, 5, 11)
    assert (log_uniform_kl(la)[1:] < log_uniform_kl(la)[:-1]).all()  # decreasing in alpha


def test_variance_mlp_from_config():
    spec = {"type": "vae", "encoder": {"type": "variance_mlp", "hidden": [8, 8], "variance_layers": [1]},
            "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [8]},
            "likelihood": {"type": "bernoulli"}}
    model = build_model(spec, data_dim=5)
    assert isinstance(model.encoder[2], LinearVariance)
    assert model.log_weights(torch.rand(3, 5), 2).shape == (2, 3)
    spec["encoder"]["variance_layers"] = [2]
    with pytest.raises(ConfigError, match=r"model\.encoder: variance_layers \[2\] name layers past the last one"):
        build_model(spec, data_dim=5)


def test_expected_calibration_error():
    """Labels drawn from the predicted probabilities: ECE ~ 0 (within sampling noise); the same labels scored with
    sharpened probabilities: ECE clearly > 0."""
    from vaekit.reproduce.variance import expected_calibration_error

    g = torch.Generator().manual_seed(7)
    n = 20_000
    probs = torch.softmax(torch.randn(n, 10, generator=g, dtype=torch.float64) * 2, 1)
    y = torch.multinomial(probs, 1, generator=g).squeeze(1)
    assert expected_calibration_error(probs, y) < 0.02
    sharp = torch.softmax(probs.log() * 3, 1)
    assert expected_calibration_error(sharp, y) > 0.1


def test_ensemble_loss_is_the_log_of_the_averaged_probability():
    """reproduce.variance.ensemble_nll = -log mean_s softmax_y over S head passes (same noise, by seeding)."""
    from vaekit.reproduce.variance import LeNet5, ensemble_nll

    torch.manual_seed(0)
    net = LeNet5(variance=True).eval()
    x, y = torch.rand(6, 784), torch.tensor([0, 1, 2, 3, 4, 5])
    torch.manual_seed(1)
    got = ensemble_nll(net, x, y, 4)
    torch.manual_seed(1)
    feats = net.features(x.view(-1, 1, 28, 28))
    p = torch.stack([torch.softmax(net.head(feats), 1) for _ in range(4)]).mean(0)
    assert float(got) == pytest.approx(float(-p[torch.arange(6), y].log().mean()), rel=1e-5)
    with pytest.raises(ValueError, match="samples"):
        ensemble_nll(net, x, y, 0)


def test_one_sample_cross_entropy_through_a_final_variance_layer_is_never_below_chance():
    """Why the variance LeNet needs --train-ens > 1: a final variance layer with zero bias gives logits symmetric
    about 0, so by Jensen E_eps[CE] >= log K for any input and any sigma (checked by Monte Carlo, 4 s.e.), while the
    ensemble's -log mean softmax can go well below log K."""
    torch.manual_seed(0)
    layer = LinearVariance(8, 5, bias=False)
    with torch.no_grad():
        layer.log_sigma2.fill_(-6.0)
        layer.log_sigma2[0] = 4.0  # class 0 gets a large logit variance
    x = torch.randn(1, 8).expand(20000, 8)
    ce = torch.nn.functional.cross_entropy(layer(x), torch.zeros(20000, dtype=torch.int64), reduction="none")
    assert float(ce.mean()) >= math.log(5) - 4 * float(ce.std()) / math.sqrt(20000)
    ens = -torch.softmax(layer(x), 1)[:, 0].mean().log()
    assert float(ens) < math.log(5) - 0.5


def test_sigma_parameterisation_has_the_same_law():
    """parameterization='sigma' (the authors'): sigma2() = sigma^2, and the output given x has mean bias and
    variance (x^2) . sigma^2 (Monte Carlo, 4 s.e.); a bad name is refused."""
    torch.manual_seed(0)
    layer = LinearVariance(6, 3, parameterization="sigma")
    assert torch.allclose(layer.sigma2(), layer.sigma.detach() ** 2)
    x = torch.randn(1, 6)
    with torch.no_grad():
        out = layer(x.expand(40000, 6))
    var = (x ** 2) @ layer.sigma2().detach().T
    assert torch.all((out.mean(0)).abs() < 4 * var.sqrt()[0] / 200)
    assert torch.all((out.var(0) - var[0]).abs() < 4 * var[0] * math.sqrt(2 / 40000))
    with pytest.raises(ValueError, match="parameterization"):
        LinearVariance(2, 2, parameterization="std")


def test_batchnorm_modes_switch_the_statistics_and_keep_the_draws(tmp_path, monkeypatch):
    """--bn-modes: with BatchNorm running averages at their initial values (0, 1), scoring with each batch's
    statistics gives other probabilities; the same seed gives the same draws (a rerun is identical)."""
    from types import SimpleNamespace

    import vaekit.reproduce.variance as rv
    from vaekit.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    x = torch.rand(40, 784) * 3
    fake = SimpleNamespace(test=SimpleNamespace(x=x, y=torch.arange(40) % 10))
    monkeypatch.setattr(rv, "load_dataset", lambda name: fake)
    model = rv.LeNet5(variance=True)
    with torch.no_grad():
        model.head[-1].sigma.mul_(20)  # a decisive head, so that accuracies move with the statistics
    save_checkpoint(tmp_path / "variance_ens10" / "checkpoints", "last", model, torch.optim.Adam(model.parameters()),
                    epoch=1, step=1, extra={"log": [], "epochs": 1, "train_ens": 10})
    a = rv.batchnorm_modes(tmp_path, seeds=(0, 1), samples=4, batch=20)
    b = rv.batchnorm_modes(tmp_path, seeds=(0, 1), samples=4, batch=20)
    assert a == b
    assert set(a) >= {"running", "batch_all", "batch_head"} and len(a["running"]["ensemble"]) == 2
    assert all(0 <= v <= 1 for m in ("running", "batch_all", "batch_head") for v in a[m]["ensemble"] + a[m]["single"])
    assert a["running"] != a["batch_all"]
    # each mode starts from the checkpoint's running averages, whatever ran before it
    alone = rv.batchnorm_modes(tmp_path, seeds=(0, 1), samples=4, batch=20, modes=("batch_head",))
    assert alone["batch_head"] == a["batch_head"]


def test_lenet_without_biases_and_the_runner_up_diagnostic(tmp_path, monkeypatch):
    """--no-bias: the dense layers have no biases (the authors' layout), so the mean pass of the variance LeNet gives
    all-zero logits; its runs get their own folder and a resume with the other layout is refused. runner_up: the
    wrong class of largest probability per image, by hand on three images."""
    import vaekit.reproduce.variance as rv
    from vaekit.train.checkpoint import save_checkpoint

    net = rv.LeNet5(variance=True, bias=False).eval()
    assert all(m.bias is None for m in net.head if isinstance(m, LinearVariance))
    assert all(m.bias is None for m in rv.LeNet5(variance=False, bias=False).head if isinstance(m, torch.nn.Linear))
    set_noise(net, False)
    assert torch.equal(net(torch.rand(3, 784)), torch.zeros(3, 10))
    assert rv.run_name("variance", 10, bias=False) == "variance_ens10_nobias"
    assert rv.run_name("deterministic", 10) == "deterministic"

    # a checkpoint saved with biases cannot be resumed as the bias-free run
    model = rv.LeNet5(variance=True, bias=False)
    save_checkpoint(tmp_path / "variance_ens10_nobias" / "checkpoints", "last", model,
                    torch.optim.Adam(model.parameters()), epoch=1, step=1,
                    extra={"log": [], "epochs": 1, "train_ens": 10, "bias": True})
    fake = type("D", (), {"train": type("S", (), {"x": torch.rand(4, 784), "y": torch.arange(4)})})
    monkeypatch.setattr(rv, "load_dataset", lambda name: fake)
    with pytest.raises(ValueError, match="bias=True, not False"):
        rv.train("variance", tmp_path, 2, train_ens=10, bias=False)

    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6]])
    r = rv.runner_up(probs, torch.tensor([0, 1, 0]))
    # runner-ups: class 1 (0.3), class 2 (0.4), class 2 (0.6: the true class 0 is not the largest)
    assert r["class_shares"] == [0.0, pytest.approx(1 / 3, abs=1e-4), pytest.approx(2 / 3, abs=1e-4)]
    assert r["top_class"] == 2 and r["top_share"] == pytest.approx(2 / 3)
    assert r["mean_p_true"] == pytest.approx((0.5 + 0.5 + 0.2) / 3)
    assert r["mean_p_runner_up"] == pytest.approx((0.3 + 0.4 + 0.6) / 3)


def test_the_dashboard_budget_names_the_deterministic_nets_epochs_when_they_differ():
    """A 200-epoch variance network compared with a 100-epoch deterministic one says so in its budget."""
    from vaekit.reproduce.variance import dashboard

    res = {"variance": {"epochs": 200, "train_seconds": 10.0, "ensemble_accuracy": 0.9, "mean_pass_accuracy": 0.1,
                        "single_sample_accuracy": 0.45, "single_sample_accuracy_sd": 0.01, "ensemble_ece": 0.5},
           "deterministic": {"epochs": 100, "train_seconds": 5.0, "ece": 0.01}, "n_test": 10000, "train_ens": 10,
           "bias": False, "ece_difference": 0.49, "ece_difference_se": 0.01}
    assert "200 (the deterministic net 100) epochs" in dashboard(res)["budget"]
    res["deterministic"]["epochs"] = 200
    assert ", 200 epochs (paper: 200)" in dashboard(res)["budget"]
