"""A VAE with L stacked stochastic layers (Burda, Grosse & Salakhutdinov 2015, arXiv:1509.00519, Sec. 5).

Built only from existing parts: every posterior layer ``q(z_l | z_{l-1})`` and every conditional prior
``p(z_l | z_{l+1})`` is a :class:`~vaekit.latents.LatentLayer` fed different features (the
bottom-up net's or the top-down net's); the top prior is the top latent's ``prior()``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions.sampling import RsampleAndLogProb
from ..latents import LATENTS
from ..latents.base import LatentLayer
from ..latents.space import LatentSpace, latent_space_of
from ..likelihoods import LIKELIHOODS
from ..likelihoods.base import Likelihood
from ..registry import ConfigError, build
from .base import MODELS, LatentVariableModel
from .build import build_net


class TuplePosterior(RsampleAndLogProb, Distribution):
    """Base of a posterior over a tuple latent ``(z_1, ..., z_L)`` of ``model`` given ``x`` ``(B, D)``: batch shape
    ``(B,)``, reparameterised; subclasses write ``rsample_and_log_prob``, ``log_prob`` and ``mean``."""

    has_rsample = True

    def __init__(self, model: "TupleLatentModel", x: Tensor) -> None:
        self.model, self.x = model, x
        super().__init__(x.shape[:-1], torch.Size(), validate_args=False)

    def rsample(self, sample_shape=torch.Size()) -> tuple[Tensor, ...]:
        return self.rsample_and_log_prob(sample_shape)[0]

    def sample(self, sample_shape=torch.Size()) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return self.rsample(sample_shape)


class StackedPosterior(TuplePosterior):
    r"""``q(z_{1:L}|x) = prod_l q(z_l | z_{l-1})``, ``z_0 = x``, as one distribution over tuples ``(z_1, ..., z_L)``.

    Samples are drawn ancestrally: ``sample_shape`` samples of ``z_1`` per input, one ``z_{l+1}`` per
    ``z_l``, so ``z_l`` has shape ``(*sample_shape, B, D_l)``; reparameterised, so ``z_2`` depends on
    ``z_1``'s noise. ``log_prob(zs)`` is ``sum_l log q(z_l|z_{l-1})``, shape ``(*sample_shape, B)``.
    ``mean`` is the tuple of layer means passed upwards (``m_l = E[z_l | z_{l-1} = m_{l-1}]``),
    what ``encode`` uses.
    """

    def conditionals(self, zs: Sequence[Tensor]) -> list[Distribution]:
        """``[q(z_1|x), q(z_2|z_1), …, q(z_L|z_{L-1})]`` at the given ``zs`` (batch shapes ``zs[l].shape[:-1]``)."""
        inputs = [self.x, *zs[:-1]]
        return [lat(enc(h)) for enc, lat, h in zip(self.model.encoders, self.model.q_layers, inputs)]

    def rsample_and_log_prob(self, sample_shape=torch.Size()) -> tuple[tuple[Tensor, ...], Tensor]:
        zs: list[Tensor] = []
        log_q: Tensor | None = None
        h = self.x
        for l, (enc, lat) in enumerate(zip(self.model.encoders, self.model.q_layers)):
            q = lat(enc(h))
            z, lq = q.rsample_and_log_prob(tuple(sample_shape) if l == 0 else ())
            log_q = lq if log_q is None else log_q + lq
            zs.append(z)
            h = z
        assert log_q is not None
        return tuple(zs), log_q

    def log_prob(self, zs: Sequence[Tensor]) -> Tensor:
        self.model.check_latent(zs)
        return sum(q.log_prob(z) for q, z in zip(self.conditionals(zs), zs))

    @property
    def mean(self) -> tuple[Tensor, ...]:
        out: list[Tensor] = []
        h = self.x
        for enc, lat in zip(self.model.encoders, self.model.q_layers):
            h = lat.point_estimate(lat(enc(h)))
            out.append(h)
        return tuple(out)


class StackedPrior(Distribution):
    r"""``p(z_{1:L}) = p(z_L) prod_{l<L} p(z_l | z_{l+1})`` over tuples ``(z_1, ..., z_L)``; empty batch shape.

    ``sample`` draws ancestrally from the top; ``log_prob(zs)`` has shape ``zs[0].shape[:-1]``.
    """

    def __init__(self, model: "HierarchicalVAE") -> None:
        self.model = model
        super().__init__(torch.Size(), torch.Size(), validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> tuple[Tensor, ...]:
        with torch.no_grad():
            m = self.model
            z = m.q_layers[-1].prior().sample(tuple(sample_shape))
            zs = [z]
            for l in range(m.num_layers - 2, -1, -1):
                z = m.p_layers[l](m.decoders[l + 1](z)).sample()
                zs.insert(0, z)
            return tuple(zs)

    def log_prob(self, zs: Sequence[Tensor]) -> Tensor:
        m = self.model
        m.check_latent(zs)
        total = m.q_layers[-1].prior().log_prob(zs[-1])
        for l in range(m.num_layers - 1):
            total = total + m.p_layers[l](m.decoders[l + 1](zs[l + 1])).log_prob(zs[l])
        return total


class TupleLatentModel(LatentVariableModel):
    """Base of models whose latent is a tuple ``(z_1, ..., z_L)`` of ``(*S, B, D_l)`` tensors, one per latent layer
    of :meth:`latent_parts` (:class:`HierarchicalVAE`'s layers, :class:`~vaekit.models.SequentialVAE`'s steps):
    the widths, the product latent space and the check of a given latent. ``part_name`` and ``part_symbol`` name
    a part and their count in messages. Subclasses set ``likelihood``."""

    part_name, part_symbol = "layer", "L"

    def latent_parts(self) -> Sequence[LatentLayer]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def latent_dims(self) -> list[int]:
        return [q.dim for q in self.latent_parts()]

    @property
    def latent_dim(self) -> int:
        """Width of :meth:`encode`'s output (all parts concatenated)."""
        return sum(self.latent_dims)

    @property
    def latent_space(self) -> LatentSpace:
        """A product of the parts' spaces, ``parts[l]`` for ``z_{l+1}`` (see :class:`~vaekit.latents.LatentSpace`)."""
        parts = tuple(latent_space_of(q.prior()) for q in self.latent_parts())
        return LatentSpace(None, sum(p.dim for p in parts), "product", None,
                           f"a tuple (z_1, ..., z_{self.part_symbol}): move in each {self.part_name}'s space", parts)

    def check_latent(self, zs: Sequence[Tensor]) -> None:
        """Raise ``ValueError`` unless ``zs`` is a sequence ``(z_1, ..., z_L)`` with the parts' widths."""
        dims, sym = self.latent_dims, self.part_symbol
        if isinstance(zs, Tensor) or len(zs) != len(dims):
            raise ValueError(f"expected a sequence of {len(dims)} {self.part_name} samples (z_1, ..., z_{sym}), got "
                             f"{type(zs).__name__}{'' if isinstance(zs, Tensor) else f' of length {len(zs)}'}")
        for l, (z, d) in enumerate(zip(zs, dims)):
            if z.shape[-1] != d:
                raise ValueError(f"z_{l + 1} must have last dimension {d}, got shape {tuple(z.shape)}")

    def encode_parts(self, x: Tensor) -> list[Tensor]:
        """The posterior's point estimate of every part, ``[m_1 (B, D_1), …, m_L]`` (its ``mean`` tuple)."""
        return list(self.posterior(x).mean)

    def encode(self, x: Tensor) -> Tensor:
        """All parts' point estimates concatenated, ``(B, sum_l D_l)`` (see :meth:`encode_parts`)."""
        return torch.cat(self.encode_parts(x), -1)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean of ``p(x | z)`` at the posterior's point estimates (``z_1 = m_1`` for a stack), ``(B, data_dim)``."""
        return self.decode(self.posterior(x).mean).mean


