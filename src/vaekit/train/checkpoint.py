"""Checkpoints as safetensors (tensors) + JSON (everything else), written atomically, loaded without code.

Layout in ``RUN_DIR/checkpoints/``::

    last.json                      metadata: epoch, step, config, what the model is (model_spec,
                                   data_dim, image_shape: see :func:`model_record`), optimizer groups,
                                   RNG states, the name and sha256 of the tensor file, every tensor's
                                   dtype/shape
    last-e000012.safetensors       model.*, optim.*, rng.* tensors
    best.json / best-e000009.safetensors

Why the tensor file name carries the epoch: the JSON is the commit point. A
save writes the tensor file under a name no JSON refers to (tmp file in the same
directory, fsync, ``os.replace``), then the JSON the same way, then deletes tensor
files no JSON names. A process killed at any instant leaves either the old pair or
the new pair, never a JSON pointing at a half-written or mismatched tensor file;
the temporary files such a kill leaves (``.<name>.<hex>.tmp``) are removed by the
next save of that checkpoint (and by :func:`vaekit.train.fit` when it resumes).

Loading never executes code: ``json.loads`` and ``safetensors.torch.load_file``
only. The tensor file's sha256 is checked against the JSON, the JSON's own fields
against the ``meta_sha256`` it carries (so an edited epoch or image shape is an
error, not believed), and every expected key and shape against the model:
truncation, corruption or an edit gives a :class:`CheckpointError` saying what is
wrong rather than a cryptic failure. Version 1 files (before ``meta_sha256``) are
still read, unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import secrets
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint", "checkpoint_path", "model_record",
           "atomic_write_bytes", "capture_rng_state", "restore_rng_state", "remove_stale_tmp", "meta_checksum",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "vaekit-checkpoint"
FORMAT_VERSION = 2
#: versions this module reads (1: no checksum over the JSON itself)
READABLE_VERSIONS = (1, 2)

#: the temporary files of :func:`atomic_write_bytes`: ``.<name>.<random>.tmp``
_TMP = re.compile(r"^\..+\.[0-9A-Za-z_]{6,}\.tmp$")


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupted, or does not fit the model it is loaded into."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the complete new one.

    Writes a temporary file ``.<name>.<random>.tmp`` in the same directory (same file system, so the
    rename is atomic), flushes and fsyncs it, then ``os.replace``s it over ``path``
    and fsyncs the directory so the rename itself is durable. The file gets the mode any new file of
    the user gets (0666 less the umask); ``tempfile.mkstemp`` would make it 0600, unreadable to the
    user's group however their umask is set.
    """
    path = Path(path)
    tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp"))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_stale_tmp(folder: str | Path, prefix: str = ".") -> list[Path]:
    """Delete the temporary files of :func:`atomic_write_bytes` in ``folder`` whose name starts with ``prefix``.

    Only a writer killed mid-write leaves them (a failed write removes its own). Call it where this process
    is the folder's only writer (a run's checkpoints, a resumed run's directory). Returns what it removed.
    """
    gone = []
    for f in Path(folder).glob(f"{glob_escape(prefix)}*.tmp"):
        if _TMP.match(f.name) and f.is_file():
            f.unlink(missing_ok=True)
            gone.append(f)
    return gone


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped (a run or checkpoint name may hold ``[``)."""
    import glob

    return glob.escape(text)


def meta_checksum(meta: dict[str, Any]) -> str:
    """sha256 of a checkpoint's JSON fields other than ``meta_sha256``, serialised canonically (sorted keys)."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def capture_rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The global RNG states: torch CPU (a uint8 tensor), numpy's MT19937, Python's ``random``."""
    np_state = np.random.get_state()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
    }
    py_version, py_internal, py_gauss = random.getstate()
    meta = {
        "numpy": {"kind": np_state[0], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "state": list(py_internal), "gauss_next": py_gauss},
    }
    return tensors, meta


