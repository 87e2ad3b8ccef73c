"""The autoencoder stages of a seed: the image side (trained on images alone, then, with image
feedback, again from those weights with the audio clusters it co-occurs with), the audio side
(reconstruction plus the co-occurring images' clusters) and the latent codes of every split.

Every stage trains or reuses (:func:`~mmga_helpers.learn.training.train_autoencoder`) and caches
what it computes, so a later notebook calling the same stage gets the same models back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmga_helpers.core.inference import encode
from mmga_helpers.core.io import read_npz, write_npz
from mmga_helpers.core.stamps import data_fingerprint, json_stamp
from mmga_helpers.learn.clustering import Clusterer
from mmga_helpers.learn.training import TrainedAutoencoder, train_autoencoder
from mmga_helpers.stages.clusterings import cached_clusterer, image_clusterer, taught_clusterer
from mmga_helpers.stages.run import Data, Run
from mmga_helpers.stages.world import convergence_targets, mismatch_tag


def _world_folder(run: Run, mismatch_fraction: float) -> Path:
    """``models/seed<s>``, or ``models/seed<s>/mismatch<pct>`` for the world with mismatched pairs."""
    return run.models / mismatch_tag(mismatch_fraction) if mismatch_fraction else run.models


def train_unimodal_image_autoencoder(run: Run, data: Data, *, force: bool = False) -> TrainedAutoencoder:
    """The image autoencoder trained on MNIST train images alone (reconstruction only). Its clusters
    are what the audio encoder's convergence head learns. Without image feedback it is the image
    autoencoder of the run (``image_autoencoder/``); with it, the first pass
    (``image_autoencoder_unimodal/``), which also serves the speaker hold-out (no voice reaches it)."""
    name = "image_autoencoder_unimodal" if run.image_feedback else "image_autoencoder"
    return train_autoencoder(
        data.image_train,
        run.cfg.model.image_autoencoder.model_copy(update={"convergence_weight": 0.0}),
        "image_autoencoder",
        run.models / name,
        seed=run.seed,
        force=force,
        training=run.cfg.training,
    )


def train_image_autoencoder(
    run: Run, data: Data, *, force: bool = False, mismatch_fraction: float = 0.0
) -> TrainedAutoencoder:
    """Train (or reuse) the image autoencoder of this seed on MNIST train: the one that generation,
    the clusters and the brain use. With image feedback it is trained again, after the audio
    autoencoder, with a convergence head that learns the audio clusters of the clips each image
    co-occurred with (:func:`image_convergence_targets`), starting from the first pass's weights: the
    feedback refines a code that already reconstructs, instead of trading reconstruction for the
    partner's clusters from scratch. ``mismatch_fraction > 0`` trains the copy for the mismatched
    world in ``mismatch<pct>/``."""
    if not run.image_feedback:
        return train_unimodal_image_autoencoder(run, data, force=force)
    return train_autoencoder(
        data.image_train,
        run.cfg.model.image_autoencoder,
        "image_autoencoder",
        _world_folder(run, mismatch_fraction) / "image_autoencoder",
        seed=run.seed,
        force=force,
        training=run.cfg.training,
        targets=image_convergence_targets(run, data, mismatch_fraction=mismatch_fraction),
        init=train_unimodal_image_autoencoder(run, data),
    )


def unimodal_image_side(run: Run, data: Data) -> tuple[TrainedAutoencoder, np.ndarray, Clusterer]:
    """The unimodal image autoencoder (trained or reused), its codes of the MNIST training images and
    their clusterer (the clustering stage's image clusterer when there is no image feedback,
    ``image_unimodal`` otherwise), fitted on these very codes or reused when stamped with them.
    Returns ``(trained, z_train, clusterer)``; on its training codes ``labels_`` is ``predict``."""
    trained = train_unimodal_image_autoencoder(run, data)
    z = encode(trained.model.encoder, data.image_train)
    return trained, z, image_clusterer(run, z, unimodal=run.image_feedback)


def taught_image_clusters(run: Run, z: np.ndarray, base: Clusterer) -> np.ndarray:
    """The ids of the ``model.clustering.convergence_clusters`` clusters of the unimodal image codes
    ``z`` (:func:`taught_clusterer` of their clusterer ``base``): what the audio head learns."""
    name = "image_unimodal" if run.image_feedback else "image"
    return np.asarray(taught_clusterer(run, name, z, base, modality="image").labels_, np.int64)


def image_train_clusters(run: Run, data: Data) -> np.ndarray:
    """What the audio encoder's convergence head learns: :func:`taught_image_clusters` of the
    unimodal image autoencoder's codes (:func:`unimodal_image_side`)."""
    _, z, base = unimodal_image_side(run, data)
    return taught_image_clusters(run, z, base)


