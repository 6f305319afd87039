"""Text VAEs (issue 14): vocabulary, files and their errors, batching, the masked likelihood, decoding, schedules."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from vaekit.data import load_dataset
from vaekit.data.text import (EOS, UNK, TextDataError, Vocabulary, bucket_batches, encode_sentences)
from vaekit.likelihoods.tokens import token_log_likelihood
from vaekit.models import build_model
from vaekit.models.text import beam_decode, decoder_inputs, greedy_decode, homotopy
from vaekit.nets.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, sentence_lengths
from vaekit.objectives import kl_warmup

SENTS = ["the cat sat on the mat", "a dog ran", "the dog sat", "a cat ran on a mat", "the end"]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def small_model(v, latent=None, **kw):
    spec = {"type": "text_vae", "latent": latent or {"type": "gaussian", "dim": 4}, "vocab_size": v, "embed_dim": 8,
            "encoder": {"hidden": 8}, "decoder": {"hidden": 8}, **kw}
    return build_model(spec, data_dim=10)


# ----- vocabulary ------------------------------------------------------------------------------------------


def test_vocabulary_round_trip(tmp_path):
    toks = [s.split() for s in SENTS]
    v = Vocabulary.build(toks)
    assert v.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    # by count, ties alphabetical: 'the' (4), 'a' (3), then count 2 alphabetically
    assert v.itos[4:6] == ["the", "a"] and v.itos[6:11] == ["cat", "dog", "mat", "on", "ran"]
    for s in toks:
        assert v.decode(v.encode(s) + [EOS_ID, PAD_ID, PAD_ID]) == s
    v.save(tmp_path)
    assert Vocabulary.load(tmp_path) == v and Vocabulary.load(tmp_path / "vocab.json").stoi == v.stoi
    assert v.encode(["zebra", "the", UNK]) == [UNK_ID, v.stoi["the"], UNK_ID]
    x, unseen = encode_sentences([["zebra", "the"]], v)
    assert unseen == 1 and x.tolist() == [[UNK_ID, v.stoi["the"], EOS_ID]]
    cut = Vocabulary.build(toks, max_vocab=2)
    assert len(cut) == 6 and cut.encode(["cat"]) == [UNK_ID]


def test_vocabulary_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        Vocabulary.load(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({"tokens": ["a"]}))
    with pytest.raises(ValueError, match="not a vaekit vocabulary"):
        Vocabulary.load(tmp_path)
    with pytest.raises(ValueError, match="reserved or appears twice"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Vocabulary(["a"]).decode([7])


# ----- files and their errors ------------------------------------------------------------------------------


def test_user_text_files_and_their_errors(tmp_path):
    tr = write(tmp_path / "train.txt", SENTS * 4)
    te = write(tmp_path / "test.txt", ["the cat ran", "zebra the"])
    ds = load_dataset("text", train=str(tr), test=str(te))
    assert ds.train.x.shape == (20, 7) and ds.test.n_unseen == 1 and ds.model_fields == {"vocab_size": len(ds.vocab)}
    assert ds.train.n_tokens == 4 * sum(len(s.split()) + 1 for s in SENTS)
    # the vocabulary comes from the training file only
    assert "zebra" not in ds.vocab.stoi

    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_dataset("text", train=str(tmp_path / "nope.txt"))
    empty = write(tmp_path / "empty.txt", [])
    with pytest.raises(TextDataError, match=r"empty.txt: no sentences"):
        load_dataset("text", train=str(empty))
    holes = write(tmp_path / "holes.txt", ["a b", "", "c d"])
    with pytest.raises(TextDataError, match=r"holes.txt:2: empty line"):
        load_dataset("text", train=str(holes), test=str(te))
    assert len(load_dataset("text", train=str(holes), test=str(holes), empty_lines="skip").train) == 2
    unk = write(tmp_path / "unk.txt", ["the cat", "zebra yak"])
    with pytest.raises(TextDataError, match=r"unk.txt:2: every token of 'zebra yak' is outside the vocabulary"):
        load_dataset("text", train=str(tr), test=str(unk))
    assert load_dataset("text", train=str(tr), test=str(unk), all_unknown="keep").test.n_unseen == 2
    long = write(tmp_path / "long.txt", ["a b c d e f g h"])
    with pytest.raises(TextDataError, match=r"long.txt:1: 8 tokens, more than data.options.max_len=6"):
        load_dataset("text", train=str(tr), test=str(long), max_len=6)
    assert load_dataset("text", train=str(tr), test=str(long), max_len=6, over_length="truncate").test.x.shape == (1, 7)
    assert len(load_dataset("text", train=str(tr), test=str(te), max_len=5, over_length="drop").train) == 12


def test_labels_and_their_errors(tmp_path):
    tr = write(tmp_path / "train.tsv", [f"{i % 3}\t{s}" for i, s in enumerate(SENTS * 2)])
    ds = load_dataset("text", train=str(tr), test=str(tr), labels="tab", num_classes=3)
    assert ds.train.y.tolist() == [i % 3 for i in range(10)] and ds.model_fields["num_classes"] == 3
    bad = write(tmp_path / "bad.tsv", ["0\tthe cat", "3\tthe dog"])
    with pytest.raises(TextDataError, match=r"bad.tsv:2: label 3 is out of range \[0, 3\)"):
        load_dataset("text", train=str(tr), test=str(bad), labels="tab", num_classes=3)
    word = write(tmp_path / "word.tsv", ["pos\tthe cat"])
    with pytest.raises(TextDataError, match=r"word.tsv:1: label 'pos' is not an integer"):
        load_dataset("text", train=str(word), labels="tab", num_classes=3)
    notab = write(tmp_path / "notab.tsv", ["0 the cat"])
    with pytest.raises(TextDataError, match=r"notab.tsv:1: expected 'label<TAB>sentence'"):
        load_dataset("text", train=str(notab), labels="tab", num_classes=3)
    with pytest.raises(ValueError, match="data.options.num_classes"):
        load_dataset("text", train=str(tr), labels="tab")


def test_missing_corpus_names_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ptb.train.txt[\s\S]*" + str(tmp_path)):
        load_dataset("ptb", data_dir=tmp_path)


# ----- batching ----------------------------------------------------------------------------------------------


def test_bucket_batches_cover_every_row_once_with_little_padding():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 60, (1003,), generator=g)
    batches = list(bucket_batches(lengths, 32, torch.Generator().manual_seed(1), bucket=10))
    assert len(batches) == math.ceil(1003 / 32) and all(b.shape[0] == 32 for b in batches[:-1])
    assert sorted(torch.cat(batches).tolist()) == list(range(1003))

    def padded(bs):
        return sum(int(lengths[b].max()) * b.shape[0] - int(lengths[b].sum()) for b in bs) / int(lengths.sum())

    random = list(torch.randperm(1003, generator=g).split(32))
    assert padded(batches) < 0.15 and padded(random) > 4 * padded(batches)
    # the same generator seed gives the same epoch (a resumed run replays it)
    again = list(bucket_batches(lengths, 32, torch.Generator().manual_seed(1), bucket=10))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


# ----- likelihood and padding ------------------------------------------------------------------------------


def test_token_likelihood_against_a_per_token_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[5, 6, 7, EOS_ID, 0, 0], [4, EOS_ID, 0, 0, 0, 0], [6, 6, 6, 6, 6, EOS_ID]])
    logits = torch.randn(2, 3, 6, 9, generator=g)
    got = token_log_likelihood(logits, x)
    for s in range(2):
        for b in range(3):
            n = int(sentence_lengths(x[b:b + 1]))
            ref = sum(float(torch.distributions.Categorical(logits=logits[s, b, t]).log_prob(x[b, t])) for t in range(n))
            assert got[s, b].item() == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("latent", [{"type": "gaussian", "dim": 4}, {"type": "vmf", "dim": 4, "fixed_kappa": 10.0}])
def test_padding_never_contributes(latent):
    """Filling every position after <eos> with random tokens changes neither q(z|x) nor log p(x|z)."""
    torch.manual_seed(0)
    v = 12
    m = small_model(v, latent).eval()
    lm = build_model({"type": "text_lm", "vocab_size": v, "embed_dim": 8, "decoder": {"hidden": 8}}, data_dim=10)
    x = torch.tensor([[5, 6, 7, EOS_ID, 0, 0, 0], [4, EOS_ID, 0, 0, 0, 0, 0], [6, 8, 9, 10, 11, 4, EOS_ID]])
    noisy = x.clone()
    after = torch.arange(7) >= sentence_lengths(x).unsqueeze(-1)
    noisy[after] = torch.randint(0, v, (int(after.sum()),))
    assert not torch.equal(noisy, x)
    z = m.prior().sample((3, 3))
    torch.testing.assert_close(m.log_likelihood(noisy, z), m.log_likelihood(x, z))
    torch.testing.assert_close(m.encode(noisy), m.encode(x))
    torch.testing.assert_close(lm.log_prob(noisy), lm.log_prob(x))
    # a longer padded width changes nothing either
    wide = torch.cat([x, torch.zeros(3, 5, dtype=torch.int64)], 1)
    torch.testing.assert_close(m.log_likelihood(wide, z), m.log_likelihood(x, z))
    # and a real token does change it
    other = x.clone()
    other[0, 1] = 9
    assert not torch.allclose(m.log_likelihood(other, z)[:, 0], m.log_likelihood(x, z)[:, 0])


def test_bad_token_rows_are_refused():
    m = small_model(12)
    with pytest.raises(ValueError, match="int64"):
        m.validate_input(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 12\)"):
        m.validate_input(torch.tensor([[13, EOS_ID]]))
    with pytest.raises(ValueError, match="row 1 has no <eos>"):
        m.validate_input(torch.tensor([[5, EOS_ID], [5, 6]]))
    with pytest.raises(ValueError, match="row 0 has <pad> or <bos> before its <eos>"):
        m.validate_input(torch.tensor([[5, PAD_ID, EOS_ID]]))


def test_lm_scores_exactly_and_its_bounds_agree():
    torch.manual_seed(0)
    lm = build_model({"type": "text_lm", "vocab_size": 12, "embed_dim": 8, "decoder": {"hidden": 8}}, data_dim=10).eval()
    x = torch.tensor([[5, 6, EOS_ID, 0], [4, 4, 4, EOS_ID]])
    lp = lm.log_prob(x)
    torch.testing.assert_close(lm.log_weights(x, 7), lp.expand(7, -1))
    out = lm(x, k=3)
    assert torch.equal(out.kl, torch.zeros(2))
    # log p(x) by its chain rule, one softmax at a time
    ref = torch.zeros(2)
    for b in range(2):
        logits, state = lm.decoder(torch.tensor([[BOS_ID]]))
        for t in range(int(sentence_lengths(x[b:b + 1]))):
            ref[b] += torch.log_softmax(logits[0, -1], -1)[x[b, t]]
            logits, state = lm.decoder(x[b:b + 1, t:t + 1], None, state)
    torch.testing.assert_close(lp, ref)


# ----- word dropout, schedules -----------------------------------------------------------------------------


def test_word_dropout_rate_and_the_inputless_decoder():
    x = torch.randint(4, 50, (200, 30))
    x[:, -1] = EOS_ID
    inp = decoder_inputs(x, 0.75, training=True, generator=torch.Generator().manual_seed(0))
    assert (inp[:, 0] == BOS_ID).all()
    dropped = (inp[:, 1:] == UNK_ID).double().mean().item()
    se = math.sqrt(0.25 * 0.75 / inp[:, 1:].numel())
    assert abs(dropped - 0.25) < 4 * se
    assert torch.equal(decoder_inputs(x, 0.75, training=False)[:, 1:], x[:, :-1])  # evaluation sees every word
    for training in (True, False):  # inputless: never a word, in training and evaluation
        assert (decoder_inputs(x, 0.0, training=training)[:, 1:] == UNK_ID).all()


def test_kl_warmup_schedules():
    from scipy.special import expit

    T = 1000
    assert kl_warmup(0, T) == 0.0 and kl_warmup(500, T) == 0.5 and kl_warmup(T, T) == 1.0 and kl_warmup(5 * T, T) == 1.0
    assert kl_warmup(0, T, shape="sigmoid") == pytest.approx(0.0, abs=1e-12)
    assert kl_warmup(T // 2, T, shape="sigmoid") == pytest.approx(0.5, abs=1e-12)
    assert kl_warmup(T, T, shape="sigmoid") == 1.0
    for t in (100, 250, 700, 900):
        ref = (expit(10 * (t / T - 0.5)) - expit(-5)) / (expit(5) - expit(-5))
        assert kl_warmup(t, T, shape="sigmoid") == pytest.approx(ref, rel=1e-12)
        assert kl_warmup(t, T, 0.2, "sigmoid") == pytest.approx(0.2 + 0.8 * ref, rel=1e-12)
    vals = [kl_warmup(t, T, shape="sigmoid") for t in range(0, T + 1, 10)]
    assert all(a < b for a, b in zip(vals, vals[1:]))
    # the sigmoid starts slower and ends faster than the line
    assert kl_warmup(200, T, shape="sigmoid") < kl_warmup(200, T) and kl_warmup(800, T, shape="sigmoid") > kl_warmup(800, T)
    with pytest.raises(ValueError, match="'linear' or 'sigmoid'"):
        kl_warmup(1, T, shape="cosine")


def test_fixed_kappa_vmf_kl_is_the_constant_closed_form():
    from scipy.special import ive

    torch.manual_seed(0)
    d, kappa = 8, 20.0
    m = small_model(12, {"type": "vmf", "dim": d, "fixed_kappa": kappa})
    x = torch.randint(4, 12, (16, 6))
    x[:, 3] = EOS_ID
    kl = m(x).kl
    # KL(vMF(mu, k) || U(S^{d-1})) = k A_d(k) + log C_d(k) + log |S^{d-1}|, Bessel functions from scipy
    nu = d / 2 - 1
    log_iv = math.log(ive(nu, kappa)) + kappa
    a_d = ive(nu + 1, kappa) / ive(nu, kappa)
    log_c = nu * math.log(kappa) - (d / 2) * math.log(2 * math.pi) - log_iv
    log_area = math.log(2) + (d / 2) * math.log(math.pi) - math.lgamma(d / 2)
    ref = kappa * a_d + log_c + log_area
    torch.testing.assert_close(kl, torch.full((16,), ref), atol=1e-4, rtol=1e-5)


# ----- decoding ----------------------------------------------------------------------------------------------


def test_beam_search_finds_the_most_probable_sentence_by_enumeration():
    """With a beam as wide as the hypothesis set, beam search returns argmax_x log p(x|z) over every sentence of
    at most L words (enumerated), and greedy decoding never beats it."""
    torch.manual_seed(3)
    v, L = 7, 3  # words 4, 5, 6
    m = small_model(v, max_decode_len=L).eval()
    z = m.prior().sample((4,))
    sentences = [list(w) + [EOS_ID] for n in range(L + 1) for w in itertools.product(range(4, v), repeat=n)]
    x = torch.full((len(sentences), L + 1), PAD_ID, dtype=torch.int64)
    for i, s in enumerate(sentences):
        x[i, :len(s)] = torch.tensor(s)
    with torch.no_grad():
        for j in range(4):
            scores = m.log_likelihood(x, z[j].expand(len(sentences), -1))
            best = scores.max()
            beam = beam_decode(m, z[j:j + 1], beam=len(sentences))
            greedy = greedy_decode(m, z[j:j + 1])
            assert m.log_likelihood(beam, z[j:j + 1]).item() == pytest.approx(best.item(), abs=1e-5)
            assert m.log_likelihood(greedy, z[j:j + 1]).item() <= best.item() + 1e-5
    with pytest.raises(ValueError, match="beam must be >= 1"):
        beam_decode(m, z[:1], beam=0)


def test_homotopy_ends_decode_the_end_codes():
    torch.manual_seed(0)
    m = small_model(12).eval()
    xa = torch.tensor([[5, 6, 7, EOS_ID]])
    xb = torch.tensor([[8, 9, EOS_ID, PAD_ID]])
    path = homotopy(m, xa, xb, steps=5)
    assert path.shape[0] == 5
    assert torch.equal(path[0, :], greedy_decode(m, m.encode(xa))[0, :path.shape[1]]) or \
        m.log_likelihood(path[:1], m.encode(xa)).item() == pytest.approx(
            m.log_likelihood(greedy_decode(m, m.encode(xa)), m.encode(xa)).item(), abs=1e-5)
    assert ((path == EOS_ID).sum(1) == 1).all()


# ----- the pipeline and the command line ----------------------------------------------------------------------


def test_train_generate_homotopy_end_to_end(tmp_path, capsys):
    from vaekit.cli.main import main
    from vaekit.data.text import Vocabulary
    from vaekit.pipeline.text import text_summary

    tr = write(tmp_path / "train.txt", SENTS * 8)
    va = write(tmp_path / "val.txt", SENTS[:3])
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"""
data: {{name: text, binarize: none, options: {{train: {tr}, val: {va}, test: {va}}}}}
model: {{type: text_vae, embed_dim: 8, encoder: {{hidden: 8}}, latent: {{type: vmf, dim: 3, fixed_kappa: 5.0}},
        decoder: {{hidden: 8}}, word_keep: 0.75, max_decode_len: 8}}
