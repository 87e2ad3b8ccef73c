"""Image feedback (``model.image_autoencoder.convergence_weight > 0``): the image encoder is trained
twice, first on images alone (whose clusters the audio head learns), then with a head that learns
the audio clusters of the clips its images were heard with. Tiny networks on synthetic digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmga_helpers.core.config import config_from_dict, profile_dict
from mmga_helpers.core.io import read_json
from mmga_helpers.evaluation.holdout import holdout_images
from mmga_helpers.evaluation.robustness import mismatched_world
from mmga_helpers.modalities.features import AudioSet
from mmga_helpers.stages.autoencoders import (
    audio_convergence_targets,
    audio_train_clusters,
    image_convergence_targets,
    image_train_clusters,
    latents,
    train_autoencoders,
    train_image_autoencoder,
    train_unimodal_image_autoencoder,
)
from mmga_helpers.stages.clusterings import LATENT_SPLITS, cluster_folder, fit_modality_clusters
from mmga_helpers.stages.run import Data, Run
from mmga_helpers.stages.world import convergence_targets

SPEAKERS = ("ann", "bob", "cid", "dee", "eve", "fay")


def tiny_run(
    root: Path, image_weight: float = 1.0, taught: int | None = 30, fold_epochs: int | None = None
) -> Run:
    raw = profile_dict("quick")
    raw["evaluation"]["speaker_holdout_epochs"] = fold_epochs
    raw["model"]["clustering"]["convergence_clusters"] = taught
    for section, layers in (("image_autoencoder", [4]), ("audio_autoencoder", [4])):
        raw["model"][section].update(
            encoder_layers=layers, decoder_layers=layers, latent_dim=4, epochs=1, batch_size=64
        )
    raw["model"]["image_autoencoder"]["convergence_weight"] = image_weight
    raw["model"]["audio_autoencoder"]["convergence_weight"] = 1.0
    raw["model"]["clustering"].update(algorithm="kmeans", n_clusters=10, audio_n_clusters=12)
    return Run(config_from_dict(raw), seed=0, root=root)


def digit_data(seed: int = 0) -> Data:
    """Images and log-mels built from one template per digit, plus noise."""
    rng = np.random.default_rng(seed)
    img_t, aud_t = rng.random((10, 28, 28, 1)), rng.random((10, 64, 63, 1))

    def make(templates: np.ndarray, y: np.ndarray) -> np.ndarray:
        noisy = templates[y] + rng.normal(0, 0.1, (len(y), *templates.shape[1:]))
        return np.clip(noisy, 0, 1).astype(np.float32)

    yi, yit = rng.integers(0, 10, 600), rng.integers(0, 10, 100)
    ya = np.tile(np.repeat(np.arange(10), 4), len(SPEAKERS))
    sa = np.repeat(np.array(SPEAKERS), 40)
    yat = np.tile(np.arange(10), len(SPEAKERS))
    sat = np.repeat(np.array(SPEAKERS), 10)

    def clips(y: np.ndarray, s: np.ndarray) -> AudioSet:
        n = len(y)
        return AudioSet(make(aud_t, y), np.zeros((n, 8), np.float32), y, s, np.arange(n), np.full(n, 63))

    return Data(make(img_t, yi), yi, make(img_t, yit), yit, clips(ya, sa), clips(yat, sat))


@pytest.fixture(scope="module")
def data() -> Data:
    return digit_data()


def test_image_targets_are_the_audio_clusters_of_the_paired_clips(tmp_path) -> None:
    """Row ``i`` is the distribution of the audio clusters of the clips image ``i`` was paired with;
    an image in no pair has a row of zeros (it adds nothing to the cross-entropy)."""
    run = tiny_run(tmp_path, taught=None)  # the heads learn the partner's n_clusters clusters
    img_digits = np.repeat(np.arange(10), 30)
    aud_digits = np.repeat(np.arange(10), 6)
    audio_ids = (aud_digits + 3) % 10  # a cluster per digit, under other names
    targets = convergence_targets(run, audio_ids, img_digits, aud_digits, learner="image")
    assert targets.shape == (300, 10)
    paired = targets.sum(axis=1) > 0
    assert paired.all()  # 300 images < MAX_TRAIN_PAIRS: every image is in one pair
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    assert (targets.argmax(axis=1) == (img_digits + 3) % 10).all()
    image_ids = (img_digits + 5) % 10
    audio_side = convergence_targets(run, image_ids, img_digits, aud_digits)
    assert audio_side.shape == (60, 10)  # the audio learner's targets: one row per clip
    assert (audio_side.argmax(axis=1) == (aud_digits + 5) % 10).all()


def test_feedback_trains_the_image_side_twice(tmp_path, data) -> None:
    run = tiny_run(tmp_path)
    final = train_image_autoencoder(run, data)
    models = run.models
    unimodal_meta = read_json(models / "image_autoencoder_unimodal" / "meta.json")
    final_meta = read_json(models / "image_autoencoder" / "meta.json")
    audio_meta = read_json(models / "audio_autoencoder" / "meta.json")
    assert "targets_fingerprint" not in unimodal_meta  # images alone
    assert unimodal_meta["config"]["convergence_weight"] == 0.0
    assert final_meta["config"]["convergence_weight"] == 1.0
    assert "targets_fingerprint" in final_meta and "targets_fingerprint" in audio_meta
    assert "convergence_loss" in final.history
    # the audio head learned the unimodal image clusters, which are saved apart from the final ones
    folder = cluster_folder(run)
    assert (folder / "image_unimodal.npz").is_file() and (folder / "audio.npz").is_file()
    # the image head's targets are those of the audio clusters of the training clips
    targets = image_convergence_targets(run, data)
    expected = convergence_targets(
        run,
        audio_train_clusters(run, data),
        data.image_train_labels,
        data.audio_train.digits,
        learner="image",
    )
    np.testing.assert_array_equal(targets, expected)
    # a second call reuses everything
    assert train_image_autoencoder(run, data).reused


def test_heads_learn_finer_partner_clusters_on_the_same_codes(tmp_path, data) -> None:
    """With ``convergence_clusters`` above ``n_clusters`` each head learns that many partner
    clusters (``<name>_taught``), fitted on the very codes of the modality's own clustering."""
    run = tiny_run(tmp_path, taught=30)
    train_image_autoencoder(run, data)
    folder = cluster_folder(run)
    for name in ("image_unimodal", "audio"):
        assert (folder / f"{name}_taught.npz").is_file()
    image_ids, audio_ids = image_train_clusters(run, data), audio_train_clusters(run, data)
    assert image_ids.shape == (600,) and audio_ids.shape == (240,)
    assert 10 < len(np.unique(image_ids)) <= 30 and 10 < len(np.unique(audio_ids)) <= 30
    assert image_convergence_targets(run, data).shape == (600, 30)
    assert audio_convergence_targets(run, data).shape == (240, 30)