class HierarchicalVAE(TupleLatentModel):
    r"""A VAE with ``L`` stochastic layers: bottom-up inference, top-down generation.

    .. math::
        q(z_{1:L}|x) = \prod_{l=1}^L q(z_l | z_{l-1}),\ z_0 = x;\qquad
        p(x, z_{1:L}) = p(x|z_1)\,\prod_{l=1}^{L-1} p(z_l|z_{l+1})\; p(z_L),

        \log w = \log p(x, z_{1:L}) - \log q(z_{1:L}|x)

    (Burda et al. 2015, arXiv:1509.00519, Sec. 2 and 5; the 2-layer model is
    q: x-200-200-z1(100)-100-100-z2(50), p: z2-100-100-z1-200-200-x). It speaks the protocol like
    :class:`~vaekit.models.VAE`: its latent is the tuple ``z = (z_1, ..., z_L)`` of ``(*S, B, D_l)`` tensors,
    ``posterior(x)`` is a :class:`StackedPosterior` and ``prior()`` a :class:`StackedPrior` over such tuples,
    so ``log_weights``, ``forward`` (whose ``kl`` is the Monte Carlo estimate: no formula exists for the
    stacked pair) and the objectives come from :class:`~vaekit.models.LatentVariableModel` unchanged.
    ``encode(x)`` is the concatenation ``[m_1, …, m_L]`` of the layer means passed upwards;
    :meth:`encode_layers` gives the list, so active units can be counted per layer.

    Args:
        encoders: ``encoders[l]`` maps ``z_{l-1}`` (``x`` for ``l = 0``) to features of ``posteriors[l]``.
        posteriors: ``q(z_l | z_{l-1})`` layers; ``posteriors[-1].prior()`` is the top prior ``p(z_L)``.
        decoders: ``decoders[0]`` maps ``z_1`` to the likelihood's parameters; ``decoders[l]`` (``l >= 1``)
            maps ``z_{l+1}`` to features of ``priors[l-1]``.
        priors: ``L - 1`` conditional prior layers ``p(z_l | z_{l+1})``, ``l = 1..L-1``.
        likelihood: ``p(x | z_1)``.
    """

    def __init__(self, encoders: Sequence[nn.Module], posteriors: Sequence[LatentLayer], decoders: Sequence[nn.Module],
                 priors: Sequence[LatentLayer], likelihood: Likelihood) -> None:
        super().__init__()
        n = len(posteriors)
        if n < 1 or len(encoders) != n or len(decoders) != n or len(priors) != n - 1:
            raise ValueError(f"need L >= 1 posteriors with L encoders, L decoders and L-1 priors; got "
                             f"{len(encoders)}, {n}, {len(decoders)}, {len(priors)}")
        for l in range(n - 1):
            if priors[l].dim != posteriors[l].dim:
                raise ValueError(f"prior layer {l} has dim {priors[l].dim} but posterior layer {l} has {posteriors[l].dim}")
        self.encoders = nn.ModuleList(encoders)
        self.q_layers = nn.ModuleList(posteriors)  # q(z_l | z_{l-1})
        self.decoders = nn.ModuleList(decoders)
        self.p_layers = nn.ModuleList(priors)  # p(z_l | z_{l+1}), l < L
        self.likelihood = likelihood

    def latent_parts(self) -> Sequence[LatentLayer]:
        return self.q_layers

    @property
    def num_layers(self) -> int:
        return len(self.q_layers)

    # ----- the protocol -----------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> StackedPosterior:
        """``q(z_{1:L}|x)`` over tuples, batch shape ``(B,)``."""
        return StackedPosterior(self, x)

    def prior(self) -> StackedPrior:
        """``p(z_{1:L})`` over tuples, empty batch shape."""
        return StackedPrior(self)

    def decode(self, zs: Sequence[Tensor]) -> Distribution:
        """``p(x | z_1)``; batch shape ``zs[0].shape[:-1]``."""
        return self.likelihood(self.decoders[0](zs[0]))

    def log_likelihood(self, x: Tensor, zs: Sequence[Tensor]) -> Tensor:
        """``log p(x | z_1)`` in nats, summed over data dims, shape ``zs[0].shape[:-1]``."""
        self.check_latent(zs)
        return self.likelihood.log_prob(self.decoders[0](zs[0]), x)

    def encode_layers(self, x: Tensor) -> list[Tensor]:
        """Per-layer point estimates ``[m_1 (B, D_1), …, m_L]``, means passed upwards."""
        return self.encode_parts(x)


