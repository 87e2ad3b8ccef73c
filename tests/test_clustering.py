"""Clusterers: scikit-learn conventions, recovery of planted clusters, pickle-free save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.utils.estimator_checks import parametrize_with_checks

from mmga_helpers.core.config import load_config
from mmga_helpers.core.metrics import cluster_acc
from mmga_helpers.learn.clusterers import LatentGMM, LatentKMeans, UmapGMM, compile_umap
from mmga_helpers.learn.clustering import JointClustering, load_clusterer, make_clusterer
from mmga_helpers.learn.persistence import read_model


# Small n_init keeps the ~45 standard checks fast; no check is expected to fail.
@parametrize_with_checks([LatentKMeans(n_init=2), LatentGMM(n_init=1)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=500, n_features=8, centers=4, cluster_std=1.0, random_state=1)
    return X, y


@pytest.mark.parametrize("cls", [LatentKMeans, LatentGMM])
def test_recovers_blobs_and_labels_match_predict(cls, blobs):
    X, y = blobs
    est = cls(n_clusters=4, random_state=0).fit(X)
    assert cluster_acc(y, est.labels_) == 1.0
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    np.testing.assert_array_equal(cls(n_clusters=4, random_state=0).fit_predict(X), est.labels_)


@pytest.mark.parametrize("cls", [LatentKMeans, LatentGMM])
def test_save_load_round_trip(cls, blobs, tmp_path: Path):
    X, _ = blobs
    est = cls(n_clusters=4, random_state=3).fit(X)
    path = est.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:  # nothing in the file needs pickle
        assert "__meta__" in data.files
    back = cls.load(path)
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_array_equal(back.labels_, est.labels_)
    if cls is LatentGMM:
        np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert type(load_clusterer(path)) is cls


def test_load_refuses_other_kind(blobs, tmp_path: Path):
    X, _ = blobs
    path = LatentKMeans(n_clusters=4, random_state=0).fit(X).save(tmp_path / "km.npz")
    with pytest.raises(ValueError, match="holds a LatentKMeans, not a LatentGMM"):
        LatentGMM.load(path)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved MMGA model"):
        read_model(tmp_path / "plain.npz")


def test_gmm_probabilities(blobs):
    X, _ = blobs
    gmm = LatentGMM(n_clusters=4, covariance_type="diag", random_state=0).fit(X)
    proba = gmm.predict_proba(X)
    assert proba.shape == (len(X), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), gmm.predict(X))


def test_make_clusterer():
    cfg = load_config("quick").model.clustering
    assert isinstance(make_clusterer("kmeans", 7), LatentKMeans)
    gmm = make_clusterer("gmm", 5, random_state=2)
    assert isinstance(gmm, LatentGMM) and gmm.n_clusters == 5 and gmm.random_state == 2
    um = make_clusterer("umap_gmm", cfg.audio_n_clusters, cfg, random_state=0)
    assert isinstance(um, UmapGMM)
    assert (um.n_clusters, um.n_components, um.n_neighbors) == (
        cfg.audio_n_clusters, cfg.umap_n_components, cfg.umap_n_neighbors)
    with pytest.raises(ValueError, match="allowed: kmeans, gmm, umap_gmm"):
        make_clusterer("dbscan", 3)
    wide = cfg.model_copy(update={"audio_umap_n_neighbors": 100})
    k, fine = cfg.n_clusters, cfg.audio_n_clusters
    assert make_clusterer("umap_gmm", k, wide, 0, modality="audio").n_neighbors == 100
    assert make_clusterer("umap_gmm", k, wide, 0, modality="image").n_neighbors == cfg.umap_n_neighbors
    assert make_clusterer("umap_gmm", fine, wide, 0, modality="audio").n_neighbors == cfg.umap_n_neighbors


# -- UmapGMM: one small fit shared by the tests (UMAP compiles with numba on first use) ----------------
@pytest.fixture(scope="module")
def umap_fit() -> tuple[UmapGMM, np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=600, n_features=20, centers=5, cluster_std=3.0, random_state=0)
    return UmapGMM(n_clusters=5, n_neighbors=15, random_state=0).fit(X), X, y


def test_umap_gmm_recovers_blobs(umap_fit):
    model, X, y = umap_fit
    assert model.embedding_.shape == (600, model.n_components)
    assert cluster_acc(y, model.labels_) > 0.95
    # a training point maps onto its own embedding, so predict(X) reproduces the training labels
    np.testing.assert_allclose(model.transform(X[:20]), model.embedding_[:20])
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_umap_gmm_save_load_identical(umap_fit, tmp_path: Path):
    model, X, y = umap_fit
    rng = np.random.default_rng(0)
    X_new = X[:200] + rng.normal(scale=0.5, size=(200, X.shape[1]))  # unseen points near the data
    back = UmapGMM.load(model.save(tmp_path / "umap.npz"))
    np.testing.assert_array_equal(back.transform(X_new), model.transform(X_new))
    np.testing.assert_array_equal(back.predict(X_new), model.predict(X_new))
    np.testing.assert_array_equal(back.predict_proba(X_new), model.predict_proba(X_new))
    assert cluster_acc(y[:200], back.predict(X_new)) > 0.95


def test_umap_gmm_votes_new_points_by_their_neighbours(umap_fit):
    """A new point's memberships are its neighbours' memberships, weighted by inverse distance:
    a point whose neighbours sit in two clusters goes where most of them are, not wherever the
    mixture puts the mean of their embeddings."""
    model, X, _ = umap_fit
    rng = np.random.default_rng(1)
    a, b = model.labels_[0], next(c for c in model.labels_ if c != model.labels_[0])
    in_a, in_b = X[model.labels_ == a], X[model.labels_ == b]
    # midway between two clusters (reading the mixture at the mean embedding of such points sent
    # one in six to a cluster other than their neighbours' majority, some to a third cluster)
    near = X[:50] + rng.normal(scale=0.5, size=(50, X.shape[1]))
    X_new = np.vstack([0.5 * in_a[:40] + 0.5 * in_b[:40], near])
    dist, idx = model.neighbors_.kneighbors((X_new - model.mean_) / model.scale_)
    w = 1.0 / dist
    w /= w.sum(axis=1, keepdims=True)
    vote = np.einsum("nk,nkc->nc", w, model.mixture_.predict_proba(model.embedding_)[idx])
    np.testing.assert_allclose(model.predict_proba(X_new), vote, rtol=1e-9)
    np.testing.assert_array_equal(model.predict(X_new), vote.argmax(axis=1))
    neighbour_majority = np.array([np.bincount(model.labels_[i], minlength=5).argmax() for i in idx])
    assert (model.predict(X_new) == neighbour_majority).mean() > 0.95


def test_umap_gmm_rejects_tiny_input():
    with pytest.raises(ValueError, match="needs more samples"):
        UmapGMM(n_clusters=5).fit(np.random.default_rng(0).normal(size=(6, 3)))


# -- joint clustering -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paired() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digit structure in the 8-D image block, 300-D pure noise in the audio block: without the
    1/sqrt(dim) block weights the noise outweighs the structure (k-means ACC ~0.6)."""
    X_img, y = make_blobs(n_samples=400, n_features=8, centers=4, cluster_std=2.5, random_state=0)
    X_aud = np.random.default_rng(0).normal(size=(400, 300))
    return X_img, X_aud, y


