"""Likelihood estimators compared on one model: ELBO, IWAE-k, AIS and BDMC (Wu et al. 2017, arXiv:1611.04273).

One run, ``vae_mnist`` (``configs/evaluation_mnist.yaml``): a 1-layer Gaussian VAE (d = 50, 784-200-200 tanh
MLPs, Bernoulli likelihood) trained briefly on dynamically binarised MNIST. On the test images as the trainer
binarised them, all in nats per image:

* the runner's ELBO (Kingma & Welling 2013) and IWAE-k bound (Burda et al. 2015) per image, plus an IWAE-k
  sweep over k (:func:`vaekit.evaluation.run_estimators`);
* forward AIS with HMC (Wu et al. 2017: 16 chains, 10 leapfrog steps, sigmoid schedule, step sizes adapted
  toward 0.65 acceptance) on the first images for each T (:func:`vaekit.evaluation.ais`), paired with the
  ELBO and IWAE on the same images;
* BDMC on data simulated from the model (Grosse et al. 2015, arXiv:1511.02543; :func:`vaekit.evaluation.run_bdmc`):
  forward and reverse AIS sandwich the true log p(x), and their gap bounds the error of AIS at that T.

PAPERS.md section 4(c) expects ELBO <= L_50 <= L_1000 <= AIS + noise, AIS - L_1000 of a few nats at most, and
a BDMC gap below 1 nat at large T.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..evaluation import ais, run_bdmc, run_estimators
from ..progress import Progress
from ..train import LoadedRun
from .runner import Budget, EvalSettings, Report, Reproduction, RunSpec, md_table, mean_se

RUN = "vae_mnist"


def run_spec(name: str) -> RunSpec:
    """The one run, ``vae_mnist``; ``ValueError`` for any other name."""
    if name != RUN:
        raise ValueError(f"bad run name {name!r}: this reproduction has one run, {RUN!r}")
    return RunSpec("configs/evaluation_mnist.yaml")


def measure(run: LoadedRun, x: Tensor, values: Mapping[str, Tensor], budget: Budget) -> dict[str, Any]:
    """The IWAE-k sweep, AIS for each ``(T, images)`` of ``budget.extra["ais"]`` with its per-image differences
    from the runner's IWAE and ELBO (paired s.e.), and BDMC (``bdmc_n`` simulated images, ``bdmc_Ts``)."""
    e, s = budget.extra, budget.eval
    tag = f"[{run.run_dir.name}]"
    spec = ",".join(f"iwae:{k}" for k in e["iwae_ks"])
    sweep = {name: {"mean": r["mean"], "se": r["stderr"], "n": r["n"], "seconds": r["seconds"]}
             for name, r in run_estimators(run.model, x, spec, seed=s.seed, batch_size=s.batch_size, progress=True,
                                           desc=f"{tag} sweep").items()}
    rows = {}
    for T, n in e["ais"]:
        c = e["ais_chains"]
        with Progress(T, f"{tag} ais:{T}", "transitions",
                      cost=f"{n} images x {c} chains x {T} transitions x 10 leapfrog steps") as bar:
            r = ais(run.model, x[:n], n_chains=c, T=T, seed=s.seed + T, progress=lambda t, T_: bar.update(1))
        log_px = r.log_px.double().cpu()
        rows[f"ais:{T}"] = {"mean": float(log_px.mean()), "mc_se": float(r.stderr.pow(2).sum().sqrt() / len(log_px)),
                            "n": len(log_px), "seconds": r.seconds, "acceptance": r.acceptance, "settings": r.settings,
                            **{f"minus_{key}": mean_se(log_px - values[key][:n]) for key in ("iwae", "elbo")}}
    bdmc = run_bdmc(run.model, e["bdmc_n"], e["bdmc_Ts"], seed=s.seed + 7, n_chains=e["ais_chains"], progress=True)
    return {"iwae_sweep": sweep, "ais": rows, "bdmc": bdmc}


