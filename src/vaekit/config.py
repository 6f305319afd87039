"""Run configuration: plain dataclasses loaded strictly from YAML plus dotted overrides.

A run is described by one :class:`RunConfig`::

    data:  {name: digits, binarize: dynamic, val_size: null, data_dir: null, options: {}}
    model: {type: vae, encoder: {...}, latent: {...}, decoder: {...}, likelihood: {...}}
    train: {epochs: 100, batch_size: 100, lr: 1.0e-3, objective: {type: elbo}, lr_schedule: {type: constant}, ...}
    eval:  {estimators: "elbo,iwae:1000", split: test, n: null, batch_size: 100, seed: 1234}
    seed: 0
    device: auto
    out_dir: runs
    run_name: null

Loading is strict: an unknown key or a value of the wrong type raises
:class:`~vaekit.registry.ConfigError` naming the dotted key *before* anything is
built or trained. This module only describes a run (it imports nothing above
:mod:`vaekit.registry`): the objective and learning-rate schedule specs are built
once by :func:`vaekit.train.check_config`, which ``fit`` and ``vaekit train`` call
before any data are loaded, and the model spec is checked key by key by
:func:`vaekit.models.build_model` (which needs the data size, so it runs once the
data are loaded, still before training). No ``exec``, no globals: YAML is read
with ``yaml.safe_load`` semantics, and the resolved config is written as JSON into
the run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.resources
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from .registry import ConfigError, check_value

__all__ = ["ConfigError", "DataConfig", "TrainConfig", "EvalConfig", "RunConfig", "load_config", "from_dict",
           "to_dict", "apply_overrides", "parse_override", "yaml_load", "save_config_json", "load_config_json",
           "config_file", "shipped_config", "shipped_configs", "int_list"]


class _Yaml12Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float.

    YAML 1.1 (PyYAML's dialect) requires a dot in a float, so ``lr: 1e-3`` would
    silently become the *string* ``"1e-3"``; YAML 1.2 and every user expect a
    number. Only the float resolver changes; nothing can construct objects.
    """


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML safely (no object construction), reading ``1e-3`` as a float (see :class:`_Yaml12Loader`)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


