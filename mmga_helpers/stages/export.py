"""Export of a seed's generator: the latent banks and the manifest ``mmga.json`` that
:meth:`MMGA.load <mmga_helpers.generation.MMGA.load>` reads (written last, atomically, with the
sha256 of every artefact it names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmga_helpers.core.io import read_json, write_json, write_npz
from mmga_helpers.core.stamps import file_sha256
from mmga_helpers.generation import MANIFEST, MMGA, LatentBank
from mmga_helpers.stages.autoencoders import latents, train_autoencoders
from mmga_helpers.stages.clusterings import ClusterResult, fit_modality_clusters
from mmga_helpers.stages.linking import cross_modal
from mmga_helpers.stages.run import Data, Run


def export_generator(
    run: Run, latents: dict[str, np.ndarray], clusters: ClusterResult, audio_frames: np.ndarray
) -> Path:
    """Write the latent banks and the manifest ``mmga.json`` for ``run.seed`` (atomically, last).

    ``clusters`` is the evaluation stage's ``ClusterResult``: the brain links its ``image_brain``
    and ``audio_brain`` clusterings, so those are what generation uses; ``audio_frames`` are the
    natural lengths of the audio training clips, so that a generated word is spoken at their pace."""
    folder = run.dir
    banks = folder / "generator" / f"seed{run.seed}_banks.npz"
    fraction = run.cfg.generation.core_fraction
    image = LatentBank(latents["image_train"], clusters.ids["image_brain_train"]).core(
        clusters.image_brain.centre_distance(latents["image_train"]), fraction
    )
    audio = LatentBank(
        latents["audio_train"], clusters.ids["audio_brain_train"], np.asarray(audio_frames, dtype=np.int64)
    ).core(clusters.audio_brain.centre_distance(latents["audio_train"]), fraction)
    write_npz(
        banks,
        image_z=image.z,
        image_clusters=image.clusters,
        audio_z=audio.z,
        audio_clusters=audio.clusters,
        audio_frames=audio.frames,
    )
    models, cl = run.models, clusters.folder
    image_clusterer = cl / "image_brain.npz" if (cl / "image_brain.npz").is_file() else cl / "image.npz"
    paths = {
        "image_encoder": models / "image_autoencoder" / "encoder.keras",
        "image_decoder": models / "image_autoencoder" / "decoder.keras",
        "image_meta": models / "image_autoencoder" / "meta.json",
        "audio_encoder": models / "audio_autoencoder" / "encoder.keras",
        "audio_decoder": models / "audio_autoencoder" / "decoder.keras",
        "audio_meta": models / "audio_autoencoder" / "meta.json",
        "image_clusterer": image_clusterer,
        "audio_clusterer": cl / "audio_brain.npz",
        "brain": cl / "brain.npz",
        "banks": banks,
    }
    manifest_path = folder / MANIFEST
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    if manifest.get("config") not in (None, run.cfg.model_dump(mode="json")):
        manifest = {}  # another configuration: start a fresh manifest rather than mix
    manifest["config"] = run.cfg.model_dump(mode="json")
    manifest.setdefault("default_seed", run.seed)
    manifest.setdefault("seeds", {})[str(run.seed)] = {
        "files": {k: {"path": str(p.relative_to(folder)), "sha256": file_sha256(p)} for k, p in paths.items()}
    }
    write_json(manifest_path, manifest)
    return manifest_path


def prepare_generator(run: Run, data: Data, *, force: bool = False) -> MMGA:
    """Everything generation needs for this seed (reusing finished stages), exported and reloaded
    through the public :meth:`MMGA.load`, so the notebook uses exactly what users get."""
    image_ae, audio_ae = train_autoencoders(run, data, force=force)
    z = latents(run, data, image_ae, audio_ae, force=force)
    clusters = fit_modality_clusters(run, z, force=force)
    if force or not (clusters.folder / "brain.npz").is_file() or not clusters.reused:
        cross_modal(run, data, z, clusters, save_as="brain")
    export_generator(run, z, clusters, data.audio_train.frames)
    return MMGA.load(run.dir, seed=run.seed)
