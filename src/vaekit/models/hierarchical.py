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

from ..latents import LATENTS
from ..latents.base import LatentLayer
from ..latents.space import LatentSpace, latent_space_of
from ..likelihoods import LIKELIHOODS
from ..likelihoods.base import Likelihood
from ..registry import ConfigError, build
from .base import MODELS, VAEOutput
from .build import build_net


class HierarchicalVAE(nn.Module):
    r"""A VAE with ``L`` stochastic layers: bottom-up inference, top-down generation.

    .. math::
        q(z_{1:L}|x) = \prod_{l=1}^L q(z_l | z_{l-1}),\ z_0 = x;\qquad
        p(x, z_{1:L}) = p(x|z_1)\,\prod_{l=1}^{L-1} p(z_l|z_{l+1})\; p(z_L),

        \log w = \log p(x, z_{1:L}) - \log q(z_{1:L}|x)

    (Burda et al. 2015, arXiv:1509.00519, Sec. 2 and 5; the 2-layer model is
    q: x-200-200-z1(100)-100-100-z2(50), p: z2-100-100-z1-200-200-x). Samples are drawn
    ancestrally with the reparameterisation trick, so ``z_2`` depends on ``z_1``'s noise.

    Args:
        encoders: ``encoders[l]`` maps ``z_{l-1}`` (``x`` for ``l = 0``) to features of ``posteriors[l]``.
        posteriors: ``q(z_l | z_{l-1})`` layers; ``posteriors[-1].prior()`` is the top prior ``p(z_L)``.
        decoders: ``decoders[0]`` maps ``z_1`` to the likelihood's parameters; ``decoders[l]`` (``l >= 1``)
            maps ``z_{l+1}`` to features of ``priors[l-1]``.
        priors: ``L - 1`` conditional prior layers ``p(z_l | z_{l+1})``, ``l = 1..L-1``.
        likelihood: ``p(x | z_1)``.

    Protocol differences from :class:`~vaekit.models.VAE` (documented, since a stack has no single ``z``):

    * ``z`` arguments (``log_joint``, ``decode``…) are sequences ``[z_1, …, z_L]`` of ``(*S, B, D_l)`` tensors;
      ``VAEOutput.z`` is the top layer's sample and ``kl`` is the ``(k, B)`` Monte Carlo estimate
      ``log q - log p`` summed over layers (no analytic KL between a stacked q and p).
    * ``posterior(x)`` raises: the joint posterior over layers is not a single ``torch.distributions``
      object; use :meth:`posteriors` (ancestral, on given samples) or :meth:`log_weights`.
    * ``prior()`` is the top prior ``p(z_L)``.
    * ``encode(x)`` is the concatenation ``[m_1, …, m_L]`` of layer means computed by passing means up
      (``m_1 = E[z_1|x]``, ``m_l = E[z_l | z_{l-1} = m_{l-1}]``); :meth:`encode_layers` gives the list,
      so active units can be counted per layer.
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

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def decoder(self) -> nn.Module:
        """The network that maps ``z_1`` to the likelihood's parameters (``decoders[0]``), for code that
        initialises or inspects "the decoder" (e.g. ``train.init_output_bias``)."""
        return self.decoders[0]

    @property
    def num_layers(self) -> int:
        return len(self.q_layers)

    @property
    def latent_dims(self) -> list[int]:
        return [p.dim for p in self.q_layers]

    @property
    def latent_dim(self) -> int:
        """Width of :meth:`encode`'s output (all layers concatenated)."""
        return sum(self.latent_dims)

    @property
    def latent_space(self) -> LatentSpace:
        """A product of the layers' spaces, ``parts[l]`` for ``z_{l+1}`` (see :class:`~vaekit.latents.LatentSpace`)."""
        parts = tuple(latent_space_of(q.prior()) for q in self.q_layers)
        return LatentSpace(None, sum(p.dim for p in parts), "product", None,
                           "a tuple (z_1, ..., z_L): move in each part's space", parts)

    def inference_modules(self) -> tuple[nn.Module, ...]:
        """The modules that hold q's parameters (phi); everything else is generative (theta)."""
        return (self.encoders, self.q_layers)

    # ----- distributions --------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> Distribution:
        raise NotImplementedError(
            "HierarchicalVAE has no single posterior distribution over its stacked layers; use "
            "posteriors(x, zs), log_weights(x, k), encode(x) or encode_layers(x)")

    def prior(self) -> Distribution:
        """The top prior ``p(z_L)`` (empty batch shape, event ``(D_L,)``)."""
        return self.q_layers[-1].prior()

    def posteriors(self, x: Tensor, zs: Sequence[Tensor]) -> list[Distribution]:
        """``[q(z_1|x), q(z_2|z_1), …]`` given the lower layers' samples ``zs`` (``zs[l-1]`` conditions layer ``l``)."""
        inputs = [x, *zs[:-1]]
        return [lat(enc(h)) for enc, lat, h in zip(self.encoders, self.q_layers, inputs)]

    def conditional_priors(self, zs: Sequence[Tensor]) -> list[Distribution]:
        """``[p(z_1|z_2), …, p(z_{L-1}|z_L)]`` for samples ``zs = [z_1, …, z_L]``."""
        return [self.p_layers[l](self.decoders[l + 1](zs[l + 1])) for l in range(self.num_layers - 1)]

    def decode(self, z1: Tensor) -> Distribution:
        """``p(x | z_1)``; batch shape ``z1.shape[:-1]``."""
        return self.likelihood(self.decoders[0](z1))

    def _check_zs(self, zs: Sequence[Tensor]) -> None:
        if isinstance(zs, Tensor) or len(zs) != self.num_layers:
            raise ValueError(f"expected a sequence of {self.num_layers} layer samples [z_1, ..., z_L], got "
                             f"{type(zs).__name__}{'' if isinstance(zs, Tensor) else f' of length {len(zs)}'}")
        for l, (z, d) in enumerate(zip(zs, self.latent_dims)):
            if z.shape[-1] != d:
                raise ValueError(f"z_{l + 1} must have last dimension {d}, got shape {tuple(z.shape)}")

    def log_prior(self, zs: Sequence[Tensor]) -> Tensor:
        """``log p(z_L) + sum_l log p(z_l | z_{l+1})``, shape of ``zs[0].shape[:-1]``."""
        self._check_zs(zs)
        total = self.prior().log_prob(zs[-1])
        for l, p in enumerate(self.conditional_priors(zs)):
            total = total + p.log_prob(zs[l])
        return total

    def log_posterior(self, x: Tensor, zs: Sequence[Tensor]) -> Tensor:
        """``log q(z_{1:L}|x) = sum_l log q(z_l | z_{l-1})``."""
        self._check_zs(zs)
        return sum(q.log_prob(z) for q, z in zip(self.posteriors(x, zs), zs))

    def log_likelihood(self, x: Tensor, zs: Sequence[Tensor]) -> Tensor:
        """``log p(x | z_1)``, summed over data dims."""
        self._check_zs(zs)
        return self.decode(zs[0]).log_prob(x)

    def log_joint(self, x: Tensor, zs: Sequence[Tensor]) -> Tensor:
        """``log p(x, z_{1:L})`` for ``zs = [z_1, …, z_L]`` each ``(*S, B, D_l)`` -> ``(*S, B)``."""
        return self.log_likelihood(x, zs) + self.log_prior(zs)

    # ----- sampling and scoring ----------------------------------------------------------------------
    def _infer(self, x: Tensor, k: int, rsample: bool = True) -> tuple[list[Tensor], Tensor, list[dict[str, Tensor]]]:
        """Ancestral samples ``[z_1 (k,B,D_1), …]``, ``log q`` ``(k,B)`` and each layer's q-parameters."""
        zs: list[Tensor] = []
        params: list[dict[str, Tensor]] = []
        log_q = None
        h: Tensor = x
        for l, (enc, lat) in enumerate(zip(self.encoders, self.q_layers)):
            p = lat.params(enc(h))
            q = lat.distribution(**p)
            shape = (k,) if l == 0 else ()  # layer 1 draws k; higher layers one per lower sample
            z = q.rsample(shape) if (rsample and q.has_rsample) else q.sample(shape)
            lq = q.log_prob(z)
            log_q = lq if log_q is None else log_q + lq
            zs.append(z)
            params.append(p)
            h = z
        assert log_q is not None
        return zs, log_q, params

    def forward(self, x: Tensor, k: int = 1) -> VAEOutput:
        """``k`` ancestral posterior samples scored under the model (see :class:`VAEOutput`); ``kl`` is the
        ``(k, B)`` Monte Carlo estimate ``log q(z|x) - log p(z)`` summed over layers."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        zs, log_q, _ = self._infer(x, k)
        log_p = self.log_prior(zs)
        log_lik = self.decode(zs[0]).log_prob(x)
        return VAEOutput(z=zs[-1], log_likelihood=log_lik, log_prior=log_p, log_posterior=log_q,
                         kl=log_q - log_p, kl_per_dim=None)

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """``(k, B)``: ``log p(x, z_{1:L}) - log q(z_{1:L}|x)`` summed over every layer."""
        zs, log_q, _ = self._infer(x, k, rsample=False)
        return self.log_joint(x, zs) - log_q

    def dreg_log_weights(self, x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
        r"""The three ``(k, B)`` terms the DReG objective needs (Tucker et al. 2018, arXiv:1810.04152).

        ``(log_w, log_w_theta, log_w_phi)`` on one reparameterised ancestral sample:
        ``log_w_theta = log p_theta(x, sg(z)) - sg(log q)`` and
        ``log_w_phi = log p_{sg(theta)}(x, z) - log q_{sg(phi)}(z|x)``, where ``q_{sg(phi)}`` re-runs
        the inference nets with *detached parameters* on the live samples, so the dependence of
        ``q(z_2|z_1)`` on ``z_1`` (a path term) is kept and only the explicit phi-dependence is removed.
        """
        zs, log_q, _ = self._infer(x, k)
        zd = [z.detach() for z in zs]
        log_w_theta = self.log_joint(x, zd) - log_q.detach()
        frozen = {f"model.{n}": p.detach() for n, p in self.named_parameters()}
        log_w_phi = torch.func.functional_call(_LogWeightOn(self), frozen, (x, zs), strict=False)
        return log_w_theta.detach(), log_w_theta, log_w_phi

    # ----- codes, reconstructions, samples -------------------------------------------------------------
    def encode_layers(self, x: Tensor) -> list[Tensor]:
        """Per-layer point estimates ``[m_1 (B, D_1), …, m_L]``, means passed upwards."""
        out: list[Tensor] = []
        h = x
        for enc, lat in zip(self.encoders, self.q_layers):
            m = lat.point_estimate(lat(enc(h)))
            out.append(m)
            h = m
        return out

    def encode(self, x: Tensor) -> Tensor:
        """All layers' means concatenated, ``(B, sum_l D_l)`` (see :meth:`encode_layers`)."""
        return torch.cat(self.encode_layers(x), -1)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean of ``p(x | z_1 = m_1)``, ``(B, data_dim)``."""
        return self.decode(self.encode_layers(x)[0]).mean

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True) -> Tensor:
        """Ancestral samples ``z_L ~ p(z_L)``, ``z_l ~ p(z_l|z_{l+1})``, decoded to ``(n, data_dim)``
        (the mean of ``p(x|z_1)``, or a draw if ``mean`` is False)."""
        z = self.prior().sample((n,))
        for l in range(self.num_layers - 2, -1, -1):
            z = self.p_layers[l](self.decoders[l + 1](z)).sample()
        px = self.decode(z)
        return px.mean if mean else px.sample()

    def validate_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a ``ValueError`` naming the problem if this model cannot score ``x``."""
        self.likelihood.validate(x, name)


