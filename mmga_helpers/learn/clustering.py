"""Choosing and loading a clusterer (:func:`make_clusterer`, :func:`load_clusterer`), and the joint
clustering of co-occurring (image, audio) latent pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_array, check_is_fitted

from mmga_helpers.core.config import ClusteringConfig, Modality
from mmga_helpers.learn.clusterers import LatentGMM, LatentKMeans, UmapGMM
from mmga_helpers.learn.persistence import PersistentEstimator, json_seed, read_model, write_model

ALGORITHMS = ("kmeans", "gmm", "umap_gmm")


Clusterer = LatentKMeans | LatentGMM | UmapGMM
_CLASSES: dict[str, type[PersistentEstimator]] = {
    "LatentKMeans": LatentKMeans,
    "LatentGMM": LatentGMM,
    "UmapGMM": UmapGMM,
}


def make_clusterer(
    algorithm: str,
    n_clusters: int,
    cfg: ClusteringConfig | None = None,
    random_state: Any = None,
    *,
    modality: Modality = "image",
) -> Clusterer:
    """The clusterer the config names for the codes of ``modality``; ``n_clusters`` is separate
    because each modality has its own."""
    if algorithm == "kmeans":
        return LatentKMeans(n_clusters=n_clusters, random_state=random_state)
    if algorithm == "gmm":
        return LatentGMM(n_clusters=n_clusters, random_state=random_state)
    if algorithm == "umap_gmm":
        if cfg is None:
            return UmapGMM(n_clusters=n_clusters, random_state=random_state)
        return UmapGMM(
            n_clusters=n_clusters,
            n_components=cfg.umap_n_components,
            n_neighbors=cfg.umap_neighbors(modality, n_clusters),
            mixture_starts=cfg.mixture_starts,
            mixture_choice=cfg.mixture_choice,
            random_state=random_state,
        )
    raise ValueError(f"unknown clustering algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")


def load_clusterer(path: str | Path) -> Clusterer | JointClustering:
    """Load any estimator of this module saved with ``save``, whatever its class."""
    kind, _, _ = read_model(path)
    if kind == "JointClustering":
        return JointClustering.load(path)
    if kind not in _CLASSES:
        raise ValueError(f"{path} holds a {kind}, not a clusterer")
    return _CLASSES[kind].load(path)  # type: ignore[return-value]


# -- joint clustering of paired latents --------------------------------------------------------------
class JointClustering(ClusterMixin, BaseEstimator):
    """Cluster (image, audio) latent pairs together, each modality weighing the same.

    Each block is standardized, then scaled by ``1/sqrt(dim)`` so its total variance is 1: a 32-D
    audio latent would otherwise outweigh a 16-D image latent two to one.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of joint clusters.
    algorithm : {"kmeans", "gmm", "umap_gmm"}, default="kmeans"
        The clusterer run on the joined blocks (:func:`make_clusterer`).
    random_state : int, numpy Generator or None, default=None
        Seed of that clusterer.
    umap_n_components, umap_n_neighbors : int, default=10, 15
        UMAP's settings when ``algorithm="umap_gmm"``.

    Attributes
    ----------
    image_mean_, image_scale_ : ndarray of shape (n_image_features,)
        The image block's standardisation.
    audio_mean_, audio_scale_ : ndarray of shape (n_audio_features,)
        The audio block's standardisation.
    clusterer_ : LatentKMeans, LatentGMM or UmapGMM
        The clusterer fitted on the joined blocks.
    labels_ : ndarray of shape (n_pairs,)
        The joint cluster of every training pair.
    """

    def __init__(
        self,
        n_clusters: int = 10,
        algorithm: str = "kmeans",
        random_state: Any = None,
        umap_n_components: int = 10,
        umap_n_neighbors: int = 15,
    ) -> None:
        self.n_clusters = n_clusters
        self.algorithm = algorithm
        self.random_state = random_state
        self.umap_n_components = umap_n_components
        self.umap_n_neighbors = umap_n_neighbors

    def _make_inner(self) -> Clusterer:
        if self.algorithm == "umap_gmm":
            return UmapGMM(
                n_clusters=self.n_clusters,
                n_components=self.umap_n_components,
                n_neighbors=self.umap_n_neighbors,
                random_state=self.random_state,
            )
        return make_clusterer(self.algorithm, self.n_clusters, random_state=self.random_state)

    @staticmethod
    def _check_pair(X_image: ArrayLike, X_audio: ArrayLike) -> tuple[NDArray, NDArray]:
        Xi = check_array(X_image, dtype=np.float64, input_name="X_image")
        Xa = check_array(X_audio, dtype=np.float64, input_name="X_audio")
        if Xi.shape[0] != Xa.shape[0]:
            raise ValueError(
                f"X_image and X_audio must hold the same pairs; got {Xi.shape[0]} and {Xa.shape[0]} rows"
            )
        return Xi, Xa

    def _joint(self, Xi: NDArray, Xa: NDArray) -> NDArray[np.float64]:
        for name, X, want in (("X_image", Xi, self.image_mean_), ("X_audio", Xa, self.audio_mean_)):
            if X.shape[1] != want.shape[0]:
                raise ValueError(f"{name} has {X.shape[1]} features, but JointClustering expects {len(want)}")
        zi = (Xi - self.image_mean_) / self.image_scale_ / np.sqrt(Xi.shape[1])
        za = (Xa - self.audio_mean_) / self.audio_scale_ / np.sqrt(Xa.shape[1])
        return np.hstack([zi, za])

    def fit(self, X_image: ArrayLike, X_audio: ArrayLike) -> Self:
        Xi, Xa = self._check_pair(X_image, X_audio)
        self.image_mean_, self.audio_mean_ = Xi.mean(axis=0), Xa.mean(axis=0)
        si, sa = Xi.std(axis=0), Xa.std(axis=0)
        self.image_scale_ = np.where(si > 0, si, 1.0)
        self.audio_scale_ = np.where(sa > 0, sa, 1.0)
        self.clusterer_ = self._make_inner().fit(self._joint(Xi, Xa))
        self.labels_ = np.asarray(self.clusterer_.labels_, dtype=np.int64)
        return self

    def predict(self, X_image: ArrayLike, X_audio: ArrayLike) -> NDArray[np.int64]:
        check_is_fitted(self)
        Xi, Xa = self._check_pair(X_image, X_audio)
        return self.clusterer_.predict(self._joint(Xi, Xa))

    def fit_predict(self, X_image: ArrayLike, X_audio: ArrayLike) -> NDArray[np.int64]:  # type: ignore[override]
        """ClusterMixin's version would drop ``X_audio``; this one takes both blocks."""
        return self.fit(X_image, X_audio).labels_

    def save(self, path: str | Path) -> Path:
        """Write the fitted joint model to ``path`` (.npz, no pickle)."""
        check_is_fitted(self)
        inner = self.clusterer_
        arrays = {f"inner.{k}": v for k, v in inner._get_state().items()}
        arrays["inner.n_features_in_"] = np.asarray(inner.n_features_in_)
        for name in ("image_mean_", "image_scale_", "audio_mean_", "audio_scale_", "labels_"):
            arrays[name] = getattr(self, name)
        params = self.get_params(deep=False)
        params["random_state"] = json_seed(params["random_state"])
        meta = {"self": params, "inner": inner._params_for_json()}
        return write_model(path, "JointClustering", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Rebuild a fitted joint model written by :meth:`save`."""
        _, params, arrays = read_model(path, "JointClustering")
        est = cls(**params["self"])
        for name in ("image_mean_", "image_scale_", "audio_mean_", "audio_scale_", "labels_"):
            setattr(est, name, arrays[name])
        inner = type(est._make_inner())(**params["inner"])
        inner._set_state({k[len("inner."):]: v for k, v in arrays.items() if k.startswith("inner.")})
        est.clusterer_ = inner
        return est