def test_joint_clustering_weighs_modalities_equally(paired):
    X_img, X_aud, y = paired
    joint = JointClustering(n_clusters=4, random_state=0).fit(X_img, X_aud)
    assert cluster_acc(y, joint.labels_) == 1.0
    np.testing.assert_array_equal(joint.predict(X_img, X_aud), joint.labels_)
    # standardization per block: rescaling a whole block changes nothing
    scaled = JointClustering(n_clusters=4, random_state=0).fit_predict(X_img * 1000.0, X_aud * 1e-3)
    np.testing.assert_array_equal(scaled, joint.labels_)


def test_joint_clustering_save_load_and_errors(paired, tmp_path: Path):
    X_img, X_aud, _ = paired
    joint = JointClustering(n_clusters=4, algorithm="gmm", random_state=1).fit(X_img, X_aud)
    back = load_clusterer(joint.save(tmp_path / "joint.npz"))
    assert isinstance(back, JointClustering) and isinstance(back.clusterer_, LatentGMM)
    np.testing.assert_array_equal(back.predict(X_img, X_aud), joint.predict(X_img, X_aud))
    assert clone(joint).get_params() == joint.get_params()
    with pytest.raises(ValueError, match="same pairs"):
        joint.predict(X_img[:10], X_aud[:9])
    with pytest.raises(ValueError, match="X_audio has 5 features"):
        joint.predict(X_img, X_aud[:, :5])
    with pytest.raises(ValueError, match="allowed"):
        JointClustering(algorithm="spectral").fit(X_img, X_aud)


# -- centre distance: how deep inside its cluster a point lies (generation draws from the core) ------
def _mahalanobis_reference(gm, E: np.ndarray) -> np.ndarray:
    k = gm.predict(E)
    d = E - gm.means_[k]
    return np.sqrt(np.einsum("ni,nij,nj->n", d, np.linalg.inv(gm.covariances_)[k], d))


