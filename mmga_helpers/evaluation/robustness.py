"""Robustness to a noisy world: the brain fitted on clean pairs and on pairs of which
:data:`~mmga_helpers.stages.world.MISMATCH_FRACTION` are mismatched, with every part that learns from
co-occurrence (the convergence heads, their clusters, the brain) relearned in the noisy world."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from mmga_helpers.core.inference import encode
from mmga_helpers.stages.autoencoders import train_audio_autoencoder, train_image_autoencoder
from mmga_helpers.stages.clusterings import ClusterResult, cached_clusterer
from mmga_helpers.stages.linking import cross_modal
from mmga_helpers.stages.run import Data, Run
from mmga_helpers.stages.world import MISMATCH_FRACTION, mismatch_tag


def cross_modal_figures(
    run: Run,
    data: Data,
    z: Mapping[str, NDArray],
    clusters: ClusterResult,
    *,
    soft: bool = False,
    save_as: str | None = "brain",
    noisy_world: tuple[Mapping[str, NDArray], ClusterResult] | None = None,
    noisy: bool = True,
) -> dict[str, float]:
    """Clean and 20 %-mismatched cross-modal accuracy (``cross_modal.*``) and the drop between them;
    the two brains are saved as ``<save_as>.npz`` and ``<save_as>_mismatch20.npz``. ``noisy_world``
    (latents and clusters from :func:`mismatched_world`) replaces ``z`` and ``clusters`` for the
    mismatched brain when the audio encoder itself learned from the pairs; ``noisy=False``: the
    clean figures only (``evaluation.mismatched_world: false``)."""
    tag = mismatch_tag()
    clean = cross_modal(run, data, z, clusters, soft=soft, save_as=save_as)
    figures = {
        "cross_modal.image_to_audio_acc": clean.image_to_audio_acc,
        "cross_modal.audio_to_image_acc": clean.audio_to_image_acc,
    }
    if not noisy:
        return figures
    zn, cn = noisy_world if noisy_world is not None else (z, clusters)
    noisy = cross_modal(
        run,
        data,
        zn,
        cn,
        mismatch_fraction=MISMATCH_FRACTION,
        soft=soft,
        save_as=f"{save_as}_{tag}" if save_as else None,
    )
    return figures | {
        f"cross_modal.{tag}.image_to_audio_acc": noisy.image_to_audio_acc,
        f"cross_modal.{tag}.audio_to_image_acc": noisy.audio_to_image_acc,
        f"cross_modal.{tag}.image_to_audio_drop": clean.image_to_audio_acc - noisy.image_to_audio_acc,
        f"cross_modal.{tag}.audio_to_image_drop": clean.audio_to_image_acc - noisy.audio_to_image_acc,
    }


def mismatched_world(
    run: Run, data: Data, z: Mapping[str, NDArray], clusters: ClusterResult, *, force: bool = False
) -> tuple[dict[str, NDArray], ClusterResult]:
    """The world where 20 % of the pairs are mismatched, relearned: the audio autoencoder's
    convergence head is trained on those pairs (``models/seed<s>/mismatch20/``) and its codes are
    over-clustered again; with image feedback the image autoencoder's head is retrained on the same
    pairs (fed by that world's audio clusters) and the images are clustered again; the brain is
    then fitted on the noisy pairs, so the robustness figure covers every part that learns from
    co-occurrence."""
    tag = mismatch_tag()
    feedback = run.image_feedback
    # the audio head learns the image clusters it learns in the clean world (image_train_clusters)
    ae = train_audio_autoencoder(run, data, force=force, mismatch_fraction=MISMATCH_FRACTION)
    zn = dict(z)
    for split in ("train", "test"):
        zn[f"audio_{split}"] = encode(ae.model.encoder, getattr(data, f"audio_{split}").x)
    k = run.cfg.model.clustering.audio_n_clusters
    audio_brain, _ = cached_clusterer(
        run, f"{tag}_audio_brain", zn["audio_train"], k, modality="audio", force=force
    )
    ids = dict(clusters.ids)
    for split in ("train", "test"):
        ids[f"audio_brain_{split}"] = np.asarray(audio_brain.predict(zn[f"audio_{split}"]), np.int64)
    world = replace(clusters, audio_brain=audio_brain, ids=ids)
    if feedback:  # the image head also learned from the noisy pairs: relearn the image side too
        image_ae = train_image_autoencoder(run, data, force=force, mismatch_fraction=MISMATCH_FRACTION)
        for split in ("train", "test"):
            zn[f"image_{split}"] = encode(image_ae.model.encoder, getattr(data, f"image_{split}"))
        n, k_brain = run.cfg.model.clustering.n_clusters, clusters.n_image_brain
        image, _ = cached_clusterer(run, f"{tag}_image", zn["image_train"], n, modality="image", force=force)
        image_brain = image
        if k_brain != n:
            image_brain, _ = cached_clusterer(
                run, f"{tag}_image_brain", zn["image_train"], k_brain, modality="image", force=force
            )
        for name, model in (("image", image), ("image_brain", image_brain)):
            for split in ("train", "test"):
                ids[f"{name}_{split}"] = np.asarray(model.predict(zn[f"image_{split}"]), np.int64)
        world = replace(world, image=image, image_brain=image_brain, ids=ids)
    return zn, world
