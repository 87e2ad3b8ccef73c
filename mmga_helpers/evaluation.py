"""The figures of merit: clusters per modality, joint clusters, the brain's cross-modal recall, its
robustness to mismatched pairs and to unseen speakers, each next to a simple baseline.

What learns never sees a digit label. Clusterers get latent codes only
(:func:`fit_modality_clusters`), the brain gets co-occurring cluster ids only (:func:`fit_brain`).
Labels enter in two places, both outside learning: :func:`train_pairs` simulates which image is
seen while which clip is heard (the world), and the scoring functions compare what was learned
with the digits. Everything is fitted on training splits and scored on held-out ones: MNIST test,
FSDD's official test split (recordings 0-4) and, for the speaker hold-out, all 500 clips of a
speaker whose voice was never heard in training.

Fitted clusterers and brains are saved (``.npz``, no pickle) under
``outputs/<profile>/clusters/seed<s>/`` with a stamp of the latents that made them; a rerun with
the same latents loads them instead of fitting again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from mmga_helpers import bench
from mmga_helpers.brain import ConvergenceDivergenceZone
from mmga_helpers.clustering import Clusterer, JointClustering, load_clusterer, make_clusterer
from mmga_helpers.config import ClusteringConfig
from mmga_helpers.io import read_json, read_npz, write_json, write_npz
from mmga_helpers.metrics import cluster_digit_counts, cluster_scores, cross_modal_accuracy
from mmga_helpers.pairs import cooccurrence_targets, cooccurring_pairs

if TYPE_CHECKING:
    from mmga_helpers.pipeline import Data, Run

LATENT_SPLITS = ("image_train", "image_test", "audio_train", "audio_test")
MAX_TRAIN_PAIRS = 20_000  # co-occurring training pairs: enough for stable counts, fast joint UMAP
MISMATCH_FRACTION = 0.2
STAMPS_FILE = "stamps.json"
Recall = Literal["hard", "soft"]

# What the full profile aims for (the README's targets); the tables show them next to the figures.
TARGETS: dict[str, str] = {
    "image.reconstruction.mse": "<= 0.010",
    "image.reconstruction.judge_acc": ">= 0.95",
    "audio.reconstruction.judge_acc": ">= 0.85",
    "judges.image_test_acc": ">= 0.98",
    "judges.audio_test_acc": ">= 0.97",
    "image.cluster.acc": ">= 0.95",
    "audio.cluster.acc": ">= 0.70",
    "cross_modal.image_to_audio_acc": ">= 0.97",
    "cross_modal.audio_to_image_acc": ">= 0.97",
    "cross_modal.speaker_holdout_audio_to_image_acc": ">= 0.75",
    "cross_modal.mismatch20.image_to_audio_drop": "<= 0.02",
    "cross_modal.mismatch20.audio_to_image_drop": "<= 0.02",
    "generation.see_judge_acc": ">= 0.95",
    "generation.hear_judge_acc": ">= 0.90",
    "generation.diversity_ratio_image": ">= 0.5",
    "generation.diversity_ratio_audio": ">= 0.5",
    "generation.speaker_holdout_see_judge_acc": ">= 0.75",
}


def mismatch_tag(fraction: float = MISMATCH_FRACTION) -> str:
    """``"mismatch20"`` for 20 % mismatched pairs: the name of that world's models, clusters, brain
    and figures."""
    return f"mismatch{round(fraction * 100)}"


# -- stamps and the cluster folder ---------------------------------------------------------------------
def array_stamp(*arrays: ArrayLike, extra: Any = None) -> str:
    """A short sha256 of the arrays' shapes, dtypes and bytes (and of ``extra``, JSON-encoded)."""
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(arr.tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cluster_folder(run: Run) -> Path:
    """``outputs/<profile>/clusters/seed<s>``: every clusterer and brain of this seed."""
    return run.cfg.cluster_dir(run.root) / f"seed{run.seed}"


def _stamps(folder: Path) -> dict[str, str]:
    path = folder / STAMPS_FILE
    return read_json(path) if path.is_file() else {}


def _set_stamp(folder: Path, name: str, stamp: str) -> None:
    stamps = _stamps(folder)
    stamps[name] = stamp
    write_json(folder / STAMPS_FILE, stamps)


def cached_model(
    folder: Path, name: str, stamp: str, fit: Callable[[], Any], force: bool = False
) -> tuple[Any, bool]:
    """``folder/name.npz`` when it was made from inputs with this ``stamp``; otherwise ``fit()``,
    save and stamp it. Returns ``(model, reused)``."""
    path = folder / f"{name}.npz"
    if not force and path.is_file() and _stamps(folder).get(name) == stamp:
        return load_clusterer(path), True
    model = fit()
    model.save(path)
    _set_stamp(folder, name, stamp)
    return model, False


# -- clusters per modality -----------------------------------------------------------------------------
@dataclass
class ClusterResult:
    """The fitted clusterers of one seed and the cluster id of every train and test item.

    ``image`` and ``audio`` have ``n_clusters`` clusters (scored against the digits);
    ``image_brain`` and ``audio_brain`` are the ones the brain links: the audio side over-clustered
    to ``audio_n_clusters`` (one digit, several voices), the image side ``image`` itself unless an
    over-clustering was asked for (``image_brain.npz`` is written either way).
    ``ids[f"{model}_{split}"]`` holds the ids, e.g. ``ids["audio_brain_test"]``.
    """

    image: Clusterer
    audio: Clusterer
    audio_brain: Clusterer
    image_brain: Clusterer
    ids: dict[str, NDArray[np.int64]]
    folder: Path
    stamp: str
    reused: bool = False
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def n_image_brain(self) -> int:
        return int(self.image_brain.n_clusters)

    @property
    def n_audio_brain(self) -> int:
        return int(self.audio_brain.n_clusters)


def _cluster_params(run: Run, algorithm: str) -> dict[str, Any]:
    cc = run.cfg.model.clustering
    return {"algorithm": algorithm, "clustering": cc.model_dump(mode="json"), "seed": run.seed}


def cached_clusterer(
    run: Run,
    name: str,
    x: NDArray,
    k: int,
    force: bool = False,
    algorithm: str | None = None,
    fit: Callable[[], Clusterer] | None = None,
) -> tuple[Clusterer, bool]:
    """``<cluster folder>/<name>.npz``: ``k`` clusters of ``algorithm`` (default: the config's)
    fitted on ``x``, or reused when made from the same ``x``, clustering config, seed and ``k``.
    One stamp for every caller, so that a model fitted by one stage is the one the next reuses.
    ``fit`` replaces the fitting (the stamp stays). Returns ``(model, reused)``."""
    cc = run.cfg.model.clustering
    algo = algorithm or cc.algorithm
    folder = cluster_folder(run)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = array_stamp(x, extra={**_cluster_params(run, algo), "k": k})
    if fit is None:
        fit = lambda: make_clusterer(algo, k, cc, random_state=run.seed).fit(x)  # noqa: E731
    return cached_model(folder, name, stamp, fit, force)


def image_clusterer(
    run: Run, z_image_train: NDArray, force: bool = False, unimodal: bool = False
) -> Clusterer:
    """The image clustering of this seed (``image.npz``), fitted on the training images' codes or
    reused: the model :func:`fit_modality_clusters` fits, so the audio autoencoder's convergence
    targets and the clustering stage agree. ``unimodal`` (with image feedback): the clusters of the
    first-pass image autoencoder's codes (``image_unimodal.npz``), which the audio head learns."""
    name = "image_unimodal" if unimodal else "image"
    return cached_clusterer(run, name, z_image_train, run.cfg.model.clustering.n_clusters, force)[0]


def fit_modality_clusters(
    run: Run,
    z: Mapping[str, NDArray],
    force: bool = False,
    algorithm: str | None = None,
    image_brain_clusters: int | None = None,
    prefix: str = "",
) -> ClusterResult:
    """Cluster each modality's training latents (never a label) and assign every split.

    ``algorithm`` defaults to ``model.clustering.algorithm``; the baselines pass ``"kmeans"`` and
    ``prefix="baseline_"``. ``image_brain_clusters`` (default: ``n_clusters``, no extra model)
    over-clusters the images for the brain, as the audio side is with ``audio_n_clusters``.
    """
    cc: ClusteringConfig = run.cfg.model.clustering
    algo = algorithm or cc.algorithm
    k_img_brain = image_brain_clusters or cc.n_clusters
    missing = [s for s in LATENT_SPLITS if s not in z]
    if missing:
        raise ValueError(f"latents lack the splits {missing}")
    folder = cluster_folder(run)
    params = _cluster_params(run, algo)
    jobs = {
        "image": ("image_train", cc.n_clusters),
        "audio": ("audio_train", cc.n_clusters),
        "audio_brain": ("audio_train", cc.audio_n_clusters),
        "image_brain": ("image_train", k_img_brain),
    }
    models: dict[str, Clusterer] = {}
    reused = []
    for name, (split, k) in jobs.items():
        fit = None
        if name == "image_brain" and k == cc.n_clusters:
            # no over-clustering: the brain links the image clusters themselves; the copy under
            # this name keeps image_brain.npz (read by generation) in step with them
            fit = lambda: models["image"]  # noqa: E731
        models[name], was = cached_clusterer(run, prefix + name, z[split], k, force, algo, fit)
        reused.append(was)
    if k_img_brain == cc.n_clusters:
        models["image_brain"] = models["image"]

    stamp = array_stamp(*(z[s] for s in LATENT_SPLITS), extra={**params, "k_img_brain": k_img_brain})
    ids_path = folder / f"{prefix}clusters.npz"
    ids: dict[str, NDArray[np.int64]] = {}
    if not force and all(reused) and ids_path.is_file():
        stored = read_npz(ids_path)
        if str(stored.pop("stamp", "")) == stamp:
            ids = {k: v.astype(np.int64) for k, v in stored.items()}
    if not ids:
        for name, model in models.items():
            modality = name.split("_")[0]
            for split in ("train", "test"):
                same = name == "image_brain" and model is models["image"]
                pred = ids[f"image_{split}"] if same else model.predict(z[f"{modality}_{split}"])
                ids[f"{name}_{split}"] = np.asarray(pred, np.int64)
        write_npz(ids_path, stamp=np.array(stamp), **ids)
    sizes = {name: int(m.n_clusters) for name, m in models.items()}
    return ClusterResult(
        models["image"],
        models["audio"],
        models["audio_brain"],
        models["image_brain"],
        ids,
        folder,
        stamp,
        reused=all(reused),
        sizes=sizes,
    )


def cluster_figures(
    data: Data, z: Mapping[str, NDArray], clusters: ClusterResult, prefix: str = ""
) -> dict[str, float]:
    """``{prefix}image.cluster.*`` on MNIST test and ``{prefix}audio.cluster.*`` on FSDD test
    (ACC, NMI, ARI against the digits; silhouette of the test assignments on the test latents)."""
    out: dict[str, float] = {}
    for modality, digits in (("image", data.image_test_labels), ("audio", data.audio_test.digits)):
        scores = cluster_scores(digits, clusters.ids[f"{modality}_test"], z[f"{modality}_test"])
        out.update({f"{prefix}{modality}.cluster.{k}": v for k, v in scores.items()})
    return out


# -- pairs: the simulated world ------------------------------------------------------------------------
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
    mismatch_fraction: float = 0.0,
    learner: Literal["audio", "image"] = "audio",
) -> NDArray[np.float32]:
    """What an encoder's convergence head learns, over the same pairs the brain is fitted on. For
    the audio encoder (``learner="audio"``): for each training clip, the distribution of the image
    clusters (``partner_ids_train``, one per training image) of the images it co-occurred with; for
    the image encoder, for each training image, that of the audio clusters (one per training clip)
    of the clips it was heard with. The partner clusters are unsupervised; the digits only decide
    what co-occurs."""
    ii, ai = train_pairs(image_digits, audio_digits, run.seed, mismatch_fraction)
    k = run.cfg.model.clustering.n_clusters
    partner = np.asarray(partner_ids_train)
    if learner == "audio":
        return cooccurrence_targets(partner[ii], ai, len(np.asarray(audio_digits)), k)
    return cooccurrence_targets(partner[ai], ii, len(np.asarray(image_digits)), k)


