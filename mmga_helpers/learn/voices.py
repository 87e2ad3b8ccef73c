"""Voice normalisation of audio codes: what a voice adds to every clip it speaks is removed.

A speaker shifts and stretches the codes of all their clips alike (a longer vocal tract, a lower
pitch, another microphone), so a voice never heard lands beside the clusters learned from other
voices. Standardising each voice's codes by that voice's own mean and spread, then mapping them onto
the training codes' overall mean and spread, lines voices up before clustering: the speaker-level
mean and variance normalisation of speech recognition, done on the latent code. It needs only which
clips share a voice, never what they say; a new voice is read from a handful of its own clips.
Once recalled, a voice's clips can also vote among their nearest neighbours (:func:`neighbour_vote`).
"""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_array, check_is_fitted

MIN_CLIPS = 5  # a voice's mean and spread from fewer clips are mostly what those clips say
OWN_VOTE = 0.5  # a clip's own label breaks a tie among its neighbours' votes
VOTE_SHARE = 0.05  # the share of a voice's clips each clip asks (chosen on inner training speakers)


def _voices(voices: ArrayLike, n: int) -> NDArray[np.str_]:
    v = np.asarray(voices).astype(str)
    if v.shape != (n,):
        raise ValueError(f"voices must name the voice of each of the {n} codes; got shape {v.shape}")
    return v


def voice_moments(
    x: NDArray, voices: NDArray[np.str_], min_clips: int = MIN_CLIPS, eps: float = 1e-6
) -> tuple[NDArray[np.intp], NDArray, NDArray]:
    """``(voice of each code, mean [n_voices, d], spread [n_voices, d])`` over each voice's codes,
    vectorised (sums per voice with ``np.add.at``); a voice with fewer than ``min_clips`` raises."""
    names, inverse, counts = np.unique(voices, return_inverse=True, return_counts=True)
    few = names[counts < min_clips]
    if few.size:
        raise ValueError(
            f"voice normalisation needs at least {min_clips} clips per voice; "
            f"{', '.join(map(str, few[:5]))} has fewer"
        )
    mean = np.zeros((len(names), x.shape[1]))
    np.add.at(mean, inverse, x)
    mean /= counts[:, None]
    sq = np.zeros_like(mean)
    np.add.at(sq, inverse, (x - mean[inverse]) ** 2)
    return inverse, mean, np.sqrt(sq / counts[:, None]) + eps


class VoiceNormalizer(TransformerMixin, BaseEstimator):
    """Per-voice standardisation of latent codes onto the training codes' statistics.

    Parameters
    ----------
    min_clips : int
        Fewest clips a voice needs for its statistics; fewer raises ``ValueError``.
    eps : float
        Added to each spread, so a constant dimension stays finite.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Mean of the voice-standardised training codes mapped back: the training codes' overall mean.
    scale_ : ndarray of shape (n_features,)
        Mean over training voices of each voice's spread: the scale codes are mapped onto.
    n_features_in_ : int
    voices_ : ndarray of str
        The training voices.
    """

    def __init__(self, min_clips: int = MIN_CLIPS, eps: float = 1e-6) -> None:
        self.min_clips = min_clips
        self.eps = eps

    def fit(self, X: ArrayLike, y: None = None, *, voices: ArrayLike) -> Self:
        """Learn the overall scale from training codes ``X`` spoken by ``voices``."""
        x = check_array(X, dtype=np.float64)
        v = _voices(voices, len(x))
        _, _, spread = voice_moments(x, v, self.min_clips, self.eps)
        self.scale_ = spread.mean(axis=0)
        self.mean_ = x.mean(axis=0)
        self.voices_ = np.unique(v)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(
        self, X: ArrayLike, voices: ArrayLike | None = None, *, reference: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Each voice's codes standardised by that voice's own statistics (from ``X`` itself), then
        mapped onto the training scale and mean. ``voices=None``: all of ``X`` is one voice, whose
        statistics come from ``reference`` (other codes of that voice: a few clips it recorded
        first) when given."""
        check_is_fitted(self, "scale_")
        x = check_array(X, dtype=np.float64)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"codes have {x.shape[1]} dimensions; the normaliser was fitted on {self.n_features_in_}"
            )
        if reference is not None:
            if voices is not None:
                raise ValueError("reference codes stand for one voice: give either voices or reference")
            ref = check_array(reference, dtype=np.float64)
            if ref.shape[1] != x.shape[1]:
                raise ValueError(f"reference codes have {ref.shape[1]} dimensions, codes {x.shape[1]}")
            _, mean, spread = voice_moments(ref, np.zeros(len(ref), dtype=str), self.min_clips, self.eps)
            return (x - mean[0]) / spread[0] * self.scale_ + self.mean_
        v = np.zeros(len(x), dtype=str) if voices is None else _voices(voices, len(x))
        which, mean, spread = voice_moments(x, v, self.min_clips, self.eps)
        return (x - mean[which]) / spread[which] * self.scale_ + self.mean_

    def fit_transform(self, X: ArrayLike, y: None = None, *, voices: ArrayLike) -> NDArray[np.float64]:
        return self.fit(X, voices=voices).transform(X, voices)


def neighbour_vote(codes: ArrayLike, labels: ArrayLike, share: float) -> NDArray[np.int64]:
    """Each code's label replaced by the most common label among its nearest ``share`` of ``codes``
    (itself included; a tie keeps its own label).

    Meant for the codes of one voice: that voice's clips of one word lie together even where the
    whole group sits nearer another word's clusters than its own, so a clip recalled apart from the
    clips around it is outvoted by them. It uses which clips share a voice, never what they say.
    Fewer than three to ask (a code and one neighbour: its own label wins the tie) leaves the
    labels as they are: at ``share`` 0.05, a batch of 50 codes or fewer."""
    x = check_array(codes, dtype=np.float64)
    y = np.asarray(labels)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError(
            f"labels must be one non-negative integer per code ({len(x)}); got {y.dtype} {y.shape}"
        )
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must lie in [0, 1]; got {share}")
    k = round(share * len(x))  # at most len(x): share is at most 1
    y = y.astype(np.int64)
    if k < 3:
        return y.copy()
    near = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x, return_distance=False)
    votes = np.zeros((len(x), int(y.max()) + 1))
    np.add.at(votes, (np.repeat(np.arange(len(x)), k), y[near].ravel()), 1.0)
    votes[np.arange(len(x)), y] += OWN_VOTE
    return votes.argmax(axis=1).astype(np.int64)
