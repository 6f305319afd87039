r"""The semi-supervised M2 model of Kingma, Rezende, Mohamed & Welling (2014), and M1+M2 (their stacked model).

Generative model: :math:`p(y) = 1/K`, :math:`p(z)` (the latent family's prior), :math:`p(x|y,z)`. Inference:
a classifier :math:`q(y|x)` and :math:`q(z|x,y)`. Labelled pairs get the ELBO of :math:`\log p(x, y)`:

.. math:: \mathcal L(x,y) = \mathbb E_{q(z|x,y)}[\log p(x|y,z) + \log p(y)] - \mathrm{KL}(q(z|x,y)\,\|\,p(z))

and unlabelled images the bound with :math:`y` summed out *exactly* over the :math:`K` classes
(Kingma et al. 2014, arXiv:1406.5298, Eq. 7):

.. math:: \mathcal U(x) = \sum_y q(y|x)\,\mathcal L(x,y) + \mathcal H(q(y|x)) \le \log p(x)

The sum is vectorised: the batch is repeated once per class (``K * B`` rows through one encoder and one decoder
call), not a Python loop over classes. ``y_treatment="relaxed"`` replaces the sum by one Gumbel-softmax draw
of :math:`y` (Jang et al. 2017; Maddison et al. 2017), the relaxed categorical of
:class:`vaekit.distributions.GroupedRelaxedOneHotCategorical`, with the analytic KL(q(y|x) || p(y)): a training
surrogate, not a bound, reported as such.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution

from ..distributions.relaxed import GroupedRelaxedOneHotCategorical
from ..latents.base import LatentLayer
from ..latents.space import LatentSpace, latent_space_of
from ..likelihoods.base import Likelihood
from .base import LatentVariableModel, VAEOutput
from .conditions import ConditionError, LabelCondition


class M2(LatentVariableModel):
    r"""Kingma et al. (2014)'s M2: a class label :math:`y` as a partly observed discrete latent.

    Protocol, with ``label`` (int64 ``(B,)``, or soft one-hot ``(B, K)`` rows inside training) given: a conditional
    VAE over z whose ``log_likelihood`` is :math:`\log p(x, y | z) = \log p(x|y,z) + \log p(y)` (nats, ``(*S, B)``),
    so ``log_weights`` bounds :math:`\log p(x, y)`. Without ``label``: ``log_weights(x, k)`` is ``(k, B)`` with
    :math:`\log w_i = \log\sum_y p(x, y, z_{iy}) / q(z_{iy}|x,y)`, :math:`z_{iy}\sim q(z|x,y)`, an unbiased estimate
    of :math:`p(x)` (so IWAE-k bounds :math:`\log p(x)` with y summed out exactly), and ``forward(x, k)`` returns
    :math:`\mathcal U(x)` as ``log_likelihood.mean(0) - kl``, split as for the joint latent (y, z):
    ``log_likelihood`` :math:`\sum_y q(y|x)\log p(x|y,z_{iy})` ``(k, B)``, ``kl``
    :math:`\mathrm{KL}(q(y|x)\,\|\,p(y)) + \sum_y q(y|x)\mathrm{KL}_z(x,y)` ``(B,)`` (a KL, so ``>= 0``).

    ``sample(n)`` without a label draws :math:`y \sim p(y)` (M2 is a joint model of x and y).

    Raises:
        ConditionError: a label out of range or of the wrong shape; ``posterior(x)`` without a label.
    """

    def __init__(self, classifier: nn.Module, encoder: nn.Module, latent: LatentLayer, decoder: nn.Module,
                 likelihood: Likelihood, n_classes: int = 10,
                 y_treatment: Literal["enumerate", "relaxed"] = "enumerate", temperature: float = 0.5) -> None:
        super().__init__()
        if y_treatment not in ("enumerate", "relaxed"):
            raise ValueError(f"y_treatment must be 'enumerate' or 'relaxed', got {y_treatment!r}")
        self.classifier, self.encoder, self.latent = classifier, encoder, latent
        self.decoder, self.likelihood = decoder, likelihood
        self.condition = LabelCondition(n_classes)
        self.n_classes, self.y_treatment, self.temperature = n_classes, y_treatment, float(temperature)

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def latent_dim(self) -> int:
        return self.latent.dim

    # ----- the label -------------------------------------------------------------------------------
    def _onehot(self, batch: int, label: Any) -> Tensor:
        """One-hot rows ``(B, K)``; float rows ``(B, K)`` (a relaxed draw) pass through."""
        if torch.is_tensor(label) and label.is_floating_point() and label.dim() == 2:
            if label.shape != (batch, self.n_classes):
                raise ConditionError(f"M2: soft label rows must have shape ({batch}, {self.n_classes}), "
                                     f"got {tuple(label.shape)}")
            return label
        return self.condition.embed(batch, "M2", label=label)

    def _log_prior_y(self) -> float:
        return -math.log(self.n_classes)

    def classifier_logits(self, x: Tensor) -> Tensor:
        """Logits of q(y|x), ``(B, K)``."""
        return self.classifier(x)

    def classify(self, x: Tensor) -> Tensor:
        """The most probable class under q(y|x), int64 ``(B,)``."""
        return self.classifier_logits(x).argmax(-1)

    # ----- protocol with y observed ----------------------------------------------------------------
    def _check(self, cond: dict[str, Any]) -> None:
        extra = sorted(set(cond) - {"label"})
        if extra:
            raise ConditionError(f"M2 takes the condition 'label' only, not {extra}")

    def posterior(self, x: Tensor, **cond: Any) -> Distribution:
        """q(z|x, y): batch ``(B,)``. Needs ``label``: with y unobserved it is summed out in :meth:`log_weights`."""
        self._check(cond)
        if cond.get("label") is None:
            raise ConditionError("M2.posterior(x) needs label=... (class indices (B,) in [0, "
                                 f"{self.n_classes})): q(z|x, y) depends on y; without a label use log_weights(x, k) "
                                 "or model(x, k), which sum y out exactly")
        y = self._onehot(x.shape[0], cond["label"]).to(x.dtype)
        return self.latent(self.encoder(torch.cat([x, y], -1)))

    def prior(self, **cond: Any) -> Distribution:
        """p(z) (the family's prior, batch ``()``); a given label is checked."""
        self._check(cond)
        if cond.get("label") is not None and not (torch.is_tensor(cond["label"]) and cond["label"].is_floating_point()):
            self.condition.labels(None, "M2", cond["label"])
        return self.latent.prior()

    def log_likelihood(self, x: Tensor, z: Tensor, **cond: Any) -> Tensor:
        r""":math:`\log p(x|y,z) + \log p(y)` in nats, ``(*S, B)``."""
        self._check(cond)
        if cond.get("label") is None:
            raise ConditionError("M2.log_likelihood needs label=...; y is summed out in log_weights(x, k)")
        y = self._onehot(x.shape[0], cond["label"])
        logits = self.decoder(torch.cat([z, y.to(z.dtype).expand(*z.shape[:-1], -1)], -1))
        return self.likelihood.log_prob(logits, x) + self._log_prior_y()

    def decoder_log_prob(self, x: Tensor, z: Tensor, label: Any) -> Tensor:
        r""":math:`\log p(x|y,z)` alone (no :math:`\log p(y)`), nats ``(*S, B)``."""
        return self.log_likelihood(x, z, label=label) - self._log_prior_y()

    def decode(self, z: Tensor, **cond: Any) -> Distribution:
        """p(x|y, z) for ``z`` ``(*S, B, D)``; ``label`` broadcasts over the batch."""
        self._check(cond)
        y = self._onehot(z.shape[-2], cond["label"]).to(z.dtype)
        return self.likelihood(self.decoder(torch.cat([z, y.expand(*z.shape[:-1], -1)], -1)))

    def encode(self, x: Tensor, **cond: Any) -> Tensor:
        """The point estimate of q(z|x, y), ``(B, D)``; without a label, y is the classifier's guess."""
        self._check(cond)
        label = cond.get("label")
        return self.latent.point_estimate(self.posterior(x, label=self.classify(x) if label is None else label))

    @property
    def latent_space(self) -> LatentSpace:
        return latent_space_of(self.latent.prior())

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, **cond: Any) -> Tensor:
        """``n`` images for ``label`` (one int or ``n`` labels), or with ``y ~ p(y)`` when none is given."""
        self._check(cond)
        label = cond.get("label")
        if label is None:
            label = torch.randint(self.n_classes, (n,))
        y = torch.as_tensor(label)
        y = y.expand(n) if y.dim() == 0 or y.numel() == 1 else y
        px = self.decode(self.latent.prior().sample((n,)), label=y.reshape(-1))
        return px.mean if mean else px.sample()

    def reconstruct(self, x: Tensor, **cond: Any) -> Tensor:
        label = cond.get("label")
        label = self.classify(x) if label is None else label
        return self.decode(self.encode(x, label=label), label=label).mean

    # ----- y unobserved ------------------------------------------------------------------------------
    def _every_class(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` repeated once per class, ``(K * B, D)``, and the matching labels ``(K * B,)`` (class-major)."""
        b = x.shape[0]
        xs = x.unsqueeze(0).expand(self.n_classes, *x.shape).reshape(self.n_classes * b, *x.shape[1:])
        ys = torch.arange(self.n_classes, device=x.device).repeat_interleave(b)
        return xs, ys

    def log_weights(self, x: Tensor, k: int, *, chunk_size: int | None = None, **cond: Any) -> Tensor:
        r"""``(k, B)`` log-weights in nats: of :math:`\log p(x, y)` with ``label``, else of :math:`\log p(x)` with y
        summed out exactly (see the class docstring)."""
        self._check(cond)
        if cond.get("label") is not None:
            return super().log_weights(x, k, chunk_size=chunk_size, **cond)
        xs, ys = self._every_class(x)
        lw = super().log_weights(xs, k, chunk_size=chunk_size, label=ys)  # (k, K * B)
        return torch.logsumexp(lw.view(k, self.n_classes, x.shape[0]), 1)

    def forward(self, x: Tensor, k: int = 1, **cond: Any) -> VAEOutput:
        r"""With ``label``: the labelled ELBO's terms. Without: :math:`\mathcal U(x)`'s (enumerated), or with
        ``y_treatment="relaxed"`` the Gumbel-softmax surrogate (one relaxed y per sample set)."""
        self._check(cond)
        if cond.get("label") is not None:
            return super().forward(x, k, **cond)
        logits = self.classifier_logits(x)
        q_y = Categorical(logits=logits)
        kl_y = (q_y.probs * (q_y.logits - self._log_prior_y())).sum(-1)  # KL(q(y|x) || uniform) = -H - log p(y)
        if self.y_treatment == "relaxed":
            y_soft = GroupedRelaxedOneHotCategorical(self.temperature, logits.unsqueeze(-2)).rsample()  # one group of K
            out = super().forward(x, k, label=y_soft)
            # the latent is (y, z): log p(y) moves out of the likelihood term into KL(q(y|x) || p(y)), so
            # log_likelihood is E_q log p(x|y,z) and kl a true KL (>= 0); their difference is unchanged
            return VAEOutput(out.z, out.log_likelihood - self._log_prior_y(), out.kl + kl_y, q_y, out.prior)
        xs, ys = self._every_class(x)
        out = super().forward(xs, k, label=ys)
        b = x.shape[0]
        w = q_y.probs.t()  # (K, B), class-major like xs
        # the latent is (y, z): E_q log p(x|y,z) and KL(q(y,z|x) || p(y,z)) = KL(q(y|x)||p(y)) + E_q(y) KL_z (>= 0)
        ll = (out.log_likelihood.view(k, self.n_classes, b) * w).sum(1) - self._log_prior_y()
        kl = (out.kl.view(self.n_classes, b) * w).sum(0) + kl_y
        z = out.z.view(k, self.n_classes, b, -1) if torch.is_tensor(out.z) else out.z
        return VAEOutput(z, ll, kl, q_y, out.prior)


class Classifier(nn.Module):
    """A network ``x -> (B, K)`` logits with ``classify``: M2's classifier trained on the labels alone (the
    supervised-only baseline of Kingma et al. 2014)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def classifier_logits(self, x: Tensor) -> Tensor:
        return self.net(x)

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x).argmax(-1)


class M1M2(nn.Module):
    """Kingma et al. (2014)'s stacked M1+M2: M2 trained on the latent codes ``m1.encode(x)`` of a trained VAE M1.

    ``classify(x)`` ``(B,)`` and ``classifier_logits(x)`` ``(B, K)`` go through both; ``features(x)`` is M1's code,
    optionally restricted to the dimensions ``active`` and standardised, ``(code[:, active] - shift) / scale``.
    Why the option: M1's inactive dimensions have posterior means that barely vary (variance ~1e-3 against ~1 for
    the active ones), and M2's Gaussian likelihood with a learned scale earns large log-densities on them that
    say nothing about the class; dropping them and putting the rest on one scale keeps the likelihood about the
    code's content (our choice; the paper does not say how its M2 saw M1's features).

    Raises:
        ValueError: ``active``, ``shift`` and ``scale`` not all given or of different lengths, or a scale <= 0.
    """

    def __init__(self, m1: LatentVariableModel, m2: M2, active: list[int] | None = None,
                 shift: list[float] | None = None, scale: list[float] | None = None) -> None:
        super().__init__()
        self.m1, self.m2 = m1, m2
        given = [v is not None for v in (active, shift, scale)]
        if any(given) and not all(given):
            raise ValueError("M1M2: give active, shift and scale together (or none of them)")
        self.active = None
        if active is not None:
            if not len(active) == len(shift) == len(scale):  # type: ignore[arg-type]
                raise ValueError(f"M1M2: active, shift and scale differ in length: {len(active)}, "
                                 f"{len(shift)}, {len(scale)}")  # type: ignore[arg-type]
            if min(scale) <= 0:  # type: ignore[type-var]
                raise ValueError(f"M1M2: every scale must be > 0, got {min(scale)}")  # type: ignore[type-var]
            self.active = torch.tensor(active, dtype=torch.int64)
            self.register_buffer("shift", torch.tensor(shift))
            self.register_buffer("scale", torch.tensor(scale))

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        code = self.m1.encode(x)
        if self.active is None:
            return code
        return (code[:, self.active.to(code.device)] - self.shift) / self.scale

    def classifier_logits(self, x: Tensor) -> Tensor:
        return self.m2.classifier_logits(self.features(x))

    def classify(self, x: Tensor) -> Tensor:
        return self.classifier_logits(x).argmax(-1)


def standardised_active_features(codes: Tensor, threshold: float = 0.01) -> dict[str, list]:
    """``{"active", "shift", "scale"}`` for :class:`M1M2` from training codes ``(N, D)``: the dimensions whose
    variance over the rows exceeds ``threshold`` (Burda et al. 2015's activity rule) with their mean and sd.

    Raises:
        ValueError: no dimension is active.
    """
    var = codes.var(0)
    active = (var > threshold).nonzero().flatten()
    if active.numel() == 0:
        raise ValueError(f"no dimension of M1's code has variance > {threshold} (max {float(var.max()):.3g}): "
                         "M1 ignores its latent")
    return {"active": active.tolist(), "shift": codes[:, active].mean(0).tolist(),
            "scale": codes[:, active].std(0).tolist()}


def classification_error(model: nn.Module, x: Tensor, y: Tensor, batch: int = 1000) -> dict[str, float]:
    """``{"error", "se", "n"}``: the fraction of ``x`` that ``model.classify`` gets wrong, with its binomial s.e."""
    with torch.no_grad():
        wrong = torch.cat([model.classify(x[i:i + batch]) != y[i:i + batch] for i in range(0, len(x), batch)])
    e = float(wrong.double().mean())
    return {"error": e, "se": math.sqrt(e * (1 - e) / len(y)), "n": int(len(y))}


__all__ = ["M2", "M1M2", "Classifier", "classification_error", "standardised_active_features"]
