"""Pickle-free persistence of the learned estimators: one ``.npz`` file of plain arrays with a JSON
header (kind, parameters, format version), read back with ``allow_pickle=False``.

Every estimator keeps its learned state in plain arrays (attributes ending in ``_``), so that
``save`` can write it and ``load`` can rebuild an estimator that predicts exactly the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from mmga_helpers.core.io import read_npz, write_npz

FORMAT_VERSION = 1
_META_KEY = "__meta__"


def write_model(path: str | Path, kind: str, params: dict[str, Any], arrays: dict[str, NDArray]) -> Path:
    """Write ``arrays`` and a JSON header (kind, params) atomically into one ``.npz`` file."""
    meta = json.dumps({"kind": kind, "params": params, "format_version": FORMAT_VERSION}, sort_keys=True)
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved")
    return write_npz(path, **{_META_KEY: np.array(meta)}, **arrays)


def read_model(path: str | Path, kind: str | None = None) -> tuple[str, dict[str, Any], dict[str, NDArray]]:
    """Read what :func:`write_model` wrote; ``kind`` (when given) must match the stored kind."""
    arrays = read_npz(path)
    if _META_KEY not in arrays:
        raise ValueError(f"{path} is not a saved MMGA model (no {_META_KEY} entry)")
    meta = json.loads(str(arrays.pop(_META_KEY)))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format version {meta.get('format_version')!r}")
    if kind is not None and meta["kind"] != kind:
        raise ValueError(f"{path} holds a {meta['kind']}, not a {kind}")
    return meta["kind"], meta["params"], arrays


def json_seed(random_state: Any) -> int | None:
    """Only an int seed (or None) can be written to JSON; a generator object is stored as None."""
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        return int(random_state)
    return None


def seed_for(random_state: Any) -> int | None:
    """An int seed for libraries (UMAP) that want one; None stays None (non-deterministic)."""
    if random_state is None:
        return None
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class PersistentEstimator(ClusterMixin, BaseEstimator):
    """Shared save/load: subclasses list their learned arrays and how to rebuild derived state."""

    _state_arrays: ClassVar[tuple[str, ...]] = ()

    def _get_state(self) -> dict[str, NDArray]:
        check_is_fitted(self)
        return {name: np.asarray(getattr(self, name)) for name in self._state_arrays}

    def _set_state(self, arrays: dict[str, NDArray]) -> None:
        missing = [n for n in self._state_arrays if n not in arrays]
        if missing:
            raise ValueError(f"saved {type(self).__name__} lacks arrays {missing}")
        for name in self._state_arrays:
            value = arrays[name]
            setattr(self, name, value.item() if value.ndim == 0 else value)
        self.n_features_in_ = int(arrays["n_features_in_"])

    def _params_for_json(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params["random_state"] = json_seed(params.get("random_state"))
        return params

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` (.npz, no pickle)."""
        arrays = self._get_state()
        arrays["n_features_in_"] = np.asarray(self.n_features_in_)
        return write_model(path, type(self).__name__, self._params_for_json(), arrays)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        _, params, arrays = read_model(path, cls.__name__)
        est = cls(**params)
        est._set_state(arrays)
        return est
