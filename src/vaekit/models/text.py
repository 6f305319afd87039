"""Sentence VAE (Bowman et al. 2016), spherical latents for text (Xu & Durrett 2018) and the LSTM language model.

``TextVAE`` speaks the model protocol of :class:`~vaekit.models.LatentVariableModel` on token rows ``(B, T)``
(:mod:`vaekit.data.text`); its latent family is any latent layer (``gaussian``, ``vmf`` with ``fixed_kappa`` or
learned, ``power_spherical``). ``LanguageModel`` is the same decoder with no z: the baseline, scored exactly.
Decoding (greedy, sampling, beam search) and homotopies between two sentences' codes live here too.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..latents import LATENTS
from ..latents.base import LatentLayer, slerp
from ..latents.space import LatentSpace
from ..likelihoods.tokens import token_log_likelihood
from ..nets.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, SentenceDecoder, SentenceEncoder, sentence_lengths
from ..registry import ConfigError, Fraction, PositiveInt, build, check_kwargs
from .base import MODELS, LatentVariableModel, VAEOutput

__all__ = ["TextVAE", "LanguageModel", "SentenceDistribution", "decoder_inputs", "greedy_decode", "sample_decode",
           "beam_decode", "impute", "WILDCARD", "homotopy", "validate_tokens", "TextClassifier", "TextM2"]


def validate_tokens(x: Tensor, vocab_size: int, name: str = "x") -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``x`` is ``(B, T)`` int64 ids in ``[0, vocab_size)`` whose every
    row holds an ``<eos>`` after at least zero tokens (and no ``<pad>``/``<bos>`` before it)."""
    if not isinstance(x, Tensor) or x.dim() != 2 or x.dtype != torch.int64:
        raise ValueError(f"{name}: a text model takes (B, T) int64 token rows, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(f"{name}: token ids must lie in [0, {vocab_size}), got [{int(x.min())}, {int(x.max())}]")
    has_eos = (x == EOS_ID).any(1)
    if not bool(has_eos.all()):
        row = int((~has_eos).nonzero()[0])
        raise ValueError(f"{name}: row {row} has no <eos> (id {EOS_ID}); rows are 'w_1 .. w_n <eos> <pad> ..'")
    lengths = sentence_lengths(x)
    before = torch.arange(x.shape[1], device=x.device) < (lengths - 1).unsqueeze(-1)
    bad = before & ((x == PAD_ID) | (x == BOS_ID))
    if bool(bad.any()):
        row = int(bad.any(1).nonzero()[0])
        raise ValueError(f"{name}: row {row} has <pad> or <bos> before its <eos>")


def decoder_inputs(x: Tensor, word_keep: float, training: bool, generator: torch.Generator | None = None) -> Tensor:
    r"""``<bos> w_1 .. w_{T-1}`` for targets ``x`` ``(B, T)``, with Bowman et al.'s word dropout.

    Each input word (not ``<bos>``) becomes ``<unk>`` with probability ``1 - word_keep`` while training;
    ``word_keep = 0`` is the inputless decoder, which never sees a word, in training and evaluation alike.
    """
    inp = torch.cat([torch.full_like(x[:, :1], BOS_ID), x[:, :-1]], 1)
    if word_keep >= 1.0 or (not training and word_keep > 0.0):
        return inp
    if word_keep <= 0.0:
        drop = torch.ones_like(inp, dtype=torch.bool)
    else:
        u = torch.rand(inp.shape, device=inp.device, generator=generator)
        drop = u >= word_keep
    drop[:, 0] = False
    return torch.where(drop, torch.full_like(inp, UNK_ID), inp)


def _trim(x: Tensor) -> Tensor:
    """Drop trailing columns past every row's ``<eos>`` (they hold only padding)."""
    return x[:, : int(sentence_lengths(x).max())]


class _Decoding(nn.Module):
    """Decoding shared by the VAE and the language model: a :class:`SentenceDecoder` and its input policy."""

    decoder: SentenceDecoder
    word_keep: float
    max_decode_len: int

    def _step_inputs(self, tok: Tensor) -> Tensor:
        return torch.full_like(tok, UNK_ID) if self.word_keep <= 0.0 else tok

    def evaluation_order(self, x: Tensor) -> Tensor:
        """The rows of ``x`` ``(N, L)`` by sentence length (stable), ``(N,)`` int64: the order in which
        :func:`vaekit.evaluation.run_estimators` batches them, so each batch's LSTM runs to about its own
        sentences' length rather than to the longest sentence of a random batch."""
        return torch.argsort(sentence_lengths(x), stable=True)

    def _scores(self, x: Tensor, c: Tensor | None) -> Tensor:
        """``log p(x|c)`` ``(*S, B)``; ``c`` ``(*S, B, C)`` or None."""
        x = _trim(x)
        inp = decoder_inputs(x, self.word_keep, self.training)
        if c is None:
            logits, _ = self.decoder(inp)
            return token_log_likelihood(logits, x)
        lead = c.shape[:-1]
        s = int(math.prod(lead[:-1]))
        flat = c.reshape(-1, c.shape[-1])
        inp_rep = inp.repeat(s, 1) if s > 1 else inp
        logits, _ = self.decoder(inp_rep, flat)
        lp = token_log_likelihood(logits.view(s, *x.shape, -1), x)  # (s, B)
        return lp.view(*lead)

    @torch.no_grad()
    def _decode(self, c: Tensor | None, n: int, mode: Literal["greedy", "sample", "beam"], max_len: int | None,
                temperature: float = 1.0, beam: int = 5, generator: torch.Generator | None = None) -> Tensor:
        max_len = max_len or self.max_decode_len
        if mode == "beam":
            return beam_decode(self, c, n, beam, max_len)
        dev = next(self.parameters()).device
        tok = torch.full((n, 1), BOS_ID, dtype=torch.int64, device=dev)
        state = None
        out = torch.full((n, max_len + 1), PAD_ID, dtype=torch.int64, device=dev)
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        for t in range(max_len + 1):
            logits, state = self.decoder(self._step_inputs(tok) if t else tok, c, state)
            logits = logits[:, -1]
            logits[:, PAD_ID] = logits[:, BOS_ID] = -math.inf
            if t == max_len:  # force the end
                nxt = torch.full((n,), EOS_ID, dtype=torch.int64, device=dev)
            elif mode == "greedy":
                nxt = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            out[:, t] = nxt
            done = done | (nxt == EOS_ID)
            tok = nxt.unsqueeze(-1)
            if bool(done.all()):
                break
        return _trim(out)


def greedy_decode(model: "_Decoding", c: Tensor | None, n: int | None = None, max_len: int | None = None) -> Tensor:
    """The most probable next word at every step, ``(N, L)`` rows ending in ``<eos>``; ``c`` ``(N, C)`` or None."""
    return model._decode(c, n if c is None else c.shape[0], "greedy", max_len)


def sample_decode(model: "_Decoding", c: Tensor | None, n: int | None = None, max_len: int | None = None,
                  temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Ancestral samples ``w_t ~ softmax(l_t / temperature)``, ``(N, L)`` rows ending in ``<eos>``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return model._decode(c, n if c is None else c.shape[0], "sample", max_len, temperature, generator=generator)


WILDCARD = -1
"""A template position whose word is to be imputed (:func:`beam_decode`, :func:`impute`)."""


def _check_templates(template: list[list[int]], n: int, vocab_size: int) -> None:
    if len(template) != n:
        raise ValueError(f"template has {len(template)} rows but there are {n} codes to decode")
    for i, row in enumerate(template):
        if not row:
            raise ValueError(f"template row {i} is empty: give at least one word or WILDCARD")
        bad = [w for w in row if w != WILDCARD and not 0 <= w < vocab_size]
        if bad:
            raise ValueError(f"template row {i} holds token ids outside [0, {vocab_size}) other than WILDCARD "
                             f"({WILDCARD}): {bad[:5]}")
        special = [w for w in row if w in (PAD_ID, BOS_ID, EOS_ID)]
        if special:
            raise ValueError(f"template row {i} holds <pad>, <bos> or <eos> ids {special[:5]}: give the words only "
                             "(the end of the sentence is decoded)")


@torch.no_grad()
def beam_decode(model: "_Decoding", c: Tensor | None, n: int | None = None, beam: int = 5,
                max_len: int | None = None, template: list[list[int]] | None = None,
                free_tail: bool = False) -> Tensor:
    r"""Beam search for :math:`\arg\max_x \log p(x|c)` (sum of token log-probabilities, ``<eos>`` included, no length
    normalisation), ``beam`` hypotheses per code; ``(N, L)`` rows ending in ``<eos>``.

    With ``template`` (one list of token ids per code), the search is constrained: position ``t`` of row ``i`` is
    ``template[i][t]`` where that is a word id, and any word but ``<eos>`` and ``<unk>`` where it is
    :data:`WILDCARD` (the words to impute); after the template the sentence ends (``free_tail=False``: exactly
    ``len(template[i])`` words) or continues freely up to ``max_len`` words and ``<eos>`` (``free_tail=True``:
    Bowman et al. 2016's completion of a truncated sentence, Sec. 5.2). Observed words are scored too, so the
    result maximises the joint :math:`\log p(x|c)` over the imputed words.

    Raises:
        ValueError: ``beam < 1``; a template with the wrong number of rows, an empty row, or ids outside the
            vocabulary or special (``<pad>``, ``<bos>``, ``<eos>``).
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    n = n if c is None else c.shape[0]
    max_len = max_len or model.max_decode_len
    if template is not None:
        _check_templates(template, n, model.vocab_size)
    dev = next(model.parameters()).device
    rows = []
    for i in range(n):
        tmpl = None if template is None else template[i]
        # the forced end: after the template, or at max_len (never inside the template)
        end = max_len if tmpl is None else (max(max_len, len(tmpl)) if free_tail else len(tmpl))
        ci = None if c is None else c[i:i + 1].expand(beam, -1)
        seqs = torch.full((1, 0), PAD_ID, dtype=torch.int64, device=dev)
        scores = torch.zeros(1, device=dev)
        tok = torch.full((1, 1), BOS_ID, dtype=torch.int64, device=dev)
        state = None
        best, best_score = None, -math.inf
        for t in range(end + 1):
            k = seqs.shape[0]
            st = None if state is None else (state[0][:, :k], state[1][:, :k])
            logits, state = model.decoder(model._step_inputs(tok) if t else tok, None if ci is None else ci[:k], st)
            lp = torch.log_softmax(logits[:, -1], -1)
            lp[:, PAD_ID] = lp[:, BOS_ID] = -math.inf
            only = EOS_ID if t == end else (tmpl[t] if tmpl is not None and t < len(tmpl) else None)
            if only is not None and only != WILDCARD:
                lp_keep = torch.full_like(lp, -math.inf)
                lp_keep[:, only] = lp[:, only]
                lp = lp_keep
            elif only == WILDCARD:
                lp[:, EOS_ID] = lp[:, UNK_ID] = -math.inf
            cand = (scores.unsqueeze(-1) + lp).view(-1)
            top = torch.topk(cand, min(beam, cand.numel()))
            finite = torch.isfinite(top.values)  # a forced word leaves fewer than `beam` candidates
            values, idx = top.values[finite], top.indices[finite]
            prev, word = idx // lp.shape[1], idx % lp.shape[1]
            new = torch.cat([seqs[prev], word.unsqueeze(-1)], 1)
            ended = word == EOS_ID
            for j in ended.nonzero().flatten().tolist():
                if values[j] > best_score:
                    best, best_score = new[j], float(values[j])
            live = ~ended
            # stop when no live hypothesis can beat the best ended one (scores only fall)
            if not bool(live.any()) or float(values[live].max()) <= best_score:
                break
            seqs, scores = new[live], values[live]
            state = (state[0][:, prev[live]], state[1][:, prev[live]])
            tok = word[live].unsqueeze(-1)
        rows.append(best)
    width = max(r.shape[0] for r in rows)
    out = torch.full((n, width), PAD_ID, dtype=torch.int64, device=dev)
    for i, r in enumerate(rows):
        out[i, :r.shape[0]] = r
    return out


@torch.no_grad()
def impute(model: "_Decoding", x: Tensor, missing: Tensor, beam: int = 5, free_tail: bool = False) -> Tensor:
    r"""Fill in the ``missing`` words of sentences ``x`` by constrained beam search (Bowman et al. 2016, Sec. 5.2).

    A :class:`TextVAE` first infers a code from the observed words alone, :math:`z = \mathrm{encode}(\tilde x)`
    (the posterior mean, mean direction on a sphere), where :math:`\tilde x` is ``x`` with the missing words read
    as ``<unk>`` (``free_tail=False``) or dropped (``free_tail=True``: the encoder sees only the observed prefix),
    then decodes :math:`\arg\max \log p(x|z)` over the missing words with the observed ones fixed. A
    :class:`LanguageModel` decodes :math:`\arg\max \log p(x)` the same way (the baseline).

    Args:
        x: ``(N, T)`` token rows (``w_1 .. w_n <eos> <pad> ..``).
        missing: ``(N, T)`` bool, True at the words to impute (never at ``<eos>``/padding). With
            ``free_tail=True`` the missing words must be a suffix of each sentence; their number is then not
            kept (the sentence is continued freely up to the model's ``max_decode_len``).
    Returns:
        ``(N, L)`` rows ending in ``<eos>``, observed words unchanged.

    Raises:
        ValueError: shapes differ, a missing position at ``<eos>``/padding, a sentence with no observed word, a
            non-suffix gap with ``free_tail=True``, or the template errors of :func:`beam_decode`.
    """
    validate_tokens(x, model.vocab_size)
    if missing.shape != x.shape or missing.dtype != torch.bool:
        raise ValueError(f"missing must be a bool tensor of x's shape {tuple(x.shape)}, got "
                         f"{missing.dtype} {tuple(missing.shape)}")
    lengths = sentence_lengths(x) - 1  # words, <eos> excluded
    pos = torch.arange(x.shape[1], device=x.device)
    words = pos.unsqueeze(0) < lengths.unsqueeze(1)
    if bool((missing & ~words).any()):
        raise ValueError("missing is True at an <eos> or padding position: only words can be imputed")
    template, observed = [], []
    for i in range(x.shape[0]):
        n_i, m_i = int(lengths[i]), missing[i, : int(lengths[i])]
        if bool(m_i.all()):
            raise ValueError(f"sentence {i} has no observed word: nothing to condition on (use sampling instead)")
        if free_tail:
            first = int(m_i.nonzero()[0]) if bool(m_i.any()) else n_i
            if bool(m_i[first:].logical_not().any()):
                raise ValueError(f"sentence {i}: with free_tail the missing words must end the sentence")
            template.append(x[i, :first].tolist())
            observed.append(x[i, :first].tolist())
        else:
            template.append([WILDCARD if bool(m) else int(w) for w, m in zip(x[i, :n_i], m_i)])
            observed.append([UNK_ID if bool(m) else int(w) for w, m in zip(x[i, :n_i], m_i)])
    c = None
    if isinstance(model, TextVAE):
        width = max(len(o) for o in observed) + 1
        xo = torch.full((len(observed), width), PAD_ID, dtype=torch.int64, device=x.device)
        for i, o in enumerate(observed):
            xo[i, : len(o)] = torch.tensor(o, dtype=torch.int64)
            xo[i, len(o)] = EOS_ID
        c = model.encode(xo)
    return beam_decode(model, c, x.shape[0], beam, template=template, free_tail=free_tail)


class SentenceDistribution(Distribution):
    """p(x|c) over token rows: ``log_prob`` by teacher forcing, ``sample`` ancestrally, ``mode`` greedily.

    Batch shape ``c.shape[:-1]`` (``(N,)``); values are ``(N, T)`` int64 rows (:mod:`vaekit.data.text`).
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, model: "_Decoding", c: Tensor) -> None:
        self.model, self.c = model, c
        super().__init__(c.shape[:-1], validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.model._scores(value, self.c)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        if len(sample_shape):
            raise NotImplementedError("SentenceDistribution.sample draws one sentence per code (sample_shape ())")
        return sample_decode(self.model, self.c.reshape(-1, self.c.shape[-1]))

    @property
    def mode(self) -> Tensor:
        return greedy_decode(self.model, self.c.reshape(-1, self.c.shape[-1]))

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError("a distribution over sentences has no mean; use .mode (greedy) or .sample()")


class TextVAE(LatentVariableModel, _Decoding):
    r"""A sentence VAE: LSTM/GRU encoder -> latent layer -> LSTM decoder conditioned on z.

    .. math::
        \log p(x) \ge \mathbb E_{q(z|x)}\Bigl[\sum_{t=1}^{n+1} \log p(w_t | w_{<t}, z)\Bigr]
        - \mathrm{KL}(q(z|x)\,\|\,p(z))

    (Bowman et al. 2016, arXiv:1511.06349). The latent layer decides the family: a Gaussian (Bowman), a vMF with
    fixed :math:`\kappa` whose KL is a constant (Xu & Durrett 2018, arXiv:1808.10805) or learned, a power
    spherical. ``word_keep`` is the word-dropout keep rate (1: off; 0: the inputless decoder). All values in nats
    per sentence, ``<eos>`` included.

    Shapes: ``x`` ``(B, T)`` int64 (each row ``w_1 .. w_n <eos> <pad> ..``), ``z`` ``(*S, B, D)``,
    ``log_likelihood`` ``(*S, B)``; ``sample``/``reconstruct`` return decoded rows ``(N, L)``.
    """

    def __init__(self, encoder: SentenceEncoder, latent: LatentLayer, decoder: SentenceDecoder, vocab_size: int,
                 word_keep: float = 1.0, max_decode_len: int = 50) -> None:
        super().__init__()
        if not 0.0 <= word_keep <= 1.0:
            raise ValueError(f"word_keep must be in [0, 1], got {word_keep}")
        self.encoder, self.latent, self.decoder = encoder, latent, decoder
        self.vocab_size, self.word_keep, self.max_decode_len = vocab_size, float(word_keep), max_decode_len
        # one chunk of log_weights holds chunk * B * T * V logits: budget ~32 M values whatever the vocabulary
        self.chunk_elements = max(1, 32_000_000 // vocab_size)

    @property
    def latent_dim(self) -> int:
        return self.latent.dim

    def posterior(self, x: Tensor) -> Distribution:
        """q(z|x): batch shape ``(B,)``."""
        return self.latent(self.encoder(_trim(x)))

    def prior(self) -> Distribution:
        return self.latent.prior()

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x|z)`` in nats per sentence, ``(*S, B)`` for ``z`` ``(*S, B, D)``; padding never counts."""
        return self._scores(x, z)

    def decode(self, z: Tensor) -> SentenceDistribution:
        """p(x|z) for ``z`` ``(N, D)``: a :class:`SentenceDistribution`."""
        return SentenceDistribution(self, z)

    def encode(self, x: Tensor) -> Tensor:
        """The posterior's point estimate (mean; mean direction on a sphere), ``(B, D)``."""
        return self.latent.point_estimate(self.posterior(x))

    def validate_input(self, x: Tensor, name: str = "x") -> None:
        validate_tokens(x, self.vocab_size, name)

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, **_: Any) -> Tensor:
        """``n`` codes from the prior decoded greedily (``mean=True``) or by sampling, ``(n, L)`` token rows."""
        z = self.prior().sample((n,))
        return greedy_decode(self, z) if mean else sample_decode(self, z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, **_: Any) -> Tensor:
        """Greedy decoding of ``encode(x)``, ``(B, L)``."""
        return greedy_decode(self, self.encode(x))


class LanguageModel(_Decoding):
    r"""The LSTM language model: the :class:`TextVAE`'s decoder with no z, scored exactly.

    .. math:: \log p(x) = \sum_{t=1}^{n+1} \log p(w_t | w_{<t})

    It speaks as much of the protocol as a model without a latent can: ``model(x, k)`` gives the exact log-likelihood
    ``(k, B)`` with ``kl`` 0, and ``log_weights(x, k)`` is ``log p(x)`` repeated, so the ELBO and IWAE estimators both
    return ``log p(x)`` and the LM sits in the same tables as the VAEs. ``word_keep = 0`` is Bowman's inputless LM.
    """

    def __init__(self, decoder: SentenceDecoder, vocab_size: int, word_keep: float = 1.0,
                 max_decode_len: int = 50) -> None:
        super().__init__()
        if decoder.cond_dim:
            raise ValueError("a language model's decoder takes no code (cond_dim 0)")
        self.decoder, self.vocab_size, self.word_keep, self.max_decode_len = decoder, vocab_size, float(word_keep), max_decode_len

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` ``(B,)`` nats."""
        return self._scores(x, None)

    def forward(self, x: Tensor, k: int = 1) -> VAEOutput:
        lp = self.log_prob(x)
        return VAEOutput(None, lp.expand(k, -1), torch.zeros_like(lp), None, None)  # type: ignore[arg-type]

    def log_weights(self, x: Tensor, k: int, **_: Any) -> Tensor:
        return self.log_prob(x).expand(k, -1)

    @property
    def latent_space(self) -> LatentSpace:
        return LatentSpace(None, 0, "euclidean", note="a language model has no latent variable")

    def validate_input(self, x: Tensor, name: str = "x") -> None:
        validate_tokens(x, self.vocab_size, name)

    @torch.no_grad()
    def sample(self, n: int, mean: bool = False, **_: Any) -> Tensor:
        return greedy_decode(self, None, n) if mean else sample_decode(self, None, n)

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError("a language model has no latent code to encode into")


@torch.no_grad()
def homotopy(model: TextVAE, x_a: Tensor, x_b: Tensor, steps: int = 5,
             mode: Literal["greedy", "beam"] = "greedy") -> Tensor:
    r"""Decode ``steps`` codes on the path between ``encode(x_a)`` and ``encode(x_b)`` (Bowman et al. 2016, Sec. 5.3):
    the straight line for a Euclidean latent, the great circle (:func:`~vaekit.latents.slerp`) on a sphere.

    Args:
        x_a, x_b: ``(1, T)`` token rows. Returns ``(steps, L)`` decoded rows.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    za, zb = model.encode(x_a)[0], model.encode(x_b)[0]
    if model.latent_space.geometry == "sphere":
        path = slerp(za, zb, steps)
    else:
        t = torch.linspace(0, 1, steps, dtype=za.dtype, device=za.device).unsqueeze(-1)
        path = (1 - t) * za + t * zb
    return beam_decode(model, path) if mode == "beam" else greedy_decode(model, path)


# ------------------------------------------------------------------------------------------------------------
# builders
# ------------------------------------------------------------------------------------------------------------


def _need_vocab(vocab_size: int | None) -> int:
    if vocab_size is None:
        raise ConfigError("model.vocab_size: missing; it is taken from a text data set (data.name: ptb, mr, trec, "
                          "sst2, short_yelp or text) when left out, or give it")
    return vocab_size


def _encoder(spec: dict, vocab_size: int, embed_dim: int, embedding: nn.Embedding | None) -> SentenceEncoder:
    spec = dict(spec or {})
    check_kwargs(SentenceEncoder, spec, "model.encoder", fixed=("vocab_size", "embed_dim", "embedding"))
    return SentenceEncoder(vocab_size, embed_dim, embedding=embedding, **spec)


def _decoder(spec: dict, vocab_size: int, embed_dim: int, cond_dim: int, embedding: nn.Embedding | None,
             fixed_condition: bool = False) -> SentenceDecoder:
    spec = dict(spec or {})
    check_kwargs(SentenceDecoder, spec, "model.decoder", fixed=("vocab_size", "cond_dim", "embed_dim", "embedding")
                 + (("condition",) if fixed_condition else ()))
    return SentenceDecoder(vocab_size, cond_dim, embed_dim, embedding=embedding, **spec)


@MODELS.register("text_vae")
def build_text_vae(data_dim: int, image_shape: Any, latent: dict, vocab_size: PositiveInt | None = None,
                   embed_dim: PositiveInt = 128, encoder: dict | None = None, decoder: dict | None = None,
                   word_keep: Fraction = 1.0, share_embedding: bool = False,
                   max_decode_len: PositiveInt = 50) -> TextVAE:
    """``model: {type: text_vae, latent: {type: gaussian, dim: 32}, embed_dim: 128, encoder: {hidden: 128, cell: lstm},
    decoder: {hidden: 128, condition: init}, word_keep: 0.75}``; ``vocab_size`` comes from the data set."""
    v = _need_vocab(vocab_size)
    emb = nn.Embedding(v, embed_dim) if share_embedding else None
    enc = _encoder(encoder or {}, v, embed_dim, emb)
    lat = build(LATENTS, latent, "model.latent", in_features=enc.out_features)
    dec = _decoder(decoder or {}, v, embed_dim, lat.dim, emb)
    return TextVAE(enc, lat, dec, v, word_keep, max_decode_len)


@MODELS.register("text_lm")
def build_text_lm(data_dim: int, image_shape: Any, vocab_size: PositiveInt | None = None,
                  embed_dim: PositiveInt = 128, decoder: dict | None = None, word_keep: Fraction = 1.0,
                  max_decode_len: PositiveInt = 50) -> LanguageModel:
    """``model: {type: text_lm, embed_dim: 128, decoder: {hidden: 128}, word_keep: 1.0}`` (the baseline)."""
    v = _need_vocab(vocab_size)
    return LanguageModel(_decoder(decoder or {}, v, embed_dim, 0, None, fixed_condition=True), v, word_keep,
                         max_decode_len)


# ------------------------------------------------------------------------------------------------------------
# semi-supervised text classification (Xu et al. 2017)
# ------------------------------------------------------------------------------------------------------------


class TextClassifier(nn.Module):
    """q(y|x): a :class:`SentenceEncoder` and a linear layer, logits ``(B, K)``; also the supervised-only baseline."""

    def __init__(self, encoder: SentenceEncoder, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder, self.n_classes = encoder, n_classes
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(encoder.out_features, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.drop(self.encoder(_trim(x))))

    def classifier_logits(self, x: Tensor) -> Tensor:
        return self(x)

    def classify(self, x: Tensor) -> Tensor:
        return self(x).argmax(-1)


class TextM2(_Decoding):
    r"""The semi-supervised sentence VAE of Xu et al. (2017, arXiv:1603.02514): Kingma et al.'s M2 with LSTMs.

    :math:`p(y) = 1/K`, :math:`p(z)` from the latent layer, :math:`p(x|y,z)` an LSTM decoder fed ``[z; onehot(y)]``
    (its initial state and, with ``condition: both`` or ``concat``, every step: the conditional LSTM);
    :math:`q(y|x)` a :class:`TextClassifier`, :math:`q(z|x,y)` = latent layer of ``[h(x); onehot(y)]``.

    .. math::
        \mathcal L(x,y) = \mathbb E_{q(z|x,y)}[\log p(x|y,z)] + \log p(y) - \mathrm{KL}(q(z|x,y)\|p(z)),\qquad
        \mathcal U(x) = \sum_y q(y|x)\mathcal L(x,y) + \mathcal H(q(y|x))

    :func:`vaekit.objectives.text.ssvae_loss` trains it, with :math:`\mathcal U` by exact enumeration (K decoder
    passes) or by one draw :math:`y\sim q(y|x)` and a score-function gradient (the paper's trick).
    Shapes: ``x`` ``(B, T)`` int64, ``y`` ``(B,)`` int64, bounds ``(B,)`` nats.
    """

    def __init__(self, classifier: TextClassifier, encoder: SentenceEncoder, latent: LatentLayer,
                 decoder: SentenceDecoder, vocab_size: int, n_classes: int, word_keep: float = 1.0,
                 max_decode_len: int = 50) -> None:
        super().__init__()
        if latent.in_features != encoder.out_features + n_classes:
            raise ValueError(f"the latent layer takes [h; onehot(y)] of {encoder.out_features + n_classes} values, "
                             f"got in_features={latent.in_features}")
        if decoder.cond_dim != latent.dim + n_classes:
            raise ValueError(f"the decoder takes [z; onehot(y)] of {latent.dim + n_classes} values, got {decoder.cond_dim}")
        self.classifier, self.encoder, self.latent, self.decoder = classifier, encoder, latent, decoder
        self.vocab_size, self.n_classes = vocab_size, n_classes
        self.word_keep, self.max_decode_len = float(word_keep), max_decode_len

    def _onehot(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        if y.dtype != torch.int64 or (y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.n_classes)):
            raise ValueError(f"labels must be int64 in [0, {self.n_classes}), got {y.dtype} "
                             f"[{int(y.min()) if y.numel() else ''}, {int(y.max()) if y.numel() else ''}]")
        return torch.nn.functional.one_hot(y, self.n_classes).to(dtype)

    def classifier_logits(self, x: Tensor) -> Tensor:
        return self.classifier(x)

    def classify(self, x: Tensor) -> Tensor:
        return self.classifier(x).argmax(-1)

    def posterior(self, x: Tensor, y: Tensor) -> Distribution:
        """q(z|x, y), batch ``(B,)``."""
        h = self.encoder(_trim(x))
        return self.latent(torch.cat([h, self._onehot(y, h.dtype)], -1))

    def prior(self) -> Distribution:
        return self.latent.prior()

    def elbo(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(L(x, y), KL)`` per sentence, ``(B,)`` nats, one reparameterised z each (analytic KL where registered)."""
        from torch.distributions import kl_divergence

        from ..latents.base import has_analytic_kl, kl_estimate

        q, p = self.posterior(x, y), self.prior()
        if has_analytic_kl(q, p):
            z = q.rsample()
            kl = kl_divergence(q, p)
        else:
            z, log_q = q.rsample_and_log_prob()
            kl = kl_estimate(q, p, log_q, p.log_prob(z))
        c = torch.cat([z, self._onehot(y, z.dtype)], -1)
        ll = self._scores(x, c) - math.log(self.n_classes)
        return ll - kl, kl

    def validate_input(self, x: Tensor, name: str = "x") -> None:
        validate_tokens(x, self.vocab_size, name)


def _classifier(spec: dict, vocab_size: int, embed_dim: int, n_classes: int,
                embedding: nn.Embedding | None = None) -> TextClassifier:
    spec = dict(spec or {})
    dropout = spec.pop("dropout", 0.0)
    return TextClassifier(_encoder(spec, vocab_size, embed_dim, embedding), n_classes, dropout)


@MODELS.register("text_classifier")
def build_text_classifier(data_dim: int, image_shape: Any, num_classes: PositiveInt, vocab_size: PositiveInt | None = None,
                          embed_dim: PositiveInt = 128, encoder: dict | None = None) -> TextClassifier:
    """``model: {type: text_classifier, embed_dim: 128, encoder: {hidden: 128, dropout: 0.5}}`` (the baseline)."""
    return _classifier(encoder or {}, _need_vocab(vocab_size), embed_dim, num_classes)


@MODELS.register("text_m2")
def build_text_m2(data_dim: int, image_shape: Any, latent: dict, num_classes: PositiveInt,
                  vocab_size: PositiveInt | None = None, embed_dim: PositiveInt = 128, classifier: dict | None = None,
                  encoder: dict | None = None, decoder: dict | None = None, word_keep: Fraction = 1.0,
                  share_embedding: bool = False, max_decode_len: PositiveInt = 50) -> TextM2:
    """``model: {type: text_m2, latent: {...}, classifier: {hidden: 128}, encoder: {...}, decoder: {condition: both},
    share_embedding: false}``.

    ``share_embedding: true`` gives q(y|x), q(z|x,y) and p(x|y,z) one word embedding, as in Xu et al.'s released
    code (wead-hsu/ssvae, one ``EmbeddingLayer`` read by the classifier, the encoder and the decoder): the
    reconstruction of the unlabelled sentences then trains the word vectors the classifier reads, the most direct
    path by which unlabelled text reaches q(y|x). With separate embeddings (the default) that path runs only
    through the gradient of U(x) with respect to q(y|x).
    """
    v = _need_vocab(vocab_size)
    emb = nn.Embedding(v, embed_dim) if share_embedding else None
    clf = _classifier(classifier or {}, v, embed_dim, num_classes, emb)
    enc = _encoder(encoder or {}, v, embed_dim, emb)
    lat = build(LATENTS, latent, "model.latent", in_features=enc.out_features + num_classes)
    dec = _decoder({"condition": "both", **(decoder or {})}, v, embed_dim, lat.dim + num_classes, emb)
    return TextM2(clf, enc, lat, dec, v, num_classes, word_keep, max_decode_len)
