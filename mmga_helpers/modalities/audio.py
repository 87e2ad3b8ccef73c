"""Audio front end: WAV in, fixed-length 8 kHz clips, log-mel spectrograms, and back to waveforms.

Everything past reading a file works on whole batches: clips are zero-padded into one matrix (with
their true lengths kept) so that resampling, silence trimming, cropping and the spectrograms are
array operations, not loops over clips. The inverse (log-mel to waveform by Griffin-Lim) lets a
generated spectrogram be heard; it is seeded so that the same call gives the same sound.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile as sf

from mmga_helpers.core.config import FsddConfig
from mmga_helpers.core.io import atomic_path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "mmga-numba-cache"))
import librosa

# Log-mel values are decibels relative to full scale, floored at DB_FLOOR: a fixed range (not a
# per-clip one) so that a decoder's output means the same loudness for every clip.
DB_FLOOR = -80.0
DB_CEIL = 24.0  # peak-normalised clips reach about +18 dB in a mel band; a full-scale sine +20
AMIN = 10 ** (DB_FLOOR / 10)
SILENCE_PEAK = 1e-4  # a clip whose peak is below this (-80 dBFS) has nothing to hear
_CHUNK = 512  # clips per vectorised block: bounds memory on long batches
_GL_BLOCK = 32  # clips per Griffin-Lim block: sorted by length, so each block is cropped tightly


class AudioError(ValueError):
    """An audio input cannot be used; the message names the item and why."""


def wav_shortfall(raw: bytes) -> tuple[int, int] | None:
    """``(promised, present)`` bytes of samples when a RIFF/WAVE file's data chunk is cut short
    (libsndfile then reads what is there without a word), else None. Streamed files that promise
    0 or 0xFFFFFFFF bytes are not judged."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(raw):
        size = int.from_bytes(raw[offset + 4 : offset + 8], "little")
        if raw[offset : offset + 4] == b"data":
            present = len(raw) - offset - 8
            return (size, present) if 0 < size != 0xFFFFFFFF and present < size else None
        offset += 8 + size + (size & 1)
    return None


def read_wav(source: str | Path | bytes, target_sr: int = 8000) -> np.ndarray:
    """Read any PCM/float WAV (8-32 bit, mono or stereo, any rate) as mono float32 at ``target_sr``;
    a file cut short (a broken download or copy) is refused, not read in part."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise AudioError(f"{name}: file not found")
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    short = wav_shortfall(raw)
    if short is not None:
        raise AudioError(
            f"{name}: truncated WAV (its header promises {short[0]} bytes of samples, the file holds "
            f"{short[1]}); copy or download it again"
        )
    try:
        wave, sr = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(
            f"{name}: not a readable WAV file ({err}); convert it to WAV (PCM or float)"
        ) from None
    wave = wave.mean(axis=1)  # stereo (or more channels) to mono
    if wave.size == 0:
        raise AudioError(f"{name}: the file holds no samples")
    if sr != target_sr:
        wave = librosa.resample(wave, orig_sr=sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)
    return wave


def check_waves(waves: Sequence[np.ndarray]) -> list[np.ndarray]:
    """1-D finite float32 arrays, non-empty and not silent; a ValueError names the first bad item."""
    if len(waves) == 0:
        raise AudioError("no clips given")
    out = []
    for i, w in enumerate(waves):
        arr = np.asarray(w)
        if arr.ndim != 1:
            raise AudioError(f"clip {i}: expected a 1-D waveform, got shape {arr.shape}")
        if arr.size == 0:
            raise AudioError(f"clip {i}: empty (no samples); drop it or pass a recording")
        if np.issubdtype(arr.dtype, np.integer):  # PCM samples: scale to [-1, 1]
            arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
        elif not np.issubdtype(arr.dtype, np.floating):
            raise AudioError(f"clip {i}: dtype {arr.dtype} is not numeric (expected a real-valued waveform)")
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise AudioError(f"clip {i}: contains NaN or inf; drop that clip or fix its samples")
        if np.abs(arr).max() < SILENCE_PEAK:
            raise AudioError(
                f"clip {i}: silent (peak below {SILENCE_PEAK:g}); nothing to hear, "
                "drop it or pass a louder clip"
            )
        out.append(arr)
    return out


def pad_batch(waves: Sequence[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad clips into one ``[N, width]`` matrix; returns it and the true lengths."""
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    width = int(width or lengths.max())
    batch = np.zeros((len(waves), width), dtype=np.float32)
    for row, w in zip(batch, waves, strict=True):  # a copy per clip: the only per-clip step
        row[: min(len(w), width)] = w[:width]
    return batch, lengths


