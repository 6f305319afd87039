"""Text runs after training: decoding from the prior, homotopies, perplexity and latent diagnostics (issue 14)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = ["open_text_run", "encode_text", "generate_text", "homotopy_text", "homotopy_pairs", "impute_text",
           "imputation_benchmark", "text_summary"]

BLANK = "___"
"""The word placeholder of :func:`impute_text` (three underscores)."""


def open_text_run(run_dir: str | Path, checkpoint: str = "best") -> tuple[Any, Any]:
    """``(run, vocab)`` of a text run directory: the :class:`~vaekit.train.LoadedRun` and its ``vocab.json``.

    Raises:
        FileNotFoundError: no such run, or no ``vocab.json`` in it (not a text run), naming the file.
    """
    from ..data.text import Vocabulary
    from ..train import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    if not (run_dir / "vocab.json").is_file():
        raise FileNotFoundError(f"{run_dir / 'vocab.json'} does not exist: {run_dir} is not a run of a text model "
                                "(vaekit generate and vaekit homotopy need one, e.g. configs/text/ptb_vae.yaml)")
    vocab = Vocabulary.load(run_dir)
    run = load_run(run_dir, checkpoint)
    if getattr(run.model, "vocab_size", None) != len(vocab):
        raise ValueError(f"{run_dir}: the model has {getattr(run.model, 'vocab_size', None)} token ids but "
                         f"vocab.json has {len(vocab)}")
    return run, vocab


def encode_text(vocab: Any, sentences: list[str], lowercase: bool = True) -> torch.Tensor:
    """``(N, T)`` token rows of whitespace-tokenised ``sentences``; unseen words become ``<unk>`` (said on stderr).

    Raises:
        ValueError: an empty sentence, or one whose every word is outside the vocabulary, quoting it.
    """
    from ..data.text import encode_sentences

    toks = [(s.lower() if lowercase else s).split() for s in sentences]
    for s, t in zip(sentences, toks):
        if not t:
            raise ValueError(f"sentence {s!r}: no words")
        unseen = [w for w in t if w not in vocab.stoi]
        if len(unseen) == len(t):
            raise ValueError(f"sentence {s!r}: every word is outside the run's vocabulary ({len(vocab)} tokens)")
        if unseen:
            print(f"vaekit: note: {', '.join(repr(w) for w in unseen)} not in the run's vocabulary: read as <unk>",
                  file=sys.stderr)
    return encode_sentences(toks, vocab, where=[repr(s) for s in sentences])[0]


def _text(vocab: Any, rows: torch.Tensor) -> list[str]:
    return [" ".join(vocab.decode(r)) for r in rows]


@torch.no_grad()
def generate_text(run_dir: str | Path, n: int = 10, mode: Literal["greedy", "sample", "beam"] = "greedy",
                  seed: int = 0, checkpoint: str = "best", beam: int = 5, temperature: float = 1.0) -> list[str]:
    """``n`` sentences: codes ``z ~ p(z)`` (a text VAE) decoded by ``mode``, or a language model's own samples.

    Raises:
        ValueError: ``n < 1``, an unknown mode, or greedy/beam decoding of a language model (it has no code, so
            every greedy sentence would be the same).
    """
    from ..models.text import LanguageModel, beam_decode, greedy_decode, sample_decode

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if mode not in ("greedy", "sample", "beam"):
        raise ValueError(f"mode must be greedy, sample or beam, got {mode!r}")
    run, vocab = open_text_run(run_dir, checkpoint)
    m = run.model.eval()
    g = torch.Generator().manual_seed(seed)
    if isinstance(m, LanguageModel):
        if mode != "sample":
            raise ValueError("a language model has no code: greedy or beam decoding gives one sentence; use --mode sample")
        return _text(vocab, sample_decode(m, None, n, temperature=temperature, generator=g))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z = m.prior().sample((n,))
    if mode == "greedy":
        rows = greedy_decode(m, z)
    elif mode == "beam":
        rows = beam_decode(m, z, beam=beam)
    else:
        rows = sample_decode(m, z, temperature=temperature, generator=g)
    return _text(vocab, rows)


@torch.no_grad()
def homotopy_text(run_dir: str | Path, a: str, b: str, steps: int = 7, mode: Literal["greedy", "beam"] = "greedy",
                  checkpoint: str = "best", lowercase: bool = True) -> list[str]:
    """Decoded points between the codes of sentences ``a`` and ``b`` (:func:`vaekit.models.text.homotopy`: a line,
    or a great circle on a sphere latent), ``steps`` of them, ends included."""
    from ..models.text import TextVAE, homotopy

    run, vocab = open_text_run(run_dir, checkpoint)
    if not isinstance(run.model, TextVAE):
        raise ValueError(f"{run_dir}: a homotopy needs a text VAE (a model with a latent code), not "
                         f"{type(run.model).__name__}")
    x = encode_text(vocab, [a, b], lowercase)
    return _text(vocab, homotopy(run.model.eval(), x[:1], x[1:], steps, mode))


@torch.no_grad()
def homotopy_pairs(run_dir: str | Path, pairs: int = 5, steps: int = 7, seed: int = 0, split: str = "test",
                   max_words: int = 20) -> list[dict[str, Any]]:
    """Homotopies between ``pairs`` pairs of ``split`` sentences of at most ``max_words`` words, drawn by ``seed``
    (not chosen by eye), each decoded greedily at ``steps`` points."""
    from ..models.text import homotopy
    from ..pipeline import eval_data

    run, vocab = open_text_run(run_dir)
    x, _, _ = eval_data(run.config, split, torch.device("cpu"))
    from ..nets.text import sentence_lengths

    ok = (sentence_lengths(x) <= max_words + 1).nonzero().flatten()
    g = torch.Generator().manual_seed(seed)
    pick = ok[torch.randperm(ok.shape[0], generator=g)[:2 * pairs]].view(pairs, 2)
    out = []
    for i, j in pick.tolist():
        path = homotopy(run.model.eval(), x[i:i + 1], x[j:j + 1], steps)
        out.append({"a": _text(vocab, x[i:i + 1])[0], "b": _text(vocab, x[j:j + 1])[0], "rows": [i, j],
                    "path": _text(vocab, path)})
    return out


@torch.no_grad()
def text_summary(run_dir: str | Path, mi_rows: int = 1000, au_rows: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per-sentence NLL, perplexity, KL and latent diagnostics of a text run from its ``eval.json`` and data.

    Perplexity is :math:`\\exp(\\sum_n \\mathrm{NLL}_n / \\sum_n (|x_n| + 1))` over the evaluated sentences, ``<eos>``
    counted, from each estimator's mean NLL; for a VAE it is an upper bound (the estimators are lower bounds on
    log p(x)). ``mutual_information`` (:func:`vaekit.evaluation.mutual_information`, Hoffman & Johnson 2016) and
    ``active_units`` (Burda et al. 2015, threshold 0.01) use the first ``mi_rows``/``au_rows`` test sentences.
    """
    from ..evaluation import active_units, mutual_information
    from ..models.text import TextVAE
    from ..nets.text import sentence_lengths
    from ..pipeline import eval_data

    run_dir = Path(run_dir)
    ev = json.loads((run_dir / "eval.json").read_text())
    run, _ = open_text_run(run_dir)
    x, _, _ = eval_data(run.config, ev["split"], torch.device("cpu"))
    n = ev["estimates"][next(iter(ev["estimates"]))]["n"]
    tokens = int(sentence_lengths(x[:n]).sum())
    out: dict[str, Any] = {"split": ev["split"], "sentences": n, "tokens": tokens, "epoch": ev["epoch"]}
    for key, r in ev["estimates"].items():
        out[key] = {"nll": -r["mean"], "nll_se": r["stderr"], "ppl": math.exp(-r["mean"] * n / tokens)}
    if isinstance(run.model, TextVAE):
        m = run.model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            kl = torch.cat([m(x[i:i + 100]).kl for i in range(0, n, 100)])
            out["kl"], out["kl_se"] = float(kl.mean()), float(kl.std() / math.sqrt(kl.shape[0]))
            mi = mutual_information(m, x[:mi_rows], batch_size=250)
        out["mutual_information"], out["mutual_information_se"] = mi["mutual_information"], mi["mutual_information_se"]
        out["mi_rows"] = mi["n"]
        out["active_units"] = active_units(m, x[:au_rows], batch_size=250)
        out["latent_dim"] = m.latent_dim
    return out


