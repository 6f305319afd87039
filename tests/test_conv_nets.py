"""The convolutional item networks (``{type: conv}`` / ``{type: deconv}``): shapes, the image shape from the data,
and an output layer that is linear when the model reads it as parameters."""

from __future__ import annotations

import pytest
import torch

from vaekit.models import build_model
from vaekit.models.build import build_net


def test_conv_features_end_in_the_activation_but_a_classifier_reads_linear_logits(seed):
    x = torch.rand(64, 784)
    features = build_net({"type": "conv", "channels": [4, 8], "out_features": 12}, "model.encoder", 784, None,
                         (1, 28, 28))
    assert features(x).shape == (64, 12) and (features(x) >= 0).all()  # ReLU features
    logits = build_net({"type": "conv", "channels": [4, 8]}, "model.classifier", 784, 10, (1, 28, 28))
    out = logits(x)
    assert out.shape == (64, 10)
    # ReLU'd logits were never negative: a class could not be scored below the others' zero floor
    assert (out < 0).any()


def test_m2_conv_classifier_takes_the_image_shape_and_gives_signed_logits(seed):
    spec = {"type": "m2", "classifier": {"type": "conv", "channels": [4, 8]}, "encoder": {"type": "mlp", "hidden": [8]},
            "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "deconv", "channels": [8, 4]},
            "likelihood": {"type": "bernoulli"}}
    model = build_model(spec, data_dim=64, image_shape=(1, 8, 8))
    assert model.classifier.image_shape == (1, 8, 8) and model.decoder.image_shape == (1, 8, 8)
    logits = model.classifier(torch.rand(50, 64))
    assert logits.shape == (50, 10) and (logits < 0).any()


def test_conv_on_the_image_and_its_condition_is_refused_naming_the_key():
    from vaekit.registry import ConfigError
    spec = {"type": "cvae", "condition": {"type": "label", "n_classes": 10}, "encoder": {"type": "conv"},
            "latent": {"type": "gaussian", "dim": 2}, "decoder": {"type": "deconv"}, "likelihood": {"type": "bernoulli"}}
    with pytest.raises(ConfigError, match=r"model\.encoder.*794"):
        build_model(spec, data_dim=784, image_shape=(1, 28, 28))
