"""Runs of conditional and semi-supervised models (issue 13): samples for a condition, completions, evaluation.

These serve ``vaekit sample RUN --condition label=3``, ``vaekit complete RUN --mask quadrant3`` and
``vaekit eval RUN`` for run directories written by :func:`vaekit.train.steps.fit_steps` (they hold
``state.json``; see :mod:`vaekit.reproduce.conditional`). Test images are MNIST's, binarised once with seed 0.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data import load_dataset, make_mask
from ..evaluation import iwae_estimate
from ..models import M1M2, ConditionError, ConditionalVAE, MaskedPredictor, classification_error
from ..train.outputs import write_output
from ..train.steps import load_steps_run, read_state
from .images import _plan, _save, completion_grid

__all__ = ["is_steps_run", "parse_condition", "conditional_sample_images", "complete_images",
           "imputation_log_likelihood", "ais_imputation_log_likelihood", "ObservedPart", "evaluate_steps_run",
           "test_images"]

IMAGE_SHAPE = (1, 28, 28)


def is_steps_run(run_dir: str | Path) -> bool:
    """True for a run directory of the step trainer (``state.json``), false for one of ``vaekit train``."""
    return (Path(run_dir) / "state.json").is_file()


def parse_condition(items: list[str] | None) -> dict[str, Any]:
    """``["label=3"]`` -> ``{"label": 3}``; ``ValueError`` naming an item that is not ``KEY=INT``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--condition {item!r}: expected KEY=VALUE, e.g. label=3")
        try:
            out[key] = int(value)
        except ValueError:
            raise ValueError(f"--condition {item!r}: the value must be an integer (a class label)") from None
    return out


def test_images(data_dir: str | None = None) -> tuple[Tensor, Tensor]:
    """MNIST's test images binarised once with seed 0 ``(10000, 784)``, and their labels."""
    ds = load_dataset("mnist", data_dir=data_dir)
    return torch.bernoulli(ds.test.x, generator=torch.Generator().manual_seed(0)), ds.test.y


