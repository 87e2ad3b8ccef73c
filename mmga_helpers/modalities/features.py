"""Model-ready arrays for each modality, cached on disk by a fingerprint of what made them.

Images become float32 ``[N, 28, 28, 1]`` in [0, 1]; clips become log-mel spectrograms mapped to
[0, 1] (``audio.to_unit``) of shape ``[N, n_mels, frames, 1]``. The FSDD features are cached as
``.npz`` under ``outputs/<profile>/cache`` (never in the read-only data folder) keyed by the
``data.fsdd`` settings (and an own corpus' manifest), so a notebook rerun does not redo the front end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmga_helpers.core.config import Config
from mmga_helpers.core.io import read_npz, write_npz
from mmga_helpers.modalities import audio
from mmga_helpers.modalities.corpus import load_audio, open_source
from mmga_helpers.modalities.data import FSDD, FsddSplit, Split, load_mnist
from mmga_helpers.modalities.digits import normalize_digits

DEFAULT_FRAMES = 25  # frames (hop 128 at 8 kHz) of a typical voiced FSDD training clip


def images_to_unit(images: np.ndarray, normalize: bool = True) -> np.ndarray:
    """uint8 or float ``[N, 28, 28]`` -> float32 ``[N, 28, 28, 1]`` in [0, 1]; refuses NaN/inf."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape [N, 28, 28] (or [N, 28, 28, 1]), got {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / (255.0 if normalize else 1.0)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        bad = ~np.isfinite(out).reshape(len(out), -1).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"image {first}: contains NaN or inf; drop that image or fix its pixels")
        if out.max(initial=0) > 1.0 + 1e-6:  # float images on a 0-255 scale
            out = out / 255.0
    else:
        raise ValueError(f"images must be uint8 or float, got dtype {arr.dtype}")
    return np.clip(out, 0.0, 1.0)[..., None]


def mnist_split(cfg: Config, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """``(x, labels)`` for a split, limited by ``data.mnist.train_limit``/``test_limit`` (first N)."""
    images, labels = load_mnist(split)
    limit = cfg.data.mnist.train_limit if split == "train" else cfg.data.mnist.test_limit
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if cfg.data.mnist.standardize:
        return normalize_digits(images)[..., None], labels
    return images_to_unit(images, cfg.data.mnist.normalize), labels


@dataclass(frozen=True)
class AudioSet:
    """Model-ready FSDD clips: unit log-mels, the fixed-length waves they came from, and metadata."""

    x: np.ndarray  # [N, n_mels, frames, 1] in [0, 1]
    waves: np.ndarray  # [N, n_samples] prepared waveforms
    digits: np.ndarray
    speakers: np.ndarray
    indices: np.ndarray
    frames: np.ndarray | None = None  # voiced frames of each clip (its natural length)

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, selection: np.ndarray) -> AudioSet:
        parts = (self.x, self.waves, self.digits, self.speakers, self.indices, self.frames)
        return AudioSet(*(None if a is None else a[selection] for a in parts))


def waves_to_unit_logmel(
    waves: list[np.ndarray] | np.ndarray, cfg: Config, sample_rate: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw clips at any rate -> (unit log-mel ``[N, n_mels, frames, 1]``, prepared waves, voiced
    frames per clip). With ``data.fsdd.time_normalize`` each clip's voiced frames fill the window."""
    fs = cfg.data.fsdd
    prepared = audio.prepare_waves(list(waves), fs, sample_rate)
    by_frame = audio.logmel(prepared, fs, frames_first=True)  # [N, frames, mels]: one transpose, last
    voiced = audio.voiced_frames(prepared, fs)
    if fs.time_normalize:
        by_frame = audio.stretch_frames(by_frame, voiced, fs.n_frames, fs.n_frames, frames_first=True)
    unit = np.ascontiguousarray(np.swapaxes(audio.to_unit(by_frame), 1, 2))
    return unit[..., None], prepared, voiced


def expand_contrast(db: np.ndarray, factor: float) -> np.ndarray:
    """Each log-mel's distance below its own peak multiplied by ``factor`` (2: the power relative
    to the peak squared), floored at :data:`~mmga_helpers.modalities.audio.DB_FLOOR`.

    A decoder trained on squared error answers with the mean of what it cannot tell apart, which
    fills the valleys between harmonics and formants and the pauses; deepening them again makes
    decoded speech clearer to a listener (measured in the book's method page)."""
    if factor == 1.0:
        return db
    peak = db.max(axis=(-2, -1), keepdims=True)
    return np.clip(peak + factor * (db - peak), audio.DB_FLOOR, audio.DB_CEIL)


def unit_logmel_to_waves(
    unit: np.ndarray, cfg: Config, frames: np.ndarray | None = None, seed: int = 0, *, contrast: float = 1.0
) -> np.ndarray:
    """Unit log-mels ``[N, n_mels, frames(, 1)]`` -> waveforms ``[N, n_samples]``. Under time
    normalisation a clip is first stretched back to ``frames`` (its natural length; the median
    training length when not given), so what is heard is spoken at a normal rate. ``contrast``
    (for decoded spectrograms: ``generation.audio_contrast``) deepens them first
    (:func:`expand_contrast`); real spectrograms are inverted as they are."""
    fs = cfg.data.fsdd
    unit = np.asarray(unit, dtype=np.float32)
    db = expand_contrast(audio.from_unit(unit[..., 0] if unit.ndim == 4 else unit), contrast)
    if fs.time_normalize:
        frames = np.full(len(db), DEFAULT_FRAMES) if frames is None else np.asarray(frames)
        db = audio.stretch_frames(db, fs.n_frames, np.clip(frames, 2, fs.n_frames), fs.n_frames)
    return audio.inverse_logmel(db, fs, seed=seed)


def fsdd_split(cfg: Config, split: FsddSplit, cache_dir: Path | None = None) -> AudioSet:
    """The spoken digits (FSDD, or one's own corpus: :mod:`~mmga_helpers.modalities.corpus`) as an
    :class:`AudioSet`, from the cache when the front-end settings and the clips are unchanged (an own
    corpus is checked against its manifest first; the cache is keyed by that manifest too)."""
    source = open_source(cfg.data.fsdd)
    cache = None
    if cache_dir is not None:
        key = cfg.fingerprint("data.fsdd") + ("" if source is None else f"_{source.digest}")
        cache = Path(cache_dir) / f"fsdd_{split}_{key}.npz"
        if cache.is_file():
            d = read_npz(cache)
            return AudioSet(d["x"], d["waves"], d["digits"], d["speakers"], d["indices"], d["frames"])
    data: FSDD = load_audio(cfg.data.fsdd, split, source)
    x, waves, frames = waves_to_unit_logmel(data.waves, cfg, data.sample_rate)
    out = AudioSet(x, waves, data.digits, data.speakers.astype(str), data.indices, frames)
    if cache is not None:
        write_npz(
            cache, x=out.x, waves=out.waves, digits=out.digits, speakers=out.speakers,
            indices=out.indices, frames=frames,
        )
    return out
