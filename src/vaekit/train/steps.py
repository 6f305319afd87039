"""A small resumable training loop for models whose steps need more than one batch of x (issue 13).

:func:`vaekit.train.fit` trains on batches of rows; a semi-supervised step needs an unlabelled batch, a labelled
batch and its labels, and a conditional step needs its conditions. :func:`fit_steps` takes the steps from a
function instead and keeps the parts of ``fit`` a reproduction needs: Adam, per-epoch checkpoints
(``safetensors`` for the model and Adam's state, JSON for the counters and the model's spec; no pickles) and
exact resume on CPU, because every random stream of epoch ``e`` is seeded from ``(seed, e)``.

Run directory: ``model.safetensors``, ``optim.safetensors``, ``state.json`` (``epoch``, ``step``, ``elapsed``
seconds, ``spec``, ``history``: one record of mean metrics per epoch), written atomically after every epoch.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

__all__ = ["fit_steps", "read_state", "load_weights", "load_steps_run"]

Step = Callable[[nn.Module, Any], tuple[Tensor, dict[str, Tensor]]]


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


def _save(run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    # save_model (not save_file) because tied weights (one embedding shared by several modules) appear under
    # several state-dict keys with one storage, which save_file refuses; save_model stores them once
    from safetensors.torch import save_file, save_model
    sd = opt.state_dict()
    flat = {f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
            for i, s in sd["state"].items() for k, v in s.items()}
    _atomic(run_dir / "model.safetensors", lambda p: save_model(model, p))
    _atomic(run_dir / "optim.safetensors", lambda p: save_file(flat, p))
    state = {**state, "param_groups": sd["param_groups"]}
    _atomic(run_dir / "state.json", lambda p: Path(p).write_text(json.dumps(state, indent=1)))


def read_state(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``state.json`` (counters, spec, history), or None before its first epoch."""
    p = Path(run_dir) / "state.json"
    return json.loads(p.read_text()) if p.is_file() else None


def load_weights(model: nn.Module, run_dir: str | Path) -> nn.Module:
    """Load ``run_dir/model.safetensors`` into ``model`` (strict) and return it in eval mode.

    Raises:
        FileNotFoundError: naming the missing file.
    """
    from safetensors.torch import load_model
    p = Path(run_dir) / "model.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist: the run has not finished an epoch")
    load_model(model, str(p), strict=True)  # restores tied weights saved once by save_model
    return model.eval()


def spec_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``"key: old → new"`` for every dotted key where two JSON specs differ (a key missing on one side reads None)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in spec_differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix[:-1] or 'spec'}: {old!r} → {new!r}"]


class RunFolderError(ValueError):
    """A run folder that cannot be resumed with the settings asked (other settings, more epochs than asked): a usage
    error the commands report by their parser, naming the folder."""


def fit_steps(model: nn.Module, steps: Callable[[int, torch.Generator], Iterable[Any]], step_loss: Step, *,
              epochs: int, run_dir: str | Path, spec: dict[str, Any], lr: float = 1e-3, seed: int = 0,
              max_seconds: float | None = None, log: Callable[[str], None] = print,
              after_epoch: Callable[[nn.Module], dict[str, float]] | None = None) -> dict[str, Any]:
    """Train ``model`` with Adam for ``epochs`` epochs of ``steps(epoch, generator)``, resuming ``run_dir``.

    Args:
        steps: yields the batches of one epoch, drawing every random choice from ``generator`` (seeded from
            ``(seed, epoch)``); torch's global RNG (latent noise, dynamic binarisation) is reseeded likewise.
        step_loss: ``(model, batch) -> (loss, metrics)``.
        spec: what :func:`read_state` returns under ``spec`` (how to rebuild the model).
        max_seconds: stop before an epoch once this call has trained this long (resume continues).
        after_epoch: ``model -> {name: value}`` added to the epoch's history record (a monitoring curve; it must
            not draw from torch's global RNG, which the next epoch reseeds anyway).

    Returns:
        the state: ``epoch``, ``step``, ``elapsed`` (training seconds, cumulative), ``history``.

    Raises:
        ValueError: ``epochs`` < 1.
        RunFolderError: the run directory holds a different spec or more epochs than asked (a ValueError).
    """
    from safetensors.torch import load_file
    if epochs < 1:  # before the folder is made: a refused run leaves nothing behind
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    run_dir = Path(run_dir)
    old = read_state(run_dir)
    if old is not None and json.loads(json.dumps(spec)) != old["spec"]:
        differ = "; ".join(spec_differences(old["spec"], json.loads(json.dumps(spec))))
        raise RunFolderError(f"{run_dir} holds a run of other settings ({differ}); resuming it would mix the two: "
                             "use another output folder or the same settings")
    run_dir.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "elapsed": 0.0, "spec": spec, "seed": seed, "lr": lr, "history": []}
    if old is not None:
        if old["epoch"] > epochs:
            raise RunFolderError(f"{run_dir} holds {old['epoch']} epochs, more than the {epochs} asked; use another "
                                 "folder or at least as many epochs")
        load_weights(model, run_dir).train()
        flat = load_file(str(run_dir / "optim.safetensors"))
        st: dict[int, dict[str, Tensor]] = {}
        for key, v in flat.items():
            i, name = key.split(".", 1)
            st.setdefault(int(i), {})[name] = v
        opt.load_state_dict({"state": st, "param_groups": old.pop("param_groups")})
        state = old
        log(f"[{run_dir.name}] already trained for {epochs} epoch{'s' * (epochs != 1)}" if state["epoch"] == epochs
            else f"[{run_dir.name}] resuming at epoch {state['epoch']} of {epochs}")
    model.train()
    t_call = time.perf_counter()
    while state["epoch"] < epochs:
        if max_seconds is not None and time.perf_counter() - t_call >= max_seconds:
            break
        e = state["epoch"]
        g = torch.Generator().manual_seed(seed * 100_003 + e)
        torch.manual_seed(seed * 100_003 + e + 50_000)
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n = 0
        for batch in steps(e, g):
            loss, metrics = step_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += 1
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        state["epoch"], state["step"] = e + 1, state["step"] + n
        state["elapsed"] = round(state["elapsed"] + time.perf_counter() - t0, 2)
        record = {"epoch": e + 1, **{k: round(v / max(n, 1), 4) for k, v in sums.items()},
                  "seconds": round(time.perf_counter() - t0, 1)}
        if after_epoch is not None:
            model.eval()
            with torch.no_grad():
                record.update(after_epoch(model))
            model.train()
        state["history"].append(record)
        _save(run_dir, model, opt, state)
        log(f"[{run_dir.name}] {json.dumps(state['history'][-1])}")
    model.eval()
    return {k: v for k, v in state.items() if k != "param_groups"}


def load_steps_run(run_dir: str | Path) -> nn.Module:
    """The trained model of a :func:`fit_steps` run directory, rebuilt from its spec, in eval mode.

    The spec's ``data_dim`` is the model's input width (784, MNIST, when a spec does not record it).

    Raises:
        FileNotFoundError: the folder holds no finished epoch, naming it.
    """
    from ..models import build_from_spec
    state = read_state(run_dir)
    if state is None:
        raise FileNotFoundError(f"{run_dir} holds no run of vaekit's step trainer (no state.json): train it with "
                                "python -m vaekit.reproduce.conditional --runs NAME")
    return load_weights(build_from_spec(state["spec"], int(state["spec"].get("data_dim", 784))), run_dir)
