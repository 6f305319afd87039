r"""Models of sets: the Neural Statistician (Edwards & Storkey 2016) and the Variational Homoencoder (Hewitt et al. 2018).

Both are the same hierarchical model of a data set (or class) :math:`X = \{x_1..x_n\}`:

.. math::
    c \sim p(c) = \mathcal N(0, I),\qquad z_i \sim p(z|c),\qquad x_i \sim p(x|z_i, c)

with a *statistic network* :math:`q(c|D)` (a shared per-item encoder :math:`h(x)`, mean pooling over the items
of :math:`D`, then a Gaussian latent layer: permutation invariant and defined for any :math:`|D| \ge 1`) and a
per-item posterior :math:`q(z|x, c)`. They differ only in the training objective:

* **Neural Statistician** (arXiv:1606.02185, Eq. 3): per data set,
  :math:`\sum_{x\in D}\bigl[\mathbb E\log p(x|z,c) - \mathrm{KL}(q(z|x,c)\|p(z|c))\bigr] - \mathrm{KL}(q(c|D)\|p(c))`,
  with ``c ~ q(c|D)`` inferred from the set the items belong to: the context KL counted once per set;
* **Variational Homoencoder** (arXiv:1807.08919, Algorithm 1): per item ``x`` of class ``X``,
  :math:`\mathbb E\log p(x|z,c) - \mathrm{KL}(q(z|x,c)\|p(z|c)) - \mathrm{KL}(q(c|D)\|p(c))/|X|` with ``c`` inferred
  from a random subset ``D`` of the class that does not contain ``x``.

The protocol (ARCHITECTURE.md) is spoken with the support set as a condition, ``support`` ``(B, K, D)`` (one set
per row of ``x``) or ``(K, D)`` (one set for the batch): the latent of a query ``x`` is ``v = [c, z]``
(``context_dim + z_dim`` numbers), its prior :math:`q(c|D)\,p(z|c)` and its posterior
:math:`q(c|D\cup\{x\})\,q(z|x,c)`, so ``log_weights(x, k, support=D)`` bounds
:math:`\log \int p(x|z,c)\,p(z|c)\,q(c|D)\,dz\,dc`, the model's predictive density of ``x`` given ``D`` (nats).
Without ``support`` the prior is :math:`p(c)\,p(z|c)` and the bound is on the marginal :math:`\log p(x)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Normal, constraints, kl_divergence

from ..distributions.sampling import RsampleAndLogProb
from ..latents.base import LatentLayer
from ..likelihoods.base import Likelihood
from .base import LatentVariableModel
from .conditions import ConditionError

__all__ = ["NeuralStatistician", "HomoEncoder", "SetTerms", "ContextChain", "ns_bound", "vhe_bound"]


class ContextChain(RsampleAndLogProb, Distribution):
    r"""The two-level law of ``v = [c, z]``: :math:`\mathrm{top}(c)\,\mathrm{cond}(c)(z)`, sampled ancestrally.

    Args:
        top: a distribution over ``c``, event ``(C,)`` (a prior ``p(c)``, or ``q(c|D)``).
        cond: ``c`` ``(*S, *batch, C)`` -> a distribution over ``z`` with event ``(Z,)`` and batch ``c.shape[:-1]``.
        batch_shape: the batch shape of the chain (``top``'s, or wider where ``cond`` broadcasts it).
        dims: ``(C, Z)``.

    ``log_prob(v) = top.log_prob(c) + cond(c).log_prob(z)``, shape ``v.shape[:-1]``; samples are reparameterised.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, top: Distribution, cond: Callable[[Tensor], Distribution], batch_shape: torch.Size,
                 dims: tuple[int, int]) -> None:
        self.top, self.cond, self.dims = top, cond, dims
        super().__init__(torch.Size(batch_shape), torch.Size([sum(dims)]), validate_args=False)

    def _top_sample(self, sample_shape: torch.Size) -> tuple[Tensor, Tensor]:
        if self.top.batch_shape == self.batch_shape:
            return self.top.rsample_and_log_prob(sample_shape)
        if len(self.top.batch_shape) == 0:  # a prior p(c) shared by the chain's batch
            return self.top.rsample_and_log_prob(sample_shape + self.batch_shape)
        raise ValueError(f"ContextChain: top batch {tuple(self.top.batch_shape)} does not match the chain's "
                         f"{tuple(self.batch_shape)}")

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> tuple[Tensor, Tensor]:
        c, lc = self._top_sample(torch.Size(sample_shape))
        z, lz = self.cond(c).rsample_and_log_prob()
        return torch.cat([c, z], -1), lc + lz

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]

    def log_prob(self, value: Tensor) -> Tensor:
        c, z = value.split(list(self.dims), -1)
        return self.top.log_prob(c) + self.cond(c).log_prob(z)


