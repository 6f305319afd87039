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


_MLP = {"type": "mlp", "hidden": [8]}
_LAT = {"type": "gaussian", "dim": 2}
_BERN = {"type": "bernoulli"}


@pytest.mark.parametrize("spec,key,reads", [
    ({"type": "cvae", "condition": {"type": "label", "n_classes": 10}, "encoder": {"type": "conv"}, "latent": _LAT,
      "decoder": {"type": "deconv"}, "likelihood": _BERN},
     "model.encoder", r"reads the image joined with the condition \(784 \+ 10 values\)"),
    ({"type": "m2", "classifier": {"type": "conv"}, "encoder": {"type": "conv"}, "latent": _LAT, "decoder": _MLP,
      "likelihood": _BERN}, "model.encoder", r"reads the image joined with the one-hot label \(784 \+ 10 values\)"),
    ({"type": "neural_statistician", "encoder": {"type": "conv"}, "pool": {"type": "conv"},
      "context": _LAT, "z_encoder": _MLP, "latent": _LAT, "prior_net": _MLP, "decoder": _MLP, "likelihood": _BERN},
     "model.pool", r"reads the pooled item features"),
    ({"type": "hvae", "layers": [{"encoder": {"type": "conv"}, "latent": _LAT, "decoder": {"type": "deconv"}},
                                 {"encoder": {"type": "conv"}, "latent": _LAT, "decoder": _MLP}],
      "likelihood": _BERN}, r"model.layers\[1\].encoder", r"reads the layer-0 latent"),
    ({"type": "hvae", "layers": [{"encoder": _MLP, "latent": _LAT, "decoder": _MLP},
                                 {"encoder": _MLP, "latent": _LAT, "decoder": {"type": "deconv"}}],
      "likelihood": _BERN}, r"model.layers\[1\].decoder", r"writes the features of the layer-0 prior"),
])
def test_an_image_net_where_no_image_flows_is_refused_naming_the_key_and_why(spec, key, reads):
    """Such a slot had no image shape, so the net assumed 28x28: refused by its widths only when they happened not
    to match ('784 values but in_features is 794'), on data the user never said was 28x28."""
    from vaekit.registry import ConfigError
    with pytest.raises(ConfigError, match=rf"{key}: a '(de)?conv' net works on images, but this network {reads}, not one image"):
        build_model(spec, data_dim=784, image_shape=(1, 28, 28))


def test_a_deconv_decoder_with_output_bias_initialisation_names_the_setting(tmp_path):
    from vaekit.config import ConfigError, from_dict
    from vaekit.train import fit
    cfg = from_dict({"data": {"name": "digits"},
                     "model": {"type": "vae", "encoder": {"type": "conv", "channels": [4, 8], "out_features": 16},
                               "latent": _LAT, "decoder": {"type": "deconv", "channels": [8, 4]}, "likelihood": _BERN},
                     "train": {"epochs": 1, "init_output_bias": True}, "seed": 0, "device": "cpu",
                     "out_dir": str(tmp_path), "run_name": "r"})
    with pytest.raises(ConfigError, match=r"train.init_output_bias: VAE has no nn.Linear with out_features=64 .*"
                                          r"set train.init_output_bias=false"):
        fit(cfg, tensorboard=False)
