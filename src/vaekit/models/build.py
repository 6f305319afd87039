"""Build models from config specs (``model.type`` picks the builder; every key is checked first)."""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import annotated_types as at
from torch import nn

from ..latents import LATENTS
from ..likelihoods import LIKELIHOODS
from ..nets import NETS
from ..registry import ConfigError, build, check_kwargs
from .base import MODELS
from .vae import VAE

# Every latent family takes a positive ``dim`` but declares plain ``dim: int`` in its own signature; the bound,
# stated once on the registry, makes ``model.latent.dim=0`` fail by its key for every family (LatentLayer's own
# check gives a message without the key).
LATENTS.constrain(dim=at.Ge(1))


def build_net(spec: dict[str, Any], path: str, in_features: int, out_features: int | None,
              image_shape: Sequence[int] | None, not_image: str | None = None) -> nn.Module:
    """Build a network from ``spec`` with the widths the model dictates.

    ``image_shape`` reaches nets that take one (``conv`` reads an image, ``deconv`` writes one). ``not_image`` says
    what this slot reads (an encoder) or writes (a decoder) instead of one image, e.g. "reads the image joined with
    the condition": an image net there is refused with that reason, instead of assuming a 28x28 default.

    Raises:
        ConfigError: naming the dotted key under ``path`` (see :func:`vaekit.registry.build`).
    """
    if not isinstance(spec, dict) or "type" not in spec:
        return build(NETS, spec, path)  # refuses it, naming the path
    fixed: dict[str, Any] = {"in_features": in_features}
    fn = NETS.get(spec["type"], path)
    params = inspect.signature(fn).parameters
    if "image_shape" in params and "image_shape" not in spec and not_image is not None:
        raise ConfigError(f"{path}: a {spec['type']!r} net works on images, but this network {not_image}, not one "
                          "image; use an MLP here ({type: mlp, hidden: [...]})")
    if out_features is not None:
        fixed["out_features"] = out_features
        # the model reads this net's output as parameters (logits), not features: no activation after it
        if "final_activation" in params and "final_activation" not in spec:
            fixed["final_activation"] = False
    elif "out_features" in params and params["out_features"].default is inspect.Parameter.empty:
        raise ConfigError(f"{path}: network type {spec['type']!r} needs out_features")
    if "image_shape" in params and "image_shape" not in spec and image_shape is not None and not_image is None:
        fixed["image_shape"] = tuple(image_shape)
    return build(NETS, spec, path, **fixed)


@MODELS.register("vae")
def build_vae(data_dim: int, image_shape: Sequence[int] | None, encoder: dict, latent: dict, decoder: dict,
              likelihood: dict) -> VAE:
    """``model: {type: vae, encoder: {...}, latent: {...}, decoder: {...}, likelihood: {...}}``."""
    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    enc = build_net(encoder, "model.encoder", data_dim, None, image_shape)
    lat = build(LATENTS, latent, "model.latent", in_features=enc.out_features)
    dec = build_net(decoder, "model.decoder", lat.dim, lik.out_features, image_shape)
    return VAE(enc, lat, dec, lik)


def build_model(spec: dict[str, Any], data_dim: int, image_shape: Sequence[int] | None = None) -> nn.Module:
    """Build ``MODELS[spec['type']]`` for data of flattened size ``data_dim``."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"model: expected a mapping with a 'type' key, got {spec!r}")
    fn = MODELS.get(spec["type"], "model")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    check_kwargs(fn, kwargs, "model", fixed=("data_dim", "image_shape"))
    return fn(data_dim=data_dim, image_shape=image_shape, **kwargs)