@dataclass
class SetTerms:
    """The per-item and per-set terms of one pass over a batch of sets (nats).

    Attributes:
        log_likelihood: ``(S, M)`` log p(x_i | z_i, c) of the ``M`` scored items of each of ``S`` sets.
        kl_z: ``(S, M)`` KL(q(z|x_i, c) || p(z|c)) (analytic for Gaussians, else one-sample Monte Carlo).
        kl_c: ``(S,)`` KL(q(c|D) || p(c)) of each set's context posterior.
        context: q(c|D), batch ``(S,)``.
        support_items, scored_items: ``(S, K)`` and ``(S, M)`` indices into each input set of the items q(c|D) read
            and the items scored (the VHE's split; ``None`` for the NS, which reads and scores the whole set).
    """

    log_likelihood: Tensor
    kl_z: Tensor
    kl_c: Tensor
    context: Distribution
    support_items: Tensor | None = None
    scored_items: Tensor | None = None


def ns_bound(t: SetTerms) -> Tensor:
    r"""The Neural Statistician's bound per set, ``(S,)`` nats:
    :math:`\sum_i [\log p(x_i|z_i,c) - \mathrm{KL}_{z,i}] - \mathrm{KL}_c` (Edwards & Storkey 2016, Eq. 3)."""
    return (t.log_likelihood - t.kl_z).sum(-1) - t.kl_c


def vhe_bound(t: SetTerms, class_size: int | Tensor) -> Tensor:
    r"""The Variational Homoencoder's objective summed over the ``M`` scored items of each set, ``(S,)`` nats:
    :math:`\sum_i [\log p(x_i|z_i,c) - \mathrm{KL}_{z,i} - \mathrm{KL}_c/|X|]` (Hewitt et al. 2018, Algorithm 1),
    ``|X|`` = ``class_size`` (an int, or ``(S,)``). Summed over a whole class (``M = |X|``) with ``c`` from a subset
    ``D`` drawn independently of the items, its expectation is a lower bound on the class's joint
    :math:`\log p(X)`.

    Raises:
        ValueError: a class size below 1.
    """
    n = torch.as_tensor(class_size, dtype=t.kl_c.dtype, device=t.kl_c.device)
    if (n < 1).any():
        raise ValueError(f"model.class_size: the class size |X| must be >= 1, got {class_size}")
    return (t.log_likelihood - t.kl_z).sum(-1) - t.log_likelihood.shape[-1] * t.kl_c / n


