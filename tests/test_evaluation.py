"""Evaluation: clusters per modality, the brain's cross-modal recall, its robustness, the speaker
hold-out and the baselines, on synthetic latents (k-means, fast) and on a tiny real subset."""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmga_helpers.core.config import ConfigError, config_from_dict, profile_dict
from mmga_helpers.core.metrics import cluster_digit_counts
from mmga_helpers.display.views import reading_order, two_d_views
from mmga_helpers.evaluation import baselines, driver
from mmga_helpers.evaluation.clusters import cluster_figures, joint_figures
from mmga_helpers.evaluation.driver import Evaluation, evaluate, record_evaluation
from mmga_helpers.evaluation.holdout import (
    Fold,
    HoldoutImages,
    LinkedImages,
    holdout_fold,
    speaker_holdout_see,
)
from mmga_helpers.evaluation.robustness import cross_modal_figures
from mmga_helpers.evaluation.tables import metrics_table, zone_share_by_threshold
from mmga_helpers.learn.brain import ConvergenceDivergenceZone
from mmga_helpers.learn.clustering import make_clusterer
from mmga_helpers.modalities.features import AudioSet
from mmga_helpers.stages import clusterings
from mmga_helpers.stages.clusterings import fit_modality_clusters
from mmga_helpers.stages.linking import cross_modal, fit_brain, posteriors_of, recall
from mmga_helpers.stages.run import Data, Run

N_IMG, N_IMG_TEST = 3000, 600
SPEAKERS = ("ann", "bob", "cid", "dee", "eve", "fay")


def make_run(
    root: Path,
    algorithm: str = "kmeans",
    seed: int = 0,
    convergence_weight: float = 0.0,
    mismatched_world: bool = True,
) -> Run:
    """The quick profile on synthetic latents: no audio encoder is trained here unless asked
    (``convergence_weight > 0`` makes the mismatched world retrain it)."""
    raw = profile_dict("quick")
    raw["model"]["clustering"].update(algorithm=algorithm, n_clusters=10, audio_n_clusters=20)
    raw["model"]["audio_autoencoder"]["convergence_weight"] = convergence_weight
    raw["model"]["image_autoencoder"]["convergence_weight"] = 0.0
    raw["evaluation"]["mismatched_world"] = mismatched_world
    return Run(config_from_dict(raw), seed=seed, root=root)


def fake_audio(digits: np.ndarray, speakers: np.ndarray, x: np.ndarray) -> AudioSet:
    n = len(digits)
    return AudioSet(x, np.zeros((n, 8), np.float32), digits, speakers, np.arange(n))


def synthetic(
    seed: int = 0, audio_noise: bool = False, dim: int = 32, n_img: int = N_IMG
) -> tuple[Data, dict[str, np.ndarray]]:
    """Digit blobs: images in 16-D; clips in ``dim``-D where each speaker shifts the digit's blob a little
    (so that audio over-clustering may split a digit by voice). ``audio_noise``: clips are noise."""
    rng = np.random.default_rng(seed)
    img_c, aud_c = rng.normal(0, 4, (10, 16)), rng.normal(0, 4, (10, dim))
    voice = rng.normal(0, 1.0, (len(SPEAKERS), dim))
    yi, yit = rng.integers(0, 10, n_img), rng.integers(0, 10, N_IMG_TEST)
    # every speaker says every digit: 8 training and 2 test takes
    ya = np.tile(np.repeat(np.arange(10), 8), len(SPEAKERS))
    sa = np.repeat(np.arange(len(SPEAKERS)), 80)
    yat = np.tile(np.repeat(np.arange(10), 2), len(SPEAKERS))
    sat = np.repeat(np.arange(len(SPEAKERS)), 20)

    def audio(y: np.ndarray, s: np.ndarray) -> np.ndarray:
        if audio_noise:
            return rng.normal(0, 4, (len(y), dim)).astype(np.float32)
        return (aud_c[y] + voice[s] + rng.normal(0, 0.5, (len(y), dim))).astype(np.float32)

    z = {
        "image_train": (img_c[yi] + rng.normal(0, 0.5, (n_img, 16))).astype(np.float32),
        "image_test": (img_c[yit] + rng.normal(0, 0.5, (N_IMG_TEST, 16))).astype(np.float32),
        "audio_train": audio(ya, sa),
        "audio_test": audio(yat, sat),
    }
    names = np.array(SPEAKERS)
    data = Data(
        np.zeros((n_img, 1), np.float32),
        yi,
        np.zeros((N_IMG_TEST, 1), np.float32),
        yit,
        fake_audio(ya, names[sa], z["audio_train"]),
        fake_audio(yat, names[sat], z["audio_test"]),
    )
    return data, z


