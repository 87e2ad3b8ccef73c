"""The stock listener: PocketSphinx's en-us model with a ten-digit grammar, as an independent judge
of speech. It must understand real FSDD speech far above chance, hear nothing in silence, read a
clip the same whatever came before it, and take clips at any rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from mmga_helpers.evaluation.listener import NOT_HEARD, StockListener
from mmga_helpers.modalities.data import load_fsdd


@pytest.fixture(scope="module")
def listener() -> StockListener:
    return StockListener()


@pytest.fixture(scope="module")
def test_clips(real_data) -> tuple[list[np.ndarray], np.ndarray]:
    """60 clips of FSDD's official test split: every speaker, every digit, recording 0."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMGA_DATA_DIR", str(real_data))
        fsdd = load_fsdd("all")
    pick = np.flatnonzero(fsdd.is_official_test & (fsdd.indices == 0))
    return [fsdd.waves[i] for i in pick], fsdd.digits[pick]


def test_understands_real_speech_far_above_chance(listener, test_clips) -> None:
    waves, digits = test_clips
    assert len(waves) == 60
    heard = listener.read(waves, 8000)
    assert heard.shape == (60,) and set(heard) <= set(range(10)) | {NOT_HEARD}
    assert listener.accuracy(waves, digits, 8000) >= 0.6  # chance is 0.1


def test_a_clip_reads_the_same_whatever_came_before(listener, test_clips) -> None:
    waves, _ = test_clips
    order = np.random.default_rng(0).permutation(len(waves))
    forward = listener.read(waves)
    shuffled = np.empty_like(forward)
    shuffled[order] = listener.read([waves[i] for i in order])
    np.testing.assert_array_equal(forward, shuffled)
    np.testing.assert_array_equal(StockListener().read(waves[:10]), forward[:10])  # a fresh decoder too


def test_any_rate_and_silence(listener, test_clips) -> None:
    waves, digits = test_clips
    at_22k = [resample_poly(w, 441, 160).astype(np.float32) for w in waves[:20]]
    assert listener.accuracy(at_22k, digits[:20], 22050) >= 0.6
    silent = [np.zeros(8000, np.float32), np.zeros(0, np.float32), np.full(800, np.nan, np.float32)]
    np.testing.assert_array_equal(listener.read(silent), [NOT_HEARD] * 3)
    with pytest.raises(ValueError, match="sample_rate"):
        listener.read(waves[:1], 0)
    with pytest.raises(ValueError, match="2 clips but 1 digits"):
        listener.accuracy(waves[:2], digits[:1])


def test_worker_processes_read_as_this_process_does(listener, test_clips) -> None:
    """Long lists go to worker processes (one decoder each): the same digits, in the same order,
    silence and odd lengths included."""
    waves, _ = test_clips
    many = [*waves, np.zeros(8000, np.float32), np.zeros(0, np.float32)] * 4  # 248 clips: pooled
    alone = listener._read(many, 8000)
    np.testing.assert_array_equal(listener.read(many, 8000), alone)
    assert (alone[60::62] == NOT_HEARD).all() and (alone[61::62] == NOT_HEARD).all()


def test_a_cached_listener_decodes_each_clip_once(test_clips, tmp_path, monkeypatch) -> None:
    """With a cache file, readings are kept by the clip's content: a clip heard before (by this
    listener or another one on the same file) is not decoded again, and reads the same."""
    waves, _ = test_clips
    cache = tmp_path / "listener.npz"
    first = StockListener(cache=cache)
    expected = first.read(waves[:6])
    reference = StockListener().read(waves[:8])  # no cache
    np.testing.assert_array_equal(expected, reference[:6])
    decoded: list[int] = []
    original = StockListener._read_all

    def counting(self, clips, rate):
        decoded.append(len(clips))
        return original(self, clips, rate)

    monkeypatch.setattr(StockListener, "_read_all", counting)
    again = StockListener(cache=cache).read([waves[i] for i in (5, 0, 3, 6, 7)])
    np.testing.assert_array_equal(again[:3], expected[[5, 0, 3]])
    assert decoded == [2]  # only clips 6 and 7 were new
    np.testing.assert_array_equal(again[3:], reference[6:8])
    assert StockListener(cache=cache).read(waves[:8], 16000).shape == (8,)  # another rate: new clips
    assert decoded == [2, 8]
