"""Groups of relaxed one-hot categoricals (Gumbel-softmax / Concrete), optionally straight-through."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from .sampling import RsampleAndLogProb

__all__ = ["GroupedRelaxedOneHotCategorical", "MIN_TEMPERATURE", "MAX_TEMPERATURE"]

#: the accepted temperature range (see the class docstring, "Temperature range")
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3

# name of the attribute on a draw that carries its exact log-space coordinates (see "Log space")
_LOG_VALUE = "_vaekit_relaxed_log_value"


class _GroupedSimplex(constraints.Constraint):
    """Vectors of length ``G * n`` whose ``G`` consecutive blocks of ``n`` each lie on the simplex."""

    event_dim = 1

    def __init__(self, n: int, one_hot: bool) -> None:
        self.n, self.one_hot = n, one_hot
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        v = value.unflatten(-1, (-1, self.n))
        ok = (v >= 0).all(-1) & ((v.sum(-1) - 1).abs() < 1e-5 * self.n)
        if self.one_hot:
            ok = ok & ((v == 0) | (v == 1)).all(-1)
        return ok.all(-1)


def _log_concrete(log_pi: Tensor, x: Tensor, temperature: float, off_face: Tensor) -> Tensor:
    r"""Concrete log-density of log-values ``x`` per group, ``(*S, *batch, G)``; float64 in, float64 out.

    Classes with :math:`\pi_i = 0` are left out (``n`` counts the possible classes only); ``off_face``
    (``(*S, *batch, G)``, no gradient) marks groups whose value puts mass on such a class: density 0.
    """
    possible = ~torch.isneginf(log_pi)
    n = possible.sum(-1).to(x.dtype)
    # impossible classes are replaced by 0 *before* any arithmetic, so no 0 * (-inf) or inf - inf forms
    # (a where() applied afterwards would still send NaN into the backward pass)
    lp = torch.where(possible, log_pi, torch.zeros_like(log_pi))
    xs = torch.where(possible, x, torch.zeros_like(x))
    a = lp - temperature * xs  # log pi_i - tau x_i
    lse = torch.logsumexp(torch.where(possible, a, torch.full_like(a, -math.inf)), -1)
    out = (torch.lgamma(n) + (n - 1) * math.log(temperature) + torch.where(possible, a - xs, torch.zeros_like(a)).sum(-1)
           - n * lse)
    return torch.where(off_face, torch.full_like(out, -math.inf), out)


class GroupedRelaxedOneHotCategorical(RsampleAndLogProb, Distribution):
    r"""``G`` independent relaxed one-hot categoricals over ``n`` classes, flattened to an event of ``G n``.

    .. math::
        y_{g} = \mathrm{softmax}\big((\log\pi_{g} + g_{g}) / \tau\big),\ g_{gi} \sim \mathrm{Gumbel}(0,1),

        \log p(y_g) = \log\Gamma(n) + (n-1)\log\tau + \sum_i\big(\log\pi_{gi} - (\tau+1)\log y_{gi}\big)
                      - n \log\sum_i \pi_{gi}\, y_{gi}^{-\tau}

    (Jang et al. 2017, arXiv:1611.01144; Maddison et al. 2017, arXiv:1611.00712, the Concrete density).
    **Measure:** the density is with respect to Lebesgue measure on the first ``n - 1`` coordinates of each
    group (the last one is ``1 - sum`` of the others), the convention of Maddison et al. and of torch's
    ``RelaxedOneHotCategorical``; ``log_prob`` sums it over the ``G`` groups (nats).

    **Log space.** Draws and densities are computed on :math:`x = \log y` in float64 (torch's
    ``ExpRelaxedCategorical`` draw, :math:`x = \mathrm{log\_softmax}((\log\pi + g)/\tau)`, and the density
    above written in ``x``), and only ``y = exp(x)`` is cast to the parameters' dtype. At low temperature
    the smallest entries of ``y`` underflow (30 classes at ``τ = 1/29``: every float32 draw has an exact 0,
    and scoring the rounded ``y`` was wrong by up to ~1e4 nats). So each draw carries its exact ``x``: a
    tensor returned by ``rsample``/``sample``/``rsample_and_log_prob`` and not modified in place since
    (checked with its version counter) is scored from that ``x`` by ``log_prob`` of *any* instance — the
    prior included, so the Monte Carlo KL ``log q(z) - log p(z)`` is exact too. This is torch's transform
    cache idea (``TransformedDistribution`` recognises its own last output by identity), kept on the tensor
    so that it works across distributions. Any other value (a copy, a slice, a point built by hand) is
    scored from ``log y`` directly, which is exact as long as no entry of ``y`` is below the dtype's
    smallest normal number (1.2e-38 in float32); smaller entries are floored there. Gradients with respect
    to a draw's parameters are the same either way (``x`` is the draw's own graph); a derivative of
    ``log_prob`` with respect to the *value tensor* needs a value that is not a draw (e.g. ``z.clone()``).

    **Temperature range.** ``τ`` must lie in ``[MIN_TEMPERATURE, MAX_TEMPERATURE] = [1e-3, 1e3]``
    (``ValueError`` otherwise). Over that range ``log_prob`` of a float32 draw agrees with an independent
    float64 log-space computation to a relative 1e-6 (measured 6e-8, the float32 rounding of the result;
    tested at both ends and at ``τ = 1/29`` with 30 classes). Below it ``|log p|`` grows like
    ``n (\log\pi + g)/τ`` (3e5 nats at ``τ = 1e-3``, 30 classes), so a float32 result and the Monte Carlo
    KL built from two of them lose more than a few hundredths of a nat to rounding; above it ``y`` is the
    uniform vector to ``O(1/τ)``. Neither end has a use in training (Jang et al. anneal to 0.5).

    **Impossible classes.** A class with logit ``-inf`` (``π_i = 0``) is never drawn (``y_i = 0``
    exactly): the group lies on the face of the simplex without it, and its density there is the Concrete
    density of the remaining ``n'`` classes, with respect to Lebesgue measure on the first ``n' - 1`` of
    them (what the limit of a very negative logit converges to as a distribution); a value with
    ``y_i > 0`` at an impossible class scores ``-inf``.

    **Straight-through** (``straight_through=True``): the value is the hard one-hot ``argmax`` of the
    relaxed sample, ``y_hard + y - sg(y)`` (Jang et al. 2017, §2.2): the forward value is exactly a draw
    from the *discrete* ``Categorical(π)`` (the argmax of Gumbel-perturbed logits), and the gradient is the
    relaxed one (biased). Its ``log_prob`` is therefore the discrete one, ``sum_g log π_{g, argmax}``
    (counting measure), correct for any one-hot value with no cached state, and ``entropy`` is the
    discrete entropy; an impossible class contributes 0 to both (``0 log 0 = 0``).

    Torch's class is not used directly because vaekit latents need an event of shape ``(G n,)``
    and torch has no straight-through variant.

    Args:
        temperature: ``τ`` in ``[1e-3, 1e3]`` (a float).
        logits: ``(*batch, G, n)`` unnormalised log class probabilities (``-inf`` allowed: an impossible class).
        straight_through: hard forward values with relaxed gradients.
        validate_args: torch's argument/sample validation switch (``None``: torch's global default).

    Raises:
        ValueError: a temperature outside the range, or ``logits`` not a tensor of at least 2 dimensions.

    Shapes: ``rsample(S)`` is ``(*S, *batch, G n)``; ``log_prob`` is ``(*S, *batch)``.
    """

    arg_constraints = {"logits": constraints.real_vector}
    has_rsample = True

    def __init__(self, temperature: float, logits: Tensor, straight_through: bool = False,
                 validate_args: bool | None = None) -> None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
                or not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be a number in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}], "
                             f"got {temperature!r}")
        if not isinstance(logits, Tensor) or logits.dim() < 2:
            raise ValueError("logits must be a tensor of shape (*batch, groups, n_categories), got "
                             + (f"shape {tuple(logits.shape)}" if isinstance(logits, Tensor) else type(logits).__name__))
        self.temperature = float(temperature)
        self.logits = logits
        self.straight_through = bool(straight_through)
        self.groups, self.n_categories = logits.shape[-2], logits.shape[-1]
        super().__init__(logits.shape[:-2], torch.Size((self.groups * self.n_categories,)),
                         validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        return _GroupedSimplex(self.n_categories, self.straight_through)

    def expand(self, batch_shape: torch.Size, _instance=None) -> "GroupedRelaxedOneHotCategorical":
        new = self._get_checked_instance(GroupedRelaxedOneHotCategorical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.temperature, new.straight_through = self.temperature, self.straight_through
        new.groups, new.n_categories = self.groups, self.n_categories
        new.logits = self.logits.expand(*batch_shape, self.groups, self.n_categories)
        Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def probs(self) -> Tensor:
        """Class probabilities flattened to ``(*batch, G n)``."""
        return self.logits.softmax(-1).flatten(-2)

    @property
    def mean(self) -> Tensor:
        if self.straight_through:
            return self.probs  # the values are one-hot draws of Categorical(pi)
        raise NotImplementedError("the relaxed categorical's mean has no closed form; use .probs")

    def _log_pi64(self) -> Tensor:
        return self.logits.double().log_softmax(-1)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        t = torch.tensor(self.temperature, dtype=torch.float64, device=self.logits.device)
        x = ExpRelaxedCategorical(t, logits=self.logits.double(), validate_args=False).rsample(sample_shape)
        y = x.exp().to(self.logits.dtype)  # (*S, *batch, G, n)
        if self.straight_through:
            hard = F.one_hot(y.argmax(-1), self.n_categories).to(y.dtype)
            return (hard + (y - y.detach())).flatten(-2)  # value: exactly hard; gradient: the relaxed sample's
        y = y.flatten(-2)
        setattr(y, _LOG_VALUE, (x, y._version))
        return y

    def _log_value(self, value: Tensor, v: Tensor, log_pi: Tensor) -> tuple[Tensor, Tensor]:
        """``(x, off_face)``: a draw's own float64 log-values if it carries them, else ``log`` of the value."""
        carried = getattr(value, _LOG_VALUE, None)
        if carried is not None and carried[1] == value._version:
            x = carried[0]
            return x, (torch.isneginf(log_pi) & ~torch.isneginf(x)).any(-1)
        possible = ~torch.isneginf(log_pi)
        v64 = v.double()
        # floor underflowed entries of possible classes; impossible classes get log 1 = 0, masked later
        x = torch.where(possible, v64.clamp_min(torch.finfo(v.dtype).tiny), torch.ones_like(v64)).log()
        return x, (~possible & (v64 > 0)).any(-1).detach()

    def log_prob(self, value: Tensor) -> Tensor:
        r"""``sum_g log p(y_g)`` (nats), ``(*S, *batch)``; see the class docstring for the measure and log space."""
        if self._validate_args:
            self._validate_sample(value)
        v = value.unflatten(-1, (self.groups, self.n_categories))  # (*S, *batch, G, n)
        if self.straight_through:
            logp = self.logits.log_softmax(-1)
            # an impossible class (log pi = -inf) that the value does not pick contributes 0, not 0 * (-inf) = NaN
            logp = torch.where(torch.isneginf(logp) & (v == 0), torch.zeros_like(logp), logp)
            return (v * logp).sum((-2, -1))
        log_pi = self._log_pi64()
        x, off_face = self._log_value(value, v, log_pi)
        return _log_concrete(log_pi, x, self.temperature, off_face).sum(-1).to(value.dtype)

    def entropy(self) -> Tensor:
        if self.straight_through:
            logp = self.logits.log_softmax(-1)
            # pi log pi -> 0 as pi -> 0: an impossible class adds nothing (0 * (-inf) would be NaN)
            p_log_p = logp.exp() * torch.where(torch.isneginf(logp), torch.zeros_like(logp), logp)
            return -p_log_p.sum((-2, -1))
        raise NotImplementedError("the relaxed categorical's entropy has no closed form")
