"""A person's own files through a finished run: ``mmga see`` (clips -> PNG) and ``mmga hear``
(pictures -> WAV).

Each input is read and checked on its own, so one bad file (not audio, silent, ten minutes long,
a damaged PNG, a blank drawing) is reported in one line while the others of the batch are still
generated; the good ones then go through the public API in one batch. Every output is written
atomically: a file is either complete or absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from mmga_helpers.core.io import write_with
from mmga_helpers.display.explorer import png_bytes
from mmga_helpers.generation import MMGA
from mmga_helpers.modalities import audio, digits
from mmga_helpers.modalities.digits import DrawingError

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
MAX_SECONDS = 30.0  # a spoken digit lasts about a second; longer recordings are refused, not cut
RATE = 8000
PNG_SCALE = 4  # a 28 x 28 image is written 112 x 112, dark ink on white, to be looked at


@dataclass
class Outcome:
    """One input file: what was written from it and the path it took (or why it failed)."""

    input: str
    output: str | None = None
    cluster: int | None = None  # the input's cluster in its own modality
    drawn: int | None = None  # the other modality's cluster the brain drew for it
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def gather(paths: Iterable[str | Path], suffixes: frozenset[str]) -> tuple[list[Path], list[Path]]:
    """The files to process: files named as they are, folders replaced by their files (sorted,
    not recursive, hidden ones left out) whose suffix fits. Returns ``(files, skipped)``, where
    ``skipped`` are the folders' other files."""
    files: list[Path] = []
    skipped: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            for child in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
                (files if child.suffix.lower() in suffixes else skipped).append(child)
        else:
            files.append(path)
    return files, skipped


def read_clip(path: Path) -> np.ndarray:
    """A recording in any format libsndfile reads (WAV, FLAC, OGG, AIFF), any rate, mono or
    stereo -> mono float32 at 8 kHz; refuses a missing, non-audio, over-long or silent file."""
    if not path.is_file():
        raise audio.AudioError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        raise audio.AudioError(
            f"{path}: not a readable audio file; give a WAV, FLAC or OGG recording"
        ) from None
    if info.duration > MAX_SECONDS:
        raise audio.AudioError(
            f"{path}: {info.duration:.0f} s long; a spoken digit takes about a second: trim the "
            f"recording to the digit (at most {MAX_SECONDS:.0f} s)"
        )
    wave = audio.read_wav(path, RATE)
    if np.abs(wave).max(initial=0.0) < audio.SILENCE_PEAK:
        raise audio.AudioError(f"{path}: silent (nothing above -80 dBFS); record the digit again, louder")
    return wave


def read_picture(path: Path) -> np.ndarray:
    """A PNG, JPEG or other picture of any size and colour -> its pixels (grey, or RGBA where it
    has transparency); refuses a missing, damaged, huge or blank one, naming the file."""
    if not path.is_file():
        raise DrawingError(f"{path}: file not found")
    try:
        pixels = digits.read_picture(path)
        digits.normalize_one(pixels)  # a blank picture is refused here, before the batch
    except DrawingError as err:
        raise DrawingError(f"{path}: {err}") from None
    return pixels


def _targets(files: Sequence[Path], out_dir: Path, suffix: str) -> list[Path]:
    """One output path per input, named after it; repeated names get ``_2``, ``_3``, ..."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        n = seen[f.stem] = seen.get(f.stem, 0) + 1
        out.append(out_dir / (f"{f.stem}{suffix}" if n == 1 else f"{f.stem}_{n}{suffix}"))
    return out


def _read_all(files: Sequence[Path], reader, errors: tuple[type[Exception], ...]):
    outcomes = [Outcome(str(f)) for f in files]
    good, items = [], []
    for i, f in enumerate(files):  # reading and checking are per file: a bad one stops nothing
        try:
            items.append(reader(f))
            good.append(i)
        except errors as err:
            outcomes[i].error = str(err)
    return outcomes, good, items


def see_files(
    m: MMGA, files: Sequence[Path], out_dir: Path, *, seed: int | None = None, one_voice: bool = False
) -> list[Outcome]:
    """Each clip -> ``<out_dir>/<name>.png``: the image the run sees for it (``one_voice``: the
    readable clips are one speaker's, and vote as in :meth:`MMGA.see`)."""
    outcomes, good, waves = _read_all(files, read_clip, (audio.AudioError,))
    if good:
        traced = m.see_traced(waves, sample_rate=RATE, seed=seed, one_voice=one_voice)
        paths = _targets([files[i] for i in good], out_dir, ".png")
        for k, i in enumerate(good):
            data = png_bytes(traced.outputs[k], PNG_SCALE)
            write_with(paths[k], lambda p, d=data: Path(p).write_bytes(d), suffix=".png")
            o = outcomes[i]
            o.output, o.cluster, o.drawn = str(paths[k]), int(traced.source[k]), int(traced.target[k])
    return outcomes


def hear_files(m: MMGA, files: Sequence[Path], out_dir: Path, *, seed: int | None = None) -> list[Outcome]:
    """Each picture -> ``<out_dir>/<name>.wav``: the word the run hears for it, at 8 kHz."""
    outcomes, good, pictures = _read_all(files, read_picture, (DrawingError,))
    if good:
        traced = m.hear_traced(pictures, seed=seed)
        paths = _targets([files[i] for i in good], out_dir, ".wav")
        for k, i in enumerate(good):
            audio.write_wav(paths[k], traced.outputs[k], RATE)
            o = outcomes[i]
            o.output, o.cluster, o.drawn = str(paths[k]), int(traced.source[k]), int(traced.target[k])
    return outcomes
