"""The clusterers of autoencoder latents, in scikit-learn style: k-means, a Gaussian mixture, and
UMAP + Gaussian mixture after N2D (McConville et al., 2020), each saved without pickle
(:mod:`~mmga_helpers.learn.persistence`).

A fitted UMAP object cannot be stored without pickle, so :class:`UmapGMM` places new points by their
nearest training points: embedded at the mean of their embeddings, and assigned by a vote of their
mixture memberships. ``predict`` always uses that rule, before and after a save/load, so both give
identical results.
"""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted, validate_data

from mmga_helpers.learn.persistence import PersistentEstimator, seed_for

_FLOATS = (np.float64, np.float32)


# -- k-means ----------------------------------------------------------------------------------------
class LatentKMeans(PersistentEstimator):
    """k-means on latents: the simple baseline every other clustering is compared against.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters.
    n_init : int, default=10
        Number of k-means restarts; the one with the lowest inertia is kept.
    random_state : int, numpy Generator or None, default=None
        Seed of the initialisations; an int makes fits repeatable.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The cluster centres.
    labels_ : ndarray of shape (n_samples,)
        The cluster of every training point.
    inertia_ : float
        Sum of squared distances of the training points to their centres.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    _state_arrays = ("cluster_centers_", "labels_", "inertia_")

    def __init__(self, n_clusters: int = 10, n_init: int = 10, random_state: Any = None) -> None:
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: None = None) -> Self:
        X = validate_data(self, X, reset=True, dtype=_FLOATS)
        km = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, random_state=self.random_state).fit(X)
        self.cluster_centers_ = km.cluster_centers_
        self.inertia_ = float(km.inertia_)
        # predict() is nearest centre; recompute labels that way so labels_ == predict(X) always
        self.labels_ = self._nearest(X)
        return self

    def _nearest(self, X: NDArray) -> NDArray[np.int64]:
        centers = self.cluster_centers_.astype(X.dtype, copy=False)
        return pairwise_distances_argmin(X, centers).astype(np.int64)

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        return self._nearest(X)

    def centre_distance(self, X: ArrayLike) -> NDArray[np.float64]:
        """Euclidean distance of each point to the centre of the cluster it is assigned to."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.linalg.norm(X - self.cluster_centers_[self._nearest(X)], axis=1)


# -- Gaussian mixture -------------------------------------------------------------------------------
MIXTURE_CHOICES = ("balanced", "likeliest")
_MIXTURE_ARRAYS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


def _fit_mixture(
    X: NDArray, n_clusters: int, covariance_type: str, n_init: int, random_state: Any
) -> GaussianMixture:
    gm = GaussianMixture(
        n_components=n_clusters,
        covariance_type=covariance_type,
        n_init=n_init,
        init_params="kmeans",
        random_state=random_state,
    )
    return gm.fit(X)


def _size_entropy(labels: NDArray[np.int64], n_clusters: int) -> float:
    """Entropy of the clusters' shares of the points: largest when every cluster is the same size."""
    share = np.bincount(labels, minlength=n_clusters) / len(labels)
    share = share[share > 0]
    return float(-(share * np.log(share)).sum())


def _chosen_mixture(
    X: NDArray, n_clusters: int, n_starts: int, choice: str, seed: int | None
) -> GaussianMixture:
    """The mixture kept from ``n_starts`` single k-means starts: the likeliest, or (``"balanced"``)
    the one whose hard clusters are the most even in size, likelihood breaking ties. A start that
    merges two categories and splits a third leaves one cluster double and two half: its sizes are
    uneven, while its likelihood can be the higher one (book/method.md)."""
    if n_starts < 1:
        raise ValueError(f"mixture_starts must be at least 1; got {n_starts}")
    if choice == "likeliest":
        return _fit_mixture(X, n_clusters, "full", n_starts, seed)
    if choice != "balanced":
        raise ValueError(f"unknown mixture choice {choice!r}; allowed: {', '.join(MIXTURE_CHOICES)}")
    rng = np.random.RandomState(seed)  # one stream through every start: repeatable from the seed
    best, best_key = None, (-np.inf, -np.inf)
    for _ in range(n_starts):
        gm = _fit_mixture(X, n_clusters, "full", 1, rng)
        key = (round(_size_entropy(gm.predict(X), n_clusters), 6), float(gm.lower_bound_))
        if key > best_key:
            best, best_key = gm, key
    assert best is not None  # at least one start was fitted
    return best


