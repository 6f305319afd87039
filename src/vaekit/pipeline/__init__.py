"""The pipeline around a model, in the library (the CLI only parses arguments and prints).

* :func:`train_run`: train a config, then evaluate and plot the best checkpoint (``vaekit train``);
  :func:`check_report`: that report tried on the untrained model before the first step;
* :func:`evaluate_run` / :func:`evaluate_model`: estimators on a run's evaluation split (``vaekit eval``);
  :func:`finish_run`: the post-training report (``eval.json``, a metrics record, plots);
* :func:`eval_data`: a run's evaluation split exactly as training saw it;
* :func:`latent_plots` / :func:`write_plots`: the plots of a run, chosen by the latent geometry;
* :func:`sample_images`, :func:`reconstruct_images`, :func:`interpolate_images`: images from a run;
* :func:`write_report` / :func:`build_report`: one self-contained HTML page about a run (``vaekit report``).
"""

from .data import eval_data
from .evaluate import RunEvaluation, evaluate_model, evaluate_run, finish_run
from .images import interpolate_images, load_run_images, reconstruct_images, sample_images
from .plots import decode_mean, latent_plots, write_plots
from .report import build_report, write_report
from .train import TrainReport, check_report, train_run

__all__ = ["eval_data", "evaluate_model", "evaluate_run", "finish_run", "RunEvaluation", "latent_plots",
           "decode_mean", "write_plots", "load_run_images", "sample_images", "reconstruct_images",
           "interpolate_images", "train_run", "TrainReport", "check_report", "write_report", "build_report"]
