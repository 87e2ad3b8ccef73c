"""Throughput figures: the machine's matmul rate, model FLOPs, training samples/s through the
project's pipeline against a bare ``fit``, encoder items/s against the FLOP bound, and ``see`` /
``hear`` clips/s of a finished run. Every timed call is warmed up first (TensorFlow traces a
function on its first call)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.core.inference import encode
from mmga_helpers.core.machine import timed
from mmga_helpers.learn.checkpoint import checkpoint_callback
from mmga_helpers.learn.models import add_convergence_head, build_autoencoder, compile_autoencoder
from mmga_helpers.learn.pipeline import epoch_dataset, make_dataset
from mmga_helpers.learn.training import expected_meta, seed_everything, train_val_split

TARGETS = {
    "training_ratio_min": 0.9,  # pipeline samples/s over bare fit samples/s
    "encode_10k_images_max_s": 1.0,
    "see_min_clips_per_s": 2000.0,
    "hear_min_clips_per_s": 100.0,
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

    The pipeline is what :func:`~mmga_helpers.learn.training.train_autoencoder` runs: the seeded tf.data
    stream of :func:`~mmga_helpers.learn.training.epoch_dataset`, validation on a held-out part, early
    stopping and the per-epoch checkpoint. The bare run is ``model.fit(x, x, batch_size=...)`` of the
    same fresh model on the same split, validating on the same part. After one warm-up epoch each
    (it traces the functions), epochs of the two alternate ``rounds`` times, so that other jobs on
    the machine slow both alike; the figure is each one's fastest epoch. With a convergence weight
    in ``cfg`` both train the model with its convergence head, on random 10-cluster targets."""
    import keras

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
        expected = expected_meta(cfg, name, x, seed, targets=targets)
        ckpt = checkpoint_callback(Path(tmp), expected, early, None, 0.0)

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
