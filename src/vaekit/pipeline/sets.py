"""Training and evaluation of the models of sets (issue 15): the Neural Statistician and the Variational Homoencoder.

* :func:`train_sets` — trains a model of :mod:`vaekit.models.sets` on a data set of sets with the resumable step
  trainer (:func:`vaekit.train.steps.fit_steps`): NS on random sets of ``set_size`` items of one class, VHE on whole
  classes (``support_size`` items for q(c|D), the rest scored).
* :func:`fewshot_accuracy` — N-way K-shot accuracy over episodes of held-out classes, with a 95 % interval.
* :func:`support_nll` — the IWAE bound of held-out images given ``K`` other images of their class.
* :func:`load_sets_run`, :func:`sample_from_support` — reopen a run; conditional samples from a support set.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..data.sets import EpisodeSampler, SetData, load_omniglot_sets, synthetic_sets
from ..models.sets import HomoEncoder, NeuralStatistician
from ..train.steps import fit_steps, load_steps_run, read_state

__all__ = ["load_set_data", "train_sets", "fewshot_accuracy", "support_nll", "load_sets_run",
           "sample_from_support", "parse_support", "is_sets_run", "fewshot_run", "support_sample_images"]


def load_set_data(data: dict[str, Any], data_dir: str | None = None) -> SetData:
    """``{"name": "omniglot", "rotations": true}`` or ``{"name": "synthetic", "n_train": 10000, "n_test": 1000,
    "set_size": 200}`` -> :class:`SetData` (synthetic: ``test_ids`` hold the family of each test set).

    Raises:
        ValueError: an unknown ``data.name``, naming it.
    """
    name = data.get("name")
    if name == "omniglot":
        return load_omniglot_sets(data_dir, size=int(data.get("size", 28)), rotations=bool(data.get("rotations", False)))
    if name == "synthetic":
        size = int(data.get("set_size", 200))
        tr = synthetic_sets(int(data.get("n_train", 10000)), size, seed=int(data.get("seed", 0)))
        te = synthetic_sets(int(data.get("n_test", 1000)), size, seed=int(data.get("seed", 0)) + 1)
        return SetData("synthetic", tr.x, te.x, tr.family, te.family, None)  # type: ignore[arg-type]
    raise ValueError(f"data.name: expected 'omniglot' or 'synthetic', got {name!r}")


def _binarize(x: Tensor, how: str) -> Tensor:
    return torch.bernoulli(x) if how == "dynamic" else x


def train_sets(model: NeuralStatistician, data: SetData, run_dir: str | Path, spec: dict[str, Any], *,
               epochs: int, batch_sets: int = 32, set_size: int = 5, binarize: str = "dynamic", lr: float = 1e-3,
               alpha: float = 0.0, alpha_epochs: int = 0, min_set_size: int | None = None, seed: int = 0, max_seconds: float | None = None,
               log: Callable[[str], None] = print,
               after_epoch: Callable[[Any], dict[str, float]] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``data.train`` ``(n_classes, n_per_class, D)`` for ``epochs`` epochs, resumable in ``run_dir``.

    An epoch of the Neural Statistician splits every class into random sets of ``set_size`` items (each item once;
    ``n_per_class // set_size`` sets per class) and takes ``batch_sets`` sets a step; the loss is minus the NS bound
    per item (nats). An epoch of the Homoencoder takes every class once, ``batch_sets`` whole classes a step, and
    the loss is minus the VHE objective per scored item. ``binarize="dynamic"`` draws binary pixels each step
    (``"none"`` keeps the values, e.g. for the 1-D synthetic sets with a Gaussian likelihood).

    ``min_set_size`` (NS only): each step keeps the first ``s`` items of its sets, ``s`` uniform in
    ``min_set_size..set_size`` (torch's RNG, seeded per epoch), so q(c|D) also learns small sets.

    ``alpha``: Edwards & Storkey's (2016, §3.3 of arXiv:1606.02185) training aid: the log-likelihood term is weighted
    by ``1 + alpha_e``, ``alpha_e`` falling linearly from ``alpha`` at epoch 0 to 0 at epoch ``alpha_epochs``, which
    keeps the latents in use early on; from then on the loss is the plain bound. The logged ``bound`` is always the
    unweighted one.

    Returns:
        the step trainer's state (``epoch``, ``elapsed`` seconds, ``history``: per-epoch means of ``bound``
        (per item), ``kl_c`` (per set), ``kl_z`` and ``log_likelihood`` (per item)).
    """
    x = data.train
    n_classes, n_per = x.shape[:2]
    vhe = isinstance(model, HomoEncoder)
    if not vhe and not 1 <= set_size <= n_per:
        raise ValueError(f"train.set_size: expected 1..{n_per} items per set, got {set_size}")

    if alpha < 0 or alpha_epochs < 0:
        raise ValueError(f"train.alpha / train.alpha_epochs: expected >= 0, got {alpha} and {alpha_epochs}")

    def weight(epoch: int) -> float:
        return alpha * max(0.0, 1.0 - epoch / alpha_epochs) if alpha_epochs else 0.0

    def steps(epoch: int, g: torch.Generator):
        a = weight(epoch)
        if vhe:
            order = torch.randperm(n_classes, generator=g)
            for i in range(0, n_classes, batch_sets):
                yield a, _binarize(x[order[i:i + batch_sets]], binarize)
            return
        per = n_per // set_size
        items = torch.argsort(torch.rand(n_classes, n_per, generator=g), -1)[:, :per * set_size]
        sets = items.view(n_classes * per, set_size)                      # item indices of each set
        cls = torch.arange(n_classes).repeat_interleave(per)
        order = torch.randperm(len(cls), generator=g)
        for i in range(0, len(cls), batch_sets):
            j = order[i:i + batch_sets]
            yield a, _binarize(x[cls[j, None], sets[j]], binarize)

    lo = set_size if min_set_size is None else min_set_size
    if not vhe and not 1 <= lo <= set_size:
        raise ValueError(f"train.min_set_size: expected 1..{set_size}, got {min_set_size}")

    def step_loss(m: NeuralStatistician, batch: tuple[float, Tensor]):
        a, sets_ = batch
        if not vhe and lo < set_size:
            sets_ = sets_[:, :int(torch.randint(lo, set_size + 1, ()))]
        bound, t = m.training_bound(sets_)
        per_item = bound.mean() / t.log_likelihood.shape[-1]
        loss = -(per_item + a * t.log_likelihood.mean()) if a else -per_item
        return loss, {"bound": per_item.detach(), "kl_c": t.kl_c.mean().detach(),
                           "kl_z": t.kl_z.mean().detach(), "log_likelihood": t.log_likelihood.mean().detach()}

    return fit_steps(model, steps, step_loss, epochs=epochs, run_dir=run_dir, spec=spec, lr=lr, seed=seed,
                     max_seconds=max_seconds, log=log, after_epoch=after_epoch)