# -- joint clustering ------------------------------------------------------------------------------------
def joint_figures(run: Run, data: Data, z: Mapping[str, NDArray], force: bool = False) -> dict[str, float]:
    """Cluster (image, audio) latent pairs together: fitted on co-occurring training pairs, scored on
    co-occurring pairs of MNIST test x FSDD test labelled by the digit they share."""
    cc = run.cfg.model.clustering
    ii, ai = train_pairs(data.image_train_labels, data.audio_train.digits, run.seed)
    stamp = array_stamp(
        z["image_train"],
        z["audio_train"],
        ii,
        ai,
        extra={"clustering": cc.model_dump(mode="json"), "seed": run.seed},
    )

    def fit() -> JointClustering:
        joint = JointClustering(
            cc.n_clusters,
            cc.algorithm,
            random_state=run.seed,
            umap_n_components=cc.umap_n_components,
            umap_n_neighbors=cc.umap_n_neighbors,
        )
        return joint.fit(z["image_train"][ii], z["audio_train"][ai])

    joint, _ = cached_model(cluster_folder(run), "joint", stamp, fit, force)
    ti, ta = cooccurring_pairs(
        data.image_test_labels,
        data.audio_test.digits,
        len(data.image_test),
        random_state=np.random.default_rng([run.seed, 7]),
    )
    pred = joint.predict(z["image_test"][ti], z["audio_test"][ta])
    scores = cluster_scores(data.image_test_labels[ti], pred)
    return {f"joint.cluster.{k}": scores[k] for k in ("acc", "nmi", "ari")}


