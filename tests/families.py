"""The one table of latent families and model types the generic tests run over.

``FAMILY_SPECS`` maps a case name to a latent spec (``{"type": <registered name>, **small kwargs}``) with
every registered latent family at least once, and the relaxed categorical both relaxed and
straight-through. ``MODEL_SPECS`` maps every registered model type to a builder of a small model spec
around a latent spec. ``tests/test_families.py`` fails when a registered family or model type is missing.

To add a check for every family, parametrise over ``FAMILY_CASES`` and build with :func:`make_layer` /
:func:`make_posterior` (or ``build_model(MODEL_SPECS[m](FAMILY_SPECS[f]), data_dim=...)`` for a model).
"""

from __future__ import annotations

import torch

from vaekit.latents import LATENTS, LatentLayer

IN_FEATURES = 5

#: case name -> small latent spec; the type is the registered family name
FAMILY_SPECS: dict[str, dict] = {
    "gaussian": {"type": "gaussian", "dim": 3},
    "full_cov_gaussian": {"type": "full_cov_gaussian", "dim": 3},
    "vmf": {"type": "vmf", "dim": 3},
    "power_spherical": {"type": "power_spherical", "dim": 3},
    "mixture": {"type": "mixture", "dim": 3, "components": 3},
    "iaf": {"type": "iaf", "dim": 3, "steps": 2, "hidden": [8]},
    "relaxed_categorical": {"type": "relaxed_categorical", "dim": 6, "n_categories": 3},
    "relaxed_categorical_st": {"type": "relaxed_categorical", "dim": 6, "n_categories": 3,
                               "straight_through": True},
}

FAMILY_CASES = sorted(FAMILY_SPECS)


def _net(hidden: list[int]) -> dict:
    return {"type": "mlp", "hidden": hidden, "activation": "tanh"}


def _vae(latent: dict) -> dict:
    return {"type": "vae", "encoder": _net([16]), "latent": latent, "decoder": _net([16]),
            "likelihood": {"type": "bernoulli"}}


def _hvae(top: dict) -> dict:
    return {"type": "hvae", "likelihood": {"type": "bernoulli"},
            "layers": [{"encoder": _net([16]), "latent": {"type": "gaussian", "dim": 4}, "decoder": _net([16])},
                       {"encoder": _net([8]), "latent": top, "decoder": _net([8])}]}


def _cvae(condition: dict, prior_net: bool):
    def spec(latent: dict) -> dict:
        return {"type": "cvae", "encoder": _net([16]), "latent": latent, "decoder": _net([16]),
                "likelihood": {"type": "bernoulli"}, "condition": condition,
                "prior_net": _net([8]) if prior_net else None}
    return spec


def _m2(latent: dict) -> dict:
    return {"type": "m2", "classifier": _net([16]), "encoder": _net([16]), "latent": latent, "decoder": _net([16]),
            "likelihood": {"type": "bernoulli"}, "n_classes": 3}


def _sequential(latent: dict) -> dict:
    # two steps: the second step's encoder and decoder see the first step's output (tests/test_sequential_vae.py)
    return {"type": "sequential_vae", "steps": 2, "encoder": _net([16]), "latent": latent, "decoder": _net([16]),
            "likelihood": {"type": "bernoulli"}}


#: model case -> builder of a small spec from a latent spec (the family of the top layer for stacked models);
#: the registered type is the spec's ``type`` (a conditional type has one case per kind of condition)
MODEL_SPECS = {"vae": _vae, "hvae": _hvae, "cvae": _cvae({"type": "label", "n_classes": 3}, prior_net=True),
               "cvae_mask": _cvae({"type": "mask"}, prior_net=True),
               "cvae_tensor": _cvae({"type": "tensor", "dim": 2}, prior_net=False), "m2": _m2,
               "sequential_vae": _sequential}


def _stein(dim: int = 3) -> dict:
    return {"type": "stein_vae", "encoder": _net([16]), "decoder": _net([16]), "likelihood": {"type": "bernoulli"},
            "dim": dim, "particles": 4, "head_hidden": [8]}


#: model types whose posterior has no density (``posterior_density`` False): they take no latent family and are
#: checked by tests/test_stein.py (the protocol's refusals, AIS, BDMC) instead of the table above
NO_DENSITY_MODEL_SPECS = {"stein_vae": _stein}


def _text_vae(latent: dict) -> dict:
    return {"type": "text_vae", "vocab_size": 12, "embed_dim": 8, "encoder": {"hidden": 8}, "latent": latent,
            "decoder": {"hidden": 8}}


#: models of token rows (issue 14), which take int64 sentences instead of the table's feature rows: a builder of a
#: small spec from a latent spec; tests/test_text.py runs the protocol on them
TOKEN_MODEL_SPECS = {
    "text_vae": _text_vae,
    "text_lm": lambda latent=None: {"type": "text_lm", "vocab_size": 12, "embed_dim": 8, "decoder": {"hidden": 8}},
    "text_m2": lambda latent: {**_text_vae(latent), "type": "text_m2", "num_classes": 3, "classifier": {"hidden": 8}},
    "text_classifier": lambda latent=None: {"type": "text_classifier", "vocab_size": 12, "num_classes": 3,
                                            "embed_dim": 8, "encoder": {"hidden": 8}},
}


#: models of sets (issue 15), which take (n_sets, set_size, D) tensors and a support set: the test file that runs
#: the protocol on each (permutation invariance, the VHE bound below the exact log p(X), few-shot)
SET_MODEL_TESTS = {"neural_statistician": "tests/test_sets_models.py", "homoencoder": "tests/test_sets_models.py"}

#: models of images whose networks need the image's shape (issue 17: ConvDRAW's conv-LSTMs need H and W divisible by
#: 4), so the table's flat feature rows do not fit them: the test file that runs the protocol on each
IMAGE_MODEL_TESTS = {"convdraw": "tests/test_convdraw.py"}


def model_conditions(model_case: str, x: torch.Tensor) -> dict:
    """The keyword arguments a model case needs for the batch ``x`` (``{}`` for an unconditional one): labels
    cycling over the classes, the left half of the features observed, or the mean of each half of x."""
    b, d = x.shape
    if model_case in ("cvae", "m2"):
        return {"label": torch.arange(b) % 3}
    if model_case == "cvae_mask":
        return {"mask": torch.arange(d) < d // 2, "observed": x}
    if model_case == "cvae_tensor":
        return {"c": torch.stack([x[:, :d // 2].mean(1), x[:, d // 2:].mean(1)], 1)}  # a summary of the data
    return {}


def make_layer(case: str, dtype: torch.dtype = torch.float64) -> LatentLayer:
    """The latent layer of ``FAMILY_SPECS[case]`` with ``IN_FEATURES`` input features, in ``dtype``."""
    spec = dict(FAMILY_SPECS[case])
    return LATENTS.get(spec.pop("type"))(IN_FEATURES, **spec).to(dtype)


def make_posterior(case: str, batch: int = 4, seed: int = 0, dtype: torch.dtype = torch.float64):
    """``(layer, q, params)``: the layer's posterior for ``batch`` random feature rows (seeded)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the layer's initialisation
    layer = make_layer(case, dtype)
    h = torch.randn(batch, IN_FEATURES, generator=g, dtype=dtype)
    params = layer.params(h)
    return layer, layer.distribution(**params), params