def _se(m: Mapping[str, Any]) -> str:
    return "" if m["se"] != m["se"] else f" ± {m['se']:.2f}"  # nan (one image): no s.e.


def report(rows: list[dict], meta: dict[str, Any]) -> Report:
    """docs/results/evaluation.md: every estimate with its s.e. and wall time, AIS paired with IWAE and ELBO,
    BDMC by T, and the findings PAPERS.md section 4(c) asks for."""
    r = next((row for row in rows if "iwae" in row), None)
    if r is None:
        return Report("The run did not finish an epoch; nothing to report.\n")
    k = r["settings"]["eval"]["iwae_k"]
    L = ["# Likelihood evaluation of a 1-layer MNIST VAE (ELBO, IWAE-k, AIS, BDMC)", "",
         f"Produced by `{meta['command']}` ({meta['threads']} CPU thread(s), torch {meta['torch']}; "
         f"report written {meta['finished']}; raw numbers in `{meta['doc'].replace('.md', '.json')}`).", "",
         "## Model", "",
         "VAE, Gaussian latent dim 50, encoder and decoder 784-200-200 tanh MLPs, Bernoulli likelihood "
         f"(`{r['config']}`), trained with `vaekit.train.fit` for **{r['epochs_done']} epoch{'s' if r['epochs_done'] != 1 else ''}** only (Adam lr 1e-3, "
         f"batch 100, 1-sample ELBO, dynamic binarisation; {r['train_seconds']:.0f} s). A short run, so the absolute "
         "numbers are far from converged IWAE-paper values (about -86 to -87 nats); what matters here is how the "
         "estimators compare on the same model and images. The test images are binarised once, as the trainer "
         "binarises its test split.", "",
         "## Estimates (nats, per test image)", ""]
    cells = [["elbo", r["n"], f"{r['elbo']['mean']:.2f}", f"{r['elbo']['se']:.2f}", f"{r['seconds']['elbo']:.1f}",
              f"{r['settings']['eval']['elbo_k']} sample(s), analytic KL; s.e. over images"]]
    cells += [[name, v["n"], f"{v['mean']:.2f}", f"{v['se']:.2f}", f"{v['seconds']:.1f}", "s.e. over images"]
              for name, v in r["iwae_sweep"].items()]
    cells.append([f"iwae:{k}", r["n"], f"{r['iwae']['mean']:.2f}", f"{r['iwae']['se']:.2f}",
                  f"{r['seconds']['iwae']:.1f}", "s.e. over images"])
    for name, v in r["ais"].items():
        st = v["settings"]
        cells.append([name, v["n"], f"{v['mean']:.2f}", f"{v['mc_se']:.2f}", f"{v['seconds']:.1f}",
                      f"{st['n_chains']} chains, {st['leapfrog_steps']} leapfrog, {st['schedule']} schedule, accept "
                      f"{v['acceptance']:.2f}; s.e. is Monte Carlo (over chains); {v['seconds'] / v['n']:.2f} s/image"])
    L += md_table(["estimator", "images", "mean", "s.e.", "wall time (s)", "notes"], cells)
    L += ["", f"The ELBO and IWAE rows use the first {r['n']} test images; the AIS rows use the first *n* of those, "
          "so the means in different rows are over different image sets. Paired comparisons on the same images:", ""]
    L += md_table(["AIS run", "images", f"AIS − IWAE-{k}", "AIS − ELBO"],
                  [[name, v["n"], f"{v['minus_iwae']['mean']:+.2f}{_se(v['minus_iwae'])}",
                    f"{v['minus_elbo']['mean']:+.2f}{_se(v['minus_elbo'])}"] for name, v in r["ais"].items()])
    b = r["bdmc"]
    L += ["", "## BDMC on data simulated from the model", "",
          f"{b['settings']['n_simulated']} pairs (z, x) ~ p(z)p(x|z); forward AIS from the prior (stochastic lower "
          "bound) and reverse AIS from the true z (stochastic upper bound), "
          f"{b['settings']['n_chains']} chains each.", ""]
    L += md_table(["T", "lower (fwd)", "upper (rev)", "gap", "fwd s", "rev s"],
                  [[row["T"], f"{row['lower']:.2f} ± {row['lower_stderr']:.2f}",
                    f"{row['upper']:.2f} ± {row['upper_stderr']:.2f}", f"{row['gap']:.2f}",
                    f"{row['forward_seconds']:.0f}", f"{row['reverse_seconds']:.0f}"] for row in b["rows"]])
    L += ["", "## Findings", ""]
    for name, v in r["ais"].items():
        d = v["minus_iwae"]
        L.append(f"- {name}: AIS − IWAE-{k} = {d['mean']:+.2f} nats on {v['n']} images: "
                 f"{'agrees within a nat' if abs(d['mean']) < 1.0 else 'does NOT agree within a nat'}; "
                 f"AIS − ELBO = {v['minus_elbo']['mean']:+.2f} nats.")
    L.append(f"- Over {r['n']} images the ELBO is {r['gap']['mean']:.2f} ± {r['gap']['se']:.2f} nats below IWAE-{k} "
             "(Wu et al. 2017: AIS ≈ IWAE-5000 to well under a nat for MNIST VAEs, ELBO several nats lower).")
    L.append("- IWAE-k by k: " + ", ".join(f"{name}: {v['mean']:.2f}" for name, v in r["iwae_sweep"].items())
             + f", iwae:{k}: {r['iwae']['mean']:.2f}.")
    L.append("- BDMC gap by T: " + ", ".join(f"T={row['T']}: {row['gap']:.2f}" for row in b["rows"]) + " nats.")
    L += ["", f"Machine: {meta['machine']}; wall times are only indicative on a shared machine.", ""]
    return Report("\n".join(L))