# -- the brain ---------------------------------------------------------------------------------------------
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
    clips, and audio clusters of pure noise would score far above chance (about 0.6 instead of 0.1
    with 20 clusters); ``image_to_audio_acc_train_majority`` keeps that figure for comparison.
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


def cross_modal_figures(
    run: Run,
    data: Data,
    z: Mapping[str, NDArray],
    clusters: ClusterResult,
    soft: bool = False,
    save_as: str | None = "brain",
    noisy_world: tuple[Mapping[str, NDArray], ClusterResult] | None = None,
) -> dict[str, float]:
    """Clean and 20 %-mismatched cross-modal accuracy (``cross_modal.*``) and the drop between them;
    the two brains are saved as ``<save_as>.npz`` and ``<save_as>_mismatch20.npz``. ``noisy_world``
    (latents and clusters from :func:`mismatched_world`) replaces ``z`` and ``clusters`` for the
    mismatched brain when the audio encoder itself learned from the pairs."""
    tag = mismatch_tag()
    clean = cross_modal(run, data, z, clusters, soft=soft, save_as=save_as)
    zn, cn = noisy_world if noisy_world is not None else (z, clusters)
    noisy = cross_modal(
        run, data, zn, cn, MISMATCH_FRACTION, soft=soft, save_as=f"{save_as}_{tag}" if save_as else None
    )
    return {
        "cross_modal.image_to_audio_acc": clean.image_to_audio_acc,
        "cross_modal.audio_to_image_acc": clean.audio_to_image_acc,
        f"cross_modal.{tag}.image_to_audio_acc": noisy.image_to_audio_acc,
        f"cross_modal.{tag}.audio_to_image_acc": noisy.audio_to_image_acc,
        f"cross_modal.{tag}.image_to_audio_drop": clean.image_to_audio_acc - noisy.image_to_audio_acc,
        f"cross_modal.{tag}.audio_to_image_drop": clean.audio_to_image_acc - noisy.audio_to_image_acc,
    }


