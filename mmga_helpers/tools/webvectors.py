"""The Python side of the live page's parity: the page's random numbers and draws in Python, and a
table of test vectors that pins each function of ``live/*.js`` to the package's own.

* :func:`mulberry32`: the page's uniform generator (``live/random.js``), bit for bit.
* :func:`draw_path` / :func:`see_drawn`: ``MMGA.see`` with the page's draw (the link from the
  brain's one-to-many table by ``u * total``, the member ``floor(u * count)`` of the cluster's
  members in stable-sorted order) instead of numpy's generator, so that Python and the page given
  one seed see the same picture.
* :func:`make_vectors`: inputs and the package's outputs for the MNIST recipe, the front end
  (prepared clip, log-mel, voiced frames, unit log-mel), the inverse (contrast, natural length,
  mel inversion and Griffin-Lim from given initial phases), cluster assignment (k-means, GMM,
  UMAP + GMM), the brain's draw, the FFT and the generator; ``tests/js/check_vectors.mjs`` runs the
  JavaScript on them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.core.inference import encode
from mmga_helpers.core.io import atomic_write_text
from mmga_helpers.generation import MMGA
from mmga_helpers.learn.brain import Direction
from mmga_helpers.modalities import audio
from mmga_helpers.modalities.digits import DrawingError, normalize_digits
from mmga_helpers.modalities.features import expand_contrast, waves_to_unit_logmel
from mmga_helpers.tools.webformat import assign, read_arrays, verify_web

_MASK = 0xFFFFFFFF


def mulberry32(seed: int) -> Callable[[], float]:
    """The live page's generator: uniforms in [0, 1), 2**-32 apart, the same sequence as
    ``mulberry32(seed)`` in ``live/random.js``."""
    state = seed & _MASK

    def imul(a: int, b: int) -> int:
        return (a * b) & _MASK

    def next_uniform() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & _MASK
        t = imul(state ^ (state >> 15), 1 | state)
        t = ((t + imul(t ^ (t >> 7), 61 | t)) & _MASK) ^ t
        return ((t ^ (t >> 14)) & _MASK) / 4294967296

    return next_uniform


def draw_path(m: MMGA, direction: Direction, sources: np.ndarray, seeds: list[int],
              mode: str = "sample") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per source cluster and seed, the page's draw: ``(targets, strengths, members)`` (members
    index the other modality's latent bank)."""
    links, strengths = m.brain.draw_weights(direction), m.brain.strengths_[direction]
    bank = m.parts["audio_bank" if direction == "image_to_audio" else "image_bank"]
    order = np.argsort(bank.clusters, kind="stable")
    targets, members = [], []
    for source, seed in zip(np.asarray(sources), seeds, strict=True):
        nxt = mulberry32(seed)
        u = nxt()
        if mode == "argmax":
            target = int(strengths[source].argmax())
        else:
            cdf = np.cumsum(links[source])
            target = min(int((cdf <= u * cdf[-1]).sum()), len(cdf) - 1)
        pool = order[bank.clusters[order] == target]
        members.append(int(pool[min(int(np.floor(nxt() * len(pool))), len(pool) - 1)]))
        targets.append(target)
    targets_arr = np.asarray(targets)
    return targets_arr, strengths[np.asarray(sources), targets_arr], np.asarray(members)


def see_drawn(m: MMGA, waves: list[np.ndarray], sample_rate: int, seeds: list[int],
              mode: str = "sample") -> dict[str, np.ndarray]:
    """``MMGA.see`` with the page's draw for each clip's seed: images ``[N, 28, 28]`` and the path."""
    sources = m.audio_clusters(waves, sample_rate)
    targets, strengths, members = draw_path(m, "audio_to_image", sources, seeds, mode)
    images = encode(m.parts["image_decoder"], m.parts["image_bank"].z[members])[..., 0]
    return {"images": images.astype(np.float32), "source": sources, "target": targets,
            "strength": strengths, "member": members}


# -- the table of test vectors --------------------------------------------------------------------------
def _flat(x: Any) -> list[float]:
    return np.asarray(x, np.float64).ravel().tolist()


def _pictures(mnist: np.ndarray) -> list[dict[str, Any]]:
    """MNIST digits, a canvas-like RGBA drawing (dark ink, transparent paper, larger than MAX_SIDE),
    a small light-on-dark grey picture, and a blank one."""
    rng = np.random.default_rng(4)
    big = np.zeros((150, 130, 4), np.uint8)
    big[30:120, 60:75, 3] = 255  # a stroke
    big[30:45, 40:100, 3] = 200  # and a fainter bar
    small = np.full((40, 30), 20, np.uint8)
    small[8:32, 12:18] = 230
    small += rng.integers(0, 6, small.shape, dtype=np.uint8)
    blank = np.full((28, 28), 255, np.uint8)
    out = []
    for pic in [*mnist, big, small, blank]:
        entry = {"data": pic.ravel().tolist(), "height": pic.shape[0], "width": pic.shape[1],
                 "channels": 1 if pic.ndim == 2 else pic.shape[2]}
        try:
            entry["expected"] = _flat(normalize_digits([pic])[0])
        except DrawingError as err:
            entry["error"] = str(err).removeprefix("image 0: ")
        out.append(entry)
    return out


