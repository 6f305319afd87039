"""Multi-layer perceptrons that act on the last dimension (any leading shape)."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .registry import NETS

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


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

    ``out_features`` (the attribute) is the width of the output either way.
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (200, 200), out_features: int | None = None,
                 activation: str = "tanh") -> None:
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

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - nn.Sequential semantics
        return super().forward(x)