def mismatched_world(
    run: Run, data: Data, z: Mapping[str, NDArray], clusters: ClusterResult, force: bool = False
) -> tuple[dict[str, NDArray], ClusterResult]:
    """The world where 20 % of the pairs are mismatched, relearned: the audio autoencoder's
    convergence head is trained on those pairs (``models/seed<s>/mismatch20/``) and its codes are
    over-clustered again; with image feedback the image autoencoder's head is retrained on the same
    pairs (fed by that world's audio clusters) and the images are clustered again; the brain is
    then fitted on the noisy pairs, so the robustness figure covers every part that learns from
    co-occurrence."""
    from mmga_helpers.pipeline import encode, image_feedback, train_audio_autoencoder, train_image_autoencoder

    tag = mismatch_tag()
    feedback = image_feedback(run)
    # the audio head learns the unimodal image clusters (image_train_clusters) under feedback
    ae = train_audio_autoencoder(
        run, data, force, MISMATCH_FRACTION, None if feedback else clusters.ids["image_train"]
    )
    zn = dict(z)
    for split in ("train", "test"):
        zn[f"audio_{split}"] = encode(ae.model.encoder, getattr(data, f"audio_{split}").x)
    k = run.cfg.model.clustering.audio_n_clusters
    audio_brain, _ = cached_clusterer(run, f"{tag}_audio_brain", zn["audio_train"], k, force)
    ids = dict(clusters.ids)
    for split in ("train", "test"):
        ids[f"audio_brain_{split}"] = np.asarray(audio_brain.predict(zn[f"audio_{split}"]), np.int64)
    world = replace(clusters, audio_brain=audio_brain, ids=ids)
    if feedback:  # the image head also learned from the noisy pairs: relearn the image side too
        image_ae = train_image_autoencoder(run, data, force, MISMATCH_FRACTION)
        for split in ("train", "test"):
            zn[f"image_{split}"] = encode(image_ae.model.encoder, getattr(data, f"image_{split}"))
        n, k_brain = run.cfg.model.clustering.n_clusters, clusters.n_image_brain
        image, _ = cached_clusterer(run, f"{tag}_image", zn["image_train"], n, force)
        image_brain = image
        if k_brain != n:
            image_brain, _ = cached_clusterer(run, f"{tag}_image_brain", zn["image_train"], k_brain, force)
        for name, model in (("image", image), ("image_brain", image_brain)):
            for split in ("train", "test"):
                ids[f"{name}_{split}"] = np.asarray(model.predict(zn[f"image_{split}"]), np.int64)
        world = replace(world, image=image, image_brain=image_brain, ids=ids)
    return zn, world