def conditional_sample_images(run_dir: str | Path, condition: dict[str, Any], n: int = 64, *, seed: int = 0,
                              mean: bool = True, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Save ``n`` samples of a conditional run for ``condition`` (e.g. ``{"label": 3}``) as a grid.

    Raises:
        ConditionError: the model needs a condition that was not given (naming it), or a label out of range.
    """
    from .. import viz

    dest = _plan(run_dir, out, "samples-" + "-".join(f"{k}{v}" for k, v in condition.items()) + ".png"
                 if condition else "samples.png", overwrite)
    model = load_steps_run(run_dir)
    if not hasattr(model, "sample"):
        raise ValueError(f"{run_dir}: a {type(model).__name__} does not generate images")
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        x = model.sample(n, mean=mean, **condition)
    what = ", ".join(f"{k} = {v}" for k, v in condition.items()) or "y ~ p(y)"
    return _save(lambda p: viz.sample_grid(x, IMAGE_SHAPE, p, title=f"{n} samples, {what}"), dest)


def complete_images(run_dir: str | Path, mask: str, n_inputs: int = 8, n_samples: int = 7, *, seed: int = 0,
                    data_dir: str | None = None, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Completion grid: one row per test image: the observed part (hidden pixels grey), then ``n_samples``
    completions (a CVAE's samples from p(z|x_obs); a baseline's one prediction, repeated), then the truth.

    Raises:
        ValueError: an unknown mask, or a run whose model does not complete images.
    """
    m = make_mask(mask, IMAGE_SHAPE)
    dest = _plan(run_dir, out, f"complete-{mask}.png", overwrite)
    model = load_steps_run(run_dir)
    x = test_images(data_dir)[0][:n_inputs]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if isinstance(model, ConditionalVAE) and model.structured:
            fills = [model.sample(n_inputs, mask=m, observed=x) for _ in range(n_samples)]
        elif isinstance(model, MaskedPredictor):
            fills = [model.predict(x, m)] * n_samples
        else:
            raise ValueError(f"{run_dir}: a {type(model).__name__} does not complete images; train a CVAE with a mask "
                             "condition (cvae_q<i>) or the baseline (baseline_q<i>)")
    return completion_grid(x, m, fills, IMAGE_SHAPE, mask, dest)


@torch.no_grad()
def pseudo_gibbs_completions(vae: nn.Module, x: Tensor, mask: Tensor, n: int, steps: int) -> Tensor:
    """``n`` completions per image ``(n, B, D)`` by Rezende et al. (2014)'s pseudo-Gibbs imputation: hidden pixels
    start as fair coin flips, then ``steps`` times ``z ~ q(z|x~)``, ``x~_hidden ~ p(x_hidden|z)``; observed pixels
    stay as given."""
    b, d = x.shape
    hidden = ~mask.view(1, 1, d).expand(n, b, d)
    xs = torch.where(hidden, torch.bernoulli(torch.full((n, b, d), 0.5, dtype=x.dtype)), x.expand(n, b, d))
    for _ in range(steps):
        z = vae.posterior(xs.reshape(n * b, d)).sample()
        xs = torch.where(hidden, vae.decode(z).sample().view(n, b, d).to(x.dtype), xs)
    return xs


@torch.no_grad()
def imputation_log_likelihood(vae: nn.Module, x: Tensor, mask: Tensor, k: int, completions: int = 10,
                              gibbs_steps: int = 20) -> Tensor:
    r"""log p(y | x_obs) of an unconditional VAE, ``(B,)`` nats, y = the pixels ``mask`` hides (True = observed):

    .. math:: \log p(y|x_{obs}) = \log p(x) - \log p(x_{obs}) \approx \mathcal L_k(x) - \hat{\mathcal L}_k(x_{obs})

    :math:`\mathcal L_k(x)`: the IWAE-k bound with :math:`q(z|x)`. :math:`\hat{\mathcal L}_k(x_{obs})`: IWAE-k of
    :math:`p(x_{obs}) = \int p(z)\prod_{i\,obs} p(x_i|z)\,dz` with the defensive mixture proposal
    :math:`r(z) = \tfrac12 q(z|x) + \tfrac1{2J}\sum_j q(z|\tilde x_j)` over J = ``completions`` pseudo-Gibbs
    completions :math:`\tilde x_j` (:func:`pseudo_gibbs_completions`); half the ``k`` draws come from
    :math:`q(z|x)`, the rest evenly from the completions. Any proposal gives an unbiased estimate of
    :math:`p(x_{obs})` (one that sees y only chooses where to look), so the mixture is within a factor 2 of the
    better of its parts. Both terms are lower bounds in expectation: the difference is
    :math:`-\log p(y|x_{obs})` plus the gap of the first minus the gap of the second, optimistic when the second
    gap is larger (likely: neither proposal targets :math:`p(z|x_{obs})`); it converges as k grows.

    Raises:
        ValueError: ``k`` is not a multiple of ``2 * completions``.
    """
    if k % (2 * completions):
        raise ValueError(f"k ({k}) must be a multiple of 2 * completions ({2 * completions})")
    b, d = x.shape
    log_px = torch.logsumexp(vae.log_weights(x, k), 0) - math.log(k)
    xs = torch.cat([x.unsqueeze(0), pseudo_gibbs_completions(vae, x, mask, completions, gibbs_steps)])
    r = vae.posterior(xs.reshape((completions + 1) * b, d))  # component c of image i at c * B + i
    draws = r.sample((k // (2 * completions),)).view(-1, completions + 1, b, r.event_shape[-1])
    own = r.sample((k // 2,)).view(k // 2, completions + 1, b, -1)[:, 0]
    z = torch.cat([own, draws[:, 1:].reshape(-1, b, own.shape[-1])])  # (k, B, Dz)
    log_c = r.log_prob(z.unsqueeze(1).expand(k, completions + 1, b, z.shape[-1]).reshape(k, (completions + 1) * b, -1))
    log_c = log_c.view(k, completions + 1, b)
    log_mix = torch.tensor([0.5] + [0.5 / completions] * completions, dtype=log_c.dtype).log().view(1, -1, 1)
    log_r = torch.logsumexp(log_c + log_mix, 1)
    per_pixel = vae.decode(z).base_dist.log_prob(x)  # (k, B, D)
    log_w = (per_pixel * mask.to(per_pixel.dtype)).sum(-1) + vae.prior().log_prob(z) - log_r
    return log_px - (torch.logsumexp(log_w, 0) - math.log(k))


class ObservedPart(nn.Module):
    r"""An unconditional model seen through a mask, for AIS on :math:`\log p(x_{obs})`:
    :math:`p(x_{obs}|z) = \prod_{i\,obs} p(x_i|z)` with the model's prior and latent space.

    ``log_likelihood(x, z)`` sums the per-pixel log-probabilities of ``model.decode(z)`` (a factorised likelihood:
    ``Independent`` over pixels) where ``mask`` is True, ``(*S, B)`` in nats."""

    def __init__(self, model: nn.Module, mask: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mask", mask.bool(), persistent=False)

    def prior(self) -> Any:
        return self.model.prior()

    @property
    def latent_space(self) -> Any:
        return self.model.latent_space

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        per_pixel = self.model.decode(z).base_dist.log_prob(x)
        return (per_pixel * self.mask.to(per_pixel.dtype)).sum(-1)


def ais_imputation_log_likelihood(vae: nn.Module, x: Tensor, mask: Tensor, T: int, n_chains: int = 8,
                                  leapfrog_steps: int = 5, seed: int = 0) -> dict[str, Tensor]:
    r"""log p(y | x_obs) of an unconditional VAE by two AIS runs, ``(B,)`` tensors in nats:

    .. math:: \log p(y|x_{obs}) = \log p(x) - \log p(x_{obs}),

    each term a forward AIS estimate (:func:`vaekit.evaluation.ais`, ``T`` transitions from the prior; the second
    with the likelihood of the observed pixels only, :class:`ObservedPart`). Unlike
    :func:`imputation_log_likelihood`, whose proposal for :math:`p(x_{obs})` is built from recognition networks
    that saw whole images, AIS anneals towards :math:`p(z|x_{obs})` itself, so both gaps shrink to 0 as ``T``
    grows (Neal 2001; Wu et al. 2017) and the difference converges to the true value; at finite ``T`` it is an
    estimate, not a bound (both terms are stochastic lower bounds).

    Returns:
        ``{"log_px", "log_px_se", "log_pobs", "log_pobs_se", "log_cond"}``: the two AIS estimates with their
        Monte Carlo s.e. over chains, and ``log_px - log_pobs``.
    """
    from ..evaluation import ais

    full = ais(vae, x, n_chains=n_chains, T=T, leapfrog_steps=leapfrog_steps, seed=seed)
    part = ais(ObservedPart(vae, mask), x, n_chains=n_chains, T=T, leapfrog_steps=leapfrog_steps, seed=seed + 1)
    return {"log_px": full.log_px, "log_px_se": full.stderr, "log_pobs": part.log_px, "log_pobs_se": part.stderr,
            "log_cond": full.log_px - part.log_px}


def _mean_se(v: Tensor) -> dict[str, float]:
    v = v.double()
    return {"mean": float(v.mean()), "se": float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")}


def _batched(fn: Callable[[Tensor], Tensor], x: Tensor, seed: int = 0, batch: int = 100) -> Tensor:
    out = []
    with torch.random.fork_rng(devices=[]):
        for j, i in enumerate(range(0, len(x), batch)):
            torch.manual_seed(seed + j)
            out.append(fn(x[i:i + batch]).double())
    return torch.cat(out)


@torch.no_grad()
def evaluate_steps_run(run_dir: str | Path, data_dir: str | None = None, n_eval: int = 1000, k: int = 100,
                       cache: bool = True) -> dict[str, Any]:
    """Evaluate a step-trainer run on MNIST's test images; cached in ``RUN/eval.json`` per epoch and settings.

    In nats per image, on the first ``n_eval`` test images (batch ``j`` of 100 seeded with ``j``), with s.e.:

    * ``cond_nll``: a label CVAE's ``-IWAE-k`` bound on ``-log p(x|y)``; a mask CVAE's on ``-log p(x_hidden|x_obs)``;
      the baseline's exact ``-log p(x_hidden|x_obs)``;
    * ``imputation`` (an unconditional VAE): ``-log p(x_hidden|x_obs)`` for each quadrant observed, by
      :func:`imputation_log_likelihood`; and ``test_iwae``;
    * ``test_error`` (M2, M1+M2, the supervised baseline): classification error on all 10,000 test images;
      ``test_iwae_unlabelled`` (M2): the IWAE-k bound on ``log p(x)`` with y summed out.

    An M1+M2 run reads its M1 from the sibling folder ``m1``.
    """
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    if state is None:
        raise FileNotFoundError(f"{run_dir} holds no run of vaekit's step trainer (no state.json)")
    spec = state["spec"]
    settings = {"epoch": state["epoch"], "n_eval": n_eval, "k": k, "imputation": "defensive mixture: q(z|x) and 10 pseudo-Gibbs"}
    cache_file = run_dir / "eval.json"
    if cache and cache_file.is_file():
        saved = json.loads(cache_file.read_text())
        if saved.get("settings") == settings:
            return saved
    xt, yt = test_images(data_dir)
    model = load_steps_run(run_dir)
    kind = spec.get("kind")
    res: dict[str, Any] = {"run": run_dir.name, "settings": settings, "train_seconds": state["elapsed"],
                           "epochs": state["epoch"], "spec": spec, "history": state["history"]}
    t0 = time.perf_counter()
    x = xt[:n_eval]
    if isinstance(model, ConditionalVAE):
        if model.structured:
            mask = make_mask(spec.get("mask", "quadrant0"))
            v = -_batched(lambda b: iwae_estimate(model, b, k, mask=mask, observed=b), x)
        else:
            ys = yt[:n_eval]
            v = -torch.cat([_batched(lambda b: iwae_estimate(model, b, k, label=ys[i:i + 100]), x[i:i + 100], seed=i // 100)
                            for i in range(0, n_eval, 100)])
        res["cond_nll"], res["per_image"] = _mean_se(v), v.tolist()
    elif isinstance(model, MaskedPredictor):
        mask = make_mask(spec.get("mask", "quadrant0"))
        v = -_batched(lambda b: model.conditional_log_likelihood(b, mask), x)
        res["cond_nll"], res["per_image"] = _mean_se(v), v.tolist()
    elif hasattr(model, "classify"):
        if kind in ("m1m2", "m1m2s"):
            f = spec.get("features") or {}
            clf = M1M2(load_steps_run(run_dir.parent / "m1"), model, f.get("active"), f.get("shift"), f.get("scale"))
            ds = load_dataset("mnist", data_dir=data_dir)
            res["test_error"] = classification_error(clf, ds.test.x, yt)  # M1 was fed grey levels
        else:
            res["test_error"] = classification_error(model, xt, yt)
            if hasattr(model, "log_weights"):
                res["test_iwae_unlabelled"] = _mean_se(_batched(lambda b: iwae_estimate(model, b, k), x))
    else:
        res["test_iwae"] = _mean_se(_batched(lambda b: iwae_estimate(model, b, k), x))
        nll = {f"quadrant{i}": -_batched(lambda b: imputation_log_likelihood(model, b, make_mask(f"quadrant{i}"), k), x)
               for i in range(4)}
        k10 = 10 * k  # the same at ten times the samples: the estimate's drift with k
        nll[f"quadrant0_k{k10}"] = -_batched(lambda b: imputation_log_likelihood(model, b, make_mask("quadrant0"), k10), x)
        res["imputation"] = {mk: _mean_se(v) for mk, v in nll.items()}
        res["imputation_per_image"] = {mk: v.tolist() for mk, v in nll.items()}
    res["eval_seconds"] = round(time.perf_counter() - t0, 1)
    if cache:
        write_output(cache_file, json.dumps(res), payload=res)
    return res


def summary(res: dict[str, Any]) -> str:
    """A few lines for the terminal: each estimate with its s.e."""
    lines = [f"{res['run']}: epoch {res['epochs']}, {res['train_seconds']:.0f} s of training"]
    s = res["settings"]
    if "cond_nll" in res:
        lines.append(f"  conditional NLL  {res['cond_nll']['mean']:.2f} ± {res['cond_nll']['se']:.2f} nats "
                     f"(first {s['n_eval']} test images, IWAE-{s['k']} for a CVAE, exact for the baseline)")
    if "test_error" in res:
        lines.append(f"  test error       {100 * res['test_error']['error']:.2f} ± {100 * res['test_error']['se']:.2f} % "
                     f"({res['test_error']['n']} test images)")
    if "test_iwae_unlabelled" in res:
        lines.append(f"  IWAE-{s['k']} log p(x) {res['test_iwae_unlabelled']['mean']:.2f} ± "
                     f"{res['test_iwae_unlabelled']['se']:.2f} nats (y summed out)")
    if "test_iwae" in res:
        lines.append(f"  IWAE-{s['k']} log p(x) {res['test_iwae']['mean']:.2f} ± {res['test_iwae']['se']:.2f} nats")
    for mk, v in res.get("imputation", {}).items():
        lines.append(f"  imputation NLL, {mk} observed: {v['mean']:.2f} ± {v['se']:.2f} nats")
    return "\n".join(lines)


__all__ += ["summary", "ConditionError"]