def audio_train_clusters(run: Run, data: Data, mismatch_fraction: float = 0.0) -> np.ndarray:
    """What the image encoder's convergence head learns: the cluster ids of the FSDD training clips
    on this seed's audio autoencoder (the mismatched world's, for ``mismatch_fraction > 0``), in
    ``model.clustering.convergence_clusters`` clusters on the embedding of the clustering stage's
    audio clusterer."""
    ae = train_audio_autoencoder(run, data, mismatch_fraction=mismatch_fraction)
    z = encode(ae.model.encoder, data.audio_train.x)
    name = f"{mismatch_tag(mismatch_fraction)}_audio" if mismatch_fraction else "audio"
    base, _ = cached_clusterer(run, name, z, run.cfg.model.clustering.n_clusters, modality="audio")
    taught = taught_clusterer(run, name, z, base, modality="audio")
    return np.asarray(taught.labels_, np.int64)  # == predict(z)


def image_convergence_targets(
    run: Run, data: Data, audio_ids_train: np.ndarray | None = None, mismatch_fraction: float = 0.0
) -> np.ndarray:
    """The image encoder's convergence targets: for each training image, the distribution of the
    audio clusters of the clips it co-occurred with, over the pairs the brain is fitted on."""
    ids = audio_train_clusters(run, data, mismatch_fraction) if audio_ids_train is None else audio_ids_train
    return convergence_targets(
        run,
        ids,
        data.image_train_labels,
        data.audio_train.digits,
        mismatch_fraction=mismatch_fraction,
        learner="image",
    )


def audio_convergence_targets(
    run: Run, data: Data, image_ids_train: np.ndarray | None = None, mismatch_fraction: float = 0.0
) -> np.ndarray | None:
    """The audio encoder's convergence targets (see
    :func:`~mmga_helpers.stages.world.convergence_targets`), or None when
    ``model.audio_autoencoder.convergence_weight`` is 0."""
    if not run.audio_feedback:
        return None
    ids = image_train_clusters(run, data) if image_ids_train is None else image_ids_train
    digits = data.audio_train.digits
    return convergence_targets(run, ids, data.image_train_labels, digits, mismatch_fraction=mismatch_fraction)


def train_audio_autoencoder(
    run: Run,
    data: Data,
    *,
    force: bool = False,
    mismatch_fraction: float = 0.0,
    image_ids_train: np.ndarray | None = None,
) -> TrainedAutoencoder:
    """Train (or reuse) the audio autoencoder of this seed on FSDD train log-mels: reconstruction,
    plus (``convergence_weight > 0``) the co-occurring images' clusters as a second target.
    ``mismatch_fraction > 0`` trains the copy for the mismatched world in ``mismatch<pct>/``."""
    return train_autoencoder(
        data.audio_train.x,
        run.cfg.model.audio_autoencoder,
        "audio_autoencoder",
        _world_folder(run, mismatch_fraction) / "audio_autoencoder",
        seed=run.seed,
        force=force,
        training=run.cfg.training,
        targets=audio_convergence_targets(run, data, image_ids_train, mismatch_fraction),
    )


def train_autoencoders(
    run: Run, data: Data, *, force: bool = False
) -> tuple[TrainedAutoencoder, TrainedAutoencoder]:
    """Both autoencoders for this seed; returns ``(image, audio)``."""
    return train_image_autoencoder(run, data, force=force), train_audio_autoencoder(run, data, force=force)


def latents(
    run: Run, data: Data, image_ae: TrainedAutoencoder, audio_ae: TrainedAutoencoder, *, force: bool = False
) -> dict[str, np.ndarray]:
    """Latent codes of every split, cached per seed; the cache is tied to the two models' meta.json
    (which change with every retraining) and to the data they encode."""
    stamp = json_stamp([image_ae.meta, audio_ae.meta, data.sizes(), data_fingerprint(data.image_test)])
    if not force and run.latents_path.is_file():
        cached = read_npz(run.latents_path)
        if str(cached.pop("stamp", "")) == stamp:
            return cached
    out = {
        "image_train": encode(image_ae.model.encoder, data.image_train),
        "image_test": encode(image_ae.model.encoder, data.image_test),
        "audio_train": encode(audio_ae.model.encoder, data.audio_train.x),
        "audio_test": encode(audio_ae.model.encoder, data.audio_test.x),
    }
    write_npz(run.latents_path, stamp=np.array(stamp), **out)
    return out
