r"""Convolutional DRAW (Gregor, Besse, Rezende, Danihelka & Wierstra 2016, "Towards Conceptual Compression",
arXiv:1604.08772; PAPERS.md §12).

A recurrent VAE that refines a canvas over ``T`` steps. At step ``t`` a convolutional LSTM encoder reads the
image ``x``, the error image ``x - E[x | canvas_{t-1}]`` and the decoder's last state; it gives the posterior
``q(z_t | x, z_{<t})``, a Gaussian latent *map* (``latent_channels x H/4 x W/4``). The prior
``p(z_t | z_{<t})`` is *learned*: a convolution of the decoder's last state. A convolutional LSTM decoder takes
``z_t`` and adds its write to the canvas; the likelihood scores ``x`` under the final canvas. No attention.

.. math::
    \log p(x) \ge \mathcal L(x) = \mathbb E_q\big[\log p(x \mid z_{1:T})\big]
        - \sum_{t=1}^T \mathbb E_{q(z_{<t}|x)}\big[\mathrm{KL}\big(q(z_t \mid x, z_{<t})\,\|\,p(z_t \mid z_{<t})\big)\big]

Each per-step KL is the closed form of two diagonal Gaussians (``torch.distributions.kl_divergence``) given the
sampled history. The per-step KLs are the rate of bits-back coding, step by step; decoding from the first ``t``
latents only, the rest set to the prior's means (:meth:`ConvDRAW.partial_reconstruction`), is the paper's
"conceptual compression".

The latent of the protocol is the whole sequence flattened, ``z = (z_1, ..., z_T)`` in ``R^D`` with
``D = T * latent_channels * (H/4) * (W/4)`` (step-major, then channel, row, column), so the generic evaluators
(ELBO, IWAE-k, AIS) run on it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Normal, constraints, kl_divergence

from ..distributions.sampling import RsampleAndLogProb
from ..likelihoods import LIKELIHOODS
from ..likelihoods.base import Likelihood
from ..registry import ConfigError, PositiveInt, build
from .base import MODELS, LatentVariableModel, VAEOutput, _check_k

__all__ = ["ConvDRAW", "ConvLSTMCell", "DrawTrace", "build_convdraw"]

#: floor of every Gaussian scale (keeps log-densities finite when a softplus underflows)
MIN_SCALE = 1e-4


class ConvLSTMCell(nn.Module):
    r"""A convolutional LSTM cell (Shi et al. 2015, arXiv:1506.04214, without peepholes).

    .. math::
        (i, f, o, g) = W * [u, h_{t-1}] + b,\quad c_t = \sigma(f) c_{t-1} + \sigma(i)\tanh g,\quad
        h_t = \sigma(o)\tanh c_t

    ``u`` ``(N, in_channels, H, W)``, ``h, c`` ``(N, hidden, H, W)``; ``*`` a same-padded convolution.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)
        with torch.no_grad():  # forget-gate bias 1: the cell remembers by default early in training
            self.conv.bias[hidden:2 * hidden].fill_(1.0)

    def forward(self, u: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        i, f, o, g = self.conv(torch.cat([u, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


@dataclass
class DrawTrace:
    """One unrolled pass of :class:`ConvDRAW` over ``N = S * B`` rows (``S`` sample shape, ``B`` inputs).

    Attributes:
        z: ``(*S, B, D)`` the latent sequence used (drawn or given), flattened step-major.
        log_likelihood: ``(*S, B)`` log p(x | z_{1:T}) in nats (None in a pass without ``x``).
        log_prior: ``(*S, B)`` sum_t log p(z_t | z_{<t}) in nats.
        log_q: ``(*S, B)`` sum_t log q(z_t | x, z_{<t}) in nats (None in a generative pass).
        kl_steps: ``(T, *S, B)`` KL(q(z_t|x, z_{<t}) || p(z_t|z_{<t})) in nats, analytic given the sampled history
            (None in a generative pass).
        canvas: ``(*S, B, out_features)`` the final canvas: the likelihood's parameters.
    """

    z: Tensor
    log_likelihood: Tensor | None
    log_prior: Tensor
    log_q: Tensor | None
    kl_steps: Tensor | None
    canvas: Tensor


def _gaussian(params: Tensor) -> Normal:
    """A ``(N, 2L, h, w)`` head output -> ``Normal`` with ``(N, L, h, w)`` loc and softplus scale (+ floor)."""
    loc, raw = params.chunk(2, 1)
    # validate_args=False: softplus + floor is positive by construction; this runs 2T times per pass
    return Normal(loc, F.softplus(raw) + MIN_SCALE, validate_args=False)


class ConvDRAW(LatentVariableModel):
    r"""Convolutional DRAW: a canvas refined over ``T`` steps by conv-LSTM encoder and decoder, a learned prior.

    See the module docstring for the model and its bound. Per step ``t = 1..T`` (``h^{dec}_0 = 0``,
    ``canvas_0`` a learned bias):

    .. math::
        e_t = x - \mathbb E[x \mid \mathrm{canvas}_{t-1}],\quad
        h^{enc}_t = \mathrm{LSTM}_{enc}\big([\mathrm{read}(x, e_t), h^{dec}_{t-1}], h^{enc}_{t-1}\big),\\
        q(z_t|\cdot) = \mathcal N\big(\mu_q(h^{enc}_t), \sigma_q(h^{enc}_t)\big),\quad
        p(z_t|\cdot) = \mathcal N\big(\mu_p(h^{dec}_{t-1}), \sigma_p(h^{dec}_{t-1})\big),\\
        h^{dec}_t = \mathrm{LSTM}_{dec}(z_t, h^{dec}_{t-1}),\quad
        \mathrm{canvas}_t = \mathrm{canvas}_{t-1} + \mathrm{write}(h^{dec}_t),\quad
        p(x \mid z_{1:T}) = \mathrm{likelihood}(\mathrm{canvas}_T)

    ``read`` is two stride-2 4x4 convolutions (``H x W -> H/4 x W/4``), ``write`` two stride-2 transposed ones;
    both LSTMs and all latent maps live on the ``H/4 x W/4`` grid (7 x 7 for MNIST).

    Shapes: ``x`` ``(B, C*H*W)`` flattened images; the latent ``z`` ``(*S, B, D)`` with
    ``D = T * latent_channels * (H/4) * (W/4)``. ``posterior(x)`` has batch shape ``(B,)`` and event ``(D,)``,
    ``prior()`` an empty batch shape and event ``(D,)``; both live on ``R^D`` (``latent_space`` euclidean), so
    HMC (AIS) moves ``z`` as it is. ``forward(x, k).kl`` is ``(B,)``: the sum over steps of the analytic KLs,
    averaged over the ``k`` sampled histories; :meth:`trace` gives them per step.

    Args:
        likelihood: the observation model; ``canvas`` has ``likelihood.params_per_value * C`` channels.
        image_shape: ``(C, H, W)`` with ``H`` and ``W`` divisible by 4.
        steps: ``T >= 1``.
        channels: width of the LSTM states and of ``read``/``write``.
        latent_channels: channels of each latent map ``z_t``.
        kernel_size: the LSTMs' and heads' convolution size (odd).

    Raises:
        ValueError: ``steps < 1``, a non-positive width, an even ``kernel_size``, ``H`` or ``W`` not divisible
            by 4, or ``image_shape`` not matching ``likelihood.data_dim``; each names the bad value.
    """

    def __init__(self, likelihood: Likelihood, image_shape: Sequence[int] = (1, 28, 28), steps: int = 8,
                 channels: int = 16, latent_channels: int = 4, kernel_size: int = 3) -> None:
        super().__init__()
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps (T) must be an int >= 1, got {steps!r}")
        for name, v in (("channels", channels), ("latent_channels", latent_channels), ("kernel_size", kernel_size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        c, h, w = (int(s) for s in image_shape)
        if h % 4 or w % 4:
            raise ValueError(f"ConvDRAW needs image height and width divisible by 4 (two stride-2 convolutions), "
                             f"got image_shape {(c, h, w)}")
        if c * h * w != likelihood.data_dim:
            raise ValueError(f"image_shape {(c, h, w)} has {c * h * w} values but the likelihood's data_dim is "
                             f"{likelihood.data_dim}")
        self.likelihood = likelihood
        self.image_shape = (c, h, w)
        self.steps, self.channels, self.latent_channels = steps, channels, latent_channels
        self.grid = (h // 4, w // 4)
        out_c = likelihood.params_per_value * c
        self.read = nn.Sequential(nn.Conv2d(2 * c, channels, 4, 2, 1), nn.ELU(),
                                  nn.Conv2d(channels, channels, 4, 2, 1), nn.ELU())
        self.encoder = ConvLSTMCell(2 * channels, channels, kernel_size)
        self.decoder = ConvLSTMCell(latent_channels, channels, kernel_size)
        pad = kernel_size // 2
        self.q_head = nn.Conv2d(channels, 2 * latent_channels, kernel_size, padding=pad)
        self.p_head = nn.Conv2d(channels, 2 * latent_channels, kernel_size, padding=pad)
        self.write = nn.Sequential(nn.ConvTranspose2d(channels, channels, 4, 2, 1), nn.ELU(),
                                   nn.ConvTranspose2d(channels, out_c, 4, 2, 1))
        self.canvas0 = nn.Parameter(torch.zeros(out_c, h, w))

    # ----- sizes --------------------------------------------------------------------------------------
    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def step_dim(self) -> int:
        """Size of one latent map ``z_t``: ``latent_channels * (H/4) * (W/4)``."""
        return self.latent_channels * self.grid[0] * self.grid[1]

    @property
    def latent_dim(self) -> int:
        """``D = T * step_dim``, the size of the flattened sequence (and of :meth:`encode`)."""
        return self.steps * self.step_dim

    def _check_x(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[-1] != self.data_dim:
            raise ValueError(f"x must be (B, {self.data_dim}): flattened {self.image_shape} images, got shape "
                             f"{tuple(x.shape)}")

    def _check_z(self, z: Tensor) -> None:
        if not torch.is_tensor(z) or z.dim() < 1 or z.shape[-1] != self.latent_dim:
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"z must be (..., {self.latent_dim}): T = {self.steps} latent maps of "
                             f"{self.latent_channels}x{self.grid[0]}x{self.grid[1]} flattened, got {shape}")

    # ----- the recurrence ----------------------------------------------------------------------------
    def _unroll(self, x: Tensor | None, sample_shape: Sequence[int] = (), z: Tensor | None = None,
                mode: str = "sample", keep: int | None = None) -> DrawTrace:
        """Run the ``T`` steps once for ``prod(sample_shape)`` rows per input (or for the rows of ``z``).

        ``x`` ``(B, data_dim)`` or None (generative pass: no encoder, no ``log_q``/KL). ``z`` given: use these
        latents (``(*S, B, D)``, or ``(*S, D)`` without ``x``) instead of drawing; ``mode`` says how to choose
        ``z_t`` otherwise: ``"sample"`` (reparameterised draws from q, or from p without ``x``) or ``"mean"``
        (the mean of q, or of p). ``keep``: steps ``t > keep`` take the prior's mean whatever ``mode`` is
        (conceptual compression).
        """
        if x is not None:
            self._check_x(x)
        if z is not None:
            self._check_z(z)
            lead = z.shape[:-1]
            if x is not None and (len(lead) < 1 or lead[-1] != x.shape[0]):
                raise ValueError(f"z of shape {tuple(z.shape)} does not match the batch of x {tuple(x.shape)}: "
                                 f"expected (..., {x.shape[0]}, {self.latent_dim})")
        else:
            lead = torch.Size(sample_shape) + (x.shape[:1] if x is not None else torch.Size())
        n = math.prod(lead)
        ref = x if x is not None else self.canvas0
        hg, wg = self.grid
        zeros = ref.new_zeros(n, self.channels, hg, wg)
        h_dec, c_dec = zeros, zeros
        h_enc, c_enc = zeros, zeros
        canvas = self.canvas0.expand(n, *self.canvas0.shape)
        if x is not None:
            xi = x.view(1, -1, *self.image_shape).expand(n // x.shape[0], *x.shape[:1], *self.image_shape)
            xi = xi.reshape(n, *self.image_shape)
        zs_in = None if z is None else z.reshape(n, self.steps, self.latent_channels, hg, wg)
        zs, log_p, log_q, kls = [], 0.0, 0.0, []
        for t in range(self.steps):
            p = _gaussian(self.p_head(h_dec))
            q = None
            if x is not None and (keep is None or t < keep):
                mean_x = self.likelihood(canvas.flatten(1)).mean.view(n, *self.image_shape)
                r = self.read(torch.cat([xi, xi - mean_x], 1))
                h_enc, c_enc = self.encoder(torch.cat([r, h_dec], 1), (h_enc, c_enc))
                q = _gaussian(self.q_head(h_enc))
            if zs_in is not None:
                zt = zs_in[:, t]
            elif keep is not None and t >= keep:
                zt = p.loc
            else:
                src = q if q is not None else p
                zt = src.loc if mode == "mean" else src.rsample()
            log_p = log_p + p.log_prob(zt).flatten(1).sum(1)
            if q is not None:
                log_q = log_q + q.log_prob(zt).flatten(1).sum(1)
                kls.append(kl_divergence(q, p).flatten(1).sum(1))
            zs.append(zt)
            h_dec, c_dec = self.decoder(zt, (h_dec, c_dec))
            canvas = canvas + self.write(h_dec)
        canvas = canvas.flatten(1)
        ll = None if x is None else self.likelihood.log_prob(canvas, xi.flatten(1))
        shape = lambda v: None if v is None or isinstance(v, float) else v.reshape(lead)  # noqa: E731
        return DrawTrace(z=torch.stack(zs, 1).reshape(*lead, self.latent_dim), log_likelihood=shape(ll),
                         log_prior=shape(log_p), log_q=shape(log_q) if kls else None,
                         kl_steps=torch.stack(kls).reshape(len(kls), *lead) if kls else None,
                         canvas=canvas.reshape(*lead, canvas.shape[-1]))

    def _generate(self, z: Tensor) -> DrawTrace:
        """The generative pass over given latents ``z`` ``(*S, D)``: ``log p(z)`` and the canvas."""
        return self._unroll(None, z=z)

    def trace(self, x: Tensor, k: int = 1) -> DrawTrace:
        """``k`` reparameterised posterior passes per input, every term kept (see :class:`DrawTrace`).

        ``x`` ``(B, data_dim)``; the result's tensors have a leading ``(k, B)``; ``kl_steps`` is ``(T, k, B)``.

        Raises:
            ValueError: ``k`` not a positive int, or ``x`` not ``(B, C*H*W)``.
        """
        _check_k(k)
        return self._unroll(x, (k,))

    # ----- the protocol --------------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> "DrawPosterior":
        """``q(z_{1:T} | x)`` over the flattened sequence: batch ``(B,)``, event ``(D,)``."""
        self._check_x(x)
        return DrawPosterior(self, x)

    def prior(self) -> "DrawPrior":
        """The learned autoregressive prior ``p(z_{1:T}) = prod_t p(z_t | z_{<t})``: empty batch, event ``(D,)``."""
        return DrawPrior(self)

    def decode(self, z: Tensor) -> Distribution:
        """``p(x | z_{1:T})`` for ``z`` ``(*S, D)``: batch shape ``S``, event ``(data_dim,)``."""
        return self.likelihood(self._generate(z).canvas)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x | z_{1:T})`` in nats; ``x`` ``(B, data_dim)``, ``z`` ``(*S, B, D)`` -> ``(*S, B)``."""
        self._check_x(x)
        return self.likelihood.log_prob(self._generate(z).canvas, x)

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x|z) + log p(z)`` in nats, ``(*S, B)``, from one generative pass (the decoder runs once)."""
        self._check_x(x)
        g = self._generate(z)
        return self.likelihood.log_prob(g.canvas, x) + g.log_prior

    def forward(self, x: Tensor, k: int = 1) -> VAEOutput:
        """``k`` posterior passes: ``log_likelihood`` ``(k, B)``, ``kl`` ``(B,)`` = ``sum_t KL_t`` averaged over the
        ``k`` sampled histories (nats), so ``ELBO = log_likelihood.mean(0) - kl`` exactly.

        Raises:
            ValueError: ``k`` not a positive int, or ``x`` not ``(B, C*H*W)``.
        """
        tr = self.trace(x, k)
        assert tr.kl_steps is not None and tr.log_likelihood is not None
        return VAEOutput(tr.z, tr.log_likelihood, tr.kl_steps.sum(0).mean(0), DrawPosterior(self, x), self.prior())

    def log_weights(self, x: Tensor, k: int, *, chunk_size: int | None = None) -> Tensor:
        r"""``(k, B)`` importance log-weights over the whole sequence, in nats:

        .. math:: \log w_i = \log p(x \mid z^i_{1:T}) + \sum_t \big[\log p(z^i_t \mid z^i_{<t})
            - \log q(z^i_t \mid x, z^i_{<t})\big],\qquad z^i \sim q(z_{1:T} \mid x)

        One unrolled pass per chunk gives all three terms (the base class's would run the decoder three times).
        Chunks of ``chunk_size`` samples (default: as :class:`~vaekit.models.LatentVariableModel`) keep memory
        bounded; the draws are those of ``posterior(x).rsample_and_log_prob((k,))`` under the same seed.

        Raises:
            ValueError: ``k`` or ``chunk_size`` not a positive int, or ``x`` not ``(B, C*H*W)``.
        """
        _check_k(k)
        self._check_x(x)
        if chunk_size is None:
            chunk_size = max(1, self.chunk_elements // max(1, x.shape[0] * x[0].numel()))
        elif chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

        def chunk(c: int) -> Tensor:
            tr = self._unroll(x, (c,))
            return tr.log_likelihood + tr.log_prior - tr.log_q

        return torch.cat([chunk(min(chunk_size, k - i)) for i in range(0, k, chunk_size)])

    def encode(self, x: Tensor) -> Tensor:
        """The sequence of posterior means, each step fed the previous means, ``(B, D)`` (what
        :meth:`reconstruct` decodes)."""
        return self._unroll(x, mode="mean").z

    def partial_decode(self, x: Tensor, t: int, mean: bool = True) -> Distribution:
        r"""Conceptual compression: ``p(x | z_{1:t}, prior means after t)``, batch shape ``(B,)``.

        ``z_s`` for ``s <= t`` is the posterior mean (``mean=True``, each step fed the previous means) or a draw from
        q; ``z_s`` for ``s > t`` is the mean of the learned prior ``p(z_s | z_{<s})``. ``t = T`` decodes
        :meth:`encode`; ``t = 0`` uses the prior means only (the same distribution for every ``x``). The rate of the
        first ``t`` steps is ``sum_{s<=t} KL_s`` (:meth:`trace`), its distortion ``-log_prob(x)`` (nats).

        Raises:
            ValueError: ``t`` not an int in ``0..T``, or ``x`` not ``(B, C*H*W)``.
        """
        if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t <= self.steps:
            raise ValueError(f"t must be an int in 0..{self.steps} (T), got {t!r}")
        return self.likelihood(self._unroll(x, mode="mean" if mean else "sample", keep=t).canvas)

    def partial_reconstruction(self, x: Tensor, t: int, mean: bool = True) -> Tensor:
        """The mean of :meth:`partial_decode`, ``(B, data_dim)``: the image decoded from the first ``t`` latents.

        Raises:
            ValueError: as :meth:`partial_decode`.
        """
        return self.partial_decode(x, t, mean).mean


class DrawPosterior(RsampleAndLogProb, Distribution):
    r"""``q(z_{1:T} | x) = prod_t q(z_t | x, z_{<t})`` of a :class:`ConvDRAW`, over flattened sequences in ``R^D``.

    Batch shape ``(B,)``, event ``(D,)``. ``rsample_and_log_prob(S)`` runs the recurrence once for ``S`` draws
    per input (reparameterised); ``log_prob(z)`` ``(*S, B, D) -> (*S, B)`` re-runs it with the given latents
    (teacher forcing). ``mean`` is :meth:`ConvDRAW.encode`.
    """

    has_rsample = True
    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, model: ConvDRAW, x: Tensor) -> None:
        self.model, self.x = model, x
        super().__init__(x.shape[:1], torch.Size([model.latent_dim]), validate_args=False)

    def rsample_and_log_prob(self, sample_shape=torch.Size()) -> tuple[Tensor, Tensor]:
        tr = self.model._unroll(self.x, tuple(sample_shape))
        return tr.z, tr.log_q

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]

    def log_prob(self, value: Tensor) -> Tensor:
        return self.model._unroll(self.x, z=value).log_q

    @property
    def mean(self) -> Tensor:
        return self.model.encode(self.x)


class DrawPrior(Distribution):
    r"""The learned prior ``p(z_{1:T}) = prod_t p(z_t | z_{<t})`` of a :class:`ConvDRAW` (``p(z_1)`` from the zero
    initial decoder state) over flattened sequences in ``R^D``: empty batch shape, event ``(D,)``.

    ``sample`` draws ancestrally through the decoder; ``log_prob(z)`` ``(*S, D) -> S`` runs the decoder over
    the given latents.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, model: ConvDRAW) -> None:
        self.model = model
        super().__init__(torch.Size(), torch.Size([model.latent_dim]), validate_args=False)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        return self.model._unroll(None, tuple(sample_shape)).z

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.model._generate(value).log_prior

    @property
    def mean(self) -> Tensor:
        """The sequence of prior means, each step fed the previous means, ``(D,)``."""
        return self.model._unroll(None, (1,), mode="mean").z[0]


@MODELS.register("convdraw")
def build_convdraw(data_dim: int, image_shape: Sequence[int] | None, steps: PositiveInt = 8,
                   channels: PositiveInt = 16, latent_channels: PositiveInt = 4, kernel_size: PositiveInt = 3,
                   likelihood: dict | None = None) -> ConvDRAW:
    """``model: {type: convdraw, steps: T, channels: 16, latent_channels: 4, kernel_size: 3, likelihood: {...}}``
    (default likelihood Bernoulli); ``image_shape`` comes from the data set.

    Raises:
        ConfigError: no image shape (flat data), or a rule between the keys broken, naming the key and value.
    """
    if image_shape is None:
        raise ConfigError(f"model.type: convdraw needs image data (an image_shape such as (1, 28, 28)); this data "
                          f"set has flat rows of {data_dim} values")
    lik = build(LIKELIHOODS, likelihood or {"type": "bernoulli"}, "model.likelihood", data_dim=data_dim)
    try:
        return ConvDRAW(lik, tuple(image_shape), steps, channels, latent_channels, kernel_size)
    except ValueError as e:
        raise ConfigError(f"model: {e}") from None
