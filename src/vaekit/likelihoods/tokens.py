"""The categorical likelihood of a sentence: one softmax per position, padding masked (issue 14)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..nets.text import sentence_lengths

__all__ = ["token_log_likelihood", "length_mask"]


def length_mask(lengths: Tensor, width: int) -> Tensor:
    """``(B, width)`` bool: True at positions ``t < lengths[b]``."""
    return torch.arange(width, device=lengths.device) < lengths.unsqueeze(-1)


def token_log_likelihood(logits: Tensor, targets: Tensor, lengths: Tensor | None = None) -> Tensor:
    r"""Log-probability of each sentence in nats, summed over its tokens, ``<eos>`` included and padding excluded.

    .. math:: \log p(x|c) = \sum_{t=1}^{n+1} \log \mathrm{softmax}(\ell_t)_{x_t}, \qquad x_{n+1} = \texttt{<eos>}

    Positions after a row's first ``<eos>`` contribute exactly nothing, whatever their logits or ids (they are
    selected away, not multiplied by 0, so a NaN there cannot leak).

    Args:
        logits: ``(*S, B, T, V)`` unnormalised scores.
        targets: ``(B, T)`` int64 rows ``w_1 .. w_n <eos> <pad> ..``.
        lengths: ``(B,)`` tokens per row including ``<eos>`` (default: from the first ``<eos>``).

    Returns:
        ``(*S, B)``.

    Raises:
        ValueError: the shapes do not match.
    """
    if logits.shape[-3:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)} "
                         "(need (*S, B, T, V) and (B, T))")
    if lengths is None:
        lengths = sentence_lengths(targets)
    lp = torch.log_softmax(logits, -1)
    idx = targets.expand(*lp.shape[:-1]).unsqueeze(-1)
    tok = lp.gather(-1, idx).squeeze(-1)  # (*S, B, T)
    mask = length_mask(lengths, targets.shape[1])
    return torch.where(mask, tok, torch.zeros((), dtype=tok.dtype, device=tok.device)).sum(-1)