# -- leave one speaker out -----------------------------------------------------------------------------------
def all_clips(data: Data) -> tuple[NDArray, NDArray[np.int64], NDArray[np.str_], NDArray[np.bool_]]:
    """Every FSDD clip (train then test): log-mels, digits, speakers, and a mask of the train split."""
    tr, te = data.audio_train, data.audio_test
    return (
        np.concatenate([tr.x, te.x]),
        np.concatenate([tr.digits, te.digits]).astype(np.int64),
        np.concatenate([tr.speakers, te.speakers]).astype(str),
        np.r_[np.ones(len(tr), bool), np.zeros(len(te), bool)],
    )


def holdout_fold(
    run: Run,
    image_ids_train: NDArray[np.int64],
    image_counts: NDArray[np.int64],
    image_digits: NDArray,
    fold_train: NDArray,
    fold_train_digits: NDArray,
    held: NDArray,
    held_digits: NDArray,
    algorithm: str,
    name: str,
    force: bool = False,
    soft: bool = False,
    recalled: dict[str, tuple[NDArray, NDArray]] | None = None,
) -> float:
    """One fold: over-cluster the other speakers' training features, fit the brain on pairs drawn
    from those clips, and score audio -> image recall for every clip of the held-out speaker.
    ``recalled`` (when given) receives ``name -> (recalled image clusters, held digits)``."""
    cc = run.cfg.model.clustering
    stamp = array_stamp(
        fold_train, extra={"algorithm": algorithm, "clustering": cc.model_dump(mode="json"), "seed": run.seed}
    )
    fit = lambda: make_clusterer(algorithm, cc.audio_n_clusters, cc, random_state=run.seed).fit(fold_train)  # noqa: E731
    folder = cluster_folder(run) / "loso"
    folder.mkdir(parents=True, exist_ok=True)
    clusterer, _ = cached_model(folder, name, stamp, fit, force)
    ii, ai = train_pairs(image_digits, fold_train_digits, run.seed)
    fold_ids = np.asarray(clusterer.predict(fold_train), np.int64)
    brain = fit_brain(
        image_ids_train[ii],
        fold_ids[ai],
        image_counts.shape[0],
        cc.audio_n_clusters,
        cc.convergence_threshold,
    )
    held_ids = np.asarray(clusterer.predict(held), np.int64)
    post = posteriors_of(clusterer, held) if soft else None
    pred = recall(brain, "audio_to_image", held_ids, post)
    if recalled is not None:
        recalled[name] = (pred, np.asarray(held_digits))
    return cross_modal_accuracy(pred, held_digits, image_counts)


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


def holdout_images(
    run: Run, data: Data, z: Mapping[str, NDArray], clusters: ClusterResult, image_ae: Any = None
) -> HoldoutImages:
    """The run's own image side, except with image feedback: that image encoder learned audio
    clusters fitted on every speaker's clips, so the hold-out uses the first-pass image autoencoder
    trained on images alone, and its clusters, instead; the held-out voice then reaches no part."""
    from mmga_helpers.pipeline import image_feedback, unimodal_image_side

    if not image_feedback(run):
        decoder = None if image_ae is None else image_ae.model.decoder
        zt = z.get("image_train")
        return HoldoutImages(
            clusters.ids["image_train"],
            clusters.ids["image_brain_train"],
            clusters.n_image_brain,
            zt,
            decoder,
            None if zt is None else clusters.image_brain.centre_distance(zt),
        )
    unimodal, zu, ids = unimodal_image_side(run, data)
    distance = image_clusterer(run, zu, unimodal=True).centre_distance(zu)
    return HoldoutImages(ids, ids, run.cfg.model.clustering.n_clusters, zu, unimodal.model.decoder, distance)