def restore_rng_state(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(tensors["rng.torch"])
    n = meta["numpy"]
    np.random.set_state((n["kind"], tensors["rng.numpy_key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                scalars.setdefault(str(idx), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    for idx, extra in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(extra)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def checkpoint_path(ckpt_dir: str | Path, name: str) -> Path:
    """The JSON file of checkpoint ``name`` (``"last"`` or ``"best"``) in ``ckpt_dir``."""
    return Path(ckpt_dir) / f"{name}.json"


def save_checkpoint(ckpt_dir: str | Path, name: str, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    *, epoch: int, step: int, config: dict[str, Any] | None = None,
                    model_spec: dict[str, Any] | None = None, data_dim: int | None = None,
                    image_shape: Sequence[int] | None = None, extra: dict[str, Any] | None = None,
                    extra_tensors: dict[str, Tensor] | None = None, rng: bool = True) -> Path:
    """Save ``model`` (unwrap DDP first), ``optimizer``, RNG states and counters as checkpoint ``name``.

    ``model_spec`` (the :func:`vaekit.models.build_model` spec, None for a model built by hand),
    ``data_dim`` (flattened size ``D`` of one example) and ``image_shape`` (``(C, H, W)`` or None) are
    written as top-level fields, so that the model can be rebuilt without data (:func:`model_record`).
    ``extra`` is JSON-ready metadata (e.g. the best validation ELBO); ``extra_tensors`` are added
    under their own names. Returns the JSON path.
    """
    from safetensors.torch import save

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {f"model.{k}": v.detach() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "epoch": int(epoch), "step": int(step)}
    if optimizer is not None:
        ot, om = _optimizer_to_flat(optimizer)
        tensors.update(ot)
        meta["optimizer"] = om
    if rng:
        rt, rm = capture_rng_state()
        tensors.update(rt)
        meta["rng"] = rm
    if extra_tensors:
        tensors.update(extra_tensors)
    # safetensors wants contiguous CPU tensors that share no storage
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    data = save(tensors)
    remove_stale_tmp(ckpt_dir, f".{name}")
    json_path = checkpoint_path(ckpt_dir, name)
    tensor_file = f"{name}-e{int(epoch):06d}.safetensors"
    if tensor_file == _named_by(json_path):
        # A second save in one epoch (an interrupt mid-epoch): replacing the file the current JSON names
        # would break that pair if the process died before the new JSON is in place.
        tensor_file = f"{name}-e{int(epoch):06d}-s{int(step):09d}-{secrets.token_hex(3)}.safetensors"
    meta.update({
        "tensors_file": tensor_file,
        "sha256": hashlib.sha256(data).hexdigest(),
        "tensors": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in tensors.items()},
        "config": config,
        "model_spec": model_spec,
        "data_dim": None if data_dim is None else int(data_dim),
        "image_shape": None if image_shape is None else [int(v) for v in image_shape],
        "extra": extra or {},
    })
    # the checksum is taken over the fields as they will read back (tuples become lists, and so on)
    meta = json.loads(json.dumps(meta))
    meta["meta_sha256"] = meta_checksum(meta)
    try:
        atomic_write_bytes(ckpt_dir / tensor_file, data)
        try:
            atomic_write_bytes(json_path, (json.dumps(meta, indent=1) + "\n").encode())
        except BaseException:
            (ckpt_dir / tensor_file).unlink(missing_ok=True)  # no JSON names it
            raise
    except OSError as e:
        from .outputs import OutputError

        kept = f"{json_path} and the file it names are unchanged" if json_path.exists() else "none was written before"
        raise OutputError(f"could not write checkpoint {name!r} (epoch {epoch}, step {step}) in {ckpt_dir}: "
                          f"{e.strerror or e}; the previous checkpoint is intact ({kept})", json_path) from None
    # Only now is the old tensor file unreferenced.
    for old in ckpt_dir.glob(f"{glob_escape(name)}-e*.safetensors"):
        if old.name != tensor_file:
            old.unlink(missing_ok=True)
    return json_path


def _named_by(json_path: Path) -> str | None:
    """The tensor file the checkpoint JSON at ``json_path`` names; None if there is none (or it is unreadable,
    in which case no valid pair depends on any file)."""
    try:
        return json.loads(json_path.read_text()).get("tensors_file")
    except (OSError, ValueError, AttributeError):
        return None


def model_record(meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint says its model is: ``{"model_spec", "data_dim", "image_shape"}``.

    ``model_spec`` is a :func:`vaekit.models.build_model` spec or None (a model built by hand),
    ``data_dim`` an int or None, ``image_shape`` a ``(C, H, W)`` tuple or None. Checkpoints written
    before these were top-level fields kept the sizes in ``extra`` and the spec in ``config.model``;
    they are read the same way.
    """
    extra = meta.get("extra") or {}
    if "model_spec" in meta:
        spec, dim, shape = meta["model_spec"], meta.get("data_dim"), meta.get("image_shape")
    else:
        spec, dim, shape = (meta.get("config") or {}).get("model"), extra.get("data_dim"), extra.get("image_shape")
    return {"model_spec": spec, "data_dim": None if dim is None else int(dim),
            "image_shape": tuple(shape) if shape else None}


def read_checkpoint(ckpt_dir: str | Path, name: str = "last") -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read and verify checkpoint ``name``; returns ``(metadata, tensors)``.

    Raises:
        CheckpointError: the JSON or tensor file is missing, unreadable, truncated,
            corrupted (sha256 mismatch), or lacks tensors its JSON lists.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    json_path = checkpoint_path(ckpt_dir, name)
    if not json_path.is_file():
        raise CheckpointError(f"no checkpoint {name!r}: {json_path} does not exist")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {json_path} is corrupted (not valid JSON: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{json_path} is not a vaekit checkpoint (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{json_path} is not a vaekit checkpoint")
    if meta.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{json_path}: checkpoint format version {meta.get('version')} is not supported "
                              f"(this vaekit reads versions {list(READABLE_VERSIONS)})")
    if meta["version"] >= 2:
        if "meta_sha256" not in meta:
            raise CheckpointError(f"checkpoint {json_path} is corrupted: missing field 'meta_sha256'")
        if meta_checksum(meta) != meta["meta_sha256"]:
            raise CheckpointError(f"checkpoint {json_path} was edited or corrupted: its fields do not match the "
                                  "checksum written with them (meta_sha256); restore the file or use the other "
                                  "checkpoint")
    for key in ("tensors_file", "sha256", "tensors", "epoch", "step"):
        if key not in meta:
            raise CheckpointError(f"checkpoint {json_path} is corrupted: missing field {key!r}")
    tensor_path = Path(ckpt_dir) / meta["tensors_file"]
    if not tensor_path.is_file():
        raise CheckpointError(f"checkpoint {json_path} names {tensor_path.name}, which does not exist")
    data = tensor_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise CheckpointError(
            f"checkpoint tensor file {tensor_path} is corrupted or truncated: sha256 {digest[:12]}... does not match "
            f"{meta['sha256'][:12]}... recorded in {json_path.name} ({len(data)} bytes on disk)"
        )
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint tensor file {tensor_path} cannot be read: {e}") from None
    for k, (dtype, shape) in meta["tensors"].items():
        if k not in tensors:
            raise CheckpointError(f"checkpoint {tensor_path} lacks tensor {k!r} listed in {json_path.name}")
        t = tensors[k]
        if list(t.shape) != shape or str(t.dtype).replace("torch.", "") != dtype:
            raise CheckpointError(f"checkpoint tensor {k!r} has {t.dtype} {list(t.shape)}, "
                                  f"{json_path.name} says {dtype} {shape}")
    return meta, tensors


def load_checkpoint(ckpt_dir: str | Path, name: str, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    *, restore_rng: bool = False, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load checkpoint ``name`` into ``model`` (and ``optimizer``, and the global RNGs); returns the metadata,
    with the tensors saved as ``extra_tensors`` under ``meta["extra_tensors"]``.

    Every model key and shape is checked first, so a checkpoint of a different
    architecture fails with a :class:`CheckpointError` naming the first mismatch.
    """
    meta, tensors = read_checkpoint(ckpt_dir, name)
    expected = model.state_dict()
    got = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {name!r} does not fit this model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    for k, v in expected.items():
        if v.shape != got[k].shape:
            raise CheckpointError(f"checkpoint {name!r}: model.{k} has shape {list(got[k].shape)}, "
                                  f"the model expects {list(v.shape)}")
    model.load_state_dict({k: v.to(map_location) for k, v in got.items()})
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"checkpoint {name!r} holds no optimizer state; cannot resume training from it")
        sd = _optimizer_from_flat(tensors, meta["optimizer"])
        try:
            optimizer.load_state_dict(sd)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {name!r}: optimizer state does not fit: {e}") from None
    if restore_rng:
        if "rng" not in meta:
            raise CheckpointError(f"checkpoint {name!r} holds no RNG state")
        restore_rng_state(tensors, meta["rng"])
    meta["extra_tensors"] = {k: v for k, v in tensors.items() if not k.startswith(("model.", "optim.", "rng."))}
    return meta
