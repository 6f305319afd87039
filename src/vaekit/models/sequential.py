r"""The sequential VAE of Zhao, Song & Ermon (2017, arXiv:1702.08658, Sec. 6), in miniature: T refinement steps.

Step ``t`` infers a new latent ``z_t`` from the data and the previous output, and reconstructs conditioned on both;
the decoder's output parameters are accumulated through a residual (ResNet-style) shortcut, so each step refines
the previous step's output instead of starting over. With ``T = 1`` the model is exactly a
:class:`~vaekit.models.VAE` (step 1 sees no previous output). The paper trains with a reconstruction loss at every
step (``sequential`` in :data:`~vaekit.objectives.OBJECTIVES`, ``bound: per_step``); the model's log-likelihood
bound is the last step's ELBO (``bound: final``, equal to the ``elbo`` objective).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from ..latents import LATENTS
from ..latents.base import LatentLayer, has_analytic_kl
from ..likelihoods import LIKELIHOODS
from ..likelihoods.base import Likelihood
from ..registry import ConfigError, PositiveInt, build
from .base import MODELS, VAEOutput, _check_k
from .build import build_net
from .hierarchical import TupleLatentModel, TuplePosterior


class SequentialPosterior(TuplePosterior):
    r"""``q(z_{1:T}|x) = \prod_t q(z_t | x, \hat x_{t-1})`` over tuples ``(z_1, ..., z_T)``, batch shape ``(B,)``.

    :math:`\hat x_{t-1}` is the mean of ``p(x | \eta_{t-1}(z_{<t}))``, the previous step's output, so ``z_t``
    depends on the earlier samples through the decoder. Samples are drawn ancestrally (``sample_shape`` draws of
    ``z_1`` per input, one ``z_{t+1}`` per path), each ``(*sample_shape, B, d)``, reparameterised.
    ``log_prob(zs)`` is :math:`\sum_t \log q(z_t|x, \hat x_{t-1})`, shape ``(*sample_shape, B)``.
    ``mean`` is the tuple of step means, each fed forward (what ``encode`` uses).
    """

    def rsample_and_log_prob(self, sample_shape=torch.Size()) -> tuple[tuple[Tensor, ...], Tensor]:
        zs, log_q, _, _ = self.model._chain(self.x, tuple(sample_shape))
        return zs, log_q.sum(0)

    def log_prob(self, zs: Sequence[Tensor]) -> Tensor:
        self.model.check_latent(zs)
        _, log_q, _, _ = self.model._chain(self.x, zs=zs)
        return log_q.sum(0)

    @property
    def mean(self) -> tuple[Tensor, ...]:
        return self.model._chain(self.x, point=True)[0]


class SequentialPrior(Distribution):
    r"""``p(z_{1:T}) = \prod_t p(z_t)`` (each step's latent family's own prior), over tuples; empty batch shape."""

    def __init__(self, model: "SequentialVAE") -> None:
        self.model = model
        super().__init__(torch.Size(), torch.Size(), validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return tuple(lat.prior().sample(tuple(sample_shape)) for lat in self.model.latents)

    def log_prob(self, zs: Sequence[Tensor]) -> Tensor:
        self.model.check_latent(zs)
        return sum(lat.prior().log_prob(z) for lat, z in zip(self.model.latents, zs))


class SequentialVAE(TupleLatentModel):
    r"""T refinement steps, a new latent at each (Zhao, Song & Ermon 2017, arXiv:1702.08658, "sequential VAE").

    .. math::
        \eta_1 = f_1(z_1),\quad \eta_t = \eta_{t-1} + f_t(z_t, \hat x_{t-1})\ (t \ge 2),\quad
        \hat x_t = \mathbb E\,p(x\,|\,\eta_t);

        q(z_{1:T}|x) = q_1(z_1|x) \prod_{t\ge2} q_t(z_t\,|\,x, \hat x_{t-1}),\qquad
        p(x, z_{1:T}) = p(x\,|\,\eta_T) \prod_t p(z_t),

        \log w = \log p(x, z_{1:T}) - \log q(z_{1:T}|x)

    Each step has its own encoder, latent layer and decoder (a non-homogeneous Markov chain); ``f_t``'s input is
    ``[z_t, \hat x_{t-1}]`` and step ``t``'s encoder's ``[x, \hat x_{t-1}]``. The additive update of the likelihood's
    parameters :math:`\eta` (logits for a Bernoulli) is the residual shortcut of the paper's ResNet design; its gated
    shortcuts are not reproduced. The latent is the tuple ``(z_1, ..., z_T)`` of ``(*S, B, d_t)`` tensors, so
    ``log_weights`` (IWAE) and ``log_joint`` (AIS) score the whole sequence through the protocol; ``encode`` is the
    concatenation of the steps' point estimates, each step fed the previous outputs (:meth:`encode_parts` gives the
    list); ``T = 1`` is a :class:`~vaekit.models.VAE` with the same three parts.

    :meth:`forward`'s ``kl`` is :math:`\frac1k\sum_i\sum_t \mathrm{KL}(q_t(\cdot|x, \hat x^{(i)}_{t-1})\,\|\,p(z_t))`
    with each step's KL analytic where registered (else that step's ``log q - log p``): an unbiased estimate of
    :math:`\mathrm{KL}(q(z_{1:T}|x)\,\|\,p(z_{1:T}))` by the chain rule, so ``log_likelihood.mean(0) - kl`` is the
    model's ELBO. :meth:`step_terms` gives the per-step reconstructions and KLs of the paper's per-step loss.

    Args:
        encoders: ``encoders[0]``: ``data_dim ->`` features of ``latents[0]``; ``encoders[t]`` (``t >= 1``):
            ``2 * data_dim ->`` features of ``latents[t]``.
        latents: the steps' latent layers (their priors are the ``p(z_t)``).
        decoders: ``decoders[0]``: ``d_1 -> likelihood.out_features``; ``decoders[t]``: ``d_t + data_dim ->``
            ``likelihood.out_features``.
        likelihood: ``p(x | \eta)``.

    Raises:
        ValueError: no step (``T < 1``), or the three lists differ in length (the message gives the lengths).
    """

    part_name, part_symbol = "step", "T"

    def __init__(self, encoders: Sequence[nn.Module], latents: Sequence[LatentLayer], decoders: Sequence[nn.Module],
                 likelihood: Likelihood) -> None:
        super().__init__()
        if len(latents) < 1:
            raise ValueError(f"a sequential VAE needs T >= 1 steps, got {len(latents)}")
        if not len(encoders) == len(latents) == len(decoders):
            raise ValueError(f"need one encoder, latent layer and decoder per step; got {len(encoders)}, "
                             f"{len(latents)}, {len(decoders)}")
        self.encoders = nn.ModuleList(encoders)
        self.latents = nn.ModuleList(latents)
        self.decoders = nn.ModuleList(decoders)
        self.likelihood = likelihood

    def latent_parts(self) -> Sequence[LatentLayer]:
        return self.latents

    @property
    def steps(self) -> int:
        """T, the number of refinement steps."""
        return len(self.latents)

    # ----- the chain --------------------------------------------------------------------------------
    def _refine(self, t: int, z: Tensor, eta: Tensor | None) -> Tensor:
        """:math:`\\eta_t` from ``z_t`` and :math:`\\eta_{t-1}` (None at step 1)."""
        if eta is None:
            return self.decoders[0](z)
        prev = self.likelihood(eta).mean
        return eta + self.decoders[t](torch.cat([z, prev.expand(*z.shape[:-1], prev.shape[-1])], -1))

    def _posterior_step(self, t: int, x: Tensor, eta: Tensor | None) -> Distribution:
        """``q_t(z_t | x, \\hat x_{t-1})``; batch shape ``x.shape[:-1]`` at step 1, ``eta.shape[:-1]`` after."""
        if eta is None:
            return self.latents[0](self.encoders[0](x))
        prev = self.likelihood(eta).mean
        return self.latents[t](self.encoders[t](torch.cat([x.expand(*prev.shape[:-1], x.shape[-1]), prev], -1)))

    def _chain(self, x: Tensor, sample_shape: tuple[int, ...] = (), zs: Sequence[Tensor] | None = None,
               point: bool = False) -> tuple[tuple[Tensor, ...], Tensor, Tensor, list[Tensor]]:
        """Run the T steps on ``x`` ``(B, D)``: drawing ``z_t`` (``sample_shape`` paths), at given ``zs``, or at the
        posterior's point estimates (``point``).

        Returns:
            ``(zs, log_q, kl, etas)``: the latents; ``log q_t(z_t|...)`` and each step's KL to ``p(z_t)``
            (analytic where registered, else ``log q_t - log p_t`` at the sample), both ``(T, *S, B)`` (zeros for
            ``point``); the
            likelihood parameters :math:`\\eta_t` after every step, each ``(*S, B, out_features)``.
        """
        out_z: list[Tensor] = []
        log_qs: list[Tensor] = []
        kls: list[Tensor] = []
        etas: list[Tensor] = []
        eta: Tensor | None = None
        for t in range(self.steps):
            q, p = self._posterior_step(t, x, eta), self.latents[t].prior()
            if zs is not None:
                z = zs[t]
                lq = q.log_prob(z)
            elif point:
                # a point estimate need not lie in the support (a straight-through code's soft mean): no densities
                z = self.latents[t].point_estimate(q)
                lq = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
            else:
                z, lq = q.rsample_and_log_prob(sample_shape if t == 0 else ())
            if point:
                kl = lq
            else:
                kl = kl_divergence(q, p) if has_analytic_kl(q, p) else lq - p.log_prob(z)
            eta = self._refine(t, z, eta)
            out_z.append(z)
            log_qs.append(lq)
            kls.append(kl.expand(lq.shape))
            etas.append(eta)
        return tuple(out_z), torch.stack(log_qs), torch.stack(kls), etas

    def step_terms(self, x: Tensor, k: int = 1) -> tuple[tuple[Tensor, ...], Tensor, Tensor]:
        r"""Per-step terms of ``k`` reparameterised paths: what the per-step loss is made of.

        Returns:
            ``(zs, log_likelihood, kl)``: the latents ``(z_1, ..., z_T)``, each ``(k, B, d_t)``;
            :math:`\log p(x|\eta_t)` after every step, ``(T, k, B)`` nats; each step's
            :math:`\mathrm{KL}(q_t\|p(z_t))` at the path's earlier samples, ``(T, k, B)`` nats. The model's ELBO
            is ``log_likelihood[-1] - kl.sum(0)`` averaged over ``k``.

        Raises:
            ValueError: ``k`` is not a positive int.
        """
        _check_k(k)
        zs, _, kl, etas = self._chain(x, (k,))
        ll = torch.stack([self.likelihood.log_prob(eta, x) for eta in etas])
        return zs, ll, kl

    # ----- the protocol -----------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> SequentialPosterior:
        """``q(z_{1:T}|x)`` over tuples, batch shape ``(B,)``."""
        return SequentialPosterior(self, x)

    def prior(self) -> SequentialPrior:
        """``p(z_{1:T})`` over tuples, empty batch shape."""
        return SequentialPrior(self)

    def _final_eta(self, zs: Sequence[Tensor]) -> Tensor:
        self.check_latent(zs)
        eta = None
        for t, z in enumerate(zs):
            eta = self._refine(t, z, eta)
        assert eta is not None
        return eta

    def decode(self, zs: Sequence[Tensor]) -> Distribution:
        """``p(x | \\eta_T(z_{1:T}))``; batch shape ``zs[0].shape[:-1]``."""
        return self.likelihood(self._final_eta(zs))

    def log_likelihood(self, x: Tensor, zs: Sequence[Tensor]) -> Tensor:
        """``log p(x | \\eta_T(z_{1:T}))`` in nats, summed over data dims, shape ``zs[0].shape[:-1]``."""
        return self.likelihood.log_prob(self._final_eta(zs), x)

    def forward(self, x: Tensor, k: int = 1) -> VAEOutput:
        """``k`` paths scored by the last step (see the class docstring for ``kl``), one pass through the chain.

        Raises:
            ValueError: ``k`` is not a positive int.
        """
        zs, ll, kl = self.step_terms(x, k)
        return VAEOutput(zs, ll[-1], kl.sum(0).mean(0), self.posterior(x), self.prior())

    @torch.no_grad()
    def sample_steps(self, n: int) -> Tensor:
        """``n`` draws ``z_t ~ p(z_t)`` and every step's output mean :math:`\\hat x_t`, ``(T, n, data_dim)``."""
        zs = self.prior().sample((n,))
        eta, outs = None, []
        for t, z in enumerate(zs):
            eta = self._refine(t, z, eta)
            outs.append(self.likelihood(eta).mean)
        return torch.stack(outs)


