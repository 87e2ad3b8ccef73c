"""An independent listener: a stock speech recogniser that nobody in this project trained.

PocketSphinx's en-us acoustic model and dictionary ship inside its wheel (no download), and a JSGF
grammar of the ten digit words turns it into a digit reader. Unlike the project's own audio judge,
which learned from vocoded copies of the training clips and can read the vocoder's artefacts as
speech, it has never heard anything this project made, so what it understands of a generated clip
is what a stranger would.

Each clip is resampled to 16 kHz, framed by a little silence and decoded as one utterance. The
decoder adapts its cepstral mean from the utterance it last decoded, so a clip's first reading
depends on the clip before it; every clip is therefore decoded twice in a row and the second
reading kept, which depends on that clip alone (the same digits whatever the order of the clips).
The C decoder takes one utterance at a time and holds Python's lock, hence the loop over clips;
long lists are shared out among worker processes, one decoder each (the readings do not depend on
the order, so they are the same). Since a reading depends on the clip alone, a listener given a
``cache`` file keeps its readings by the clip's content (sha256 of its samples and rate) and
decodes only clips it has not heard: the real test clips are heard once per run, not per notebook.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from math import gcd
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pocketsphinx import Decoder
from scipy.signal import resample_poly

from mmga_helpers.core.io import read_npz, write_npz

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16_000  # the rate of the stock acoustic model
PAD_S = 0.2  # silence before and after each clip
SILENT = 1e-4  # a clip whose peak stays under this is silence: nothing is heard, nothing decoded
NOT_HEARD = -1
POOL_FROM = 200  # clips: fewer are read in this process (starting a worker takes about a second)
GRAMMAR = "#JSGF V1.0;\ngrammar digits;\npublic <digit> = " + " | ".join(DIGIT_WORDS) + ";\n"


class StockListener:
    """PocketSphinx (stock en-us model) restricted to the ten digit words.

    ``read`` gives the digit heard in each clip, or ``NOT_HEARD`` (-1) for a silent clip;
    ``accuracy`` the share of clips heard as the given digit. ``cache``: an ``.npz`` file of
    readings by clip content, read and extended by ``read`` (written atomically).
    """

    def __init__(self, cache: str | Path | None = None) -> None:
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self._decoder.add_jsgf_string("digits", GRAMMAR)
        self._decoder.activate_search("digits")
        self.cache = None if cache is None else Path(cache)

    def _decode(self, pcm: bytes) -> int:
        d = self._decoder
        word = ""
        for _ in range(2):  # the second reading no longer depends on the clip decoded before
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            hyp = d.hyp()
            word = hyp.hypstr.strip() if hyp is not None else ""
        return DIGIT_WORDS.index(word) if word in DIGIT_WORDS else NOT_HEARD

    def read(self, waves: Sequence[ArrayLike] | NDArray, sample_rate: int = 8000) -> NDArray[np.int64]:
        """The digit heard in each clip (1-D float waves in [-1, 1] at ``sample_rate``)."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive; got {sample_rate}")
        if self.cache is None:
            return self._read_all(waves, sample_rate)
        keys = np.array([_clip_key(w, sample_rate) for w in waves], dtype="S32")
        heard: dict[bytes, int] = {}
        if self.cache.is_file():
            known = read_npz(self.cache)
            heard = dict(zip(known["keys"].tolist(), known["digits"].tolist(), strict=True))
        new = [i for i, k in enumerate(keys.tolist()) if k not in heard]
        if new:
            digits = self._read_all([waves[i] for i in new], sample_rate)
            heard.update(zip(keys[new].tolist(), digits.tolist(), strict=True))
            write_npz(self.cache, keys=np.array(list(heard), dtype="S32"),
                      digits=np.array(list(heard.values()), np.int64))
        return np.array([heard[k] for k in keys.tolist()], np.int64)

    def _read_all(self, waves: Sequence[ArrayLike] | NDArray, sample_rate: int) -> NDArray[np.int64]:
        workers = min(len(os.sched_getaffinity(0)), 4, len(waves) // (POOL_FROM // 2))
        if workers < 2:
            return self._read(waves, sample_rate)
        out = np.empty(len(waves), np.int64)
        # worker processes started afresh (``python -m`` this module), not multiprocessing's: its
        # fork may copy TensorFlow's threads, its spawn re-runs a caller's script without a main guard
        with tempfile.TemporaryDirectory(prefix="mmga-listener-") as tmp:
            jobs = []
            for i in range(workers):
                share = [np.asarray(w, np.float32).ravel() for w in waves[i::workers]]
                src, dst = Path(tmp, f"share{i}.npz"), Path(tmp, f"heard{i}.npy")
                lengths = np.array([len(w) for w in share], np.int64)
                np.savez(src, waves=np.concatenate(share), lengths=lengths, rate=np.int64(sample_rate))
                cmd = [sys.executable, "-m", __name__, str(src), str(dst)]
                jobs.append((subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), dst))
            for i, (job, dst) in enumerate(jobs):
                _, err = job.communicate()
                if job.returncode != 0:
                    raise RuntimeError(f"a listener worker failed: {err.strip().splitlines()[-1:]}")
                out[i::workers] = np.load(dst, allow_pickle=False)
        return out

    def _read(self, waves: Sequence[ArrayLike] | NDArray, sample_rate: int) -> NDArray[np.int64]:
        g = gcd(SAMPLE_RATE, int(sample_rate))
        up, down = SAMPLE_RATE // g, int(sample_rate) // g
        pad = np.zeros(round(PAD_S * SAMPLE_RATE), np.float32)
        out = np.full(len(waves), NOT_HEARD, np.int64)
        for i, wave in enumerate(waves):
            x = np.asarray(wave, np.float32).ravel()
            if x.size == 0 or not np.isfinite(x).all() or np.abs(x).max() < SILENT:
                continue
            x = resample_poly(x, up, down).astype(np.float32) if up != down else x
            pcm = (np.clip(np.concatenate([pad, x, pad]), -1.0, 1.0) * 32767).astype(np.int16)
            out[i] = self._decode(pcm.tobytes())
        return out

    def accuracy(
        self, waves: Sequence[ArrayLike] | NDArray, digits: ArrayLike, sample_rate: int = 8000
    ) -> float:
        """Share of the clips heard as their digit."""
        digits = np.asarray(digits)
        if len(digits) != len(waves):
            raise ValueError(f"{len(waves)} clips but {len(digits)} digits")
        return float((self.read(waves, sample_rate) == digits).mean()) if len(digits) else float("nan")


def _clip_key(wave: ArrayLike, sample_rate: int) -> bytes:
    """sha256 of a clip's float32 samples and its rate: what its reading depends on."""
    digest = hashlib.sha256(np.ascontiguousarray(np.asarray(wave, np.float32).ravel()).tobytes())
    digest.update(int(sample_rate).to_bytes(8, "little"))
    return digest.digest()


def _main(src: str, dst: str) -> None:
    """A worker's share of :meth:`StockListener.read`: clips from ``src`` (.npz), digits to ``dst``."""
    with np.load(src, allow_pickle=False) as share:
        waves = np.split(share["waves"], np.cumsum(share["lengths"])[:-1])
        rate = int(share["rate"])
    np.save(dst, StockListener()._read(waves, rate), allow_pickle=False)


if __name__ == "__main__":
    _main(*sys.argv[1:3])