def speaker_holdout(
    run: Run,
    data: Data,
    clusters: ClusterResult,
    force: bool = False,
    soft: bool = False,
    speakers: list[str] | None = None,
    recalled: dict[str, tuple[NDArray, NDArray]] | None = None,
    images: HoldoutImages | None = None,
) -> dict[str, float]:
    """Leave-one-speaker-out audio -> image accuracy per speaker: the audio autoencoder is retrained
    on the other speakers' training clips (kept in ``models/seed<s>/loso/<speaker>``), so the
    held-out voice is new to every learned part. ``recalled`` receives each fold's recalled image
    clusters (see :func:`holdout_fold`), from which :func:`speaker_holdout_see` draws images.
    ``images`` (default: :func:`holdout_images`) is what held-out voices are linked to."""
    from mmga_helpers.pipeline import encode
    from mmga_helpers.training import train_autoencoder

    x, digits, spk, is_train = all_clips(data)
    if images is None:
        images = holdout_images(run, data, {}, clusters)
    counts = cluster_digit_counts(images.brain_ids, data.image_train_labels, images.n_brain, 10)
    out = {}
    for speaker in speakers or sorted(np.unique(spk)):
        others = is_train & (spk != speaker)
        held = spk == speaker
        targets = None
        if run.cfg.model.audio_autoencoder.convergence_weight > 0:
            targets = convergence_targets(run, images.target_ids, data.image_train_labels, digits[others])
        ae = train_autoencoder(
            x[others],
            run.cfg.model.audio_autoencoder,
            "audio_autoencoder",
            run.models / "loso" / speaker,
            seed=run.seed,
            force=force,
            targets=targets,
        )
        zf, zh = encode(ae.model.encoder, x[others]), encode(ae.model.encoder, x[held])
        out[speaker] = holdout_fold(
            run,
            images.brain_ids,
            counts,
            data.image_train_labels,
            zf,
            digits[others],
            zh,
            digits[held],
            run.cfg.model.clustering.algorithm,
            speaker,
            force,
            soft,
            recalled,
        )
    return out


def speaker_holdout_see(
    run: Run,
    image_train_z: NDArray,
    image_ids_train: NDArray[np.int64],
    image_decoder: Any,
    image_judge: Any,
    recalled: Mapping[str, tuple[NDArray, NDArray]],
    centre_distance: NDArray | None = None,
) -> dict[str, float]:
    """``see`` for voices never heard: each held-out speaker's clips, through that fold's audio
    autoencoder, clustering and brain (``recalled``), become images drawn inside the recalled image
    cluster and decoded; the MNIST judge reads them. Judged accuracy per speaker. With
    ``centre_distance``, draws come from each cluster's core (``generation.core_fraction``), as
    :meth:`MMGA.see`'s do."""
    from mmga_helpers.generation import LatentBank
    from mmga_helpers.pipeline import encode

    bank = LatentBank(np.asarray(image_train_z), np.asarray(image_ids_train, np.int64))
    if centre_distance is not None:
        bank = bank.core(centre_distance, run.cfg.generation.core_fraction)
    out = {}
    for i, (speaker, (clusters, digits)) in enumerate(sorted(recalled.items())):
        z = bank.draw(np.asarray(clusters, np.int64), np.random.default_rng([run.seed, i]))
        out[speaker] = image_judge.accuracy(encode(image_decoder, z)[..., 0], digits)
    return out


# -- everything -------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What :func:`evaluate` computed besides the flat figures: timings, per-speaker hold-out."""

    wall_time_s: dict[str, float] = field(default_factory=dict)
    speaker_holdout: dict[str, float] = field(default_factory=dict)
    baseline_speaker_holdout: dict[str, float] = field(default_factory=dict)
    speaker_holdout_see: dict[str, float] = field(default_factory=dict)
    cluster_sizes: dict[str, int] = field(default_factory=dict)

    def as_info(self) -> dict[str, Any]:
        return {
            "wall_time_s": self.wall_time_s,
            "speaker_holdout_audio_to_image_acc": self.speaker_holdout,
            "speaker_holdout_see_judge_acc": self.speaker_holdout_see,
            "baseline_speaker_holdout_audio_to_image_acc": self.baseline_speaker_holdout,
            "clusters": self.cluster_sizes,
        }


