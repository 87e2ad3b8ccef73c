"""Benchmarks: commands that print figures (speed is measured here, never in timed tests).

``mmga bench`` runs them all and writes ``outputs/<profile>/bench.json``:

* ``stages``: wall time of each stage of the last ``mmga run`` (notebooks, evaluation sub-stages,
  autoencoder training), read from what the run recorded, and of the benchmark's own stages;
* ``memory``: peak resident memory of this process and of its children;
* ``training``: samples/s of each autoencoder trained through the project's pipeline
  (:func:`~mmga_helpers.training.train_autoencoder`: tf.data, validation, early stopping, per-epoch
  checkpoints) against a bare ``model.fit(x, x)`` of the same fresh model on the same data, with
  the same validation split; the ratio should be at least 0.9;
* ``encoders``: images/s and clips/s of the encoders against a bound: their multiply-adds, counted
  from the layers, at the machine's measured float32 matmul rate (``matmul``);
* ``generation``: ``see`` and ``hear`` clips/s of a finished run (one with ``mmga.json``);
* ``data``: :func:`bench_data`.

Every timed call is warmed up first (TensorFlow traces a function on its first call).
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {
    "training_ratio_min": 0.9,  # pipeline samples/s over bare fit samples/s
    "encode_10k_images_max_s": 1.0,
    "see_min_clips_per_s": 2000.0,
    "hear_min_clips_per_s": 100.0,
}
NO_RUN = "no finished run: run mmga run first"


def machine() -> dict[str, Any]:
    import psutil

    return {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],  # other jobs slow timings
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_data(profile: str = "quick") -> dict[str, Any]:
    """Load and verify all of MNIST; log-mel all 3,000 FSDD clips; wave -> log-mel -> Griffin-Lim ->
    wave spectral convergence on the FSDD official test split."""
    from mmga_helpers import audio
    from mmga_helpers.config import load_config
    from mmga_helpers.data import load_fsdd, load_mnist

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


# -- the machine -----------------------------------------------------------------------------------------
def memory() -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its finished children, and the current one."""
    import psutil

    kib = 1024.0  # Linux reports ru_maxrss in KiB
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
        "peak_rss_children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
        "rss_now_mib": psutil.Process().memory_info().rss / 2**20,
    }


def _best_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    return min(timed(fn)[1] for _ in range(repeats))


