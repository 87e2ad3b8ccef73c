"""Audio front end: reading WAVs of any kind, batch preparation, log-mel and its inverse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmga_helpers.core.config import FsddConfig, load_config
from mmga_helpers.modalities import audio as A
from mmga_helpers.modalities.audio import AudioError


@pytest.fixture(scope="module")
def cfg() -> FsddConfig:
    return load_config("quick").data.fsdd


def _tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[spec.argmax()])


@pytest.fixture(scope="module")
def real_clips(real_data: Path) -> list[np.ndarray]:
    """A few real FSDD test clips, read directly (the loader is tested in test_data)."""
    names = ["0_george_0.wav", "3_jackson_1.wav", "7_lucas_2.wav", "9_theo_4.wav", "5_yweweler_3.wav"]
    out = []
    for n in names:
        wave, sr = sf.read(real_data / "fsdd" / "recordings" / n, dtype="float32")
        assert sr == 8000
        out.append(wave)
    return out


# -- read_wav --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sr", "channels", "subtype"),
    [
        (8000, 1, "PCM_16"),
        (16000, 1, "PCM_16"),
        (44100, 1, "PCM_16"),
        (22050, 2, "PCM_16"),
        (16000, 1, "PCM_24"),
        (48000, 1, "FLOAT"),
        (11025, 2, "PCM_U8"),
    ],
)
def test_read_wav_any_format(tmp_path: Path, sr: int, channels: int, subtype: str) -> None:
    seconds = 0.5
    tone = _tone(440, seconds, sr)
    data = np.stack([tone, tone], axis=1) if channels == 2 else tone
    path = tmp_path / f"t_{sr}_{channels}_{subtype}.wav"
    sf.write(path, data, sr, subtype=subtype)
    wave = A.read_wav(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - seconds * 8000) <= 0.01 * seconds * 8000
    assert abs(_peak_hz(wave, 8000) - 440) < 5
    assert abs(np.abs(wave).max() - 0.5) < 0.02  # resampling keeps the level
    assert A.read_wav(path.read_bytes()).shape == wave.shape  # bytes work as well as paths


def test_read_wav_stereo_is_averaged(tmp_path: Path) -> None:
    left, right = _tone(440, 0.25, 8000, 0.6), _tone(1000, 0.25, 8000, 0.2)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    np.testing.assert_allclose(A.read_wav(tmp_path / "s.wav"), (left + right) / 2, atol=1e-6)


def test_read_wav_other_target_rate(tmp_path: Path) -> None:
    sf.write(tmp_path / "t.wav", _tone(440, 0.5, 8000), 8000)
    wave = A.read_wav(tmp_path / "t.wav", target_sr=16000)
    assert abs(len(wave) - 8000) <= 80 and abs(_peak_hz(wave, 16000) - 440) < 5


@pytest.mark.parametrize("content", [b"hello, not audio", b"", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_read_wav_not_a_wav(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=r"fake\.wav: not a readable WAV"):
        A.read_wav(path)
    with pytest.raises(AudioError, match="<bytes>"):
        A.read_wav(content)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_read_wav_truncated_mid_data(tmp_path: Path, subtype: str) -> None:
    """A WAV cut off inside its samples is refused with both sizes named; the whole file reads."""
    path = tmp_path / "cut.wav"
    sf.write(path, (0.5 * np.sin(np.arange(8000) / 5)).astype(np.float32), 8000, subtype=subtype)
    whole = path.read_bytes()
    assert A.read_wav(path).shape == (8000,)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated WAV \(its header promises \d+ bytes") as err:
        A.read_wav(path)
    assert "\n" not in str(err.value) and "again" in str(err.value)
    with pytest.raises(AudioError, match=r"<bytes>: truncated WAV"):
        A.read_wav(whole[:-3])


def test_read_wav_empty(tmp_path: Path) -> None:
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioError, match=r"empty\.wav: the file holds no samples"):
        A.read_wav(tmp_path / "empty.wav")


def test_read_wav_missing(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"absent\.wav: (file not found|not a readable)"):
        A.read_wav(tmp_path / "absent.wav")


# -- check_waves -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "expect"),
    [
        (np.array([0.5, np.nan, 0.1], np.float32), "NaN or inf"),
        (np.array([0.5, np.inf], np.float64), "NaN or inf"),
        (np.zeros(0, np.float32), "empty"),
        (np.zeros(100, np.float32), "silent"),
        (np.full(100, 1e-6, np.float32), "silent"),
        (np.ones((2, 100), np.float32), "1-D"),
        (np.array(["a", "b"]), "not numeric"),
        (np.array([1 + 1j, 2j]), "not numeric"),
    ],
)
def test_check_waves_names_the_clip(bad: np.ndarray, expect: str) -> None:
    good = _tone(440, 0.1, 8000)
    with pytest.raises(AudioError, match=rf"clip 2: .*{expect}"):
        A.check_waves([good, good, bad, good])


def test_check_waves_ok() -> None:
    out = A.check_waves([np.ones(10, np.float64) * 0.5, [0.1, -0.2, 0.3]])
    assert [w.dtype for w in out] == [np.float32, np.float32]
    assert out[1].tolist() == pytest.approx([0.1, -0.2, 0.3])
    with pytest.raises(AudioError, match="no clips"):
        A.check_waves([])


# -- prepare_waves ---------------------------------------------------------------------------------
def test_prepare_shape_and_normalisation(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    clips = [*real_clips, _tone(300, 2.5, 8000, 0.05), _tone(700, 0.1, 8000, 0.9)]
    out = A.prepare_waves(clips, cfg)
    assert out.shape == (len(clips), cfg.n_samples) and out.dtype == np.float32
    np.testing.assert_allclose(np.abs(out).max(axis=1), 1.0, rtol=1e-6)
    assert np.isfinite(out).all()
    short = out[-1]  # a 0.1 s clip is zero-padded at the end
    assert np.abs(short[:700]).max() > 0.5 and not short[1000:].any()


def test_prepare_without_normalisation(cfg: FsddConfig) -> None:
    raw = cfg.model_copy(update={"normalize": False})
    out = A.prepare_waves([_tone(440, 0.5, 8000, 0.25)], raw)
    assert abs(np.abs(out).max() - 0.25) < 1e-3


def test_prepare_trims_leading_silence(cfg: FsddConfig) -> None:
    sr = cfg.sample_rate
    clip = np.concatenate([np.zeros(int(0.3 * sr), np.float32), _tone(440, 0.5, sr)])
    out = A.prepare_waves([clip], cfg)[0]
    first = int(np.argmax(np.abs(out) > 0.1))
    # the tone starts within half an analysis window (n_fft / 2 samples = 16 ms), as librosa's trim does
    assert first <= cfg.n_fft // 2, first
    assert first / sr <= cfg.n_fft / 2 / sr
    # the whole 0.5 s tone is kept (every 10 ms of it is loud) and what follows is silent
    kept = np.abs(out[first : first + int(0.48 * sr)]).reshape(-1, 80).max(axis=1)
    assert kept.min() > 0.9
    assert not out[int(0.5 * sr) + cfg.n_fft // 2 :].any()


def test_prepare_trims_like_librosa(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    import librosa

    for clip in real_clips:
        _, (start, _) = librosa.effects.trim(
            clip, top_db=cfg.top_db, frame_length=cfg.n_fft, hop_length=cfg.hop_length
        )
        ours = A.prepare_waves([clip], cfg.model_copy(update={"normalize": False}))[0]
        want = clip[start : start + cfg.n_samples]
        np.testing.assert_array_equal(ours[:100], want[:100])


def test_prepare_batch_equals_single(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    clips = [*real_clips, _tone(523, 1.7, 8000), _tone(200, 0.2, 8000)]
    batch = A.prepare_waves(clips, cfg)
    single = np.stack([A.prepare_waves([c], cfg)[0] for c in clips])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_prepare_batch_equals_single_across_chunks(
    cfg: FsddConfig, real_clips: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = A.prepare_waves(real_clips, cfg)
    monkeypatch.setattr(A, "_CHUNK", 2)  # several chunks, the last one short
    np.testing.assert_allclose(A.prepare_waves(real_clips, cfg), whole, atol=1e-6)


def test_prepare_other_rate(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    import librosa

    at16 = [librosa.resample(c, orig_sr=8000, target_sr=16000) for c in real_clips]
    out = A.prepare_waves(at16, cfg, sample_rate=16000)
    ref = A.prepare_waves(real_clips, cfg)
    assert out.shape == ref.shape == (len(real_clips), cfg.n_samples)
    assert A.spectral_convergence(ref, out, cfg).max() < 0.1
    batch_single = np.stack([A.prepare_waves([c], cfg, sample_rate=16000)[0] for c in at16])
    np.testing.assert_allclose(out, batch_single, atol=1e-6)
    tone = A.prepare_waves([_tone(440, 0.5, 16000)], cfg, sample_rate=16000)[0]
    assert abs(_peak_hz(tone[:4000], 8000) - 440) < 5


# -- log-mel and back ------------------------------------------------------------------------------
def test_logmel_shape_and_range(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    waves = A.prepare_waves(real_clips, cfg)
    mel = A.logmel(waves, cfg)
    assert mel.shape == (len(waves), cfg.n_mels, cfg.n_frames) and mel.dtype == np.float32
    assert mel.min() >= A.DB_FLOOR
    assert mel.max() <= A.DB_CEIL  # peak-normalised speech stays below the ceiling
    assert mel.max() > 0  # and is loud somewhere
    assert (mel[:, :, -1] == A.DB_FLOOR).any()  # the zero padding is at the floor
    one = A.logmel(waves[:1], cfg)
    np.testing.assert_allclose(one[0], mel[0], atol=1e-4)


def test_logmel_equals_librosa(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    """The batched FFT front end computes what librosa's centred STFT and power_to_db compute."""
    import librosa

    waves = A.prepare_waves(real_clips, cfg)
    ref = np.abs(librosa.stft(waves, n_fft=cfg.n_fft, hop_length=cfg.hop_length, center=True))
    np.testing.assert_allclose(A.stft_magnitude(waves, cfg), ref, atol=1e-4)
    basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels)
    ref_db = librosa.power_to_db(np.einsum("mf,nft->nmt", basis, ref**2), ref=1.0, amin=A.AMIN, top_db=None)
    np.testing.assert_allclose(A.logmel(waves, cfg), ref_db, atol=1e-2)


