"""The brain: association strengths from co-occurring cluster ids, zones, recall, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from mmga_helpers.learn.brain import ConvergenceDivergenceZone


@pytest.fixture(scope="module")
def planted() -> tuple[ConvergenceDivergenceZone, np.ndarray]:
    """Image cluster i co-occurs with audio cluster perm[i]; 20% of pairs get a random audio cluster."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(10)
    img = rng.integers(0, 10, size=5000)
    aud = perm[img]
    noisy = rng.random(img.size) < 0.2
    aud[noisy] = rng.integers(0, 10, size=noisy.sum())
    return ConvergenceDivergenceZone().fit(img, aud), perm


@pytest.fixture(scope="module")
def one_to_many() -> ConvergenceDivergenceZone:
    """Image cluster 0 is heard as audio cluster 0 or 1 (two voices) equally often; 1 as 2."""
    img = np.array([0] * 100 + [1] * 100)
    aud = np.array([0, 1] * 50 + [2] * 100)
    return ConvergenceDivergenceZone().fit(img, aud)


def test_recovers_planted_permutation(planted):
    brain, perm = planted
    match = brain.one_to_one()
    assert list(match.columns) == ["image_cluster", "audio_cluster", "strength_image_to_audio",
                                   "strength_audio_to_image", "count"]
    np.testing.assert_array_equal(match["audio_cluster"], perm[match["image_cluster"]])
    np.testing.assert_array_equal(brain.predict_audio(np.arange(10)), perm)
    np.testing.assert_array_equal(brain.predict(np.arange(10)), perm)
    np.testing.assert_array_equal(brain.predict_image(perm), np.arange(10))
    assert (match["strength_image_to_audio"] > 0.75).all()
    assert (brain.zones()["zone"] == "convergence").all()


def test_strengths_are_conditional_distributions(planted):
    brain, _ = planted
    assert brain.counts_.shape == (10, 10) and brain.counts_.sum() == 5000
    assert (brain.n_image_clusters_, brain.n_audio_clusters_) == (10, 10)
    for direction in ("image_to_audio", "audio_to_image"):
        np.testing.assert_allclose(brain.strengths_[direction].sum(axis=1), 1.0)


def test_asymmetry_in_one_to_many(one_to_many):
    brain = one_to_many
    i2a, a2i = brain.strengths_["image_to_audio"], brain.strengths_["audio_to_image"]
    assert i2a.shape == (2, 3) and a2i.shape == (3, 2)
    assert a2i[0, 0] == pytest.approx(1.0, abs=1e-3) and a2i[1, 0] == pytest.approx(1.0, abs=1e-3)
    assert i2a[0, 0] == pytest.approx(0.5, abs=1e-3) and i2a[0, 1] == pytest.approx(0.5, abs=1e-3)
    links = brain.one_to_many(direction="image_to_audio")
    assert list(links.loc[links["source"] == 0, "target"]) == [0, 1]
    assert list(links.loc[links["source"] == 1, "target"]) == [2]
    back = brain.one_to_many(direction="audio_to_image")
    assert list(back["target"]) == [0, 0, 1]
    pairs = brain.pair_zones()
    score = pairs.set_index(["image_cluster", "audio_cluster"])["score"]
    assert score[(0, 0)] == pytest.approx(np.sqrt(0.5), abs=1e-3)
    assert score[(1, 2)] == pytest.approx(1.0, abs=1e-3)


def test_zones_change_with_threshold(one_to_many):
    brain = one_to_many

    def zone(df: pd.DataFrame, modality: str, cluster: int) -> str:
        return df.set_index(["modality", "cluster"]).loc[(modality, cluster), "zone"]

    lenient = brain.zones(threshold=0.4)  # image cluster 0 splits 0.5 / 0.5 between two voices
    assert zone(lenient, "image", 0) == "convergence"
    strict = brain.zones(threshold=0.6)
    assert zone(strict, "image", 0) == "divergence"
    assert zone(strict, "image", 1) == "convergence" and zone(strict, "audio", 1) == "convergence"
    row = strict.set_index(["modality", "cluster"]).loc[("image", 0)]
    assert row["entropy"] == pytest.approx(1.0, abs=0.01)  # one bit: two equally likely partners
    assert zone(clone(brain).set_params(convergence_threshold=0.6).fit(
        [0] * 100 + [1] * 100, [0, 1] * 50 + [2] * 100).zones(), "image", 0) == "divergence"
    assert set(brain.pair_zones(threshold=0.8)["zone"]) == {"convergence", "divergence"}
    assert set(brain.pair_zones(threshold=0.5)["zone"]) == {"convergence"}


