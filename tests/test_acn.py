"""Associative Compression Networks (Graves et al. 2018): the code table, the neighbour draw, the MDN prior and
resume (vaekit.models.acn, vaekit.reproduce.acn).

Statistical checks compare with an independent reference at 4 standard errors (two-sided failure rate about
6e-5 each).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from vaekit.models.acn import ACN, CodeTable, build_acn
from vaekit.registry import ConfigError
from vaekit.reproduce.acn import acn_batches, evaluate, step_loss
from vaekit.train.steps import fit_steps

NET = {"type": "mlp", "hidden": [16], "activation": "relu"}


@pytest.fixture(autouse=True)
def _seeded(one_thread_seeded):
    yield


def _acn(data_dim=64, dim=2, components=3) -> ACN:
    return build_acn(data_dim, NET, {"type": "gaussian", "dim": dim}, NET, {"type": "bernoulli"}, prior_hidden=[16],
                     components=components)


def test_the_table_holds_the_training_codes_and_nothing_else(digits):
    model = _acn()
    x_train, x_test = torch.bernoulli(digits.train.x), torch.bernoulli(digits.test.x)
    tables = []
    next(acn_batches(model, x_train, x_train, torch.Generator().manual_seed(0), k=5, tables=tables))
    table = tables[0]
    assert len(table) == x_train.shape[0]
    with torch.no_grad():
        torch.testing.assert_close(table.codes, model.encode(x_train), rtol=0, atol=0)  # row i = training example i
        test_codes = model.encode(x_test)
    # no test code sits in the table (each differs from every row), and outside queries get training rows only
    assert torch.cdist(test_codes, table.codes).min() > 0
    nb = table.neighbours(test_codes, None)
    assert nb.shape == (x_test.shape[0], 5) and nb.max() < x_train.shape[0]


def test_neighbours_are_the_k_nearest_other_rows_even_with_exact_duplicates():
    codes = torch.randn(60, 3)
    codes[10] = codes[11]  # a duplicate image: its twin is a neighbour at distance 0, itself never
    codes[20] = codes[21] = codes[22]
    table = CodeTable(codes, k=5)
    own = torch.arange(60)
    nb = table.neighbours(codes, own)
    assert not (nb == own[:, None]).any()
    assert 11 in nb[10] and 10 in nb[11] and {21, 22} <= set(nb[20].tolist())
    d = torch.cdist(codes, codes)
    d.fill_diagonal_(math.inf)
    ref = d.sort(1).values[:, :5]  # the 5 smallest distances to other rows (ties make indices ambiguous)
    torch.testing.assert_close(d.gather(1, nb), ref)


def test_the_drawn_neighbour_is_uniform_over_the_k_and_never_the_example():
    codes = torch.randn(40, 2)
    table = CodeTable(codes, k=5)
    g = torch.Generator().manual_seed(0)
    q = codes[:1].expand(20000, 2)
    drawn = table.draw(q, torch.zeros(20000, dtype=torch.long), g)
    assert not (drawn == codes[0]).all(1).any()
    nb = table.neighbours(codes[:1], torch.tensor([0]))[0]
    freq = torch.stack([(drawn == codes[j]).all(1).double().mean() for j in nb])
    assert abs(float(freq.sum()) - 1.0) < 1e-12
    se = math.sqrt(0.2 * 0.8 / 20000)
    assert ((freq - 0.2).abs() < 4 * se).all(), freq


def test_every_batch_of_an_epoch_excludes_its_own_rows(digits, monkeypatch):
    model = _acn()
    x = torch.bernoulli(digits.train.x[:300])
    seen = []
    real = CodeTable.draw

    def spy(self, query, exclude=None, generator=None):
        seen.append((self.neighbours(query, exclude), exclude))
        return real(self, query, exclude, generator)

    monkeypatch.setattr(CodeTable, "draw", spy)
    n = sum(1 for _ in acn_batches(model, x, x, torch.Generator().manual_seed(0), batch_size=64))
    assert n == 5 and sum(e.numel() for _, e in seen) == 300
    assert all(not (nb == e[:, None]).any() for nb, e in seen)


@pytest.mark.parametrize("dim", [2, 3])
def test_the_mdn_prior_density_integrates_to_one(dim):
    """E_r[p(z|c) / r(z)] = 1 with r = N(0, 3^2 I), a proposal independent of the MDN, at 4 s.e. (MC)."""
    model = _acn(dim=dim, components=4)
    code = torch.randn(3, dim)
    r = Independent(Normal(torch.zeros(dim), 3.0 * torch.ones(dim)), 1)
    n = 200_000
    with torch.no_grad():
        z = r.sample((n,)).unsqueeze(1)  # (n, 1, D), broadcast over the 3 codes
        w = torch.exp(model.prior(code).log_prob(z) - r.log_prob(z)).double()  # (n, 3)
    mean, se = w.mean(0), w.std(0) / math.sqrt(n)
    assert ((mean - 1).abs() < 4 * se).all(), (mean, se)
    assert (se < 0.02).all()  # the check has power: a density off by a few percent would fail it


def test_refresh_after_resume_equals_an_uninterrupted_run(digits, tmp_path):
    """Two epochs straight vs one epoch, a fresh process-like rebuild, and a resume: the table the second epoch
    starts from is the same to the bit, and so are the final weights."""
    x = digits.train.x[:400]
    x_table = torch.bernoulli(x, generator=torch.Generator().manual_seed(1))

    def run(run_dir, epochs, tables):
        torch.manual_seed(0)
        model = _acn()
        fit_steps(model, lambda e, g: acn_batches(model, x, x_table, g, batch_size=100, tables=tables), step_loss,
                  epochs=epochs, run_dir=run_dir, spec={"test": "acn"}, log=lambda s: None)
        return model

    straight: list = []
    a = run(tmp_path / "a", 2, straight)
    first: list = []
    run(tmp_path / "b", 1, first)
    resumed: list = []
    b = run(tmp_path / "b", 2, resumed)  # a new model object, weights and Adam state from the checkpoint
    assert len(straight) == 2 and len(resumed) == 1
    assert torch.equal(straight[0].codes, first[0].codes)
    assert torch.equal(straight[1].codes, resumed[0].codes)
    assert not torch.equal(straight[0].codes, straight[1].codes)  # the refresh did change the table
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)


def test_evaluation_and_daydreams_on_a_small_model(digits):
    model = _acn()
    x_train, x_test = torch.bernoulli(digits.train.x), torch.bernoulli(digits.test.x[:50])
    res = evaluate(model, x_train, digits.train.y, x_test, digits.test.y[:50], k=3)
    assert res["kl"] > 0 and res["recon"] > 0 and abs(res["total"] - res["recon"] - res["kl"]) < 1e-9
    assert 0 <= res["knn1_acc"] <= 1 and len(res["per_image"]["kl"]) == 50
    chains = model.daydream(x_test[:3], 4)
    assert chains.shape == (5, 3, 64) and torch.equal(chains[0], x_test[:3])
    assert set(chains.unique().tolist()) <= {0.0, 1.0}


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"model\.latent\.type: ACN's prior is a Gaussian mixture on R\^D"):
        build_acn(64, NET, {"type": "vmf", "dim": 3}, NET, {"type": "bernoulli"})
    with pytest.raises(ValueError, match="ACN.prior needs code"):
        _acn().prior()
    with pytest.raises(ValueError, match="more than k rows"):
        CodeTable(torch.zeros(5, 2), k=5)