@pytest.mark.parametrize("cls", [LatentKMeans, LatentGMM])
def test_centre_distance_is_smallest_at_the_centre(cls, blobs):
    """A blob's mean lies deeper in its cluster than a point far out on the same blob's rim."""
    X, y = blobs
    est = cls(n_clusters=4, random_state=0).fit(X)
    centre = X[y == 0].mean(axis=0)
    rim = centre + 2.5 * X[y == 0].std(axis=0)
    d = est.centre_distance(np.stack([centre, rim]))
    assert est.predict(np.stack([centre, rim]))[0] == est.predict(np.stack([centre, rim]))[1]
    assert 0 <= d[0] < d[1]
    if cls is LatentGMM:
        np.testing.assert_allclose(est.centre_distance(X), _mahalanobis_reference(est.mixture_, X), rtol=1e-6)
    else:
        ref = np.linalg.norm(X - est.cluster_centers_[est.predict(X)], axis=1)
        np.testing.assert_allclose(est.centre_distance(X), ref, rtol=1e-9)


def test_umap_gmm_centre_distance_is_measured_in_the_embedding(umap_fit, tmp_path: Path):
    """Mahalanobis distance in the UMAP embedding to the point's own component; unchanged by a
    save/load round trip."""
    model, X, _ = umap_fit
    d = model.centre_distance(X)
    np.testing.assert_allclose(d, _mahalanobis_reference(model.mixture_, model.transform(X)), rtol=1e-6)
    back = UmapGMM.load(model.save(tmp_path / "u.npz"))
    np.testing.assert_allclose(back.centre_distance(X), d, rtol=1e-9)


def test_mixture_choice_keeps_the_most_even_start():
    """``balanced`` keeps, among the same starts, the one whose clusters are the most even in size;
    ``likeliest`` is scikit-learn's own choice over the same number of starts."""
    from mmga_helpers.learn.clusterers import _chosen_mixture, _fit_mixture, _size_entropy

    # six blobs of unequal spread for four components: the starts settle on different groupings
    X, _ = make_blobs(n_samples=600, centers=6, cluster_std=[0.5, 0.5, 1.5, 1.5, 3.0, 3.0], random_state=3)
    rng = np.random.RandomState(7)
    starts = [_fit_mixture(X, 4, "full", 1, rng) for _ in range(8)]
    entropies = [_size_entropy(g.predict(X), 4) for g in starts]
    assert max(entropies) - min(entropies) > 0.01  # the starts do differ
    chosen = _chosen_mixture(X, 4, 8, "balanced", 7)
    assert _size_entropy(chosen.predict(X), 4) == pytest.approx(max(entropies))
    likeliest = _chosen_mixture(X, 4, 8, "likeliest", 7)
    assert likeliest.lower_bound_ >= max(g.lower_bound_ for g in starts) - 1e-9
    with pytest.raises(ValueError, match="mixture choice"):
        _chosen_mixture(X, 4, 2, "median", 7)
    with pytest.raises(ValueError, match="mixture_starts must be at least 1"):
        UmapGMM(n_clusters=4, n_components=2, mixture_starts=0).fit(X)


def test_with_clusters_is_a_fit_of_that_many_clusters_without_a_second_umap(umap_fit, tmp_path: Path):
    """A finer clustering on the same embedding gives what a fresh fit with that many clusters
    gives (the same seed makes the same embedding), and saves and loads like one."""
    model, X, y = umap_fit
    finer = model.with_clusters(8)
    fresh = UmapGMM(n_clusters=8, n_neighbors=15, random_state=0).fit(X)
    assert finer.embedding_ is model.embedding_  # shared, not recomputed
    np.testing.assert_array_equal(finer.labels_, fresh.labels_)
    np.testing.assert_array_equal(finer.predict(X[:50] + 0.1), fresh.predict(X[:50] + 0.1))
    back = UmapGMM.load(finer.save(tmp_path / "finer.npz"))
    np.testing.assert_array_equal(back.predict(X), finer.labels_)
    assert model.n_clusters == 5 and len(np.unique(model.labels_)) == 5  # the base is untouched
    # finer clusters are purer: each of the 8 lies (almost) inside one blob
    counts = np.zeros((8, 5))
    np.add.at(counts, (finer.labels_, y), 1)
    assert counts.max(axis=1).sum() / len(y) > 0.95
    one = model.with_clusters(8, mixture_starts=1, mixture_choice="likeliest")
    assert one.mixture_starts == 1 and one.mixture_choice == "likeliest"


def test_compile_umap_leaves_later_fits_unchanged(umap_fit):
    model, X, _ = umap_fit
    compile_umap()
    again = UmapGMM(n_clusters=5, n_neighbors=15, random_state=0).fit(X)
    np.testing.assert_array_equal(again.labels_, model.labels_)
