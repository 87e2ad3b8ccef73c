"""Bring your own corpus: any folder of ``{digit}_{speaker}_{index}.wav`` clips loads like FSDD.

The folder is ``data.fsdd.source`` or ``$MMGA_AUDIO_DIR`` (which wins), relative to the project
root. Its clips may have any sample rate (and channels): they are read and resampled to
``data.fsdd.sample_rate`` by :func:`~mmga_helpers.modalities.audio.read_wav`. Speakers come from
the file names, not from a fixed list.

The first use of a folder records the sha256 of every clip in a manifest, in ``sha256sum``'s
format (so ``sha256sum -c`` checks it too): ``<folder>/MANIFEST.sha256`` when the folder is
writable, else ``data/manifests/<folder name>-<hash of its path>.sha256`` under the project (a
read-only folder is never written to). Every later load checks the folder against it: a changed,
missing or added clip is a :class:`~mmga_helpers.modalities.data.DataError` naming it, as FSDD's
own manifest makes a corrupt FSDD file one. ``mmga manifest DIR`` records a folder anew on
purpose. The test split follows ``data.fsdd.split`` (:func:`test_mask`) for FSDD and own folders alike.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmga_helpers.core.config import FsddConfig
from mmga_helpers.core.io import OutputError, atomic_write_text
from mmga_helpers.core.paths import from_root
from mmga_helpers.modalities.audio import AudioError, read_wav
from mmga_helpers.modalities.data import (
    FSDD,
    FSDD_TEST_INDICES,
    DataError,
    FsddSplit,
    load_fsdd,
    project_data_dir,
    sha256_bytes,
)

AUDIO_DIR_ENV = "MMGA_AUDIO_DIR"
PATTERN = "{digit}_{speaker}_{index}.wav"  # how a clip is named (the digit is 0-9, the index any number)
MANIFEST_NAME = "MANIFEST.sha256"
CLIP_NAME = re.compile(r"(?P<digit>[0-9])_(?P<speaker>[^_/\\]+)_(?P<index>[0-9]+)")
_MANIFEST_LINE = re.compile(r"(?P<digest>[0-9a-fA-F]{64}) [ *](?P<name>.+)")
_SHOWN = 5  # names listed in one error line


def _listed(names: list[str]) -> str:
    """The first few names, and how many more."""
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


# -- where the clips are ---------------------------------------------------------------------------------
def audio_source(source: str | None) -> Path | None:
    """The folder of one's own clips: ``$MMGA_AUDIO_DIR`` when set, else ``source``
    (``data.fsdd.source``), relative ones from the project root; None means FSDD. A name that is
    not a folder is a :class:`DataError` (a typo must not fall back to FSDD unnoticed)."""
    env = os.environ.get(AUDIO_DIR_ENV, "")
    raw, origin = (env, AUDIO_DIR_ENV) if env else (source, "data.fsdd.source")
    if not raw:
        return None
    folder = from_root(raw)
    if not folder.is_dir():
        relative = not Path(raw).expanduser().is_absolute()
        where = f" (from the project root: {folder.absolute()})" if relative else ""
        raise DataError(
            f"{origin}={raw} is not a folder{where}; point it at a folder of {PATTERN} clips, or unset "
            "it to use FSDD"
        )
    return folder


def clip_names(folder: Path) -> list[str]:
    """The ``.wav`` files directly in ``folder``, sorted; any whose name is not
    ``{digit}_{speaker}_{index}.wav`` is a :class:`DataError` naming a few."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give a folder of {PATTERN} clips")
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    bad = [n for n in names if not CLIP_NAME.fullmatch(Path(n).stem)]
    if bad:
        raise DataError(
            f"audio corpus {folder}: {len(bad)} clip name(s) not of the form {PATTERN} (e.g. "
            f"3_alice_12.wav): {_listed(bad)}; rename or move them out of the folder"
        )
    if not names:
        raise DataError(f"audio corpus {folder} holds no {PATTERN} clips")
    return names


