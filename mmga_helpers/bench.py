"""Benchmarks: commands that print figures (speed is measured here, never in timed tests)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
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
