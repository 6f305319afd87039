"""Text data: a vocabulary, sentences as padded index tensors, length-bucketed batches (issue 14).

A sentence is a line of whitespace-separated tokens. It is stored as one row of a ``(N, T)`` int64 tensor:
its token ids, then ``<eos>``, then ``<pad>`` up to the split's longest sentence (``T = longest + 1``). A row
ends at its first ``<eos>``; whatever follows is padding and never reaches a likelihood (the models mask
it). The decoder's input is ``<bos>`` followed by the row shifted right; the models add ``<bos>`` themselves.

Policies, all explicit:

* the vocabulary is built from the **training split only** (``<pad> <unk> <bos> <eos>`` first, then words by
  descending count, ties alphabetical, optionally cut by ``max_vocab``/``min_count``) and written into a
  run directory as ``vocab.json`` (:meth:`Vocabulary.save`);
* a token of a validation/test split (or of a user's sentence) that the vocabulary lacks becomes ``<unk>``;
  the count is kept (:attr:`TextSplit.n_unseen`), and a sentence whose every token is unseen raises
  (``all_unknown="error"``, the default) since it says nothing but its length;
* an empty line is an error naming the file and line (``empty_lines="error"``) or is skipped
  (``"skip"``); a missing or empty file is an error naming it and every folder searched;
* a sentence longer than ``max_len`` tokens is an error, dropped or truncated (``over_length``);
* a label outside ``[0, num_classes)`` or not an integer is an error naming the file and line.

Loaders registered in :data:`vaekit.data.DATASETS`: ``ptb`` (Mikolov's Penn Treebank, 42,068 / 3,370 /
3,761 sentences), ``mr``, ``trec``, ``sst2``, ``short_yelp`` (labelled) and ``text`` (a user's files).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import torch
from torch import Tensor

from ..nets.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, sentence_lengths
from .base import DATASETS

__all__ = ["PAD", "UNK", "BOS", "EOS", "SPECIALS", "Vocabulary", "TextSplit", "TextDataset", "TextDataError",
           "read_lines", "bucket_batches", "load_text", "encode_sentences", "sentence_lengths"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
#: the special tokens and their fixed ids 0..3
SPECIALS = (PAD, UNK, BOS, EOS)


class TextDataError(ValueError):
    """A text file cannot be used as asked; the message names the file (and line)."""


class Vocabulary:
    """Token <-> id map with ``<pad>=0, <unk>=1, <bos>=2, <eos>=3``.

    Args:
        tokens: the ordinary tokens in id order (ids start at 4); ``<unk>`` in the list is ignored (PTB writes
            rare words as a literal ``<unk>``, which maps to the special id).

    Raises:
        ValueError: a token repeats, is empty, holds whitespace, or is one of ``<pad> <bos> <eos>``.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        itos = list(SPECIALS)
        seen = set(itos)
        for t in tokens:
            if t == UNK:
                continue
            if not isinstance(t, str) or not t or any(c.isspace() for c in t):
                raise ValueError(f"vocabulary token {t!r}: must be a non-empty string without whitespace")
            if t in seen:
                raise ValueError(f"vocabulary token {t!r} is reserved or appears twice")
            seen.add(t)
            itos.append(t)
        self.itos = itos
        self.stoi = {t: i for i, t in enumerate(itos)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], max_vocab: int | None = None, min_count: int = 1) -> "Vocabulary":
        """From tokenised training sentences: words by descending count (ties alphabetical), those seen at least
        ``min_count`` times, at most ``max_vocab`` of them (specials not counted)."""
        counts = Counter(t for s in sentences for t in s if t not in SPECIALS)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(words if max_vocab is None else words[:max_vocab])

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; a token not in the vocabulary becomes ``<unk>`` (id 1)."""
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Sequence[int] | Tensor, stop_at_eos: bool = True) -> list[str]:
        """Tokens of ``ids``, without ``<bos>``/``<pad>``, cut at the first ``<eos>`` when ``stop_at_eos``.

        Raises:
            ValueError: an id outside ``[0, len(self))``.
        """
        out = []
        for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
            if not 0 <= int(i) < len(self.itos):
                raise ValueError(f"token id {i} is outside the vocabulary of {len(self.itos)} tokens")
            if i == EOS_ID and stop_at_eos:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            out.append(self.itos[int(i)])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": "vaekit-vocabulary-1", "specials": list(SPECIALS), "tokens": self.itos[len(SPECIALS):]}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` (JSON; a folder gets ``vocab.json`` in it) atomically and return the file's path."""
        p = Path(path)
        if p.is_dir():
            p = p / "vocab.json"
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Vocabulary":
        """Read a file written by :meth:`save` (a folder: its ``vocab.json``).

        Raises:
            FileNotFoundError: naming the file; ValueError: not a vocabulary file, naming it.
        """
        p = Path(path)
        if p.is_dir():
            p = p / "vocab.json"
        if not p.is_file():
            raise FileNotFoundError(f"no vocabulary file {p} (a text run writes vocab.json into its run directory)")
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: not a vocabulary file ({e})") from None
        if not isinstance(raw, dict) or raw.get("format") != "vaekit-vocabulary-1" or raw.get("specials") != list(SPECIALS):
            raise ValueError(f"{p}: not a vaekit vocabulary file (format vaekit-vocabulary-1 with specials {SPECIALS})")
        return cls(raw["tokens"])


