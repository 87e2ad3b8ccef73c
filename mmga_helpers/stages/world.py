"""The simulated world: which training image is seen while which training clip is heard.

Digit labels decide only what co-occurs (:func:`train_pairs`); what learns from the world gets the
index pairs, never a label. The clean world pairs a digit with the same spoken digit; the mismatched
world (:data:`MISMATCH_FRACTION` of the pairs) gives some images a clip of another digit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mmga_helpers.core.pairs import cooccurrence_targets, cooccurring_pairs

if TYPE_CHECKING:
    from mmga_helpers.stages.run import Run

MAX_TRAIN_PAIRS = 20_000  # co-occurring training pairs: enough for stable counts, fast joint UMAP
MISMATCH_FRACTION = 0.2


def mismatch_tag(fraction: float = MISMATCH_FRACTION) -> str:
    """``"mismatch20"`` for 20 % mismatched pairs: the name of that world's models, clusters, brain
    and figures."""
    return f"mismatch{round(fraction * 100)}"


def train_pairs(
    image_digits: ArrayLike,
    audio_digits: ArrayLike,
    seed: int,
    mismatch_fraction: float = 0.0,
    max_pairs: int = MAX_TRAIN_PAIRS,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Co-occurring ``(image_idx, audio_idx)``: one pair per training image, at most ``max_pairs``.
    The clean and the mismatched worlds use different random streams of the same seed."""
    n = min(len(np.asarray(image_digits)), max_pairs)
    rng = np.random.default_rng([seed, round(mismatch_fraction * 1000)])
    return cooccurring_pairs(image_digits, audio_digits, n, mismatch_fraction, random_state=rng)


def convergence_targets(
    run: Run,
    partner_ids_train: NDArray[np.int64],
    image_digits: ArrayLike,
    audio_digits: ArrayLike,
    *,
    mismatch_fraction: float = 0.0,
    learner: Literal["audio", "image"] = "audio",
) -> NDArray[np.float32]:
    """What an encoder's convergence head learns, over the same pairs the brain is fitted on. For
    the audio encoder (``learner="audio"``): for each training clip, the distribution of the image
    clusters (``partner_ids_train``, one per training image, ``convergence_clusters`` of them) of
    the images it co-occurred with; for the image encoder, for each training image, that of the
    audio clusters (one per training clip) of the clips it was heard with. The partner clusters
    are unsupervised; the digits only decide what co-occurs."""
    ii, ai = train_pairs(image_digits, audio_digits, run.seed, mismatch_fraction)
    k = run.cfg.model.clustering.taught_clusters
    partner = np.asarray(partner_ids_train)
    if learner == "audio":
        return cooccurrence_targets(partner[ii], ai, len(np.asarray(audio_digits)), k)
    return cooccurrence_targets(partner[ai], ii, len(np.asarray(image_digits)), k)
