"""Where each data set's files live, and a checksummed downloader for users.

``download(name, root)`` fetches a data set's files with ``urllib`` into ``root``, writing each
through a temporary file in the same folder that is renamed into place only after its SHA-256
checks out (an interrupted or corrupt download never leaves a file under the final name).

Checksums:

* ``"file"``: SHA-256 of the downloaded bytes.
* ``"gunzip"``: SHA-256 of the *decompressed* content of a ``.gz`` file. MNIST's decompressed
  checksums are the published ones; several mirrors re-compress the same content, so checking
  the content accepts any honest mirror. The Fashion-MNIST values were computed from the Debian
  ``dataset-fashion-mnist`` copy (upstream publishes only MD5s of its ``.gz`` files).
* ``"array"``: SHA-256 of the converted uint8 array's bytes (C order), for data sets whose
  upstream files are converted to ``.npz`` (binarised MNIST, Frey faces); values computed from
  the staged, cross-checked copies (see /work/shared/data/*/README.md).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

#: Default folders searched (after an explicit data_dir and $VAEKIT_DATA_DIR/<name>). Relative
#: paths are tried against the current directory and the repository root.
DEFAULT_DIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("../shared/data/mnist", "~/.cache/vaekit/mnist"),
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist", "~/.cache/vaekit/fashion_mnist"),
    "binarized_mnist": ("../shared/data/binarized_mnist", "~/.cache/vaekit/binarized_mnist"),
    "frey_faces": ("../shared/data/frey_faces", "~/.cache/vaekit/frey_faces"),
    "caltech101_silhouettes": ("../shared/data/caltech101_silhouettes", "~/.cache/vaekit/caltech101_silhouettes"),
    "omniglot": ("../shared/data/omniglot", "~/.cache/vaekit/omniglot"),
}

_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

#: Files a loader needs in its folder.
FILES: dict[str, tuple[str, ...]] = {
    "mnist": _IDX_FILES,
    "fashion_mnist": _IDX_FILES,
    "binarized_mnist": ("binarized_mnist.npz",),
    "frey_faces": ("frey_faces.npz",),
    "caltech101_silhouettes": ("caltech101_silhouettes_28_split1.mat",),
    "omniglot": ("images_background.npz", "images_evaluation.npz"),
}


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: tried URL by URL until one gives the right checksum."""

    filename: str
    urls: tuple[str, ...]
    sha256: str
    checksum_of: Literal["file", "gunzip"] = "file"


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_OMNIGLOT_BASE = "https://raw.githubusercontent.com/bitsandscraps/omniglot/b0481240b7eb42393285a93ce7d2f266ff10c62b/"
_BMNIST_BASE = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"


def _mirrored(mirrors: tuple[str, ...], filename: str) -> tuple[str, ...]:
    return tuple(m + filename for m in mirrors)


#: Files fetched as they are.
SOURCES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (
        RemoteFile("train-images-idx3-ubyte.gz", _mirrored(_MNIST_MIRRORS, "train-images-idx3-ubyte.gz"),
                   "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", "gunzip"),
        RemoteFile("train-labels-idx1-ubyte.gz", _mirrored(_MNIST_MIRRORS, "train-labels-idx1-ubyte.gz"),
                   "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", "gunzip"),
        RemoteFile("t10k-images-idx3-ubyte.gz", _mirrored(_MNIST_MIRRORS, "t10k-images-idx3-ubyte.gz"),
                   "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", "gunzip"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", _mirrored(_MNIST_MIRRORS, "t10k-labels-idx1-ubyte.gz"),
                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", "gunzip"),
    ),
    "fashion_mnist": (
        RemoteFile("train-images-idx3-ubyte.gz", _mirrored(_FASHION_MIRRORS, "train-images-idx3-ubyte.gz"),
                   "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", "gunzip"),
        RemoteFile("train-labels-idx1-ubyte.gz", _mirrored(_FASHION_MIRRORS, "train-labels-idx1-ubyte.gz"),
                   "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", "gunzip"),
        RemoteFile("t10k-images-idx3-ubyte.gz", _mirrored(_FASHION_MIRRORS, "t10k-images-idx3-ubyte.gz"),
                   "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", "gunzip"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", _mirrored(_FASHION_MIRRORS, "t10k-labels-idx1-ubyte.gz"),
                   "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", "gunzip"),
    ),
    "caltech101_silhouettes": (
        RemoteFile("caltech101_silhouettes_28_split1.mat",
                   ("https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat",),
                   "eb6735e8d84b1850fabc5590124aab1755e90c9fd28123585324398405e1e42a"),
    ),
    "omniglot": (
        RemoteFile("images_background.npz", (_OMNIGLOT_BASE + "images_background.npz",),
                   "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199"),
        RemoteFile("images_evaluation.npz", (_OMNIGLOT_BASE + "images_evaluation.npz",),
                   "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276"),
    ),
}

#: SHA-256 of converted arrays (uint8, C order) for the data sets built from upstream files.
ARRAY_SHA256: dict[str, dict[str, str]] = {
    "binarized_mnist": {
        "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
        "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
        "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
    },
    "frey_faces": {
        "images": "2438ba4f0d2a6bd8bac43de756141eaa33c8d248dd613d464bdb1210d9b7af78",
    },
}

Fetch = Callable[[str, "os.PathLike[str] | str"], None]


def _urllib_fetch(url: str, dst: os.PathLike[str] | str) -> None:
    """Copy ``url`` (http, https or file) to the local path ``dst``."""
    with urllib.request.urlopen(url, timeout=60) as resp, open(dst, "wb") as out:
        shutil.copyfileobj(resp, out, length=1 << 20)


