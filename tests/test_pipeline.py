"""The pipeline in the library: plot choice by latent geometry, post-training evaluation, its report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaekit.models import build_model
from vaekit.pipeline import RunEvaluation, evaluate_model, evaluate_run, latent_plots, write_plots


@pytest.fixture(autouse=True)
def _one_thread(one_thread_seeded):
    yield


def vae(latent: dict, data_dim: int = 64):
    return build_model({"type": "vae", "encoder": {"type": "mlp", "hidden": [16]}, "latent": latent,
                        "decoder": {"type": "mlp", "hidden": [16]}, "likelihood": {"type": "bernoulli"}}, data_dim,
                       (1, 8, 8))


@pytest.mark.parametrize("latent,kinds", [
    ({"type": "gaussian", "dim": 2}, ("manifold", "scatter")),
    ({"type": "vmf", "dim": 2}, ("circle", "scatter")),            # a circle: never the Gaussian-quantile grid
    ({"type": "power_spherical", "dim": 2}, ("circle", "scatter")),
    ({"type": "vmf", "dim": 3}, ("sphere", "scatter")),
    ({"type": "gaussian", "dim": 5}, ("scatter",)),
    ({"type": "relaxed_categorical", "dim": 20, "n_categories": 10}, ("scatter",)),  # a simplex
    ({"type": "gaussian", "dim": 1}, ()),
])
def test_latent_plots_follow_the_geometry(latent, kinds):
    assert latent_plots(vae(latent).latent_space) == kinds


def test_a_stacked_model_gets_a_scatter_only():
    layer = {"encoder": {"type": "mlp", "hidden": [8]}, "latent": {"type": "gaussian", "dim": 2},
             "decoder": {"type": "mlp", "hidden": [8]}}
    m = build_model({"type": "hvae", "layers": [layer, layer], "likelihood": {"type": "bernoulli"}}, 64)
    assert m.latent_space.geometry == "product" and latent_plots(m.latent_space) == ("scatter",)


@pytest.mark.parametrize("latent,decoded", [({"type": "vmf", "dim": 2}, "latent_circle.png"),
                                            ({"type": "gaussian", "dim": 2}, "latent_manifold.png"),
                                            ({"type": "vmf", "dim": 3}, "latent_sphere.png")])
def test_write_plots_draws_the_decoded_latent_plot_of_the_geometry(tmp_path, digits, latent, decoded):
    paths = write_plots(tmp_path, vae(latent), digits.test.x[:100], digits.test.y[:100], (1, 8, 8), seed=0)
    names = {p.name for p in paths}
    assert names == {"samples.png", "reconstructions.png", decoded, "latent_scatter.png"}  # no metrics.jsonl yet
    assert all(p.parent == tmp_path / "plots" and p.stat().st_size > 0 for p in paths)


def test_write_plots_of_m2_with_a_2d_latent_leaves_out_the_decoded_grid(tmp_path, digits):
    # M2's label is a latent (no data condition) but its decoder reads one: the manifold grid raised KeyError 'label'
    # in the pre-training plot check, so a 2-D M2 run could not start
    m2 = build_model({"type": "m2", "classifier": {"type": "mlp", "hidden": [16]},
                      "encoder": {"type": "mlp", "hidden": [16]}, "latent": {"type": "gaussian", "dim": 2},
                      "decoder": {"type": "mlp", "hidden": [16]}, "likelihood": {"type": "bernoulli"}}, 64, (1, 8, 8))
    paths = write_plots(tmp_path, m2, digits.test.x[:50], digits.test.y[:50], (1, 8, 8), seed=0)
    assert {p.name for p in paths} == {"samples.png", "reconstructions.png", "latent_scatter.png"}


def test_write_plots_of_non_image_data_draws_the_scatter_only(tmp_path, digits):
    paths = write_plots(tmp_path, vae({"type": "vmf", "dim": 2}), digits.test.x[:50], None, None)
    assert [p.name for p in paths] == ["latent_scatter.png"]


def test_evaluate_model_and_the_summary(digits):
    model = vae({"type": "gaussian", "dim": 2})
    res = evaluate_model(model, digits.test.x[:20].bernoulli(), "elbo,iwae:10", seed=3, batch_size=8)
    assert set(res) == {"estimates", "n", "seed", "spec", "seconds"} and res["n"] == 20
    est = res["estimates"]
    assert set(est) == {"elbo", "iwae:10"} and all(est[k]["n"] == 20 for k in est)
    payload = {"split": "test", "checkpoint": "best", "epoch": 3, **res,
               "bdmc": {"settings": {"n_simulated": 2}, "rows": [{"T": 10, "lower": -3.0, "upper": -2.0, "gap": 1.0}]}}
    text = RunEvaluation(payload, Path("eval.json")).summary()
    best = max(est, key=lambda k: est[k]["mean"])
    assert text.startswith("test set (20 examples), best checkpoint (epoch 3):")
    assert f"NLL {-est[best]['mean']:.3f} nats (from {best}" in text
    assert "BDMC on 2 simulated examples" in text and "T=    10  lower -3.000  upper -2.000  gap 1.000" in text


def test_a_run_of_a_hand_built_model_names_what_to_do(tmp_path, digits):
    from vaekit.config import TrainConfig
    from vaekit.train import fit

    model = vae({"type": "gaussian", "dim": 2})
    res = fit(model, digits.train.x[:100], train=TrainConfig(epochs=1, batch_size=50), device="cpu",
              run_dir=tmp_path / "hand", tensorboard=False)
    with pytest.raises(Exception, match=r"load_run\(run_dir, model=model\)"):
        evaluate_run(res.run_dir)
    from vaekit.pipeline import eval_data
    from vaekit.train import load_run

    run = load_run(res.run_dir, model=vae({"type": "gaussian", "dim": 2}))
    with pytest.raises(ValueError, match=r"cannot be reloaded: evaluate with vaekit.pipeline.evaluate_model"):
        eval_data(run.config, "test")
    assert torch.equal(run.model.encoder[0].weight, res.model.encoder[0].weight)


def test_checking_the_report_before_training_changes_nothing_in_training(tmp_path):
    from vaekit.config import from_dict
    from vaekit.pipeline import check_report
    from vaekit.train import fit

    def cfg(name):
        return from_dict({"data": {"name": "digits"}, "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [16]},
                          "latent": {"type": "vmf", "dim": 3}, "decoder": {"type": "mlp", "hidden": [16]},
                          "likelihood": {"type": "bernoulli"}},
                          "train": {"epochs": 1, "batch_size": 128}, "eval": {"estimators": "elbo,iwae:50,ais:20"},
                          "seed": 2, "device": "cpu", "out_dir": str(tmp_path), "run_name": name})

    seen = []
    checked = fit(cfg("a"), tensorboard=False,
                  before_training=lambda m, d: seen.append(m.training) or check_report(cfg("a"))(m, d))
    plain = fit(cfg("b"), tensorboard=False)
    assert seen == [True]
    for (k, a), b in zip(checked.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert checked.model.training and not list((tmp_path / "a" / "plots").iterdir())


def test_the_check_before_training_draws_few_rows_through_an_autoregressive_decoder(tmp_path, digits):
    """With a PixelCNN decoder every sample and reconstruction is one network pass per pixel; the pre-training
    check drew 64 samples and 32 reconstructions (6144 rows through the network on 8x8 digits, minutes on MNIST
    with a gated PixelCNN) where a few rows show whether the plots can be drawn."""
    from vaekit.config import from_dict
    from vaekit.pipeline import check_report
    from vaekit.train.data import prepare_data

    cfg = from_dict({"data": {"name": "digits"}, "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [16]},
                     "latent": {"type": "gaussian", "dim": 3}, "decoder": {"type": "mlp", "hidden": [16]},
                     "likelihood": {"type": "pixelcnn_bernoulli", "channels": 4, "layers": 1, "gated": True}},
                     "eval": {"estimators": "elbo,iwae:5"}, "seed": 0, "device": "cpu", "out_dir": str(tmp_path)})
    from vaekit.models import build_model
    data = prepare_data(cfg, torch.device("cpu"))
    model = build_model(cfg.model, data_dim=64, image_shape=(1, 8, 8))
    rows = []
    model.likelihood.net.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
    check_report(cfg)(model, data)
    assert 0 < sum(rows) <= 1000, sum(rows)


def test_image_grids_carry_a_caption_saying_what_is_where(tmp_path, digits):
    """Before, the grids were bare pixels: nothing said which rows are reconstructions or that z1 grows to the right
    and z2 upward over the prior's 5%-95% quantiles."""
    import matplotlib.image as mpimg

    from vaekit.pipeline.plots import caption
    from vaekit.viz.plots import TITLE_PX

    write_plots(tmp_path, vae({"type": "gaussian", "dim": 2}), digits.test.x[:100], digits.test.y[:100], (1, 8, 8))
    for name in ("samples.png", "reconstructions.png", "latent_manifold.png"):  # square grids: 8x8, 8x8, 20x20
        img = mpimg.imread(tmp_path / "plots" / name)
        assert img.shape[0] - img.shape[1] == TITLE_PX  # a title strip above the grid
        assert img[:TITLE_PX, :, :3].min() < 0.5  # with text in it
    assert caption("manifold") == "z1 to the right, z2 up: -1.64 to 1.64 (N(0,1) 5%-95%)"
    for kind in ("samples", "reconstructions", "manifold", "circle", "sphere", "interpolation"):
        assert len(caption(kind, 64, steps=10)) <= 56  # fits the narrowest grid
    assert caption("reconstructions") == "odd rows: data; even rows: their reconstructions"
    assert caption("samples", 16, mean=False) == "16 draws z ~ p(z), decoded: x ~ p(x|z)"
    with pytest.raises(ValueError, match="unknown caption 'grid'"):
        caption("grid")


