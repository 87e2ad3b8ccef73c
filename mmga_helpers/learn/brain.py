"""The "brain": Damasio's convergence-divergence zones learned from co-occurring cluster ids.

It sees only pairs ``(image cluster, audio cluster)`` of things experienced together, never a digit
label. From their co-occurrence counts it learns association strengths in both directions, which
differ: if two audio clusters (say a low and a high voice saying "three") both co-occur with one
image cluster, each audio cluster points to that image cluster with strength 1, while the image
cluster splits its strength 0.5 / 0.5 between them. A cluster whose strongest association reaches
``convergence_threshold`` is a *convergence* zone (one clear partner); otherwise a *divergence*
zone (its meaning spreads over several partners).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mmga_helpers.core.metrics import int_vector
from mmga_helpers.learn.persistence import read_model, write_model

DIRECTIONS = ("image_to_audio", "audio_to_image")
DEFAULT_LINK_THRESHOLD = 0.1  # one_to_many: an association weaker than this is treated as noise
Direction = Literal["image_to_audio", "audio_to_image"]
Mode = Literal["argmax", "sample"]


def _cluster_ids(values: ArrayLike, name: str) -> NDArray[np.int64]:
    arr = int_vector(values, name)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative cluster ids; got {arr.min()}")
    return arr


def _entropy_bits(p: NDArray[np.float64]) -> NDArray[np.float64]:
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log2(safe)).sum(axis=1)


class ConvergenceDivergenceZone(BaseEstimator):
    """Association strengths between image and audio clusters learned from co-occurrence.

    ``strengths_["image_to_audio"][i, a]`` is P(audio cluster a | image cluster i) and
    ``strengths_["audio_to_image"][a, i]`` is P(image cluster i | audio cluster a), estimated as
    ``(count + smoothing) / row total``. ``smoothing`` keeps unseen pairs possible; a cluster never
    seen in ``fit`` therefore gets uniform strengths (with ``smoothing=0`` too, set explicitly), so
    it is a divergence zone and predictions from it are uninformative rather than an error.

    Parameters
    ----------
    n_image_clusters, n_audio_clusters : int or None, default=None
        Number of clusters on each side; None takes the largest id seen in ``fit`` plus one.
    convergence_threshold : float in (0, 1], default=0.5
        A cluster whose strongest association reaches it is a convergence zone, else a divergence
        zone (:meth:`zones`).
    smoothing : float >= 0, default=1e-3
        Added to every co-occurrence count before the counts become strengths.
    link_threshold : float in [0, 1), default=0.1
        In the one-to-many tables and ``mode="sample"`` draws, an association weaker than this is
        treated as noise.

    Attributes
    ----------
    counts_ : ndarray of shape (n_image_clusters_, n_audio_clusters_)
        Co-occurrence counts of the fitted pairs.
    strengths_ : dict of str to ndarray
        ``"image_to_audio"`` (rows: image clusters) and ``"audio_to_image"`` (rows: audio
        clusters), each row a distribution over the other side's clusters.
    n_image_clusters_, n_audio_clusters_ : int
        The number of clusters on each side after fitting.
    """

    def __init__(
        self,
        n_image_clusters: int | None = None,
        n_audio_clusters: int | None = None,
        convergence_threshold: float = 0.5,
        smoothing: float = 1e-3,
        link_threshold: float = DEFAULT_LINK_THRESHOLD,
    ) -> None:
        self.n_image_clusters = n_image_clusters
        self.n_audio_clusters = n_audio_clusters
        self.convergence_threshold = convergence_threshold
        self.smoothing = smoothing
        self.link_threshold = link_threshold

    # -- learning ---------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not 0 < self.convergence_threshold <= 1:
            raise ValueError(f"convergence_threshold must be in (0, 1]; got {self.convergence_threshold!r}")
        if not self.smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0; got {self.smoothing!r}")
        if not 0 <= self.link_threshold < 1:
            raise ValueError(f"link_threshold must be in [0, 1); got {self.link_threshold!r}")
        for name in ("n_image_clusters", "n_audio_clusters"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | np.integer) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None; got {value!r}")

    @staticmethod
    def _n(given: int | None, ids: NDArray[np.int64], name: str) -> int:
        seen = int(ids.max()) + 1 if ids.size else 1
        if given is None:
            return seen
        if seen > given:
            raise ValueError(f"cluster id {seen - 1} is out of range for {name}={given}")
        return int(given)

    def fit(self, image_clusters: ArrayLike, audio_clusters: ArrayLike) -> Self:
        """Count co-occurrences of the paired cluster ids and turn them into strengths."""
        self._check_params()
        img = _cluster_ids(image_clusters, "image_clusters")
        aud = _cluster_ids(audio_clusters, "audio_clusters")
        if img.size != aud.size:
            raise ValueError(
                f"image_clusters and audio_clusters must be pairs of the same length; got {img.size} "
                f"and {aud.size}"
            )
        if img.size == 0:
            raise ValueError("fit needs at least one co-occurring pair")
        n_img = self._n(self.n_image_clusters, img, "n_image_clusters")
        n_aud = self._n(self.n_audio_clusters, aud, "n_audio_clusters")
        counts = np.bincount(img * n_aud + aud, minlength=n_img * n_aud).reshape(n_img, n_aud)
        self._set_counts(counts)
        return self

    def _set_counts(self, counts: NDArray[np.int64]) -> None:
        self.counts_ = counts.astype(np.int64)
        self.n_image_clusters_, self.n_audio_clusters_ = self.counts_.shape
        self.strengths_ = {
            "image_to_audio": self._conditional(self.counts_),
            "audio_to_image": self._conditional(self.counts_.T),
        }

    def _conditional(self, counts: NDArray[np.int64]) -> NDArray[np.float64]:
        smoothed = counts + float(self.smoothing)
        totals = smoothed.sum(axis=1, keepdims=True)
        uniform = np.full_like(smoothed, 1.0 / counts.shape[1], dtype=np.float64)
        return np.divide(smoothed, totals, out=uniform, where=totals > 0)

    # -- reading what was learned -----------------------------------------------------------------
    def _threshold(self, threshold: float | None, default: float) -> float:
        value = default if threshold is None else threshold
        if not 0 <= value <= 1:
            raise ValueError(f"threshold must be in [0, 1]; got {value!r}")
        return float(value)

    def one_to_one(self) -> pd.DataFrame:
        """The best one-to-one pairing of image and audio clusters (Hungarian on the counts)."""
        check_is_fitted(self)
        rows, cols = linear_sum_assignment(self.counts_, maximize=True)
        return pd.DataFrame({
            "image_cluster": rows,
            "audio_cluster": cols,
            "strength_image_to_audio": self.strengths_["image_to_audio"][rows, cols],
            "strength_audio_to_image": self.strengths_["audio_to_image"][cols, rows],
            "count": self.counts_[rows, cols],
        })

    def one_to_many(
        self, threshold: float | None = None, direction: Direction = "image_to_audio"
    ) -> pd.DataFrame:
        """Every link ``source -> target`` with strength >= ``threshold`` (default
        ``link_threshold``): several targets per source show where one meaning spreads over
        several clusters."""
        check_is_fitted(self)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        thr = self._threshold(threshold, self.link_threshold)
        strengths = self.strengths_[direction]
        counts = self.counts_ if direction == "image_to_audio" else self.counts_.T
        src, tgt = np.nonzero(strengths >= thr)
        df = pd.DataFrame({"source": src, "target": tgt, "strength": strengths[src, tgt],
                           "count": counts[src, tgt]})
        return df.sort_values(["source", "strength", "target"], ascending=[True, False, True],
                              ignore_index=True)

    def zones(self, threshold: float | None = None) -> pd.DataFrame:
        """One row per cluster of each modality: its strongest partner and its zone."""
        check_is_fitted(self)
        thr = self._threshold(threshold, self.convergence_threshold)
        frames = []
        for modality, direction, counts in (
            ("image", "image_to_audio", self.counts_),
            ("audio", "audio_to_image", self.counts_.T),
        ):
            p = self.strengths_[direction]
            best = p.argmax(axis=1)
            strength = p[np.arange(p.shape[0]), best]
            frames.append(pd.DataFrame({
                "modality": modality,
                "cluster": np.arange(p.shape[0]),
                "best_partner": best,
                "strength": strength,
                "entropy": _entropy_bits(p),
                "count": counts.sum(axis=1),
                "zone": np.where(strength >= thr, "convergence", "divergence"),
            }))
        return pd.concat(frames, ignore_index=True)

    def pair_zones(self, threshold: float | None = None) -> pd.DataFrame:
        """Cluster pairs seen together, scored symmetrically by sqrt(P(a|i) * P(i|a)): high only
        when each side points mainly at the other."""
        check_is_fitted(self)
        thr = self._threshold(threshold, self.convergence_threshold)
        img, aud = np.nonzero(self.counts_ > 0)
        p_ai = self.strengths_["image_to_audio"][img, aud]
        p_ia = self.strengths_["audio_to_image"][aud, img]
        score = np.sqrt(p_ai * p_ia)
        df = pd.DataFrame({
            "image_cluster": img,
            "audio_cluster": aud,
            "count": self.counts_[img, aud],
            "strength_image_to_audio": p_ai,
            "strength_audio_to_image": p_ia,
            "score": score,
            "zone": np.where(score >= thr, "convergence", "divergence"),
        })
        return df.sort_values(["score", "image_cluster", "audio_cluster"], ascending=[False, True, True],
                              ignore_index=True)

    # -- recalling one modality from the other ----------------------------------------------------
    def _recall(
        self, clusters: ArrayLike, direction: Direction, mode: Mode, random_state: Any
    ) -> NDArray[np.int64]:
        check_is_fitted(self)
        name = "image_clusters" if direction == "image_to_audio" else "audio_clusters"
        ids = _cluster_ids(clusters, name)
        p = self.strengths_[direction]
        if ids.size and ids.max() >= p.shape[0]:
            raise ValueError(f"{name} holds id {ids.max()}, but the brain knows only {p.shape[0]} clusters")
        if mode == "argmax":
            return p.argmax(axis=1)[ids]
        if mode == "sample":  # among the one-to-many table's links: weaker ones are noise
            rng = np.random.default_rng(random_state)
            cdf = np.cumsum(self.draw_weights(direction), axis=1)[ids]
            u = rng.random(ids.size)[:, None] * cdf[:, -1:]
            return np.minimum((cdf <= u).sum(axis=1), p.shape[1] - 1).astype(np.int64)
        raise ValueError(f"mode must be 'argmax' or 'sample'; got {mode!r}")

    def draw_weights(self, direction: Direction) -> NDArray[np.float64]:
        """What ``mode="sample"`` draws a target with, one row per source cluster (not normalised):
        the strengths of the one-to-many table's links (those >= ``link_threshold``), 0 elsewhere; a
        source always keeps its strongest link."""
        check_is_fitted(self)
        p = self.strengths_[direction]
        links = np.where(p >= self.link_threshold, p, 0.0)
        rows, strongest = np.arange(len(p)), p.argmax(axis=1)
        links[rows, strongest] = p[rows, strongest]
        return links

    def predict_audio(
        self, image_clusters: ArrayLike, mode: Mode = "argmax", random_state: Any = None
    ) -> NDArray[np.int64]:
        """The audio cluster each image cluster evokes: the strongest (``argmax``) or one drawn from
        the one-to-many table (links >= ``link_threshold``) with probability proportional to the
        strength (``sample``, which reproduces one-to-many variety: several voices for one digit)."""
        return self._recall(image_clusters, "image_to_audio", mode, random_state)

    def predict_image(
        self, audio_clusters: ArrayLike, mode: Mode = "argmax", random_state: Any = None
    ) -> NDArray[np.int64]:
        """The image cluster each audio cluster evokes (see :meth:`predict_audio`)."""
        return self._recall(audio_clusters, "audio_to_image", mode, random_state)

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """scikit-learn spelling of :meth:`predict_audio` (argmax)."""
        return self.predict_audio(X)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the counts and parameters to ``path`` (.npz, no pickle); strengths are recomputed."""
        check_is_fitted(self)
        params = self.get_params(deep=False)
        for key in ("n_image_clusters", "n_audio_clusters"):
            params[key] = None if params[key] is None else int(params[key])
        params["convergence_threshold"] = float(params["convergence_threshold"])
        params["smoothing"] = float(params["smoothing"])
        params["link_threshold"] = float(params["link_threshold"])
        return write_model(path, type(self).__name__, params, {"counts_": self.counts_})

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Rebuild a fitted brain written by :meth:`save`."""
        _, params, arrays = read_model(path, cls.__name__)
        brain = cls(**params)
        brain._check_params()
        brain._set_counts(arrays["counts_"])
        return brain