def evaluate(
    run: Run,
    data: Data,
    z: Mapping[str, NDArray],
    image_ae: Any = None,
    loso: bool | None = None,
    force: bool = False,
    baselines: bool | None = None,
    soft: bool = False,
    image_brain_clusters: int | None = None,
    details: Evaluation | None = None,
) -> dict[str, float]:
    """Every figure of merit of this seed as flat keys (``image.cluster.acc``, ...,
    ``baseline.cross_modal.speaker_holdout_audio_to_image_acc``).

    ``loso`` runs the leave-one-speaker-out test (six audio autoencoder trainings the first time)
    and ``baselines`` the baselines; None (the default) follows ``evaluation.speaker_holdout`` and
    ``evaluation.baselines`` of the config. ``details`` (an :class:`Evaluation`) receives wall
    times per stage and per-speaker values.
    ``image_ae`` encodes the images when ``z`` lacks them. ``soft`` recalls through mixture
    posteriors; ``image_brain_clusters`` over-clusters the images for the brain.
    """
    from mmga_helpers.pipeline import encode, stage_timer

    info = details if details is not None else Evaluation()
    t = info.wall_time_s
    loso = run.cfg.evaluation.speaker_holdout if loso is None else loso
    baselines = run.cfg.evaluation.baselines if baselines is None else baselines
    z = dict(z)
    if image_ae is not None:
        for split in ("train", "test"):
            if f"image_{split}" not in z:
                z[f"image_{split}"] = encode(image_ae.model.encoder, getattr(data, f"image_{split}"))
    out: dict[str, float] = {}
    with stage_timer(t, "clusters"):
        clusters = fit_modality_clusters(run, z, force, image_brain_clusters=image_brain_clusters)
        out.update(cluster_figures(data, z, clusters))
    info.cluster_sizes = clusters.sizes
    with stage_timer(t, "joint"):
        out.update(joint_figures(run, data, z, force))
    noisy_world = None
    if run.cfg.model.audio_autoencoder.convergence_weight > 0:
        with stage_timer(t, "mismatched_world"):
            noisy_world = mismatched_world(run, data, z, clusters, force)
    with stage_timer(t, "brain"):
        out.update(cross_modal_figures(run, data, z, clusters, soft=soft, noisy_world=noisy_world))
    if loso:
        recalled: dict[str, tuple[NDArray, NDArray]] = {}
        with stage_timer(t, "speaker_holdout"):
            images = holdout_images(run, data, z, clusters, image_ae)
            info.speaker_holdout = speaker_holdout(
                run, data, clusters, force, soft, recalled=recalled, images=images
            )
        out["cross_modal.speaker_holdout_audio_to_image_acc"] = float(
            np.mean(list(info.speaker_holdout.values()))
        )
        if image_ae is not None:
            from mmga_helpers.pipeline import train_image_judge

            with stage_timer(t, "speaker_holdout_see"):
                info.speaker_holdout_see = speaker_holdout_see(
                    run,
                    images.z_train,
                    images.brain_ids,
                    images.decoder,
                    train_image_judge(run),
                    recalled,
                    images.centre_distance,
                )
            out["generation.speaker_holdout_see_judge_acc"] = float(
                np.mean(list(info.speaker_holdout_see.values()))
            )
    if baselines:
        from mmga_helpers import baselines as bl

        with stage_timer(t, "baselines"):
            figs, info.baseline_speaker_holdout = bl.baseline_figures(
                run, data, force=force, loso=loso, image_brain_clusters=image_brain_clusters
            )
        out.update(figs)
    return out


def record_evaluation(
    run: Run, data: Data, figures: Mapping[str, float], details: Evaluation
) -> dict[str, Any]:
    """Record this seed's figures in ``metrics_per_seed.json``/``metrics.json`` with the run's
    description (wall times, data sizes, machine) and per-seed details kept under ``per_seed``."""
    from mmga_helpers.pipeline import record_metrics

    path = run.dir / "metrics.json"
    old = read_json(path).get("run", {}) if path.is_file() else {}
    per_seed = {**old.get("per_seed", {}), str(run.seed): details.as_info()}
    write_json(cluster_folder(run) / "evaluation.json", {"figures": dict(figures), **details.as_info()})
    info = {
        "wall_time_s": details.wall_time_s,
        "data_sizes": data.sizes(),
        "seeds": list(run.cfg.seeds),
        "machine": bench.machine(),
        "per_seed": per_seed,
    }
    return record_metrics(run, dict(figures), info=info)


# -- tables -------------------------------------------------------------------------------------------------
def _fmt(stat: Any) -> str:
    if isinstance(stat, Mapping):
        mean, std, n = stat.get("mean"), stat.get("std"), stat.get("n_seeds", 1)
        if mean is None or not np.isfinite(mean):
            return "-"
        return f"{mean:.3f} ± {std:.3f}" if n and n > 1 else f"{mean:.3f}"
    if stat is None or (isinstance(stat, float) and not np.isfinite(stat)):
        return "-"
    return f"{float(stat):.3f}"


