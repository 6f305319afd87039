"""``train.compile``: the trainer's objective through ``torch.compile`` (CUDA graphs with ``reduce-overhead``).

On the CPU the test compiles with the ``aot_eager`` backend (conftest's ``aot_eager_compile``): traced as
inductor traces, run eagerly, so random draws come from the eager stream and a compiled run must give the
eager run's weights. (Inductor's random numbers differ from eager ones by design.) The speed on a GPU is
``benchmarks/gpu.py``'s business.
"""

from __future__ import annotations

import pytest
import torch

from vaekit.config import ConfigError, from_dict

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(tmp_path, name: str, **train):
    return from_dict({
        "data": {"name": "digits", "val_size": 50},
        "model": {"type": "vae", "encoder": {"type": "mlp", "hidden": [16]}, "latent": {"type": "gaussian", "dim": 2},
                  "decoder": {"type": "mlp", "hidden": [16]}, "likelihood": {"type": "bernoulli"}},
        "train": {"epochs": 2, "batch_size": 200, "log_every": 3, **train},
        "device": "cpu", "out_dir": str(tmp_path), "run_name": name, "seed": 3})


def test_a_compiled_run_takes_the_eager_runs_steps(tmp_path, aot_eager_compile):
    from vaekit.train import fit

    eager = fit(_cfg(tmp_path, "eager"), tensorboard=False)
    assert aot_eager_compile == []
    compiled = fit(_cfg(tmp_path, "compiled", compile="reduce-overhead"), tensorboard=False)
    assert aot_eager_compile == ["reduce-overhead"]
    n = compiled.data.train.shape[0]
    assert n % 200, "the last batch should be shorter (a second traced shape)"
    assert compiled.state.step == eager.state.step == 2 * -(-n // 200)
    for (name, a), b in zip(eager.model.state_dict().items(), compiled.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    assert [r["elbo"] for r in compiled.history if r["split"] == "train"] == \
        pytest.approx([r["elbo"] for r in eager.history if r["split"] == "train"], rel=1e-5)


def test_the_compile_mode_is_checked_with_the_config():
    with pytest.raises(ConfigError, match="train.compile"):
        from_dict({"model": {"type": "vae"}, "train": {"compile": "fast"}})
    from vaekit.train import compiled_objective

    with pytest.raises(ValueError, match="train.compile: expected 'off', 'default', 'reduce-overhead'"):
        compiled_objective(lambda x, step: (x, {}), "fast")