def load_sets_run(run_dir: str | Path) -> tuple[NeuralStatistician, dict[str, Any]]:
    """The trained model of a run directory of :func:`train_sets` (eval mode) and its state.

    Raises:
        FileNotFoundError: no finished epoch in ``run_dir``, naming it.
        ValueError: the run holds another kind of model.
    """
    model = load_steps_run(run_dir)
    if not isinstance(model, NeuralStatistician):
        raise ValueError(f"{run_dir}: holds a {type(model).__name__}, not a model of sets (NeuralStatistician, "
                         "HomoEncoder)")
    return model, read_state(run_dir) or {}


def _interval(values: Tensor) -> dict[str, float]:
    n = values.numel()
    mean = float(values.mean())
    se = float(values.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "se": se, "ci95": 1.96 * se, "n": n}


@torch.no_grad()
def fewshot_accuracy(model: NeuralStatistician, classes: Tensor, way: int, shot: int, episodes: int = 1000,
                     queries: int = 1, seed: int = 0, binarize_seed: int | None = 0,
                     distinct_ids: Tensor | None = None, rule: str = "kl_support_query") -> dict[str, Any]:
    """N-way K-shot classification accuracy of ``model.classify`` on ``episodes`` episodes of ``classes``.

    Args:
        classes: ``(n_classes, n_per_class, D)`` held-out classes (Omniglot: the evaluation set).
        queries: queries per class per episode.
        binarize_seed: binarise ``classes`` once with this seed before sampling (``None``: use the values).
        rule: the scoring rule of :meth:`NeuralStatistician.classify`.

    Returns:
        ``accuracy`` (fraction), ``se`` and ``ci95`` (1.96 standard errors over episodes), ``episodes``, ``way``,
        ``shot``, ``seconds``.
    """
    t0 = time.perf_counter()
    if binarize_seed is not None:
        classes = torch.bernoulli(classes, generator=torch.Generator().manual_seed(binarize_seed))
    sampler = EpisodeSampler(classes, way, shot, queries, seed=seed, distinct_ids=distinct_ids)
    acc = torch.empty(episodes)
    for e in range(episodes):
        ep = sampler.sample()
        acc[e] = (model.classify(ep.support, ep.query, rule) == ep.query_label).float().mean()
    s = _interval(acc)
    return {"accuracy": s["mean"], "se": s["se"], "ci95": s["ci95"], "episodes": episodes, "way": way,
            "shot": shot, "queries": queries, "rule": rule, "seconds": round(time.perf_counter() - t0, 1)}


