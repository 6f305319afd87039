"""An independent MNIST classifier, and the check it serves: do label-conditioned samples show the digit asked for?

Issue 13 asks that a conditional VAE's samples for label ``c`` be classified as ``c`` at least 90% of the time,
for each digit, by a classifier that shares nothing with vaekit's models. This script trains that classifier
(a small LeNet-style CNN: conv 5x5x32, max-pool, conv 5x5x64, max-pool, 1024-128-10, ReLU, dropout 0.25 before
the head; Adam 1e-3, batch 128, MNIST's 60,000 grey-level training images), reports its test accuracy on
MNIST's 10,000 test images, and saves it (safetensors) so that the scoring mode can use it:

    python benchmarks/mnist_classifier.py train --out runs/classifier --epochs 3 --threads 1
    python benchmarks/mnist_classifier.py score runs/conditional/cvae_label --classifier runs/classifier --n 1000

``score`` loads a conditional run (of ``python -m vaekit.reproduce.conditional`` or of ``vaekit train --config
configs/conditional/cvae_label_mnist.yaml``), draws ``n`` samples per digit with
``model.sample(n, label=c)`` (Bernoulli means, i.e. grey levels, as the classifier was trained on) and prints
the fraction classified as ``c`` per digit with its binomial standard error. Each mode prints one JSON object
on its last line and writes it to ``--json`` when given.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from vaekit.train.outputs import write_output


class SmallCNN(nn.Module):
    """``(B, 784)`` grey levels in [0, 1] -> ``(B, 10)`` logits."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 5, padding=2)
        self.c2 = nn.Conv2d(32, 64, 5, padding=2)
        self.f1 = nn.Linear(64 * 7 * 7, 128)
        self.f2 = nn.Linear(128, 10)
        self.drop = nn.Dropout(0.25)

    def forward(self, x: Tensor) -> Tensor:
        h = x.view(-1, 1, 28, 28)
        h = F.max_pool2d(F.relu(self.c1(h)), 2)
        h = F.max_pool2d(F.relu(self.c2(h)), 2)
        return self.f2(self.drop(F.relu(self.f1(h.flatten(1)))))


def _mnist(data_dir: str | None):
    from vaekit.data import load_dataset
    return load_dataset("mnist", data_dir=data_dir)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch: int = 1000) -> Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def load_classifier(folder: str | Path) -> SmallCNN:
    from safetensors.torch import load_file
    path = Path(folder) / "cnn.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no classifier at {path}; train one with: python {sys.argv[0]} train --out {folder}")
    model = SmallCNN()
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def train(args: argparse.Namespace) -> dict:
    from safetensors.torch import save_file
    ds = _mnist(args.data_dir)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(ds.train.x), generator=g).split(128):
            loss = F.cross_entropy(model(ds.train.x[idx]), ds.train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = float((predict(model, ds.test.x) == ds.test.y).double().mean())
        history.append({"epoch": epoch + 1, "test_accuracy": acc, "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(history[-1]), file=sys.stderr, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(out / "cnn.safetensors"))
    acc = history[-1]["test_accuracy"]
    return {"mode": "train", "epochs": args.epochs, "seed": args.seed, "threads": torch.get_num_threads(),
            "test_accuracy": acc, "test_accuracy_se": math.sqrt(acc * (1 - acc) / len(ds.test.y)),
            "n_test": len(ds.test.y), "history": history, "train_seconds": history[-1]["seconds"],
            "classifier": str(out / "cnn.safetensors")}


def _load_conditional(run: str) -> nn.Module:
    """The model of a run of ``python -m vaekit.reproduce.conditional`` or of ``vaekit train`` (best checkpoint)."""
    from vaekit.pipeline.conditional import is_steps_run
    if is_steps_run(run):
        from vaekit.reproduce.conditional import load
        return load(run)
    from vaekit.train import load_run
    return load_run(run, "best").model.eval()


def score(args: argparse.Namespace) -> dict:
    clf = load_classifier(args.classifier)
    model = _load_conditional(args.run)
    torch.manual_seed(args.seed)
    per_digit = {}
    for c in range(10):
        x = model.sample(args.n, label=torch.full((args.n,), c, dtype=torch.long))
        p = float((predict(clf, x.float()) == c).double().mean())
        per_digit[str(c)] = {"accuracy": p, "se": math.sqrt(p * (1 - p) / args.n)}
    worst = min(v["accuracy"] for v in per_digit.values())
    return {"mode": "score", "run": str(args.run), "n_per_digit": args.n, "seed": args.seed,
            "per_digit": per_digit, "min_accuracy": worst,
            "mean_accuracy": sum(v["accuracy"] for v in per_digit.values()) / 10}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train", help="train the CNN on MNIST's training set and report its test accuracy")
    t.add_argument("--out", default="runs/classifier")
    t.add_argument("--epochs", type=int, default=3)
    s = sub.add_parser("score", help="classify a conditional run's samples for each requested digit")
    s.add_argument("run")
    s.add_argument("--classifier", default="runs/classifier")
    s.add_argument("--n", type=int, default=1000, help="samples per digit")
    for p in (t, s):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--data-dir", default=None)
        p.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = train(args) if args.mode == "train" else score(args)
    text = json.dumps(res)
    print(text)  # first: the figures reach the terminal even if the write fails
    if args.json:
        write_output(args.json, text + "\n", payload=res)
    return res


if __name__ == "__main__":
    main()