def matmul_rate(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """float32 GFLOP/s of an ``n x n`` matmul (2 n^3 flops), best of ``repeats``, in NumPy and in
    TensorFlow (the models run on TensorFlow, so its rate makes the bound)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    flops = 2.0 * n**3
    t_np = _best_time(lambda: a @ b, repeats)
    ta, tb = tf.constant(a), tf.constant(b)
    t_tf = _best_time(lambda: tf.reduce_sum(tf.linalg.matmul(ta, tb)).numpy(), repeats)
    return {"n": n, "numpy_gflops": flops / t_np / 1e9, "tensorflow_gflops": flops / t_tf / 1e9}


# -- FLOPs -----------------------------------------------------------------------------------------------
def _layers(model) -> list:
    """Every leaf layer of a model, descending into nested models (the autoencoder holds two)."""
    import keras

    out = []
    for layer in model.layers:
        out.extend(_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def model_macs(model) -> dict[str, int]:
    """Multiply-adds per sample of each Conv2D, Conv2DTranspose and Dense layer (biases and
    activations are not counted: they are a few percent at most)."""
    from keras import layers

    out = {}
    for layer in _layers(model):
        if isinstance(layer, layers.Conv2DTranspose):  # before Conv2D: it may subclass it
            # every input pixel meets the whole kernel: H_in W_in kh kw C_in C_out
            h, w = layer.input.shape[1:3]
            out[layer.name] = int(h * w * np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.Conv2D):
            h, w = layer.output.shape[1:3]  # kernel (kh, kw, C_in / groups, C_out) per output pixel
            out[layer.name] = int(h * w * np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.Dense):
            rows = int(np.prod(layer.input.shape[1:-1])) if len(layer.input.shape) > 2 else 1
            out[layer.name] = int(rows * np.prod(layer.kernel.shape))
    return out


def model_flops(model) -> int:
    """Floating-point operations per sample: 2 per multiply-add."""
    return 2 * sum(model_macs(model).values())


# -- throughput ------------------------------------------------------------------------------------------
def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t)

    return EpochTimer()


def training_throughput(cfg, x: np.ndarray, name: str, rounds: int = 2, seed: int = 0) -> dict[str, Any]:
    """Samples/s of one autoencoder trained through the project's pipeline and by a bare ``fit``.

    The pipeline is what :func:`~mmga_helpers.training.train_autoencoder` runs: the seeded tf.data
    stream of :func:`~mmga_helpers.training.epoch_dataset`, validation on a held-out part, early
    stopping and the per-epoch checkpoint. The bare run is ``model.fit(x, x, batch_size=...)`` of the
    same fresh model on the same split, validating on the same part. After one warm-up epoch each
    (it traces the functions), epochs of the two alternate ``rounds`` times, so that other jobs on
    the machine slow both alike; the figure is each one's fastest epoch. With a convergence weight
    in ``cfg`` both train the model with its convergence head, on random 10-cluster targets."""
    import keras

    from mmga_helpers.models import add_convergence_head, build_autoencoder, compile_autoencoder
    from mmga_helpers.training import (
        _meta,
        checkpoint_callback,
        epoch_dataset,
        make_dataset,
        seed_everything,
        train_val_split,
    )

    tr, va = train_val_split(len(x), cfg.validation_fraction, seed)
    xt, xv = x[tr], x[va]
    targets = None
    if getattr(cfg, "convergence_weight", 0.0) > 0:
        targets = np.eye(10, dtype=np.float32)[np.random.default_rng(seed).integers(0, 10, len(x))]
    tt, tv = (None, None) if targets is None else (targets[tr], targets[va])
    yt = xt if tt is None else {"reconstruction": xt, "convergence": tt}
    yv = xv if tv is None else {"reconstruction": xv, "convergence": tv}
    models = {}
    for kind in ("pipeline", "bare"):
        seed_everything(seed)  # the same fresh model for both
        ae = build_autoencoder(cfg, name)
        if targets is not None:
            ae = add_convergence_head(ae, targets.shape[1])
        compile_autoencoder(ae, cfg)
        models[kind] = ae.fitted
    ds, steps = epoch_dataset(xt, cfg.batch_size, seed, targets=tt)
    val_ds = make_dataset(xv, cfg.batch_size, None, shuffle=False, targets=tv)
    seconds: dict[str, list[float]] = {"pipeline": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="mmga-bench-") as tmp:
        early = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.patience, restore_best_weights=True
        )
        ckpt = checkpoint_callback(Path(tmp), _meta(cfg, name, x, seed, targets), early, None, 0.0)

        def epoch(kind: str, e: int) -> None:
            timer = _epoch_timer()
            if kind == "pipeline":
                models[kind].fit(
                    ds,
                    steps_per_epoch=steps,
                    shuffle=False,
                    validation_data=val_ds,
                    initial_epoch=e,
                    epochs=e + 1,
                    callbacks=[early, ckpt, timer],
                    verbose=0,
                )
            else:
                models[kind].fit(
                    xt,
                    yt,
                    batch_size=cfg.batch_size,
                    validation_data=(xv, yv),
                    initial_epoch=e,
                    epochs=e + 1,
                    callbacks=[timer],
                    verbose=0,
                )
            seconds[kind].extend(timer.seconds)

        for e in range(rounds + 1):  # epoch 0 of each is the warm-up
            epoch("pipeline", e)
            epoch("bare", e)
    pipe_sps = len(tr) / min(seconds["pipeline"][1:])
    bare_sps = len(tr) / min(seconds["bare"][1:])
    return {
        "n_train": len(tr),
        "n_val": len(va),
        "batch_size": cfg.batch_size,
        "rounds": rounds,
        "pipeline_samples_per_s": pipe_sps,
        "bare_fit_samples_per_s": bare_sps,
        "ratio": pipe_sps / bare_sps,
        "target_met": pipe_sps / bare_sps >= TARGETS["training_ratio_min"],
        "pipeline_epoch_s": seconds["pipeline"],
        "bare_fit_epoch_s": seconds["bare"],
    }


def encoder_throughput(encoder, x: np.ndarray, gflops: float, repeats: int = 3) -> dict[str, Any]:
    """Items/s of ``pipeline.encode`` (the project's batch inference), best of ``repeats`` after a
    warm-up, and the bound: the encoder's FLOPs at the machine's matmul rate ``gflops``."""
    from mmga_helpers.pipeline import encode

    seconds = _best_time(lambda: encode(encoder, x), repeats)
    flops = model_flops(encoder)
    bound = flops * len(x) / (gflops * 1e9)
    return {
        "n": len(x),
        "seconds": seconds,
        "items_per_s": len(x) / seconds,
        "mflops_per_item": flops / 1e6,
        "bound_s": bound,
        "fraction_of_bound": bound / seconds,
    }


def generation_throughput(
    m, images: np.ndarray, clips: Sequence[np.ndarray], sample_rate: int, repeats: int = 5
) -> dict[str, Any]:
    """Clips/s of ``m.see`` (clips in, images out) and ``m.hear`` (images in, Griffin-Lim waves out)."""
    m.see(list(clips[:8]), sample_rate=sample_rate, seed=0)  # warm-up: traces, numba
    m.hear(images[:8], seed=0)
    t_see = min(timed(lambda: m.see(list(clips), sample_rate=sample_rate, seed=0))[1] for _ in range(repeats))
    t_hear = min(timed(lambda: m.hear(images, seed=0))[1] for _ in range(repeats))
    see, hear = len(clips) / t_see, len(images) / t_hear
    return {
        "see_clips": len(clips),
        "see_s": t_see,
        "see_clips_per_s": see,
        "see_target_met": see >= TARGETS["see_min_clips_per_s"],
        "hear_images": len(images),
        "hear_s": t_hear,
        "hear_clips_per_s": hear,
        "hear_target_met": hear >= TARGETS["hear_min_clips_per_s"],
        "griffin_lim_iters": m.cfg.data.fsdd.griffin_lim_iters,
    }


# -- inputs ----------------------------------------------------------------------------------------------
def _images(cfg, split: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """``n`` model-ready MNIST images of a split (first n; repeated when fewer), or random ones when
    the data cannot be loaded; the flag says whether they are real."""
    from mmga_helpers.data import DataError, load_mnist
    from mmga_helpers.features import images_to_unit

    try:
        raw, _ = load_mnist(split)
    except (DataError, OSError):
        return rng.random((n, 28, 28, 1), dtype=np.float32), False
    return images_to_unit(np.resize(raw, (n, *raw.shape[1:])), cfg.data.mnist.normalize), True


def _clips(cfg, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """``n`` FSDD log-mels (all splits; repeated when fewer) and their prepared waves, or random
    log-mels and tones when the data cannot be loaded."""
    from mmga_helpers.data import DataError
    from mmga_helpers.features import fsdd_split

    shape = tuple(cfg.model.audio_autoencoder.input_shape)
    try:
        a = fsdd_split(cfg, "all", cfg.run_dir() / "cache")
    except (DataError, OSError):
        t = np.arange(cfg.data.fsdd.n_samples) / cfg.data.fsdd.sample_rate
        waves = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, 64)])
        return rng.random((n, *shape), dtype=np.float32), waves.astype(np.float32), False
    return np.resize(a.x, (n, *shape)), a.waves, True


# -- stages ----------------------------------------------------------------------------------------------
def run_stages(cfg, root: str | Path = ".") -> dict[str, Any]:
    """Wall times the last ``mmga run`` of this profile recorded: seconds per notebook
    (``run_state.json``), per evaluation sub-stage (``metrics.json``) and per autoencoder training
    (each model's ``meta.json``). Empty sections when nothing was run."""
    from mmga_helpers.io import read_json

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
def _stage(timings: dict[str, float], name: str):
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start


# -- the benchmarks --------------------------------------------------------------------------------------
def bench_models(
    profile: str = "quick",
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
    from mmga_helpers.config import load_config
    from mmga_helpers.models import build_autoencoder

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


def bench_generation(
    profile: str = "quick", run_dir: str | Path | None = None, n_see: int = 2000, n_hear: int = 200
) -> dict[str, Any]:
    """``see`` and ``hear`` throughput of the finished run of a profile, or a note that there is none."""
    from mmga_helpers.config import load_config
    from mmga_helpers.generation import MANIFEST, MMGA

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
    profile: str = "quick", sections: Sequence[str] = ("data", "models", "generation"), **sizes
) -> dict[str, Any]:
    """Every benchmark of a profile (or the named ``sections``), with stage times and memory."""
    from mmga_helpers.config import load_config

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
    out["stages"] = {"run": run_stages(cfg), "bench_s": timings}
    out["memory"] = memory()
    return out


def write_bench(profile: str, figures: dict[str, Any]) -> Path:
    """Merge ``figures`` into ``outputs/<profile>/bench.json`` (atomically): a partial benchmark
    replaces only its own sections."""
    from mmga_helpers.config import load_config
    from mmga_helpers.io import read_json, write_json

    path = load_config(profile).run_dir() / "bench.json"
    old = read_json(path) if path.is_file() else {}
    return write_json(path, {**old, **figures})
