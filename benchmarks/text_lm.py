"""Tokens per second of vaekit's LSTM language model and sentence VAE against a hand-written PyTorch loop (issue 14).

Every variant runs in its own process (so its peak resident memory is its own) on the same length-bucketed PTB
batches, with one thread, alternating variants over ``--repeats`` rounds; the median is reported:

* ``hand_train``: ``nn.Embedding`` + ``nn.LSTM`` + ``nn.Linear``, ``cross_entropy(ignore_index=<pad>)`` summed per
  sentence, Adam: the loop one would write by hand.
* ``vaekit_train``: ``build_model({type: text_lm, ...})`` of the same sizes, trained by vaekit's ELBO objective
  (``objective(model, x, step)``, what ``vaekit train`` calls) and Adam.
* ``hand_eval`` / ``vaekit_eval``: the exact log-likelihood of test batches without gradients.
* ``vaekit_vae_train`` / ``vaekit_vae_iwae``: the sentence VAE (Gaussian z) trained by the ELBO, and its IWAE-10 bound
  (``vaekit.evaluation.iwae_estimate``) — no hand-written twin; listed for their cost.

Usage: ``python benchmarks/text_lm.py [--steps 40] [--repeats 3] [--out docs/results/text_lm_benchmark.json]``.
Tokens count ``<eos>`` and exclude padding.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

HIDDEN, EMBED, BATCH = 128, 128, 32


def _batches(split: str, n: int):
    import torch

    from vaekit.data import load_dataset
    from vaekit.data.text import bucket_batches

    ds = load_dataset("ptb", train_size=8000)
    s = getattr(ds, split)
    idx = list(bucket_batches(s.lengths, BATCH, torch.Generator().manual_seed(0)))[:n]
    return ds, [s.x[i][:, : int(s.lengths[i].max())] for i in idx]


def variant(name: str, steps: int) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    split = "test" if name in ("hand_eval", "vaekit_eval", "vaekit_vae_iwae") else "train"
    ds, xs = _batches(split, steps)
    v = len(ds.vocab)
    tokens = sum(int((x != 0).sum()) for x in xs)  # rows end at <eos>; after it only <pad> (id 0)
    if name.startswith("hand"):
        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb, self.rnn, self.out = nn.Embedding(v, EMBED), nn.LSTM(EMBED, HIDDEN, batch_first=True), nn.Linear(HIDDEN, v)

            def forward(self, x):
                inp = torch.cat([torch.full_like(x[:, :1], 2), x[:, :-1]], 1)
                h, _ = self.rnn(self.emb(inp))
                nll = nn.functional.cross_entropy(self.out(h).transpose(1, 2), x, ignore_index=0, reduction="none")
                return nll.sum(1)

        m = LM()
    else:
        from vaekit.models import build_model

        spec = {"type": "text_lm", "vocab_size": v, "embed_dim": EMBED, "decoder": {"hidden": HIDDEN}}
        if name.startswith("vaekit_vae"):
            spec = {"type": "text_vae", "vocab_size": v, "embed_dim": EMBED, "encoder": {"hidden": HIDDEN},
                    "decoder": {"hidden": HIDDEN}, "latent": {"type": "gaussian", "dim": 32}}
        m = build_model(spec, data_dim=xs[0].shape[1])
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    if name.endswith("train"):
        if name.startswith("hand"):
            def step(x, i):
                return m(x).mean()
        else:
            from vaekit.objectives import build_objective

            obj = build_objective({"type": "elbo"})

            def step(x, i):
                return obj(m, x, i)[0]
        for i, x in enumerate(xs[:3]):  # warm-up
            loss = step(x, i)
            opt.zero_grad(); loss.backward(); opt.step()
        t0 = time.perf_counter()
        for i, x in enumerate(xs):
            loss = step(x, i)
            opt.zero_grad(); loss.backward(); opt.step()
        dt = time.perf_counter() - t0
    else:
        m.eval()
        with torch.no_grad():
            if name == "vaekit_vae_iwae":
                from vaekit.evaluation import iwae_estimate

                def ev(x):
                    return iwae_estimate(m, x, 10)
                tokens *= 10  # ten decoder passes per sentence
            elif name.startswith("hand"):
                def ev(x):
                    return -m(x)
            else:
                def ev(x):
                    return m.log_prob(x)
            ev(xs[0])
            t0 = time.perf_counter()
            for x in xs:
                ev(x)
            dt = time.perf_counter() - t0
    return {"variant": name, "tokens": tokens, "seconds": dt, "tokens_per_s": tokens / dt,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


VARIANTS = ("hand_train", "vaekit_train", "hand_eval", "vaekit_eval", "vaekit_vae_train", "vaekit_vae_iwae")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40, help="batches per measurement (default: 40)")
    p.add_argument("--repeats", type=int, default=3, help="rounds over the variants (default: 3)")
    p.add_argument("--out", default=None, help="JSON file for the results (default: print only)")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.variant:
        print(json.dumps(variant(a.variant, a.steps)))
        return
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(a.repeats):
        for v in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--variant", v, "--steps", str(a.steps)], check=True,
                                 capture_output=True, text=True).stdout
            runs[v].append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[v][-1]), flush=True)
    res = {v: {"tokens_per_s_median": statistics.median(x["tokens_per_s"] for x in rs),
               "tokens_per_s": [round(x["tokens_per_s"], 1) for x in rs],
               "peak_rss_mb": max(x["peak_rss_mb"] for x in rs)} for v, rs in runs.items()}
    res["ratio_train_vaekit_over_hand"] = res["vaekit_train"]["tokens_per_s_median"] / res["hand_train"]["tokens_per_s_median"]
    res["ratio_eval_vaekit_over_hand"] = res["vaekit_eval"]["tokens_per_s_median"] / res["hand_eval"]["tokens_per_s_median"]
    res["settings"] = {"hidden": HIDDEN, "embed": EMBED, "batch": BATCH, "steps": a.steps, "repeats": a.repeats,
                       "threads": 1, "data": "PTB, length-bucketed batches"}
    print(json.dumps(res))  # one line: the figures, the last line of the output
    if a.out:
        from vaekit.train.outputs import write_output

        write_output(a.out, json.dumps(res, indent=1) + "\n", payload=res)


if __name__ == "__main__":
    main()
