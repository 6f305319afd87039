"""Encoder and decoder networks: MLP, a small conv pair for 28x28 images, MADE, variance layers."""

from .conv import ConvDecoder, ConvEncoder
from .mlp import MLP, activation
from .registry import NETS
from .variance import ConvVariance, LinearVariance, VarianceMLP, log_uniform_kl, set_noise

__all__ = ["NETS", "MLP", "ConvEncoder", "ConvDecoder", "activation", "LinearVariance", "ConvVariance", "VarianceMLP",
           "log_uniform_kl", "set_noise"]