def _mixture_state(gm: GaussianMixture, prefix: str = "mixture.") -> dict[str, NDArray]:
    return {prefix + name: np.asarray(getattr(gm, name)) for name in _MIXTURE_ARRAYS}


def _mixture_from_state(
    arrays: dict[str, NDArray], covariance_type: str, n_features: int, prefix: str = "mixture."
) -> GaussianMixture:
    """A fitted GaussianMixture rebuilt from its arrays: its own predict code then runs unchanged."""
    weights = arrays[prefix + "weights_"]
    gm = GaussianMixture(n_components=len(weights), covariance_type=covariance_type)
    for name in _MIXTURE_ARRAYS:
        setattr(gm, name, arrays[prefix + name])
    gm.precisions_ = _precisions(gm.precisions_cholesky_, covariance_type)
    gm.n_features_in_ = n_features
    gm.converged_ = True
    gm.n_iter_ = 0
    gm.lower_bound_ = np.nan
    return gm


def _mahalanobis_to_own_component(gm: GaussianMixture, X: NDArray) -> NDArray[np.float64]:
    """Mahalanobis distance of each point to the mean of the component it is assigned to: how far
    inside its cluster a point lies, in that cluster's own shape."""
    k = gm.predict(X)
    d = X - gm.means_[k]
    chol, kind = gm.precisions_cholesky_, gm.covariance_type
    if kind == "full":
        y = np.einsum("nd,nde->ne", d, chol[k])
    elif kind == "tied":
        y = d @ chol
    elif kind == "diag":
        y = d * chol[k]
    else:  # spherical
        y = d * chol[k][:, None]
    return np.sqrt(np.einsum("ne,ne->n", y, y))


def _precisions(prec_chol: NDArray, covariance_type: str) -> NDArray:
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", prec_chol, prec_chol)
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
    return prec_chol**2


class LatentGMM(PersistentEstimator):
    """Gaussian mixture on latents (k-means initialised): soft assignments and elliptical clusters.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of mixture components, one per cluster.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The components' covariance, as in scikit-learn's ``GaussianMixture``.
    n_init : int, default=3
        Number of initialisations; the best likelihood is kept.
    random_state : int, numpy Generator or None, default=None
        Seed of the initialisations; an int makes fits repeatable.

    Attributes
    ----------
    mixture_ : sklearn.mixture.GaussianMixture
        The fitted mixture (rebuilt from plain arrays after :meth:`load`).
    means_ : ndarray of shape (n_clusters, n_features)
        The components' means.
    converged_ : bool
        Whether the best initialisation converged.
    labels_ : ndarray of shape (n_samples,)
        The cluster of every training point.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    def __init__(
        self, n_clusters: int = 10, covariance_type: str = "full", n_init: int = 3, random_state: Any = None
    ) -> None:
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: None = None) -> Self:
        X = validate_data(self, X, reset=True, dtype=_FLOATS)
        gm = _fit_mixture(X, self.n_clusters, self.covariance_type, self.n_init, self.random_state)
        self.mixture_ = gm
        self.means_ = gm.means_
        self.converged_ = bool(gm.converged_)
        self.labels_ = gm.predict(X).astype(np.int64)
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        return self.mixture_.predict(X).astype(np.int64)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        return self.mixture_.predict_proba(X)

    def centre_distance(self, X: ArrayLike) -> NDArray[np.float64]:
        """Mahalanobis distance of each point to its own component's mean."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return _mahalanobis_to_own_component(self.mixture_, X)

    def _get_state(self) -> dict[str, NDArray]:
        check_is_fitted(self)
        return {**_mixture_state(self.mixture_), "labels_": self.labels_,
                "converged_": np.asarray(self.converged_)}

    def _set_state(self, arrays: dict[str, NDArray]) -> None:
        self.n_features_in_ = int(arrays["n_features_in_"])
        self.mixture_ = _mixture_from_state(arrays, self.covariance_type, self.n_features_in_)
        self.means_ = self.mixture_.means_
        self.converged_ = bool(arrays["converged_"])
        self.labels_ = arrays["labels_"]


