"""Data sets of sets (issue 15): Omniglot by character, the synthetic 1-D families, the episode sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from vaekit.data.base import data_dir_for
from vaekit.data.sets import FAMILIES, EpisodeSampler, load_omniglot_sets, synthetic_sets


@pytest.fixture(scope="module")
def omniglot():
    try:
        data_dir_for("omniglot", None)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return load_omniglot_sets(rotations=True)


def test_omniglot_sets_shapes_ids_and_rotations(omniglot):
    d = omniglot
    assert d.train.shape == (4 * 964, 20, 784) and d.test.shape == (659, 20, 784)
    assert d.image_shape == (1, 28, 28)
    # background and evaluation characters never meet
    assert set(d.train_ids.tolist()) == set(range(964)) and set(d.test_ids.tolist()) == set(range(964, 1623))
    # class 964 + c is class c turned by 90 degrees (counter-clockwise), pixel for pixel
    a = d.train[5, 3].view(28, 28)
    b = d.train[964 + 5, 3].view(28, 28)
    assert torch.equal(b, torch.rot90(a, 1, (0, 1))) and not torch.equal(a, b)
    assert torch.equal(d.train[2 * 964 + 5, 3].view(28, 28), a.flip(0).flip(1))
    # the same images as the flat loader (which is checked against an independent box filter in test_data)
    raw = np.load(data_dir_for("omniglot", None) / "images_evaluation.npz")["images"][7, 2]
    ink = torch.from_numpy(~raw).float()
    # total ink is kept up to the overlap of the pooling cells (105 / 28 is not an integer): within 5 %
    assert abs(d.test[7, 2].sum().item() * (105 / 28) ** 2 - ink.sum().item()) < 0.05 * ink.sum().item()


def test_omniglot_missing_file_names_it_and_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="images_background.npz") as e:
        load_omniglot_sets(data_dir=tmp_path)
    assert str(tmp_path) in str(e.value)


@pytest.mark.parametrize("kw, key", [({"size": 0}, "data.size"), ({"size": 106}, "data.size"),
                                     ({"binarize": "dynamic"}, "data.binarize")])
def test_omniglot_bad_options_name_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        load_omniglot_sets(**kw)


def test_synthetic_sets_moments_and_families():
    s = synthetic_sets(400, set_size=200, seed=3)
    assert s.x.shape == (400, 200, 1) and s.family.shape == (400,)
    assert set(s.family.tolist()) == {0, 1, 2, 3}
    m, sd = s.x[..., 0].mean(1), s.x[..., 0].std(1)
    # each set mean is within 4 standard errors (sigma / sqrt(200)) of the mean it was drawn with
    assert ((m - s.mean).abs() <= 4 * s.std / math.sqrt(200)).float().mean() > 0.99
    assert ((sd / s.std - 1).abs() < 0.3).all()
    assert (0.5 <= s.std ** 2).all() and (s.std ** 2 <= 2).all() and (s.mean.abs() <= 1).all()


#: the standardised law of each family (mean 0, variance 1), independent of vaekit's inverse-CDF draws
LAWS = {"exponential": stats.expon(loc=-1), "gaussian": stats.norm(),
        "uniform": stats.uniform(loc=-math.sqrt(3), scale=2 * math.sqrt(3)),
        "laplace": stats.laplace(scale=1 / math.sqrt(2))}


@pytest.mark.parametrize("family", FAMILIES)
def test_synthetic_family_shapes_against_scipy(family):
    """Standardised draws of one family pass a Kolmogorov-Smirnov test against scipy's law (rate 1e-3) and fail
    it against the other three families' laws (so the test can tell them apart)."""
    s = synthetic_sets(600, set_size=50, seed=11)
    keep = s.family == FAMILIES.index(family)
    z = ((s.x[keep, :, 0] - s.mean[keep, None]) / s.std[keep, None]).flatten().double().numpy()
    assert stats.kstest(z, LAWS[family].cdf).pvalue > 1e-3
    assert all(stats.kstest(z, LAWS[o].cdf).pvalue < 1e-6 for o in FAMILIES if o != family)


def test_synthetic_bad_args():
    with pytest.raises(ValueError, match="n_sets"):
        synthetic_sets(0)
    with pytest.raises(ValueError, match="var_range"):
        synthetic_sets(4, var_range=(2.0, 1.0))


def test_episodes_never_leak_queries_into_supports():
    n_classes, n_per = 30, 20
    # every item is unique: its value encodes (class, item)
    data = (torch.arange(n_classes)[:, None, None] * 100 + torch.arange(n_per)[None, :, None]).float()
    sampler = EpisodeSampler(data, way=5, shot=5, queries=15, seed=0)
    counts = torch.zeros(n_classes)
    for _ in range(200):
        ep = sampler.sample()
        assert ep.support.shape == (5, 5, 1) and ep.query.shape == (75, 1)
        assert len(set(ep.classes.tolist())) == 5
        sup = set(ep.support.flatten().tolist())
        qry = ep.query.flatten()
        assert not sup & set(qry.tolist()) and len(sup) == 25 and len(set(qry.tolist())) == 75
        # each query comes from the class its label names
        assert torch.equal((qry // 100).long(), ep.classes[ep.query_label])
        counts[ep.classes] += 1
    # classes are drawn uniformly: 200 * 5 / 30 per class, binomial s.e.; a 5-sigma band
    expect = 200 * 5 / n_classes
    assert ((counts - expect).abs() <= 5 * math.sqrt(expect)).all()


def test_training_episodes_never_draw_evaluation_characters(omniglot):
    d = omniglot
    sampler = EpisodeSampler(d.train, way=20, shot=1, queries=1, seed=1, distinct_ids=d.train_ids)
    evaluation_images = {bytes(r) for r in d.test.flatten(0, 1).numpy()}
    for _ in range(20):
        ep = sampler.sample()
        ids = d.train_ids[ep.classes]
        assert len(set(ids.tolist())) == 20 and int(ids.max()) < 964
        drawn = torch.cat([ep.support.flatten(0, 1), ep.query])
        assert not any(bytes(r) in evaluation_images for r in drawn.numpy())
    # the fingerprint does find evaluation images when they are drawn
    ep = EpisodeSampler(d.test, way=5, shot=1, queries=1, seed=1).sample()
    assert all(bytes(r) in evaluation_images for r in ep.query.numpy())


def test_episode_sampler_refuses_impossible_episodes():
    data = torch.zeros(4, 6, 2)
    with pytest.raises(ValueError, match="fewshot.way: 5 classes asked, the split has 4"):
        EpisodeSampler(data, way=5, shot=1)
    with pytest.raises(ValueError, match=r"fewshot.shot \+ fewshot.queries: 5 \+ 2"):
        EpisodeSampler(data, way=2, shot=5, queries=2)
    with pytest.raises(ValueError, match="distinct characters"):
        EpisodeSampler(data, way=3, shot=1, distinct_ids=torch.tensor([0, 0, 1, 1])).sample()
