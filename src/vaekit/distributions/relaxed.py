"""Groups of relaxed one-hot categoricals (Gumbel-softmax / Concrete), optionally straight-through."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, RelaxedOneHotCategorical, constraints
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from .sampling import RsampleAndLogProb


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


class GroupedRelaxedOneHotCategorical(RsampleAndLogProb, Distribution):
    r"""``G`` independent relaxed one-hot categoricals over ``n`` classes, flattened to an event of ``G n``.

    .. math::
        y_{g} = \mathrm{softmax}\big((\log\pi_{g} + g_{g}) / \tau\big),\ g_{gi} \sim \mathrm{Gumbel}(0,1),

        \log p(y_g) = \log\Gamma(n) + (n-1)\log\tau + \sum_i\big(\log\pi_{gi} - (\tau+1)\log y_{gi}\big)
                      - n \log\sum_i \pi_{gi}\, y_{gi}^{-\tau}

    (Jang et al. 2017, arXiv:1611.01144; Maddison et al. 2017, arXiv:1611.00712, Eq. for the
    Concrete density). Sampling and the density are torch's ``RelaxedOneHotCategorical``
    (through ``ExpRelaxedCategorical`` on ``log y``, with ``y`` floored at the smallest
    normal float so an underflowed entry gives a finite log density instead of NaN).

    With ``straight_through=True`` the value is the hard one-hot ``argmax`` of the relaxed
    sample, ``y_hard + y - sg(y)`` (Jang et al. 2017, §2.2): the forward value is exactly a
    draw from the *discrete* ``Categorical(π)`` (the argmax of Gumbel-perturbed logits), and the
    gradient is the relaxed one (biased). Its ``log_prob`` is therefore the discrete one,
    ``sum_g log π_{g, argmax}``, correct for any one-hot value with no cached state; the relaxed
    density is degenerate at a vertex and would be wrong for these values.

    Torch's class is not used directly because vaekit latents need an event of shape ``(G n,)``
    and torch has no straight-through variant.

    Args:
        temperature: ``τ > 0`` (a float).
        logits: ``(*batch, G, n)`` unnormalised log class probabilities.
        straight_through: hard forward values with relaxed gradients.

    Shapes: ``rsample(S)`` is ``(*S, *batch, G n)``; ``log_prob`` is ``(*S, *batch)``.
    """

    arg_constraints = {"logits": constraints.real_vector}
    has_rsample = True

    def __init__(self, temperature: float, logits: Tensor, straight_through: bool = False,
                 validate_args: bool | None = None) -> None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if not isinstance(logits, Tensor) or logits.dim() < 2:
            raise ValueError("logits must be a tensor of shape (*batch, groups, n_categories)")
        self.temperature = float(temperature)
        self.logits = logits
        self.straight_through = bool(straight_through)
        self.groups, self.n_categories = logits.shape[-2], logits.shape[-1]
        super().__init__(logits.shape[:-2], torch.Size((self.groups * self.n_categories,)),
                         validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        return _GroupedSimplex(self.n_categories, self.straight_through)

    def _relaxed(self) -> RelaxedOneHotCategorical:
        t = torch.tensor(self.temperature, dtype=self.logits.dtype, device=self.logits.device)
        return RelaxedOneHotCategorical(t, logits=self.logits, validate_args=False)

    def expand(self, batch_shape: torch.Size, _instance=None) -> "GroupedRelaxedOneHotCategorical":
        logits = self.logits.expand(*batch_shape, self.groups, self.n_categories)
        return GroupedRelaxedOneHotCategorical(self.temperature, logits, self.straight_through, validate_args=False)

    @property
    def probs(self) -> Tensor:
        """Class probabilities flattened to ``(*batch, G n)``."""
        return self.logits.softmax(-1).flatten(-2)

    @property
    def mean(self) -> Tensor:
        if self.straight_through:
            return self.probs  # the values are one-hot draws of Categorical(pi)
        raise NotImplementedError("the relaxed categorical's mean has no closed form; use .probs")

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        y = self._relaxed().rsample(sample_shape)  # (*S, *batch, G, n)
        if self.straight_through:
            hard = F.one_hot(y.argmax(-1), self.n_categories).to(y.dtype)
            y = hard + (y - y.detach())  # value: exactly hard; gradient: the relaxed sample's
        return y.flatten(-2)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        v = value.unflatten(-1, (self.groups, self.n_categories))  # (*S, *batch, G, n)
        if self.straight_through:
            return (v * self.logits.log_softmax(-1)).sum((-2, -1))
        log_v = v.clamp_min(torch.finfo(v.dtype).tiny).log()
        t = torch.tensor(self.temperature, dtype=v.dtype, device=v.device)
        # log p(y) = log p_exp(log y) - sum_i log y_i  (change of variables through exp)
        return (ExpRelaxedCategorical(t, logits=self.logits, validate_args=False).log_prob(log_v)
                - log_v.sum(-1)).sum(-1)

    def entropy(self) -> Tensor:
        if self.straight_through:
            logp = self.logits.log_softmax(-1)
            return -(logp.exp() * logp).sum((-2, -1))
        raise NotImplementedError("the relaxed categorical's entropy has no closed form")