def frame_rms(batch: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """``[N, width]`` -> ``[N, 1 + width // hop]`` RMS of centred, zero-padded frames, as
    ``librosa.feature.rms(center=True)`` computes them; when ``hop`` divides ``frame_length``, from
    per-hop sums of squares (float64) added ``frame_length // hop`` at a time, not frame by frame."""
    if frame_length % hop:
        return librosa.feature.rms(y=batch, frame_length=frame_length, hop_length=hop, center=True)[:, 0, :]
    n, width = batch.shape
    k, pad = frame_length // hop, frame_length // 2
    n_out = 1 + width // hop
    padded = np.zeros((n, (n_out + k - 1) * hop), dtype=np.float64)
    padded[:, pad : pad + width] = batch
    np.square(padded, out=padded)
    sums = padded.reshape(n, -1, hop).sum(axis=2)  # [N, blocks]
    power = sums[:, :n_out].copy()
    for j in range(1, k):
        power += sums[:, j : j + n_out]
    return np.sqrt(power / frame_length)


def trim_and_fix(batch: np.ndarray, lengths: np.ndarray, cfg: FsddConfig) -> np.ndarray:
    """Trim leading/trailing silence (``top_db`` below each clip's peak), then crop or zero-pad to
    ``duration``; start-aligned, as ``librosa.effects.trim`` does, but for the whole batch at once.
    Clips start on a frame boundary, so the crop gathers whole ``hop``-sample blocks."""
    n = cfg.n_samples
    hop = cfg.hop_length
    rms = frame_rms(batch, cfg.n_fft, hop)
    frames_in_clip = (lengths[:, None] // hop + 1) > np.arange(rms.shape[1])[None, :]
    db = librosa.amplitude_to_db(rms, ref=1.0, amin=1e-10, top_db=None)
    db = np.where(frames_in_clip, db, -np.inf)
    loud = db > (db.max(axis=1, keepdims=True) - cfg.top_db)
    first = loud.argmax(axis=1)
    last = rms.shape[1] - 1 - loud[:, ::-1].argmax(axis=1)
    end = np.minimum((last + 1) * hop, lengths)
    blocks = -(-n // hop)
    width = batch.shape[1]
    padded = np.zeros((len(batch), (-(-width // hop) + blocks + 1) * hop), dtype=np.float32)
    padded[:, :width] = batch
    rows = np.arange(len(batch))[:, None]
    picked = padded.reshape(len(batch), -1, hop)[rows, first[:, None] + np.arange(blocks)]
    out = np.ascontiguousarray(picked.reshape(len(batch), -1)[:, :n])
    out[np.arange(n)[None, :] >= (end - first * hop)[:, None]] = 0.0
    return out


def prepare_waves(waves: Sequence[np.ndarray], cfg: FsddConfig, sample_rate: int | None = None) -> np.ndarray:
    """Clips at any rate -> ``[N, n_samples]`` float32 at ``cfg.sample_rate``: resampled, trimmed,
    fixed in length and (when ``cfg.normalize``) peak-normalised."""
    waves = check_waves(waves)
    sr = sample_rate or cfg.sample_rate
    out = np.empty((len(waves), cfg.n_samples), dtype=np.float32)
    for lo in range(0, len(waves), _CHUNK):
        batch, lengths = pad_batch(waves[lo : lo + _CHUNK])
        if sr != cfg.sample_rate:
            batch = librosa.resample(
                batch, orig_sr=sr, target_sr=cfg.sample_rate, res_type="soxr_hq", axis=-1
            )
            lengths = np.ceil(lengths * cfg.sample_rate / sr).astype(np.int64)
        out[lo : lo + len(batch)] = trim_and_fix(batch.astype(np.float32), lengths, cfg)
    if cfg.normalize:
        peak = np.abs(out).max(axis=1, keepdims=True)
        out /= np.maximum(peak, SILENCE_PEAK)
    return out


def _mel_basis(cfg: FsddConfig) -> np.ndarray:
    """The ``[n_mels, 1 + n_fft/2]`` mel filter bank (cached; read-only)."""
    return _mel_matrices(cfg.sample_rate, cfg.n_fft, cfg.n_mels)[0]


def _mel_pinv(cfg: FsddConfig) -> np.ndarray:
    """The filter bank's pseudo-inverse ``[1 + n_fft/2, n_mels]``, float32 (cached; read-only)."""
    return _mel_matrices(cfg.sample_rate, cfg.n_fft, cfg.n_mels)[1]


@functools.lru_cache(maxsize=8)
def _mel_matrices(sample_rate: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    pinv = np.linalg.pinv(basis).astype(np.float32)
    basis.flags.writeable = pinv.flags.writeable = False
    return basis, pinv


def stft_magnitude(batch: np.ndarray, cfg: FsddConfig) -> np.ndarray:
    """``[N, n_samples]`` -> ``[N, 1 + n_fft/2, frames]`` magnitudes, as ``librosa.stft`` (centred,
    zero-padded, Hann) computes them."""
    return np.sqrt(np.swapaxes(_stft_power(np.asarray(batch, dtype=np.float32), cfg), 1, 2))


def _stft_power(batch: np.ndarray, cfg: FsddConfig) -> np.ndarray:
    """``[N, frames, bins]`` power spectra: one batched real FFT over strided frame views."""
    pad = cfg.n_fft // 2
    padded = np.pad(batch, ((0, 0), (pad, pad)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft, axis=-1)[:, :: cfg.hop_length]
    spec = scipy.fft.rfft(np.multiply(frames, _hann(cfg.n_fft), dtype=np.float32), axis=-1, workers=-1)
    return spec.real**2 + spec.imag**2


def _hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window librosa's STFT uses; shared by the front end and Griffin-Lim."""
    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)


def logmel(batch: np.ndarray, cfg: FsddConfig, frames_first: bool = False) -> np.ndarray:
    """``[N, n_samples]`` -> ``[N, n_mels, frames]`` log-mel power in dB, floored at ``DB_FLOOR``
    (``[N, frames, n_mels]`` with ``frames_first``, the layout it is computed in: no transpose).

    Only frames that can hold sound are transformed (:func:`sounding_frames`): those past a clip's
    last non-zero sample have zero power, i.e. exactly the floor. The kept frames of a block are
    gathered into one ``[M, n_fft]`` matrix: one real FFT and one GEMM with the mel basis."""
    batch = np.asarray(batch, dtype=np.float32)
    pad = cfg.n_fft // 2
    basis_t = np.ascontiguousarray(_mel_basis(cfg).T, dtype=np.float32)  # [bins, mels]
    # dB of silence, exactly: float32 log10 of AMIN gives -80.00001 on CPUs whose numpy takes the
    # AVX-512 path (seen on this project's machine), -80.0 on others
    floor = np.float32(DB_FLOOR)
    by_frame = np.full((len(batch), cfg.n_frames, cfg.n_mels), floor, dtype=np.float32)
    keep = np.arange(cfg.n_frames)[None, :] < sounding_frames(batch, cfg)[:, None]  # [N, frames]
    for lo in range(0, len(batch), _CHUNK):
        padded = np.pad(batch[lo : lo + _CHUNK], ((0, 0), (pad, pad)))
        frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft, axis=-1)[:, :: cfg.hop_length]
        sel = frames[keep[lo : lo + _CHUNK]]  # [M, n_fft], a copy
        sel *= _hann(cfg.n_fft)
        power = np.abs(scipy.fft.rfft(sel, axis=-1, workers=-1, overwrite_x=True))
        np.square(power, out=power)
        mel = power @ basis_t  # one GEMM
        np.maximum(mel, AMIN, out=mel)
        np.log10(mel, out=mel)
        mel *= 10.0
        np.maximum(mel, floor, out=mel)
        by_frame[lo : lo + _CHUNK][keep[lo : lo + _CHUNK]] = mel
    return by_frame if frames_first else np.ascontiguousarray(np.swapaxes(by_frame, 1, 2))


def sounding_frames(batch: np.ndarray, cfg: FsddConfig) -> np.ndarray:
    """Per clip of ``[N, n_samples]``, how many leading STFT frames (centred, ``n_fft`` wide) reach
    a non-zero sample: every later frame is all zeros. 0 for an all-zero clip."""
    nonzero = np.asarray(batch) != 0
    end = np.where(nonzero.any(axis=1), nonzero.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0)
    pad = cfg.n_fft // 2
    count = -(-(end + pad) // cfg.hop_length)  # frames t with t * hop - pad < end
    return np.where(end > 0, np.minimum(count, cfg.n_frames), 0).astype(np.int64)


def voiced_frames(waves: np.ndarray, cfg: FsddConfig) -> np.ndarray:
    """Frames of each prepared clip that hold sound: clips are start-aligned and zero after their
    trimmed end, so the last non-zero sample marks it. At least 2, at most ``cfg.n_frames``."""
    nonzero = np.asarray(waves) != 0
    end = np.where(nonzero.any(axis=1), nonzero.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0)
    return np.clip(-(-end // cfg.hop_length) + 1, 2, cfg.n_frames).astype(np.int64)


def stretch_frames(
    mel: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    width: int,
    fill: float = DB_FLOOR,
    frames_first: bool = False,
) -> np.ndarray:
    """Per clip, map frames ``[0, src_i)`` linearly onto ``[0, dst_i)`` of an output ``width``
    frames wide (``fill`` beyond): a time stretch of the spectrogram that keeps the pitch.

    With ``dst = width`` it time-normalises (every word fills the window, so the autoencoder sees
    the digit, not how fast it was said); with ``src = width`` it restores a natural length.
    ``frames_first``: ``mel`` and the result are ``[N, frames, mels]`` (no transposes)."""
    mel = np.asarray(mel, dtype=np.float32)
    n = len(mel)
    src = np.broadcast_to(np.asarray(src, dtype=np.int64), (n,))[:, None]
    dst = np.broadcast_to(np.asarray(dst, dtype=np.int64), (n,))[:, None]
    j = np.arange(width)[None, :]
    pos = j * (src - 1) / np.maximum(dst - 1, 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    hi = np.minimum(lo + 1, src - 1)
    w = (pos - lo).astype(np.float32)[..., None]
    by_frame = mel if frames_first else np.swapaxes(mel, 1, 2)  # [N, frames, mels]: gather whole frames
    by_frame = np.ascontiguousarray(by_frame)
    rows = np.arange(n)[:, None]
    a, out = by_frame[rows, lo], by_frame[rows, hi]
    out -= a  # a + w (b - a), in place
    out *= w
    out += a
    out[j >= dst] = np.float32(fill)
    return out if frames_first else np.ascontiguousarray(np.swapaxes(out, 1, 2))


def to_unit(logmel_db: np.ndarray) -> np.ndarray:
    """Map dB to [0, 1] for the autoencoders (0 = ``DB_FLOOR``, 1 = ``DB_CEIL``)."""
    return np.clip((logmel_db - DB_FLOOR) / (DB_CEIL - DB_FLOOR), 0.0, 1.0).astype(np.float32)


def from_unit(unit: np.ndarray) -> np.ndarray:
    return (np.asarray(unit, dtype=np.float32) * (DB_CEIL - DB_FLOOR) + DB_FLOOR).astype(np.float32)


def inverse_logmel(
    logmel_db: np.ndarray, cfg: FsddConfig, seed: int = 0, n_iter: int | None = None
) -> np.ndarray:
    """``[N, n_mels, frames]`` dB -> ``[N, n_samples]`` waveforms: mel to linear magnitude by the
    basis' pseudo-inverse (clipped at zero), then Griffin-Lim with a seeded initial phase.

    Griffin-Lim runs only over the frames that hold sound (plus the window's overlap): clips are
    sorted by that length and inverted in small blocks (:data:`_GL_BLOCK` clips) cropped to the
    longest of each block, so a short word costs less than a full window. What lies beyond is
    silence, as in the input."""
    logmel_db = np.asarray(logmel_db, dtype=np.float32)
    power = librosa.db_to_power(logmel_db) * (logmel_db > DB_FLOOR + 1e-3)
    inv = _mel_pinv(cfg)
    n_frames = power.shape[2]
    sounding = power.max(axis=1) > 0
    active = np.where(sounding.any(axis=1), n_frames - sounding[:, ::-1].argmax(axis=1), 1)
    margin = cfg.n_fft // cfg.hop_length  # frames whose windows still overlap the last sound
    order = np.argsort(active, kind="stable")
    out = np.zeros((len(power), cfg.n_samples), dtype=np.float32)
    for lo in range(0, len(power), _GL_BLOCK):
        idx = order[lo : lo + _GL_BLOCK]
        t = int(min(n_frames, active[idx].max() + margin))
        length = cfg.n_samples if t == n_frames else min(cfg.n_samples, (t - 1) * cfg.hop_length)
        lin = np.einsum("fm,nmt->nft", inv, power[idx, :, :t], optimize=True)
        mag = np.sqrt(np.maximum(lin, 0.0))
        out[idx, :length] = griffinlim(
            mag, cfg.n_fft, cfg.hop_length, n_iter or cfg.griffin_lim_iters, length, seed=seed
        )
    return out


def _ola_ops(n_fft: int, hop: int, n_frames: int):
    """Batched STFT / inverse STFT (centred, zero-padded, Hann) as ``librosa`` computes them, with
    overlap-add done by ``n_fft // hop`` shifted slice additions instead of a loop over frames."""
    win = _hann(n_fft)
    k = n_fft // hop
    total = n_fft + hop * (n_frames - 1)
    wss = np.zeros((n_frames + k - 1, hop), np.float32)
    sq = (win**2).reshape(k, hop)
    for j in range(k):
        wss[j : j + n_frames] += sq[j]
    inv_wss = (1.0 / np.where(wss > 1e-8, wss, 1.0)).reshape(-1).astype(np.float32)

    def stft(y: np.ndarray) -> np.ndarray:
        frames = np.multiply(np.lib.stride_tricks.sliding_window_view(y, n_fft, axis=-1)[:, ::hop], win)
        return scipy.fft.rfft(frames, axis=-1, workers=-1, overwrite_x=True)

    def istft(spec: np.ndarray) -> np.ndarray:
        frames = scipy.fft.irfft(spec, n=n_fft, axis=-1, workers=-1).astype(np.float32, copy=False)
        frames *= win
        n, t = frames.shape[:2]
        frames = frames.reshape(n, t, k, hop)
        out = np.empty((n, t + k - 1, hop), np.float32)
        out[:, :t] = frames[:, :, 0]
        out[:, t:] = 0.0
        for j in range(1, k):
            out[:, j : j + t] += frames[:, :, j]
        out = out.reshape(n, -1)
        out *= inv_wss
        return out

    assert total == inv_wss.size
    return stft, istft


def _project(angles: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """``mag * angles / |angles|`` (a magnitude given the phase of ``angles``), in place."""
    scale = np.abs(angles)
    scale += 1e-16
    np.divide(mag, scale, out=scale)
    return np.multiply(angles, scale, out=angles)


def griffinlim(
    mag: np.ndarray, n_fft: int, hop: int, n_iter: int, length: int, *, seed: int = 0, momentum: float = 0.99
) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al.) on a batch ``[N, 1 + n_fft/2, frames]`` of magnitudes,
    seeded initial phase; float32/complex64 with in-place updates (two buffers, no per-iteration
    temporaries beyond the FFTs'). Falls back to librosa when ``hop`` does not divide ``n_fft``."""
    if n_fft % hop:
        return librosa.griffinlim(
            mag, n_iter=n_iter, hop_length=hop, n_fft=n_fft, length=length, random_state=seed, center=True
        )
    spec = np.ascontiguousarray(np.transpose(mag, (0, 2, 1)), dtype=np.float32)
    stft, istft = _ola_ops(n_fft, hop, spec.shape[1])
    rng = np.random.default_rng(seed)
    x = np.exp(2j * np.pi * rng.random(spec.shape)).astype(np.complex64)
    x *= spec  # the target magnitudes with random phases
    prev = np.zeros_like(x)
    decay = -momentum / (1 + momentum)
    for _ in range(n_iter):  # iterations, not samples: each step is one batched FFT pass
        rebuilt = stft(istft(x))
        prev *= decay  # accelerated step: rebuilt - momentum / (1 + momentum) * previous rebuilt
        prev += rebuilt
        x, prev = _project(prev, spec), rebuilt
    pad = n_fft // 2
    return istft(x)[:, pad : pad + length]


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray, cfg: FsddConfig) -> np.ndarray:
    """Per clip ``||S - S_hat||_F / ||S||_F`` on STFT magnitudes (0 is perfect; phase-blind)."""
    ref = stft_magnitude(np.asarray(reference, np.float32), cfg)
    est = stft_magnitude(np.asarray(estimate, np.float32), cfg)
    num = np.linalg.norm((ref - est).reshape(len(ref), -1), axis=1)
    den = np.maximum(np.linalg.norm(ref.reshape(len(ref), -1), axis=1), 1e-12)
    return num / den


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int = 8000) -> Path:
    """16-bit PCM WAV, written atomically."""
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(tmp, np.clip(wave, -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)