train: {{epochs: 1, batch_size: 8, objective: {{type: elbo, warmup_steps: 4, warmup_shape: sigmoid}}}}
eval: {{estimators: "elbo,iwae:3", batch_size: 4}}
device: cpu
""")
    run = tmp_path / "runs" / "r"
    assert main(["train", "--config", str(cfg), f"out_dir={tmp_path / 'runs'}", "run_name=r"]) == 0
    capsys.readouterr()
    assert Vocabulary.load(run) == load_dataset("text", train=str(tr), test=str(va)).vocab
    assert json.loads((run / "config.json").read_text())["model"]["vocab_size"] == len(Vocabulary.load(run))
    assert main(["generate", str(run), "--n", "3", "--mode", "beam", "--beam", "2"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    vocab = set(Vocabulary.load(run).itos)
    assert len(lines) == 3 and all(w in vocab for line in lines for w in line.split())
    assert main(["homotopy", str(run), "the cat sat", "a dog ran", "--steps", "4"]) == 0
    assert len(capsys.readouterr().out.strip().split("\n")) == 4
    assert main(["homotopy", str(run), "zebra yak", "a dog"]) == 2
    assert "every word is outside the run's vocabulary" in capsys.readouterr().err
    assert main(["impute", str(run), "the ___ sat on the ___"]) == 0
    filled = capsys.readouterr().out.split()
    assert len(filled) == 6 and [filled[i] for i in (0, 2, 3, 4)] == ["the", "sat", "on", "the"]
    assert all(w in vocab - {"<unk>", "<eos>", "<pad>", "<bos>"} for w in filled)
    assert main(["impute", str(run), "the cat sat"]) == 2
    assert "no ___ to fill in" in capsys.readouterr().err
    from vaekit.pipeline.text import imputation_benchmark
    b = imputation_benchmark([run, run], n=3, min_words=3, folds=2)
    r = b["runs"]["r"]
    assert b["n"] == 3 and b["imputed_words"] == 4  # the test split SENTS[:3] loses ceil(0.2 n) = 2, 1, 1 words
    assert 0.0 <= r["word_accuracy"] <= 1.0 and 0.0 <= r["adversary_accuracy"] <= 1.0
    s = text_summary(run, mi_rows=3, au_rows=3)
    assert s["tokens"] == sum(len(x.split()) + 1 for x in SENTS[:3])
    assert s["elbo"]["ppl"] == pytest.approx(math.exp(s["elbo"]["nll"] * 3 / s["tokens"]))
    # the KL of a fixed-kappa vMF is one constant for every sentence
    assert s["kl_se"] == pytest.approx(0.0, abs=1e-6)
    # a vocab_size that contradicts the data is refused by its key
    assert main(["train", "--config", str(cfg), "model.vocab_size=7", f"out_dir={tmp_path / 'o'}"]) == 2
    assert "model.vocab_size: 7, but data set 'text' gives" in capsys.readouterr().err
    # per-sentence comparison: a run against itself (same seeds) is exactly 0; against an LM, the difference of means
    from vaekit.reproduce.text import paired_nll
    same = paired_nll(run, run)
    assert same["mean"] == 0.0 and same["se"] == 0.0 and same["sentences"] == 3
    lm_cfg = tmp_path / "lm.yaml"
    lm_cfg.write_text(f"""
