"""Recurrent networks for sentences: an LSTM/GRU encoder and an LSTM decoder conditioned on z (issue 14).

Token tensors are ``(B, T)`` int64 rows ``w_1 .. w_n <eos> <pad> ..`` (:mod:`vaekit.data.text`); a row ends at its
first ``<eos>`` and what follows never affects an output (the encoder packs the sequences by length).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

__all__ = ["SentenceEncoder", "SentenceDecoder", "sentence_lengths", "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID"]

#: the ids of ``<pad> <unk> <bos> <eos>`` in every vaekit vocabulary (:class:`vaekit.data.text.Vocabulary`)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def sentence_lengths(x: Tensor) -> Tensor:
    """``(B,)`` lengths of rows of ``x`` ``(B, T)``: the position of the first ``<eos>`` plus one (``<eos>`` counts
    as a token, as in perplexity), or ``T`` for a row without one."""
    is_eos = x == EOS_ID
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(x[:, 0], x.shape[1] - 1))
    return first + 1


class SentenceEncoder(nn.Module):
    r"""Embeddings and an LSTM (or GRU) read a sentence; its final hidden state is the feature ``h``.

    .. math:: h = [\overrightarrow{h}_n; \overleftarrow{h}_1] \text{ (bidirectional) or } \overrightarrow{h}_n,

    the state after ``<eos>`` of the last layer (Bowman et al. 2016, arXiv:1511.06349, Sec. 3: a single-layer LSTM
    whose final state gives q(z|x)). Sequences are packed by length, so padding never enters.

    Args:
        vocab_size: ids ``0..vocab_size-1``; ``embed_dim``, ``hidden``: widths; ``cell``: ``lstm`` or ``gru``;
        layers: stacked layers; bidirectional: read both ways (``out_features = 2 * hidden``).
        embedding: share an existing ``nn.Embedding`` instead of making one.

    Shapes: ``x`` ``(B, T)`` int64 -> ``(B, out_features)``.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden: int = 128,
                 cell: Literal["lstm", "gru"] = "lstm", layers: int = 1, bidirectional: bool = False,
                 embedding: nn.Embedding | None = None) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.embedding = embedding if embedding is not None else nn.Embedding(vocab_size, embed_dim)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(self.embedding.embedding_dim, hidden, num_layers=layers, batch_first=True,
                       bidirectional=bidirectional)
        self.cell, self.hidden, self.bidirectional = cell, hidden, bidirectional
        self.out_features = hidden * (2 if bidirectional else 1)

    def forward(self, x: Tensor) -> Tensor:
        lengths = sentence_lengths(x)
        packed = pack_padded_sequence(self.embedding(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if self.cell == "lstm" else state  # (layers * dirs, B, hidden)
        if self.bidirectional:
            return torch.cat([h[-2], h[-1]], -1)
        return h[-1]


class SentenceDecoder(nn.Module):
    r"""An LSTM language model whose state starts from (and whose every input may carry) a code ``c``.

    .. math::
        (h_0, c_0) = \tanh(W c + b) \text{ if ``init``, else } 0, \qquad
        h_t = \mathrm{LSTM}([e(w_{t-1}); c \text{ if ``concat``}], h_{t-1}), \qquad
        p(w_t | w_{<t}, c) = \mathrm{softmax}(V h_t + a)

    ``c`` is z (Bowman et al. 2016 feed it to the initial state only), z with a one-hot label (Xu et al. 2017's
    conditional LSTM feeds the label at every step), or nothing (``cond_dim = 0``: the plain LSTM language model,
    the baseline). ``condition`` picks ``init``, ``concat`` or ``both``.

    Shapes: ``inputs`` ``(N, T)`` int64 (``<bos> w_1 .. w_{T-1}``), ``c`` ``(N, cond_dim)`` -> logits ``(N, T, V)``.
    """

    def __init__(self, vocab_size: int, cond_dim: int, embed_dim: int = 128, hidden: int = 128, layers: int = 1,
                 condition: Literal["init", "concat", "both"] = "init", dropout: float = 0.0,
                 embedding: nn.Embedding | None = None) -> None:
        super().__init__()
        if condition not in ("init", "concat", "both"):
            raise ValueError(f"condition must be 'init', 'concat' or 'both', got {condition!r}")
        self.embedding = embedding if embedding is not None else nn.Embedding(vocab_size, embed_dim)
        self.cond_dim, self.condition, self.layers, self.hidden = cond_dim, condition, layers, hidden
        concat = cond_dim if condition in ("concat", "both") else 0
        self.rnn = nn.LSTM(self.embedding.embedding_dim + concat, hidden, num_layers=layers, batch_first=True)
        self.init = nn.Linear(cond_dim, 2 * layers * hidden) if cond_dim and condition in ("init", "both") else None
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def initial_state(self, c: Tensor | None, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """``(h_0, c_0)``, each ``(layers, N, hidden)``."""
        if self.init is None or c is None:
            z = torch.zeros(self.layers, n, self.hidden, device=device)
            return z, z
        s = torch.tanh(self.init(c)).view(n, 2, self.layers, self.hidden).permute(1, 2, 0, 3)
        return s[0].contiguous(), s[1].contiguous()

    def _inputs(self, inputs: Tensor, c: Tensor | None) -> Tensor:
        e = self.drop(self.embedding(inputs))
        if self.cond_dim and self.condition in ("concat", "both"):
            e = torch.cat([e, c.unsqueeze(1).expand(-1, inputs.shape[1], -1)], -1)
        return e

    def forward(self, inputs: Tensor, c: Tensor | None = None,
                state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Logits ``(N, T, V)`` and the final state (pass it back with the next inputs to decode step by step)."""
        if self.cond_dim and c is None:
            raise ValueError(f"this decoder is conditioned on a code of {self.cond_dim} values; got none")
        if state is None:
            state = self.initial_state(c, inputs.shape[0], inputs.device)
        h, state = self.rnn(self._inputs(inputs, c), state)
        return self.out(self.drop(h)), state