@torch.no_grad()
def support_nll(model: NeuralStatistician, classes: Tensor, shot: int = 5, k: int = 100, n_classes: int | None = None,
                seed: int = 0) -> dict[str, float]:
    r"""Mean ``-L_k`` (IWAE-k bound, nats) of one held-out image per class given ``shot`` other images of its class.

    :math:`-\log \frac1k\sum_i w_i`, with ``w_i`` from ``model.log_weights(x, k, support=D)``: a bound on
    :math:`-\log\int p(x|z,c)p(z|c)q(c|D)`. ``classes`` are binarised once with ``seed``, and the importance
    samples are drawn from torch's generator seeded with ``seed`` (restored afterwards), so the figure is
    reproducible.

    Returns:
        ``nll`` (mean over images), ``se``, ``k``, ``shot``, ``n``.
    """
    g = torch.Generator().manual_seed(seed)
    classes = torch.bernoulli(classes[:n_classes] if n_classes else classes, generator=g)
    perm = torch.argsort(torch.rand(classes.shape[:2], generator=g), -1)
    x = classes[torch.arange(len(classes)), perm[:, 0]]
    support = classes[torch.arange(len(classes))[:, None], perm[:, 1:shot + 1]]
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(x), 50):
            lw = model.log_weights(x[i:i + 50], k, support=support[i:i + 50])
            out.append(torch.logsumexp(lw, 0) - math.log(k))
    s = _interval(-torch.cat(out))
    return {"nll": s["mean"], "se": s["se"], "k": k, "shot": shot, "n": s["n"]}


def parse_support(text: str, classes: Tensor) -> Tensor:
    """``--support``: a ``.npy``/``.pt`` file of images ``(K, D)`` (or ``(K, H, W)``), or ``CLASS:I,J,...`` item ids of
    one class of ``classes`` (``CLASS`` alone takes its first 5 items).

    Raises:
        ValueError / FileNotFoundError: naming the value.
    """
    path = Path(text)
    if path.suffix in (".npy", ".pt"):
        if not path.is_file():
            raise FileNotFoundError(f"--support {text}: no such file")
        import numpy as np
        arr = torch.as_tensor(np.load(path)) if path.suffix == ".npy" else torch.load(path, weights_only=True)
        return arr.reshape(arr.shape[0], -1).float()
    cls, _, items = text.partition(":")
    try:
        c = int(cls)
        idx = [int(i) for i in items.split(",")] if items else list(range(5))
    except ValueError:
        raise ValueError(f"--support {text!r}: expected a .npy/.pt file or CLASS[:I,J,...] (e.g. 12:0,1,2,3,4)") from None
    if not 0 <= c < classes.shape[0] or any(not 0 <= i < classes.shape[1] for i in idx):
        raise ValueError(f"--support {text!r}: class must be in 0..{classes.shape[0] - 1} and items in "
                         f"0..{classes.shape[1] - 1}")
    return classes[c, idx]


