"""Registry of encoder/decoder networks selectable as ``encoder.type`` / ``decoder.type``."""

from torch import nn

from ..registry import Registry

NETS: Registry[nn.Module] = Registry("network")