def test_without_feedback_the_image_side_is_trained_once(tmp_path, data) -> None:
    run = tiny_run(tmp_path, image_weight=0.0)
    final = train_image_autoencoder(run, data)
    assert not (run.models / "image_autoencoder_unimodal").exists()
    assert not (run.models / "audio_autoencoder").exists()  # no partner needed
    assert "targets_fingerprint" not in final.meta
    assert train_unimodal_image_autoencoder(run, data).reused


def test_audio_codes_take_their_own_umap_neighbours(tmp_path) -> None:
    """``audio_umap_n_neighbors`` reaches the audio clusterings (and the brain's finer audio
    clusters on their embedding), not the image ones."""
    raw = profile_dict("quick")
    raw["model"]["clustering"].update(
        algorithm="umap_gmm", n_clusters=3, audio_n_clusters=4, umap_n_components=2, umap_n_neighbors=5,
        audio_umap_n_neighbors=9, mixture_starts=1,
    )
    run = Run(config_from_dict(raw), seed=0, root=tmp_path)
    rng = np.random.default_rng(0)
    z = {s: rng.normal(size=(60, 4)).astype(np.float32) for s in LATENT_SPLITS}
    clusters = fit_modality_clusters(run, z)
    assert clusters.image.n_neighbors == 5
    assert clusters.audio.n_neighbors == clusters.audio_brain.n_neighbors == 9