def test_frame_rms_equals_librosa(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    """Per-hop sums of squares give librosa's centred frame RMS, for any clip width."""
    import librosa

    batch, _ = A.pad_batch(real_clips)
    for width in (batch.shape[1], 1000, 777):
        ref = librosa.feature.rms(y=batch[:, :width], frame_length=cfg.n_fft, hop_length=cfg.hop_length)
        ours = A.frame_rms(batch[:, :width], cfg.n_fft, cfg.hop_length)
        np.testing.assert_allclose(ours, ref[:, 0], atol=1e-6)


def test_sounding_frames_bound_the_non_silent_frames(cfg: FsddConfig) -> None:
    waves = np.zeros((4, cfg.n_samples), np.float32)
    waves[1, :1000] = 0.5
    waves[2, :] = 0.5
    waves[3, 3000] = 0.5  # one sample
    count = A.sounding_frames(waves, cfg)
    power = A._stft_power(waves, cfg).sum(axis=2)  # [N, frames]
    heard = np.where(power.any(axis=1), power.shape[1] - (power[:, ::-1] > 0).argmax(axis=1), 0)
    assert count[0] == 0 and count[2] == cfg.n_frames
    np.testing.assert_array_equal(count, heard)


def test_logmel_skips_only_silent_frames(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    """Transforming only the sounding frames changes nothing: the rest are exactly the floor."""
    waves = A.prepare_waves(real_clips, cfg)
    basis = A._mel_basis(cfg)
    full = 10 * np.log10(np.maximum(np.einsum("mf,ntf->nmt", basis, A._stft_power(waves, cfg)), A.AMIN))
    np.testing.assert_allclose(A.logmel(waves, cfg), full, atol=1e-3)


def test_logmel_silence_is_floor(cfg: FsddConfig) -> None:
    mel = A.logmel(np.zeros((2, cfg.n_samples), np.float32), cfg)
    assert (mel == A.DB_FLOOR).all()


def test_unit_round_trip() -> None:
    db = np.linspace(A.DB_FLOOR, A.DB_CEIL, 101, dtype=np.float32)
    unit = A.to_unit(db)
    assert unit.min() == 0.0 and unit.max() == 1.0 and unit.dtype == np.float32
    np.testing.assert_allclose(A.from_unit(unit), db, atol=1e-4)
    # outside the range values clip to the ends
    assert A.to_unit(np.array([A.DB_FLOOR - 50, A.DB_CEIL + 50])).tolist() == [0.0, 1.0]


def test_inverse_logmel_quality_and_determinism(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    waves = A.prepare_waves(real_clips[:3], cfg)
    mel = A.logmel(waves, cfg)
    back = A.inverse_logmel(mel, cfg, seed=0)
    assert back.shape == waves.shape and back.dtype == np.float32
    sc = A.spectral_convergence(waves, back, cfg)
    # the 64-band mel keeps less than the 257 STFT bins hold: its round trip measures about 0.4
    assert (sc < 0.6).all(), sc
    np.testing.assert_array_equal(A.inverse_logmel(mel, cfg, seed=0), back)
    other = A.inverse_logmel(mel, cfg, seed=1)
    assert not np.array_equal(other, back)  # the seed matters
    assert (A.spectral_convergence(waves, other, cfg) < 0.6).all()
    # the spectrogram of the reconstruction is close to the one it came from
    assert np.abs(A.logmel(back, cfg) - mel)[mel > -40].mean() < 6.0


def test_inverse_logmel_skips_the_silent_tail(cfg: FsddConfig) -> None:
    """Griffin-Lim runs only over frames that sound: a 0.2 s tone comes back as a tone, silence
    after it stays exactly zero, and a full-window tone in the same batch is inverted in full."""
    short = np.zeros(cfg.n_samples, np.float32)
    short[:1600] = _tone(500, 0.2, 8000)
    full = _tone(1000, cfg.duration, 8000)
    mel = A.logmel(np.stack([short, full]), cfg)
    back = A.inverse_logmel(mel, cfg, seed=0)
    assert back.shape == (2, cfg.n_samples)
    tail = (1600 // cfg.hop_length + 2 * cfg.n_fft // cfg.hop_length) * cfg.hop_length
    assert (back[0, tail:] == 0).all() and np.abs(back[0, :1600]).max() > 0.1
    assert _peak_hz(back[0, :1600], 8000) == pytest.approx(500, abs=20)
    assert np.abs(back[1, -800:]).max() > 0.1  # sound to the end of the window
    assert _peak_hz(back[1], 8000) == pytest.approx(1000, abs=20)
    assert A.spectral_convergence(short[None], back[:1], cfg)[0] < 0.6


def test_project_keeps_phase_and_sets_magnitude() -> None:
    rng = np.random.default_rng(0)
    angles = (rng.normal(size=(2, 3, 5)) + 1j * rng.normal(size=(2, 3, 5))).astype(np.complex64)
    mag = rng.random((2, 3, 5)).astype(np.float32)
    expect = mag * angles / np.abs(angles)
    out = A._project(angles.copy(), mag)
    assert out.dtype == np.complex64
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-6)


def test_griffinlim_matches_librosa_quality(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    """The in-place fast Griffin-Lim converges as well as librosa's (same momentum and iterations)."""
    import librosa

    waves = A.prepare_waves(real_clips, cfg)
    mag = A.stft_magnitude(waves, cfg)
    ours = A.griffinlim(mag, cfg.n_fft, cfg.hop_length, 32, cfg.n_samples, seed=0)
    ref = librosa.griffinlim(
        mag, n_iter=32, hop_length=cfg.hop_length, n_fft=cfg.n_fft, length=cfg.n_samples, random_state=0
    )
    sc_ours = A.spectral_convergence(waves, ours, cfg).mean()
    assert sc_ours < A.spectral_convergence(waves, ref, cfg).mean() + 0.02


def test_spectral_convergence(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    waves = A.prepare_waves(real_clips[:2], cfg)
    assert np.allclose(A.spectral_convergence(waves, waves, cfg), 0.0)
    assert (A.spectral_convergence(waves, np.zeros_like(waves), cfg) == pytest.approx(1.0))
    assert (A.spectral_convergence(waves, waves[::-1], cfg) > 0.5).all()


# -- write_wav -------------------------------------------------------------------------------------
def test_write_wav_round_trip(tmp_path: Path, cfg: FsddConfig) -> None:
    wave = _tone(440, 0.5, 8000, 0.7)
    path = A.write_wav(tmp_path / "out" / "x.wav", wave)
    info = sf.info(path)
    assert info.samplerate == 8000 and info.channels == 1 and info.subtype == "PCM_16"
    back = A.read_wav(path)
    assert back.shape == wave.shape
    np.testing.assert_allclose(back, wave, atol=1 / 32768 + 1e-6)
    loud = A.write_wav(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.5], np.float32))
    # clipped, not wrapped around
    np.testing.assert_allclose(A.read_wav(loud), [32767 / 32768, -1.0, 0.5], atol=1e-4)
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no temporary files left


# -- time normalisation -----------------------------------------------------------------------------
def test_voiced_frames_follows_the_trimmed_end(cfg: FsddConfig) -> None:
    waves = np.zeros((3, cfg.n_samples), np.float32)
    waves[0, :1000] = 0.5  # 1000 samples: frames 0..8 of hop 128 hold sound
    waves[1, :] = 0.5  # fills the window
    waves[2, :10] = 0.5  # a click: still at least two frames
    frames = A.voiced_frames(waves, cfg)
    assert frames.tolist() == [-(-1000 // cfg.hop_length) + 1, cfg.n_frames, 2]


def test_stretch_frames_identity_and_round_trip(cfg: FsddConfig) -> None:
    rng = np.random.default_rng(0)
    mel = rng.normal(size=(4, 8, cfg.n_frames)).astype(np.float32)
    same = A.stretch_frames(mel, cfg.n_frames, cfg.n_frames, cfg.n_frames)
    np.testing.assert_allclose(same, mel, atol=1e-6)
    # a smooth ramp of 20 frames stretched to the window and back is the ramp again
    ramp = np.tile(np.linspace(-60, 0, 20, dtype=np.float32), (2, 8, 1))
    ramp = np.pad(ramp, ((0, 0), (0, 0), (0, cfg.n_frames - 20)), constant_values=A.DB_FLOOR)
    wide = A.stretch_frames(ramp, np.array([20, 20]), cfg.n_frames, cfg.n_frames)
    assert wide[0, 0, 0] == pytest.approx(-60) and wide[0, 0, -1] == pytest.approx(0)
    back = A.stretch_frames(wide, cfg.n_frames, np.array([20, 20]), cfg.n_frames)
    np.testing.assert_allclose(back[..., :20], ramp[..., :20], atol=1e-4)
    assert (back[..., 20:] == A.DB_FLOOR).all()


def test_frames_first_layout_is_the_transpose(cfg: FsddConfig, real_clips: list[np.ndarray]) -> None:
    waves = A.prepare_waves(real_clips, cfg)
    mel = A.logmel(waves, cfg)
    by_frame = A.logmel(waves, cfg, frames_first=True)
    np.testing.assert_array_equal(by_frame, np.swapaxes(mel, 1, 2))
    src = A.voiced_frames(waves, cfg)
    stretched = A.stretch_frames(by_frame, src, 40, cfg.n_frames, frames_first=True)
    np.testing.assert_array_equal(stretched, np.swapaxes(A.stretch_frames(mel, src, 40, cfg.n_frames), 1, 2))
    assert (stretched[:, 40:] == A.DB_FLOOR).all()


def test_time_normalisation_aligns_slow_and_fast_words() -> None:
    """A two-tone 'word' (400 Hz, then 1500 Hz) said fast (0.3 s) and slowly (0.6 s): normalised,
    the switch falls on the same frame (mid-window) in both; raw, it falls twice as late."""
    import librosa

    from mmga_helpers.core.config import config_from_dict, profile_dict
    from mmga_helpers.modalities.features import waves_to_unit_logmel

    def word(seconds: float) -> np.ndarray:
        return np.concatenate([_tone(400, seconds / 2, 8000), _tone(1500, seconds / 2, 8000)])

    def switch_frames(normalize: bool) -> np.ndarray:
        d = profile_dict("quick")
        d["data"]["fsdd"]["time_normalize"] = normalize
        cfg = config_from_dict(d)
        x, _, _ = waves_to_unit_logmel([word(0.3), word(0.6)], cfg)
        mel_hz = librosa.mel_frequencies(cfg.data.fsdd.n_mels + 2, fmax=4000)[1:-1]
        low, high = np.abs(mel_hz - 400).argmin(), np.abs(mel_hz - 1500).argmin()
        return (x[:, high, :, 0] > x[:, low, :, 0]).argmax(axis=1)  # first frame where 1500 Hz wins

    fast, slow = switch_frames(normalize=False)
    assert slow > 1.7 * fast
    fast, slow = switch_frames(normalize=True)
    assert abs(int(fast) - int(slow)) <= 2
    assert 25 <= fast <= 37  # about the middle of the 63 frames


def test_expand_contrast_deepens_each_spectrogram_below_its_own_peak():
    from mmga_helpers.modalities.features import expand_contrast

    db = np.array([[[10.0, 0.0], [-20.0, -79.0]], [[-10.0, -30.0], [-40.0, -50.0]]], np.float32)
    assert expand_contrast(db, 1.0) is db
    out = expand_contrast(db, 2.0)
    np.testing.assert_allclose(out[0], [[10.0, -10.0], [-50.0, A.DB_FLOOR]])  # 89 dB down: floored
    np.testing.assert_allclose(out[1], [[-10.0, -50.0], [-70.0, A.DB_FLOOR]])  # its own peak, -10
