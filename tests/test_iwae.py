"""IWAE objective and bound (Burda et al. 2015, arXiv:1509.00519) and DReG (Tucker et al. 2018, arXiv:1810.04152)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from vaekit.evaluation import elbo_estimate, iwae_estimate
from vaekit.models import build_model
from vaekit.objectives import OBJECTIVES, build_objective
from vaekit.objectives.iwae import DReGObjective, IWAEObjective
from vaekit.registry import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread, restored after each test

# A linear encoder: a deliberately crude q, so the gaps between the L_k are wide (clear ordering test).
SPEC = {"type": "vae", "encoder": {"type": "mlp", "hidden": [], "activation": "tanh"},
        "latent": {"type": "gaussian", "dim": 8, "scale_link": "exp", "min_scale": 0.0},
        "decoder": {"type": "mlp", "hidden": [64], "activation": "tanh"}, "likelihood": {"type": "bernoulli"}}


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits, statically binarised with a fixed seed; (train 1400, test 397)."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    g = torch.Generator().manual_seed(0)
    xb = torch.bernoulli(x, generator=g)
    return xb[:1400], xb[1400:]


_TRAINED: dict[str, torch.nn.Module] = {}


def _trained_vae() -> torch.nn.Module:
    """A small VAE trained briefly (400 Adam steps on the ELBO, ~2 s on an idle core); cached across tests."""
    if "m" not in _TRAINED:
        torch.manual_seed(0)
        train, _ = _digits()
        model = build_model(SPEC, data_dim=64)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        obj = build_objective({"type": "elbo", "k": 1})
        g = torch.Generator().manual_seed(1)
        for step in range(400):
            idx = torch.randint(0, train.shape[0], (64,), generator=g)
            loss, _ = obj(model, train[idx], step)
            opt.zero_grad()
            loss.backward()
            opt.step()
        _TRAINED["m"] = model
    return _TRAINED["m"]


def test_registered_and_validated() -> None:
    assert "iwae" in OBJECTIVES and "dreg" in OBJECTIVES
    assert isinstance(build_objective({"type": "iwae", "k": 5}), IWAEObjective)
    assert isinstance(build_objective({"type": "dreg", "k": 5}), DReGObjective)
    for bad in (0, -1, 2.5, True):  # the config error names the key, what it allows and the value given
        with pytest.raises(ConfigError, match=rf"objective\.k: expected an integer >= 1, got {type(bad).__name__} {bad}"):
            build_objective({"type": "iwae", "k": bad})
    with pytest.raises(ValueError, match="k must be"):
        IWAEObjective(k=0)


def test_iwae_loss_is_minus_bound_and_metrics_truthful() -> None:
    """The loss value is -L_k on the batch; ``elbo`` is the mean log-weight; k=1 equals the ELBO with MC KL."""
    model = _trained_vae()
    _, test = _digits()
    x = test[:16]
    torch.manual_seed(3)
    loss, m = IWAEObjective(k=7)(model, x, 0)
    torch.manual_seed(3)
    lw = model.log_weights(x, 7)
    ref = (torch.logsumexp(lw, 0) - math.log(7)).mean()
    assert torch.allclose(loss, -ref, atol=1e-5)
    assert torch.allclose(m["iwae_bound"], ref, atol=1e-5)
    assert torch.allclose(m["elbo"], lw.mean(), atol=1e-5)
    assert float(m["iwae_bound"]) >= float(m["elbo"]) - 1e-5  # Jensen, exact per batch
    torch.manual_seed(4)
    l1, m1 = IWAEObjective(k=1)(model, x, 0)
    assert torch.allclose(m1["iwae_bound"], m1["elbo"], atol=1e-5)


def test_bound_ordering_on_trained_model() -> None:
    r"""L_1 <= L_5 <= L_50 <= L_1000 (Burda et al. Theorem 1) on the 397 held-out digits.

    Each L_k(x) is estimated with ``evaluation.iwae_bound`` (independent samples); for k < 1000 it
    is averaged over 40 independent repetitions per image (L_1000 over 2) so that the standard error of
    each per-image gap falls well below the gap.
    The test asserts each gap E[L_{k'} - L_k] > 3 s.e. of the per-image difference. Measured gaps:
    0.279 +- 0.008, 0.095 +- 0.004, 0.0146 +- 0.0023 nat (33, 24 and 6.4 s.e.), so a false failure
    needs a > 3.4-sigma event: rate < 4e-4 (fixed seed: deterministic).
    """
    model = _trained_vae()
    _, test = _digits()
    torch.manual_seed(123)
    bounds = {}
    for k in (1, 5, 50, 1000):
        reps = 2 if k == 1000 else 40
        bounds[k] = torch.stack([iwae_estimate(model, test, k) for _ in range(reps)]).mean(0)
    ks = sorted(bounds)
    for a, b in zip(ks, ks[1:]):
        d = bounds[b] - bounds[a]
        mean, se = float(d.mean()), float(d.std() / math.sqrt(d.numel()))
        assert mean > 3 * se, f"L_{b} - L_{a} = {mean:.4f} +- {se:.4f}"


def _encoder_params(model):
    return list(model.encoder.parameters()) + list(model.latent.parameters())


def _decoder_params(model):
    return list(model.decoder.parameters())


def _grads(loss, params, retain_graph: bool = False):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=retain_graph)])


def test_dreg_loss_gradient_equals_formula_on_replayed_sample() -> None:
    r"""The DReG loss's autograd gradient equals Tucker et al. (2018) Eq. 5 computed by hand on the same sample:

    decoder: -(1/B) sum_b sum_i w~_i grad_theta log w_i;
    encoder: -(1/B) sum_b sum_i w~_i^2 (d log w_i / d z_i)(d z_i / d phi), q's density parameters stopped.
    Float64, deterministic (replayed RNG).
    """
    model = _trained_vae().double()
    try:
        _, test = _digits()
        x = test[:6].double()
        k = 11
        torch.manual_seed(7)
        loss, _ = DReGObjective(k=k)(model, x, 0)
        g_dec = _grads(loss, _decoder_params(model))
        torch.manual_seed(7)
        loss, _ = DReGObjective(k=k)(model, x, 0)
        g_enc = _grads(loss, _encoder_params(model))

        torch.manual_seed(7)  # replay: the objective draws exactly one rsample((k,))
        params = model.latent.params(model.encoder(x))
        z = model.latent.distribution(**params).rsample((k,))
        zl = z.detach().requires_grad_(True)
        q_fixed = model.latent.distribution(**{n: t.detach() for n, t in params.items()})
        log_w = model.log_joint(x, zl) - q_fixed.log_prob(zl)  # (k, B)
        wn = torch.softmax(log_w.detach(), 0)
        b = x.shape[0]
        ref_dec = _grads(-(wn * log_w).sum() / b, _decoder_params(model), retain_graph=True)
        (dlogw_dz,) = torch.autograd.grad(log_w.sum(), zl)  # log w_i depends on z_i only
        ref_enc = _grads((z * (-(wn ** 2).unsqueeze(-1) * dlogw_dz / b)).sum(), _encoder_params(model))
        assert torch.allclose(g_dec, ref_dec, rtol=1e-9, atol=1e-10)
        assert torch.allclose(g_enc, ref_enc, rtol=1e-9, atol=1e-10)
        # and it is *not* the IWAE encoder gradient on that sample (the test can fail)
        torch.manual_seed(7)
        g_iwae = _grads(IWAEObjective(k=k)(model, x, 0)[0], _encoder_params(model))
        assert not torch.allclose(g_enc, g_iwae, rtol=1e-3)
    finally:
        model.float()


def test_dreg_encoder_gradient_lower_variance_same_mean() -> None:
    r"""At k = 50 on a fixed batch, DReG's encoder gradient has a lower mean-squared deviation across 200
    repetitions than IWAE's, and both estimate the same gradient (Tucker et al. 2018, Sec. 3).

    Variance: total variance sum_j Var(g_j) over encoder parameters; DReG must be below half IWAE's
    (measured: 0.045 vs 2.54, 57x lower). Mean: the paired difference g_IWAE - g_DReG
    (same noise) projected on 6 fixed random unit directions must be within 4 s.e. of 0 in each;
    both are unbiased for grad L_k, so each projection fails with probability 6e-5 (total < 4e-4).
    """
    model = _trained_vae()
    _, test = _digits()
    x = test[:8]
    k, reps = 50, 200
    gi, gd = [], []
    torch.manual_seed(11)
    for r in range(reps):
        seed = 1000 + r
        torch.manual_seed(seed)
        gi.append(_grads(IWAEObjective(k=k)(model, x, 0)[0], _encoder_params(model)))
        torch.manual_seed(seed)
        gd.append(_grads(DReGObjective(k=k)(model, x, 0)[0], _encoder_params(model)))
    gi_t, gd_t = torch.stack(gi).double(), torch.stack(gd).double()
    var_i = float(gi_t.var(0).sum())
    var_d = float(gd_t.var(0).sum())
    assert var_d < 0.5 * var_i, f"DReG total variance {var_d:.4g} vs IWAE {var_i:.4g}"
    dirs = torch.randn(gi_t.shape[1], 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0)
    proj = (gi_t - gd_t) @ dirs  # (reps, 6)
    mean, se = proj.mean(0), proj.std(0) / math.sqrt(reps)
    assert bool((mean.abs() <= 4 * se).all()), f"mean diff {mean.tolist()} se {se.tolist()}"


def test_dreg_decoder_gradient_is_iwae_decoder_gradient() -> None:
    """On the same sample the generative-parameter gradient of DReG equals the IWAE one (float64, exact)."""
    model = _trained_vae().double()
    try:
        _, test = _digits()
        x = test[:5].double()
        torch.manual_seed(9)
        a = _grads(IWAEObjective(k=9)(model, x, 0)[0], _decoder_params(model))
        torch.manual_seed(9)
        b = _grads(DReGObjective(k=9)(model, x, 0)[0], _decoder_params(model))
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    finally:
        model.float()


# The reproduction (``vaekit reproduce iwae``) on sklearn's digits instead of MNIST: the configs' model and
# schedule, 1-3 short epochs, so the whole block takes a few seconds.
DIGITS = ["data.name=digits", "data.val_size=100"]


def _reproduce(out, runs="l1_iwae_k5", **kw):
    """Run the reproduction; returns its rows as written to ``out/results.json`` (per-image values left out)."""
    from vaekit.reproduce import reproduce

    args = dict(epochs=2, eval_k=4, eval_n=30, out=out, overrides=DIGITS, tensorboard=False, log=lambda s: None)
    args.update(kw)
    reproduce("iwae", "small", runs, **args)
    return json.loads((out / "results.json").read_text())["rows"]


def test_reproduce_configs_cover_the_table() -> None:
    """Every (layers, method, k) of Table 1 has a config whose model/objective match its name, and the
    configs' schedule is Burda et al.'s 3^i one (3280 passes; first 20 = 1 + 3 + 9 + 7 passes of stages 0..3)."""
    from vaekit.reproduce import get_reproduction
    from vaekit.reproduce.iwae import TABLE_RUNS, parse_run
    from vaekit.reproduce.runner import run_config
    from vaekit.train import build_schedule

    rep = get_reproduction("iwae")
    assert len(TABLE_RUNS) == 10 and rep.budgets["paper"].runs == TABLE_RUNS and rep.budgets["paper"].epochs == 3280
    for name in (*TABLE_RUNS, "l1_iwae_k1", "l2_iwae_k1"):
        layers, method, k = parse_run(name)
        cfg = run_config(rep, name, 20, "unused", ["seed=3"])
        assert (len(cfg.model["layers"]) if cfg.model["type"] == "hvae" else 1) == layers
        assert cfg.train.objective["type"] == {"vae": "elbo", "iwae": "iwae"}[method]
        assert cfg.train.objective.get("k", 1) == k
        assert cfg.train.epochs == 20 and cfg.seed == 3 and cfg.run_name == name
        assert cfg.data.name == "mnist" and cfg.data.val_size == 400 and cfg.data.binarize == "dynamic"
    sched = build_schedule(cfg.train.lr_schedule)
    assert sched.total_epochs() == 3280
    expect = [10 ** (-i / 7) for i, n in enumerate((1, 3, 9, 7)) for _ in range(n)]
    assert [sched(e) for e in range(20)] == pytest.approx(expect)
    with pytest.raises(FileNotFoundError, match="l3_vae_k1"):
        rep.run_spec("l3_vae_k1")


def test_reproduce_budgeted_run_equals_uninterrupted_and_evaluates(tmp_path) -> None:
    """Epoch-by-epoch training under a (large) time budget gives bit-identical weights to one ``fit`` call;
    the reported NLL is -L_k on the trainer's binarised test split; files and table are written."""
    from vaekit.pipeline import eval_data
    from vaekit.train import load_run

    ra, = _reproduce(tmp_path / "a")
    rb, = _reproduce(tmp_path / "b", max_seconds=1e6)
    assert ra["epochs_done"] == rb["epochs_done"] == 2 and ra["run"] == "l1_iwae_k5"
    ma, mb = load_run(tmp_path / "a" / "l1_iwae_k5", "last"), load_run(tmp_path / "b" / "l1_iwae_k5", "last")
    for (n, pa), (_, pb) in zip(ma.model.state_dict().items(), mb.model.state_dict().items()):
        assert torch.equal(pa, pb), n
    assert ra["iwae"]["mean"] == pytest.approx(rb["iwae"]["mean"], abs=1e-9)
    # independent recomputation from the run directory: 30 images are one batch, seeded with the eval seed 0
    test, _, _ = eval_data(ma.config, "test")
    torch.manual_seed(0)
    ref = float(iwae_estimate(ma.model, test[:30], 4).mean())
    assert ra["n"] == 30 and ra["iwae"]["mean"] == pytest.approx(ref, rel=1e-6)
    torch.manual_seed(0)
    elbo = float(elbo_estimate(ma.model, test[:30], k=10).mean())
    assert ra["elbo"]["mean"] == pytest.approx(elbo, rel=1e-6)
    assert ra["gap"]["mean"] == pytest.approx(ra["iwae"]["mean"] - ra["elbo"]["mean"], abs=1e-9)
    assert ra["re"]["mean"] - ra["kl"]["mean"] == pytest.approx(ra["elbo"]["mean"], abs=1e-9)
    assert len(ra["active_units"]) == 1 and 0 <= ra["active_units"][0] <= 50
    table = (tmp_path / "a" / "table.md").read_text()
    assert table.count(f"| 1 | IWAE | 5 | 2 | {-ra['iwae']['mean']:.2f} |") == 1 and "| 85.54 |" in table
    # re-running with more epochs resumes the run directory instead of starting over
    rc, = _reproduce(tmp_path / "a", epochs=3)
    assert rc["epochs_done"] == 3 and rc["trained"] == 1


def test_reproduce_budget_stops_and_hvae_counts_units_per_layer(tmp_path) -> None:
    """A spent time budget stops training before ``epochs`` (the row then has no NLL); the 2-layer model reports
    one active-unit count per stochastic layer (100 + 50 units)."""
    s, = _reproduce(tmp_path / "h", runs="l2_iwae_k5", epochs=1)
    au = s["active_units"]
    assert len(au) == 2 and 0 <= au[0] <= 100 and 0 <= au[1] <= 50
    t, = _reproduce(tmp_path / "t", epochs=50, max_seconds=1e-9)
    assert t["epochs_done"] < 50
    if t["epochs_done"] == 0:
        assert "iwae" not in t and "n/a" in (tmp_path / "t" / "table.md").read_text()
    for bad in ("l1_vae", "l1_dreg_k5", "x"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            _reproduce(tmp_path / "x", runs=f"l1_vae_k1,{bad}")
    assert not (tmp_path / "x" / "l1_vae_k1").exists()  # names are checked before anything trains


def test_reproduce_explicit_runs_and_saved_evaluations(tmp_path, monkeypatch) -> None:
    """``runs`` trains exactly the named runs; re-running the finished set neither trains nor evaluates (the
    saved evaluation, active units included, is reused) unless the checkpoint changed."""
    from vaekit.reproduce import runner

    first = _reproduce(tmp_path, runs="l1_vae_k1, l1_iwae_k5", epochs=1)
    assert [r["run"] for r in first] == ["l1_vae_k1", "l1_iwae_k5"]
    assert len(list((tmp_path / "l1_iwae_k5" / "eval").glob("*.json"))) == 1

    calls = []
    real = runner.per_image
    monkeypatch.setattr(runner, "per_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = _reproduce(tmp_path, runs="l1_vae_k1,l1_iwae_k5", epochs=1)
    assert not calls and [r["trained"] for r in again] == [0, 0]
    assert [{**r, "trained": 1} for r in again] == first
    more, = _reproduce(tmp_path, runs="l1_iwae_k5", epochs=2)  # a new checkpoint: evaluated again
    assert calls and more["epochs_done"] == 2 and more["iwae"]["mean"] != first[1]["iwae"]["mean"]


def test_reproduce_cli_flags_parse() -> None:
    """``vaekit reproduce NAME`` takes the budget, runs, its overrides of the budget and dotted config overrides."""
    from vaekit.cli.main import build_parser

    a = build_parser().parse_args(["reproduce", "iwae", "data.name=digits", "--budget", "paper", "--runs",
                                   "l1_vae_k1,l2_iwae_k5", "--epochs", "3", "--eval-k", "10", "--eval-n", "5",
                                   "--max-seconds", "60", "--out", "o", "--threads", "1"])
    assert (a.name, a.budget, a.runs, a.epochs, a.eval_k, a.eval_n, a.max_seconds, a.out, a.threads, a.write_doc) == \
        ("iwae", "paper", "l1_vae_k1,l2_iwae_k5", 3, 10, 5, 60.0, "o", 1, False)
    assert a.overrides == ["data.name=digits"]
    # no --budget: None at parse time, "small" for NAME and "ci" for --all (decided in vaekit.cli.reproduce.run)
    assert build_parser().parse_args(["reproduce", "latents"]).budget is None
    from vaekit.cli.main import main
    with pytest.raises(SystemExit, match="unknown reproduction 'nope'"):
        main(["reproduce", "nope"])
