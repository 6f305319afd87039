"""MADE: a masked autoencoder whose outputs are autoregressive in its inputs (Germain et al. 2015)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "softplus": nn.Softplus}


def create_masks(input_dim: int, hidden_dims: Sequence[int], ordering: Tensor | None = None,
                 context: bool = False) -> tuple[list[Tensor], Tensor]:
    r"""Connectivity masks of a MADE (pure function; no module state).

    Each input ``i`` gets a degree ``m_0(i)`` (its position in ``ordering``, from 1 to ``D``);
    hidden unit ``k`` of layer ``l`` gets a degree ``m_l(k)``; output ``d`` has the degree of input ``d``.
    The masks are

    .. math::
        M^{(l)}_{k,i} = [\,m_l(k) \ge m_{l-1}(i)\,], \qquad M^{\mathrm{out}}_{d,k} = [\,m_0(d) > m_L(k)\,],

    so output ``d`` depends only on inputs that come strictly earlier in the ordering
    (Germain et al. 2015, MADE, arXiv:1502.03509, Eqs. 12-13). Hidden degrees cycle
    through ``lo, ..., D-1`` with ``lo = 0`` when a context is fed (degree-0 units see the
    context only, so every output, the first included, depends on it) and ``lo = 1`` otherwise.

    Args:
        input_dim: ``D``.
        hidden_dims: widths of the hidden layers; each must be ``>= D - lo`` so every degree is present.
        ordering: a permutation of ``range(D)`` giving the autoregressive order (default ``0..D-1``).
        context: whether a context vector is fed to the first hidden layer.

    Returns:
        ``(masks, degrees)``: ``masks[l]`` has shape ``(out_l, in_l)`` (``nn.Linear`` weight layout) for the
        hidden layers and then the output layer (``(D, hidden_dims[-1])``, or ``(D, D)`` with no hidden
        layers); ``degrees`` is ``m_0``, shape ``(D,)``.
    """
    if input_dim < 1:
        raise ValueError(f"input_dim must be positive, got {input_dim}")
    if ordering is None:
        ordering = torch.arange(input_dim)
    ordering = torch.as_tensor(ordering, dtype=torch.long)
    if ordering.shape != (input_dim,) or not torch.equal(ordering.sort().values, torch.arange(input_dim)):
        raise ValueError(f"ordering must be a permutation of range({input_dim}), got {ordering.tolist()}")
    lo = 0 if (context or input_dim == 1) else 1
    degrees = torch.empty(input_dim, dtype=torch.long)
    degrees[ordering] = torch.arange(1, input_dim + 1)
    masks: list[Tensor] = []
    prev = degrees
    for width in hidden_dims:
        n_deg = input_dim - lo
        if width < n_deg:
            raise ValueError(f"a MADE hidden layer of width {width} is narrower than the {n_deg} degrees it must "
                             f"carry (input_dim={input_dim}); widen it")
        deg = lo + torch.arange(width) % max(n_deg, 1)
        masks.append((deg[:, None] >= prev[None, :]).float())
        prev = deg
    masks.append((degrees[:, None] > prev[None, :]).float())
    return masks, degrees


class MaskedLinear(nn.Linear):
    """``y = x (W ⊙ M)^T + b`` with a fixed 0/1 mask ``M`` (a registered buffer, saved with the weights)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        if mask.shape != (out_features, in_features):
            raise ValueError(f"mask shape {tuple(mask.shape)} != {(out_features, in_features)}")
        self.register_buffer("mask", mask.clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoregressive network with an optional (unmasked) context input.

    .. math::
        [o^{(1)}, \dots, o^{(P)}] = \mathrm{MADE}(z, h), \qquad o^{(p)}_d = o^{(p)}_d(z_{<d}, h)

    where ``<`` is taken in ``ordering``. The context ``h`` enters the first hidden
    layer through an unmasked linear map (Kingma et al. 2016, arXiv:1606.04934, §4).

    Args:
        input_dim: ``D``.
        hidden_dims: hidden widths (each ``>= D``; see :func:`create_masks`).
        context_dim: width of ``h`` (0 for none).
        num_outputs: ``P``, how many ``D``-vectors to output (2 for IAF's ``m, s``).
        ordering: autoregressive order, a permutation of ``range(D)``.
        activation: ``"elu"``, ``"relu"``, ``"tanh"`` or ``"softplus"``.

    Shapes: ``z`` ``(*, D)``, ``h`` ``(*, context_dim)`` -> a tuple of ``P`` tensors ``(*, D)``.
    The degrees are a buffer ``degrees`` (``(D,)``) and each layer's mask a buffer.
    """

    def __init__(self, input_dim: int, hidden_dims: Sequence[int] = (), context_dim: int = 0, num_outputs: int = 2,
                 ordering: Tensor | None = None, activation: str = "elu") -> None:
        super().__init__()
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be positive, got {num_outputs}")
        if context_dim < 0:
            raise ValueError(f"context_dim must be >= 0, got {context_dim}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        hidden_dims = list(hidden_dims)
        masks, degrees = create_masks(input_dim, hidden_dims, ordering, context=context_dim > 0)
        self.input_dim, self.context_dim, self.num_outputs = input_dim, context_dim, num_outputs
        self.register_buffer("degrees", degrees)
        widths = [input_dim] + hidden_dims
        self.hidden = nn.ModuleList(MaskedLinear(widths[i], widths[i + 1], masks[i]) for i in range(len(hidden_dims)))
        self.act = _ACTIVATIONS[activation]()
        # With no hidden layer the context must reach the outputs directly.
        self.context = nn.Linear(context_dim, widths[1] if hidden_dims else num_outputs * input_dim) \
            if context_dim > 0 else None
        # The output layer is P stacked copies of the output mask: rows are (p, d), p-major.
        self.out = MaskedLinear(widths[-1], num_outputs * input_dim, masks[-1].repeat(num_outputs, 1))

    def forward(self, z: Tensor, h: Tensor | None = None) -> tuple[Tensor, ...]:
        if z.shape[-1] != self.input_dim:
            raise ValueError(f"MADE expects inputs of width {self.input_dim}, got shape {tuple(z.shape)}")
        if (h is None) != (self.context is None):
            raise ValueError("pass a context h exactly when the MADE was built with context_dim > 0")
        if h is not None and h.shape[-1] != self.context_dim:
            raise ValueError(f"MADE expects a context of width {self.context_dim}, got shape {tuple(h.shape)}")
        x = z
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if i == 0 and h is not None:
                x = x + self.context(h)
            x = self.act(x)
        out = self.out(x)
        if not self.hidden and h is not None:
            out = out + self.context(h)
        return tuple(out.unflatten(-1, (self.num_outputs, self.input_dim)).unbind(-2))