def test_an_interrupted_evaluation_keeps_its_finished_estimators_and_a_rerun_reuses_them(tmp_path, monkeypatch):
    """``vaekit eval RUN --estimators elbo,iwae:50,ais:T`` kept every result in memory until the end, so an
    interruption in the AIS lost the bounds already computed. Each estimator is now saved as it finishes
    (``eval.partial.json``); the same evaluation run again reuses them (without running them: here they would
    raise) and gives the numbers of an uninterrupted evaluation, bit for bit; the file goes once eval.json is
    written. Saved results of another seed or checkpoint are not reused."""
    import json

    from vaekit.config import from_dict
    from vaekit.evaluation import estimators as est_mod
    from vaekit.train import fit

    cfg = from_dict({"data": {"name": "digits"}, "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [16]},
                     "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "mlp", "hidden": [16]},
                     "likelihood": {"type": "bernoulli"}}, "train": {"epochs": 1, "batch_size": 128},
                     "seed": 2, "device": "cpu", "out_dir": str(tmp_path), "run_name": "r"})
    run_dir = fit(cfg, tensorboard=False).run_dir
    spec = dict(estimators="elbo,iwae:20,ais:5", n=30, seed=4, ais_chains=2, ais_leapfrog=2, progress=False)
    fresh = evaluate_run(run_dir, out=tmp_path / "fresh.json", **spec).payload["estimates"]

    real_ais, real_elbo, real_iwae = est_mod.ais, est_mod.elbo_estimate, est_mod.iwae_estimate

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(est_mod, "ais", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run_dir, **spec)
    partial = run_dir / "eval.partial.json"
    assert set(json.loads(partial.read_text())["value"]) == {"elbo", "iwae:20"}
    assert not (run_dir / "eval.json").exists()

    def must_not_run(*a, **k):
        raise AssertionError("a saved estimator was run again")

    monkeypatch.setattr(est_mod, "ais", real_ais)
    monkeypatch.setattr(est_mod, "elbo_estimate", must_not_run)
    monkeypatch.setattr(est_mod, "iwae_estimate", must_not_run)
    again = evaluate_run(run_dir, **spec)
    assert again.path == run_dir / "eval.json" and not partial.exists()
    for tok in fresh:
        assert {k: v for k, v in again.payload["estimates"][tok].items() if k != "seconds"} == \
               {k: v for k, v in fresh[tok].items() if k != "seconds"}, tok

    # a partial file of other settings (here: another seed) is not reused
    monkeypatch.setattr(est_mod, "elbo_estimate", real_elbo)
    monkeypatch.setattr(est_mod, "iwae_estimate", real_iwae)
    monkeypatch.setattr(est_mod, "ais", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run_dir, out=tmp_path / "other.json", **spec)
    assert (tmp_path / "other.partial.json").exists()
    monkeypatch.setattr(est_mod, "ais", real_ais)
    monkeypatch.setattr(est_mod, "elbo_estimate", must_not_run)
    with pytest.raises(AssertionError, match="run again"):
        evaluate_run(run_dir, out=tmp_path / "other.json", **{**spec, "seed": 5})
