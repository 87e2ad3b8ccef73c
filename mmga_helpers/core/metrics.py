"""Scoring: the only place where digit labels meet what was learned without them.

Cluster ids are arbitrary, so accuracy matches clusters to digits one-to-one (Hungarian) before
counting; cross-modal accuracy asks whether the cluster one modality evokes in the other is the
one that, in training, co-occurred mostly with the right digit. Results over seeds are reported
as mean and standard deviation; nested result dicts are flattened to ``"a.b.c"`` keys for tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score


def int_vector(values: ArrayLike, name: str) -> NDArray[np.int64]:
    """A 1-D integer array (labels or cluster ids), or a ValueError naming ``name``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers; got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    t, p = int_vector(y_true, "y_true"), int_vector(y_pred, "y_pred")
    if t.size != p.size:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("cannot score empty label arrays")
    return t, p


def contingency(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.int64]:
    """Counts ``[cluster, class]`` over the distinct values present (any integer ids allowed)."""
    t, p = _pair(y_true, y_pred)
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    n_t, n_p = ti.max() + 1, pi.max() + 1
    return np.bincount(pi * n_t + ti, minlength=n_p * n_t).reshape(n_p, n_t)


def cluster_acc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Accuracy under the best one-to-one cluster-to-class matching.

    With more clusters than classes the extra clusters stay unmatched and count as wrong (no
    many-to-one merging, which would make ACC grow with the number of clusters).
    """
    t, _ = _pair(y_true, y_pred)
    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / t.size)


def cluster_scores(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    X: ArrayLike | None = None,
    sample_size: int = 5000,
    random_state: int | None = 0,
) -> dict[str, float]:
    """ACC, NMI, ARI against the labels and silhouette on ``X`` (NaN without ``X`` or with one
    cluster). Silhouette is quadratic in samples, so it uses a seeded subsample of ``sample_size``."""
    t, p = _pair(y_true, y_pred)
    scores = {
        "acc": cluster_acc(t, p),
        "nmi": float(normalized_mutual_info_score(t, p)),
        "ari": float(adjusted_rand_score(t, p)),
        "silhouette": float("nan"),
    }
    if X is not None:
        Xa = np.asarray(X, dtype=np.float64)
        if Xa.ndim != 2 or Xa.shape[0] != p.size:
            raise ValueError(f"X must be 2-D with one row per label ({p.size}); got shape {Xa.shape}")
        if sample_size < 2:
            raise ValueError(f"sample_size must be at least 2; got {sample_size}")
        idx = np.arange(p.size)
        if p.size > sample_size:
            idx = np.sort(np.random.default_rng(random_state).choice(p.size, sample_size, replace=False))
        n_labels = np.unique(p[idx]).size
        if 2 <= n_labels <= idx.size - 1:
            scores["silhouette"] = float(silhouette_score(Xa[idx], p[idx]))
    return scores


# -- cross-modal ------------------------------------------------------------------------------------
def cluster_digit_counts(
    clusters: ArrayLike, digits: ArrayLike, n_clusters: int, n_digits: int | None = None
) -> NDArray[np.int64]:
    """``[cluster, digit]`` counts over (training) pairs; ``n_digits`` defaults to max digit + 1."""
    c, d = int_vector(clusters, "clusters"), int_vector(digits, "digits")
    if c.size != d.size:
        raise ValueError(f"clusters and digits differ in length: {c.size} vs {d.size}")
    if c.size and (c.min() < 0 or c.max() >= n_clusters):
        raise ValueError(f"cluster ids must lie in [0, {n_clusters}); got {c.min()}..{c.max()}")
    if d.size and d.min() < 0:
        raise ValueError("digits must be non-negative")
    n_d = (int(d.max()) + 1 if d.size else 1) if n_digits is None else n_digits
    if d.size and d.max() >= n_d:
        raise ValueError(f"digit {d.max()} is out of range for n_digits={n_d}")
    return np.bincount(c * n_d + d, minlength=n_clusters * n_d).reshape(n_clusters, n_d)


def _majority(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Each row's most frequent digit (smallest on ties); -1 for a cluster never seen."""
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), -1).astype(np.int64)