@torch.no_grad()
def impute_text(run_dir: str | Path, sentence: str, beam: int = 5, free_tail: bool = False,
                checkpoint: str = "best", lowercase: bool = True) -> str:
    """``sentence`` with each ``___`` replaced by the run's imputation (:func:`vaekit.models.text.impute`).

    With ``free_tail`` the blanks must end the sentence and the model continues it freely (any length).

    Raises:
        ValueError: no ``___`` in the sentence, only blanks, or the errors of :func:`impute`.
    """
    from ..models.text import impute

    words = (sentence.lower() if lowercase else sentence).split()
    if BLANK not in words:
        raise ValueError(f"sentence {sentence!r} has no {BLANK} to fill in (mark each missing word with {BLANK})")
    run, vocab = open_text_run(run_dir, checkpoint)
    observed = [w for w in words if w != BLANK]
    if not observed:
        raise ValueError(f"sentence {sentence!r} has only blanks: nothing to condition on")
    # the blanks get any in-vocabulary word (their ids are never read); encode_text reports unseen words
    x = encode_text(vocab, [" ".join(observed[0] if w == BLANK else w for w in words)], lowercase=False)
    missing = torch.zeros_like(x, dtype=torch.bool)
    missing[0, [i for i, w in enumerate(words) if w == BLANK]] = True
    return _text(vocab, impute(run.model.eval(), x, missing, beam=beam, free_tail=free_tail))[0]