class NeuralStatistician(LatentVariableModel):
    r"""The Neural Statistician (Edwards & Storkey 2016, "Towards a Neural Statistician", arXiv:1606.02185).

    Args:
        item_encoder: ``x`` ``(*, data_dim)`` -> ``h`` ``(*, H)``, shared by the statistic network and q(z|x, c).
        pool_net: the mean of ``h`` over a set ``(*, H)`` -> features of q(c|D).
        context_latent: latent layer of ``c`` (its ``prior()`` is p(c); Gaussian for classification by KL).
        z_encoder: ``[h, c]`` ``(*, H + C)`` -> features of q(z|x, c).
        z_latent: latent layer of ``z`` given those features.
        prior_net: ``c`` ``(*, C)`` -> features of p(z|c); ``prior_latent`` turns them into p(z|c).
        decoder: ``[z, c]`` ``(*, Z + C)`` -> the likelihood's parameters; ``likelihood``: p(x|z, c).

    Set shapes: ``sets`` ``(S, N, data_dim)``; the statistic network mean-pools over ``N`` (permutation
    invariant). One stochastic layer of ``z`` per item (the paper stacks three; not done here).

    Raises:
        ConditionError: a ``support`` of the wrong shape or width, naming it.
    """

    objective_name = "ns"

    def __init__(self, item_encoder: nn.Module, pool_net: nn.Module, context_latent: LatentLayer,
                 z_encoder: nn.Module, z_latent: LatentLayer, prior_net: nn.Module, prior_latent: LatentLayer,
                 decoder: nn.Module, likelihood: Likelihood) -> None:
        super().__init__()
        self.item_encoder, self.pool_net, self.context_latent = item_encoder, pool_net, context_latent
        self.z_encoder, self.z_latent = z_encoder, z_latent
        self.prior_net, self.prior_latent = prior_net, prior_latent
        self.decoder, self.likelihood = decoder, likelihood

    # ----- sizes -------------------------------------------------------------------------------------
    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def context_dim(self) -> int:
        return self.context_latent.dim

    @property
    def z_dim(self) -> int:
        return self.z_latent.dim

    # ----- the statistic network and the per-item parts ---------------------------------------------
    def context_posterior(self, sets: Tensor) -> Distribution:
        r"""q(c|D) for ``sets`` ``(S, N, data_dim)``: ``latent(pool_net(mean_i h(x_i)))``, batch ``(S,)``."""
        if sets.dim() != 3 or sets.shape[-1] != self.data_dim:
            raise ConditionError(f"{type(self).__name__}: sets must have shape (S, N, {self.data_dim}), "
                                 f"got {tuple(sets.shape)}")
        return self._context_from_mean(self.item_encoder(sets).mean(-2))

    def _context_from_mean(self, h_mean: Tensor) -> Distribution:
        return self.context_latent(self.pool_net(h_mean))

    def z_posterior(self, h: Tensor, c: Tensor) -> Distribution:
        """q(z|x, c) from item features ``h`` ``(*, H)`` and ``c`` broadcastable to ``(*, C)``."""
        return self.z_latent(self.z_encoder(self._cat_hc(h, c)))

    @staticmethod
    def _cat_hc(h: Tensor, c: Tensor) -> Tensor:
        shape = torch.broadcast_shapes(h.shape[:-1], c.shape[:-1])
        return torch.cat([h.expand(*shape, h.shape[-1]), c.expand(*shape, c.shape[-1])], -1)

    def z_prior(self, c: Tensor) -> Distribution:
        """p(z|c), batch ``c.shape[:-1]``."""
        return self.prior_latent(self.prior_net(c))

    # ----- the training pass -------------------------------------------------------------------------
    def set_terms(self, items: Tensor, support: Tensor | None = None) -> SetTerms:
        """One pass over ``S`` sets: ``c ~ q(c|support)`` (one draw per set), ``z_i ~ q(z|x_i, c)`` per item.

        Args:
            items: ``(S, M, data_dim)``, the items scored.
            support: ``(S, K, data_dim)``, the sets q(c|·) reads; ``None`` reads ``items`` (the NS objective).

        Returns:
            :class:`SetTerms` (``log_likelihood`` and ``kl_z`` ``(S, M)``, ``kl_c`` ``(S,)``).
        """
        h = self.item_encoder(items)                                          # (S, M, H)
        if support is None:
            qc = self._context_from_mean(h.mean(-2))
        else:
            qc = self.context_posterior(support)
        c, _ = qc.rsample_and_log_prob()                                      # (S, C)
        kl_c = kl_divergence(qc, self.context_latent.prior())                 # (S,)
        c_items = c[:, None, :].expand(*items.shape[:2], c.shape[-1])         # (S, M, C)
        qz, pz = self.z_posterior(h, c_items), self.z_prior(c_items)
        z, log_q = qz.rsample_and_log_prob()                                  # (S, M, Z)
        try:
            kl_z = kl_divergence(qz, pz)
        except NotImplementedError:
            kl_z = log_q - pz.log_prob(z)
        ll = self.likelihood.log_prob(self.decoder(torch.cat([z, c_items], -1)), items)
        return SetTerms(ll, kl_z, kl_c, qc)

    def training_bound(self, sets: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, SetTerms]:
        """The NS bound of each set ``(S,)`` (nats) and its terms; ``sets`` ``(S, N, data_dim)``."""
        t = self.set_terms(sets)
        return ns_bound(t), t

    # ----- the protocol, with the support set as the condition --------------------------------------
    def _support(self, support: Any, batch: int | None) -> Tensor | None:
        if support is None:
            return None
        s = torch.as_tensor(support)
        if not s.is_floating_point():
            raise ConditionError(f"{type(self).__name__}: support must be a float tensor, got dtype {s.dtype}")
        if s.dim() == 2:
            s = s.unsqueeze(0)
        if s.dim() != 3 or s.shape[-1] != self.data_dim or (batch is not None and s.shape[0] not in (1, batch)):
            raise ConditionError(f"{type(self).__name__}: support must have shape (K, {self.data_dim}) or "
                                 f"({batch if batch is not None else 'B'}, K, {self.data_dim}), got {tuple(s.shape)}")
        return s

    def _check_cond(self, cond: dict[str, Any]) -> Any:
        extra = sorted(set(cond) - {"support"})
        if extra:
            raise ConditionError(f"{type(self).__name__} takes the condition 'support' (a set (K, D) or "
                                 f"(B, K, D)), not {extra}")
        return cond.get("support")

    def _chain(self, qc: Distribution, batch_shape: torch.Size) -> ContextChain:
        return ContextChain(qc, self.z_prior, batch_shape, (self.context_dim, self.z_dim))

    def prior(self, **cond: Any) -> Distribution:
        r"""The prior of ``v = [c, z]``: :math:`q(c|D)\,p(z|c)` given ``support`` (batch ``(B,)`` or ``(1,)``), else
        :math:`p(c)\,p(z|c)` (batch ``()``)."""
        s = self._support(self._check_cond(cond), None)
        if s is None:
            return self._chain(self.context_latent.prior(), torch.Size())
        qc = self.context_posterior(s)
        return self._chain(qc, qc.batch_shape)

    def posterior(self, x: Tensor, **cond: Any) -> Distribution:
        r"""q(v|x, D) = :math:`q(c|D\cup\{x\})\,q(z|x, c)`, batch ``(B,)``; ``x`` ``(B, data_dim)``."""
        s = self._support(self._check_cond(cond), x.shape[0])
        h = self.item_encoder(x)                                              # (B, H)
        if s is None:
            h_mean = h
        else:
            hs = self.item_encoder(s)                                         # (B|1, K, H)
            k = hs.shape[-2]
            h_mean = (hs.sum(-2) + h) / (k + 1)
        qc = self._context_from_mean(h_mean)
        return ContextChain(qc, lambda c: self.z_posterior(h, c), torch.Size([x.shape[0]]),
                            (self.context_dim, self.z_dim))

    def log_likelihood(self, x: Tensor, z: Tensor, **cond: Any) -> Tensor:
        """log p(x|z, c) in nats, ``(*S, B)``; ``z`` is ``v = [c, z]`` ``(*S, B, C + Z)``."""
        self._check_cond(cond)
        return self.likelihood.log_prob(self.decoder(self._dec_in(z)), x)

    def _dec_in(self, v: Tensor) -> Tensor:
        c, z = v.split([self.context_dim, self.z_dim], -1)
        return torch.cat([z, c], -1)

    def decode(self, z: Tensor, **cond: Any) -> Distribution:
        """p(x|z, c) for ``v = [c, z]`` ``(*S, B, C + Z)``."""
        self._check_cond(cond)
        return self.likelihood(self.decoder(self._dec_in(z)))

    def encode(self, x: Tensor, **cond: Any) -> Tensor:
        """``[c, z]`` at the posterior means, ``(B, C + Z)``."""
        q = self.posterior(x, **cond)
        c = self.context_latent.point_estimate(q.top)
        z = self.z_latent.point_estimate(self.z_posterior(self.item_encoder(x), c))
        return torch.cat([c, z], -1)

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, **cond: Any) -> Tensor:
        """``n`` draws ``c ~ q(c|D)`` (or p(c)), ``z ~ p(z|c)``, decoded to ``(n, data_dim)``; ``support`` ``(K, D)``."""
        s = self._support(self._check_cond(cond), None)
        if s is not None and s.shape[0] != 1:
            raise ConditionError(f"{type(self).__name__}.sample: give one support set (K, {self.data_dim}), "
                                 f"got {tuple(s.shape)}")
        p = self.prior(**cond)
        v = p.sample((n,))
        v = v.reshape(n, -1)
        px = self.decode(v)
        return px.mean if mean else px.sample()

    # ----- few-shot classification --------------------------------------------------------------------
    #: few-shot scoring rules: the KL direction between the query's and each class's context posterior
    RULES = ("kl_support_query", "kl_query_support")

    @torch.no_grad()
    def classify(self, support: Tensor, query: Tensor, rule: str = "kl_support_query") -> Tensor:
        r"""Few-shot labels: the class ``k`` whose context posterior is nearest the query's in KL (Edwards &
        Storkey 2016, §5.3): ``rule="kl_support_query"`` minimises :math:`\mathrm{KL}(q(c|D_k)\,\|\,q(c|\{x\}))`
        (the default: better on every background-set setting, where it was chosen, for the VHE at 30 epochs),
        ``"kl_query_support"`` minimises :math:`\mathrm{KL}(q(c|\{x\})\,\|\,q(c|D_k))`.

        Args:
            support: ``(way, shot, data_dim)``, one support set per class.
            query: ``(Q, data_dim)``.

        Returns:
            ``(Q,)`` int64 in ``0..way-1``.

        Raises:
            ValueError: an unknown rule, naming the known ones.
        """
        return self.class_scores(support, query, rule).argmax(-1)

    @torch.no_grad()
    def class_scores(self, support: Tensor, query: Tensor, rule: str = "kl_support_query") -> Tensor:
        """``(Q, way)`` minus the KL between each query's context posterior and each class's (higher = closer)."""
        if rule not in self.RULES:
            raise ValueError(f"fewshot.rule: expected one of {self.RULES}, got {rule!r}")
        qk = self.context_posterior(support)                                 # batch (way,)
        qx = self.context_posterior(query.unsqueeze(1))                      # batch (Q,)
        qx_b = Normal(qx.base_dist.loc[:, None, :], qx.base_dist.scale[:, None, :])
        qk_b = Normal(qk.base_dist.loc[None], qk.base_dist.scale[None])
        kl = kl_divergence(qk_b, qx_b) if rule == "kl_support_query" else kl_divergence(qx_b, qk_b)
        return -kl.sum(-1)


