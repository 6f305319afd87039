r"""Variance layers (Neklyudov, Molchanov, Ashukha & Vetrov 2018, "Variance Networks", arXiv:1803.03764).

A variance layer has weights :math:`w_{ij} \sim \mathcal N(0, \sigma_{ij}^2)`: the mean is fixed at zero and only
the variance is learned, so information passes only through the *variance* of the activations. It runs with the
local reparameterisation trick (Kingma, Salimans & Welling 2015): the pre-activation given ``x`` is Gaussian,

.. math:: b_j = \mathrm{bias}_j + \varepsilon_j \sqrt{\textstyle\sum_i x_i^2 \sigma_{ij}^2},\qquad \varepsilon_j\sim\mathcal N(0,1)

(one :math:`\varepsilon` per output, per example), which has the law of :math:`\mathrm{bias} + W x` with the
weights drawn per example. With ``noise=False`` (the "mean" pass, :math:`\varepsilon = 0`) the layer returns its
bias whatever the input: a variance network must be sampled and ensembled to predict.

The variational-dropout view (Molchanov et al. 2017): a weight :math:`\mathcal N(\theta, \alpha\theta^2)` under
the log-uniform prior has :math:`-\mathrm{KL} \approx k_1\sigma(k_2 + k_3\log\alpha) - \tfrac12\log(1 + 1/\alpha) - k_1`
(:func:`log_uniform_kl`); a variance layer is the limit :math:`\theta \to 0`, :math:`\alpha\to\infty`, where this
KL tends to its minimum, 0 (:meth:`LinearVariance.kl` says so), so training needs no KL term.

Config: ``{type: variance_mlp, hidden: [500], variance_layers: [1]}`` builds an MLP whose listed linear layers
(0-based) are :class:`LinearVariance`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import NonNegativeInt, PositiveInt
from .mlp import Activation
from .mlp import activation as make_activation
from .registry import NETS

#: Molchanov et al. (2017, arXiv:1701.05369, Eq. 14)'s fit of the log-uniform prior's negative KL.
K1, K2, K3 = 0.63576, 1.87320, 1.48695


def log_uniform_kl(log_alpha: Tensor) -> Tensor:
    r"""Approximate ``KL(N(θ, αθ²) || log-uniform)`` per weight, in nats, up to the prior's constant:

    .. math:: \mathrm{KL} \approx k_1 - k_1\,\sigma(k_2 + k_3 \log\alpha) + \tfrac12 \log(1 + \alpha^{-1})

    (Molchanov, Ashukha & Vetrov 2017, arXiv:1701.05369, Eq. 14; max error 0.01 nats). Elementwise on ``log_alpha``;
    it decreases to 0 as ``log_alpha -> +inf``."""
    return K1 - K1 * torch.sigmoid(K2 + K3 * log_alpha) + 0.5 * F.softplus(-log_alpha)


class _Variance(nn.Module):
    r"""Shared state of the variance layers: the weights' variances, a bias, the noise switch.

    ``parameterization`` says what the optimiser sees: ``"log_sigma2"`` (default; ``log_sigma2`` holds
    :math:`\log\sigma^2`, initialised near :math:`-\log(\text{fan-in})`) or ``"sigma"`` (``sigma`` holds
    :math:`\sigma`, :math:`\sigma^2 = \sigma\cdot\sigma`, initialised :math:`U(\pm 1/\sqrt{\text{fan-in}})`,
    the authors' ``core/layers.py``). Why both: with Adam every step moves a parameter by about the learning
    rate, so in ``log_sigma2`` a variance grows by ~0.1 % per step at lr 1e-3 (about 30 epochs of MNIST to grow by
    e^8), while in ``sigma`` it grows additively and reaches the same size in a few epochs; the LeNet-5
    reproduction uses ``"sigma"``.
    """

    def __init__(self, shape: tuple[int, ...], out: int, bias: bool, init_log_sigma2: float | None,
                 parameterization: str = "log_sigma2") -> None:
        super().__init__()
        if parameterization not in ("log_sigma2", "sigma"):
            raise ValueError(f"parameterization must be 'log_sigma2' or 'sigma', got {parameterization!r}")
        self.parameterization = parameterization
        fan_in = math.prod(shape[1:])
        if parameterization == "sigma":
            if init_log_sigma2 is not None:
                raise ValueError("init_log_sigma2 applies to parameterization='log_sigma2' only")
            self.sigma = nn.Parameter(torch.empty(shape).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in)))
        else:
            self.log_sigma2 = nn.Parameter(torch.empty(shape))
            # default: Var(W x) like a Glorot-scaled layer: sigma^2 ~ 1 / fan_in, with a spread to break symmetry
            centre = -math.log(fan_in) if init_log_sigma2 is None else init_log_sigma2
            nn.init.normal_(self.log_sigma2, centre, 0.5)
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None
        #: False: the "mean" pass (eps = 0), whose output is the bias alone
        self.noise = True

    def sigma2(self) -> Tensor:
        r"""The weights' variances :math:`\sigma^2`, the parameter's shape."""
        return self.sigma * self.sigma if self.parameterization == "sigma" else self.log_sigma2.exp()

    def _out(self, var: Tensor) -> Tensor:
        if self.noise:
            out = torch.randn_like(var) * torch.sqrt(var + 1e-16)
        else:
            out = torch.zeros_like(var)
        if self.bias is not None:
            shape = [1] * out.dim()
            shape[-1 if isinstance(self, LinearVariance) else 1] = -1
            out = out + self.bias.view(shape)
        return out

    def kl(self) -> Tensor:
        """The variational-dropout KL of all weights under the log-uniform prior (:func:`log_uniform_kl`), nats:
        0 for a variance layer (``θ = 0``, ``α = ∞``), returned as a tensor for use in a loss."""
        return log_uniform_kl(torch.full_like(self.sigma2(), math.inf)).sum()


class LinearVariance(_Variance):
    r"""``y = bias + ε ⊙ sqrt((x ⊙ x) Σ^T)``, ``Σ_ji = σ²_ji`` learned (``log_sigma2``, shape ``(out, in)``).

    Shapes: ``(*, in_features) -> (*, out_features)``; a fresh ``ε`` per output and per row. ``noise = False``
    gives ``ε = 0`` (the mean pass). Source: da-molchanov/variance-networks ``core/layers.py`` ``LinearVariance``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init_log_sigma2: float | None = None, parameterization: str = "log_sigma2") -> None:
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        super().__init__((out_features, in_features), out_features, bias, init_log_sigma2, parameterization)
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: Tensor) -> Tensor:
        return self._out(F.linear(x * x, self.sigma2()))