def metrics_table(figures: Mapping[str, Any]) -> pd.DataFrame:
    """One row per figure: MMGA (mean ± std over seeds), the baseline's value where there is one, and
    the target. ``figures`` is flat (one seed's floats or ``{key: mean_std}``) or a metrics.json."""
    from mmga_helpers.metrics import flatten

    flat = dict(figures)
    if "run" in flat or any(isinstance(v, Mapping) and "mean" not in v for v in flat.values()):
        nested = {k: v for k, v in flat.items() if k != "run"}
        flat = {}
        for key, value in flatten(nested).items():
            head, _, leaf = key.rpartition(".")
            if leaf in ("mean", "std", "n_seeds"):
                flat.setdefault(head, {})[leaf] = value
            else:
                flat[key] = value
    rows = []
    for key in sorted(k for k in flat if not k.startswith("baseline.")):
        if key.startswith(("image.reconstruction", "audio.reconstruction", "judges.")):
            continue
        rows.append(
            {
                "figure": key,
                "MMGA": _fmt(flat[key]),
                "baseline": _fmt(flat.get(f"baseline.{key}")),
                "target": TARGETS.get(key, ""),
            }
        )
    return pd.DataFrame(rows, columns=["figure", "MMGA", "baseline", "target"]).set_index("figure")


def scores_table(figures: Mapping[str, float]) -> pd.DataFrame:
    """Clustering scores: rows image/audio/joint, columns ACC/NMI/ARI/silhouette, MMGA vs baseline."""
    rows = []
    for who, prefix in (("MMGA", ""), ("baseline", "baseline.")):
        for modality in ("image", "audio", "joint"):
            vals = {
                m: figures.get(f"{prefix}{modality}.cluster.{m}") for m in ("acc", "nmi", "ari", "silhouette")
            }
            if all(v is None for v in vals.values()):
                continue
            rows.append(
                {
                    "modality": modality,
                    "method": who,
                    **{k: np.nan if v is None else v for k, v in vals.items()},
                }
            )
    return pd.DataFrame(rows).set_index(["modality", "method"]).sort_index().round(3)


def zone_share_by_threshold(brain: ConvergenceDivergenceZone, thresholds: ArrayLike) -> pd.DataFrame:
    """Share of each modality's clusters that are convergence zones, for every threshold."""
    rows = []
    for thr in np.asarray(thresholds, dtype=float):
        zones = brain.zones(float(thr))
        for modality, part in zones.groupby("modality"):
            rows.append(
                {
                    "threshold": float(thr),
                    "modality": modality,
                    "convergence_share": float((part["zone"] == "convergence").mean()),
                }
            )
        pairs = brain.pair_zones(float(thr))
        rows.append(
            {
                "threshold": float(thr),
                "modality": "pairs",
                "convergence_share": float((pairs["zone"] == "convergence").mean()),
            }
        )
    return pd.DataFrame(rows)


def reading_order(counts: NDArray[np.int64]) -> tuple[NDArray[np.int64], list[str]]:
    """Clusters sorted by majority digit (largest first within a digit) and labels ``"c3 (≈7)"``:
    cluster id and majority digit, to read heatmaps of arbitrary cluster ids. Display only."""
    counts = np.asarray(counts)
    total = counts.sum(axis=1)
    maj = np.where(total > 0, counts.argmax(axis=1), counts.shape[1])
    order = np.lexsort((-total, maj)).astype(np.int64)
    labels = [f"c{c} (≈{maj[c]})" if total[c] else f"c{c}" for c in order]
    return order, labels


def two_d_views(
    x: NDArray,
    method: Literal["umap", "tsne"],
    seed: int = 0,
    max_points: int = 2000,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """A 2-D embedding of at most ``max_points`` rows (a seeded subsample) and those rows' indices."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), max_points, replace=False)) if len(x) > max_points else np.arange(len(x))
    sub = np.asarray(x[idx], dtype=np.float64)
    sub = (sub - sub.mean(axis=0)) / np.where(sub.std(axis=0) > 0, sub.std(axis=0), 1.0)
    if method == "umap":
        import warnings

        import umap
        from sklearn.neighbors import NearestNeighbors

        # exact neighbours from scikit-learn: umap-learn's own path for small data compiles its
        # numba kernels in every new process (about 14 s of a notebook); the graph is the same
        k = min(15, len(sub) - 1)
        dist, ind = NearestNeighbors(n_neighbors=k).fit(sub).kneighbors(sub)
        with warnings.catch_warnings():  # no search index: this view never transforms new points
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            emb = umap.UMAP(
                n_components=2,
                n_neighbors=k,
                min_dist=0.1,
                random_state=seed,
                n_jobs=1,
                precomputed_knn=(ind, dist, None),
            ).fit_transform(sub)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        emb = TSNE(
            n_components=2, perplexity=min(30.0, (len(sub) - 1) / 3), init="pca", random_state=seed
        ).fit_transform(sub)
    else:
        raise ValueError(f"method must be 'umap' or 'tsne'; got {method!r}")
    return np.asarray(emb, dtype=np.float64), idx