class HomoEncoder(NeuralStatistician):
    r"""The Variational Homoencoder (Hewitt et al. 2018, "The Variational Homoencoder: Learning to learn high
    capacity generative models from few examples", arXiv:1807.08919): the Neural Statistician's model trained with
    the VHE objective (:func:`vhe_bound`).

    Args:
        class_size: ``|X|``, the number of items of each training class (20 for Omniglot): the context KL of each
            item is divided by it.
        support_size: ``|D|``, the items of the class q(c|D) reads (5 in the paper's example).
        disjoint: ``D`` never holds a scored item (see :meth:`training_bound`).
        min_support_size: if below ``support_size``, each training batch draws ``|D|`` uniformly from
            ``min_support_size..support_size`` (the scored items stay the last ``n - support_size`` of the
            permutation), so q(c|D) also learns small sets, as 1-shot classification needs; default: fixed ``|D|``.
        args, kwargs: the parts, as for :class:`NeuralStatistician`.

    :meth:`training_bound` takes sets of whole classes ``(S, n, data_dim)``: in each, a random permutation gives
    ``D`` (``support_size`` items) and the remaining ``n - support_size`` items as the scored ones, so each
    scored ``x`` is never in its own ``D``.
    """

    objective_name = "vhe"

    def __init__(self, *args: Any, class_size: int, support_size: int = 5, disjoint: bool = True,
                 min_support_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if class_size < 2 or not 1 <= support_size < class_size:
            raise ValueError(f"model.class_size / model.support_size: need class_size >= 2 and 1 <= support_size < "
                             f"class_size, got {class_size} and {support_size}")
        lo = support_size if min_support_size is None else min_support_size
        if not 1 <= lo <= support_size:
            raise ValueError(f"model.min_support_size: expected 1..{support_size}, got {min_support_size}")
        self.class_size, self.support_size, self.disjoint = int(class_size), int(support_size), bool(disjoint)
        self.min_support_size = int(lo)

    def training_bound(self, sets: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, SetTerms]:
        r"""The VHE objective of each class ``(S,)`` (nats, summed over its scored items) and its terms.

        ``sets`` ``(S, n, data_dim)`` are whole classes. ``disjoint`` (default): a random permutation of each class
        gives ``D`` (its first ``support_size`` items) and the ``n - support_size`` scored items, so no scored ``x``
        is in its ``D``. ``disjoint=False``: ``D`` is a random ``support_size``-subset drawn independently of the
        items and all ``n`` are scored; summed over a whole class this is an unbiased estimate of a lower bound on
        :math:`\log p(X)` (Hewitt et al. 2018, §3).
        """
        s, n = sets.shape[:2]
        if n <= self.support_size:
            raise ValueError(f"model.support_size: {self.support_size} support items leave none of the {n} to score")
        perm = torch.argsort(torch.rand(s, n, generator=generator), -1).to(sets.device)
        k = self.support_size
        if self.min_support_size < k:  # |D| uniform in min_support_size..support_size, one draw per batch
            k = int(torch.randint(self.min_support_size, k + 1, (), generator=generator))
        sup_idx = perm[:, :k]
        scored_idx = perm[:, self.support_size:] if self.disjoint else torch.arange(n).expand(s, n)
        pick = lambda idx: torch.gather(sets, 1, idx[..., None].expand(*idx.shape, sets.shape[-1]))  # noqa: E731
        t = self.set_terms(pick(scored_idx), pick(sup_idx))
        t.support_items, t.scored_items = sup_idx, scored_idx
        return vhe_bound(t, self.class_size), t


def build_set_model(kind: str, data_dim: int, encoder: dict, pool: dict, context: dict, z_encoder: dict,
                    latent: dict, prior_net: dict, decoder: dict, likelihood: dict,
                    class_size: int | None = None, support_size: int = 5, disjoint: bool = True,
                    min_support_size: int | None = None,
                    image_shape: Sequence[int] | None = None) -> NeuralStatistician:
    """Build a :class:`NeuralStatistician` (``kind="ns"``) or :class:`HomoEncoder` (``"vhe"``) from config specs.

    ``image_shape`` ``(C, H, W)`` reaches the per-item encoder and the decoder, the networks that see images
    (``{type: conv}`` / ``{type: deconv}``), unless their spec names its own.

    Raises:
        ConfigError: naming the dotted key (``model.context.dim``, ...).
    """
    from ..latents import LATENTS
    from ..likelihoods import LIKELIHOODS
    from ..registry import build
    from .build import build_net

    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    enc = build_net(encoder, "model.encoder", data_dim, None, image_shape)
    pool_net = build_net(pool, "model.pool", enc.out_features, None, None, not_image="reads the pooled item features")
    ctx = build(LATENTS, context, "model.context", in_features=pool_net.out_features)
    zenc = build_net(z_encoder, "model.z_encoder", enc.out_features + ctx.dim, None, None,
                     not_image="reads the item's features joined with the context")
    lat = build(LATENTS, latent, "model.latent", in_features=zenc.out_features)
    pnet = build_net(prior_net, "model.prior_net", ctx.dim, None, None, not_image="reads the context")
    plat = build(LATENTS, latent, "model.latent", in_features=pnet.out_features)
    dec = build_net(decoder, "model.decoder", lat.dim + ctx.dim, lik.out_features, image_shape)
    parts = (enc, pool_net, ctx, zenc, lat, pnet, plat, dec, lik)
    if kind == "ns":
        return NeuralStatistician(*parts)
    if kind == "vhe":
        if class_size is None:
            from ..registry import ConfigError
            raise ConfigError("model.class_size: the VHE needs the class size |X| (20 for Omniglot)")
        return HomoEncoder(*parts, class_size=class_size, support_size=support_size, disjoint=disjoint,
                           min_support_size=min_support_size)
    from ..registry import ConfigError
    raise ConfigError(f"model.objective: expected 'ns' or 'vhe', got {kind!r}")


def _register() -> None:
    from .base import MODELS

    @MODELS.register("neural_statistician")
    def build_neural_statistician(data_dim: int, image_shape: Sequence[int] | None, encoder: dict, pool: dict,
                                  context: dict, z_encoder: dict, latent: dict, prior_net: dict, decoder: dict,
                                  likelihood: dict) -> NeuralStatistician:
        """``model: {type: neural_statistician, encoder, pool, context: {type: gaussian, dim: 64}, z_encoder,
        latent: {type: gaussian, dim: 16}, prior_net, decoder, likelihood}`` (networks: ``{type: mlp, ...}``)."""
        return build_set_model("ns", data_dim, encoder, pool, context, z_encoder, latent, prior_net, decoder,
                               likelihood, image_shape=image_shape)

    @MODELS.register("homoencoder")
    def build_homoencoder(data_dim: int, image_shape: Sequence[int] | None, encoder: dict, pool: dict,
                          context: dict, z_encoder: dict, latent: dict, prior_net: dict, decoder: dict,
                          likelihood: dict, class_size: int, support_size: int = 5,
                          disjoint: bool = True, min_support_size: int | None = None) -> HomoEncoder:
        """As ``neural_statistician`` plus ``class_size`` (``|X|``), ``support_size`` (``|D|``) and ``disjoint``
        (``D`` never holds the scored item): the VHE."""
        return build_set_model("vhe", data_dim, encoder, pool, context, z_encoder, latent, prior_net, decoder,
                               likelihood, class_size, support_size, disjoint, min_support_size, image_shape)


_register()