def test_mismatched_world_and_holdout_under_feedback(tmp_path, data) -> None:
    """The mismatched world retrains the image head on its noisy pairs and clusters the images
    again; the speaker hold-out links voices to the unimodal image side."""
    run = tiny_run(tmp_path)
    image_ae, audio_ae = train_autoencoders(run, data)
    z = latents(run, data, image_ae, audio_ae)
    clusters = fit_modality_clusters(run, z)
    zn, world = mismatched_world(run, data, z, clusters)
    noisy = run.models / "mismatch20"
    assert (noisy / "image_autoencoder" / "meta.json").is_file()
    assert (noisy / "audio_autoencoder" / "meta.json").is_file()
    assert not np.array_equal(zn["image_train"], z["image_train"])
    assert world.image is not clusters.image and world.image_brain is world.image
    assert world.ids["image_brain_train"].shape == clusters.ids["image_brain_train"].shape
    images = holdout_images(run, data, z, clusters, image_ae)
    np.testing.assert_array_equal(images.target_ids, image_train_clusters(run, data))
    assert images.n_brain == run.cfg.model.clustering.n_clusters
    assert images.z_train.shape == z["image_train"].shape
    assert not np.array_equal(images.z_train, z["image_train"])  # the first pass's codes


def test_fold_epochs_come_from_the_evaluation_section(tmp_path, data) -> None:
    """``evaluation.speaker_holdout_epochs`` sets the folds' epochs, not the main audio model's."""
    from mmga_helpers.evaluation.holdout import speaker_holdout

    run = tiny_run(tmp_path, fold_epochs=2)
    image_ae, audio_ae = train_autoencoders(run, data)
    clusters = fit_modality_clusters(run, latents(run, data, image_ae, audio_ae))
    speaker_holdout(run, data, clusters, speakers=["ann"])
    fold = read_json(run.models / "loso" / "ann" / "meta.json")
    assert fold["config"]["epochs"] == fold["epochs_run"] == 2
    assert read_json(run.models / "audio_autoencoder" / "meta.json")["config"]["epochs"] == 1


def test_holdout_scores_both_voice_settings_in_one_pass(tmp_path, data) -> None:
    """With voice normalisation, ``plain`` receives the fold's score without it, from the same fold
    model (trained once) and codes; each setting keeps its own cached fold clusters."""
    from mmga_helpers.evaluation.holdout import speaker_holdout

    run = tiny_run(tmp_path)
    image_ae, audio_ae = train_autoencoders(run, data)
    z = latents(run, data, image_ae, audio_ae)
    clusters = fit_modality_clusters(run, z)
    images = holdout_images(run, data, z, clusters, image_ae)
    plain: dict[str, float] = {}
    normalised = speaker_holdout(
        run, data, clusters, speakers=["ann"], images=images, voice_normalize=True, plain=plain
    )
    assert set(normalised) == set(plain) == {"ann"}
    assert all(0.0 <= v <= 1.0 for v in (*normalised.values(), *plain.values()))
    folder = cluster_folder(run) / "loso"
    assert {p.stem for p in folder.glob("ann*.npz")} == {"ann", "ann_voice_normalized"}
    fold_model = run.models / "loso" / "ann" / "encoder.keras"
    made = fold_model.stat().st_mtime_ns
    again: dict[str, float] = {}
    assert speaker_holdout(
        run, data, clusters, speakers=["ann"], images=images, voice_normalize=True, plain=again
    ) == normalised and again == plain
    assert fold_model.stat().st_mtime_ns == made  # reused, not trained again
    # with the voice vote: the plain figure is still the recall before any vote, the vote's own kept
    before: dict = {}
    plain_again: dict[str, float] = {}
    vote_only: dict[str, float] = {}
    speaker_holdout(
        run, data, clusters, speakers=["ann"], images=images, voice_normalize=True, plain=plain_again,
        voice_vote=0.2, unvoted=before, plain_voted=vote_only,
    )
    assert plain_again == plain and set(vote_only) == set(before) == {"ann"}
    assert 0.0 <= vote_only["ann"] <= 1.0