BUDGETS = {
    "small": Budget(epochs=5, eval=EvalSettings(iwae_k=5000, elbo_k=1, n=500), runs=(RUN,),
                    note="IWAE k = 1..1000 on the same images, AIS T = 100 on 50 images and T = 1000 on 10, BDMC on 4 "
                         "simulated images at T = 30..1000 (about 15 min on one core)",
                    extra={"iwae_ks": [1, 10, 100, 1000], "ais": [[100, 50], [1000, 10]], "ais_chains": 16,
                           "bdmc_n": 4, "bdmc_Ts": [30, 100, 300, 1000]}),
    "ci": Budget(epochs=1, eval=EvalSettings(iwae_k=1000, elbo_k=1, n=100), runs=(RUN,),
                 note="IWAE k = 1..100, AIS T = 100 on 10 images, BDMC on 2 simulated images at T = 30, 100: the CI "
                      "smoke run of `vaekit reproduce --all` (about 2 min)",
                 extra={"iwae_ks": [1, 10, 100], "ais": [[100, 10]], "ais_chains": 16, "bdmc_n": 2,
                        "bdmc_Ts": [30, 100]}),
    "paper": Budget(epochs=5, eval=EvalSettings(iwae_k=5000, elbo_k=1, n=None), runs=(RUN,),
                    note="Wu et al.'s T = 10,000 with 16 chains (on 10 images; T = 1000 on 100), BDMC on 20 simulated "
                         "images up to T = 5000 (PAPERS.md 4(c)); hours on a CPU",
                    extra={"iwae_ks": [1, 10, 100, 1000], "ais": [[1000, 100], [10000, 10]], "ais_chains": 16,
                           "bdmc_n": 20, "bdmc_Ts": [100, 1000, 5000]}),
}

REPRODUCTION = Reproduction(
    name="evaluation", title="Wu et al. 2017 (arXiv:1611.04273): ELBO, IWAE-k, AIS and BDMC on one MNIST VAE",
    budgets=BUDGETS, run_spec=run_spec, report=report, measure=measure, doc="docs/results/evaluation.md")
