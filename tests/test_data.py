"""Tests for vaekit.data: loaders, splits, batching, binarisation, file validation and download."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import (
    DATASETS,
    Dataset,
    batch_indices,
    data_dir_for,
    download,
    dynamic_binarize,
    load_dataset,
    static_binarize,
)
from vaekit.data import sources
from vaekit.data.readers import read_idx_gz
from vaekit.registry import ConfigError


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _rows(x: torch.Tensor) -> Counter:
    return Counter(bytes(r) for r in x.numpy())


def _load_or_skip(name: str, **kw) -> Dataset:
    try:
        return load_dataset(name, **kw)
    except FileNotFoundError as exc:
        pytest.skip(f"{name} files not on this machine: {exc}")


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_ranges_and_labels():
    d = load_dataset("digits")
    assert (len(d.train), len(d.val), len(d.test)) == (1297, 250, 250)
    assert d.image_shape == (1, 8, 8) and d.binary is False and d.dim == 64
    for s in (d.train, d.val, d.test):
        assert s.x.dtype == torch.float32 and s.x.shape[1] == 64
        assert s.x.min() >= 0 and s.x.max() <= 1
        # pixel counts 0..16 divided by 16
        assert torch.equal(s.x * 16, torch.round(s.x * 16))
        assert s.y.dtype == torch.int64 and set(s.y.unique().tolist()) <= set(range(10))
    assert d.train.x.max() == 1.0


def test_digits_split_is_a_partition_of_the_full_set():
    from sklearn.datasets import load_digits

    full = torch.from_numpy(load_digits().data.astype(np.float32) / 16)
    d = load_dataset("digits")
    parts = torch.cat([d.train.x, d.val.x, d.test.x])
    # multiset equality: every original row appears exactly once across the three splits
    assert _rows(parts) == _rows(full)
    labels = torch.cat([d.train.y, d.val.y, d.test.y])
    assert Counter(labels.tolist()) == Counter(load_digits().target.tolist())


def test_digits_deterministic_under_seed():
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_digits_val_size():
    d = load_dataset("digits", val_size=0)
    assert d.val is None and len(d.train) == 1547 and len(d.test) == 250
    d = load_dataset("digits", val_size=100)
    assert (len(d.train), len(d.val)) == (1447, 100)
    with pytest.raises(ValueError, match="val_size"):
        load_dataset("digits", val_size=1547)
    with pytest.raises(ValueError, match="val_size"):
        load_dataset("digits", val_size=-1)


def test_unknown_name_and_option():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(TypeError, match="unknown option"):
        load_dataset("digits", flavour=1)
    assert {"digits", "mnist", "fashion_mnist", "binarized_mnist", "frey_faces", "caltech101_silhouettes",
            "omniglot", "array", "folder"} <= set(DATASETS.names())


# ----------------------------------------------------------------------------- file-based loaders

# name -> (train, val, test sizes with default val_size, D, image_shape, binary, has labels)
FILE_LOADERS = {
    "mnist": ((60000, None, 10000), 784, (1, 28, 28), False, True),
    "fashion_mnist": ((60000, None, 10000), 784, (1, 28, 28), False, True),
    "binarized_mnist": ((50000, 10000, 10000), 784, (1, 28, 28), True, False),
    "frey_faces": ((1565, 200, 200), 560, (1, 28, 20), False, False),
    "caltech101_silhouettes": ((4100, 2264, 2307), 784, (1, 28, 28), True, True),
    "omniglot": ((19280, None, 13180), 784, (1, 28, 28), False, True),
}


@pytest.fixture(scope="module")
def loaded():
    cache: dict[str, Dataset] = {}

    def get(name: str) -> Dataset:
        if name not in cache:
            cache[name] = _load_or_skip(name)
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(FILE_LOADERS))
def test_file_loader_shapes_and_ranges(name, loaded):
    sizes, dim, image_shape, binary, has_labels = FILE_LOADERS[name]
    d = loaded(name)
    assert d.name == name and d.image_shape == image_shape and d.binary is binary
    got = (len(d.train), None if d.val is None else len(d.val), len(d.test))
    assert got == sizes
    for s in (d.train, d.val, d.test):
        if s is None:
            continue
        assert s.x.dtype == torch.float32 and s.x.shape[1] == dim
        assert s.x.min() >= 0 and s.x.max() <= 1
        if binary:
            assert torch.all((s.x == 0) | (s.x == 1))
        assert (s.y is not None) == has_labels
        if has_labels:
            assert s.y.dtype == torch.int64


def test_mnist_values_match_readme(loaded):
    d = loaded("mnist")
    # /work/shared/data/mnist/README.md: train mean 33.318 (of 255), label counts
    assert abs(d.train.x.mean().item() * 255 - 33.318) < 1e-2
    assert abs(d.test.x.mean().item() * 255 - 33.791) < 1e-2
    assert torch.bincount(d.train.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(d.test.y).tolist()[:3] == [980, 1135, 1032]


def test_mnist_holdout_is_last_training_images(loaded):
    full = loaded("mnist")
    d = _load_or_skip("mnist", val_size=400)
    assert (len(d.train), len(d.val), len(d.test)) == (59600, 400, 10000)
    assert torch.equal(d.val.x, full.train.x[-400:]) and torch.equal(d.train.x, full.train.x[:-400])
    assert torch.equal(d.val.y, full.train.y[-400:])


def test_benchmark_means_match_readmes(loaded):
    b = loaded("binarized_mnist")
    assert abs(b.train.x.mean().item() - 0.1306) < 1e-4 and abs(b.test.x.mean().item() - 0.1325) < 1e-4
    c = loaded("caltech101_silhouettes")
    # README: file mean 0.5511 with background = 1; the loader inverts (object = 1)
    assert abs(c.train.x.mean().item() - (1 - 0.5511)) < 1e-4
    assert sorted(c.train.y.unique().tolist()) == list(range(101))
    f = loaded("frey_faces")
    allx = torch.cat([f.train.x, f.val.x, f.test.x])
    assert abs(allx.mean().item() * 255 - 154.46) < 1e-2
    assert abs(allx.min().item() * 255 - 8) < 1e-3 and abs(allx.max().item() * 255 - 238) < 1e-3


def test_caltech_is_transposed_to_row_major(loaded):
    # the .mat stores images column-major; row-major reading of the raw row is the transpose
    from scipy.io import loadmat

    d = loaded("caltech101_silhouettes")
    raw = loadmat(data_dir_for("caltech101_silhouettes", None) / "caltech101_silhouettes_28_split1.mat")
    first = 1.0 - raw["train_data"][0].astype(np.float32)
    np.testing.assert_array_equal(d.train.x[0].numpy().reshape(28, 28), first.reshape(28, 28).T)


def test_binarized_mnist_val_merge():
    d = _load_or_skip("binarized_mnist", val_size=0)
    assert d.val is None and len(d.train) == 60000
    with pytest.raises(ValueError, match="official validation split"):
        load_dataset("binarized_mnist", val_size=100)


def test_omniglot_downsampling_is_area_mean(loaded):
    d = loaded("omniglot")
    raw = np.load(data_dir_for("omniglot", None) / "images_background.npz")["images"][0, 0]
    ink = torch.from_numpy(~raw).float()
    # independent reference: exact box-filter average via integration of the 105x105 ink map
    ref = torch.empty(28, 28)
    for i in range(28):
        for j in range(28):
            r0, r1 = (i * 105) // 28, -((-(i + 1) * 105) // 28)
            c0, c1 = (j * 105) // 28, -((-(j + 1) * 105) // 28)
            ref[i, j] = ink[r0:r1, c0:c1].mean()
    torch.testing.assert_close(d.train.x[0].reshape(28, 28), ref)
    assert d.train.y[:20].tolist() == [0] * 20 and d.test.y.min().item() == 964


def test_frey_split_deterministic_and_disjoint():
    a = _load_or_skip("frey_faces", seed=1)
    b = load_dataset("frey_faces", seed=1)
    assert torch.equal(a.train.x, b.train.x)
    images = np.load(data_dir_for("frey_faces", None) / "frey_faces.npz")["images"]
    full = torch.from_numpy(images.reshape(1965, 560).astype(np.float32) / 255)
    assert _rows(torch.cat([a.train.x, a.val.x, a.test.x])) == _rows(full)


# ----------------------------------------------------------------------------- missing and corrupt files


def test_missing_explicit_dir_names_files_and_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", data_dir=missing)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(missing) in msg and "download('mnist'" in msg


def test_missing_lists_every_searched_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA_DIR", str(tmp_path / "root"))
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        data_dir_for("frey_faces", None, defaults=[tmp_path / "a", tmp_path / "b"])
    msg = str(info.value)
    for d in (tmp_path / "root" / "frey_faces", tmp_path / "a", tmp_path / "b"):
        assert str(d) in msg
    assert "frey_faces.npz" in msg and "VAEKIT_DATA_DIR" in msg


def test_env_var_root_is_used(tmp_path, monkeypatch):
    src = _frey_file_or_skip()
    (tmp_path / "frey_faces").mkdir()
    shutil.copy(src, tmp_path / "frey_faces" / "frey_faces.npz")
    monkeypatch.setenv("VAEKIT_DATA_DIR", str(tmp_path))
    assert data_dir_for("frey_faces", None) == tmp_path / "frey_faces"


def _frey_file_or_skip() -> Path:
    try:
        return data_dir_for("frey_faces", None) / "frey_faces.npz"
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def _mnist_dir_or_skip() -> Path:
    try:
        return data_dir_for("mnist", None)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_truncated_gz_gives_clear_error(tmp_path):
    src = _mnist_dir_or_skip()
    for f in sources.FILES["mnist"]:
        shutil.copy(src / f, tmp_path / f)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes((src / "t10k-images-idx3-ubyte.gz").read_bytes()[:100_000])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_reader_checks_header_length_and_shape(tmp_path):
    header = bytes([0, 0, 0x08, 3]) + np.array([5, 2, 2], dtype=">u4").tobytes()
    ok = tmp_path / "ok.gz"
    ok.write_bytes(gzip.compress(header + bytes(range(20))))
    np.testing.assert_array_equal(read_idx_gz(ok, (5, 2, 2)).reshape(-1), np.arange(20, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected \(6, 2, 2\)"):
        read_idx_gz(ok, (6, 2, 2))
    short = tmp_path / "short.gz"  # a valid gzip stream whose IDX payload is cut short
    short.write_bytes(gzip.compress(header + bytes(range(19))))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx_gz(short)
    magic = tmp_path / "magic.gz"
    magic.write_bytes(gzip.compress(b"\x1f\x8b\x08\x00rest"))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx_gz(magic)


def test_truncated_npz_gives_clear_error(tmp_path):
    src = _frey_file_or_skip()
    (tmp_path / "frey_faces.npz").write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ValueError, match="frey_faces.npz: corrupt or truncated .npz"):
        load_dataset("frey_faces", data_dir=tmp_path)


def test_npz_with_wrong_shape_or_key_is_rejected(tmp_path):
    np.savez(tmp_path / "frey_faces.npz", images=np.zeros((10, 28, 20), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(10, 28, 20\), expected \(1965, 28, 20\)"):
        load_dataset("frey_faces", data_dir=tmp_path)
    np.savez(tmp_path / "frey_faces.npz", faces=np.zeros((1965, 28, 20), np.uint8))
    with pytest.raises(ValueError, match="missing array"):
        load_dataset("frey_faces", data_dir=tmp_path)
    np.savez(tmp_path / "frey_faces.npz", images=np.zeros((1965, 28, 20), np.float64))
    with pytest.raises(ValueError, match="dtype float64"):
        load_dataset("frey_faces", data_dir=tmp_path)


# ----------------------------------------------------------------------------- user data


def test_array_loader_npy_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(100, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    d = load_dataset("array", path=str(tmp_path / "x.npy"), val_size=10)
    assert (len(d.train), len(d.val), len(d.test)) == (80, 10, 10)
    assert d.image_shape == (1, 6, 5) and d.binary is False
    assert _rows(torch.cat([d.train.x, d.val.x, d.test.x])) == _rows(torch.from_numpy(x.reshape(100, 30) / 255.0).float())
    y = np.arange(100) % 3
    np.savez(tmp_path / "s.npz", train=x[:70] > 127, test=x[70:] > 127, y_train=y[:70], y_test=y[70:])
    d = load_dataset("array", path=str(tmp_path / "s.npz"))
    assert len(d.train) == 70 and d.val is None and d.binary is True and torch.equal(d.test.y, torch.from_numpy(y[70:]))
    with pytest.raises(ValueError, match="own train/test split"):
        load_dataset("array", path=str(tmp_path / "s.npz"), val_size=5)


def test_array_loader_refuses_pickles_and_bad_keys(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="without pickles"):
        load_dataset("array", path=str(tmp_path / "obj.npy"))
    np.savez(tmp_path / "k.npz", data=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="expected key 'x'"):
        load_dataset("array", path=str(tmp_path / "k.npz"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_dataset("array", path=str(tmp_path / "missing.npy"))


def test_folder_loader_classes_and_size_mismatch(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (7, 9), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = load_dataset("folder", path=str(tmp_path), test_size=4)
    assert d.image_shape == (1, 7, 9) and len(d.train) == 16 and len(d.test) == 4
    assert sorted(torch.cat([d.train.y, d.test.y]).tolist()) == [0] * 10 + [1] * 10
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "dog" / "odd.png")
    with pytest.raises(ValueError, match="odd.png: image is 9x8"):
        load_dataset("folder", path=str(tmp_path))


# ----------------------------------------------------------------------------- binarisation and batching


def test_dynamic_binarize_mean_matches_intensity():
    # 40,000 draws per intensity; |mean - p| <= 4 s.e. fails with probability ~6e-5 per column
    # (5 columns: ~3e-4 per run); if it ever fails, bump the seed once.
    g = torch.Generator().manual_seed(1)
    p = torch.tensor([0.02, 0.2, 0.5, 0.8, 0.97])
    x = p.expand(40_000, 5).contiguous()
    b = dynamic_binarize(x, generator=g)
    assert b.shape == x.shape and b.dtype == x.dtype and torch.all((b == 0) | (b == 1))
    se = torch.sqrt(p * (1 - p) / x.shape[0])
    assert torch.all((b.mean(0) - p).abs() <= 4 * se), (b.mean(0), p)
    assert not torch.equal(b, dynamic_binarize(x, generator=g))  # a fresh draw each call
    assert torch.equal(dynamic_binarize(torch.zeros(3, 4)), torch.zeros(3, 4))
    assert torch.equal(dynamic_binarize(torch.ones(3, 4)), torch.ones(3, 4))


def test_binarize_errors_and_static_is_fixed():
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        dynamic_binarize(torch.tensor([0.5, 1.2]))
    with pytest.raises(ValueError, match="no NaN"):
        dynamic_binarize(torch.tensor([0.5, float("nan")]))
    with pytest.raises(TypeError, match="floating-point"):
        dynamic_binarize(torch.tensor([0, 1]))
    x = torch.rand(50, 20)
    state = torch.get_rng_state()
    assert torch.equal(static_binarize(x, 7), static_binarize(x, 7))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched
    assert not torch.equal(static_binarize(x, 7), static_binarize(x, 8))


@pytest.mark.parametrize("n,bs,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False)])
def test_batch_indices_cover_each_index_once(n, bs, drop_last):
    g = torch.Generator().manual_seed(0)
    batches = list(batch_indices(n, bs, g, drop_last=drop_last))
    sizes = [len(b) for b in batches]
    full = n // bs
    if drop_last:
        assert sizes == [bs] * full
    else:
        assert sizes == [bs] * full + ([n - full * bs] if n % bs else [])
    allidx = torch.cat(batches)
    assert allidx.dtype == torch.int64
    assert len(set(allidx.tolist())) == len(allidx)  # no repeats
    if not drop_last:
        assert sorted(allidx.tolist()) == list(range(n))


def test_batch_indices_reproducible_and_shuffled():
    run = lambda seed: torch.cat(list(batch_indices(1000, 64, torch.Generator().manual_seed(seed))))  # noqa: E731
    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))
    g = torch.Generator().manual_seed(5)
    e1, e2 = torch.cat(list(batch_indices(1000, 64, g))), torch.cat(list(batch_indices(1000, 64, g)))
    assert not torch.equal(e1, e2)  # a new order every epoch
    assert torch.equal(torch.cat(list(batch_indices(7, 3, None, shuffle=False))), torch.arange(7))
    with pytest.raises(ValueError, match="batch_size"):
        list(batch_indices(10, 0, None))


# ----------------------------------------------------------------------------- download (local files only)


def _remote(tmp_path: Path, payload: bytes, name="blob.bin", sha=None, kind="file"):
    src = tmp_path / "server" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(payload)
    content = gzip.decompress(payload) if kind == "gunzip" else payload
    digest = sha or hashlib.sha256(content).hexdigest()
    return src, sources.RemoteFile(name, (src.as_uri(),), digest, kind)


def test_download_verifies_checksum_with_file_url(tmp_path):
    payload = b"vaekit" * 1000
    _, remote = _remote(tmp_path, payload)
    out = sources.download_file(remote, tmp_path / "data")
    assert out.read_bytes() == payload

    _, bad = _remote(tmp_path, payload, name="bad.bin", sha="0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        sources.download_file(bad, tmp_path / "data")
    assert not (tmp_path / "data" / "bad.bin").exists()
    assert not list((tmp_path / "data").glob("*.part"))  # no partial files left behind


def test_download_gunzip_checksum_and_mirror_fallback(tmp_path):
    content = bytes(range(256)) * 50
    src, remote = _remote(tmp_path, gzip.compress(content), name="x.gz", kind="gunzip")
    wrong = tmp_path / "server" / "wrong.gz"
    wrong.write_bytes(gzip.compress(b"other content"))
    remote = sources.RemoteFile("x.gz", (wrong.as_uri(), src.as_uri()), remote.sha256, "gunzip")
    out = sources.download_file(remote, tmp_path / "data")
    assert gzip.decompress(out.read_bytes()) == content


def test_download_by_name_with_local_fetch(tmp_path, monkeypatch):
    payload = b"\x00" * 123
    _, remote = _remote(tmp_path, payload, name="f.bin")
    monkeypatch.setitem(sources.SOURCES, "toy", (remote,))
    calls = []

    def fetch(url, dst):
        calls.append(url)
        shutil.copy(Path(url.removeprefix("file://")), dst)

    root = download("toy", tmp_path / "toy", fetch=fetch)
    assert (root / "f.bin").read_bytes() == payload and len(calls) == 1
    download("toy", tmp_path / "toy", fetch=fetch)  # already present and verified: not fetched again
    assert len(calls) == 1
    (root / "f.bin").write_bytes(b"tampered")
    download("toy", tmp_path / "toy", fetch=fetch)  # a corrupt local copy is replaced
    assert len(calls) == 2 and (root / "f.bin").read_bytes() == payload
    with pytest.raises(ValueError, match="no download source"):
        download("digits", tmp_path)


def test_every_file_loader_has_a_download_source():
    assert set(sources.FILES) <= set(sources.downloadable())
    for name, remotes in sources.SOURCES.items():
        for r in remotes:
            assert len(r.sha256) == 64 and r.urls, (name, r.filename)
        assert {r.filename for r in remotes} == set(sources.FILES[name])


def test_staged_files_match_download_checksums():
    # the checksums in sources.py agree with the files on this machine
    for name, remotes in sources.SOURCES.items():
        try:
            root = data_dir_for(name, None)
        except FileNotFoundError:
            continue
        for r in remotes:
            if r.filename.endswith("images-idx3-ubyte.gz") and name == "mnist":
                continue  # 47 MB to hash; the labels and the other sets cover the check
            assert sources.sha256_of(root / r.filename, r.checksum_of) == r.sha256, (name, r.filename)
    for name, arrays in sources.ARRAY_SHA256.items():
        try:
            root = data_dir_for(name, None)
        except FileNotFoundError:
            continue
        with np.load(root / sources.FILES[name][0]) as z:
            for key, digest in arrays.items():
                assert sources.array_sha256(z[key]) == digest, (name, key)


def test_split_validation():
    from vaekit.data import Split

    with pytest.raises(TypeError, match="float32"):
        Split(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        Split(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="image_shape"):
        Dataset("t", Split(torch.zeros(3, 4)), None, Split(torch.zeros(3, 4)), (1, 2, 3), False)


@pytest.mark.parametrize("shape", [(0, 4), (0,), (0, 8, 8), (3, 0), (5,)])
def test_an_empty_or_flat_array_file_is_refused_naming_the_file(tmp_path, shape):
    """Before, an empty ``.npy`` failed with numpy's "cannot reshape array of size 0 into shape (0,newaxis)",
    naming no file."""
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: need an array of shape \(N, \.\.\.\) with N >= 1 "
                                         rf"examples of at least one value each, got shape {re.escape(str(shape))}$"):
        load_dataset("array", path=str(path))
    np.savez(tmp_path / "split.npz", train=np.zeros(shape, np.float32), test=np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'split.npz'}['train']: need an array")):
        load_dataset("array", path=str(tmp_path / "split.npz"))


def test_too_few_examples_names_the_file(tmp_path):
    np.save(tmp_path / "two.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'two.npy'}: 2 examples cannot give test=0")):
        load_dataset("array", path=str(tmp_path / "two.npy"))
