"""Shared fixtures: offline data folders built in ``tmp_path``.

Nothing here downloads or writes into the repository: every fixture that touches the data loaders
points ``MMGA_ROOT`` at ``tmp_path / "proj"`` and replaces ``pooch.retrieve`` with a function that
raises :class:`ConnectionError` (and records the call), so a missing file fails fast and loudly.

The real data sets are found through ``$MMGA_DATA_DIR`` (CI: ``../shared/data`` from the repo root)
or, when unset, ``../shared/data`` beside the repository. Their absence is a test *failure*, not a
skip: a machine without the data cannot vouch for the loaders.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def real_data_path() -> Path:
    """Where the real data sets live: ``$MMGA_DATA_DIR`` (relative to the working dir, else to the
    repository root) or ``../shared/data`` beside the repository."""
    env = os.environ.get("MMGA_DATA_DIR")
    if not env:
        return (REPO_ROOT / ".." / "shared" / "data").resolve()
    path = Path(env)
    if not path.is_absolute():
        path = Path.cwd() / path if (Path.cwd() / path).exists() else REPO_ROOT / path
    return path.resolve()


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = real_data_path()
    missing = [
        str(p)
        for p in [path / "mnist" / f"{n}.gz" for n in MNIST_FILES] + [path / "fsdd" / "recordings"]
        if not p.exists()
    ]
    assert not missing, (
        f"real data not found under {path} (missing: {', '.join(missing)}); "
        "set MMGA_DATA_DIR to the folder holding mnist/ and fsdd/ (on these machines: ../shared/data)"
    )
    return path


# -- offline environment ---------------------------------------------------------------------------
@dataclass
class Offline:
    """The test's private project root and the URLs anything tried to download."""

    root: Path
    calls: list[str] = field(default_factory=list)
    monkeypatch: pytest.MonkeyPatch | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def use_data_dir(self, path: Path | str) -> None:
        assert self.monkeypatch is not None
        self.monkeypatch.setenv("MMGA_DATA_DIR", str(path))

    def no_data_dir(self) -> None:
        assert self.monkeypatch is not None
        self.monkeypatch.delenv("MMGA_DATA_DIR", raising=False)

    def set_retrieve(self, func) -> None:
        """Replace the (already refusing) ``pooch.retrieve`` with ``func``; calls are still recorded."""
        import pooch

        def recorded(url, *args, **kwargs):
            self.calls.append(url)
            return func(url, *args, **kwargs)

        assert self.monkeypatch is not None
        self.monkeypatch.setattr(pooch, "retrieve", recorded)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Offline:
    """No network, a private project root, and no data folder until a test names one."""
    state = Offline(root=tmp_path / "proj", monkeypatch=monkeypatch)
    state.root.mkdir()
    monkeypatch.setenv("MMGA_ROOT", str(state.root))
    monkeypatch.delenv("MMGA_DATA_DIR", raising=False)

    def refuse(url, *args, **kwargs):
        raise ConnectionError(f"tests never download ({url})")

    state.set_retrieve(refuse)
    return state


@pytest.fixture
def real_env(offline: Offline, real_data: Path) -> Offline:
    """The real shared data, read-only, with downloads refused."""
    offline.use_data_dir(real_data)
    return offline


# -- IDX / gzip helpers ----------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file (uint8) holding ``arr``."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = (0x0800 + arr.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corrupt_gz_content(path: Path, offset: int = -1) -> tuple[str, str]:
    """Flip one byte of the *decompressed* content of ``path`` (a valid gzip) and recompress it.

    Returns ``(sha256 before, sha256 after)`` of the decompressed content."""
    content = bytearray(gzip.decompress(path.read_bytes()))
    before = sha256(bytes(content))
    content[offset] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(content), compresslevel=1))
    return before, sha256(bytes(content))