def sha256_of(path: os.PathLike[str] | str, checksum_of: Literal["file", "gunzip"] = "file") -> str:
    """SHA-256 hex digest of a file's bytes, or of its gunzipped content."""
    h = hashlib.sha256()
    opener = gzip.open if checksum_of == "gunzip" else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def download_file(remote: RemoteFile, root: os.PathLike[str] | str, fetch: Fetch | None = None,
                  force: bool = False) -> Path:
    """Fetch one :class:`RemoteFile` into ``root`` with checksum verification and an atomic rename.

    An existing file with the right checksum is kept (unless ``force``). Each URL is tried in
    turn; a download whose checksum is wrong is deleted and the next URL is tried.

    Raises:
        ValueError: every URL answered but none gave the expected checksum.
        OSError: no URL could be fetched (the last error is chained).
    """
    fetch = fetch or _urllib_fetch
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / remote.filename
    if final.is_file() and not force:
        try:
            if sha256_of(final, remote.checksum_of) == remote.sha256:
                return final
        except (OSError, EOFError, gzip.BadGzipFile):
            pass
    errors: list[str] = []
    last_exc: BaseException | None = None
    for url in remote.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=root)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fetch(url, tmp)
            try:
                got = sha256_of(tmp, remote.checksum_of)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                errors.append(f"{url}: unreadable ({exc})")
                continue
            if got != remote.sha256:
                errors.append(f"{url}: sha256 {got} != expected {remote.sha256}")
                continue
            os.replace(tmp, final)
            return final
        except (OSError, ValueError) as exc:  # urllib's URLError is an OSError
            errors.append(f"{url}: {exc}")
            last_exc = exc
        finally:
            if tmp.exists():
                tmp.unlink()
    msg = f"could not download {remote.filename} into {root}:\n  " + "\n  ".join(errors)
    if any("sha256" in e or "unreadable" in e for e in errors):
        raise ValueError(msg)
    raise OSError(msg) from last_exc


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp_name, **arrays)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _check_arrays(name: str, arrays: dict[str, np.ndarray]) -> None:
    for key, expected in ARRAY_SHA256[name].items():
        got = array_sha256(arrays[key])
        if got != expected:
            raise ValueError(f"{name}: converted array {key!r} has sha256 {got}, expected {expected}")


def _download_binarized_mnist(root: Path, fetch: Fetch | None, force: bool) -> Path:
    """Larochelle & Murray's text ``.amat`` files -> ``binarized_mnist.npz`` (keys train/valid/test)."""
    out = root / "binarized_mnist.npz"
    if out.is_file() and not force:
        return out
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        for key in ("train", "valid", "test"):
            fname = f"binarized_mnist_{key}.amat"
            dst = Path(tmp) / fname
            (fetch or _urllib_fetch)(_BMNIST_BASE + fname, dst)
            arrays[key] = np.loadtxt(dst, dtype=np.uint8)
    _check_arrays("binarized_mnist", arrays)
    _atomic_savez(out, **arrays)
    return out


def _download_frey_faces(root: Path, fetch: Fetch | None, force: bool) -> Path:
    """Roweis' ``frey_rawface.mat`` (``ff``: 560 x 1965) -> ``frey_faces.npz`` (``images``: 1965 x 28 x 20)."""
    out = root / "frey_faces.npz"
    if out.is_file() and not force:
        return out
    from scipy.io import loadmat

    with tempfile.TemporaryDirectory(dir=root) as tmp:
        dst = Path(tmp) / "frey_rawface.mat"
        (fetch or _urllib_fetch)("https://cs.nyu.edu/~roweis/data/frey_rawface.mat", dst)
        ff = np.asarray(loadmat(dst)["ff"], dtype=np.uint8)
    # each column is one face whose 560 values read row-major as 28 rows x 20 columns
    images = np.ascontiguousarray(ff.T).reshape(-1, 28, 20)
    _check_arrays("frey_faces", {"images": images})
    _atomic_savez(out, images=images)
    return out


_CONVERTERS: dict[str, Callable[[Path, Fetch | None, bool], Path]] = {
    "binarized_mnist": _download_binarized_mnist,
    "frey_faces": _download_frey_faces,
}


def download(name: str, root: os.PathLike[str] | str, fetch: Fetch | None = None, force: bool = False) -> Path:
    """Download data set ``name``'s files into ``root`` (created if needed) and return ``root``.

    Every file is verified against a SHA-256 before it gets its final name (see the module
    docstring for what each checksum covers). Afterwards ``load_dataset(name, data_dir=root)``
    works. ``fetch(url, dst)`` replaces the urllib fetcher (tests use a local one).
    """
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    if name in SOURCES:
        for remote in SOURCES[name]:
            download_file(remote, root, fetch=fetch, force=force)
        return root
    if name in _CONVERTERS:
        _CONVERTERS[name](root, fetch, force)
        return root
    raise ValueError(f"no download source for data set {name!r}; downloadable: {downloadable()}")


def downloadable() -> list[str]:
    """Names of data sets :func:`download` can fetch."""
    return sorted(set(SOURCES) | set(_CONVERTERS))


def download_hint(name: str) -> str:
    """One sentence telling a user how to obtain data set ``name``."""
    if name in SOURCES or name in _CONVERTERS:
        return (f"download it with: python -c \"from vaekit.data import download; "
                f"download('{name}', '~/.cache/vaekit/{name}')\" (see docs/datasets.md).")
    return "see docs/datasets.md for where to get it."