def _clusterers(rng: np.random.Generator) -> list[dict[str, Any]]:
    """k-means, a full GMM and UMAP + GMM's vote on synthetic codes, from webformat's rule."""
    d, k = 4, 3
    codes = rng.normal(scale=3.0, size=(60, d))
    centres = rng.normal(scale=3.0, size=(k, d))
    spread = rng.normal(size=(k, d, d))
    chol = np.stack([np.linalg.cholesky(np.linalg.inv(a @ a.T + np.eye(d))) for a in spread])
    train = rng.normal(size=(50, d)).astype(np.float32)
    post = rng.dirichlet(np.ones(k), size=50).astype(np.float32)
    cases = [
        ({"algorithm": "kmeans"}, {"centres": centres.astype(np.float32)}),
        ({"algorithm": "gmm"},
         {"weights": rng.dirichlet(np.ones(k)), "means": centres, "precisions_cholesky": chol}),
        ({"algorithm": "umap_gmm", "n_neighbors": 7},
         {"mean": codes.mean(axis=0), "scale": codes.std(axis=0), "train_inputs": train,
          "train_posteriors": post}),
    ]
    out = []
    for spec, arrays in cases:
        prefixed = {f"c_{name}": np.asarray(a) for name, a in arrays.items()}
        queries = np.concatenate([codes, (train[:5] * codes.std(axis=0) + codes.mean(axis=0))])
        out.append({"spec": spec, "arrays": {n: _flat(a) for n, a in arrays.items()},
                    "codes": queries.tolist(), "expected": assign(spec, prefixed, "c", queries).tolist()})
    return out


def make_vectors(
    run: str | Path, mnist: np.ndarray, clips: list[np.ndarray], sample_rate: int
) -> dict[str, Any]:
    """Inputs and the package's answers for every function of the live page, from a run's web export
    (its constants and matrices) and a few real pictures and clips."""
    m = MMGA.load(run)
    folder = Path(run) / "web"
    manifest = verify_web(folder)
    arrays = read_arrays(folder, manifest)
    fs, c = m.cfg.data.fsdd, manifest["audio"]
    rng = np.random.default_rng(11)
    unit, prepared, voiced = waves_to_unit_logmel(clips, m.cfg, sample_rate)
    raw_db = audio.logmel(prepared, fs, frames_first=True)
    rows = zip(clips, prepared, raw_db, voiced, unit, strict=True)
    clip_rows = [{"wave": _flat(w), "prepared": _flat(p), "logmel": _flat(db), "voiced": int(v),
                  "unit": _flat(u[..., 0])} for w, p, db, v, u in rows]
    inverse = []
    for i, (u, frames) in enumerate(zip(unit[:, :, :, 0], [voiced[0], 2, c["n_frames"]], strict=False)):
        contrast = (2.0, 1.0, 1.5)[i % 3]
        db = expand_contrast(audio.from_unit(u[None]), contrast)
        if fs.time_normalize:
            db = audio.stretch_frames(db, fs.n_frames, np.clip([frames], 2, fs.n_frames), fs.n_frames)
        seed = 100 + i
        wave = audio.inverse_logmel(db, fs, seed=seed)[0]
        phases = np.random.default_rng(seed).random(fs.n_frames * (fs.n_fft // 2 + 1))
        inverse.append({"unit": _flat(u), "frames": int(frames), "contrast": contrast, "db": _flat(db[0]),
                        "phases": _flat(phases), "wave": _flat(wave)})
    x = rng.normal(size=fs.n_fft)
    spectrum = np.fft.rfft(x)
    brain = []
    for direction in ("image_to_audio", "audio_to_image"):
        links, strengths = m.brain.draw_weights(direction), m.brain.strengths_[direction]
        u = [*rng.random(8).tolist(), 0.0, 1.0 - 2**-32]
        for row in range(len(links)):
            cdf = np.cumsum(links[row])
            brain.append({"links": _flat(links[row]), "strengths": _flat(strengths[row]), "u": u,
                          "sample": [min(int((cdf <= v * cdf[-1]).sum()), len(cdf) - 1) for v in u],
                          "argmax": int(strengths[row].argmax())})
    seeds = [0, 1, 7, 123456789, 2**32 - 1]
    return {
        "image": manifest["image"], "audio": c,
        "arrays": {k: _flat(arrays[k]) for k in ("mel_basis", "mel_pinv", "hann")},
        "random": [{"seed": s, "values": [g() for g in [mulberry32(s)] for _ in range(6)]} for s in seeds],
        "fft": {"x": x.tolist(), "re": spectrum.real.tolist(), "im": spectrum.imag.tolist()},
        "pictures": _pictures(mnist), "clips": clip_rows, "inverse": inverse,
        "clusters": _clusterers(rng), "brain": brain,
    }


def write_vectors(path: str | Path, vectors: dict[str, Any]) -> Path:
    """The table as JSON (atomically)."""
    atomic_write_text(path, json.dumps(vectors))
    return Path(path)
