"""Simulated co-occurrence: which handwritten digit is seen while which spoken digit is heard.

This is the only place outside scoring where digit labels are read: they stand in for the world,
in which a child sees a written "3" while hearing "three". Everything downstream (clustering,
the brain) gets only the index pairs, never the labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _labels(values: ArrayLike, name: str) -> NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of digit labels; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"{name} must hold integer labels; got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _balanced_draw(pool: NDArray[np.int64], n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``n`` items from ``pool`` in random order, each used as evenly as possible (counts differ by
    at most one): lower variance than drawing with replacement, and every item takes part."""
    reps, rest = divmod(n, pool.size)
    out = np.concatenate([np.tile(pool, reps), rng.choice(pool, size=rest, replace=False)])
    return rng.permutation(out)


def cooccurring_pairs(
    image_labels: ArrayLike,
    audio_labels: ArrayLike,
    n_pairs: int,
    mismatch_fraction: float = 0.0,
    random_state: Any = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Index pairs ``(image_idx, audio_idx)`` of items that are experienced together.

    Images are drawn evenly from those whose digit is also spoken; each is paired with a clip of
    the same digit, except that exactly ``round(mismatch_fraction * n_pairs)`` pairs get a clip of
    a different digit (uniform over the other spoken digits): noise in the world, which the brain
    has to tolerate. ``random_state`` is an int seed, a numpy Generator or None.
    """
    img = _labels(image_labels, "image_labels")
    aud = _labels(audio_labels, "audio_labels")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int | np.integer) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer; got {n_pairs!r}")
    if not (isinstance(mismatch_fraction, int | float | np.floating) and 0.0 <= mismatch_fraction < 1.0):
        raise ValueError(f"mismatch_fraction must be in [0, 1); got {mismatch_fraction!r}")
    n_pairs, mismatch_fraction = int(n_pairs), float(mismatch_fraction)
    audio_digits = np.unique(aud)
    shared = np.intersect1d(np.unique(img), audio_digits)
    if shared.size == 0:
        raise ValueError(
            f"image and audio labels share no digit (image: {np.unique(img).tolist()}, "
            f"audio: {audio_digits.tolist()}); no pair can co-occur"
        )
    n_mismatch = round(mismatch_fraction * n_pairs)
    if n_mismatch and audio_digits.size < 2:
        raise ValueError("mismatch_fraction > 0 needs at least two different spoken digits")
    rng = np.random.default_rng(random_state)

    eligible = np.flatnonzero(np.isin(img, shared))
    image_idx = _balanced_draw(eligible, n_pairs, rng)
    target = img[image_idx].copy()  # the digit each pair's clip should say

    if n_mismatch:
        wrong = rng.choice(n_pairs, size=n_mismatch, replace=False)
        # uniform over the other spoken digits: draw a rank among len-1 and skip the true digit's slot
        own = np.searchsorted(audio_digits, target[wrong])
        rank = rng.integers(0, audio_digits.size - 1, size=n_mismatch)
        target[wrong] = audio_digits[rank + (rank >= own)]

    audio_idx = np.empty(n_pairs, dtype=np.int64)
    for digit in np.unique(target):
        slots = np.flatnonzero(target == digit)
        audio_idx[slots] = _balanced_draw(np.flatnonzero(aud == digit), slots.size, rng)
    return image_idx.astype(np.int64), audio_idx


def cooccurrence_targets(
    partner_clusters: ArrayLike, item_idx: ArrayLike, n_items: int, n_clusters: int
) -> NDArray[np.float32]:
    """``[n_items, n_clusters]``: row ``i`` is the distribution of the partner-modality clusters
    that item ``i`` co-occurred with (pair ``p`` links item ``item_idx[p]`` to a partner in cluster
    ``partner_clusters[p]``). An item in no pair gets a row of zeros, which adds nothing to a
    cross-entropy. These soft targets are what the convergence head of an autoencoder learns."""
    clusters = np.asarray(partner_clusters, dtype=np.int64)
    items = np.asarray(item_idx, dtype=np.int64)
    if clusters.shape != items.shape or clusters.ndim != 1:
        raise ValueError(
            f"partner_clusters and item_idx must be 1-D of one length; got {clusters.shape}, {items.shape}"
        )
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"item_idx must lie in [0, {n_items}); got [{items.min()}, {items.max()}]")
    if clusters.size and (clusters.min() < 0 or clusters.max() >= n_clusters):
        raise ValueError(
            f"partner_clusters must lie in [0, {n_clusters}); got [{clusters.min()}, {clusters.max()}]"
        )
    counts = np.zeros((n_items, n_clusters), np.float64)
    np.add.at(counts, (items, clusters), 1.0)
    return (counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)).astype(np.float32)