def truncate_file(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@dataclass
class FakeMnist:
    folder: Path  # the MMGA_DATA_DIR (holds mnist/)
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    gz: dict[str, bytes]  # file name (without .gz) -> gzip bytes


def build_fake_mnist(folder: Path, counts: dict[str, int], seed: int = 0) -> FakeMnist:
    """Small valid IDX ``.gz`` files under ``folder / "mnist"``."""
    rng = np.random.default_rng(seed)
    (folder / "mnist").mkdir(parents=True, exist_ok=True)
    images, labels, gz = {}, {}, {}
    names = {"train": MNIST_FILES[:2], "test": MNIST_FILES[2:]}
    for split, n in counts.items():
        img = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        lab = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(lab)
        images[split], labels[split] = img, lab
        for name, arr in zip(names[split], (img, lab), strict=True):
            gz[name] = gzip.compress(idx_bytes(arr), compresslevel=1)
            (folder / "mnist" / f"{name}.gz").write_bytes(gz[name])
    return FakeMnist(folder, images, labels, gz)


@pytest.fixture
def fake_mnist(offline: Offline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMnist:
    """A fake MNIST (20 train, 10 test) that ``load_mnist`` accepts: the expected hashes and counts
    are patched to match it, and ``MMGA_DATA_DIR`` points at it."""
    from mmga_helpers.modalities import data

    counts = {"train": 20, "test": 10}
    fake = build_fake_mnist(tmp_path / "fake", counts)
    monkeypatch.setattr(
        data, "MNIST_SHA256", {n: sha256(gzip.decompress(b)) for n, b in fake.gz.items()}
    )
    monkeypatch.setattr(
        data,
        "MNIST_SPLITS",
        {
            "train": (MNIST_FILES[0], MNIST_FILES[1], counts["train"]),
            "test": (MNIST_FILES[2], MNIST_FILES[3], counts["test"]),
        },
    )
    offline.use_data_dir(fake.folder)
    return fake


@pytest.fixture
def mnist_copy(real_env: Offline, real_data: Path, tmp_path: Path) -> Path:
    """A writable copy of the four real MNIST ``.gz`` files; ``MMGA_DATA_DIR`` points at it.
    Returns its ``mnist/`` folder (corrupt files there with the helpers above)."""
    folder = tmp_path / "copy" / "mnist"
    folder.mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copyfile(real_data / "mnist" / f"{name}.gz", folder / f"{name}.gz")
    real_env.use_data_dir(folder.parent)
    return folder


@dataclass
class FsddCopy:
    folder: Path  # the MMGA_DATA_DIR (holds fsdd/recordings)
    recordings: Path
    source: Path

    def corrupt(self, name: str, offset: int = 100) -> tuple[str, str]:
        """Replace the link ``name`` by a copy with one byte flipped; returns (good sha, bad sha)."""
        raw = bytearray((self.source / name).read_bytes())
        good = sha256(bytes(raw))
        raw[offset] ^= 0xFF
        (self.recordings / name).unlink()
        (self.recordings / name).write_bytes(bytes(raw))
        return good, sha256(bytes(raw))

    def remove(self, name: str) -> None:
        (self.recordings / name).unlink()

    def replace(self, name: str, data: bytes) -> None:
        (self.recordings / name).unlink()
        (self.recordings / name).write_bytes(data)


@pytest.fixture
def fsdd_copy(real_env: Offline, real_data: Path, tmp_path: Path) -> FsddCopy:
    """``fsdd/recordings`` of symbolic links to the real WAVs; ``MMGA_DATA_DIR`` points at it."""
    source = real_data / "fsdd" / "recordings"
    recordings = tmp_path / "copy" / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    for wav in os.listdir(source):
        os.symlink(source / wav, recordings / wav)
    real_env.use_data_dir(recordings.parent.parent)
    return FsddCopy(recordings.parent.parent, recordings, source)


@pytest.fixture(scope="session")
def quick_fsdd_cfg():
    from mmga_helpers.core.config import load_config

    return load_config("quick").data.fsdd