@dataclass
class TextSplit:
    """One split of a text data set.

    Attributes:
        x: ``(N, T)`` int64 token ids, each row ``w_1 .. w_n <eos> <pad> ..`` (see the module docstring).
        y: ``(N,)`` int64 labels or None.
        n_unseen: tokens of this split mapped to ``<unk>`` because the vocabulary lacks them (not counting a
            literal ``<unk>`` in the file).
        source: the file(s) the split came from (for messages).
    """

    x: Tensor
    y: Tensor | None = None
    n_unseen: int = 0
    source: str = ""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def lengths(self) -> Tensor:
        """``(N,)`` tokens per sentence including ``<eos>``."""
        return sentence_lengths(self.x)

    @property
    def n_tokens(self) -> int:
        """Tokens of the split including one ``<eos>`` per sentence (the perplexity denominator)."""
        return int(self.lengths.sum())


@dataclass
class TextDataset:
    """A text data set: splits of padded index tensors and the training split's vocabulary.

    It quacks like :class:`vaekit.data.Dataset` for the trainer (``train``/``val``/``test`` with ``x`` and
    ``y``, ``dim``, ``image_shape`` None, ``binary`` True so nothing is binarised) and adds what text needs:
    ``vocab``, :meth:`batch_indices` (length buckets), :attr:`model_fields` (the model's ``vocab_size``) and
    :meth:`save_with_run` (``vocab.json``).
    """

    name: str
    train: TextSplit
    val: TextSplit | None
    test: TextSplit
    vocab: Vocabulary
    num_classes: int | None = None
    image_shape: None = None
    binary: bool = True
    bucket: int = 50

    @property
    def dim(self) -> int:
        """Row width ``T`` of the training split (longest training sentence + ``<eos>``)."""
        return int(self.train.x.shape[1])

    @property
    def model_fields(self) -> dict[str, int]:
        """Model keys the data decide: ``vocab_size`` (and ``num_classes`` for labelled sets)."""
        out = {"vocab_size": len(self.vocab)}
        if self.num_classes is not None:
            out["num_classes"] = self.num_classes
        return out

    def save_with_run(self, run_dir: str | os.PathLike[str]) -> None:
        """Write the vocabulary into ``run_dir/vocab.json``."""
        self.vocab.save(Path(run_dir) / "vocab.json")

    def batch_indices(self, n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
        """Length-bucketed batches of the training split (see :func:`bucket_batches`)."""
        if n != len(self.train):
            raise ValueError(f"{self.name}: asked for batches of {n} rows, the training split has {len(self.train)}")
        return bucket_batches(self.train.lengths, batch_size, generator, bucket=self.bucket)


def bucket_batches(lengths: Tensor, batch_size: int, generator: torch.Generator | None,
                   bucket: int = 50) -> Iterator[Tensor]:
    """Index batches of similar lengths, in a random order, covering every row once.

    The rows are shuffled, cut into chunks of ``bucket * batch_size`` rows, each chunk is sorted by length and
    cut into batches of ``batch_size``, and the batches are shuffled. Every batch but possibly the last of the
    epoch has ``batch_size`` rows, so an epoch has ``ceil(N / batch_size)`` batches (as with
    :func:`vaekit.data.batch_indices`). Padding per batch is then small: on PTB (batch 32, ``bucket`` 50) 3.8 % of the
    positions of the batch tensors are padding, against 53 % for random batches.

    Raises:
        ValueError: ``batch_size`` or ``bucket`` below 1.
    """
    if batch_size < 1 or bucket < 1:
        raise ValueError(f"batch_size and bucket must be >= 1, got {batch_size}, {bucket}")
    n = lengths.shape[0]
    perm = torch.randperm(n, generator=generator)
    chunk = bucket * batch_size
    batches: list[Tensor] = []
    for s in range(0, n, chunk):
        idx = perm[s:s + chunk]
        idx = idx[torch.sort(lengths[idx], stable=True).indices]
        batches.extend(idx[i:i + batch_size] for i in range(0, idx.shape[0], batch_size))
    # a short batch can only be the very last one: keep it last so every other batch is full
    full = [b for b in batches if b.shape[0] == batch_size]
    short = [b for b in batches if b.shape[0] != batch_size]
    order = torch.randperm(len(full), generator=generator)
    for i in order.tolist():
        yield full[i]
    yield from short


# ---------------------------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------------------------


def read_lines(path: Path, *, empty_lines: Literal["error", "skip"] = "error") -> list[tuple[int, str]]:
    """``(line number, text)`` of the non-empty lines of a UTF-8 file, stripped.

    Raises:
        FileNotFoundError: no such file; TextDataError: not UTF-8, no non-empty line, or (``empty_lines="error"``)
            an empty line, naming the file and line.
    """
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TextDataError(f"{path}: not UTF-8 text ({e})") from None
    out = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            if empty_lines == "error":
                raise TextDataError(f"{path}:{i}: empty line (set empty_lines: skip to drop empty lines)")
            continue
        out.append((i, s))
    if not out:
        raise TextDataError(f"{path}: no sentences (the file is empty)")
    return out


@dataclass
class _Raw:
    """Tokenised sentences of one split with where each came from."""

    tokens: list[list[str]] = field(default_factory=list)
    labels: list[int] | None = None
    where: list[str] = field(default_factory=list)
    source: str = ""


def _tokenise(lines: list[tuple[int, str]], path: Path, lowercase: bool, label: Literal["none", "first", "tab", "trec"],
              num_classes: int | None, label_map: dict[str, int] | None = None) -> _Raw:
    raw = _Raw(labels=None if label == "none" else [], source=str(path))
    for i, s in lines:
        lab = None
        if label == "tab":
            if "\t" not in s:
                raise TextDataError(f"{path}:{i}: expected 'label<TAB>sentence', found no tab")
            lab, s = s.split("\t", 1)
        elif label == "first":
            parts = s.split(None, 1)
            if len(parts) < 2:
                raise TextDataError(f"{path}:{i}: expected 'label sentence', found only {s!r}")
            lab, s = parts
        elif label == "trec":
            parts = s.split(None, 1)
            if len(parts) < 2 or ":" not in parts[0]:
                raise TextDataError(f"{path}:{i}: expected 'COARSE:fine question', found {s!r}")
            lab, s = parts[0].split(":", 1)[0], parts[1]
        if lab is not None:
            if label_map is not None:
                if lab not in label_map:
                    raise TextDataError(f"{path}:{i}: label {lab!r} is not one of {sorted(label_map)}")
                y = label_map[lab]
            else:
                try:
                    y = int(lab)
                except ValueError:
                    raise TextDataError(f"{path}:{i}: label {lab!r} is not an integer") from None
            if num_classes is not None and not 0 <= y < num_classes:
                raise TextDataError(f"{path}:{i}: label {y} is out of range [0, {num_classes}) "
                                    f"(num_classes={num_classes})")
            raw.labels.append(y)  # type: ignore[union-attr]
        toks = (s.lower() if lowercase else s).split()
        if not toks:
            raise TextDataError(f"{path}:{i}: no tokens after the label")
        raw.tokens.append(toks)
        raw.where.append(f"{path}:{i}")
    return raw


def encode_sentences(sentences: Sequence[Sequence[str]], vocab: Vocabulary, *, where: Sequence[str] | None = None,
                     all_unknown: Literal["error", "keep"] = "keep", width: int | None = None) -> tuple[Tensor, int]:
    """``(N, T)`` int64 rows ``ids <eos> <pad>..`` and the number of tokens mapped to ``<unk>`` because unseen.

    ``T`` is the longest sentence + 1, or ``width`` (which must fit every sentence).

    Raises:
        TextDataError: a sentence with no token, one whose every token is unseen (``all_unknown="error"``), or
            one longer than ``width - 1``, naming ``where[i]`` (``file:line``) when given.
    """
    n_unseen = 0
    rows = []
    for i, s in enumerate(sentences):
        name = where[i] if where is not None else f"sentence {i}"
        if len(s) == 0:
            raise TextDataError(f"{name}: empty sentence")
        ids = vocab.encode(s)
        unseen = sum(1 for t, j in zip(s, ids) if j == UNK_ID and t != UNK)
        if unseen == len(s) and all_unknown == "error":
            raise TextDataError(f"{name}: every token of {' '.join(s)[:80]!r} is outside the vocabulary of the "
                                "training split (all_unknown: keep maps them to <unk> and keeps the sentence)")
        n_unseen += unseen
        rows.append(ids + [EOS_ID])
    t = max(len(r) for r in rows) if width is None else width
    x = torch.full((len(rows), t), PAD_ID, dtype=torch.int64)
    for i, r in enumerate(rows):
        if len(r) > t:
            name = where[i] if where is not None else f"sentence {i}"
            raise TextDataError(f"{name}: {len(r) - 1} tokens do not fit rows of width {t} (at most {t - 1} tokens)")
        x[i, :len(r)] = torch.tensor(r, dtype=torch.int64)
    return x, n_unseen


def _limit(raw: _Raw, max_len: int | None, over_length: Literal["error", "drop", "truncate"]) -> _Raw:
    if max_len is None:
        return raw
    keep = []
    for i, s in enumerate(raw.tokens):
        if len(s) <= max_len:
            keep.append(i)
        elif over_length == "error":
            raise TextDataError(f"{raw.where[i]}: {len(s)} tokens, more than data.options.max_len={max_len} "
                                "(data.options.over_length: drop or truncate)")
        elif over_length == "truncate":
            raw.tokens[i] = s[:max_len]
            keep.append(i)
    return _Raw([raw.tokens[i] for i in keep], None if raw.labels is None else [raw.labels[i] for i in keep],
                [raw.where[i] for i in keep], raw.source)


def _split(raw: _Raw, vocab: Vocabulary, all_unknown: Literal["error", "keep"]) -> TextSplit:
    x, unseen = encode_sentences(raw.tokens, vocab, where=raw.where, all_unknown=all_unknown)
    y = None if raw.labels is None else torch.tensor(raw.labels, dtype=torch.int64)
    return TextSplit(x, y, unseen, raw.source)


def _subset(raw: _Raw, idx: Sequence[int]) -> _Raw:
    return _Raw([raw.tokens[i] for i in idx], None if raw.labels is None else [raw.labels[i] for i in idx],
                [raw.where[i] for i in idx], raw.source)


def _concat(a: _Raw, b: _Raw) -> _Raw:
    labels = None if a.labels is None or b.labels is None else a.labels + b.labels
    return _Raw(a.tokens + b.tokens, labels, a.where + b.where, f"{a.source}, {b.source}")


def load_text(name: str, train: _Raw, val: _Raw | None, test: _Raw, *, max_vocab: int | None = None,
              min_count: int = 1, max_len: int | None = None,
              over_length: Literal["error", "drop", "truncate"] = "error",
              all_unknown: Literal["error", "keep"] = "error", num_classes: int | None = None,
              vocab: Vocabulary | None = None) -> TextDataset:
    """Assemble a :class:`TextDataset` from tokenised splits (the vocabulary from ``train`` unless given)."""
    train, test = _limit(train, max_len, over_length), _limit(test, max_len, over_length)
    val = None if val is None else _limit(val, max_len, over_length)
    if not train.tokens:
        raise TextDataError(f"{name}: the training split ({train.source}) is empty" if max_len is None else
                            f"{name}: the training split ({train.source}) has no sentence of at most {max_len} tokens")
    vocab = vocab or Vocabulary.build(train.tokens, max_vocab=max_vocab, min_count=min_count)
    # the training split itself never errs on unknown tokens (max_vocab/min_count map rare ones to <unk> on purpose)
    return TextDataset(name, _split(train, vocab, "keep"), None if val is None else _split(val, vocab, all_unknown),
                       _split(test, vocab, all_unknown), vocab, num_classes)


def _find(name: str, data_dir: str | os.PathLike[str] | None, files: Sequence[str]) -> Path:
    from .base import data_dir_for

    return data_dir_for(name, data_dir, files=files, defaults=(f"../shared/data/{name}", f"~/.cache/vaekit/{name}"))


def _seeded_split(raw: _Raw, sizes: Sequence[int], seed: int, names: Sequence[str] = ("val_size",)) -> list[_Raw]:
    """The splits of ``sizes`` sentences drawn by ``seed``, then the rest (the training split). Raises
    ``TextDataError`` naming the options (``names``) when they would leave no training sentence, rather than
    returning short or empty splits."""
    if sum(sizes) >= len(raw.tokens):
        asked = ", ".join(f"{k} = {n}" for k, n in zip(names, sizes))
        raise TextDataError(f"{raw.source}: {len(raw.tokens)} sentences; {asked} would leave no training sentence")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(raw.tokens), generator=g).tolist()
    out, s = [], 0
    for n in sizes:
        out.append(_subset(raw, perm[s:s + n]))
        s += n
    out.append(_subset(raw, perm[s:]))
    return out


