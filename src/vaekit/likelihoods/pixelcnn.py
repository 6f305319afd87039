r"""A PixelCNN Bernoulli observation model: masked convolutions over the image, conditioned on the decoder's output.

.. math::
    \log p(x|z) = \sum_{i=1}^{HW} \log \mathrm{Bernoulli}\bigl(x_i;\ \sigma(\ell_i)\bigr),\qquad
    \ell = h + \mathrm{PixelCNN}(x, h),\qquad h = \mathrm{decoder}(z) \in \mathbb R^{HW}

in raster order (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
arXiv:1601.06759, §3.5: a 7x7 mask-A convolution, then residual blocks of 3x3 mask-B convolutions, then 1x1
convolutions). The decoder's ``h`` is a map of the image's shape; each layer adds a 1x1 convolution of it
(location-dependent conditioning, as the PixelCNN decoders of Chen et al. 2017, VLAE, arXiv:1611.02731 and
Gulrajani et al. 2017, PixelVAE). This is the "powerful decoder" of the information-preference argument (Zhao,
Song & Ermon 2017, arXiv:1702.08658, §4; PAPERS.md §13): a decoder that can model ``x`` alone lets the ELBO's
optimum ignore ``z``. Unlike the MADE decoder (:mod:`.autoregressive`), a convolution shares its weights over the
image, so a few layers give a strong local model of binarised digits.

The plain masked stack has the PixelCNN "blind spot" (pixels up and to the right of the receptive field's
cone are not seen; van den Oord et al. 2016b, arXiv:1606.05328, fix it with gated two-stack layers). That limits
how strong the decoder is, not its correctness: every :math:`\ell_i` depends on :math:`x_{<i}` only, which
``tests/test_pixelcnn.py`` checks by gradients, and the probabilities of every binary image sum to 1
(enumeration on a 3x3 image).

Config (any decoder net that outputs ``H*W`` numbers)::

    likelihood: {type: pixelcnn_bernoulli, channels: 16, dilations: [1, 2, 4, 8, 1, 2, 4, 8]}

``log p(x|z)`` is one pass (exact); sampling is ``H*W`` passes. Written here because torch has no masked
convolution and none of the libraries we may depend on ships a PixelCNN likelihood.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import PositiveInt
from .autoregressive import AutoregressiveBernoulli
from .base import LIKELIHOODS
from .bernoulli import BernoulliLikelihood

__all__ = ["MaskedConv2d", "PixelCNN", "PixelCNNBernoulli", "PixelCNNBernoulliLikelihood"]


class MaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution that sees only the pixels before the centre in raster order: the rows above and,
    in the centre row, the columns to the left; with ``mask_type="B"`` the centre too (van den Oord et al.
    2016a, Fig. 2). One image channel, so there is no split of channels into colours.

    Raises:
        ValueError: an even ``kernel_size`` (no centre) or a ``mask_type`` other than ``"A"``/``"B"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: Literal["A", "B"],
                 dilation: int = 1) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (a centre pixel), got {kernel_size}")
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")
        super().__init__(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation)
        c = kernel_size // 2
        mask = torch.zeros(kernel_size, kernel_size)
        mask[:c] = 1
        mask[c, :c + (mask_type == "B")] = 1
        self.register_buffer("mask", mask.expand_as(self.weight).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding, dilation=self.dilation)


class PixelCNN(nn.Module):
    r"""Logits ``(N, H, W)`` of ``p(x_i = 1 | x_{<i}, h)`` from images ``x`` ``(N, H, W)`` and condition maps
    ``h`` ``(N, H, W)``.

    Layers: ``x`` → 7x7 mask A (``channels``) → one residual block (ReLU, 3x3 mask B, dilated by ``d``) per
    entry ``d`` of ``dilations`` → ReLU → 1x1 →
    ReLU → 1x1 → 1 channel; ``h`` enters every block and the 1x1 head by its own 1x1 convolution (a map, so
    it may depend on the position)."""

    def __init__(self, channels: int = 32, dilations: tuple[int, ...] = (1, 1, 1, 1)) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        layers = len(dilations)
        self.inp = MaskedConv2d(1, channels, 7, "A")
        self.blocks = nn.ModuleList(MaskedConv2d(channels, channels, 3, "B", d) for d in dilations)
        # the condition enters every block and the head: one 1x1 convolution, split into (layers + 2) maps
        self.cond = nn.Conv2d(1, channels * (layers + 2), 1)
        self.head = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, 1, 1)
        self.channels = channels

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        x = x.unsqueeze(-3)
        c = self.cond(h.unsqueeze(-3)).split(self.channels, dim=-3)
        a = self.inp(x) + c[0]
        for block, ci in zip(self.blocks, c[1:-1]):
            a = a + block(F.relu(a)) + ci
        a = self.head(F.relu(a)) + c[-1]
        return self.out(F.relu(a)).squeeze(-3)


class PixelCNNBernoulli(AutoregressiveBernoulli):
    r"""``p(x|h) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(h_i + \mathrm{PixelCNN}(x_{<i}, h)_i))`` over binary
    images flattened to ``D = H W``.

    Args:
        context: ``h``, shape ``(*batch, D)``: the decoder's output for each ``z``.
        net: the :class:`PixelCNN`.
        shape: ``(H, W)`` with ``H * W = D``.

    Batch shape ``context.shape[:-1]``, event shape ``(D,)``; ``log_prob`` also scores intensities in [0, 1] as
    the cross-entropy, like :class:`~vaekit.likelihoods.BernoulliLikelihood`.
    """

    def __init__(self, context: Tensor, net: PixelCNN, shape: tuple[int, int],
                 validate_args: bool | None = None) -> None:
        d = shape[0] * shape[1]
        if context.dim() < 1 or context.shape[-1] != d:
            raise ValueError(f"context must have shape (*batch, {d}), got {tuple(context.shape)}")
        self.net, self.shape_hw = net, shape
        super().__init__(context, validate_args=validate_args)

    def logits(self, x: Tensor) -> Tensor:
        r"""``\ell_i(x_{<i}, h)`` for every pixel in one pass: ``x`` broadcastable against ``h`` -> ``(*batch', D)``."""
        h = self.context
        shape = torch.broadcast_shapes(x.shape, h.shape)
        x, h = x.expand(shape), h.expand(shape)
        lead = shape[:-1]
        hw = self.shape_hw
        out = self.net(x.reshape(-1, *hw), h.reshape(-1, *hw)).reshape(*lead, -1)
        return out + h


@LIKELIHOODS.register("pixelcnn_bernoulli")
class PixelCNNBernoulliLikelihood(BernoulliLikelihood):
    r"""Autoregressive Bernoulli likelihood over an image: a PixelCNN conditioned on the decoder's map ``h``.

    .. math:: \log p(x|z) = \sum_i x_i\ell_i - \mathrm{softplus}(\ell_i),\quad
              \ell = h + \mathrm{PixelCNN}(x_{<i}, h),\quad h = \mathrm{decoder}(z)

    (see the module docstring). Exact, in nats, one pass; raster order.

    Args:
        data_dim: ``D = H W`` (supplied by the model builder).
        channels: feature maps per layer.
        layers: residual 3x3 mask-B blocks after the 7x7 mask-A layer (receptive field: 3 + ``layers`` rows up).
        dilations: the blocks' dilations instead of ``layers`` blocks of 1, e.g. ``[1, 2, 4, 8, 1, 2, 4, 8]``
            (3 + 30 rows up: the whole of a 28x28 image at the cost of 8 blocks).
        height: ``H``; by default ``sqrt(D)`` (square images); ``W = D / H``.

    Raises:
        ValueError: ``D`` is not ``height * W`` for an integer ``W`` (or not a square without ``height``);
            both ``layers`` and ``dilations`` given with different lengths.
    """

    params_per_value = 1

    def __init__(self, data_dim: int, channels: PositiveInt = 32, layers: int | None = None,
                 dilations: Sequence[PositiveInt] | None = None, height: PositiveInt | None = None) -> None:
        super().__init__(data_dim)
        if height is None:
            height = math.isqrt(data_dim)
            if height * height != data_dim:
                raise ValueError(f"pixelcnn_bernoulli: data_dim {data_dim} is not a square image; give height")
        if data_dim % height:
            raise ValueError(f"pixelcnn_bernoulli: height {height} does not divide data_dim {data_dim}")
        if layers is not None and layers < 0:
            raise ValueError(f"pixelcnn_bernoulli: layers must be >= 0, got {layers}")
        if dilations is not None and layers is not None and layers != len(dilations):
            raise ValueError(f"pixelcnn_bernoulli: layers {layers} but {len(dilations)} dilations {list(dilations)}")
        if dilations is None:
            dilations = [1] * (4 if layers is None else layers)
        self.shape_hw = (height, data_dim // height)
        self.net = PixelCNN(channels, tuple(dilations))
        # start near the factorised decoder (logits h): the PixelCNN's output layer starts small
        with torch.no_grad():
            self.net.out.weight.mul_(0.1)
            self.net.out.bias.zero_()

    def forward(self, params: Tensor) -> PixelCNNBernoulli:
        return PixelCNNBernoulli(params, self.net, self.shape_hw)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """``log p(x|z)`` in nats: ``params`` ``(*S, B, D)`` and ``x`` ``(B, D)`` -> ``(*S, B)``."""
        return self(params).log_prob(x)  # the distribution's sum (AutoregressiveBernoulli.log_prob)
