"""Benchmarks: commands that print figures (speed is measured here, never in timed tests).

``mmga bench`` runs them all and writes ``outputs/<profile>/bench.json``:

* ``stages``: wall time of each stage of the last ``mmga run`` (notebooks, evaluation sub-stages,
  autoencoder training), read from what the run recorded, and of the benchmark's own stages;
* ``memory``: peak resident memory of this process and of its children;
* ``training``: samples/s of each autoencoder trained through the project's pipeline
  (:func:`~mmga_helpers.learn.training.train_autoencoder`: tf.data, validation, early stopping, per-epoch
  checkpoints) against a bare ``model.fit(x, x)`` of the same fresh model on the same data, with
  the same validation split; the ratio should be at least 0.9;
* ``encoders``: images/s and clips/s of the encoders against a bound: their multiply-adds, counted
  from the layers, at the machine's measured float32 matmul rate (``matmul``);
* ``generation``: ``see`` and ``hear`` clips/s of a finished run (one with ``mmga.json``);
* ``data``: :func:`bench_data`;
* ``replicas`` (``mmga bench --replicas``; not in the default run: it starts two more Python
  processes): training items/s of one autoencoder over a fixed number of
  steps with one replica and with two (``training.strategy: mirrored`` over two logical CPU
  devices), :mod:`~mmga_helpers.tools.replicas`.

Every timed call is warmed up first (TensorFlow traces a function on its first call).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.core.config import Config, load_config
from mmga_helpers.core.io import read_json, write_json
from mmga_helpers.core.machine import machine, memory, timed
from mmga_helpers.generation import MANIFEST, MMGA
from mmga_helpers.learn.models import build_autoencoder
from mmga_helpers.modalities import audio
from mmga_helpers.modalities.data import DataError, load_fsdd, load_mnist
from mmga_helpers.modalities.features import fsdd_split, images_to_unit
from mmga_helpers.tools.replicas import replica_figures
from mmga_helpers.tools.throughput import (
    TARGETS,
    encoder_throughput,
    generation_throughput,
    matmul_rate,
    training_throughput,
)

NO_RUN = "no finished run: run mmga run first"


def bench_data(profile: str = "quick") -> dict[str, Any]:
    """Load and verify all of MNIST; log-mel all 3,000 FSDD clips; wave -> log-mel -> Griffin-Lim ->
    wave spectral convergence on the FSDD official test split."""
    cfg = load_config(profile).data.fsdd
    audio.logmel(audio.prepare_waves([np.ones(800, np.float32)], cfg), cfg)  # warm-up: imports, numba JIT
    _, t_mnist = timed(lambda: (load_mnist("train"), load_mnist("test")))
    fsdd, t_fsdd_load = timed(lambda: load_fsdd("all"))
    feats, t_logmel = timed(lambda: audio.logmel(audio.prepare_waves(fsdd.waves, cfg), cfg))
    test = fsdd.subset(fsdd.is_official_test)
    waves = audio.prepare_waves(test.waves, cfg)
    rec, t_gl = timed(lambda: audio.inverse_logmel(audio.logmel(waves, cfg), cfg, seed=0))
    sc = audio.spectral_convergence(waves, rec, cfg)
    return {
        "mnist_load_verify_s": t_mnist,
        "fsdd_load_verify_s": t_fsdd_load,
        "fsdd_logmel_all_s": t_logmel,
        "fsdd_logmel_shape": list(feats.shape),
        "roundtrip_spectral_convergence_test": {
            "mean": float(sc.mean()),
            "std": float(sc.std()),
            "n": len(sc),
        },
        "griffin_lim_clips_per_s": len(waves) / t_gl,
        "machine": machine(),
    }


# -- inputs ----------------------------------------------------------------------------------------------
def _images(cfg: Config, split: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """``n`` model-ready MNIST images of a split (first n; repeated when fewer), or random ones when
    the data cannot be loaded; the flag says whether they are real."""
    try:
        raw, _ = load_mnist(split)
    except (DataError, OSError):
        return rng.random((n, 28, 28, 1), dtype=np.float32), False
    return images_to_unit(np.resize(raw, (n, *raw.shape[1:])), cfg.data.mnist.normalize), True


def _clips(cfg: Config, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """``n`` FSDD log-mels (all splits; repeated when fewer) and their prepared waves, or random
    log-mels and tones when the data cannot be loaded."""
    shape = tuple(cfg.model.audio_autoencoder.input_shape)
    try:
        a = fsdd_split(cfg, "all", cfg.run_dir() / "cache")
    except (DataError, OSError):
        t = np.arange(cfg.data.fsdd.n_samples) / cfg.data.fsdd.sample_rate
        waves = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, 64)])
        return rng.random((n, *shape), dtype=np.float32), waves.astype(np.float32), False
    return np.resize(a.x, (n, *shape)), a.waves, True


# -- stages ----------------------------------------------------------------------------------------------
def run_stages(cfg: Config, root: str | Path = ".") -> dict[str, Any]:
    """Wall times the last ``mmga run`` of this profile recorded: seconds per notebook
    (``run_state.json``), per evaluation sub-stage (``metrics.json``) and per autoencoder training
    (each model's ``meta.json``). Empty sections when nothing was run."""
    run_dir = cfg.run_dir(root)
    out: dict[str, Any] = {"notebooks_s": {}, "evaluation_s": {}, "training_s": {}}
    state = run_dir / "notebooks" / "run_state.json"
    if state.is_file():
        for name, entry in read_json(state).get("notebooks", {}).items():
            if entry.get("status") == "ok":
                out["notebooks_s"][name] = entry.get("seconds")
        if out["notebooks_s"]:
            out["notebooks_total_s"] = float(sum(out["notebooks_s"].values()))
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        out["evaluation_s"] = read_json(metrics).get("run", {}).get("wall_time_s", {})
    for meta in sorted(cfg.model_dir(root).glob("seed*/*/meta.json")):
        info = read_json(meta)
        if "train_seconds" in info:
            key = f"{meta.parent.parent.name}/{meta.parent.name}"
            out["training_s"][key] = {"seconds": info["train_seconds"], "epochs": info.get("epochs_run")}
    return out


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start


# -- the benchmarks --------------------------------------------------------------------------------------
def bench_models(
    profile: str = "quick",
    *,
    n_train_images: int = 8192,
    n_train_clips: int = 2048,
    n_encode_images: int = 10_000,
    n_encode_clips: int = 3000,
    rounds: int = 2,
    matmul_n: int = 2048,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Training throughput (pipeline vs bare fit) and encoder throughput (vs the FLOP bound) of
    both autoencoders of a profile, on real data when it is there."""
    cfg = load_config(profile)
    timings = {} if timings is None else timings
    rng = np.random.default_rng(0)
    with _stage(timings, "matmul"):
        rate = matmul_rate(matmul_n)
    with _stage(timings, "inputs"):
        x_img, real_img = _images(cfg, "train", n_train_images, rng)
        x_aud, _, real_aud = _clips(cfg, max(n_train_clips, n_encode_clips), rng)
        x_test, _ = _images(cfg, "test", n_encode_images, rng)
    out: dict[str, Any] = {"matmul": rate, "real_data": {"mnist": real_img, "fsdd": real_aud}}
    with _stage(timings, "training_image"):
        image = training_throughput(cfg.model.image_autoencoder, x_img, "image_autoencoder", rounds)
    with _stage(timings, "training_audio"):
        audio = training_throughput(
            cfg.model.audio_autoencoder, x_aud[:n_train_clips], "audio_autoencoder", rounds
        )
    out["training"] = {"image_autoencoder": image, "audio_autoencoder": audio}
    with _stage(timings, "encoders"):
        enc_img = build_autoencoder(cfg.model.image_autoencoder, "image_autoencoder").encoder
        enc_aud = build_autoencoder(cfg.model.audio_autoencoder, "audio_autoencoder").encoder
        gflops = rate["tensorflow_gflops"]
        images = encoder_throughput(enc_img, x_test, gflops)
        clips = encoder_throughput(enc_aud, x_aud[:n_encode_clips], gflops)
    images["target_met"] = images["seconds"] * 10_000 / images["n"] <= TARGETS["encode_10k_images_max_s"]
    out["encoders"] = {"image_encoder": images, "audio_encoder": clips}
    return out


def bench_replicas(
    profile: str = "quick", name: str = "audio_autoencoder", steps: int = 20, n_items: int = 2048
) -> dict[str, Any]:
    """Training items/s of the ``name`` autoencoder of a profile with one and with two replicas
    (:func:`~mmga_helpers.tools.replicas.replica_figures`), on real data when it is there."""
    cfg = load_config(profile)
    rng = np.random.default_rng(0)
    if name == "image_autoencoder":
        x, real = _images(cfg, "train", n_items, rng)
    else:
        x, _, real = _clips(cfg, n_items, rng)
    return {**replica_figures(profile, name, x, (1, 2), steps), "real_data": real}


def bench_generation(
    profile: str = "quick", run_dir: str | Path | None = None, n_see: int = 2000, n_hear: int = 200
) -> dict[str, Any]:
    """``see`` and ``hear`` throughput of the finished run of a profile, or a note that there is none."""
    cfg = load_config(profile)
    folder = Path(run_dir) if run_dir is not None else cfg.run_dir()
    if not (folder / MANIFEST).is_file():
        return {"status": NO_RUN, "run_dir": str(folder)}
    m = MMGA.load(folder)
    rng = np.random.default_rng(0)
    images, real_img = _images(m.cfg, "test", n_hear, rng)
    _, waves, real_aud = _clips(m.cfg, 1, rng)
    clips = list(np.resize(waves, (n_see, waves.shape[1])))
    out = generation_throughput(m, images[..., 0], clips, m.cfg.data.fsdd.sample_rate)
    return {"status": "ok", "run_dir": str(folder), "real_data": real_img and real_aud, **out}


def bench_all(
    profile: str = "quick",
    sections: Sequence[str] = ("data", "models", "generation"),
    replicas: dict[str, Any] | None = None,
    **sizes,
) -> dict[str, Any]:
    """Every benchmark of a profile (or the named ``sections``), with stage times and memory;
    ``replicas``: keyword arguments of :func:`bench_replicas` (section ``replicas``)."""
    cfg = load_config(profile)
    timings: dict[str, float] = {}
    out: dict[str, Any] = {"profile": profile, "machine": machine(), "targets": TARGETS}
    if "data" in sections:
        with _stage(timings, "data"):
            out["data"] = bench_data(profile)
    if "models" in sections:
        out.update(bench_models(profile, timings=timings, **sizes))
    if "generation" in sections:
        with _stage(timings, "generation"):
            out["generation"] = bench_generation(profile)
    if "replicas" in sections:
        with _stage(timings, "replicas"):
            out["replicas"] = bench_replicas(profile, **(replicas or {}))
    out["stages"] = {"run": run_stages(cfg), "bench_s": timings}
    out["memory"] = memory()
    return out


def write_bench(profile: str, figures: dict[str, Any]) -> Path:
    """Merge ``figures`` into ``outputs/<profile>/bench.json`` (atomically): a partial benchmark
    replaces only its own sections."""
    path = load_config(profile).run_dir() / "bench.json"
    old = read_json(path) if path.is_file() else {}
    return write_json(path, {**old, **figures})
