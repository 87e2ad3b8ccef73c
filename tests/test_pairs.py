"""Co-occurrence simulation: pairs share a digit, except a controlled share of mismatches."""

from __future__ import annotations

import numpy as np
import pytest

from mmga_helpers.core.pairs import cooccurring_pairs

RNG = np.random.default_rng(0)
IMG = RNG.integers(0, 10, size=1000)
AUD = RNG.integers(0, 10, size=300).astype(np.uint8)  # dtype of stored labels must not matter


def test_matched_pairs_share_a_digit():
    i, a = cooccurring_pairs(IMG, AUD, 2500, random_state=0)
    assert i.shape == a.shape == (2500,) and i.dtype == a.dtype == np.int64
    assert i.min() >= 0 and i.max() < IMG.size and a.min() >= 0 and a.max() < AUD.size
    np.testing.assert_array_equal(IMG[i], AUD[a])
    # every image used as evenly as possible (2 or 3 times), every clip takes part
    assert set(np.bincount(i, minlength=IMG.size)) <= {2, 3}
    assert np.unique(a).size == AUD.size


def test_mismatch_fraction_is_exact_and_uniform_over_other_digits():
    i, a = cooccurring_pairs(IMG, AUD, 20000, mismatch_fraction=0.2, random_state=1)
    wrong = IMG[i] != AUD[a]
    assert wrong.sum() == 4000
    # for image digit 3, the wrong clips spread evenly over the 9 other digits
    wrong_digits = AUD[a][wrong & (IMG[i] == 3)]
    counts = np.bincount(wrong_digits, minlength=10)
    assert counts[3] == 0
    others = np.delete(counts, 3)
    assert others.min() > 0.5 * others.mean() and others.max() < 1.5 * others.mean()


def test_only_shared_digits_are_paired():
    audio = np.array([1, 1, 2, 2, 2])
    i, a = cooccurring_pairs(IMG, audio, 500, mismatch_fraction=0.1, random_state=0)
    assert set(IMG[i]) == {1, 2}
    assert (IMG[i] != audio[a]).sum() == 50  # with two digits, a mismatch is always the other one


def test_seeded():
    first = cooccurring_pairs(IMG, AUD, 100, 0.3, random_state=5)
    again = cooccurring_pairs(IMG, AUD, 100, 0.3, random_state=5)
    other = cooccurring_pairs(IMG, AUD, 100, 0.3, random_state=6)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mismatch_fraction": 1.0}, r"mismatch_fraction must be in \[0, 1\)"),
        ({"mismatch_fraction": -0.1}, r"mismatch_fraction must be in \[0, 1\)"),
        ({"n_pairs": 0}, "n_pairs must be a positive integer"),
        ({"n_pairs": 2.5}, "n_pairs must be a positive integer"),
        ({"audio_labels": np.array([7, 8])}, "share no digit"),
        ({"audio_labels": np.array([1, 1]), "mismatch_fraction": 0.5}, "at least two different"),
        ({"image_labels": np.zeros((3, 2), dtype=int)}, "1-D"),
        ({"image_labels": np.array([], dtype=int)}, "non-empty"),
        ({"image_labels": np.array([0.5, 1.0])}, "integer labels"),
    ],
)
def test_bad_input(kwargs, message):
    args = {"image_labels": np.array([1, 2, 3]), "audio_labels": np.array([1, 2]), "n_pairs": 10}
    with pytest.raises(ValueError, match=message):
        cooccurring_pairs(**{**args, **kwargs})


def test_cooccurrence_targets_are_partner_cluster_distributions():
    from mmga_helpers.core.pairs import cooccurrence_targets

    # item 0 met partners in clusters 1, 1, 2; item 1 met cluster 0; item 2 met nobody
    t = cooccurrence_targets([1, 2, 0, 1], [0, 0, 1, 0], n_items=3, n_clusters=3)
    assert t.dtype == np.float32 and t.shape == (3, 3)
    np.testing.assert_allclose(t[0], [0, 2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(t[1], [1, 0, 0])
    np.testing.assert_allclose(t[2], [0, 0, 0])  # no pair: no pull on this item's code


@pytest.mark.parametrize(
    "args, message",
    [
        (([0, 1], [0], 2, 2), "one length"),
        (([0, 1], [0, 5], 2, 2), "item_idx must lie"),
        (([0, 3], [0, 1], 2, 2), "partner_clusters must lie"),
    ],
)
def test_cooccurrence_targets_bad_input(args, message):
    from mmga_helpers.core.pairs import cooccurrence_targets

    with pytest.raises(ValueError, match=message):
        cooccurrence_targets(*args)
