"""Config builders of the conditional models: ``model.type`` ``cvae`` and ``m2`` (issue 13)."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import annotated_types as at
from typing_extensions import Annotated

from ..latents import LATENTS
from ..likelihoods import LIKELIHOODS
from ..latents.space import latent_space_of
from ..registry import ConfigError, build
from .base import MODELS
from .build import build_net
from .conditional import ConditionalVAE, MaskedPredictor
from .conditions import build_condition
from .m2 import M2, Classifier


@MODELS.register("cvae")
def build_cvae(data_dim: int, image_shape: Sequence[int] | None, encoder: dict, latent: dict, decoder: dict,
               likelihood: dict, condition: dict, prior_net: dict | None = None,
               prior_latent: dict | None = None) -> ConditionalVAE:
    """``model: {type: cvae, condition: {type: label, n_classes: 10} | {type: mask} | {type: tensor, dim: 4},
    encoder, latent, decoder, likelihood, prior_net: null | {type: mlp, hidden: [...]}, prior_latent: null | {...}}``.

    With ``prior_net`` the prior p(z|c) is learned: that network reads the condition's features and a second
    latent layer turns them into the prior, of ``latent``'s family by default or of ``prior_latent``'s (for
    example ``{type: mixture, dim: 20, components: 10}``: a multimodal p(z|c) under a Gaussian posterior; the KL is
    then the Monte Carlo estimate).

    Raises:
        ConfigError: ``model.prior_latent`` without ``model.prior_net``, or a family whose space (geometry, dimension)
            differs from ``model.latent``'s.
    """
    cond = build_condition(condition, data_dim)
    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    enc = build_net(encoder, "model.encoder", data_dim + cond.dim, None, None,
                    not_image=f"reads the image joined with the condition ({data_dim} + {cond.dim} values)")
    lat = build(LATENTS, latent, "model.latent", in_features=enc.out_features)
    dec = build_net(decoder, "model.decoder", lat.dim + cond.dim, lik.out_features, image_shape)
    pnet = plat = None
    if prior_net is not None:
        pnet = build_net(prior_net, "model.prior_net", cond.dim, None, None,
                         not_image=f"reads the condition's {cond.dim} features")
        if prior_latent is None:
            plat = build(LATENTS, latent, "model.latent", in_features=pnet.out_features)
        else:
            plat = build(LATENTS, prior_latent, "model.prior_latent", in_features=pnet.out_features)
            sq, sp = latent_space_of(lat.prior()), latent_space_of(plat.prior())
            if (sq.geometry, sq.dim, sq.n_categories) != (sp.geometry, sp.dim, sp.n_categories):
                raise ConfigError(f"model.prior_latent: a {prior_latent.get('type')!r} prior lives on {sp.geometry} "
                                  f"of dimension {sp.dim}, but the posterior (model.latent, {latent.get('type')!r}) "
                                  f"on {sq.geometry} of dimension {sq.dim}; they must match")
    elif prior_latent is not None:
        raise ConfigError("model.prior_latent: a prior family needs a prior network; set model.prior_net "
                          "(for example {type: mlp, hidden: [500]})")
    return ConditionalVAE(enc, lat, dec, lik, cond, pnet, plat)


@MODELS.register("m2")
def build_m2(data_dim: int, image_shape: Sequence[int] | None, classifier: dict, encoder: dict, latent: dict,
             decoder: dict, likelihood: dict, n_classes: Annotated[int, at.Ge(2)] = 10,
             y_treatment: Literal["enumerate", "relaxed"] = "enumerate",
             temperature: Annotated[float, at.Interval(ge=1e-3, le=1e3)] = 0.5) -> M2:
    """``model: {type: m2, classifier: {type: mlp, ...}, encoder, latent, decoder, likelihood, n_classes: 10,
    y_treatment: enumerate | relaxed, temperature: 0.5}`` (Kingma et al. 2014)."""
    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    clf = build_net(classifier, "model.classifier", data_dim, n_classes, image_shape)
    enc = build_net(encoder, "model.encoder", data_dim + n_classes, None, None,
                    not_image=f"reads the image joined with the one-hot label ({data_dim} + {n_classes} values)")
    lat = build(LATENTS, latent, "model.latent", in_features=enc.out_features)
    dec = build_net(decoder, "model.decoder", lat.dim + n_classes, lik.out_features, image_shape)
    return M2(clf, enc, lat, dec, lik, n_classes, y_treatment, temperature)


def build_masked_predictor(data_dim: int, net: dict, likelihood: dict) -> MaskedPredictor:
    """The deterministic baseline of quadrant completion: ``net`` reads ``[x * m, m]`` (``2 * data_dim``)."""
    lik = build(LIKELIHOODS, likelihood, "baseline.likelihood", data_dim=data_dim)
    return MaskedPredictor(build_net(net, "baseline.net", 2 * data_dim, lik.out_features, None), lik)


def build_classifier(data_dim: int, net: dict, n_classes: int = 10) -> Classifier:
    """The supervised-only baseline: ``net`` from ``data_dim`` features to ``n_classes`` logits."""
    return Classifier(build_net(net, "classifier.net", data_dim, n_classes, None))


def build_from_spec(spec: dict[str, Any], data_dim: int) -> Any:
    """A model from a run spec of :mod:`vaekit.reproduce.conditional`: ``kind`` ``baseline`` (the
    :class:`MaskedPredictor`), ``sup`` (a :class:`Classifier`), else ``spec["model"]`` through ``build_model``."""
    from .build import build_model
    if spec.get("kind") == "baseline":
        return build_masked_predictor(data_dim, **spec["model"])
    if spec.get("kind") == "sup":
        return build_classifier(data_dim, **spec["model"])
    return build_model(spec["model"], data_dim=data_dim)


__all__ = ["build_cvae", "build_m2", "build_masked_predictor", "build_classifier", "build_from_spec"]