data: {{name: text, binarize: none, options: {{train: {tr}, val: {va}, test: {va}}}}}
model: {{type: text_lm, embed_dim: 8, decoder: {{hidden: 8}}}}
train: {{epochs: 1, batch_size: 8}}
eval: {{estimators: "elbo", batch_size: 4}}
device: cpu
""")
    assert main(["train", "--config", str(lm_cfg), f"out_dir={tmp_path / 'runs'}", "run_name=lm"]) == 0
    other = paired_nll(run, tmp_path / "runs" / "lm")
    assert other["mean"] == pytest.approx(other["nll_a"] - other["nll_b"], abs=1e-9) and other["se"] > 0
    # the summary's validation ELBO (what a setting such as kappa is chosen by) is the best epoch's
    from vaekit.reproduce.text import _best_val_elbo
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r["elbo"] for r in recs if r.get("split") == "val"]
    assert vals and _best_val_elbo(recs) == max(vals)
    assert _best_val_elbo([r for r in recs if r.get("split") != "val"]) is None


# ----- the protocol on every latent family ----------------------------------------------------------------------

from families import FAMILY_SPECS, TOKEN_MODEL_SPECS  # noqa: E402  (tests/ is on the path, as for test_protocol)


@pytest.mark.parametrize("family", sorted(FAMILY_SPECS))
def test_text_vae_speaks_the_protocol_with_every_latent_family(family):
    torch.manual_seed(0)
    m = build_model(TOKEN_MODEL_SPECS["text_vae"](FAMILY_SPECS[family]), data_dim=6).double().eval()
    x = torch.tensor([[5, 6, 7, EOS_ID, 0, 0], [4, EOS_ID, 0, 0, 0, 0], [6, 8, 9, 10, 11, EOS_ID]])
    q, p = m.posterior(x), m.prior()
    z, log_q = q.rsample_and_log_prob((4,))
    assert log_q.shape == (4, 3)
    torch.testing.assert_close(m.log_joint(x, z), m.log_likelihood(x, z) + p.log_prob(z))
    torch.manual_seed(7)
    lw = m.log_weights(x, 4)
    torch.manual_seed(7)
    z2, lq2 = m.posterior(x).rsample_and_log_prob((4,))
    torch.testing.assert_close(lw, m.log_joint(x, z2) - lq2)
    assert m.log_weights(x, 9, chunk_size=4).shape == (9, 3) and torch.isfinite(lw).all()
    out = m(x, k=2)
    assert out.log_likelihood.shape == (2, 3) and out.kl.shape == (3,)
    assert m.encode(x).shape == (3, m.latent_dim)
    assert ((m.sample(2) == EOS_ID).sum(1) == 1).all() and ((m.reconstruct(x) == EOS_ID).sum(1) == 1).all()


def test_every_token_model_type_builds():
    for name, make in TOKEN_MODEL_SPECS.items():
        m = build_model(make({"type": "gaussian", "dim": 2}), data_dim=6)
        assert type(m).__name__ in ("TextVAE", "LanguageModel", "TextM2", "TextClassifier"), name


def test_a_shared_embedding_is_one_tensor_through_training_checkpoints_and_resume(tmp_path):
    """share_embedding: true ties the encoder's and the decoder's word vectors; the trainer's checkpoint and a
    resume keep them one tensor (not two copies drifting apart), and the resumed run equals an uninterrupted one."""
    from vaekit.cli.main import main
    from vaekit.train.run import load_run

    tr = write(tmp_path / "train.txt", SENTS * 4)
    va = write(tmp_path / "val.txt", SENTS[:3])
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"""
data: {{name: text, binarize: none, options: {{train: {tr}, val: {va}, test: {va}}}}}
model: {{type: text_vae, embed_dim: 8, encoder: {{hidden: 8}}, latent: {{type: gaussian, dim: 2}},
        decoder: {{hidden: 8}}, share_embedding: true, max_decode_len: 8}}
