"""A bad config value fails with one line naming the dotted key, the value and what is allowed (issue 18, item 4).

Every case goes through the command line as a user meets it, ``vaekit train --config configs/vae_digits.yaml
KEY=VALUE`` (in-process, ``vaekit.cli.main.main``), and must exit with status 2 before the first training step.
Before, ``model.latent.dim=0`` said "in_features and dim must be positive, got 128 and 0", ``hidden=128`` "'int'
object is not iterable", ``hidden=[a,b]`` "'<' not supported between instances of 'str' and 'int'", an
activation typo and ``train.objective.k=0`` named no key, and ``data.name=nope`` was reported as ``data.type``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vaekit.cli.main import main
from vaekit.data.base import DATASETS
from vaekit.nets import NETS

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "vae_digits.yaml")
ACTIVATIONS = "'tanh', 'relu', 'elu', 'gelu', 'softplus', 'leaky_relu', 'silu', 'sigmoid'"

CASES = [
    # the examples
    (["model.latent.dim=0"], "model.latent.dim: expected an integer >= 1, got int 0"),
    (["model.encoder.hidden=128"], "model.encoder.hidden: expected a list (each item an integer >= 1), got int 128"),
    (["model.encoder.hidden=[a,b]"], "model.encoder.hidden[0]: expected an integer >= 1, got str 'a'; "
                                     "model.encoder.hidden[1]: expected an integer >= 1, got str 'b'"),
    (["model.encoder.activation=rleu"], f"model.encoder.activation: expected one of {ACTIVATIONS}, got str 'rleu'"),
    (["data.name=nope"], f"data.name: unknown dataset 'nope'; choose one of {sorted(DATASETS.names())}"),
    (["train.objective.k=0"], "train.objective.k: expected an integer >= 1, got int 0"),
    # Literal-typed options list what they allow
    (["model.latent.scale_link=softmax"], "model.latent.scale_link: expected one of 'softplus', 'exp', got str "
                                          "'softmax'"),
    (["data.binarize=sometimes"], "data.binarize: expected one of 'dynamic', 'static', 'none', got str 'sometimes'"),
    (["train.init_weights=xavier"], "train.init_weights: expected one of 'default', 'glorot_uniform', got str "
                                    "'xavier'"),
    (["train.nonfinite=ignore"], "train.nonfinite: expected one of 'stop', 'skip', got str 'ignore'"),
    (["train.select_by=loss"], "train.select_by: expected one of 'objective', 'elbo', got str 'loss'"),
    (["eval.split=dev"], "eval.split: expected one of 'train', 'val', 'test', got str 'dev'"),
    (["device=tpu"], "device: expected one of 'cpu', 'cuda', 'auto', got str 'tpu'"),
    (["model.decoder.activation=Tanh"], f"model.decoder.activation: expected one of {ACTIVATIONS}, got str 'Tanh'"),
    # nothing is silently converted: a float, a string or a bool is not an integer
    (["model.latent.dim=2.0"], "model.latent.dim: expected an integer >= 1, got float 2.0"),
    (['model.latent.dim="2"'], "model.latent.dim: expected an integer >= 1, got str '2'"),
    (["train.epochs=true"], "train.epochs: expected an integer, got bool True"),
    (["train.lr=fast"], "train.lr: expected a number, got str 'fast'"),
    (["train.grad_clip=big"], "train.grad_clip: expected a number or null, got str 'big'"),
    (["model.encoder.activation=null"], f"model.encoder.activation: expected one of {ACTIVATIONS}, got null"),
    (["model.likelihood.type=gaussian", "model.likelihood.learn_scale=1"],
     "model.likelihood.learn_scale: expected true or false, got int 1"),
    # lists, their items and their lengths
    (["model.decoder.hidden=[128,0]"], "model.decoder.hidden[1]: expected an integer >= 1, got int 0"),
    (["train.betas=[0.9]"], "train.betas: expected a list of 2 items (each a number), got list [0.9]"),
    (["model.encoder={type: conv, channels: [8, 16, 32]}"],
     "model.encoder.channels: expected a list of 2 items (each an integer >= 1), got list [8, 16, 32]"),
    # bounds
    (["train.lr_schedule.gamma=2"], "train.lr_schedule.gamma: expected a number > 0 and <= 1, got int 2"),
    (["train.objective.type=iwae", "train.objective.k=-1"], "train.objective.k: expected an integer >= 1, got int -1"),
    (["train.objective.beta=-0.5"], "train.objective.beta: expected a number >= 0, got float -0.5"),
    (["train.objective.warmup_start=2"], "train.objective.warmup_start: expected a number >= 0 and <= 1, got int 2"),
    (["model.likelihood.type=gaussian", "model.likelihood.scale=0"],
     "model.likelihood.scale: expected a number > 0, got int 0"),
    (["model.likelihood.type=categorical", "model.likelihood.levels=1"],
     "model.likelihood.levels: expected an integer >= 2, got int 1"),
    # sections, types and keys
    (["model.encoder=128"], "model.encoder: expected a mapping, got int 128"),
    (["model.encoder.type=rnn"], f"model.encoder.type: unknown network 'rnn'; choose one of {sorted(NETS.names())}"),
    (["model.latent.type=gausian"], "model.latent.type: unknown latent layer 'gausian'; choose one of"),
    (["train.objective.kk=3"], "train.objective.kk: unknown key; allowed keys are ['beta', 'free_bits', 'k', "
                               "'warmup_shape', 'warmup_start', 'warmup_steps']"),
    # every latent family's own parameters, and the data loader's options, are typed and bounded too
    (["model.latent.type=mixture", "model.latent.components=0"],
     "model.latent.components: expected an integer >= 1, got int 0"),
    (["model.latent.type=relaxed_categorical", "model.latent.dim=10", "model.latent.temperature=0"],
     "model.latent.temperature: expected a number >= 0.001 and <= 1000.0, got int 0"),
    (["model.latent.type=vmf", "model.latent.fixed_kappa=0"],
     "model.latent.fixed_kappa: expected a number > 0 or null, got int 0"),
    (["model.latent.type=iaf", "model.latent.steps=0"], "model.latent.steps: expected an integer >= 1, got int 0"),
    (["data.options.foo=1"], "data.options.foo: data set 'digits' takes no options"),
    (["data.name=array", "data.options.pathh=x"],
     "data.options.pathh: unknown key; allowed keys are ['image_shape', 'path', 'test_size']"),
    # a rule between keys, checked by the constructor itself: the section, its values and the rule
    (["model.latent.type=relaxed_categorical", "model.latent.dim=3"],
     'model.latent: dim (3) must be a multiple of n_categories (10) (model.latent is {type: "relaxed_categorical", '
     'dim: 3})'),
]


@pytest.mark.parametrize("overrides,message", CASES, ids=[" ".join(o) for o, _ in CASES])
def test_a_bad_value_names_the_key_the_value_and_what_is_allowed(overrides, message, tmp_path, capsys,
                                                                   monkeypatch):
    from vaekit.train import loop

    monkeypatch.setattr(loop, "_loop", lambda *a, **k: pytest.fail("training started"))
    out = tmp_path / "runs"
    assert main(["train", "--config", CONFIG, *overrides, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaekit: error: " + message), err
    assert err.count("\n") == 1  # one line, no traceback
    assert not out.exists() or not list(out.iterdir())


def test_every_registered_constructor_has_a_schema():
    """A constructor whose type hints cannot be resolved, or that pydantic cannot read, fails here rather than
    at a user's first config."""
    import vaekit.data
    import vaekit.models
    import vaekit.objectives
    import vaekit.train.schedules as schedules
    from vaekit.latents import LATENTS
    from vaekit.likelihoods import LIKELIHOODS
    from vaekit.nets import NETS
    from vaekit.registry import _adapter, _hints

    registries = [LATENTS, LIKELIHOODS, NETS, vaekit.models.MODELS, vaekit.objectives.OBJECTIVES,
                  schedules.SCHEDULES, vaekit.data.DATASETS]
    checked = 0
    for registry in registries:
        for name in registry.names():
            for key, hint in _hints(registry.get(name)).items():
                if key != "return":
                    _adapter(hint)
                    checked += 1
    assert checked > 50
