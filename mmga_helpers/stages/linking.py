"""Linking: the brain (a convergence-divergence zone) fitted on the cluster ids of co-occurring
training pairs, and what it recalls of held-out items in the other modality.

The brain gets co-occurring cluster ids only (:func:`fit_brain`); the digits enter only to decide
what co-occurs (:mod:`~mmga_helpers.stages.world`) and to score what it recalls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mmga_helpers.core.metrics import cluster_digit_counts, cross_modal_accuracy
from mmga_helpers.learn.brain import ConvergenceDivergenceZone
from mmga_helpers.learn.clustering import Clusterer
from mmga_helpers.stages.clusterings import ClusterResult
from mmga_helpers.stages.world import train_pairs

if TYPE_CHECKING:
    from mmga_helpers.stages.run import Data, Run


def fit_brain(
    image_clusters: ArrayLike,
    audio_clusters: ArrayLike,
    n_image_clusters: int,
    n_audio_clusters: int,
    convergence_threshold: float,
) -> ConvergenceDivergenceZone:
    """The convergence-divergence zones learned from co-occurring cluster ids (nothing else)."""
    brain = ConvergenceDivergenceZone(n_image_clusters, n_audio_clusters, convergence_threshold)
    return brain.fit(np.asarray(image_clusters), np.asarray(audio_clusters))


def recall(
    brain: ConvergenceDivergenceZone,
    direction: str,
    ids: NDArray[np.int64],
    posteriors: NDArray[np.float64] | None = None,
) -> NDArray[np.int64]:
    """The cluster each item evokes in the other modality. Hard: the brain's strongest partner of
    the item's cluster. Soft (``posteriors`` given, ``[N, k]`` cluster memberships from a mixture):
    the partner with the largest expected strength ``sum_c P(c | item) S[c, partner]``, so that an
    item between two clusters is not bound to the one it barely fell into."""
    if posteriors is None:
        return brain.predict_audio(ids) if direction == "image_to_audio" else brain.predict_image(ids)
    return np.asarray((posteriors @ brain.strengths_[direction]).argmax(axis=1), dtype=np.int64)


def posteriors_of(clusterer: Clusterer, x: NDArray) -> NDArray[np.float64] | None:
    """Soft memberships when the clusterer is a mixture; None for k-means (hard recall)."""
    proba = getattr(clusterer, "predict_proba", None)
    return None if proba is None else np.asarray(proba(x), dtype=np.float64)


@dataclass
class CrossModal:
    """A fitted brain and what it recalls on the held-out splits.

    A cluster's *meaning*, for scoring only, is the majority digit of the items in it. For the
    audio clusters that image -> audio recall evokes, it is taken among the held-out FSDD clips:
    taken among the training clips, it would reward the brain for a choice made from those very
    clips, and audio clusters of pure noise would score far above chance (book/method.md);
    ``image_to_audio_acc_train_majority`` keeps that figure for comparison.
    Audio -> image recall starts from a held-out clip, so the training images' majority is fair.
    """

    brain: ConvergenceDivergenceZone
    image_to_audio_acc: float
    audio_to_image_acc: float
    image_to_audio_acc_train_majority: float
    pred_audio: NDArray[np.int64]  # per MNIST test image: the audio cluster it evokes
    pred_image: NDArray[np.int64]  # per FSDD test clip: the image cluster it evokes
    image_counts: NDArray[np.int64]  # [image brain cluster, digit] over the training images
    audio_counts: NDArray[np.int64]  # [audio brain cluster, digit] over the held-out clips


def cross_modal(
    run: Run,
    data: Data,
    z: Mapping[str, NDArray],
    clusters: ClusterResult,
    *,
    mismatch_fraction: float = 0.0,
    soft: bool = False,
    save_as: str | None = None,
) -> CrossModal:
    """Fit the brain on the training pairs' cluster ids and score recall both ways (see
    :class:`CrossModal`): image -> audio is right when the audio cluster a MNIST test image evokes
    mostly holds held-out clips of the image's digit; audio -> image when the image cluster an FSDD
    test clip evokes mostly holds training images of the clip's digit."""
    ii, ai = train_pairs(data.image_train_labels, data.audio_train.digits, run.seed, mismatch_fraction)
    ids = clusters.ids
    k_img, k_aud = clusters.n_image_brain, clusters.n_audio_brain
    threshold = run.cfg.model.clustering.convergence_threshold
    brain = fit_brain(ids["image_brain_train"][ii], ids["audio_brain_train"][ai], k_img, k_aud, threshold)
    if save_as:
        brain.save(clusters.folder / f"{save_as}.npz")
    post_i = posteriors_of(clusters.image_brain, z["image_test"]) if soft else None
    post_a = posteriors_of(clusters.audio_brain, z["audio_test"]) if soft else None
    pred_audio = recall(brain, "image_to_audio", ids["image_brain_test"], post_i)
    pred_image = recall(brain, "audio_to_image", ids["audio_brain_test"], post_a)
    img_counts = cluster_digit_counts(ids["image_brain_train"], data.image_train_labels, k_img, 10)
    aud_counts = cluster_digit_counts(ids["audio_brain_test"], data.audio_test.digits, k_aud, 10)
    aud_train_counts = cluster_digit_counts(ids["audio_brain_train"], data.audio_train.digits, k_aud, 10)
    return CrossModal(
        brain,
        cross_modal_accuracy(pred_audio, data.image_test_labels, aud_counts),
        cross_modal_accuracy(pred_image, data.audio_test.digits, img_counts),
        cross_modal_accuracy(pred_audio, data.image_test_labels, aud_train_counts),
        pred_audio,
        pred_image,
        img_counts,
        aud_counts,
    )
