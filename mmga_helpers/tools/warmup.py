"""Compile the numba kernels of umap-learn, pynndescent and librosa once, at set-up.

numba caches compiled code in ``NUMBA_CACHE_DIR`` (the Makefile puts it in the venv, beside the
packages it was compiled from), but only after a first call has compiled it: without this, the
first ``mmga run`` spends a while in every notebook process compiling, on a clean clone every time.
``make venv`` runs ``python -m mmga_helpers.tools.warmup`` after installing the pins.
Nothing is written but the cache; the inputs are random.
"""

from __future__ import annotations

import os
import time

import numpy as np

from mmga_helpers.core.config import load_config
from mmga_helpers.display.views import two_d_views
from mmga_helpers.evaluation.judges import mfcc_features
from mmga_helpers.learn.clustering import make_clusterer
from mmga_helpers.modalities import audio


def warm_up() -> dict[str, float]:
    """Run each numba-backed path the notebooks take on tiny random inputs; seconds per path."""
    cfg = load_config("quick")
    rng = np.random.default_rng(0)
    seconds: dict[str, float] = {}

    def timed(name, fn) -> None:
        start = time.perf_counter()
        fn()
        seconds[name] = round(time.perf_counter() - start, 2)

    x = rng.normal(size=(300, 8)).astype(np.float32)
    waves = (0.1 * rng.normal(size=(4, 8000))).astype(np.float32)
    timed(
        "2-D views (UMAP, t-SNE)",
        lambda: [two_d_views(x, m, max_points=300) for m in ("umap", "tsne")],
    )
    cc = cfg.model.clustering.model_copy(update={"algorithm": "umap_gmm", "umap_n_components": 2})
    timed("UMAP + GMM clustering", lambda: make_clusterer("umap_gmm", 3, cc, 0).fit(x).predict(x))
    timed(
        "audio front end",
        lambda: audio.logmel(audio.prepare_waves(list(waves), cfg.data.fsdd), cfg.data.fsdd),
    )
    timed("MFCC (judge)", lambda: mfcc_features(waves))
    return seconds


def main() -> None:
    start = time.perf_counter()
    seconds = warm_up()
    where = os.environ.get("NUMBA_CACHE_DIR", "numba's default")
    print(f"numba kernels compiled into {where} in {time.perf_counter() - start:.0f} s: {seconds}")


if __name__ == "__main__":
    main()
