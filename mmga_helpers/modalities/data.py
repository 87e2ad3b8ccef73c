"""Verified MNIST and FSDD.

Files are looked for in ``$MMGA_DATA_DIR`` (when set; a relative one is taken from the project
root, see :mod:`mmga_helpers.core.paths`) and then in the project's ``data/``; when absent from
both they are downloaded with pooch into ``data/``. Every file is verified before use:
MNIST by the sha256 of its decompressed IDX content (mirrors recompress the ``.gz`` files, the
content is what must not change), FSDD by a per-file sha256 manifest shipped in this package. A
missing, truncated or corrupt file raises :class:`DataError` naming the file, both checksums and
the fix; a partial data set is never returned.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from mmga_helpers.core.paths import from_root

MNIST_SHA256 = {  # of the decompressed IDX files; see ../shared/data/README.md
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FSDD_ARCHIVE_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
FSDD_SAMPLE_RATE = 8000
FSDD_TEST_INDICES = range(0, 5)  # the official test split: recordings numbered 0-4
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")

Split = Literal["train", "test"]
FsddSplit = Literal["train", "test", "all"]


class DataError(RuntimeError):
    """A data file is missing, truncated or corrupt, or a split has the wrong size."""


# -- where files live ----------------------------------------------------------------------------------
def project_data_dir() -> Path:
    """The project's own ``data/`` folder, where downloads land: under the project root
    (``$MMGA_ROOT``, else found from the working directory; :func:`~mmga_helpers.core.paths.project_root`)."""
    return from_root("data")


def search_dirs() -> list[Path]:
    """``$MMGA_DATA_DIR`` (when set; relative to the project root, wherever the process started; it
    must be a folder: a typo there should not turn into a download attempt), then the project's
    ``data/``."""
    dirs = []
    if os.environ.get("MMGA_DATA_DIR"):
        raw = os.environ["MMGA_DATA_DIR"]
        given = from_root(raw)
        if not given.is_dir():
            where = "" if Path(raw).is_absolute() else f" (from the project root: {given.absolute()})"
            raise DataError(
                f"MMGA_DATA_DIR={raw} is not a folder{where}; point it at one holding mnist/ and fsdd/ "
                "(on these machines: ../shared/data), or unset it to download into data/"
            )
        dirs.append(given)
    dirs.append(project_data_dir())
    return dirs


def _fix_hint(path: Path) -> str:
    return (
        f"delete {path} and run again to download a fresh copy, or set MMGA_DATA_DIR to a folder "
        "holding good copies (on these machines: ../shared/data)"
    )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- MNIST --------------------------------------------------------------------------------------------------
def _find_mnist_file(name: str) -> Path | None:
    for d in search_dirs():
        for candidate in (d / "mnist" / f"{name}.gz", d / "mnist" / name):
            if candidate.is_file():
                return candidate
    return None


def _download_mnist_file(name: str) -> Path:
    import pooch  # imported here: only a missing file needs the network stack

    target = project_data_dir() / "mnist"
    errors = []
    for mirror in MNIST_MIRRORS:
        try:
            path = pooch.retrieve(
                mirror + f"{name}.gz", known_hash=None, fname=f"{name}.gz", path=target, progressbar=True
            )
            return Path(path)
        except Exception as err:  # network errors come in many types; all mean "try the next mirror"
            errors.append(f"{mirror}: {type(err).__name__}: {err}")
    raise DataError(
        f"MNIST file {name} is not in {', '.join(map(str, search_dirs()))} and could not be downloaded "
        f"({'; '.join(errors)}). Set MMGA_DATA_DIR to a folder with mnist/{name}.gz "
        "(on these machines: ../shared/data)."
    )


def _read_verified_idx(name: str) -> bytes:
    path = _find_mnist_file(name)
    downloaded = path is None
    if path is None:
        path = _download_mnist_file(name)
    raw = path.read_bytes()
    try:
        content = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as err:
        if downloaded:
            path.unlink(missing_ok=True)
        raise DataError(f"MNIST file {path} is truncated or not gzip ({err}); {_fix_hint(path)}") from None
    actual = sha256_bytes(content)
    expected = MNIST_SHA256[name]
    if actual != expected:
        if downloaded:
            path.unlink(missing_ok=True)
        raise DataError(
            f"MNIST file {path} is corrupt: sha256 of its decompressed content is {actual}, expected "
            f"{expected}; {_fix_hint(path)}"
        )
    return content


def _parse_idx(content: bytes, name: str, ndim: int, count: int) -> np.ndarray:
    magic = int.from_bytes(content[:4], "big")
    if magic != 0x0800 + ndim:
        raise DataError(f"MNIST file {name}: not an IDX file of {ndim} dimensions (magic {magic:#x})")
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if dims[0] != count:
        raise DataError(f"MNIST file {name}: holds {dims[0]} items, expected {count}")
    offset = 4 + 4 * ndim
    return np.frombuffer(content, dtype=np.uint8, offset=offset).reshape(dims)


def load_mnist(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: uint8 ``[N, 28, 28]`` and int64 ``[N]``; 60,000 train or 10,000 test."""
    if split not in MNIST_SPLITS:
        raise ValueError(f"MNIST split must be 'train' or 'test', got {split!r}")
    images_name, labels_name, count = MNIST_SPLITS[split]
    images = _parse_idx(_read_verified_idx(images_name), images_name, 3, count)
    labels = _parse_idx(_read_verified_idx(labels_name), labels_name, 1, count).astype(np.int64)
    return images, labels


