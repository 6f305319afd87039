"""Strict config loading: unknown keys, wrong types and bad overrides fail naming the dotted key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaekit.config import (ConfigError, RunConfig, apply_overrides, from_dict, load_config, load_config_json,
                           parse_override, save_config_json, to_dict)
from vaekit.models import build_model
from vaekit.train import check_config
from vaekit.train.schedules import IWAESchedule, build_schedule

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"type": "vae", "encoder": {"type": "mlp", "hidden": [16]}, "latent": {"type": "gaussian", "dim": 2},
         "decoder": {"type": "mlp", "hidden": [16]}, "likelihood": {"type": "bernoulli"}}


def raw(**over):
    d = {"data": {"name": "digits"}, "model": json.loads(json.dumps(MODEL)), "train": {"epochs": 2}}
    d.update(over)
    return d


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_load_and_build(name):
    cfg = load_config(ROOT / "configs" / name)
    shape = {"vae_digits.yaml": (64, (1, 8, 8)), "aevb_frey.yaml": (560, (1, 28, 20))}.get(name, (784, (1, 28, 28)))
    build_model(cfg.model, *shape)


def test_unknown_key_names_dotted_key():
    with pytest.raises(ConfigError, match=r"train\.epochz: unknown key; allowed keys are \[.*'epochs'"):
        from_dict(raw(train={"epochz": 3}))
    with pytest.raises(ConfigError, match=r"^data\.nme: unknown key"):
        from_dict(raw(data={"nme": "digits"}))
    with pytest.raises(ConfigError, match=r"^bogus: unknown key"):
        from_dict(raw(bogus=1))


@pytest.mark.parametrize("section,key,value", [
    ("train", "epochs", "ten"), ("train", "epochs", 2.5), ("train", "epochs", True), ("train", "lr", "fast"),
    ("train", "grad_clip", "big"), ("data", "binarize", "sometimes"), ("eval", "split", "dev"),
    ("train", "betas", 0.9),
])
def test_wrong_type_names_dotted_key(section, key, value):
    with pytest.raises(ConfigError, match=rf"^{section}\.{key}: expected"):
        from_dict(raw(**{section: {key: value}}))


def test_bad_values_and_nested_specs():
    with pytest.raises(ConfigError, match=r"train\.lr: must be > 0"):
        from_dict(raw(train={"lr": -1.0}))
    # config only describes the objective and schedule; check_config builds them before any data are loaded
    bad_objective = from_dict(raw(train={"objective": {"type": "elbo", "kk": 3}}))
    with pytest.raises(ConfigError, match=r"^train\.objective\.kk: unknown key"):
        check_config(bad_objective)
    with pytest.raises(ConfigError, match=r"^train\.lr_schedule\.type: unknown learning-rate schedule 'cosine'"):
        check_config(from_dict(raw(train={"lr_schedule": {"type": "cosine"}})))
    with pytest.raises(ConfigError, match=r"^train\.objective\.k: expected an integer >= 1, got int 0$"):
        check_config(from_dict(raw(train={"objective": {"type": "elbo", "k": 0}})))
    with pytest.raises(ConfigError, match=r"^model: null means a model built by hand"):
        check_config(from_dict(raw(model=None)))
    check_config(from_dict(raw()))
    with pytest.raises(ConfigError, match=r"device: expected one of"):
        from_dict(raw(device="tpu"))
    with pytest.raises(ConfigError, match=r"^model: missing"):
        from_dict({"data": {"name": "digits"}})
    # model keys are checked by build_model, naming the key
    with pytest.raises(ConfigError, match=r"model\.latent\.dimm: unknown key"):
        build_model(apply_overrides(MODEL, ["latent.dimm=3"]), 64, (1, 8, 8))


def test_overrides_parse_yaml_values_and_fail_clearly(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {name: digits}\nmodel: {type: vae}\ntrain: {lr: 1e-3, epochs: 3}\n")
    cfg = load_config(p, ["train.lr=3e-4", "train.grad_clip=5", "model.latent.dim=2", "train.betas=[0.5, 0.9]",
                          "eval.n=null"])
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float)  # YAML 1.1 would give the string "3e-4"
    assert cfg.train.grad_clip == 5 and cfg.model["latent"] == {"dim": 2}
    assert cfg.train.betas == (0.5, 0.9) and cfg.eval.n is None
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key"):
        load_config(p, ["train.lrr=1.0"])
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer, got str 'many'"):
        load_config(p, ["train.epochs=many"])
    with pytest.raises(ConfigError, match=r"dotted\.key=value"):
        load_config(p, ["train.lr"])
    with pytest.raises(ConfigError, match=r"train\.lr: is float .* cannot set train\.lr\.x"):
        load_config(p, ["train.lr.x=1"])
    with pytest.raises(ConfigError, match=r"train\.lr: cannot parse override value"):
        load_config(p, ["train.lr=[1"])
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_json_round_trip(tmp_path):
    cfg = load_config(ROOT / "configs" / "vae_digits.yaml", ["train.grad_clip=1.5", "run_name=x"])
    save_config_json(cfg, tmp_path / "config.json")
    back = load_config_json(tmp_path / "config.json")
    assert back == cfg and isinstance(back.train.betas, tuple)
    assert from_dict(to_dict(cfg)) == cfg
    assert json.loads((tmp_path / "config.json").read_text())["train"]["grad_clip"] == 1.5
    assert isinstance(RunConfig(model=MODEL).train.objective, dict)


def test_iwae_schedule_matches_burda():
    s = IWAESchedule(max_stage=7)
    # stage i lasts 3^i passes at 10^(-i/7): epochs 0 | 1-3 | 4-12 | 13-39 ...
    assert [s.stage(e) for e in (0, 1, 3, 4, 12, 13, 39, 40)] == [0, 1, 1, 2, 2, 3, 3, 4]
    assert s.total_epochs() == 3280 and s.stage(3279) == 7 and s.stage(10 ** 5) == 7
    assert s(4) == pytest.approx(10 ** (-2 / 7))
    assert build_schedule({"type": "exponential", "gamma": 0.5})(3) == 0.125
    with pytest.raises(ConfigError, match="gamma"):
        build_schedule({"type": "exponential"})


def test_multistep_schedule_matches_torch_multisteplr():
    import torch

    spec = {"type": "multistep", "milestones": [4, 7], "gamma": 0.3}
    ours = build_schedule(spec)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 7], gamma=0.3)
    for epoch in range(10):
        assert ours(epoch) == pytest.approx(opt.param_groups[0]["lr"]), epoch
        opt.step()
        ref.step()
    for bad, key in (({"milestones": [5, 5]}, "milestones"), ({"milestones": [3], "gamma": 0.0}, "gamma"),
                     ({"milestones": [-1]}, "milestones")):
        with pytest.raises(ConfigError, match=key):
            build_schedule({"type": "multistep", **bad})
