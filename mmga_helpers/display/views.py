"""2-D views of latent spaces (UMAP, t-SNE) and a reading order for heatmaps of cluster ids:
display only, nothing here is scored."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors


def reading_order(counts: NDArray[np.int64]) -> tuple[NDArray[np.int64], list[str]]:
    """Clusters sorted by majority digit (largest first within a digit) and labels ``"c3 (≈7)"``:
    cluster id and majority digit, to read heatmaps of arbitrary cluster ids. Display only."""
    counts = np.asarray(counts)
    total = counts.sum(axis=1)
    maj = np.where(total > 0, counts.argmax(axis=1), counts.shape[1])
    order = np.lexsort((-total, maj)).astype(np.int64)
    labels = [f"c{c} (≈{maj[c]})" if total[c] else f"c{c}" for c in order]
    return order, labels


def two_d_views(
    x: NDArray,
    method: Literal["umap", "tsne"],
    seed: int = 0,
    max_points: int = 2000,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """A 2-D embedding of at most ``max_points`` rows (a seeded subsample) and those rows' indices."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), max_points, replace=False)) if len(x) > max_points else np.arange(len(x))
    sub = np.asarray(x[idx], dtype=np.float64)
    sub = (sub - sub.mean(axis=0)) / np.where(sub.std(axis=0) > 0, sub.std(axis=0), 1.0)
    if method == "umap":
        import umap

        # exact neighbours from scikit-learn: umap-learn's own path for small data compiles its
        # numba kernels in every new process; the graph is the same
        k = min(15, len(sub) - 1)
        dist, ind = NearestNeighbors(n_neighbors=k).fit(sub).kneighbors(sub)
        with warnings.catch_warnings():  # no search index: this view never transforms new points
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            emb = umap.UMAP(
                n_components=2,
                n_neighbors=k,
                min_dist=0.1,
                random_state=seed,
                n_jobs=1,
                precomputed_knn=(ind, dist, None),
            ).fit_transform(sub)
    elif method == "tsne":
        emb = TSNE(
            n_components=2, perplexity=min(30.0, (len(sub) - 1) / 3), init="pca", random_state=seed
        ).fit_transform(sub)
    else:
        raise ValueError(f"method must be 'umap' or 'tsne'; got {method!r}")
    return np.asarray(emb, dtype=np.float64), idx