def parse_names(names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(digits, speakers, indices)`` of clip names (checked by :func:`clip_names`)."""
    parts = [CLIP_NAME.fullmatch(Path(n).stem) for n in names]
    digits = np.array([int(m["digit"]) for m in parts], dtype=np.int64)  # type: ignore[index]
    speakers = np.array([m["speaker"] for m in parts], dtype=str)  # type: ignore[index]
    indices = np.array([int(m["index"]) for m in parts], dtype=np.int64)  # type: ignore[index]
    return digits, speakers, indices


# -- the manifest ----------------------------------------------------------------------------------------
def _writable(folder: Path) -> bool:
    """Whether the manifest may go into ``folder``: the process may write there and the folder is
    not marked read-only (no write bit at all: respected even by root, who could write anyway)."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def project_manifest_path(folder: Path) -> Path:
    """Where a read-only folder's manifest lives: under the project's ``data/manifests``, keyed by
    the folder's absolute path (two folders of the same name do not share one)."""
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    return project_data_dir() / "manifests" / f"{folder.resolve().name}-{key}.sha256"


def manifest_path(folder: Path) -> Path:
    """The manifest of ``folder``: the one in the folder, else the project's, when either exists;
    else where a new one would be written (the folder when writable)."""
    own, kept = folder / MANIFEST_NAME, project_manifest_path(folder)
    for candidate in (own, kept):
        if candidate.is_file():
            return candidate
    return own if _writable(folder) else kept


def hash_clips(folder: Path, names: list[str]) -> dict[str, str]:
    """File name -> sha256 of its bytes (a few threads: hashing releases the GIL)."""
    def digest(name: str) -> str:
        try:
            return sha256_bytes((folder / name).read_bytes())
        except OSError as err:
            raise DataError(f"audio corpus {folder}: cannot read {name} ({err.strerror or err})") from None

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(digest, names), strict=True))


def manifest_text(digests: dict[str, str]) -> str:
    """``sha256sum`` lines, sorted by name."""
    return "".join(f"{digests[n]}  {n}\n" for n in sorted(digests))


def read_manifest(path: Path) -> dict[str, str]:
    """A manifest file -> file name -> sha256; an unreadable or garbled one is a :class:`DataError`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(
            f"manifest {path} cannot be read ({err}); delete it to record the folder anew"
        ) from None
    out = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.fullmatch(line.rstrip("\r"))  # sha256sum -b writes '<sha256> *<name>'
        if match is None:
            raise DataError(
                f"manifest {path}, line {number}: not '<sha256>  <file name>'; delete the file or run "
                f"`mmga manifest {path.parent}` to write it anew"
            )
        out[match["name"]] = match["digest"].lower()
    return out


def write_manifest(folder: Path) -> tuple[Path, dict[str, str]]:
    """Record every clip of ``folder`` (replacing an earlier manifest), atomically: in the folder
    when it is writable, else under the project's ``data/manifests``. Returns the path and digests."""
    folder = Path(folder)
    digests = hash_clips(folder, clip_names(folder))
    text = manifest_text(digests)
    own = folder / MANIFEST_NAME
    if _writable(folder):
        try:
            atomic_write_text(own, text)
            project_manifest_path(folder).unlink(missing_ok=True)  # one manifest per folder
            return own, digests
        except OutputError:
            pass  # e.g. a read-only mount that access() did not see: keep it under the project
    if own.is_file():
        raise DataError(
            f"audio corpus {folder}: its {MANIFEST_NAME} is out of date and the folder is read-only; "
            "make the folder writable, or delete that file, to record the folder anew"
        )
    kept = project_manifest_path(folder)
    atomic_write_text(kept, text)
    return kept, digests


def check_manifest(folder: Path) -> tuple[Path, dict[str, str]]:
    """Check ``folder`` against its manifest (see :func:`manifest_path`); returns its path and
    digests. A changed, missing or added clip, or no manifest at all, is a one-line :class:`DataError`."""
    folder = Path(folder)
    names = clip_names(folder)
    path = manifest_path(folder)
    if not path.is_file():
        raise DataError(f"audio corpus {folder} has no manifest yet; write one with `mmga manifest {folder}`")
    recorded = read_manifest(path)
    actual = hash_clips(folder, names)
    changed = sorted(n for n in actual.keys() & recorded.keys() if actual[n] != recorded[n])
    missing = sorted(recorded.keys() - actual.keys())
    added = sorted(actual.keys() - recorded.keys())
    if changed or missing or added:
        parts = [
            f"{label} {_listed(group)}"
            for label, group in (("changed:", changed), ("missing:", missing), ("added:", added))
            if group
        ]
        raise DataError(
            f"audio corpus {folder} differs from its manifest {path}: {'; '.join(parts)}; restore those "
            f"files, or if the change is meant, record the folder anew with `mmga manifest {folder}`"
        )
    return path, recorded