@pytest.fixture(scope="module")
def blobs() -> tuple[Data, dict[str, np.ndarray]]:
    return synthetic(0)


# -- labels never reach what learns -----------------------------------------------------------------
def test_learning_functions_take_no_labels() -> None:
    params = set(inspect.signature(fit_modality_clusters).parameters)
    assert params == {"run", "z", "force", "algorithm", "image_brain_clusters", "prefix"}
    brain_params = set(inspect.signature(fit_brain).parameters)
    assert brain_params == {
        "image_clusters",
        "audio_clusters",
        "n_image_clusters",
        "n_audio_clusters",
        "convergence_threshold",
    }


def test_clusterers_see_only_latents(tmp_path, blobs, monkeypatch) -> None:
    """Every fit gets one float latent array of a training split and no ``y``."""
    _data, z = blobs
    seen: list[tuple[np.ndarray, object]] = []
    real = make_clusterer

    def spy(*args, **kwargs):
        est = real(*args, **kwargs)
        fit = est.fit

        def recording_fit(X, y=None):
            seen.append((X, y))
            return fit(X, y)

        est.fit = recording_fit
        return est

    monkeypatch.setattr(clusterings, "make_clusterer", spy)
    fit_modality_clusters(make_run(tmp_path), z, image_brain_clusters=20)
    assert len(seen) == 4  # image, audio, audio_brain, image_brain
    for X, y in seen:
        assert y is None
        assert X is z["image_train"] or X is z["audio_train"]
        assert np.issubdtype(X.dtype, np.floating)


# -- clusters --------------------------------------------------------------------------------------
def test_clusters_saved_reused_and_refitted(tmp_path, blobs) -> None:
    _data, z = blobs
    run = make_run(tmp_path)
    first = fit_modality_clusters(run, z)
    folder = tmp_path / "outputs" / "quick" / "clusters" / "seed0"
    assert first.folder == folder and not first.reused
    for name in ("image", "audio", "audio_brain", "image_brain", "clusters"):
        assert (folder / f"{name}.npz").is_file()
    assert first.sizes == {"image": 10, "audio": 10, "audio_brain": 20, "image_brain": 10}
    assert first.ids["audio_brain_train"].max() < 20 and len(first.ids["image_test"]) == N_IMG_TEST

    again = fit_modality_clusters(run, z)
    assert again.reused
    for key, ids in first.ids.items():
        np.testing.assert_array_equal(again.ids[key], ids)

    moved = dict(z, audio_train=z["audio_train"] + 1.0)  # other latents: the audio models are refitted
    assert not fit_modality_clusters(run, moved).reused
    assert not fit_modality_clusters(run, moved, force=True).reused


def test_cluster_figures_on_separated_blobs(tmp_path, blobs) -> None:
    data, z = blobs
    clusters = fit_modality_clusters(make_run(tmp_path), z)
    figs = cluster_figures(data, z, clusters)
    assert set(figs) == {
        f"{m}.cluster.{s}" for m in ("image", "audio") for s in ("acc", "nmi", "ari", "silhouette")
    }
    assert figs["image.cluster.acc"] > 0.95 and figs["image.cluster.nmi"] > 0.9
    assert figs["audio.cluster.acc"] > 0.9
    assert 0 < figs["image.cluster.silhouette"] <= 1


