"""The training loop: learning, exact resume, checkpoint integrity, best checkpoint (faults: test_faults.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaekit.config import from_dict
from vaekit.train import (CheckpointError, fit, init_output_bias, load_checkpoint, load_run, read_checkpoint,
                          read_metrics, save_checkpoint, train_step, validate)
from vaekit.train import checkpoint as ckpt_mod
from vaekit.train.loop import ObjectiveModule

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    # bit-identical comparisons need one reduction order, and the CI box has 2 shared cores
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(tmp_path: Path, name: str = "run", **train) -> "RunConfig":  # noqa: F821
    t = {"epochs": 3, "batch_size": 64, "lr": 3e-3, "eval_every": 1, "checkpoint_every": 1, "log_every": 10}
    t.update(train)
    return from_dict({
        "data": {"name": "digits", "binarize": "dynamic"},
        "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [32]}, "latent": {"type": "gaussian", "dim": 2},
                  "decoder": {"type": "mlp", "hidden": [32]}, "likelihood": {"type": "bernoulli"}},
        "train": t, "seed": 3, "device": "cpu", "out_dir": str(tmp_path), "run_name": name,
    })


def params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


def test_loss_decreases_on_digits(tmp_path):
    cfg = tiny(tmp_path, epochs=6)
    res = fit(cfg, tensorboard=False)
    vals = [r["elbo"] for r in read_metrics(res.run_dir, "val")]
    assert len(vals) == 6
    # An untrained Bernoulli decoder scores about 64 * log(2) = 44 nats; six epochs reach about -30.
    assert vals[-1] > vals[0] + 2.0 and vals[-1] > -35.0, vals
    rec = read_metrics(res.run_dir, "train")[0]
    assert {"step", "epoch", "split", "elbo", "kl", "log_likelihood", "lr", "time"} <= set(rec)
    assert json.loads((res.run_dir / "config.json").read_text())["train"]["epochs"] == 6


def test_simulated_stop_and_resume_is_bit_identical(tmp_path):
    full = fit(tiny(tmp_path, "full", epochs=4, eval_every=3), tensorboard=False)
    part = fit(tiny(tmp_path, "part", epochs=4, eval_every=3), stop_after_epoch=2, tensorboard=False)
    assert part.state.epoch == 2
    changed = any(not torch.equal(a, b) for a, b in zip(params(part.model).values(), params(full.model).values()))
    assert changed  # the comparison below is not trivially true
    resumed = fit(tiny(tmp_path, "part", epochs=4, eval_every=3), run_dir=part.run_dir, resume=True,
                  tensorboard=False)
    assert resumed.state.step == full.state.step
    assert_same_params(params(resumed.model), params(full.model))
    # the stop did not add a validation, so the best checkpoint is the uninterrupted run's too
    assert (resumed.state.best_epoch, resumed.state.best_val_elbo) == (full.state.best_epoch, full.state.best_val_elbo)
    assert [r["epoch"] for r in read_metrics(part.run_dir, "val")] == [3, 4]
    # metrics of the resumed run have no duplicated steps
    steps = [(r["step"], r["split"]) for r in read_metrics(part.run_dir)]
    assert len(steps) == len(set(steps)) == len(read_metrics(full.run_dir))


def test_corrupted_and_truncated_checkpoints_give_clear_errors(tmp_path):
    res = fit(tiny(tmp_path, epochs=1), tensorboard=False)
    ck = res.run_dir / "checkpoints"
    meta = json.loads((ck / "last.json").read_text())
    tfile = ck / meta["tensors_file"]
    good = tfile.read_bytes()
    load_checkpoint(ck, "last", res.model)  # loads cleanly first

    tfile.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated: sha256"):
        load_checkpoint(ck, "last", res.model)
    flipped = bytearray(good)
    flipped[len(flipped) - 5] ^= 0xFF
    tfile.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(ck, "last", res.model)
    # a truncated file whose hash was "fixed" still fails, in safetensors' parser
    import hashlib

    trunc = good[: len(good) // 2]
    tfile.write_bytes(trunc)
    forged = {**meta, "sha256": hashlib.sha256(trunc).hexdigest()}
    (ck / "last.json").write_text(json.dumps(forged))
    with pytest.raises(CheckpointError, match="was edited or corrupted: its fields do not match the checksum"):
        load_checkpoint(ck, "last", res.model)
    # ... and with the sidecar's own checksum forged as well
    (ck / "last.json").write_text(json.dumps({**forged, "meta_sha256": ckpt_mod.meta_checksum(forged)}))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(ck, "last", res.model)
    tfile.write_bytes(good)
    (ck / "last.json").write_text(json.dumps(meta)[:-20])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(ck, "last", res.model)
    (ck / "last.json").write_text(json.dumps(meta))
    # the wrong architecture is named, not a bare load_state_dict traceback
    other = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(ck, "last", other)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path, "last", res.model)


def test_atomic_write_leaves_old_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    model = torch.nn.Linear(4, 2)
    save_checkpoint(tmp_path, "last", model, None, epoch=1, step=10)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with torch.no_grad():
        model.weight.add_(1.0)

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, "last", model, None, epoch=2, step=20)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no tmp file left, nothing replaced
    fresh = torch.nn.Linear(4, 2)
    meta = load_checkpoint(tmp_path, "last", fresh)
    assert meta["epoch"] == 1 and not torch.equal(fresh.weight, model.weight)
    # a successful save replaces the pair and removes the unreferenced tensor file
    save_checkpoint(tmp_path, "last", model, None, epoch=2, step=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last-e000002.safetensors", "last.json"]


def test_best_checkpoint_has_best_validation_elbo(tmp_path):
    res = fit(tiny(tmp_path, epochs=5, lr=2e-2), tensorboard=False)
    vals = read_metrics(res.run_dir, "val")
    best = max(vals, key=lambda r: r["elbo"])
    run = load_run(res.run_dir, "best")
    assert run.meta["epoch"] == best["epoch"] == res.state.best_epoch
    # re-scoring the loaded best model reproduces the logged number exactly (same seeded noise)
    from vaekit.train.seeding import derive_seed

    again = validate(run.model, res.data.val, 100, derive_seed(3, "validate"))
    assert again["elbo"] == pytest.approx(best["elbo"], abs=1e-9)
    assert load_run(res.run_dir, "last").meta["epoch"] == 5
    # the default objective is the ELBO, so selecting by the objective selects by the ELBO (same noise, same value
    # up to float32 batch means against float64 sums)
    assert [r["objective"] for r in vals] == pytest.approx([r["elbo"] for r in vals], abs=1e-5)
    assert {r["select_by"] for r in vals} == {"objective:elbo"}


def test_best_checkpoint_of_an_infovae_run_is_selected_by_its_own_objective(tmp_path):
    # issue 17: the MMD objective's run keeps the epoch with the best validation InfoVAE objective, says so in
    # its metrics and checkpoint, and still logs the ELBO as a diagnostic
    from vaekit.train import validate_objective
    from vaekit.train.check import build_training
    from vaekit.train.seeding import derive_seed

    cfg = tiny(tmp_path, epochs=4, lr=2e-2, objective={"type": "infovae", "alpha": 1.0, "lam": 100.0})
    res = fit(cfg, tensorboard=False)
    vals = read_metrics(res.run_dir, "val")
    assert {r["select_by"] for r in vals} == {"objective:infovae"}
    assert all({"objective", "elbo", "kl", "log_likelihood"} <= set(r) for r in vals)
    best = max(vals, key=lambda r: r["objective"])
    run = load_run(res.run_dir, "best")
    extra = run.meta["extra"]
    assert run.meta["epoch"] == best["epoch"] == res.state.best_epoch == extra["best_epoch"]
    assert extra["select_by"] == res.state.select_by == "objective:infovae"
    assert extra["best_val"] == pytest.approx(best["objective"]) and extra["best_val_elbo"] == pytest.approx(best["elbo"])
    # the logged value is the objective's own, reproduced from the loaded best model (same seeded noise, same step)
    objective, _ = build_training(cfg.train)
    again = validate_objective(run.model, objective, res.data.val, 100, derive_seed(3, "validate"),
                               res.state.step)
    assert again == pytest.approx(best["objective"], abs=1e-6)
    # and it is not the ELBO: the MMD term weighs in (alpha = 1 drops the KL)
    assert all(r["objective"] != pytest.approx(r["elbo"], abs=1e-3) for r in vals)


def test_select_by_elbo_keeps_the_old_choice_whatever_the_objective(tmp_path):
    cfg = tiny(tmp_path, epochs=3, lr=2e-2, objective={"type": "infovae", "alpha": 1.0, "lam": 100.0},
               select_by="elbo")
    res = fit(cfg, tensorboard=False)
    vals = read_metrics(res.run_dir, "val")
    assert res.state.select_by == "elbo" and {r["select_by"] for r in vals} == {"elbo"}
    assert res.state.best_epoch == max(vals, key=lambda r: r["elbo"])["epoch"]


def test_train_step_clips_and_output_bias_init(digits, seed):
    from vaekit.models import build_model
    from vaekit.objectives import build_objective

    model = build_model({"type": "vae", "encoder": {"type": "mlp", "hidden": [8]},
                         "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [8]},
                         "likelihood": {"type": "bernoulli"}}, 64)
    bias = init_output_bias(model, digits.train.x)
    mean = digits.train.x.mean(0).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(torch.sigmoid(bias), mean, atol=1e-6)
    assert torch.equal(model.decoder[-1].bias, bias)  # found by width, not by the attribute name
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = params(model)
    compute = ObjectiveModule(model, build_objective({"type": "elbo"}))
    metrics = train_step(compute, opt, digits.train.x[:32], 0, grad_clip=1e-3, params=list(model.parameters()))
    assert all(not v.requires_grad for v in metrics.values() if torch.is_tensor(v))
    step = torch.sqrt(sum(((before[k] - v) ** 2).sum() for k, v in model.state_dict().items()))
    assert step == pytest.approx(1e-3, rel=1e-4)  # SGD with lr 1 moves exactly the clipped norm


def test_device_resolution():
    from vaekit.config import ConfigError
    from vaekit.train import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is available"):
            resolve_device("cuda")


def test_output_layer_is_found_by_width_in_any_model(digits, seed):
    from vaekit.models import build_model
    from vaekit.train import output_layer

    layer = {"encoder": {"type": "mlp", "hidden": [32]}, "latent": {"type": "gaussian", "dim": 4},
             "decoder": {"type": "mlp", "hidden": [32]}}
    hvae = build_model({"type": "hvae", "layers": [layer, dict(layer, latent={"type": "gaussian", "dim": 2})],
                        "likelihood": {"type": "bernoulli"}}, 64)
    bias = init_output_bias(hvae, digits.train.x)
    assert output_layer(hvae) is hvae.decoders[0][-1]  # the bottom decoder's last layer, x's logits
    assert torch.equal(hvae.decoders[0][-1].bias, bias)
    # an encoder whose hidden width equals the data size makes the width ambiguous: named, not guessed
    vae = build_model({"type": "vae", **dict(layer, encoder={"type": "mlp", "hidden": [64]}),
                       "likelihood": {"type": "bernoulli"}}, 64)
    with pytest.raises(ValueError, match=r"2 nn.Linear layers with out_features=64: \['encoder.0', 'decoder.2'\]"):
        init_output_bias(vae, digits.train.x)
    with pytest.raises(ValueError, match="has no .likelihood"):
        output_layer(torch.nn.Linear(3, 3))


def _hand_built_vae():
    from vaekit.latents import GaussianLatent
    from vaekit.likelihoods import BernoulliLikelihood
    from vaekit.models import VAE
    from vaekit.nets import MLP

    torch.manual_seed(11)
    return VAE(MLP(64, [32]), GaussianLatent(32, 2), MLP(2, [32], out_features=64), BernoulliLikelihood(64))


def test_fit_trains_a_hand_built_model_and_resumes_exactly(tmp_path, digits):
    from vaekit.config import TrainConfig

    settings = dict(train=TrainConfig(epochs=2, batch_size=64, lr=3e-3, log_every=10), seed=4, device="cpu",
                    binarize="dynamic", tensorboard=False)
    full = fit(_hand_built_vae(), digits, run_dir=tmp_path / "full", **settings)
    part = fit(_hand_built_vae(), digits, run_dir=tmp_path / "part", stop_after_epoch=1, **settings)
    assert part.state.epoch == 1 and part.state.step == 21  # 1297 rows in batches of 64
    vals = read_metrics(part.run_dir, "val")
    assert len(vals) == 1 and vals[0]["elbo"] > -64 * 0.7  # below log(2) nats per pixel after one epoch
    resumed = fit(_hand_built_vae(), digits, run_dir=part.run_dir, resume=True, **settings)
    assert resumed.state.step == full.state.step == 42
    assert_same_params(params(resumed.model), params(full.model))
    # the checkpoint says what the model is at top level: built by hand, 8x8 images of 64 values
    meta = json.loads((part.run_dir / "checkpoints" / "last.json").read_text())
    assert (meta["model_spec"], meta["data_dim"], meta["image_shape"]) == (None, 64, [1, 8, 8])
    assert set(meta["extra"]) == {"best_val_elbo", "best_epoch", "best_val", "select_by", "elapsed",
                                  "skipped_batches", "batch_in_epoch"}
    assert meta["extra"]["select_by"] == "objective:elbo"
    assert json.loads((part.run_dir / "config.json").read_text())["model"] is None
    with pytest.raises(CheckpointError, match=r"model built by hand \(model_spec: null\); .*load_run\(run_dir, model=model\)"):
        load_run(part.run_dir)
    run = load_run(part.run_dir, "last", model=_hand_built_vae())
    assert run.model_spec is None and run.image_shape == (1, 8, 8)
    assert_same_params(params(run.model), params(resumed.model))


def build_small(data_dim: int):
    from vaekit.models import build_model

    return build_model({"type": "vae", "encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 2},
                        "decoder": {"type": "mlp", "hidden": [8]}, "likelihood": {"type": "bernoulli"}}, data_dim)


def test_fit_on_a_tensor_and_its_type_errors(tmp_path, digits):
    from vaekit.config import TrainConfig

    res = fit(_hand_built_vae(), digits.train.x[:200], train=TrainConfig(epochs=1, batch_size=50), device="cpu",
              run_dir=tmp_path / "t", tensorboard=False)
    assert res.state.step == 4 and res.data.val is None and res.data.test is None and not res.data.dynamic
    assert load_run(res.run_dir, model=_hand_built_vae()).which == "last"  # no validation split, no best
    cfg = tiny(tmp_path)
    with pytest.raises(TypeError, match=r"takes the model, data and settings from cfg; do not also pass \['data'\]"):
        fit(cfg, digits)
    with pytest.raises(TypeError, match=r"do not also pass \['train', 'seed'\]"):
        fit(cfg, train=TrainConfig(), seed=1)
    with pytest.raises(TypeError, match="give the training data"):
        fit(_hand_built_vae())
    with pytest.raises(TypeError, match="expected a vaekit.config.TrainConfig, got dict"):
        fit(_hand_built_vae(), digits, train={"epochs": 1})
    with pytest.raises(TypeError, match="data must be an \\(N, D\\) tensor, a vaekit.data.Dataset or a PreparedData"):
        fit(_hand_built_vae(), [[0.0] * 64])
    with pytest.raises(TypeError, match="fit expects a RunConfig or an nn.Module"):
        fit({"model": {}})
    with pytest.raises(ValueError, match="binarize must be one of"):
        fit(_hand_built_vae(), digits, binarize="yes")
    bad = digits.train.x[:10].clone()
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"tensor\.train contains 1 non-finite"):  # checked before binarising
        fit(_hand_built_vae(), bad, binarize="static", run_dir=tmp_path / "bad")
    with pytest.raises(ValueError, match=r"digits\.train has shape \(1297, 64\) but the model expects \(batch, 32\)"):
        fit(build_small(32), digits, run_dir=tmp_path / "bad")


def test_old_checkpoints_with_sizes_in_extra_still_load(tmp_path):
    res = fit(tiny(tmp_path, epochs=1), tensorboard=False)
    meta = json.loads((res.run_dir / "checkpoints" / "best.json").read_text())
    assert meta["model_spec"] == tiny(tmp_path).model and (meta["data_dim"], meta["image_shape"]) == (64, [1, 8, 8])
    # the format before top-level fields: sizes in extra, the spec only inside config
    old = {k: v for k, v in meta.items() if k not in ("model_spec", "data_dim", "image_shape", "meta_sha256")}
    old["extra"] = {**meta["extra"], "data_dim": 64, "image_shape": [1, 8, 8]}
    old["version"] = 1  # nor a checksum over the JSON itself
    (res.run_dir / "checkpoints" / "best.json").write_text(json.dumps(old))
    run = load_run(res.run_dir, "best")
    assert (run.model_spec["type"], run.data_dim, run.image_shape) == ("vae", 64, (1, 8, 8))
    assert_same_params(params(run.model), params(res.model))  # one epoch: best is the last


def test_train_step_skips_a_nan_gradient_behind_a_finite_loss_without_touching_adam(seed):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randn(8, 3)

    def good(x, step):
        loss = model(x).pow(2).mean()
        return loss, {"loss": loss.detach()}

    def nan_grad(x, step):
        # sqrt at 0 has an infinite derivative and 0 * inf is NaN: the loss is 0, its gradient NaN
        loss = (model(x) * 0.0).pow(2).sum().sqrt()
        return loss, {"loss": loss.detach()}

    assert train_step(good, opt, x, 0) is not None
    before, adam = params(model), {k: v.clone() for k, v in opt.state[model.weight].items()}
    assert train_step(nan_grad, opt, x, 1) is None
    assert_same_params(params(model), before)
    for k, v in opt.state[model.weight].items():
        assert torch.equal(v, adam[k]), f"Adam's {k} changed on a skipped step"
    assert all(p.grad is None for p in model.parameters())
    assert train_step(good, opt, x, 1) is not None and opt.state[model.weight]["step"] == 2


class _NaNOnCalls(torch.nn.Module):
    """A VAE whose training forward returns a NaN log-likelihood on the calls numbered in ``bad`` (1-based)."""

    def __init__(self, bad):
        super().__init__()
        self.vae, self.bad, self.calls = _hand_built_vae(), set(bad), 0

    def forward(self, x, k=1):
        out = self.vae(x, k=k)
        if self.training:
            self.calls += 1
            if self.calls in self.bad:
                out.log_likelihood = out.log_likelihood * float("nan")
        return out


def test_nonfinite_skip_counts_the_batch_and_keeps_adam_finite(tmp_path, digits):
    from vaekit.config import TrainConfig

    data = digits.train.x[:200]  # 4 batches of 50 per epoch
    res = fit(_NaNOnCalls({3, 6}), data, train=TrainConfig(epochs=2, batch_size=50, nonfinite="skip"), device="cpu",
              run_dir=tmp_path / "skip", tensorboard=False)
    assert (res.state.skipped, res.state.step) == (2, 6)
    meta, tensors = read_checkpoint(res.run_dir / "checkpoints", "last")
    assert meta["extra"]["skipped_batches"] == 2 and meta["step"] == 6
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith(("model.", "optim.")))
    # Adam's own step count saw only the 6 steps taken
    assert {int(v) for k, v in tensors.items() if k.endswith(".step")} == {6}
    assert read_metrics(res.run_dir, "train")[-1]["skipped"] == 2


def test_nonfinite_stop_and_a_run_with_no_step_fail_with_a_message(tmp_path, digits):
    from vaekit.config import TrainConfig
    from vaekit.train import TrainingError

    data = digits.train.x[:200]
    with pytest.raises(TrainingError, match=r"train.nonfinite=stop: .* in epoch 2 after 5 optimiser step\(s\); that "
                                            r"step was not taken and .* keeps the checkpoint of epoch 1"):
        fit(_NaNOnCalls({6}), data, train=TrainConfig(epochs=2, batch_size=50), device="cpu",
            run_dir=tmp_path / "stop", tensorboard=False)
    meta, _ = read_checkpoint(tmp_path / "stop" / "checkpoints", "last")
    assert (meta["epoch"], meta["step"]) == (1, 4)  # the last good checkpoint, untouched
    with pytest.raises(TrainingError, match=r"no optimiser step in 1 epoch\(s\): all 4 batches had a non-finite"):
        fit(_NaNOnCalls(range(1, 5)), data, train=TrainConfig(epochs=1, batch_size=50, nonfinite="skip"),
            device="cpu", run_dir=tmp_path / "none", tensorboard=False)


def test_a_diverging_run_exits_non_zero_through_the_cli(tmp_path):
    # lr = 1e30 throws the weights so far that the Bernoulli logits overflow within a few steps
    r = subprocess.run([sys.executable, "-m", "vaekit.cli.main", "train", "--config", str(ROOT / "configs" / "vae_digits.yaml"),
                        "train.lr=1e30", "train.epochs=1", "--out", str(tmp_path), "--device", "cpu", "--threads", "1",
                        "--no-final-eval"], env={**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stderr.startswith("vaekit: error: train.nonfinite=stop") and "Traceback" not in r.stderr


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_checkpoint_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path, "last", torch.nn.Linear(2, 2), None, epoch=1, step=1)
    finally:
        os.umask(old)
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["last-e000001.safetensors", "last.json"]
    assert all(p.stat().st_mode & 0o777 == mode for p in files), [oct(p.stat().st_mode) for p in files]


def test_glorot_uniform_init_option(tmp_path):
    """``train.init_weights: glorot_uniform`` gives every Linear U(±sqrt(6/(in+out))) weights and zero biases."""
    import math

    from torch import nn

    from vaekit.config import ConfigError, from_dict
    from vaekit.train import init_weights

    net = nn.Sequential(nn.Linear(200, 100), nn.Tanh(), nn.Linear(100, 50))
    torch.manual_seed(0)
    assert init_weights(net) == 2
    for lin in (net[0], net[2]):
        a = math.sqrt(6 / (lin.in_features + lin.out_features))
        w = lin.weight.detach()
        assert float(w.abs().max()) <= a and float(w.abs().max()) > 0.98 * a  # fills the Glorot interval
        assert abs(float(w.var()) - a * a / 3) < 0.05 * a * a / 3  # the uniform's variance a^2/3
        assert float(lin.bias.detach().abs().max()) == 0.0
    with pytest.raises(ValueError, match="unknown scheme 'he'"):
        init_weights(net, "he")
    with pytest.raises(ConfigError, match="train.init_weights"):
        from_dict({"train": {"init_weights": "he"}})


def test_default_run_names_are_unique_within_one_second(tmp_path, monkeypatch):
    import datetime as dt

    from vaekit.train import loop

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=tz)

    suffixes = iter(["abcd", "abcd", "abcd", "0123", "abcd", "4567"])  # the second and third runs draw a taken one
    monkeypatch.setattr(loop, "datetime", Frozen)
    real = loop.secrets.token_hex
    monkeypatch.setattr(loop.secrets, "token_hex", lambda n: next(suffixes) if n == 2 else real(n))
    cfg = tiny(tmp_path, epochs=1, batch_size=256)
    cfg.run_name = None
    dirs = [fit(cfg, tensorboard=False).run_dir for _ in range(3)]
    assert [d.name for d in dirs] == ["digits-20300102-030405-abcd", "digits-20300102-030405-0123",
                                      "digits-20300102-030405-4567"]
    assert all(read_checkpoint(d / "checkpoints", "last")[0]["epoch"] == 1 for d in dirs)
