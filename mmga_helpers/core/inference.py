"""Batch inference for Keras models without Keras' per-call overhead or retracing."""

from __future__ import annotations

import functools
import weakref

import numpy as np


def _infer(model, x):
    return model(x, training=False)


class BatchInference:
    """A Keras model as one traced TensorFlow function for any batch size (a ``None`` batch
    dimension), called on chunks of ``batch_size``: no per-call Keras overhead and no retracing
    when the number of items changes."""

    def __init__(self, model, batch_size: int = 2048) -> None:
        import tensorflow as tf

        spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
        # A partial, not a lambda: TensorFlow counts traces per code object, so every new model's
        # one trace through a shared lambda would add up to a false "excessive retracing" warning.
        self._fn = tf.function(functools.partial(_infer, model), input_signature=[spec])
        self.batch_size = batch_size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        parts = [self._fn(x[i : i + self.batch_size]).numpy() for i in range(0, len(x), self.batch_size)]
        return np.concatenate(parts) if parts else self._fn(x).numpy()  # no items: an empty batch


_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def encode(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Batch inference of a Keras model through one :class:`BatchInference` per model, so that the
    shorter last chunk does not retrace Keras' predict function (and warn on every book page); its
    outputs equal ``predict_on_batch``'s."""
    if len(getattr(model, "outputs", ())) != 1:  # a training model with its head: Keras' own path
        return np.concatenate(
            [np.asarray(model.predict_on_batch(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        )
    if model not in _INFERENCE or _INFERENCE[model].batch_size != batch_size:
        _INFERENCE[model] = BatchInference(model, batch_size)
    return _INFERENCE[model](x)