# -- the brain -------------------------------------------------------------------------------------
def test_cross_modal_high_for_separated_blobs(tmp_path, blobs) -> None:
    data, z = blobs
    run = make_run(tmp_path)
    clusters = fit_modality_clusters(run, z)
    figs = cross_modal_figures(run, data, z, clusters)
    assert figs["cross_modal.image_to_audio_acc"] > 0.95
    assert figs["cross_modal.audio_to_image_acc"] > 0.95
    assert figs["cross_modal.mismatch20.image_to_audio_drop"] < 0.03
    assert figs["cross_modal.mismatch20.audio_to_image_drop"] < 0.03
    brain = ConvergenceDivergenceZone.load(clusters.folder / "brain.npz")
    assert brain.counts_.shape == (10, 20) and brain.counts_.sum() == N_IMG
    noisy = ConvergenceDivergenceZone.load(clusters.folder / "brain_mismatch20.npz")
    assert noisy.counts_.sum() == N_IMG and not np.array_equal(noisy.counts_, brain.counts_)


def test_cross_modal_near_chance_when_audio_is_noise(tmp_path) -> None:
    """Audio latents that say nothing about the digit: recall both ways falls to chance (0.1).
    Scoring image -> audio with the training clips' majority would not: the brain picks, for each
    image cluster, the audio cluster that held most training clips of that digit, so it scores far
    above chance; the held-out clips' majority does not share that bias."""
    i2a, a2i, i2a_train = [], [], []
    for seed in range(3):
        data, z = synthetic(seed, audio_noise=True, n_img=1500)
        run = make_run(tmp_path / str(seed), seed=seed)
        res = cross_modal(run, data, z, fit_modality_clusters(run, z))
        i2a.append(res.image_to_audio_acc)
        a2i.append(res.audio_to_image_acc)
        i2a_train.append(res.image_to_audio_acc_train_majority)
    assert np.mean(i2a) < 0.25 and np.mean(a2i) < 0.25
    assert np.mean(i2a_train) > np.mean(i2a) + 0.15


def test_soft_recall_and_image_overclustering(tmp_path) -> None:
    data, z = synthetic(1, dim=6, n_img=1000)  # small: full-covariance mixtures fit fast
    run = make_run(tmp_path, algorithm="gmm")
    clusters = fit_modality_clusters(run, z, image_brain_clusters=15)
    assert clusters.n_image_brain == 15 and clusters.image_brain is not clusters.image
    post = posteriors_of(clusters.audio_brain, z["audio_test"])
    assert post is not None and post.shape == (len(z["audio_test"]), 20)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-3)
    soft = cross_modal(run, data, z, clusters, soft=True)
    assert soft.image_to_audio_acc > 0.9 and soft.audio_to_image_acc > 0.9
    # one-hot posteriors give exactly the hard recall
    brain = soft.brain
    ids = clusters.ids["audio_brain_test"]
    np.testing.assert_array_equal(
        recall(brain, "audio_to_image", ids, np.eye(20)[ids]), brain.predict_image(ids)
    )


def test_joint_figures(tmp_path, blobs) -> None:
    data, z = blobs
    run = make_run(tmp_path)
    figs = joint_figures(run, data, z)
    assert set(figs) == {"joint.cluster.acc", "joint.cluster.nmi", "joint.cluster.ari"}
    assert figs["joint.cluster.acc"] > 0.95
    assert (tmp_path / "outputs" / "quick" / "clusters" / "seed0" / "joint.npz").is_file()


def test_holdout_fold_generalises_to_a_new_voice(tmp_path, blobs) -> None:
    data, z = blobs
    run = make_run(tmp_path)
    clusters = fit_modality_clusters(run, z)
    counts = cluster_digit_counts(
        clusters.ids["image_brain_train"], data.image_train_labels, 10, 10
    )
    held = data.audio_train.speakers == "ann"
    images = LinkedImages(clusters.ids["image_brain_train"], data.image_train_labels, counts)
    za, digits = z["audio_train"], data.audio_train.digits
    fold = Fold("ann", za[~held], digits[~held], za[held], digits[held])
    assert holdout_fold(run, images, fold, algorithm="kmeans") > 0.9
    shuffled = np.random.default_rng(0).permutation(digits[held])
    wrong = Fold("ann", za[~held], digits[~held], za[held], shuffled)
    assert holdout_fold(run, images, wrong, algorithm="kmeans") < 0.3