@torch.no_grad()
def sample_from_support(model: NeuralStatistician, supports: list[Tensor], n: int = 5, seed: int = 0,
                        mean: bool = True) -> Tensor:
    """For each support set ``(K, D)``: its ``K`` images then ``n`` samples ``c ~ q(c|D)``, ``z ~ p(z|c)``, decoded;
    rows of ``K + n`` images, ``(len(supports) * (K + n), D)``."""
    torch.manual_seed(seed)
    rows = []
    for s in supports:
        rows += [s, model.sample(n, mean=mean, support=s)]
    return torch.cat(rows)


def is_sets_run(run_dir: str | Path) -> bool:
    """True for a run directory of :func:`train_sets` (a step-trainer run whose model is a model of sets)."""
    state = read_state(run_dir) if (Path(run_dir) / "state.json").is_file() else None
    return bool(state) and state.get("spec", {}).get("model", {}).get("type") in ("neural_statistician",
                                                                                 "homoencoder")


def fewshot_run(run_dir: str | Path, way: int, shot: int, episodes: int = 1000, seed: int = 0,
                data_dir: str | None = None, rule: str = "kl_support_query") -> dict[str, Any]:
    """``vaekit fewshot``: :func:`fewshot_accuracy` of a trained run on its data's held-out classes.

    Raises:
        FileNotFoundError / ValueError: not a run of a model of sets, naming the folder.
    """
    if not is_sets_run(run_dir):
        raise ValueError(f"{run_dir}: not a run of a Neural Statistician or Homoencoder (train one with "
                         "python -m vaekit.reproduce.sets --runs omni_ns)")
    model, state = load_sets_run(run_dir)
    data = load_set_data(state["spec"]["data"], data_dir)
    if data.name != "omniglot":
        raise ValueError(f"{run_dir}: few-shot classification needs image classes; this run holds {data.name} sets")
    res = fewshot_accuracy(model, data.test, way, shot, episodes, seed=seed, rule=rule)
    return {"run": str(run_dir), "epochs": state["epoch"], **res}


def support_sample_images(run_dir: str | Path, supports: list[str], n: int = 5, seed: int = 0, mean: bool = True,
                          data_dir: str | None = None, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """``vaekit sample RUN --support ...``: one row per support set (its images, then ``n`` samples), a PNG.

    ``supports``: each a file of images or ``CLASS[:I,J,...]`` of the held-out (evaluation) classes, binarised once
    with ``seed`` (:func:`parse_support`).
    """
    from .. import viz
    from .images import _plan, _save

    model, state = load_sets_run(run_dir)
    data = load_set_data(state["spec"]["data"], data_dir)
    if data.image_shape is None:
        raise ValueError(f"{run_dir}: its sets are not images; --support needs an image run")
    classes = torch.bernoulli(data.test, generator=torch.Generator().manual_seed(seed))
    sets = [parse_support(s, classes) for s in supports]
    k = {len(s) for s in sets}
    if len(k) != 1:
        raise ValueError(f"--support: give support sets of one size, got sizes {sorted(k)}")
    dest = _plan(run_dir, out, "support-samples.png", overwrite)
    grid = sample_from_support(model, sets, n, seed=seed, mean=mean)
    return _save(lambda p: viz.sample_grid(grid, data.image_shape, p, nrow=k.pop() + n,
                                           title=f"support (left), {n} samples c~q(c|D), z~p(z|c) (right)"), dest)