def cluster_majority_digit(
    train_clusters: ArrayLike, train_digits: ArrayLike, n_clusters: int
) -> NDArray[np.int64]:
    """Each cluster's majority digit among the training pairs (-1 if the cluster never occurred)."""
    return _majority(cluster_digit_counts(train_clusters, train_digits, n_clusters))


def cross_modal_accuracy(
    pred_clusters: ArrayLike, true_digits: ArrayLike, train_cluster_digit_counts: ArrayLike
) -> float:
    """Share of items whose predicted cluster (in the other modality) co-occurred in training
    mostly with the item's true digit. ``train_cluster_digit_counts`` comes from
    :func:`cluster_digit_counts`; a cluster never seen in training is always wrong."""
    pred, true = _pair(true_digits, pred_clusters)[::-1]
    counts = np.asarray(train_cluster_digit_counts)
    if counts.ndim != 2:
        raise ValueError(
            f"train_cluster_digit_counts must be a 2-D [cluster, digit] table; got shape {counts.shape}"
        )
    if pred.min() < 0 or pred.max() >= counts.shape[0]:
        raise ValueError(
            f"predicted cluster ids must lie in [0, {counts.shape[0]}); got {pred.min()}..{pred.max()}"
        )
    return float(np.mean(_majority(counts)[pred] == true))


# -- seeds and tables -------------------------------------------------------------------------------
def mean_std(values: Sequence[float] | ArrayLike) -> dict[str, float | int]:
    """Mean and *sample* standard deviation (ddof=1) over seeds, with the number of seeds.

    With one seed no spread is measured: ``std`` is 0.0 and ``n_seeds`` 1 says so."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n_seeds": int(arr.size)}


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | int]]:
    """``{key: mean_std}`` over per-seed flat result dicts, which must all have the same keys."""
    if not results:
        raise ValueError("aggregate_seeds needs at least one result dict")
    keys = list(results[0])
    for i, res in enumerate(results[1:], start=1):
        if set(res) != set(keys):
            diff = sorted(set(res) ^ set(keys))
            raise ValueError(f"result {i} has different keys than result 0: {diff}")
    out = {}
    for key in keys:
        vals = [res[key] for res in results]
        bad = [v for v in vals if isinstance(v, bool) or not isinstance(v, Real)]
        if bad:
            raise ValueError(
                f"key {key!r} holds non-numeric values {bad[:3]!r}; flatten() nested dicts first"
            )
        out[key] = mean_std(vals)
    return out


def flatten(nested: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; empty dicts are kept as values so unflatten round-trips."""
    flat: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if not isinstance(key, str) or sep in key:
                raise ValueError(f"key {key!r} must be a string without {sep!r} to flatten unambiguously")
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                walk(value, name + sep)
            else:
                flat[name] = dict(value) if isinstance(value, Mapping) else value

    walk(nested, "")
    return flat


def unflatten(flat: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """Inverse of :func:`flatten`; a key that is both a value and a prefix raises ValueError."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(sep)
        node = nested
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"key {key!r} conflicts with value at {sep.join(parents[: depth + 1])!r}")
            node = child
        if leaf in node:
            raise ValueError(f"key {key!r} conflicts with another key below it")
        node[leaf] = value
    return nested


def _numbers(node: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON-like tree, keyed by its dotted path (keys may hold dots already)."""
    if isinstance(node, Mapping):
        out: dict[str, float] = {}
        for key, value in node.items():
            out.update(_numbers(value, f"{prefix}{key}."))
        return out
    if isinstance(node, int | float) and not isinstance(node, bool):
        return {prefix[:-1]: float(node)}
    return {}


def figure_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], skip: Sequence[str] = ("run",)
) -> dict[str, float]:
    """``|a - b|`` for every number that both runs' ``metrics.json`` (or ``metrics_per_seed.json``)
    hold, except under the top-level keys ``skip`` (wall times and other facts about the run): how
    far two runs of the same seed and profile are apart. NaN where exactly one of them is NaN."""
    na = {k: v for k, v in _numbers(a).items() if k.split(".")[0] not in skip}
    nb = _numbers(b)
    out = {}
    for key in sorted(na.keys() & nb.keys()):
        x, y = na[key], nb[key]
        out[key] = 0.0 if (np.isnan(x) and np.isnan(y)) else abs(x - y)
    return out
