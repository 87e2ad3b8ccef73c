"""MMGA helpers: the logic behind the notebook book, in layers that import only downwards.

``core`` (config, files, stamps, metrics) -> ``modalities`` (MNIST, FSDD, the audio front end) ->
``learn`` (autoencoders, clusterers, the brain) -> ``generation`` (the public API, ``MMGA``) ->
``stages`` (a run's stages) -> ``evaluation`` (the figures of merit) -> ``display`` (figures, the
explorer) -> ``lab`` (what the notebooks import) -> ``tools`` (``mmga`` and its runner, the book,
benchmarks). ``tests/test_layers.py`` keeps it so.
"""

import os as _os
import sys as _sys

# Before TensorFlow is imported anywhere: oneDNN kernels are off by default on AMD CPUs, where they
# make convolutions faster (book/method.md); quiet logs.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# jsonschema (under nbformat, which plotly's renderers and the runner import) builds the 39 Earley
# grammars of rfc3987-syntax as it loads: 3.5 s in every kernel and command. Nothing here checks the
# IRI formats they serve, and jsonschema simply goes without those two checkers when it is absent.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from mmga_helpers import MMGA`` without importing TensorFlow for every other use."""
    if name == "MMGA":
        from mmga_helpers.generation import MMGA

        return MMGA
    raise AttributeError(f"module 'mmga_helpers' has no attribute {name!r}")