def verified_manifest(folder: Path) -> tuple[Path, dict[str, str]]:
    """The folder's manifest, written on first use, checked on every later one."""
    path = manifest_path(folder)
    return check_manifest(folder) if path.is_file() else write_manifest(folder)


# -- splits and loading ----------------------------------------------------------------------------------
def test_mask(speakers: np.ndarray, indices: np.ndarray, fs: FsddConfig, what: str = "FSDD") -> np.ndarray:
    """Which clips form the test split under ``data.fsdd.split``: recordings numbered below
    ``test_indices``, or every clip of the ``test_speakers``. Either split coming out empty, or a
    held-out speaker the corpus lacks, is a :class:`DataError`."""
    speakers, indices = np.asarray(speakers).astype(str), np.asarray(indices)
    if fs.split == "index":
        test, rule = indices < fs.test_indices, f"split: index, test_indices: {fs.test_indices}"
    else:
        known = sorted(set(speakers.tolist()))
        unknown = sorted(set(fs.test_speakers) - set(known))
        if unknown:
            raise DataError(
                f"data.fsdd.test_speakers names {', '.join(unknown)}, not a speaker of {what} "
                f"(its speakers: {_listed(known)})"
            )
        test = np.isin(speakers, fs.test_speakers)
        rule = f"split: speakers, test_speakers: {fs.test_speakers}"
    for name, part in (("test", test), ("train", ~test)):
        if not part.any():
            raise DataError(f"{what}: the {name} split is empty under data.fsdd {rule}; change the rule")
    return test


@dataclass(frozen=True)
class Source:
    """A verified folder of one's own clips: where it is, its manifest and digests."""

    folder: Path
    manifest: Path
    digests: dict[str, str]

    @property
    def digest(self) -> str:
        """A short hash of the manifest's content: what the clips are, wherever the folder is."""
        return sha256_bytes(manifest_text(self.digests).encode())[:16]


def open_source(fs: FsddConfig) -> Source | None:
    """The configured own corpus, checked against its manifest (written on first use); None: FSDD."""
    folder = audio_source(fs.source)
    if folder is None:
        return None
    path, digests = verified_manifest(folder)
    return Source(folder, path, digests)


def load_folder(source: Source, fs: FsddConfig, split: FsddSplit = "all") -> FSDD:
    """A split of an own corpus as :class:`~mmga_helpers.modalities.data.FSDD`: every clip mono at
    ``fs.sample_rate``, each checked against the manifest again as it is read."""
    names = sorted(source.digests)
    digits, speakers, indices = parse_names(names)
    test = test_mask(speakers, indices, fs, f"audio corpus {source.folder}")
    keep = {"train": ~test, "test": test, "all": np.ones(len(names), bool)}[split]
    picked = [n for n, k in zip(names, keep, strict=True) if k]

    def read(name: str) -> tuple[np.ndarray | None, str | None]:
        try:
            raw = (source.folder / name).read_bytes()
        except OSError as err:
            return None, f"{name}: {err.strerror or err}"
        if sha256_bytes(raw) != source.digests[name]:
            return None, f"{name}: changed since its manifest {source.manifest} was written"
        try:
            return read_wav(raw, fs.sample_rate), None
        except AudioError as err:
            return None, str(err).replace("<bytes>", name, 1)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(read, picked))
    problems = [msg for _, msg in results if msg]
    if problems:
        raise DataError(
            f"audio corpus {source.folder}: {len(problems)} of {len(picked)} clips cannot be used "
            f"({'; '.join(problems[:_SHOWN])}{'; ...' if len(problems) > _SHOWN else ''})"
        )
    return FSDD(
        [w for w, _ in results], digits[keep], speakers[keep], indices[keep], sample_rate=fs.sample_rate
    )


def load_audio(fs: FsddConfig, split: FsddSplit, source: Source | None = None) -> FSDD:
    """The training clips as the config says: an own corpus (``source``, from :func:`open_source`)
    or FSDD, split by ``data.fsdd.split``; FSDD's official rule reads only the split's files."""
    if source is not None:
        return load_folder(source, fs, split)
    if split == "all" or (fs.split == "index" and fs.test_indices == len(FSDD_TEST_INDICES)):
        return load_fsdd(split)
    data = load_fsdd("all")
    test = test_mask(data.speakers, data.indices, fs)
    return data.subset(test if split == "test" else ~test)