# -- N2D: UMAP + Gaussian mixture -------------------------------------------------------------------
def _neighbour_weights(dist: NDArray[np.float64]) -> NDArray[np.float64]:
    """Normalised inverse-distance weights of each point's neighbours; only the exact matches
    count when there are any (a training point is its own only neighbour)."""
    exact = dist <= 1e-12
    has_exact = exact.any(axis=1, keepdims=True)
    weights = np.where(has_exact, exact.astype(np.float64), 1.0 / np.maximum(dist, 1e-12))
    return weights / weights.sum(axis=1, keepdims=True)


class UmapGMM(PersistentEstimator):
    """N2D clustering: standardize, UMAP to a few dimensions, Gaussian mixture there.

    UMAP's manifold embedding separates digit classes far better than k-means on raw latents. The
    fitted UMAP object is not kept (it cannot be stored without pickle); instead the standardized
    training inputs and their UMAP embedding are kept. A new point is placed by its ``n_neighbors``
    nearest training points, weighted by inverse distance (a training point is its own only
    neighbour): ``transform`` embeds it at the weighted mean of their embeddings (an approximation
    of ``UMAP.transform``), and ``predict_proba`` gives it the weighted mean of their mixture
    memberships. Cluster memberships are voted, not read off the mean embedding: when a point's
    neighbours lie in two clusters (a voice the training never heard, between two digits' clips),
    the mean of their embeddings falls in the empty space between them, where the mixture's answer
    is arbitrary; the vote sends the point where most of its neighbours are. Training points keep
    their own labels, and predictions are identical before and after save/load.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of mixture components in the embedding, one per cluster.
    n_components : int, default=10
        Dimensions of the UMAP embedding.
    n_neighbors : int, default=15
        UMAP's neighbourhood size, and the number of training points that place a new point.
    min_dist : float, default=0.0
        UMAP's minimum distance between embedded points (0 packs clusters tightly).
    mixture_starts : int, default=10
        Single k-means starts of the mixture fitted in the embedding.
    mixture_choice : {"balanced", "likeliest"}, default="balanced"
        Which start is kept: the one with the most even cluster sizes (likelihood breaking ties),
        or the likeliest.
    random_state : int, numpy Generator or None, default=None
        Seed of the initialisations; an int makes fits repeatable.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation fitted on the training inputs.
    train_inputs_ : ndarray of shape (n_samples, n_features)
        The standardised training inputs (the neighbours of new points).
    embedding_ : ndarray of shape (n_samples, n_components)
        Their UMAP embedding.
    mixture_ : sklearn.mixture.GaussianMixture
        The mixture fitted on the embedding.
    labels_ : ndarray of shape (n_samples,)
        The cluster of every training point.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    _state_arrays = ("mean_", "scale_", "train_inputs_", "embedding_", "labels_")

    def __init__(
        self,
        n_clusters: int = 10,
        n_components: int = 10,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        mixture_starts: int = 10,
        mixture_choice: str = "balanced",
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.mixture_starts = mixture_starts
        self.mixture_choice = mixture_choice
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: None = None) -> Self:
        X = validate_data(self, X, reset=True, dtype=np.float64)
        n = X.shape[0]
        if n <= max(self.n_clusters, self.n_components + 1, 2):
            raise ValueError(
                f"UmapGMM needs more samples than n_clusters={self.n_clusters} and "
                f"n_components+1={self.n_components + 1}; got n_samples={n}"
            )
        import umap  # deferred: importing umap-learn takes seconds (it probes TensorFlow)

        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.train_inputs_ = (X - self.mean_) / self.scale_
        seed = seed_for(self.random_state)
        # exact neighbours from scikit-learn (seconds): above 4,096 points umap-learn's own search,
        # NN-descent, compiles its numba kernels anew in every process (about 40 s on 2 cores)
        k = min(self.n_neighbors, n - 1)
        dist, ind = NearestNeighbors(n_neighbors=k).fit(self.train_inputs_).kneighbors(self.train_inputs_)
        reducer = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=k,
            min_dist=self.min_dist,
            metric="euclidean",
            random_state=seed,
            n_jobs=1 if seed is not None else -1,  # a seed forces one thread; say so to avoid a warning
            precomputed_knn=(ind, dist, None),
        )
        with warnings.catch_warnings():  # no search index: new points are placed by the neighbour vote
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            self.embedding_ = np.asarray(reducer.fit_transform(self.train_inputs_), dtype=np.float64)
        self.mixture_ = _chosen_mixture(
            self.embedding_, self.n_clusters, self.mixture_starts, self.mixture_choice, seed
        )
        self._build_assignment()
        if k == self.neighbors_.n_neighbors:  # the graph's search is the one predict would repeat
            votes = self._vote(_neighbour_weights(dist), ind)
            self.labels_ = votes.argmax(axis=1).astype(np.int64)
        else:  # fewer points than n_neighbors: the index takes one neighbour more than the graph
            self.labels_ = self.predict(X)
        return self

    def with_clusters(
        self, n_clusters: int, mixture_starts: int | None = None, mixture_choice: str | None = None
    ) -> UmapGMM:
        """A clustering of the same inputs into ``n_clusters``: a new mixture on this fit's UMAP
        embedding, without fitting UMAP again (the same seed would give the same embedding). The
        finer clusterings of a modality (the brain's audio side, the clusters a partner's
        convergence head learns) share the embedding of its ``n_clusters`` clustering.
        ``mixture_starts`` and ``mixture_choice`` default to this model's."""
        check_is_fitted(self)
        params = {**self.get_params(), "n_clusters": n_clusters}
        if mixture_starts is not None:
            params["mixture_starts"] = mixture_starts
        if mixture_choice is not None:
            params["mixture_choice"] = mixture_choice
        other = type(self)(**params)
        for name in ("n_features_in_", "mean_", "scale_", "train_inputs_", "embedding_"):
            setattr(other, name, getattr(self, name))
        seed = seed_for(self.random_state)
        other.mixture_ = _chosen_mixture(
            self.embedding_, n_clusters, other.mixture_starts, other.mixture_choice, seed
        )
        other._build_assignment()
        dist, ind = other.neighbors_.kneighbors(other.train_inputs_)  # the graph fit() votes with
        other.labels_ = other._vote(_neighbour_weights(dist), ind).argmax(axis=1).astype(np.int64)
        return other

    def _build_assignment(self) -> None:
        """What placing new points needs, derived from the stored state after a fit or a load:
        the neighbour index over the training inputs and each training point's memberships."""
        k = min(self.n_neighbors, self.train_inputs_.shape[0])
        self.neighbors_ = NearestNeighbors(n_neighbors=k).fit(self.train_inputs_)
        self.train_posteriors_ = self.mixture_.predict_proba(self.embedding_)

    def _neighbours(self, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Each point's nearest training points and their normalised inverse-distance weights
        (only the exact matches, when a point is a training point)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        dist, idx = self.neighbors_.kneighbors((X - self.mean_) / self.scale_)
        return _neighbour_weights(dist), idx

    def _vote(self, weights: NDArray[np.float64], idx: NDArray[np.int64]) -> NDArray[np.float64]:
        """The neighbours' mixture memberships, weighted."""
        return np.einsum("nk,nkc->nc", weights, self.train_posteriors_[idx])

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """The kNN out-of-sample embedding described in the class docstring."""
        weights, idx = self._neighbours(X)
        return np.einsum("nk,nkd->nd", weights, self.embedding_[idx])

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """The neighbours' mixture memberships, weighted as in :meth:`transform` (a vote)."""
        return self._vote(*self._neighbours(X))

    def centre_distance(self, X: ArrayLike) -> NDArray[np.float64]:
        """Mahalanobis distance, in the UMAP embedding, of each point to its own component's mean."""
        return _mahalanobis_to_own_component(self.mixture_, self.transform(X))

    def _get_state(self) -> dict[str, NDArray]:
        return {**super()._get_state(), **_mixture_state(self.mixture_)}

    def _set_state(self, arrays: dict[str, NDArray]) -> None:
        super()._set_state(arrays)
        self.mixture_ = _mixture_from_state(arrays, "full", self.n_components)
        self._build_assignment()


def compile_umap() -> None:
    """Fit :class:`UmapGMM` once on made-up points: numba compiles UMAP's kernels at a process's
    first fit (seconds), so a kernel started ahead compiles them before its notebook clusters.
    Nothing global is seeded; later fits give what they would have given anyway."""
    points = np.random.default_rng(0).normal(size=(300, 8))
    UmapGMM(n_clusters=2, mixture_starts=1, random_state=0).fit(points)
