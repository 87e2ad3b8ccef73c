"""Atomic, pickle-free writing and reading of artefacts.

Every artefact is written to a temporary file in the same folder and renamed into place, so a
reader sees either the old complete file or the new complete file, never half of one. A full disk
or an unwritable folder raises :class:`OutputError` that names the path; the earlier file stays.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class OutputError(OSError):
    """An output could not be written; nothing earlier was lost."""


def _read_umask() -> int:
    mask = os.umask(0o022)  # the os module has no getter: set, read, restore (once, at import)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; an artefact should get the mode a plain open() would give it
_FILE_MODE = 0o666 & ~_read_umask()


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix
        )
        os.close(fd)
        os.chmod(tmp, _FILE_MODE)
    except OSError as err:
        raise OutputError(
            err.errno,
            f"cannot write under {path.parent}: {err.strerror}; "
            "check that the outputs folder exists and is writable",
        ) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        hint = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise OutputError(
            err.errno or errno.EIO, f"could not write {path}: {hint}; the previous version, if any, is intact"
        ) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_to_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path, suffix=".npz") as tmp:
        # allow_pickle=False: an object array would be pickled here and refused by read_npz;
        # uncompressed: float arrays shrink little, and zlib took 5 s of the FSDD feature cache
        np.savez(tmp, allow_pickle=False, **arrays)
    return Path(path)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load every array (never pickled objects) from an ``.npz`` file."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_with(path: str | Path, writer: Callable[[Path], None], suffix: str | None = None) -> Path:
    """Atomically write ``path`` with a third-party saver that takes a file name (e.g. Keras)."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)
    return Path(path)
