"""Baselines without any deep learning: what the autoencoders have to beat.

Images: PCA to 50 components of the raw pixels (fitted on MNIST train), then k-means. Clips: the
mean and standard deviation over time of 20 MFCCs of the prepared waves (standardized with the
training clips' statistics), then k-means. The brain, its robustness and the speaker hold-out run
exactly as for MMGA on these clusters; MFCC statistics need no
training, so a hold-out fold only re-clusters the other speakers' clips.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.decomposition import PCA

from mmga_helpers.core.io import read_npz, write_npz
from mmga_helpers.core.metrics import cluster_digit_counts
from mmga_helpers.core.stamps import array_stamp
from mmga_helpers.evaluation.clusters import cluster_figures
from mmga_helpers.evaluation.holdout import Fold, LinkedImages, all_clips, holdout_fold
from mmga_helpers.evaluation.robustness import cross_modal_figures
from mmga_helpers.stages.clusterings import ClusterResult, cluster_folder, fit_modality_clusters
from mmga_helpers.stages.run import Data, Run

PCA_COMPONENTS = 50
MFCC = {"n_mfcc": 20, "n_fft": 512, "hop_length": 128, "n_mels": 40}
PREFIX = "baseline_"


def pca_features(
    train_images: NDArray, test_images: NDArray, n_components: int = PCA_COMPONENTS, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Pixels -> the first ``n_components`` principal components (fitted on train only)."""
    flat_train = np.asarray(train_images, np.float32).reshape(len(train_images), -1)
    flat_test = np.asarray(test_images, np.float32).reshape(len(test_images), -1)
    pca = PCA(n_components=n_components, svd_solver="randomized", random_state=seed).fit(flat_train)
    return pca.transform(flat_train).astype(np.float32), pca.transform(flat_test).astype(np.float32)


def mfcc_stats(waves: NDArray, sample_rate: int = 8000) -> NDArray[np.float32]:
    """``[N, n_samples]`` waves -> ``[N, 40]``: mean and std over time of each of 20 MFCCs."""
    import librosa

    m = librosa.feature.mfcc(y=np.asarray(waves, np.float32), sr=sample_rate, **MFCC)  # [N, 20, frames]
    return np.concatenate([m.mean(axis=2), m.std(axis=2)], axis=1).astype(np.float32)


def standardize(train: NDArray, *others: NDArray) -> list[NDArray[np.float32]]:
    """Each feature to zero mean and unit variance with the statistics of ``train``."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)]


def baseline_features(run: Run, data: Data) -> dict[str, NDArray[np.float32]]:
    """PCA and MFCC-statistics features of every split, cached next to the clusters; ``audio_all``
    (every clip, train then test, for the speaker hold-out) holds unstandardized statistics."""
    folder = cluster_folder(run)
    stamp = array_stamp(
        data.image_train[:, ::4, ::4],
        data.image_test[:, ::4, ::4],
        data.audio_train.waves[:, ::16],
        data.audio_test.waves[:, ::16],
        extra={"pca": PCA_COMPONENTS, "mfcc": MFCC, "seed": run.seed},
    )
    path = folder / f"{PREFIX}features.npz"
    if path.is_file():
        cached = read_npz(path)
        if str(cached.pop("stamp", "")) == stamp:
            return cached
    img_tr, img_te = pca_features(data.image_train, data.image_test, seed=run.seed)
    raw_tr, raw_te = mfcc_stats(data.audio_train.waves), mfcc_stats(data.audio_test.waves)
    aud_tr, aud_te = standardize(raw_tr, raw_te)
    out = {
        "image_train": img_tr,
        "image_test": img_te,
        "audio_train": aud_tr,
        "audio_test": aud_te,
        "audio_all": np.concatenate([raw_tr, raw_te]),
    }
    write_npz(path, stamp=np.array(stamp), **out)
    return out


def baseline_speaker_holdout(
    run: Run, data: Data, feats: dict[str, NDArray], clusters: ClusterResult, *, force: bool = False
) -> dict[str, float]:
    """Leave-one-speaker-out audio -> image accuracy with MFCC statistics and k-means."""
    _, digits, spk, is_train = all_clips(data)
    ids = clusters.ids["image_brain_train"]
    counts = cluster_digit_counts(ids, data.image_train_labels, clusters.n_image_brain, 10)
    linked = LinkedImages(ids, data.image_train_labels, counts)
    out = {}
    for speaker in sorted(np.unique(spk)):
        others, held = is_train & (spk != speaker), spk == speaker
        fold_train, fold_held = standardize(feats["audio_all"][others], feats["audio_all"][held])
        fold = Fold(f"{PREFIX}{speaker}", fold_train, digits[others], fold_held, digits[held])
        out[speaker] = holdout_fold(run, linked, fold, algorithm="kmeans", force=force)
    return out


def baseline_clusters(
    run: Run, data: Data, *, force: bool = False, image_brain_clusters: int | None = None
) -> tuple[dict[str, NDArray[np.float32]], ClusterResult]:
    """The baseline features and their k-means clusters (saved as ``baseline_*.npz``)."""
    feats = baseline_features(run, data)
    clusters = fit_modality_clusters(
        run, feats, force=force, algorithm="kmeans", image_brain_clusters=image_brain_clusters, prefix=PREFIX
    )
    return feats, clusters


def baseline_figures(
    run: Run,
    data: Data,
    *,
    force: bool = False,
    loso: bool = True,
    image_brain_clusters: int | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """``baseline.*`` figures (clusters, cross-modal, mismatch, hold-out) and per-speaker hold-out."""
    feats, clusters = baseline_clusters(run, data, force=force, image_brain_clusters=image_brain_clusters)
    out = {f"baseline.{k}": v for k, v in cluster_figures(data, feats, clusters).items()}
    noisy = run.cfg.evaluation.mismatched_world
    cross = cross_modal_figures(run, data, feats, clusters, save_as=f"{PREFIX}brain", noisy=noisy)
    out.update({f"baseline.{k}": v for k, v in cross.items()})
    per_speaker: dict[str, float] = {}
    if loso:
        per_speaker = baseline_speaker_holdout(run, data, feats, clusters, force=force)
        out["baseline.cross_modal.speaker_holdout_audio_to_image_acc"] = float(
            np.mean(list(per_speaker.values()))
        )
    return out, per_speaker
