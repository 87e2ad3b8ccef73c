"""MMGA helpers: the logic behind the notebook book, in layers that import only downwards.

``core`` (config, files, stamps, metrics) -> ``modalities`` (MNIST, FSDD, the audio front end) ->
``learn`` (autoencoders, clusterers, the brain) -> ``generation`` (the public API, ``MMGA``) ->
``stages`` (a run's stages) -> ``evaluation`` (the figures of merit) -> ``display`` (figures, the
explorer) -> ``lab`` (what the notebooks import) -> ``tools`` (``mmga`` and its runner, the book,
benchmarks). ``tests/test_layers.py`` keeps it so.
"""

import os as _os

# Before TensorFlow is imported anywhere: oneDNN kernels are off by default on AMD CPUs, where they
# make convolutions faster (book/method.md); quiet logs.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from mmga_helpers import MMGA`` without importing TensorFlow for every other use."""
    if name == "MMGA":
        from mmga_helpers.generation import MMGA

        return MMGA
    raise AttributeError(f"module 'mmga_helpers' has no attribute {name!r}")
