"""Batch inference for Keras models without Keras' per-call overhead or retracing."""

from __future__ import annotations

import functools

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
        # one trace through a shared lambda added up to a false "excessive retracing" warning on
        # the book's pages (six hold-out folds, four networks of a run); a partial is its own key.
        self._fn = tf.function(functools.partial(_infer, model), input_signature=[spec])
        self.batch_size = batch_size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        parts = [self._fn(x[i : i + self.batch_size]).numpy() for i in range(0, len(x), self.batch_size)]
        return np.concatenate(parts) if parts else self._fn(x).numpy()  # no items: an empty batch