# --------------------------------------------------------------------------------------------------
# the dataclasses
# --------------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Which data set to load and how to present it to the model.

    Args:
        name: a key of ``vaekit.data.DATASETS`` (``digits``, ``mnist``, ``fashion_mnist``, ...).
        data_dir: where the files live (None: the loader's default location).
        val_size: examples held out of the training split for validation (None: the loader's default).
        binarize: ``dynamic`` draws ``x ~ Bernoulli(intensity)`` afresh for every training batch
            (Burda et al. 2015, arXiv:1509.00519); validation/test are binarised once with a fixed seed.
            ``static`` binarises every split once (seeded); ``none`` uses intensities as they are.
        options: extra keyword arguments for the loader.
        labels: a semi-supervised run (Kingma et al. 2014, arXiv:1406.5298): only this many training rows keep
            their labels, ``labels / K`` of each of the ``K`` classes, drawn with the run's ``seed``; the rest
            are unlabelled. Trained by ``train.objective: {type: m2}`` (None: every label is kept).
        labelled_batch: labelled rows added to each batch of ``train.batch_size`` unlabelled ones (the
            labelled set is cycled in fresh random orders; None: ``train.batch_size``, the paper's one labelled
            batch per unlabelled one). Only with ``labels``.
    """

    name: str = "digits"
    data_dir: str | None = None
    val_size: int | None = None
    binarize: Literal["dynamic", "static", "none"] = "dynamic"
    options: dict = field(default_factory=dict)
    labels: int | None = None
    labelled_batch: int | None = None

    def __post_init__(self) -> None:
        if self.val_size is not None and self.val_size < 0:
            raise ConfigError(f"data.val_size: must be >= 0, got {self.val_size}")
        for key in ("labels", "labelled_batch"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"data.{key}: must be a whole number >= 1, got {v!r}")
        if self.labelled_batch is not None and self.labels is None:
            raise ConfigError("data.labelled_batch: applies to a semi-supervised run; set data.labels (how many "
                              "training labels to keep) as well")


@dataclass
class TrainConfig:
    r"""Optimisation settings.

    Adam (Kingma & Ba 2014, arXiv:1412.6980) with ``lr``, ``betas``, ``eps`` and
    (L2) ``weight_decay``; the learning rate follows ``lr_schedule`` (a spec for
    :data:`vaekit.train.schedules.SCHEDULES`, e.g. ``{type: iwae, max_stage: 7}``
    for Burda et al.'s :math:`3^i` passes at :math:`\mathrm{lr}\cdot 10^{-i/7}`; ``constant``,
    ``{type: exponential, gamma}``, ``{type: multistep, milestones: [...], gamma}`` as torch's MultiStepLR).
    ``objective`` is a spec for :func:`vaekit.objectives.build_objective`. Both specs are only
    described here; :func:`vaekit.train.check_config` builds them once, before any data are loaded,
    so that a bad key fails early with its dotted name (``train.objective.k``).
    ``grad_clip`` is a maximum global gradient norm (None: no clipping).
    ``init_output_bias`` sets the decoder's output bias to the logit of the mean
    training pixel (Burda et al. 2015; Bernoulli likelihoods only).
    ``init_weights`` re-initialises every ``nn.Linear`` before training: ``default`` keeps PyTorch's
    (uniform with bound ``1/sqrt(fan_in)``), ``glorot_uniform`` is Glorot & Bengio (2010) with zero
    biases, the initialisation of Burda et al.'s code (see :func:`vaekit.train.init_weights`).
    ``eval_every``/``checkpoint_every`` count epochs; ``log_every`` counts steps.
    ``batch_size`` is the *global* batch: under DDP each of ``W`` ranks takes a ``1/W`` shard (the shards
    of a batch that ``W`` does not divide differ by one row, and their losses are weighted by size, so the
    step is one process's step).
    ``nonfinite`` says what a NaN or infinite loss or gradient does: ``stop`` ends the run with an error,
    ``skip`` drops that batch without touching the optimiser and counts it (``skipped`` in the metrics
    and checkpoints). Either way no optimiser step is taken on it.
    ``ddp_timeout`` (seconds, under ``torchrun``) bounds every wait for another rank: a worker that was
    killed, froze or lost its node makes the others fail with an error within it instead of hanging. It
    must exceed the longest time one rank works alone (rank 0's validation and checkpoint at an epoch end).
    ``compile`` runs the objective's forward and backward through ``torch.compile``: ``reduce-overhead``
    replays them as CUDA graphs, for small models whose GPU step is bound by kernel launches; ``default``
    fuses kernels without graphs; ``off`` (the default) stays eager. Compiling costs seconds to minutes
    at the first steps (and at the last, shorter batch of an epoch); a run's random streams stay seeded,
    but compiled random draws differ from eager ones, so a compiled run is not bit-equal to an eager one
    (see :func:`vaekit.train.compiled_objective`).
    ``select_by`` is the validation metric that picks the ``best`` checkpoint (higher is better):
    ``objective`` (the default) is the training objective's own value on the validation rows, minus its loss
    or the bound it names (:func:`vaekit.train.validate_objective`), so an InfoVAE, beta-VAE or IWAE run keeps
    the epoch that did best at what it was trained for; ``elbo`` is the one-sample ELBO whatever the objective
    (the only choice before issue 17). The ELBO is logged at every validation either way, as a diagnostic.
    """

    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = None
    objective: dict = field(default_factory=lambda: {"type": "elbo"})
    lr_schedule: dict = field(default_factory=lambda: {"type": "constant"})
    eval_every: int = 1
    checkpoint_every: int = 1
    log_every: int = 50
    init_output_bias: bool = False
    init_weights: Literal["default", "glorot_uniform"] = "default"
    nonfinite: Literal["stop", "skip"] = "stop"
    ddp_timeout: float = 300.0
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"
    select_by: Literal["objective", "elbo"] = "objective"

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON/YAML give lists; keep the declared type
        if not self.ddp_timeout > 0:
            raise ConfigError(f"train.ddp_timeout: must be > 0 seconds, got {self.ddp_timeout}")
        for key in ("epochs", "batch_size", "eval_every", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key}: must be >= 1, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr: must be > 0, got {self.lr}")
        if not self.eps > 0:
            raise ConfigError(f"train.eps: must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay: must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas: need two values in [0, 1), got {list(self.betas)}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train.grad_clip: must be > 0 or null, got {self.grad_clip}")
        if self.nonfinite not in ("stop", "skip"):
            raise ConfigError(f"train.nonfinite: expected 'stop' or 'skip', got {self.nonfinite!r}")
        if self.select_by not in ("objective", "elbo"):
            raise ConfigError(f"train.select_by: expected 'objective' or 'elbo', got {self.select_by!r}")


@dataclass
class EvalConfig:
    """What the end-of-training and ``vaekit eval`` report.

    Args:
        estimators: comma-separated spec, e.g. ``"elbo,iwae:1000"`` (IWAE bound with k samples,
            Burda et al. 2015 Eq. 8; ``ais:N`` where the AIS estimator is installed).
        split: ``test``, ``val`` or ``train``.
        n: evaluate the first ``n`` examples (None: all).
        batch_size: examples per evaluation batch.
        seed: seed of the estimators' noise (and of the fixed binarisation of evaluation splits).
    """

    estimators: str = "elbo,iwae:1000"
    split: Literal["train", "val", "test"] = "test"
    n: int | None = None
    batch_size: int = 100
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.n is not None and self.n < 1:
            raise ConfigError(f"eval.n: must be >= 1 or null, got {self.n}")
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size: must be >= 1, got {self.batch_size}")
        if not self.estimators.strip():
            raise ConfigError("eval.estimators: must name at least one estimator, e.g. 'elbo,iwae:1000'")


@dataclass
class RunConfig:
    """Everything a training run needs.

    ``model`` is the spec for :func:`vaekit.models.build_model`, or None in the run directory of a model
    built by hand (``vaekit.train.fit(model, data, ...)``): such a run cannot rebuild its model, and
    ``vaekit.train.load_run`` then needs the model passed in.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: dict | None = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "auto"
    out_dir: str = "runs"
    run_name: str | None = None

    def __post_init__(self) -> None:
        if self.model is not None and not self.model:
            raise ConfigError("model: missing; give a spec such as {type: vae, encoder: ..., latent: ..., ...}")
        if self.model is not None and "type" not in self.model:
            raise ConfigError("model.type: missing; choose a registered model type such as 'vae'")
        if self.seed < 0:
            raise ConfigError(f"seed: must be >= 0, got {self.seed}")


# --------------------------------------------------------------------------------------------------
# dict <-> dataclass
# --------------------------------------------------------------------------------------------------


def _build(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``, rejecting unknown keys and wrong types (naming the key)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(raw).__name__} {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise ConfigError(f"{dotted}: unknown key; allowed keys are {names}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, dotted)
            continue
        check_value(value, hint, dotted)
        kwargs[key] = value
    return cls(**kwargs)


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Strictly convert a plain mapping (from YAML or JSON) to a :class:`RunConfig`."""
    return _build(RunConfig, raw, "")


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """A JSON-ready plain mapping (tuples become lists); ``from_dict(to_dict(c)) == c``."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> ``(["train", "lr"], 3e-4)``; the value is parsed as YAML (safely)."""
    if "=" not in text:
        raise ConfigError(f"{text}: an override must look like dotted.key=value, e.g. train.lr=3e-4")
    key, _, value = text.partition("=")
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"{text}: an override must look like dotted.key=value, e.g. train.lr=3e-4")
    try:
        parsed = yaml_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"{key}: cannot parse override value {value!r}: {e}") from None
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=value`` applied (creating nested mappings as needed).

    Whether the key exists is checked afterwards by :func:`from_dict` (config keys) or
    by ``build_model`` (model keys), so an unknown key fails with its dotted name.
    """
    out = json.loads(json.dumps(raw))  # deep copy of plain data
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{'.'.join(parts[:i + 1])}: is {type(nxt).__name__} {nxt!r}, "
                                  f"cannot set {'.'.join(parts)} inside it")
            node = nxt
        node[parts[-1]] = value
    return out


def shipped_config(path: str | Path) -> Path:
    """Where ``configs/NAME`` lies inside the installed package (``vaekit/configs/NAME``), whether or not it exists.

    Raises:
        ValueError: ``path`` does not start with ``configs/``.
    """
    parts = Path(path).parts
    if parts[:1] != ("configs",) or len(parts) < 2:
        raise ValueError(f"{path}: a shipped config is named configs/NAME")
    # a wheel installs into a folder, never a zip, so the resource is a real file with a path
    return Path(str(importlib.resources.files("vaekit").joinpath(*parts)))


def shipped_configs() -> list[str]:
    """The configs shipped inside the package, as ``configs/...`` paths (``configs/iwae/l1_vae_k1.yaml``, ...)."""
    root = Path(str(importlib.resources.files("vaekit") / "configs"))
    return sorted(f"configs/{p.relative_to(root).as_posix()}" for p in root.rglob("*.yaml"))


def config_file(path: str | Path) -> Path:
    """Where the config ``path`` is: the file itself if it exists, else for ``configs/NAME`` the copy shipped
    inside the package (``vaekit/configs/NAME``), so that the documented ``--config configs/vae_digits.yaml``
    and ``vaekit reproduce`` work from any folder and from a non-editable install.

    Raises:
        FileNotFoundError: neither exists; the message names ``path`` and, for ``configs/...``, the shipped configs.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute() and p.parts[:1] == ("configs",) and len(p.parts) > 1:
        shipped = shipped_config(p)
        if shipped.is_file():
            return shipped
        raise FileNotFoundError(f"config file not found: {p} (nor among the configs shipped with vaekit: "
                                f"{', '.join(shipped_configs())})")
    raise FileNotFoundError(f"config file not found: {p}")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                base: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config (or start from ``base``), apply dotted overrides, and check it strictly.

    ``path`` is found by :func:`config_file` (``configs/NAME`` falls back to the config shipped with vaekit).

    Raises:
        FileNotFoundError: no such config (see :func:`config_file`).
        ConfigError: not valid YAML, or a bad key or value, naming the dotted key.
    """
    if path is not None:
        p = config_file(path)
        try:
            raw = yaml_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if raw is None:
            raw = {}
    else:
        raw = dict(base or {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    return from_dict(apply_overrides(raw, overrides))


def save_config_json(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config as indented JSON."""
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=False) + "\n")


def load_config_json(path: str | Path) -> RunConfig:
    """Read a ``config.json`` written by :func:`save_config_json` (strictly checked again)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no config.json in the run directory: {p}")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: not valid JSON: {e}") from None
    return from_dict(raw)


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: the argparse ``type`` of every comma-separated integer option (``--seeds``,
    ``--dims``, ``--bdmc-T``, ...); empty items are skipped.

    Raises:
        argparse.ArgumentTypeError: no integer, or an item that is not one (argparse names the option).
    """
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        out = []
    if not out:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}")
    return out
