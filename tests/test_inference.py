"""BatchInference: the same numbers as Keras' predict, for any number of items, empty included."""

from __future__ import annotations

import numpy as np


def test_batch_inference_matches_predict_for_any_size() -> None:
    import keras

    from mmga_helpers.core.inference import BatchInference

    keras.utils.set_random_seed(0)
    inp = keras.Input((5,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(inp)))
    infer = BatchInference(model, batch_size=4)
    x = np.random.default_rng(0).normal(size=(11, 5)).astype(np.float32)
    np.testing.assert_allclose(infer(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    for n in (1, 4, 7):  # new sizes reuse the one traced function
        assert infer(x[:n]).shape == (n, 3)
    assert infer(x[:0]).shape == (0, 3)
    assert infer._fn.experimental_get_tracing_count() == 1


def test_many_models_trace_once_each_without_a_retracing_warning(caplog) -> None:
    """One trace per new model is by design; TensorFlow must not call it excessive retracing (it
    did when every BatchInference wrapped the same lambda: one code object, many traces)."""
    import logging

    import keras

    from mmga_helpers.core.inference import BatchInference

    x = np.ones((3, 4), np.float32)
    with caplog.at_level(logging.WARNING):
        for width in range(1, 13):
            inp = keras.Input((4,))
            infer = BatchInference(keras.Model(inp, keras.layers.Dense(width)(inp)))
            assert infer(x).shape == (3, width)
            assert infer._fn.experimental_get_tracing_count() == 1
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
