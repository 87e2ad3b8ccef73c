"""Voice normalisation: a voice that shifts and stretches every code it speaks is lined up with the
training voices, from its own clips, without what they say."""

from __future__ import annotations

import numpy as np
import pytest

from mmga_helpers.core.metrics import cluster_digit_counts
from mmga_helpers.evaluation.holdout import Fold, LinkedImages, holdout_fold
from mmga_helpers.learn.voices import VoiceNormalizer, neighbour_vote, voice_moments
from tests.test_evaluation import make_run


def voiced_codes(seed: int = 0, n_voices: int = 6, takes: int = 20, dim: int = 8):
    """Ten digit blobs; each voice adds a large offset and stretches every dimension."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (10, dim))
    digits = np.tile(np.repeat(np.arange(10), takes), n_voices)
    voice = np.repeat(np.arange(n_voices), 10 * takes)
    offset, stretch = rng.normal(0, 6, (n_voices, dim)), rng.uniform(0.5, 2.0, (n_voices, dim))
    z = (centres[digits] + rng.normal(0, 0.4, (len(digits), dim))) * stretch[voice] + offset[voice]
    return z, digits, np.array([f"v{i}" for i in voice])


def test_voice_moments_match_numpy_per_voice() -> None:
    z, _, voices = voiced_codes()
    which, mean, spread = voice_moments(z, voices)
    for k, name in enumerate(np.unique(voices)):
        assert np.allclose(mean[k], z[voices == name].mean(0))
        assert np.allclose(spread[k], z[voices == name].std(0) + 1e-6)
    assert (np.unique(voices)[which] == voices).all()


def test_each_voice_lands_on_the_training_statistics() -> None:
    z, _, voices = voiced_codes()
    norm = VoiceNormalizer().fit(z, voices=voices)
    out = norm.transform(z, voices)
    for name in np.unique(voices):
        assert np.allclose(out[voices == name].mean(0), norm.mean_)
        assert np.allclose(out[voices == name].std(0), norm.scale_, rtol=1e-4)
    # a new voice, given alone, is read from its own clips
    new = z[voices == "v0"] * 3.0 - 10.0
    assert np.allclose(norm.transform(new).mean(0), norm.mean_)


def test_bad_input_is_refused() -> None:
    z, _, voices = voiced_codes()
    norm = VoiceNormalizer().fit(z, voices=voices)
    with pytest.raises(ValueError, match="at least 5 clips"):
        norm.transform(z[:3])
    with pytest.raises(ValueError, match="dimensions"):
        norm.transform(z[:, :3])
    with pytest.raises(ValueError, match="voice of each"):
        VoiceNormalizer().fit(z, voices=voices[:10])


def test_voice_normalisation_rescues_a_voice_far_from_the_others(tmp_path) -> None:
    z, digits, voices = voiced_codes()
    run = make_run(tmp_path)
    # the image side: ten clusters that are the digits (as the runs' image clusters nearly are)
    img_digits = np.repeat(np.arange(10), 50)
    images = LinkedImages(img_digits, img_digits, cluster_digit_counts(img_digits, img_digits, 10, 10))
    held = voices == "v5"
    fold = Fold("v5", z[~held], digits[~held], z[held], digits[held], voices[~held])
    plain = holdout_fold(run, images, fold, algorithm="kmeans")
    normalised = holdout_fold(run, images, fold, algorithm="kmeans", voice_normalize=True)
    assert normalised > 0.9 > plain + 0.2
    with pytest.raises(ValueError, match="train_voices"):
        holdout_fold(
            run,
            images,
            Fold("v5", z[~held], digits[~held], z[held], digits[held]),
            algorithm="kmeans",
            voice_normalize=True,
        )


def test_evaluate_reports_the_hold_out_with_and_without_voice_normalisation(tmp_path, monkeypatch) -> None:
    """With voice normalisation on, the run records the hold-out both ways, on the same folds, in one
    pass over them."""
    from dataclasses import replace

    from mmga_helpers.evaluation import driver
    from tests.test_evaluation import synthetic

    data, z = synthetic(0)
    run = make_run(tmp_path)
    run = replace(
        run,
        cfg=run.cfg.model_copy(
            update={"evaluation": run.cfg.evaluation.model_copy(update={"voice_normalize": True})}
        ),
    )
    calls = []

    def fake_holdout(
        run_, data_, clusters, *, force=False, soft=False, recalled=None, images=None, voice_normalize=None,
        plain=None, unvoted=None, plain_voted=None,
    ):
        assert unvoted is None and plain_voted is None  # the voice vote is off
        calls.append(voice_normalize)
        plain["ann"] = 0.6
        return {"ann": 0.9}

    monkeypatch.setattr(driver, "speaker_holdout", fake_holdout)
    details = driver.Evaluation()
    figs = driver.evaluate(run, data, z, loso=True, baselines=False, details=details)
    assert calls == [None]  # one pass: the fold models are loaded and their codes encoded once
    assert figs["cross_modal.speaker_holdout_audio_to_image_acc"] == 0.9
    assert figs["ablation.speaker_holdout_without_voice_normalize_audio_to_image_acc"] == 0.6
    assert details.as_info()["speaker_holdout_without_voice_normalize_audio_to_image_acc"] == {"ann": 0.6}


def test_evaluate_reports_the_hold_out_without_the_voice_vote_beside_it(tmp_path, monkeypatch) -> None:
    """With the voice vote on, the recall before the vote is scored beside it, from the same folds."""
    from dataclasses import replace

    from mmga_helpers.evaluation import driver
    from tests.test_evaluation import synthetic

    data, z = synthetic(0)
    run = make_run(tmp_path)
    evaluation = run.cfg.evaluation.model_copy(update={"voice_normalize": True, "voice_vote": 0.05})
    run = replace(run, cfg=run.cfg.model_copy(update={"evaluation": evaluation}))
    seen = {}

    def fake_holdout(
        run_, data_, clusters, *, images=None, plain=None, unvoted=None, plain_voted=None, **kwargs
    ):
        seen["images"] = images
        plain_voted["ann"] = 0.7
        digits = np.arange(20) % 10
        # before the vote: each clip recalls the image cluster of its digit's majority, or a wrong one
        majority = np.array([np.bincount(images.brain_ids[data_.image_train_labels == d]).argmax()
                             for d in range(10)])
        before = majority[digits].copy()
        before[:5] = majority[(digits[:5] + 1) % 10]
        unvoted["ann"] = (before, digits)
        plain["ann"] = 0.5
        return {"ann": 0.9}

    monkeypatch.setattr(driver, "speaker_holdout", fake_holdout)
    details = driver.Evaluation()
    figs = driver.evaluate(run, data, z, loso=True, baselines=False, details=details)
    assert figs["cross_modal.speaker_holdout_audio_to_image_acc"] == 0.9
    assert figs["ablation.speaker_holdout_without_voice_vote_audio_to_image_acc"] == pytest.approx(0.75)
    assert details.as_info()["speaker_holdout_without_voice_vote_audio_to_image_acc"] == {"ann": 0.75}
    assert figs["ablation.speaker_holdout_vote_without_voice_normalize_audio_to_image_acc"] == 0.7
    assert figs["ablation.speaker_holdout_without_voice_normalize_audio_to_image_acc"] == 0.5


def test_a_new_voice_can_be_read_from_a_few_of_its_own_clips() -> None:
    z, _, voices = voiced_codes()
    norm = VoiceNormalizer().fit(z, voices=voices)
    voice = z[voices == "v2"]
    whole = norm.transform(voice)
    assert np.allclose(norm.transform(voice, reference=voice), whole)
    few = norm.transform(voice, reference=voice[::10])  # 20 of its 200 clips
    assert np.abs(few - whole).mean() < 0.5 * np.abs(voice - whole).mean()
    with pytest.raises(ValueError, match="either voices or reference"):
        norm.transform(voice, np.full(len(voice), "v2"), reference=voice)
    with pytest.raises(ValueError, match="at least 5 clips"):
        norm.transform(voice, reference=voice[:2])


def test_neighbour_vote_outvotes_the_strays_of_a_group() -> None:
    rng = np.random.default_rng(0)
    z = np.r_[rng.normal(0, 0.3, (40, 4)), rng.normal(5, 0.3, (40, 4))]
    labels = np.repeat([3, 7], 40)
    noisy = labels.copy()
    noisy[rng.choice(80, 12, replace=False)] = rng.integers(0, 10, 12)
    assert (neighbour_vote(z, noisy, 0.25) == labels).all()
    # no neighbours to ask: the labels stay as they are
    assert (neighbour_vote(z, noisy, 0.0) == noisy).all()
    assert (neighbour_vote(z[:3], noisy[:3], 0.3) == noisy[:3]).all()
    # a tie keeps the clip's own label: two codes, each its own nearest
    assert (neighbour_vote(np.array([[0.0], [1.0]]), np.array([2, 5]), 1.0) == [2, 5]).all()


def test_neighbour_vote_refuses_bad_input() -> None:
    z = np.zeros((10, 2))
    with pytest.raises(ValueError, match="share"):
        neighbour_vote(z, np.zeros(10, int), 1.5)
    with pytest.raises(ValueError, match="one non-negative integer per code"):
        neighbour_vote(z, np.zeros(9, int), 0.2)
    with pytest.raises(ValueError, match="one non-negative integer per code"):
        neighbour_vote(z, np.full(10, 0.5), 0.2)
    with pytest.raises(ValueError, match="one non-negative integer per code"):
        neighbour_vote(z, np.full(10, -1), 0.2)


def test_the_hold_out_votes_among_the_held_out_voice_own_normalised_clips(tmp_path) -> None:
    """The fold's recall after the vote is the vote, among the held-out voice's normalised codes,
    over its recall before it; ``unvoted`` keeps the latter, ``recalled`` the former."""
    z, digits, voices = voiced_codes(takes=30)
    run = make_run(tmp_path)
    img_digits = np.repeat(np.arange(10), 50)
    images = LinkedImages(img_digits, img_digits, cluster_digit_counts(img_digits, img_digits, 10, 10))
    held = voices == "v5"
    fold = Fold("v5", z[~held], digits[~held], z[held], digits[held], voices[~held])
    unvoted: dict = {}
    recalled: dict = {}
    voted = holdout_fold(
        run, images, fold, algorithm="kmeans", voice_normalize=True, voice_vote=0.2,
        unvoted=unvoted, recalled=recalled,
    )
    ids, held_digits = unvoted["v5"]
    assert (held_digits == digits[held]).all() and len(ids) == held.sum()
    norm = VoiceNormalizer().fit(fold.train, voices=fold.train_voices)
    assert (recalled["v5"][0] == neighbour_vote(norm.transform(fold.held), ids, 0.2)).all()
    assert voted == holdout_fold(run, images, fold, algorithm="kmeans", voice_normalize=True) > 0.9