class _LogWeightOn(nn.Module):
    """Adapter for :func:`torch.func.functional_call`: ``log p(x, zs) - log q(zs|x)`` of the wrapped model."""

    def __init__(self, model: HierarchicalVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, zs: Sequence[Tensor]) -> Tensor:
        return self.model.log_joint(x, zs) - self.model.log_posterior(x, zs)


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
        enc = build_net(spec["encoder"], f"model.layers[{i}].encoder", width, None, image_shape if i == 0 else None)
        lat = build(LATENTS, spec["latent"], f"model.layers[{i}].latent", in_features=enc.out_features)
        encoders.append(enc)
        posteriors.append(lat)
        width = lat.dim
    for i, spec in enumerate(layers):
        if i == 0:
            dec = build_net(spec["decoder"], "model.layers[0].decoder", posteriors[0].dim, lik.out_features, image_shape)
        else:
            dec = build_net(spec["decoder"], f"model.layers[{i}].decoder", posteriors[i].dim, None, None)
            below = layers[i - 1]
            pspec = below.get("prior", below["latent"])
            prior = build(LATENTS, pspec, f"model.layers[{i - 1}].prior", in_features=dec.out_features)
            if prior.dim != posteriors[i - 1].dim:
                raise ConfigError(f"model.layers[{i - 1}].prior: dim {prior.dim} != latent dim {posteriors[i - 1].dim}")
            priors.append(prior)
        decoders.append(dec)
    return HierarchicalVAE(encoders, posteriors, decoders, priors, lik)


__all__ = ["HierarchicalVAE", "build_hvae"]