# -- FSDD ---------------------------------------------------------------------------------------------------
def fsdd_manifest() -> dict[str, str]:
    """File name -> sha256 for the 3,000 recordings of FSDD v1.0.10 (6 speakers)."""
    text = resources.files("mmga_helpers.modalities.manifests").joinpath("fsdd_sha256.txt").read_text()
    pairs = (line.split() for line in text.splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


def _parse_name(name: str) -> tuple[int, str, int]:
    digit, speaker, index = Path(name).stem.split("_")
    return int(digit), speaker, int(index)


def _find_recordings_dir() -> Path | None:
    for d in search_dirs():
        if (d / "fsdd" / "recordings").is_dir():
            return d / "fsdd" / "recordings"
    return None


def _download_fsdd() -> Path:
    import pooch

    target = project_data_dir() / "fsdd"
    try:
        members = pooch.retrieve(
            FSDD_ARCHIVE_URL,
            known_hash=None,
            fname="fsdd-v1.0.10.tar.gz",
            path=target,
            processor=pooch.Untar(extract_dir="_archive"),
            progressbar=True,
        )
    except Exception as err:
        raise DataError(
            f"FSDD is not in {', '.join(map(str, search_dirs()))} and could not be downloaded from "
            f"{FSDD_ARCHIVE_URL} ({type(err).__name__}: {err}). Set MMGA_DATA_DIR to a folder with "
            "fsdd/recordings/ (on these machines: ../shared/data)."
        ) from None
    wavs = [Path(m) for m in members if m.endswith(".wav") and Path(m).parent.name == "recordings"]
    if not wavs:
        raise DataError(f"the FSDD archive from {FSDD_ARCHIVE_URL} holds no recordings/ folder")
    staging = target / ".recordings.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(wavs[0].parent, staging)
    staging.rename(target / "recordings")  # a half-copied folder never sits at the final path
    shutil.rmtree(target / "_archive", ignore_errors=True)
    return target / "recordings"


@dataclass(frozen=True)
class FSDD:
    """Spoken digits: one waveform per clip plus aligned arrays of digit, speaker and index."""

    waves: list[np.ndarray]
    digits: np.ndarray
    speakers: np.ndarray
    indices: np.ndarray
    sample_rate: int = FSDD_SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.waves)

    def subset(self, selection: np.ndarray | Sequence[int]) -> FSDD:
        """A boolean mask or integer positions; keeps every array aligned."""
        pos = np.flatnonzero(selection) if np.asarray(selection).dtype == bool else np.asarray(selection)
        return FSDD(
            [self.waves[i] for i in pos],
            self.digits[pos],
            self.speakers[pos],
            self.indices[pos],
            self.sample_rate,
        )

    @property
    def is_official_test(self) -> np.ndarray:
        return np.isin(self.indices, FSDD_TEST_INDICES)


def _load_clip(path: Path, expected: str) -> tuple[np.ndarray | None, str | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, f"{path}: missing"
    actual = sha256_bytes(raw)
    if actual != expected:
        return None, f"{path}: sha256 {actual}, expected {expected}"
    wave, sr = sf.read(io.BytesIO(raw), dtype="float32", always_2d=False)
    if sr != FSDD_SAMPLE_RATE or wave.ndim != 1:
        return None, f"{path}: {sr} Hz with shape {wave.shape}, expected 8000 Hz mono"
    return wave, None


def load_fsdd(split: FsddSplit = "train") -> FSDD:
    """FSDD clips at 8 kHz: ``"train"`` (numbered 5-49, 2,700), ``"test"`` (0-4, 300) or ``"all"``."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"FSDD split must be 'train', 'test' or 'all', got {split!r}")
    manifest = fsdd_manifest()
    folder = _find_recordings_dir() or _download_fsdd()
    names = sorted(manifest, key=lambda n: (_parse_name(n)[1], _parse_name(n)[0], _parse_name(n)[2]))
    meta = np.array([_parse_name(n) for n in names], dtype=object)
    indices = meta[:, 2].astype(np.int64)
    keep = {"train": indices >= 5, "test": indices < 5, "all": np.ones(len(names), bool)}[split]
    names = [n for n, k in zip(names, keep, strict=True) if k]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda n: _load_clip(folder / n, manifest[n]), names))
    problems = [msg for _, msg in results if msg]
    if problems:
        shown = "; ".join(problems[:5])
        more = f"; ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise DataError(
            f"FSDD: {len(problems)} of {len(names)} recordings failed verification ({shown}{more}); "
            f"fix: {_fix_hint(folder)}"
        )
    expected_count = {"train": 2700, "test": 300, "all": 3000}[split]
    if len(names) != expected_count:
        raise DataError(f"FSDD {split}: {len(names)} recordings, expected {expected_count}")
    meta = meta[keep]
    return FSDD(
        waves=[w for w, _ in results],
        digits=meta[:, 0].astype(np.int64),
        speakers=meta[:, 1].astype(str),
        indices=meta[:, 2].astype(np.int64),
    )


def speaker_folds(data: FSDD) -> Iterator[tuple[str, FSDD, FSDD]]:
    """Leave-one-speaker-out: ``(speaker, clips of the other speakers, clips of this speaker)``."""
    for speaker in np.unique(data.speakers):
        held = data.speakers == speaker
        yield str(speaker), data.subset(~held), data.subset(held)
