"""Voices never heard: leave one speaker out. For each FSDD speaker the audio autoencoder, its
clusters and the brain are relearned from the other speakers' training clips, and every clip of the
held-out speaker is recalled as an image cluster (audio -> image) and drawn as an image (``see``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mmga_helpers.core.inference import encode
from mmga_helpers.core.metrics import cluster_digit_counts, cross_modal_accuracy
from mmga_helpers.core.stamps import array_stamp
from mmga_helpers.evaluation.judges import Judge
from mmga_helpers.generation import LatentBank
from mmga_helpers.learn.clustering import Clusterer, make_clusterer
from mmga_helpers.learn.training import TrainedAutoencoder, train_autoencoder
from mmga_helpers.learn.voices import VoiceNormalizer, neighbour_vote
from mmga_helpers.stages.autoencoders import image_train_clusters, taught_image_clusters, unimodal_image_side
from mmga_helpers.stages.clusterings import ClusterResult, cached_model, cluster_folder
from mmga_helpers.stages.linking import fit_brain, posteriors_of, recall
from mmga_helpers.stages.run import Data, Run
from mmga_helpers.stages.world import convergence_targets, train_pairs


def all_clips(data: Data) -> tuple[NDArray, NDArray[np.int64], NDArray[np.str_], NDArray[np.bool_]]:
    """Every FSDD clip (train then test): log-mels, digits, speakers, and a mask of the train split."""
    tr, te = data.audio_train, data.audio_test
    return (
        np.concatenate([tr.x, te.x]),
        np.concatenate([tr.digits, te.digits]).astype(np.int64),
        np.concatenate([tr.speakers, te.speakers]).astype(str),
        np.r_[np.ones(len(tr), bool), np.zeros(len(te), bool)],
    )


@dataclass(frozen=True)
class LinkedImages:
    """The image side a fold's brain links to: the cluster of every MNIST training image (``ids``),
    their digits (``digits``: only to simulate what co-occurs) and ``counts[cluster, digit]`` over
    them (only to score)."""

    ids: NDArray[np.int64]
    digits: NDArray
    counts: NDArray[np.int64]


@dataclass(frozen=True)
class Fold:
    """One speaker held out (``name`` also names the fold's cached clusterer): the codes and digits
    of the other speakers' training clips (``train``, ``train_digits``) and of every clip of the
    held-out speaker (``held``, ``held_digits``); ``train_voices`` names the speaker of each training
    code, for voice normalisation."""

    name: str
    train: NDArray
    train_digits: NDArray
    held: NDArray
    held_digits: NDArray
    train_voices: NDArray | None = None


def holdout_fold(
    run: Run,
    images: LinkedImages,
    fold: Fold,
    *,
    algorithm: str,
    force: bool = False,
    soft: bool = False,
    recalled: dict[str, tuple[NDArray, NDArray]] | None = None,
    voice_normalize: bool = False,
    voice_vote: float = 0.0,
    unvoted: dict[str, tuple[NDArray, NDArray]] | None = None,
) -> float:
    """One fold: over-cluster the other speakers' training codes, fit the brain on pairs drawn
    from those clips, and score audio -> image recall for every clip of the held-out speaker.
    ``recalled`` (when given) receives ``fold.name -> (recalled image clusters, held digits)``.
    ``voice_normalize`` first standardises each training voice's codes, and the held-out voice's
    from its own clips (:class:`~mmga_helpers.learn.voices.VoiceNormalizer`). ``voice_vote`` > 0
    then gives each held-out clip the recall most common among its nearest ``voice_vote`` share of
    the voice's clips (:func:`~mmga_helpers.learn.voices.neighbour_vote`); ``unvoted`` (when given)
    receives the recall before that vote, as ``recalled`` does."""
    if voice_normalize:
        if fold.train_voices is None:
            raise ValueError("voice normalisation needs the fold's train_voices")
        norm = VoiceNormalizer().fit(fold.train, voices=fold.train_voices)
        fold = replace(
            fold, train=norm.transform(fold.train, fold.train_voices), held=norm.transform(fold.held)
        )
    cc = run.cfg.model.clustering
    stamp = array_stamp(
        fold.train, extra={"algorithm": algorithm, "clustering": cc.model_dump(mode="json"), "seed": run.seed}
    )

    def fit() -> Clusterer:
        return make_clusterer(algorithm, cc.audio_n_clusters, cc, run.seed, modality="audio").fit(fold.train)

    folder = cluster_folder(run) / "loso"
    folder.mkdir(parents=True, exist_ok=True)
    # each setting keeps its own cached clusters: one run computes both (the ablation)
    name = f"{fold.name}_voice_normalized" if voice_normalize else fold.name
    clusterer, _ = cached_model(folder, name, stamp, fit, force)
    ii, ai = train_pairs(images.digits, fold.train_digits, run.seed)
    fold_ids = np.asarray(clusterer.predict(fold.train), np.int64)
    brain = fit_brain(
        images.ids[ii], fold_ids[ai], images.counts.shape[0], cc.audio_n_clusters, cc.convergence_threshold
    )
    held_ids = np.asarray(clusterer.predict(fold.held), np.int64)
    post = posteriors_of(clusterer, fold.held) if soft else None
    pred = recall(brain, "audio_to_image", held_ids, post)
    if unvoted is not None:
        unvoted[fold.name] = (pred, np.asarray(fold.held_digits))
    pred = neighbour_vote(fold.held, pred, voice_vote)
    if recalled is not None:
        recalled[fold.name] = (pred, np.asarray(fold.held_digits))
    return cross_modal_accuracy(pred, fold.held_digits, images.counts)


@dataclass
class HoldoutImages:
    """The image side that the speaker hold-out links held-out voices to: the cluster ids its audio
    heads learn (``target_ids``), the brain's image clusters (``brain_ids``, ``n_brain``), and the
    training codes and decoder that :func:`speaker_holdout_see` draws and decodes from, with each
    code's distance to its cluster's centre (``centre_distance``: generation's core draws)."""

    target_ids: NDArray[np.int64]
    brain_ids: NDArray[np.int64]
    n_brain: int
    z_train: NDArray | None = None
    decoder: Any = None
    centre_distance: NDArray | None = None

    def linked(self, image_digits: NDArray) -> LinkedImages:
        """What a fold's brain links held-out voices to: the brain's image cluster of every MNIST
        training image, their digits, and ``counts[cluster, digit]`` to score the recall."""
        counts = cluster_digit_counts(self.brain_ids, image_digits, self.n_brain, 10)
        return LinkedImages(self.brain_ids, image_digits, counts)


def holdout_images(
    run: Run,
    data: Data,
    z: Mapping[str, NDArray],
    clusters: ClusterResult,
    image_ae: TrainedAutoencoder | None = None,
) -> HoldoutImages:
    """The run's own image side, except with image feedback: that image encoder learned audio
    clusters fitted on every speaker's clips, so the hold-out uses the first-pass image autoencoder
    trained on images alone, and its clusters, instead; the held-out voice then reaches no part."""
    if not run.image_feedback:
        decoder = None if image_ae is None else image_ae.model.decoder
        zt = z.get("image_train")  # the run's image codes: the audio head learned their clusters
        if zt is None:
            taught = image_train_clusters(run, data)
        else:  # the same clusters, from the codes at hand
            taught = taught_image_clusters(run, zt, clusters.image)
        return HoldoutImages(
            taught,
            clusters.ids["image_brain_train"],
            clusters.n_image_brain,
            zt,
            decoder,
            None if zt is None else clusters.image_brain.centre_distance(zt),
        )
    unimodal, zu, base = unimodal_image_side(run, data)
    ids, n = np.asarray(base.labels_, np.int64), run.cfg.model.clustering.n_clusters
    taught = taught_image_clusters(run, zu, base)
    return HoldoutImages(taught, ids, n, zu, unimodal.model.decoder, base.centre_distance(zu))


def speaker_holdout(
    run: Run,
    data: Data,
    clusters: ClusterResult,
    *,
    force: bool = False,
    soft: bool = False,
    speakers: list[str] | None = None,
    recalled: dict[str, tuple[NDArray, NDArray]] | None = None,
    images: HoldoutImages | None = None,
    voice_normalize: bool | None = None,
    plain: dict[str, float] | None = None,
    voice_vote: float | None = None,
    unvoted: dict[str, tuple[NDArray, NDArray]] | None = None,
    plain_voted: dict[str, float] | None = None,
) -> dict[str, float]:
    """Leave-one-speaker-out audio -> image accuracy per speaker: the audio autoencoder is retrained
    on the other speakers' training clips (kept in ``models/seed<s>/loso/<speaker>``; for
    ``evaluation.speaker_holdout_epochs`` epochs when set), so the held-out voice is new to every
    learned part. ``recalled`` receives each fold's recalled image
    clusters (see :func:`holdout_fold`), from which :func:`speaker_holdout_see` draws images.
    ``images`` (default: :func:`holdout_images`) is what held-out voices are linked to.
    ``voice_normalize`` (default: ``evaluation.voice_normalize``) standardises codes per voice;
    with it on, ``plain`` (when given) receives each speaker's accuracy without it, from the same
    fold models and codes (the ablation, in one pass); ``plain`` has no vote either.
    ``voice_vote`` (default: ``evaluation.voice_vote``) lets each voice's clips vote on their recall
    (see :func:`holdout_fold`); ``unvoted`` receives each fold's recall before the vote, and
    ``plain_voted`` (with ``plain``) each speaker's accuracy with the vote but no normalisation."""
    if voice_normalize is None:
        voice_normalize = run.cfg.evaluation.voice_normalize
    if voice_vote is None:
        voice_vote = run.cfg.evaluation.voice_vote
    x, digits, spk, is_train = all_clips(data)
    if images is None:
        images = holdout_images(run, data, {}, clusters)
    linked = images.linked(data.image_train_labels)
    out = {}
    for speaker in speakers or sorted(np.unique(spk)):
        others = is_train & (spk != speaker)
        held = spk == speaker
        targets = None
        if run.audio_feedback:
            targets = convergence_targets(run, images.target_ids, data.image_train_labels, digits[others])
        ae = train_autoencoder(
            x[others],
            run.cfg.holdout_autoencoder,
            "audio_autoencoder",
            run.models / "loso" / speaker,
            seed=run.seed,
            force=force,
            targets=targets,
            training=run.cfg.training,
        )
        zf, zh = encode(ae.model.encoder, x[others]), encode(ae.model.encoder, x[held])
        fold = Fold(speaker, zf, digits[others], zh, digits[held], spk[others])
        algorithm = run.cfg.model.clustering.algorithm
        out[speaker] = holdout_fold(
            run,
            linked,
            fold,
            algorithm=algorithm,
            force=force,
            soft=soft,
            recalled=recalled,
            voice_normalize=voice_normalize,
            voice_vote=voice_vote,
            unvoted=unvoted,
        )
        if plain is not None and voice_normalize:
            before: dict[str, tuple[NDArray, NDArray]] = {}
            voted = holdout_fold(
                run, linked, fold, algorithm=algorithm, force=force, soft=soft, voice_vote=voice_vote,
                unvoted=before,
            )
            plain[speaker] = cross_modal_accuracy(*before[speaker], linked.counts)
            if plain_voted is not None:
                plain_voted[speaker] = voted
    return out


def recalled_accuracy(
    images: HoldoutImages, image_digits: NDArray, recalled: Mapping[str, tuple[NDArray, NDArray]]
) -> dict[str, float]:
    """Audio -> image accuracy per speaker of recalls gathered by :func:`speaker_holdout`."""
    counts = images.linked(image_digits).counts
    return {s: cross_modal_accuracy(ids, digits, counts) for s, (ids, digits) in sorted(recalled.items())}


def speaker_holdout_see(
    run: Run,
    images: HoldoutImages,
    image_judge: Judge,
    recalled: Mapping[str, tuple[NDArray, NDArray]],
) -> dict[str, float]:
    """``see`` for voices never heard: each held-out speaker's clips, through that fold's audio
    autoencoder, clustering and brain (``recalled``), become images drawn inside the recalled image
    cluster and decoded by ``images.decoder``; the MNIST judge reads them. Judged accuracy per
    speaker. With ``images.centre_distance``, draws come from each cluster's core
    (``generation.core_fraction``), as :meth:`MMGA.see`'s do."""
    if images.z_train is None or images.decoder is None:
        raise ValueError("speaker_holdout_see needs the image side's training codes and decoder")
    bank = LatentBank(np.asarray(images.z_train), np.asarray(images.brain_ids, np.int64))
    if images.centre_distance is not None:
        bank = bank.core(images.centre_distance, run.cfg.generation.core_fraction)
    out = {}
    for i, (speaker, (clusters, digits)) in enumerate(sorted(recalled.items())):
        z = bank.draw(np.asarray(clusters, np.int64), np.random.default_rng([run.seed, i]))
        out[speaker] = image_judge.accuracy(encode(images.decoder, z)[..., 0], digits)
    return out
