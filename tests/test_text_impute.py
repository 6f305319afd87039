"""Word imputation by constrained beam search (vaekit.models.text.impute; Bowman et al. 2016, Sec. 5.2),
checked against enumeration of every filling."""

from __future__ import annotations

import itertools

import pytest
import torch

from vaekit.models import build_model
from vaekit.models.text import WILDCARD, beam_decode, impute
from vaekit.nets.text import EOS_ID, PAD_ID, UNK_ID

V = 8  # ids 0..3 special, words 4..7


def _model(kind):
    torch.manual_seed(5)
    if kind == "vae":
        spec = {"type": "text_vae", "latent": {"type": "gaussian", "dim": 4}, "vocab_size": V, "embed_dim": 8,
                "encoder": {"hidden": 8}, "decoder": {"hidden": 8}, "max_decode_len": 6}
    else:
        spec = {"type": "text_lm", "vocab_size": V, "embed_dim": 8, "decoder": {"hidden": 8}, "max_decode_len": 6}
    return build_model(spec, data_dim=10).eval()


def _score(m, rows, c):
    return m.log_likelihood(rows, c) if c is not None else m.log_prob(rows)


@pytest.mark.parametrize("kind", ["vae", "lm"])
def test_imputation_is_the_argmax_over_every_filling(kind):
    """Beam as wide as the set of fillings: the imputed sentence maximises log p(x|z) (VAE, z inferred from the
    observed words) or log p(x) (LM) over all 4^2 fillings of the two gaps; observed words are kept."""
    m = _model(kind)
    x = torch.tensor([[4, 5, 6, 7, EOS_ID], [7, 6, EOS_ID, PAD_ID, PAD_ID]])
    missing = torch.tensor([[False, True, False, True, False], [True, False, False, False, False]])
    out = impute(m, x, missing, beam=16)
    obs = torch.where(missing, torch.full_like(x, UNK_ID), x)
    c = m.encode(obs) if kind == "vae" else None
    for i in range(2):
        gaps = missing[i].nonzero().flatten().tolist()
        fills = []
        for words in itertools.product(range(4, V), repeat=len(gaps)):
            r = x[i].clone()
            r[gaps] = torch.tensor(words)
            fills.append(r)
        rows = torch.stack(fills)
        with torch.no_grad():
            scores = _score(m, rows, None if c is None else c[i:i + 1].expand(len(fills), -1))
        got = out[i, : x.shape[1]]
        assert torch.equal(got[~missing[i]], x[i][~missing[i]])
        assert not bool(((got == UNK_ID) | (got == EOS_ID))[missing[i]].any())
        with torch.no_grad():
            s = _score(m, got.unsqueeze(0), None if c is None else c[i:i + 1])
        assert s.item() == pytest.approx(scores.max().item(), abs=1e-5)


def test_free_tail_keeps_the_prefix_and_ends_the_sentence():
    m = _model("vae")
    x = torch.tensor([[4, 5, 6, 7, EOS_ID]])
    missing = torch.tensor([[False, False, True, True, False]])
    out = impute(m, x, missing, beam=4, free_tail=True)
    assert torch.equal(out[0, :2], x[0, :2])
    assert int((out[0] == EOS_ID).sum()) == 1
    # the search space of the free tail includes every completion; with beam = 1 it is greedy after the prefix
    c = m.encode(torch.tensor([[4, 5, EOS_ID]]))
    greedy_tail = beam_decode(m, c, beam=1, template=[[4, 5]], free_tail=True)
    wide = beam_decode(m, c, beam=64, template=[[4, 5]], free_tail=True)
    with torch.no_grad():
        assert m.log_likelihood(wide, c).item() >= m.log_likelihood(greedy_tail, c).item() - 1e-5


def test_imputation_errors_name_the_problem():
    m = _model("lm")
    x = torch.tensor([[4, 5, EOS_ID]])
    with pytest.raises(ValueError, match="<eos> or padding"):
        impute(m, x, torch.tensor([[False, False, True]]))
    with pytest.raises(ValueError, match="no observed word"):
        impute(m, x, torch.tensor([[True, True, False]]))
    with pytest.raises(ValueError, match="must end the sentence"):
        impute(m, torch.tensor([[4, 5, 6, EOS_ID]]), torch.tensor([[False, True, False, False]]), free_tail=True)
    with pytest.raises(ValueError, match="bool tensor"):
        impute(m, x, torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="outside"):
        beam_decode(m, None, 1, template=[[4, 99]])
    with pytest.raises(ValueError, match="<eos>"):
        beam_decode(m, None, 1, template=[[4, EOS_ID]])
    with pytest.raises(ValueError, match="2 rows"):
        beam_decode(m, None, 1, template=[[4], [WILDCARD]])


def test_impute_refuses_to_drop_runs_its_file_holds_before_any_work(tmp_path, capsys):
    """``python -m vaekit.reproduce.text impute RUNS --out F``: F lists its runs by folder name; a rewrite from other
    runs would drop them, so it is refused (exit 2, naming them) before the beam search starts."""
    import json

    from vaekit.reproduce.text import main

    out = tmp_path / "impute.json"
    out.write_text(json.dumps({"runs": {"V_vmf_k35": {}, "L_lm": {}}}))
    with pytest.raises(SystemExit) as e:
        main(["impute", str(tmp_path / "runs" / "L_lm"), "--out", str(out)])
    assert e.value.code == 2 and "(V_vmf_k35)" in capsys.readouterr().err
    assert json.loads(out.read_text()) == {"runs": {"V_vmf_k35": {}, "L_lm": {}}}