@MODELS.register("sequential_vae")
def build_sequential_vae(data_dim: int, image_shape: Sequence[int] | None, steps: PositiveInt, encoder: dict,
                         latent: dict, decoder: dict, likelihood: dict,
                         total_latent_dim: PositiveInt | None = None) -> SequentialVAE:
    """``model: {type: sequential_vae, steps: T, encoder, latent, decoder, likelihood[, total_latent_dim]}``.

    Every step gets its own encoder, latent layer and decoder built from the same specs (widths set by the
    model: see :class:`SequentialVAE`). ``latent.dim`` is the per-step latent size; ``total_latent_dim`` instead
    gives the total, split evenly, ``total_latent_dim / steps`` per step (so runs with different ``steps`` compare
    at equal total latent size). Only the first step's nets see ``image_shape`` (later steps' inputs are
    concatenations, not images).

    Raises:
        ConfigError: ``model.total_latent_dim`` not divisible by ``model.steps``, or at odds with ``model.latent.dim``;
            a bad key of a part, named by its dotted path.
    """
    latent = dict(latent)
    if total_latent_dim is not None:
        if total_latent_dim % steps:
            raise ConfigError(f"model.total_latent_dim: {total_latent_dim} is not divisible by model.steps={steps}; "
                              f"choose a multiple of {steps}")
        per_step = total_latent_dim // steps
        if latent.get("dim", per_step) != per_step:
            raise ConfigError(f"model.latent.dim: {latent['dim']}, but model.total_latent_dim={total_latent_dim} over "
                              f"model.steps={steps} gives {per_step} per step; give one of the two")
        latent["dim"] = per_step
    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    encoders, latents, decoders = [], [], []
    for t in range(steps):
        first = t == 0
        enc = build_net(encoder, "model.encoder", data_dim if first else 2 * data_dim, None, image_shape,
                        not_image=None if first else "reads the image joined with the previous step's output")
        lat = build(LATENTS, latent, "model.latent", in_features=enc.out_features)
        # every step's decoder writes the image, whatever it reads
        dec = build_net(decoder, "model.decoder", lat.dim if first else lat.dim + data_dim, lik.out_features,
                        image_shape)
        encoders.append(enc)
        latents.append(lat)
        decoders.append(dec)
    return SequentialVAE(encoders, latents, decoders, lik)


__all__ = ["SequentialVAE", "SequentialPosterior", "SequentialPrior", "build_sequential_vae"]