@DATASETS.register("ptb")
def load_ptb(data_dir: str | os.PathLike[str] | None = None, val_size: int | None = None, seed: int = 0,
             max_vocab: int | None = None, min_count: int = 1, max_len: int | None = None,
             over_length: Literal["error", "drop", "truncate"] = "error",
             empty_lines: Literal["error", "skip"] = "error", all_unknown: Literal["error", "keep"] = "error",
             train_size: int | None = None) -> TextDataset:
    """Mikolov's Penn Treebank (``ptb.train.txt``/``ptb.valid.txt``/``ptb.test.txt``: 42,068 / 3,370 / 3,761
    sentences, 887,521 / 70,390 / 78,669 words; 9,999 words + ``<unk>`` in the files, so 10,002 ids here).

    Args:
        val_size: None or any value > 0 uses ``ptb.valid.txt`` (the official split); 0 drops it.
        max_vocab, min_count: cut the vocabulary (default: every training word).
        max_len, over_length: the longest sentence kept (tokens, ``<eos>`` not counted) and what a longer one
            does: ``error``, ``drop`` or ``truncate``.
        empty_lines: ``error`` (naming file and line) or ``skip``.
        all_unknown: a validation/test sentence whose every token is unseen in training: ``error`` or ``keep``.
        train_size: train on the first ``train_size`` training sentences (a CPU budget; None: all); the vocabulary
            is still that of the whole training file.
        seed: unused (the split is official).

    Raises:
        FileNotFoundError: the files are not in any folder searched (named, with the folders);
        TextDataError: as in the module docstring.
    """
    root = _find("ptb", data_dir, ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"))
    raws = [_tokenise(read_lines(root / f, empty_lines=empty_lines), root / f, False, "none", None)
            for f in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")]
    if train_size is not None:
        if train_size < 1:
            raise ValueError(f"data.options.train_size: must be >= 1 or null, got {train_size}")
    # the vocabulary is the whole training file's (PTB's fixed 10k words) also when training on a prefix of it
    vocab = Vocabulary.build(raws[0].tokens, max_vocab=max_vocab, min_count=min_count)
    if train_size is not None:
        raws[0] = _subset(raws[0], range(min(train_size, len(raws[0].tokens))))
    return load_text("ptb", raws[0], None if val_size == 0 else raws[1], raws[2], max_len=max_len,
                     over_length=over_length, all_unknown=all_unknown, vocab=vocab)


def _labelled(name: str, train: _Raw, val: _Raw | None, test: _Raw, num_classes: int, val_size: int | None, seed: int,
              opts: dict[str, Any]) -> TextDataset:
    if val is None and val_size:
        val, train = _seeded_split(train, [val_size], seed)
    return load_text(name, train, val, test, num_classes=num_classes, **opts)


def _opts(max_vocab: int | None, min_count: int, max_len: int | None, over_length: str, all_unknown: str) -> dict[str, Any]:
    return {"max_vocab": max_vocab, "min_count": min_count, "max_len": max_len, "over_length": over_length,
            "all_unknown": all_unknown}


@DATASETS.register("mr")
def load_mr(data_dir: str | os.PathLike[str] | None = None, val_size: int | None = None, seed: int = 0,
            max_vocab: int | None = None, min_count: int = 1, max_len: int | None = None,
            over_length: Literal["error", "drop", "truncate"] = "error",
            all_unknown: Literal["error", "keep"] = "keep", test_size: int = 1066) -> TextDataset:
    """MR sentence polarity (Pang & Lee 2005; 5,331 positive = label 1, 5,331 negative = 0), lower-cased. The
    corpus has no split: ``test_size`` (default 10 %) and then ``val_size`` (default 0) sentences are drawn by
    ``seed``. Other options as :func:`load_ptb` (``all_unknown`` defaults to ``keep``: short snippets of rare
    words are common here)."""
    root = _find("mr", data_dir, ("rt-polarity.pos", "rt-polarity.neg"))
    pos = _tokenise(read_lines(root / "rt-polarity.pos", empty_lines="skip"), root / "rt-polarity.pos", True, "none", None)
    neg = _tokenise(read_lines(root / "rt-polarity.neg", empty_lines="skip"), root / "rt-polarity.neg", True, "none", None)
    pos.labels, neg.labels = [1] * len(pos.tokens), [0] * len(neg.tokens)
    test, rest = _seeded_split(_concat(pos, neg), [test_size], seed, ("test_size",))
    return _labelled("mr", rest, None, test, 2, val_size, seed, _opts(max_vocab, min_count, max_len, over_length, all_unknown))


_TREC = {"ABBR": 0, "DESC": 1, "ENTY": 2, "HUM": 3, "LOC": 4, "NUM": 5}


@DATASETS.register("trec")
def load_trec(data_dir: str | os.PathLike[str] | None = None, val_size: int | None = None, seed: int = 0,
              max_vocab: int | None = None, min_count: int = 1, max_len: int | None = None,
              over_length: Literal["error", "drop", "truncate"] = "error",
              all_unknown: Literal["error", "keep"] = "keep") -> TextDataset:
    """TREC questions (Li & Roth 2002), 6 coarse classes ``ABBR DESC ENTY HUM LOC NUM`` = 0..5, 5,452 train /
    500 test, lower-cased; ``val_size`` rows of the training file are held out by ``seed``."""
    root = _find("trec", data_dir, ("train_5500.label", "TREC_10.label"))
    # the files are Latin-1 in places in some copies; this copy is UTF-8 (see its README)
    tr = _tokenise(read_lines(root / "train_5500.label"), root / "train_5500.label", True, "trec", 6, _TREC)
    te = _tokenise(read_lines(root / "TREC_10.label"), root / "TREC_10.label", True, "trec", 6, _TREC)
    return _labelled("trec", tr, None, te, 6, val_size, seed, _opts(max_vocab, min_count, max_len, over_length, all_unknown))


@DATASETS.register("sst2")
def load_sst2(data_dir: str | os.PathLike[str] | None = None, val_size: int | None = None, seed: int = 0,
              max_vocab: int | None = None, min_count: int = 1, max_len: int | None = None,
              over_length: Literal["error", "drop", "truncate"] = "error",
              all_unknown: Literal["error", "keep"] = "keep") -> TextDataset:
    """SST-2 at sentence level (Kim 2014's ``stsa.binary.{train,dev,test}``: 6,920 / 872 / 1,821, ``label sentence``,
    1 = positive); ``val_size`` 0 drops the dev file, anything else keeps it."""
    root = _find("sst2", data_dir, ("stsa.binary.train", "stsa.binary.dev", "stsa.binary.test"))
    raws = [_tokenise(read_lines(root / f), root / f, True, "first", 2)
            for f in ("stsa.binary.train", "stsa.binary.dev", "stsa.binary.test")]
    return load_text("sst2", raws[0], None if val_size == 0 else raws[1], raws[2], num_classes=2,
                     **_opts(max_vocab, min_count, max_len, over_length, all_unknown))


@DATASETS.register("short_yelp")
def load_short_yelp(data_dir: str | os.PathLike[str] | None = None, val_size: int | None = None, seed: int = 0,
                    max_vocab: int | None = None, min_count: int = 1, max_len: int | None = None,
                    over_length: Literal["error", "drop", "truncate"] = "error",
                    all_unknown: Literal["error", "keep"] = "keep",
                    labelled: Literal[100, 500, 1000, 2000, 10000] = 10000) -> TextDataset:
    """Short Yelp (Li et al. 2019): ``short_yelp.train.<labelled>.txt`` for training (the full 100k set is not
    staged), ``short_yelp.valid.txt``, ``short_yelp.test.txt``; ``label<TAB>sentence``, 2 classes."""
    files = (f"short_yelp.train.{labelled}.txt", "short_yelp.valid.txt", "short_yelp.test.txt")
    root = _find("short_yelp", data_dir, files)
    raws = [_tokenise(read_lines(root / f), root / f, False, "tab", 2) for f in files]
    return load_text("short_yelp", raws[0], None if val_size == 0 else raws[1], raws[2], num_classes=2,
                     **_opts(max_vocab, min_count, max_len, over_length, all_unknown))


@DATASETS.register("text")
def load_user_text(data_dir: str | os.PathLike[str] | None = None, val_size: int | None = None, seed: int = 0,
                   train: str | None = None, val: str | None = None, test: str | None = None,
                   labels: Literal["none", "tab", "first"] = "none", num_classes: int | None = None,
                   lowercase: bool = False, max_vocab: int | None = None, min_count: int = 1,
                   max_len: int | None = None, over_length: Literal["error", "drop", "truncate"] = "error",
                   empty_lines: Literal["error", "skip"] = "error",
                   all_unknown: Literal["error", "keep"] = "error") -> TextDataset:
    """A user's files of one sentence per line (``data.options.train``, ``.val``, ``.test``; relative paths are
    taken under ``data_dir``). ``labels``: ``tab`` (``label<TAB>sentence``) or ``first`` (``label sentence``),
    integer labels in ``[0, num_classes)``. Without ``test``, a tenth of the training file (drawn by ``seed``)
    is the test split; without ``val``, ``val_size`` rows of it (default 0) are the validation split.

    Raises:
        ValueError: ``train`` missing, or labels without ``num_classes``; FileNotFoundError / TextDataError as
            in the module docstring, naming the file.
    """
    if train is None:
        raise ValueError("data.options.train: the training file of data set 'text' is required")
    if labels != "none" and num_classes is None:
        raise ValueError("data.options.num_classes: required with data.options.labels (labels are 0..num_classes-1)")

    def path(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() or data_dir is None else Path(data_dir) / q

    def read(p: str) -> _Raw:
        f = path(p)
        return _tokenise(read_lines(f, empty_lines=empty_lines), f, lowercase, labels, num_classes)

    tr = read(train)
    te = read(test) if test is not None else None
    if te is None:
        te, tr = _seeded_split(tr, [max(1, len(tr.tokens) // 10)], seed, ("the test split (10 %)",))
    va = read(val) if val is not None else None
    if va is None and val_size:
        va, tr = _seeded_split(tr, [val_size], seed + 1)
    return load_text("text", tr, va, te, max_vocab=max_vocab, min_count=min_count, max_len=max_len,
                     over_length=over_length, all_unknown=all_unknown, num_classes=num_classes)