def test_evaluate_keys_and_timings(tmp_path, blobs) -> None:
    data, z = blobs
    details = Evaluation()
    figs = evaluate(make_run(tmp_path), data, z, loso=False, baselines=False, details=details)
    expected = {f"{m}.cluster.{s}" for m in ("image", "audio") for s in ("acc", "nmi", "ari", "silhouette")}
    expected |= {"joint.cluster.acc", "joint.cluster.nmi", "joint.cluster.ari"}
    expected |= {f"cross_modal.{d}_acc" for d in ("image_to_audio", "audio_to_image")}
    expected |= {
        f"cross_modal.mismatch20.{d}_{w}"
        for d in ("image_to_audio", "audio_to_image")
        for w in ("acc", "drop")
    }
    assert set(figs) == expected
    assert all(isinstance(v, float) for v in figs.values())
    assert set(details.wall_time_s) == {"clusters", "joint", "brain"}
    table = metrics_table(figs)
    assert table.loc["cross_modal.image_to_audio_acc", "target"] == ">= 0.97"


def test_mismatched_world_feeds_the_noisy_brain(tmp_path, blobs, monkeypatch) -> None:
    """With a convergence head, the 20 %-mismatched brain is fitted on the codes of an audio
    encoder retrained on the noisy pairs (:func:`mismatched_world`), not on the clean
    encoder's: here that world's clips are noise, so only its brain loses its audio -> image recall."""
    data, z = blobs
    run = make_run(tmp_path, convergence_weight=1.0)
    calls = []

    def noise_world(run_, data_, z_, clusters, *, force=False):
        calls.append(run_.seed)
        zn = dict(z_)
        rng = np.random.default_rng(0)
        zn["audio_train"] = rng.normal(size=z_["audio_train"].shape)
        zn["audio_test"] = rng.normal(size=z_["audio_test"].shape)
        k = run_.cfg.model.clustering.audio_n_clusters
        audio_brain = make_clusterer("kmeans", k, run_.cfg.model.clustering, random_state=0).fit(
            zn["audio_train"]
        )
        ids = {
            **clusters.ids,
            **{f"audio_brain_{s}": audio_brain.predict(zn[f"audio_{s}"]) for s in ("train", "test")},
        }
        return zn, replace(clusters, audio_brain=audio_brain, ids=ids)

    monkeypatch.setattr(driver, "mismatched_world", noise_world)
    details = Evaluation()
    figs = evaluate(run, data, z, loso=False, baselines=False, details=details)
    assert calls == [0] and "mismatched_world" in details.wall_time_s
    assert figs["cross_modal.audio_to_image_acc"] > 0.9
    assert figs["cross_modal.mismatch20.audio_to_image_acc"] < 0.5
    assert figs["cross_modal.mismatch20.audio_to_image_drop"] > 0.4


def test_mismatched_world_left_out(tmp_path, blobs, monkeypatch) -> None:
    """``evaluation.mismatched_world: false``: nothing relearned, no mismatch20 figures (the
    baselines' included), the clean ones as before."""
    data, z = blobs
    run = make_run(tmp_path, convergence_weight=1.0, mismatched_world=False)
    monkeypatch.setattr(driver, "mismatched_world", lambda *a, **k: pytest.fail("world relearned"))
    details = Evaluation()
    figs = evaluate(run, data, z, loso=False, baselines=False, details=details)
    assert not [k for k in figs if "mismatch" in k] and "mismatched_world" not in details.wall_time_s
    assert figs["cross_modal.audio_to_image_acc"] > 0.9


def test_record_evaluation_keeps_per_seed_details(tmp_path, blobs) -> None:
    data, _z = blobs
    run = make_run(tmp_path)
    details = Evaluation(wall_time_s={"brain": 1.0}, speaker_holdout={"ann": 0.5})
    out = record_evaluation(run, data, {"cross_modal.audio_to_image_acc": 0.5}, details)
    assert out["cross_modal"]["audio_to_image_acc"]["mean"] == 0.5
    assert out["run"]["per_seed"]["0"]["speaker_holdout_audio_to_image_acc"] == {"ann": 0.5}
    assert out["run"]["data_sizes"]["mnist_train"] == N_IMG and out["run"]["machine"]["cores"]


