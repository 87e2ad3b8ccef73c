"""Scoring: Hungarian accuracy, cross-modal accuracy, seed aggregation, flat result keys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmga_helpers.core.metrics import (
    aggregate_seeds,
    cluster_acc,
    cluster_digit_counts,
    cluster_majority_digit,
    cluster_scores,
    cross_modal_accuracy,
    flatten,
    mean_std,
    unflatten,
)

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 10, size=5000)


def test_acc_of_permuted_labelling_is_one():
    perm = RNG.permutation(10)
    assert cluster_acc(Y, perm[Y] + 100) == 1.0  # ids need not start at 0


def test_acc_of_random_labelling_is_chance():
    assert 0.09 < cluster_acc(Y, RNG.integers(0, 10, size=Y.size)) < 0.13


def test_acc_is_one_to_one_even_with_more_clusters():
    # every digit split into two pure clusters: many-to-one would score 1.0, one-to-one gives 0.5
    split = Y * 2 + (np.arange(Y.size) % 2)
    assert cluster_acc(Y, split) == pytest.approx(0.5, abs=0.02)
    # fewer clusters than digits: unmatched digits count as wrong
    assert cluster_acc(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 1, 1])) == pytest.approx(4 / 6)


def test_acc_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        cluster_acc([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        cluster_acc([], [])
    with pytest.raises(ValueError, match="integers"):
        cluster_acc([0.5, 1.0], [0, 1])


def test_cluster_scores():
    X = np.eye(10)[Y] * 5 + RNG.normal(scale=0.1, size=(Y.size, 10))
    perfect = cluster_scores(Y, (Y + 3) % 10, X, sample_size=500)
    assert set(perfect) == {"acc", "nmi", "ari", "silhouette"}
    assert perfect["acc"] == perfect["nmi"] == pytest.approx(1.0)
    assert perfect["ari"] == pytest.approx(1.0)
    assert 0.9 < perfect["silhouette"] <= 1.0
    assert math.isnan(cluster_scores(Y, Y)["silhouette"])  # no X
    assert math.isnan(cluster_scores(Y, np.zeros_like(Y), X)["silhouette"])  # one cluster
    random = cluster_scores(Y, RNG.integers(0, 10, size=Y.size), X, sample_size=500)
    assert random["nmi"] < 0.02 and abs(random["ari"]) < 0.02 and random["silhouette"] < 0.1
    with pytest.raises(ValueError, match="one row per label"):
        cluster_scores(Y, Y, X[:10])


def test_cross_modal_accuracy():
    # training pairs: audio cluster 0 heard with digit 3 (mostly), cluster 1 with digit 5, cluster 2 never
    train_clusters = np.array([0, 0, 0, 1, 1])
    train_digits = np.array([3, 3, 7, 5, 5])
    counts = cluster_digit_counts(train_clusters, train_digits, n_clusters=3, n_digits=10)
    assert counts.shape == (3, 10) and counts[0, 3] == 2 and counts[0, 7] == 1
    np.testing.assert_array_equal(cluster_majority_digit(train_clusters, train_digits, 3), [3, 5, -1])
    pred = np.array([0, 0, 1, 2])  # e.g. test images' predicted audio clusters
    true = np.array([3, 7, 5, 2])  # right, wrong (minority digit), right, unseen cluster -> wrong
    assert cross_modal_accuracy(pred, true, counts) == 0.5
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        cross_modal_accuracy(np.array([3]), np.array([1]), counts)
    with pytest.raises(ValueError, match="2-D"):
        cross_modal_accuracy(pred, true, np.array([3, 5, -1]))
    with pytest.raises(ValueError, match="lie in"):
        cluster_digit_counts([0, 4], [1, 1], n_clusters=3)


def test_mean_std_and_aggregate():
    # the sample standard deviation (ddof=1): sqrt(((1-2)^2 + 0 + (3-2)^2) / (3 - 1)) = 1
    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(1.0), "n_seeds": 3}
    assert mean_std([0.72, 0.77, 0.78])["std"] == pytest.approx(np.std([0.72, 0.77, 0.78], ddof=1))
    assert mean_std([0.7]) == {"mean": 0.7, "std": 0.0, "n_seeds": 1}
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])
    agg = aggregate_seeds([{"acc": 0.8, "nmi": 0.5}, {"acc": 0.6, "nmi": 0.5}])
    assert agg["acc"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.1 * math.sqrt(2)), "n_seeds": 2}
    assert agg["nmi"]["std"] == 0.0
    with pytest.raises(ValueError, match="different keys"):
        aggregate_seeds([{"acc": 1.0}, {"nmi": 1.0}])
    with pytest.raises(ValueError, match="non-numeric"):
        aggregate_seeds([{"acc": {"x": 1}}])


def test_flatten_round_trip():
    nested = {"image": {"kmeans": {"acc": 0.6, "nmi": 0.5}, "gmm": {"acc": 0.7}}, "seed": 0, "empty": {}}
    flat = flatten(nested)
    assert flat == {"image.kmeans.acc": 0.6, "image.kmeans.nmi": 0.5, "image.gmm.acc": 0.7, "seed": 0,
                    "empty": {}}
    assert unflatten(flat) == nested
    with pytest.raises(ValueError, match="without"):
        flatten({"a.b": 1})
    with pytest.raises(ValueError, match="conflicts"):
        unflatten({"a": 1, "a.b": 2})
    with pytest.raises(ValueError, match="conflicts"):
        unflatten({"a.b": 2, "a": 1})


def test_figure_differences_and_mmga_compare(tmp_path) -> None:
    """Two runs' figures side by side: numbers both hold, run facts skipped, NaN only when one is."""
    import json

    from typer.testing import CliRunner

    from mmga_helpers.core.metrics import figure_differences
    from mmga_helpers.tools.cli import app

    a = {"image": {"cluster": {"acc": {"mean": 0.9, "std": 0.01, "n_seeds": 3}}},
         "x": {"y": float("nan")}, "run": {"wall_time_s": {"train": 10.0}}}
    b = {"image": {"cluster": {"acc": {"mean": 0.9, "std": 0.0100004, "n_seeds": 3}}},
         "x": {"y": float("nan")}, "run": {"wall_time_s": {"train": 12.0}}, "only_b": 1.0}
    diffs = figure_differences(a, b)
    acc = "image.cluster.acc"
    assert set(diffs) == {f"{acc}.mean", f"{acc}.std", f"{acc}.n_seeds", "x.y"}
    assert diffs["image.cluster.acc.mean"] == 0 and diffs["x.y"] == 0
    assert diffs["image.cluster.acc.std"] == pytest.approx(4e-7)
    per_seed = figure_differences({"0": {"audio.cluster.acc": 0.5}}, {"0": {"audio.cluster.acc": 0.25}})
    assert per_seed == {"0.audio.cluster.acc": 0.25}  # metrics_per_seed.json keys hold dots already
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                                      "--tolerance", "1e-7"])
    assert result.exit_code == 0, result.output
    assert "3 of 4 figures identical" in result.output and "image.cluster.acc.std" in result.output
    missing = CliRunner().invoke(app, ["compare", str(tmp_path / "a.json"), str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "cannot compare" in missing.output
