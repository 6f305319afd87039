"""Tests for vaekit.viz: every plot writes a PNG of the expected size and rejects bad input."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from scipy.stats import norm

from vaekit import viz
from vaekit.viz import grid_pixel_size, manifold_grid


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _png(path):
    assert path.suffix == ".png" and path.is_file() and path.stat().st_size > 0
    return mpimg.imread(path)


def test_sample_grid_pixel_exact(tmp_path):
    x = torch.rand(10, 64)
    p = viz.sample_grid(x, (1, 8, 8), tmp_path / "s.png", nrow=4, scale=3)
    img = _png(p)
    assert img.shape[:2] == grid_pixel_size(10, (1, 8, 8), 4, 3) == ((3 * 9 + 1) * 3, (4 * 9 + 1) * 3)
    # the first image's top-left pixel is drawn exactly (grey colormap: R = G = B = value)
    pad, s = 1, 3
    np.testing.assert_allclose(img[pad * s, pad * s, 0], x[0, 0].item(), atol=1 / 255 + 1e-6)
    # the last image's bottom-right data pixel
    r, c = divmod(9, 4)
    yy, xx = (pad + r * 9 + 7) * s, (pad + c * 9 + 7) * s
    np.testing.assert_allclose(img[yy, xx, 0], x[9, 63].item(), atol=1 / 255 + 1e-6)
    titled = _png(viz.sample_grid(x, (1, 8, 8), tmp_path / "t.png", nrow=4, scale=3, title="samples"))
    assert titled.shape[:2] == grid_pixel_size(10, (1, 8, 8), 4, 3, title=True)


def test_sample_grid_rgb_and_default_layout(tmp_path):
    img = _png(viz.sample_grid(torch.rand(9, 3 * 5 * 4), (3, 5, 4), tmp_path / "rgb.png", scale=2))
    assert img.shape[:2] == grid_pixel_size(9, (3, 5, 4), 3, 2)


@pytest.mark.parametrize("images,shape,err", [
    (torch.rand(4, 63), (1, 8, 8), "D = 63"),
    (torch.rand(4, 8, 8), (1, 8, 8), r"shape \(N, D\)"),
    (torch.rand(4, 128), (2, 8, 8), "1 \\(grey\\) or 3"),
    (torch.rand(4, 64), (8, 8), r"\(C, H, W\)"),
    (torch.rand(0, 64), (1, 8, 8), "N = 0"),
    (torch.full((2, 64), float("nan")), (1, 8, 8), "NaN"),
])
def test_sample_grid_rejects_bad_shapes(tmp_path, images, shape, err):
    with pytest.raises(ValueError, match=err):
        viz.sample_grid(images, shape, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_paths_must_be_png(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        viz.sample_grid(torch.rand(2, 4), (1, 2, 2), tmp_path / "x.jpg")


def test_reconstruction_grid_alternates_rows(tmp_path):
    x = torch.zeros(5, 16)
    x_rec = torch.ones(5, 16)
    img = _png(viz.reconstruction_grid(x, x_rec, (1, 4, 4), tmp_path / "r.png", n=5, ncol=3, scale=2))
    assert img.shape[:2] == grid_pixel_size(12, (1, 4, 4), 3, 2)
    # row 0 originals (black), row 1 reconstructions (white), row 2 originals, row 3 reconstructions
    centre = lambda r, c: img[(1 + r * 5 + 2) * 2, (1 + c * 5 + 2) * 2, 0]  # noqa: E731
    assert [centre(r, 0) for r in range(4)] == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="same shape"):
        viz.reconstruction_grid(x, torch.ones(4, 16), (1, 4, 4), tmp_path / "r2.png")
    with pytest.raises(ValueError, match="image_shape"):
        viz.reconstruction_grid(x, x_rec, (1, 4, 5), tmp_path / "r3.png")


def test_interpolation_strip(tmp_path):
    img = _png(viz.interpolation_strip(torch.rand(7, 28 * 20), (1, 28, 20), tmp_path / "i.png", scale=2))
    assert img.shape[:2] == grid_pixel_size(7, (1, 28, 20), 7, 2)
    with pytest.raises(ValueError, match="at least 2 steps"):
        viz.interpolation_strip(torch.rand(1, 560), (1, 28, 20), tmp_path / "i2.png")


def test_manifold_grid_is_normal_ppf_of_even_quantiles():
    n, lo, hi = 7, 0.05, 0.95
    z = manifold_grid(n, (lo, hi))
    assert z.shape == (n * n, 2) and z.dtype == torch.float32
    expected = norm.ppf(np.linspace(lo, hi, n))  # independent reference: scipy's inverse normal CDF
    zz = z.reshape(n, n, 2).numpy()
    np.testing.assert_allclose(zz[0, :, 0], expected, rtol=1e-6, atol=1e-6)   # z1 grows to the right
    np.testing.assert_allclose(zz[:, 0, 1], expected[::-1], rtol=1e-6, atol=1e-6)  # z2 grows upward
    assert np.allclose(zz[:, :, 0], zz[:1, :, 0]) and np.allclose(zz[:, :, 1], zz[:, :1, 1])
    for bad in [(0.0, 0.9), (0.1, 1.0), (0.6, 0.4)]:
        with pytest.raises(ValueError, match="quantiles"):
            manifold_grid(5, bad)
    with pytest.raises(ValueError, match="n must be"):
        manifold_grid(1)


def test_latent_manifold_decodes_the_grid(tmp_path):
    seen = []

    def decode_mean(z):
        seen.append(z.clone())
        return torch.sigmoid(z.sum(1, keepdim=True)).expand(-1, 36)

    img = _png(viz.latent_manifold(decode_mean, (1, 6, 6), tmp_path / "m.png", n=5, scale=2))
    assert img.shape[:2] == grid_pixel_size(25, (1, 6, 6), 5, 2)
    assert len(seen) == 1 and torch.equal(seen[0], manifold_grid(5))
    # top-left cell decodes (z1 lowest, z2 highest); its centre shows sigmoid(z1 + z2)
    z0 = manifold_grid(5)[0]
    np.testing.assert_allclose(img[(1 + 3) * 2, (1 + 3) * 2, 0], torch.sigmoid(z0.sum()).item(), atol=1 / 255 + 1e-6)
    with pytest.raises(ValueError, match="returned"):
        viz.latent_manifold(lambda z: torch.rand(3, 36), (1, 6, 6), tmp_path / "m2.png", n=5)
    with pytest.raises(ValueError, match="D = 35"):
        viz.latent_manifold(lambda z: torch.rand(len(z), 35), (1, 6, 6), tmp_path / "m3.png", n=5)


def test_circle_points_are_even_angles_on_the_unit_circle():
    z = viz.circle_points(12)
    assert z.shape == (12, 2) and z.dtype == torch.float32
    theta = np.arctan2(z[:, 1].numpy(), z[:, 0].numpy()) % (2 * np.pi)
    np.testing.assert_allclose(theta, 2 * np.pi * np.arange(12) / 12, atol=1e-6)  # 0 included, 2*pi not repeated
    np.testing.assert_allclose(z.norm(dim=1).numpy(), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="n must be"):
        viz.circle_points(1)


def test_sphere_grid_has_equal_area_bands_and_even_longitudes():
    n_lon, n_lat = 6, 4
    z = viz.sphere_grid(n_lon, n_lat).reshape(n_lat, n_lon, 3)
    np.testing.assert_allclose(z.norm(dim=-1).numpy(), 1.0, atol=1e-6)
    # heights: midpoints of 4 equal intervals of [-1, 1], north first (uniform under the uniform prior on S^2)
    np.testing.assert_allclose(z[:, 0, 2].numpy(), [0.75, 0.25, -0.25, -0.75], atol=1e-6)
    lon = np.arctan2(z[1, :, 1].numpy(), z[1, :, 0].numpy()) % (2 * np.pi)
    np.testing.assert_allclose(lon, 2 * np.pi * np.arange(n_lon) / n_lon, atol=1e-6)
    with pytest.raises(ValueError, match="n_lat must be"):
        viz.sphere_grid(4, 1)


def test_latent_circle_and_sphere_decode_their_points(tmp_path):
    seen = []

    def decode_mean(z):
        seen.append(z.clone())
        return torch.sigmoid(z[:, :1]).expand(-1, 36)

    img = _png(viz.latent_circle(decode_mean, (1, 6, 6), tmp_path / "c.png", n=10, nrow=5, scale=2))
    assert img.shape[:2] == grid_pixel_size(10, (1, 6, 6), 5, 2)
    assert torch.equal(seen[-1], viz.circle_points(10))
    # the first cell is angle 0, z = (1, 0): its centre shows sigmoid(1)
    np.testing.assert_allclose(img[(1 + 3) * 2, (1 + 3) * 2, 0], torch.sigmoid(torch.tensor(1.0)).item(),
                               atol=1 / 255 + 1e-6)
    img = _png(viz.latent_sphere(decode_mean, (1, 6, 6), tmp_path / "s.png", n_lon=4, n_lat=3, scale=2))
    assert img.shape[:2] == grid_pixel_size(12, (1, 6, 6), 4, 2)
    assert torch.equal(seen[-1], viz.sphere_grid(4, 3))
    with pytest.raises(ValueError, match=r"must map \(M, 2\) latents to \(M, D\) means"):
        viz.latent_circle(lambda z: torch.rand(3, 36), (1, 6, 6), tmp_path / "c2.png")


def test_latent_scatter_2d_and_pca(tmp_path):
    z = torch.randn(200, 2)
    y = torch.randint(0, 10, (200,))
    img = _png(viz.latent_scatter(z, y, tmp_path / "z2.png"))
    assert img.shape[:2] == (600, 600)
    img = _png(viz.latent_scatter(torch.randn(200, 8), y, tmp_path / "z8.png", size_px=(400, 300)))
    assert img.shape[:2] == (300, 400)
    _png(viz.latent_scatter(z, None, tmp_path / "nolab.png"))
    _png(viz.latent_scatter(z, torch.arange(200) % 30, tmp_path / "many.png"))
    with pytest.raises(ValueError, match="D >= 2"):
        viz.latent_scatter(torch.randn(10, 1), None, tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        viz.latent_scatter(torch.randn(10, 2), torch.zeros(9), tmp_path / "b.png")


def test_latent_scatter_title_says_pca(tmp_path, monkeypatch):
    titles = []
    from matplotlib.axes import Axes

    orig = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda self, t, *a, **k: (titles.append(t), orig(self, t, *a, **k))[1])
    viz.latent_scatter(torch.randn(50, 5), None, tmp_path / "p.png")
    viz.latent_scatter(torch.randn(50, 2), None, tmp_path / "q.png")
    assert "PCA of 5-D latents" in titles[0] and "PCA" not in titles[1]


def _records():
    recs = []
    for step in range(0, 500, 50):
        recs.append({"step": step, "epoch": step // 100, "split": "train", "elbo": -200 + step / 10, "kl": 10.0})
        if step % 100 == 0:
            recs.append({"step": step, "epoch": step // 100, "split": "val", "elbo": -210 + step / 10})
    return recs


def test_training_curves_from_list_and_jsonl(tmp_path):
    img = _png(viz.training_curves(_records(), tmp_path / "c.png", keys=("elbo", "kl")))
    assert img.shape[:2] == (400, 1000)
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _records()) + "\n\n")
    img = _png(viz.training_curves(path, tmp_path / "c2.png", panel_px=(300, 200)))
    assert img.shape[:2] == (200, 300)


def test_training_curves_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\['loss'\] occur in no record; available: \['elbo', 'kl'\]"):
        viz.training_curves(_records(), tmp_path / "c.png", keys=("loss",))
    with pytest.raises(ValueError, match="no records"):
        viz.training_curves([], tmp_path / "c.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "elbo": 2}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: not valid JSON"):
        viz.training_curves(bad, tmp_path / "c.png")
    with pytest.raises(ValueError, match="record 1 has non-numeric elbo='x'"):
        viz.training_curves([{"step": 0, "elbo": 1.0}, {"step": 1, "elbo": "x"}], tmp_path / "c.png")
    with pytest.raises(ValueError, match="x-axis key 'epoch'"):
        viz.training_curves([{"elbo": 1.0}], tmp_path / "c.png")


def _pixels_near(img: np.ndarray, colour: str, tol: float = 0.03) -> int:
    from matplotlib.colors import to_rgb

    return int((np.abs(img[..., :3] - np.array(to_rgb(colour))) < tol).all(-1).sum())


def test_training_curves_give_a_split_one_colour_in_every_panel(tmp_path):
    """Before, a panel where only ``val`` had points drew it in the colour ``train`` had in the other panels
    (matplotlib's cycle gave each panel's first line the first colour)."""
    recs = [r for r in _records() if r["split"] == "train"]
    recs += [{"step": s, "split": "val", "elbo": -205.0 + s / 10, "iwae_bound": -200.0 + s / 10} for s in (0, 200, 400)]
    img = _png(viz.training_curves(recs, tmp_path / "c.png", keys=("elbo", "iwae_bound"), panel_px=(400, 300)))
    train, val = viz.SPLIT_COLOURS["train"], viz.SPLIT_COLOURS["val"]
    left, right = img[:, :400], img[:, 400:]
    assert _pixels_near(left, train) > 50 and _pixels_near(left, val) > 50
    assert _pixels_near(right, val) > 50 and _pixels_near(right, train) == 0  # val only, in val's colour


def test_training_curves_label_axes_with_the_metric_and_its_unit(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    labels = []
    for name in ("set_xlabel", "set_ylabel"):
        orig = getattr(Axes, name)
        monkeypatch.setattr(Axes, name, lambda self, t, *a, _o=orig, **k: (labels.append(t), _o(self, t, *a, **k))[1])
    viz.training_curves(_records(), tmp_path / "c.png", keys=("elbo", "kl"))
    assert labels == ["optimiser step", "ELBO (nats)", "optimiser step", "KL(q(z|x) || p(z)) (nats)"]


def test_latent_scatter_gives_a_label_one_colour_whichever_labels_occur(tmp_path, monkeypatch):
    """Before, colours came from a colour map normalised over the labels present: label 3 was red among 0..9 but
    purple among {0, 3, 7}."""
    from matplotlib.axes import Axes

    drawn: list[tuple[str, str]] = []
    orig = Axes.scatter

    def scatter(self, *a, **k):
        drawn.append((k.get("label"), k.get("color")))
        return orig(self, *a, **k)

    monkeypatch.setattr(Axes, "scatter", scatter)
    z = torch.randn(300, 2)
    every = torch.arange(300) % 10
    viz.latent_scatter(z, every, tmp_path / "all.png")
    full = dict(drawn)
    drawn.clear()
    some = torch.tensor([0, 3, 7]).repeat(100)
    viz.latent_scatter(z, some, tmp_path / "some.png")
    assert dict(drawn) == {"0": full["0"], "3": full["3"], "7": full["7"]}
    assert len(set(full.values())) == 10