def test_zone_share_by_threshold(tmp_path, blobs) -> None:
    data, z = blobs
    run = make_run(tmp_path)
    res = cross_modal(run, data, z, fit_modality_clusters(run, z))
    table = zone_share_by_threshold(res.brain, [0.05, 0.5, 1.0])
    image = table[table["modality"] == "image"].set_index("threshold")["convergence_share"]
    assert image[0.05] == 1.0 and image[1.0] == 0.0  # shares fall as the threshold rises
    assert (np.diff(image.to_numpy()) <= 0).all()


# -- baselines on a tiny real subset --------------------------------------------------------------------
def test_baselines_on_a_tiny_real_subset(real_env, tmp_path) -> None:
    from mmga_helpers.modalities.data import load_fsdd, load_mnist
    from mmga_helpers.modalities.features import images_to_unit, waves_to_unit_logmel

    run = make_run(tmp_path)
    (xi, yi), (xt, yt) = load_mnist("train"), load_mnist("test")
    fsdd = load_fsdd("test")  # 300 clips: takes 1-4 stand in for training, take 0 for testing
    x, waves, frames = waves_to_unit_logmel(fsdd.waves, run.cfg, fsdd.sample_rate)
    full = AudioSet(x, waves, fsdd.digits, fsdd.speakers, fsdd.indices, frames)
    tr = fsdd.indices > 0
    data = Data(
        images_to_unit(xi[:1500]),
        yi[:1500].astype(np.int64),
        images_to_unit(xt[:300]),
        yt[:300].astype(np.int64),
        full.subset(tr),
        full.subset(~tr),
    )
    stats = baselines.mfcc_stats(waves[:3])
    assert stats.shape == (3, 40) and np.isfinite(stats).all()
    figs, per_speaker = baselines.baseline_figures(run, data, loso=True)
    assert len(per_speaker) == 6
    for key in (
        "image.cluster.acc",
        "audio.cluster.acc",
        "cross_modal.image_to_audio_acc",
        "cross_modal.audio_to_image_acc",
        "cross_modal.speaker_holdout_audio_to_image_acc",
        "cross_modal.mismatch20.audio_to_image_drop",
    ):
        assert f"baseline.{key}" in figs
    assert figs["baseline.image.cluster.acc"] > 0.35  # PCA + k-means: well above chance (0.1)
    assert figs["baseline.audio.cluster.acc"] > 0.15
    assert all(0 <= v <= 1 for k, v in figs.items() if not k.endswith(("_drop", "silhouette")))


def test_brain_figures(tmp_path, blobs) -> None:
    from mmga_helpers.display import figures

    data, z = blobs
    run = make_run(tmp_path)
    clusters = fit_modality_clusters(run, z)
    brain = cross_modal(run, data, z, clusters).brain
    order, labels = reading_order(brain.counts_)
    assert sorted(order.tolist()) == list(range(10)) and labels[0].startswith("c")
    s = brain.strengths_["image_to_audio"]
    fig = figures.strength_heatmap(s, [str(i) for i in range(10)], [str(a) for a in range(20)], zmax=None)
    assert fig.data[0].zmax == pytest.approx(s.max())
    with pytest.raises(ValueError, match="labels"):
        figures.strength_heatmap(s, ["a"], ["b"])
    zones = brain.zones()
    assert len(figures.zone_scatter(zones, 0.5).data) >= 1
    curve = figures.threshold_curve(zone_share_by_threshold(brain, [0.2, 0.8]), 0.5)
    assert {t.name for t in curve.data} == {"image", "audio", "pairs"}