@torch.no_grad()
def imputation_benchmark(run_dirs: list[str | Path], n: int = 500, fraction: float = 0.2, beam: int = 5,
                         seed: int = 0, split: str = "test", min_words: int = 5, folds: int = 5) -> dict[str, Any]:
    r"""Bowman et al. (2016, Sec. 5.2)'s imputation test on held-out sentences, for every run in ``run_dirs``.

    ``n`` sentences of at least ``min_words`` words are drawn by ``seed``; the last
    :math:`\lceil \text{fraction} \cdot n_\text{words}\rceil` words of each are removed and imputed by each run
    (:func:`vaekit.models.text.impute`, their number kept, beam ``beam``). Reported per run:

    * ``word_accuracy``: the fraction of imputed words equal to the removed ones (± binomial s.e.);
    * ``adversary_accuracy``: Bowman's adversarial test, here a bag-of-unigrams logistic regression
      (scikit-learn) told to separate the imputed sentences from the real ones, ``folds``-fold cross-validated
      accuracy (± s.e. over folds); 0.5 means the imputations cannot be told apart, lower is better.

    All runs must share a vocabulary (they are scored on the same token rows). Raises ``ValueError`` otherwise.
    """
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from ..models.text import impute
    from ..nets.text import PAD_ID, sentence_lengths
    from ..pipeline import eval_data

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    runs = [open_text_run(r) for r in run_dirs]
    vocab = runs[0][1]
    for (_, v), d in zip(runs, run_dirs):
        if v.itos != vocab.itos:
            raise ValueError(f"{d}: its vocabulary differs from {run_dirs[0]}'s; imputations must be compared on "
                             "the same token rows")
    x, _, _ = eval_data(runs[0][0].config, split, torch.device("cpu"))
    words = sentence_lengths(x) - 1
    ok = (words >= min_words).nonzero().flatten()
    g = torch.Generator().manual_seed(seed)
    pick = ok[torch.randperm(ok.shape[0], generator=g)[:n]]
    x, words = x[pick], words[pick]
    x = x[:, : int(words.max()) + 1]
    k = torch.ceil(words.double() * fraction).long()
    pos = torch.arange(x.shape[1])
    missing = (pos.unsqueeze(0) >= (words - k).unsqueeze(1)) & (pos.unsqueeze(0) < words.unsqueeze(1))
    real = _text(vocab, x)
    out: dict[str, Any] = {"n": int(x.shape[0]), "fraction": fraction, "beam": beam, "seed": seed, "split": split,
                           "imputed_words": int(missing.sum()), "runs": {}}
    for (run, _), d in zip(runs, run_dirs):
        t0 = time.perf_counter()
        rows = torch.full_like(x, PAD_ID)
        for i in range(0, x.shape[0], 50):
            r = impute(run.model.eval(), x[i:i + 50], missing[i:i + 50], beam=beam)
            rows[i:i + 50, : r.shape[1]] = r  # the word count is kept, so r is never wider than x
        hit = (rows == x)[missing].double()
        fake = _text(vocab, rows)
        texts, labels = real + fake, np.r_[np.zeros(len(real)), np.ones(len(fake))]
        feats = CountVectorizer(token_pattern=r"\S+").fit_transform(texts)
        acc = cross_val_score(LogisticRegression(max_iter=2000), feats, labels,
                              cv=folds)
        out["runs"][Path(d).name] = {
            "word_accuracy": float(hit.mean()), "word_accuracy_se": float(math.sqrt(hit.mean() * (1 - hit.mean()) / hit.numel())),
            "adversary_accuracy": float(acc.mean()), "adversary_accuracy_se": float(acc.std(ddof=1) / math.sqrt(folds)),
            "seconds": round(time.perf_counter() - t0, 1),
            "examples": [{"real": real[i], "imputed": fake[i]} for i in range(min(5, len(real)))]}
    return out
