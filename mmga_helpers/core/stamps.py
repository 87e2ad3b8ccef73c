"""Stamps: short content hashes that tie a cached artefact to the inputs that made it.

A stage reuses an artefact only when its stamp matches the one computed from the current inputs, so
a changed input (data, config, seed, an upstream model) refits exactly what depends on it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


def array_stamp(*arrays: ArrayLike, extra: Any = None) -> str:
    """A short sha256 of the arrays' shapes, dtypes and bytes (and of ``extra``, JSON-encoded)."""
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(arr.tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def data_fingerprint(x: np.ndarray) -> str:
    """Cheap but content-sensitive: shape, dtype and a hash of every 97th value."""
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(np.ascontiguousarray(x.reshape(-1)[::97]).tobytes())
    return h.hexdigest()[:16]


def json_stamp(data: Any, *, sort_keys: bool = False) -> str:
    """A short sha256 of a JSON-encoded value (keys in the order given unless ``sort_keys``)."""
    return hashlib.sha256(json.dumps(data, sort_keys=sort_keys, default=str).encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The full sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
