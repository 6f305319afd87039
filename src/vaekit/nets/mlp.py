"""Multi-layer perceptrons that act on the last dimension (any leading shape)."""

from __future__ import annotations

from typing import Literal, Sequence

from torch import Tensor, nn

from ..registry import PositiveInt
from .fused import FUSABLE_ACTIVATIONS, linear_chain
from .registry import NETS

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}

#: The activation names as a type, so that a config's typo is refused with the list of names.
Activation = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (fresh, so no instance is shared between layers)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@NETS.register("mlp")
class MLP(nn.Sequential):
    """``in_features -> hidden[0] -> ... -> hidden[-1] [-> out_features]`` with an activation after each hidden layer.

    Args:
        in_features: input width.
        hidden: hidden widths (may be empty).
        out_features: optional final linear layer, with no activation after it.
        activation: name of the hidden activation (``tanh``, ``relu``, ...).
        fused: run ``tanh``/``sigmoid``/``relu`` MLPs as one autograd node with the activation
            applied in place (:func:`vaekit.nets.fused.linear_chain`): the same arithmetic with fewer
            autograd nodes and temporaries. Forward hooks on the inner layers do
            not fire on the fused path; pass ``fused=False`` if you need them.

    ``out_features`` (the attribute) is the width of the output either way. The layers are
    an ``nn.Sequential`` (``mlp[0]`` is the first ``Linear``), so state dicts are the same
    either way.
    """

    def __init__(self, in_features: int, hidden: Sequence[PositiveInt] = (200, 200),
                 out_features: PositiveInt | None = None, activation: Activation = "tanh", fused: bool = True) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for w in hidden:
            if w < 1:
                raise ValueError(f"hidden widths must be positive, got {list(hidden)}")
            layers += [nn.Linear(width, w), globals()["activation"](activation)]
            width = w
        if out_features is not None:
            layers.append(nn.Linear(width, out_features))
            width = out_features
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = width
        acts: list[str | None] = [activation] * len(hidden) + ([None] if out_features is not None else [])
        self._acts = tuple(acts) if fused and activation in FUSABLE_ACTIVATIONS and acts else None

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - nn.Sequential semantics
        if self._acts is None:
            return super().forward(x)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"MLP expects inputs of width {self.in_features}, got shape {tuple(x.shape)}")
        linears = [m for m in self if isinstance(m, nn.Linear)]
        return linear_chain(x, [m.weight for m in linears], [m.bias for m in linears], self._acts)