class ConvVariance(_Variance):
    r"""2-D convolution with zero-mean Gaussian kernels: ``y = bias + ε ⊙ sqrt(conv2d(x ⊙ x, Σ))``.

    ``log_sigma2`` has shape ``(out_channels, in_channels, k, k)``; ``ε`` is drawn per output element (per
    example, channel and position). Shapes as :class:`torch.nn.Conv2d` (``(B, C, H, W) -> (B, C', H', W')``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, init_log_sigma2: float | None = None, parameterization: str = "log_sigma2") -> None:
        if min(in_channels, out_channels, kernel_size, stride) < 1 or padding < 0:
            raise ValueError("channels, kernel_size and stride must be >= 1 and padding >= 0, got "
                             f"{in_channels}, {out_channels}, {kernel_size}, {stride}, {padding}")
        super().__init__((out_channels, in_channels, kernel_size, kernel_size), out_channels, bias, init_log_sigma2,
                         parameterization)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return self._out(F.conv2d(x * x, self.sigma2(), stride=self.stride, padding=self.padding))


def set_noise(module: nn.Module, noise: bool) -> None:
    """Switch every variance layer inside ``module`` to sampling (``True``) or the mean pass (``False``, ε = 0)."""
    for m in module.modules():
        if isinstance(m, _Variance):
            m.noise = noise


@NETS.register("variance_mlp")
class VarianceMLP(nn.Sequential):
    """An MLP whose linear layers listed in ``variance_layers`` (0-based, the output layer included) are
    :class:`LinearVariance`; the others are ``nn.Linear``. Widths and activations as :class:`~vaekit.nets.MLP`.

    Raises:
        ValueError: an index in ``variance_layers`` past the last layer.
    """

    def __init__(self, in_features: int, hidden: Sequence[PositiveInt] = (200,), out_features: PositiveInt | None = None,
                 activation: Activation = "relu", variance_layers: Sequence[NonNegativeInt] = (0,)) -> None:
        widths = [in_features, *hidden] + ([out_features] if out_features is not None else [])
        n = len(widths) - 1
        bad = [i for i in variance_layers if i >= n]
        if bad:
            raise ValueError(f"variance_layers {list(variance_layers)} name layers past the last one (this MLP has "
                             f"{n} linear layers, 0..{n - 1})")
        layers: list[nn.Module] = []
        for i in range(n):
            layers.append(LinearVariance(widths[i], widths[i + 1]) if i in variance_layers
                          else nn.Linear(widths[i], widths[i + 1]))
            if i < len(hidden):
                layers.append(make_activation(activation))
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, widths[-1]


__all__ = ["LinearVariance", "ConvVariance", "VarianceMLP", "log_uniform_kl", "set_noise"]
