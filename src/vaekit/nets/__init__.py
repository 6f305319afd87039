"""Encoder and decoder networks: MLP and a small conv pair for 28x28 images."""

from .conv import ConvDecoder, ConvEncoder
from .mlp import MLP, activation
from .registry import NETS

__all__ = ["NETS", "MLP", "ConvEncoder", "ConvDecoder", "activation"]
