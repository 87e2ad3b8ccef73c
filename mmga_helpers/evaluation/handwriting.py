"""Hands never seen: MNIST test digits changed the ways handwriting and its capture differ
(:data:`~mmga_helpers.modalities.handwriting.TRANSFORMS`), then normalised the way the public API
normalises any picture, encoded and assigned to a cluster. The figure for a transform is the share
of its pictures assigned to their digit's cluster, the digit-to-cluster matching being the
one-to-one matching of the *training* images' clusters to their digits (no test label chooses it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from mmga_helpers.core.inference import BatchInference
from mmga_helpers.core.metrics import contingency
from mmga_helpers.modalities.digits import normalize_digits
from mmga_helpers.modalities.handwriting import TRANSFORMS
from mmga_helpers.stages.run import Data


def digit_to_cluster(train_clusters: NDArray, train_digits: NDArray) -> dict[int, int]:
    """Each digit's cluster under the one-to-one matching of training clusters to training digits
    (the matching cluster ACC uses, fitted on training images only)."""
    table = contingency(train_digits, train_clusters)  # [cluster, digit] over the ids present
    clusters, digits = np.unique(train_clusters), np.unique(train_digits)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {int(digits[c]): int(clusters[r]) for r, c in zip(rows, cols, strict=True)}


def transformed_digits(
    images: NDArray, seed: int = 0, names: tuple[str, ...] | None = None
) -> dict[str, NDArray[np.float32]]:
    """``{transform: normalised [N, 28, 28] pictures}`` for the given test digits (``[N, 28, 28]``
    or ``[N, 28, 28, 1]`` in [0, 1]); each transform draws from its own seeded generator."""
    x = np.asarray(images, np.float32)
    x = x[..., 0] if x.ndim == 4 else x
    out = {}
    for i, name in enumerate(names or tuple(TRANSFORMS)):
        pictures = np.clip(TRANSFORMS[name](x, np.random.default_rng([seed, i])), 0.0, 1.0)
        out[name] = normalize_digits(pictures.astype(np.float32))
    return out


def robustness_figures(
    assign: Callable[[NDArray[np.float32]], NDArray],
    images: NDArray,
    digits: NDArray,
    match: dict[int, int],
    *,
    seed: int = 0,
) -> dict[str, float]:
    """``image.robustness.<transform>`` (share in the digit's cluster), their ``mean`` and ``worst``,
    and ``image.robustness.clean``: the untouched test digits through the same normalisation.
    ``assign`` maps normalised pictures ``[N, 28, 28]`` to cluster ids (encoder + clusterer)."""
    digits = np.asarray(digits)
    expected = np.array([match.get(int(d), -1) for d in range(int(digits.max()) + 1)])[digits]
    x = np.asarray(images, np.float32)
    sets = {"clean": normalize_digits(x[..., 0] if x.ndim == 4 else x), **transformed_digits(x, seed)}
    out = {f"image.robustness.{name}": float(np.mean(assign(p) == expected)) for name, p in sets.items()}
    values = [out[f"image.robustness.{name}"] for name in TRANSFORMS]
    out["image.robustness.mean"] = float(np.mean(values))
    out["image.robustness.worst"] = float(np.min(values))
    return out


def handwriting_figures(
    encoder, clusterer, train_clusters: NDArray, data: Data, *, seed: int = 0
) -> dict[str, float]:
    """:func:`robustness_figures` for this seed: its image ``encoder`` and image ``clusterer``
    (fitted on the training codes, whose ids ``train_clusters`` choose the matching), on the run's
    MNIST test split."""
    infer = BatchInference(encoder)

    def assign(pictures: NDArray[np.float32]) -> NDArray:
        return np.asarray(clusterer.predict(infer(pictures[..., None])))

    match = digit_to_cluster(train_clusters, data.image_train_labels)
    return robustness_figures(assign, data.image_test, data.image_test_labels, match, seed=seed)
