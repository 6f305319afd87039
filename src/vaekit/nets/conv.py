"""A small convolutional encoder/decoder pair for images whose sides divide by 4 (flattened in, flattened out)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import PositiveInt
from .mlp import Activation
from .mlp import activation as make_activation
from .registry import NETS


#: ``(C, H, W)``, and the widths of the two convolutions (these nets have exactly two).
ImageShape = tuple[PositiveInt, PositiveInt, PositiveInt]
Channels = tuple[PositiveInt, PositiveInt]


def _flat_batch(x: Tensor, n_trailing: int) -> tuple[Tensor, torch.Size]:
    lead = x.shape[: x.dim() - n_trailing]
    return x.reshape(-1, *x.shape[x.dim() - n_trailing:]), lead


@NETS.register("conv")
class ConvEncoder(nn.Module):
    """Flattened ``(…, C*H*W)`` images -> ``(…, out_features)`` features.

    Two stride-2 convolutions (H -> H/2 -> H/4; 28 -> 14 -> 7 for MNIST) then a linear layer, followed by the
    activation when the net extracts features (``final_activation``). ``image_shape`` is supplied by the model
    builder from the data set; where the model dictates ``out_features`` (an output layer: a classifier's
    logits) the builder sets ``final_activation=False``, as an MLP's last layer is linear.
    """

    def __init__(self, in_features: int, image_shape: ImageShape = (1, 28, 28), channels: Channels = (32, 64),
                 out_features: PositiveInt = 256, activation: Activation = "relu",
                 final_activation: bool = True) -> None:
        super().__init__()
        c, h, w = image_shape
        if c * h * w != in_features:
            raise ValueError(f"image_shape {tuple(image_shape)} has {c*h*w} values but in_features is {in_features}")
        if h % 4 or w % 4:
            raise ValueError(f"ConvEncoder needs height and width divisible by 4, got {h}x{w}")
        self.image_shape = (c, h, w)
        c1, c2 = channels
        self.body = nn.Sequential(
            nn.Conv2d(c, c1, 4, stride=2, padding=1), make_activation(activation),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), make_activation(activation),
            nn.Flatten(),
            nn.Linear(c2 * (h // 4) * (w // 4), out_features),
            *([make_activation(activation)] if final_activation else []),
        )
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        flat, lead = _flat_batch(x, 1)
        out = self.body(flat.view(-1, *self.image_shape))
        return out.view(*lead, self.out_features)


@NETS.register("deconv")
class ConvDecoder(nn.Module):
    """``(…, in_features)`` latents -> ``(…, out_features)`` flattened image parameters.

    A linear layer to an (H/4)x(W/4) map, then two stride-2 transposed convolutions
    (7 -> 14 -> 28 for MNIST). The output has ``params_per_value * C`` channels, laid out
    as ``params_per_value`` blocks of ``C*H*W`` (the layout every likelihood reads).
    """

    def __init__(self, in_features: int, out_features: int, image_shape: ImageShape = (1, 28, 28),
                 channels: Channels = (64, 32), activation: Activation = "relu") -> None:
        super().__init__()
        c, h, w = image_shape
        if out_features % (c * h * w):
            raise ValueError(f"out_features {out_features} is not a multiple of the image size {c*h*w}")
        if h % 4 or w % 4:
            raise ValueError(f"ConvDecoder needs height and width divisible by 4, got {h}x{w}")
        self.image_shape = (c, h, w)
        c1, c2 = channels
        out_ch = out_features // (h * w)
        self.h4, self.w4, self.c1 = h // 4, w // 4, c1
        self.fc = nn.Sequential(nn.Linear(in_features, c1 * self.h4 * self.w4), make_activation(activation))
        self.body = nn.Sequential(
            nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1), make_activation(activation),
            nn.ConvTranspose2d(c2, out_ch, 4, stride=2, padding=1),
        )
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, z: Tensor) -> Tensor:
        flat, lead = _flat_batch(z, 1)
        out = self.body(self.fc(flat).view(-1, self.c1, self.h4, self.w4))
        return out.reshape(*lead, self.out_features)