def test_speaker_holdout_see_draws_inside_the_recalled_clusters(tmp_path) -> None:
    """Images for a held-out speaker come from the image cluster its fold's brain recalled: with a
    decoder that paints cluster 1's latents bright and cluster 0's dark, and a judge that reads
    bright as 1, a speaker recalled correctly scores 1 and one recalled wrongly scores 0."""
    from types import SimpleNamespace

    class Decoder:  # latent -> image whose brightness follows the sign of the first coordinate
        def predict_on_batch(self, z: np.ndarray) -> np.ndarray:
            return np.broadcast_to((z[:, :1, None, None] > 0).astype(np.float32), (len(z), 28, 28, 1))

    rng = np.random.default_rng(0)
    ids = np.repeat([0, 1], 20)
    z = np.c_[np.where(ids == 1, 5.0, -5.0) + rng.normal(0, 0.5, 40), rng.normal(size=40)]
    judge = SimpleNamespace(accuracy=lambda im, d: float(((im.mean(axis=(1, 2)) > 0.5) == d).mean()))
    recalled = {
        "ann": (np.array([0, 1, 1]), np.array([0, 1, 1])),
        "bob": (np.array([1, 1]), np.array([0, 0])),
    }
    images = HoldoutImages(ids, ids, 2, z, Decoder())
    out = speaker_holdout_see(make_run(tmp_path), images, judge, recalled)
    assert out == {"ann": 1.0, "bob": 0.0}


def test_speaker_holdout_see_draws_from_the_cluster_core(tmp_path) -> None:
    """With centre distances, held-out voices' images come from each cluster's core: strays on
    cluster 1's rim (they decode dark, like a 0) are never drawn, so a correct recall scores 1."""
    from types import SimpleNamespace

    class Decoder:
        def predict_on_batch(self, z: np.ndarray) -> np.ndarray:
            return np.broadcast_to((z[:, :1, None, None] > 0).astype(np.float32), (len(z), 28, 28, 1))

    ids = np.repeat([0, 1], 20)
    z = np.c_[np.where(ids == 1, 5.0, -5.0), np.zeros(40)]
    z[30:, 0] = -1.0  # half of cluster 1 is strays that decode as 0
    distance = np.where(np.arange(40) >= 30, 9.0, 1.0)
    judge = SimpleNamespace(accuracy=lambda im, d: float(((im.mean(axis=(1, 2)) > 0.5) == d).mean()))
    recalled = {"ann": (np.ones(200, np.int64), np.ones(200, np.int64))}
    run = make_run(tmp_path)
    assert run.cfg.generation.core_fraction == 0.5
    core = HoldoutImages(ids, ids, 2, z, Decoder(), distance)
    assert speaker_holdout_see(run, core, judge, recalled) == {"ann": 1.0}
    everyone = HoldoutImages(ids, ids, 2, z, Decoder())
    assert speaker_holdout_see(run, everyone, judge, recalled)["ann"] < 0.7


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_two_d_views_keep_separated_blobs_apart(method: str) -> None:
    """A seeded subsample of ``max_points`` rows, embedded in 2-D with the blobs still apart: each
    point's nearest embedded neighbour is of its own blob."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 150)
    x = rng.normal(0, 8, (4, 12))[labels] + rng.normal(0, 0.5, (600, 12))
    xy, idx = two_d_views(x, method, seed=1, max_points=400)
    assert xy.shape == (400, 2) and np.isfinite(xy).all()
    assert len(np.unique(idx)) == 400 and (np.diff(idx) > 0).all()
    again, idx2 = two_d_views(x, method, seed=1, max_points=400)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_allclose(xy, again)  # seeded: the same view twice
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[idx][d.argmin(axis=1)] == labels[idx]).mean() > 0.98
    with pytest.raises(ValueError, match="umap' or 'tsne"):
        two_d_views(x, "pca", seed=1)  # type: ignore[arg-type]


def test_a_profile_without_an_audio_judge(tmp_path) -> None:
    """``evaluation.audio_judge_epochs: 0``: no audio judge is trained (nothing is vocoded, the data
    are not even read) and the audio figures are the stock listener's alone."""
    from mmga_helpers.evaluation.judges import train_audio_judge

    raw = profile_dict("quick")
    raw["evaluation"]["audio_judge_epochs"] = 0
    assert train_audio_judge(Run(config_from_dict(raw), seed=0, root=tmp_path), data=None) is None
    raw["evaluation"]["audio_judge_epochs"] = -1
    with pytest.raises(ConfigError, match="audio_judge_epochs"):
        config_from_dict(raw)