def test_unseen_clusters_get_uniform_strengths():
    for smoothing in (1e-3, 0.0):
        brain = ConvergenceDivergenceZone(n_image_clusters=4, n_audio_clusters=3, smoothing=smoothing)
        brain.fit([0, 1, 2], [0, 1, 2])
        np.testing.assert_allclose(brain.strengths_["image_to_audio"][3], 1 / 3)
        zones = brain.zones().set_index(["modality", "cluster"])
        assert zones.loc[("image", 3), "zone"] == "divergence"
        assert zones.loc[("image", 3), "count"] == 0


def test_sampling_follows_strengths(one_to_many):
    brain = one_to_many
    drawn = brain.predict_audio(np.zeros(4000, dtype=int), mode="sample", random_state=0)
    share = np.bincount(drawn, minlength=3) / drawn.size
    assert share[0] == pytest.approx(0.5, abs=0.03) and share[1] == pytest.approx(0.5, abs=0.03)
    again = brain.predict_audio(np.zeros(4000, dtype=int), mode="sample", random_state=0)
    np.testing.assert_array_equal(drawn, again)
    np.testing.assert_array_equal(brain.predict_image([0, 1, 2]), [0, 0, 1])


def test_sampling_draws_from_the_one_to_many_table():
    """A link weaker than ``link_threshold`` (one stray pair in a hundred) is never drawn; a source
    whose links are all weak still evokes its strongest partner."""
    img = np.r_[np.zeros(99, int), 0, np.ones(10, int)]
    aud = np.r_[np.arange(99) % 3, 3, np.arange(10) % 10]  # image 0: 1/3 each to 0-2, 1 % to 3
    brain = ConvergenceDivergenceZone(n_audio_clusters=10, link_threshold=0.1).fit(img, aud)
    drawn = brain.predict_audio(np.zeros(3000, dtype=int), mode="sample", random_state=1)
    assert set(np.unique(drawn)) == {0, 1, 2}
    spread = brain.predict_audio(np.ones(100, dtype=int), mode="sample", random_state=1)
    assert set(np.unique(spread)) <= set(range(10))  # strengths 0.1 each: all at the threshold
    weak = ConvergenceDivergenceZone(n_audio_clusters=10, link_threshold=0.5).fit(img, aud)
    lone = weak.predict_audio(np.ones(50, dtype=int), mode="sample", random_state=1)
    np.testing.assert_array_equal(lone, weak.predict_audio(np.ones(50, dtype=int)))
    with pytest.raises(ValueError, match="link_threshold"):
        ConvergenceDivergenceZone(link_threshold=1.0).fit(img, aud)


def test_save_load_round_trip(planted, tmp_path: Path):
    brain, _ = planted
    back = ConvergenceDivergenceZone.load(brain.save(tmp_path / "brain.npz"))
    assert back.get_params() == brain.get_params()
    np.testing.assert_array_equal(back.counts_, brain.counts_)
    for direction in ("image_to_audio", "audio_to_image"):
        np.testing.assert_array_equal(back.strengths_[direction], brain.strengths_[direction])
    pd.testing.assert_frame_equal(back.zones(), brain.zones())
    pd.testing.assert_frame_equal(back.one_to_one(), brain.one_to_one())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.fit([0, 1], [0]), "same length"),
        (lambda b: b.fit([], []), "at least one"),
        (lambda b: b.fit([0, -1], [0, 1]), "non-negative"),
        (lambda b: b.fit([0.0, 1.0], [0, 1]), "integer"),
        (lambda b: b.set_params(n_image_clusters=2).fit([0, 2], [0, 1]), "out of range"),
        (lambda b: b.set_params(convergence_threshold=0.0).fit([0], [0]), "convergence_threshold"),
        (lambda b: b.fit([0, 1], [0, 1]).predict_audio([5]), "knows only 2"),
        (lambda b: b.fit([0, 1], [0, 1]).predict_audio([0], mode="max"), "mode"),
        (lambda b: b.fit([0, 1], [0, 1]).one_to_many(direction="both"), "direction"),
        (lambda b: b.fit([0, 1], [0, 1]).zones(threshold=1.5), "threshold"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(ConvergenceDivergenceZone())