_LAYER_KEYS = {"encoder", "latent", "decoder", "prior"}


@MODELS.register("hvae")
def build_hvae(data_dim: int, image_shape: Sequence[int] | None, layers: list, likelihood: dict) -> HierarchicalVAE:
    """``model: {type: hvae, layers: [{encoder, latent, decoder[, prior]}, …], likelihood: {...}}``, bottom layer first.

    ``layers[l].encoder`` maps ``z_{l}`` (``x`` for ``l = 0``) to features of ``layers[l].latent``;
    ``layers[0].decoder`` maps ``z_1`` to the likelihood's parameters; ``layers[l].decoder`` (``l >= 1``)
    maps ``z_{l+1}`` to features of the conditional prior of the layer below, which is a latent layer
    built from ``layers[l-1].prior`` (default: the same spec as ``layers[l-1].latent``).
    """
    if not isinstance(layers, list) or not layers:
        raise ConfigError(f"model.layers: expected a non-empty list of layer specs, got {layers!r}")
    for i, spec in enumerate(layers):
        if not isinstance(spec, dict):
            raise ConfigError(f"model.layers[{i}]: expected a mapping, got {spec!r}")
        unknown = set(spec) - _LAYER_KEYS
        missing = {"encoder", "latent", "decoder"} - set(spec)
        if unknown:
            raise ConfigError(f"model.layers[{i}]: unknown key(s) {sorted(unknown)}; allowed {sorted(_LAYER_KEYS)}")
        if missing:
            raise ConfigError(f"model.layers[{i}]: missing required key(s) {sorted(missing)}")
        if "prior" in spec and i == len(layers) - 1:
            raise ConfigError(f"model.layers[{i}].prior: the top layer's prior is its latent's prior(); remove 'prior'")
    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    encoders, posteriors, decoders, priors = [], [], [], []
    width = data_dim
    for i, spec in enumerate(layers):
        enc = build_net(spec["encoder"], f"model.layers[{i}].encoder", width, None, image_shape,
                        not_image=None if i == 0 else f"reads the layer-{i - 1} latent")
        lat = build(LATENTS, spec["latent"], f"model.layers[{i}].latent", in_features=enc.out_features)
        encoders.append(enc)
        posteriors.append(lat)
        width = lat.dim
    for i, spec in enumerate(layers):
        if i == 0:
            dec = build_net(spec["decoder"], "model.layers[0].decoder", posteriors[0].dim, lik.out_features, image_shape)
        else:
            dec = build_net(spec["decoder"], f"model.layers[{i}].decoder", posteriors[i].dim, None, None,
                            not_image=f"writes the features of the layer-{i - 1} prior")
            below = layers[i - 1]
            pspec = below.get("prior", below["latent"])
            prior = build(LATENTS, pspec, f"model.layers[{i - 1}].prior", in_features=dec.out_features)
            if prior.dim != posteriors[i - 1].dim:
                raise ConfigError(f"model.layers[{i - 1}].prior: dim {prior.dim} != latent dim {posteriors[i - 1].dim}")
            priors.append(prior)
        decoders.append(dec)
    return HierarchicalVAE(encoders, posteriors, decoders, priors, lik)


__all__ = ["TupleLatentModel", "TuplePosterior", "HierarchicalVAE", "StackedPosterior", "StackedPrior", "build_hvae"]