train: {{epochs: 2, batch_size: 8}}
eval: {{estimators: "elbo", batch_size: 4}}
device: cpu
""")
    out = f"out_dir={tmp_path / 'runs'}"
    assert main(["train", "--config", str(cfg), out, "run_name=straight", "--no-final-eval"]) == 0
    assert main(["train", "--config", str(cfg), out, "run_name=cut", "train.epochs=1", "--no-final-eval"]) == 0
    assert main(["train", "--resume", str(tmp_path / "runs" / "cut"), "train.epochs=2", "--no-final-eval"]) == 0
    models = [load_run(tmp_path / "runs" / name, checkpoint="last").model for name in ("straight", "cut")]
    for m in models:
        assert m.encoder.embedding.weight is m.decoder.embedding.weight
    for (k, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.equal(a, b), k


# ----- evaluation in length order ---------------------------------------------------------------------------


def _random_sentences(n, v, max_len, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len, (n,), generator=g)
    x = torch.full((n, max_len + 1), PAD_ID, dtype=torch.int64)
    for i, n_words in enumerate(lengths.tolist()):
        x[i, :n_words] = torch.randint(4, v, (n_words,), generator=g)
        x[i, n_words] = EOS_ID
    return x


def test_evaluation_batches_sentences_by_length_and_scores_the_same():
    """run_estimators batches a text model's rows by length (each batch's LSTM then stops near its own
    sentences' length); the mean of the LM's exact log p(x) over the rows is the same as in row order."""
    from vaekit.evaluation import run_estimators

    torch.manual_seed(0)
    lm = build_model({"type": "text_lm", "vocab_size": 12, "embed_dim": 8, "decoder": {"hidden": 8}}, data_dim=10)
    x = _random_sentences(50, 12, 15, seed=1)
    order = lm.evaluation_order(x)
    assert torch.equal(order.sort().values, torch.arange(50))
    assert bool((sentence_lengths(x[order]).diff() >= 0).all())

    widths = []
    real = lm._scores

    def spy(xb, c):
        widths.append(int(sentence_lengths(xb).max()))
        return real(xb, c)

    lm._scores = spy
    ordered = run_estimators(lm, x, "iwae:3", batch_size=10)["iwae:3"]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    lm.evaluation_order = None  # an instance attribute that hides the method: row order
    widths.clear()
    rows = run_estimators(lm, x, "iwae:3", batch_size=10)["iwae:3"]
    assert widths != sorted(widths)  # row order mixes lengths (the check above can fail)
    with torch.no_grad():
        exact = float(real(x, None).mean())
    assert ordered["mean"] == pytest.approx(exact, rel=1e-6)
    assert ordered["mean"] == pytest.approx(rows["mean"], rel=1e-6)
    assert ordered["stderr"] == pytest.approx(rows["stderr"], rel=1e-5)


def test_an_evaluation_order_that_is_not_a_permutation_is_refused():
    from vaekit.evaluation import run_estimators

    lm = build_model({"type": "text_lm", "vocab_size": 12, "embed_dim": 8, "decoder": {"hidden": 8}}, data_dim=10)
    x = _random_sentences(6, 12, 5, seed=2)
    lm.evaluation_order = lambda rows: torch.zeros(rows.shape[0], dtype=torch.int64)
    with pytest.raises(ValueError, match="evaluation_order must return a permutation of the 6 rows"):
        run_estimators(lm, x, "elbo")
