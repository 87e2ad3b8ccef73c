"""The machine a figure was measured on, its memory, and a timer: recorded beside every figure."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    """Platform, CPU, cores, memory, Python and the load average (other jobs slow timings)."""
    return {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
    }


def memory() -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its finished children, and the current one."""
    kib = 1024.0  # Linux reports ru_maxrss in KiB
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
        "peak_rss_children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
        "rss_now_mib": psutil.Process().memory_info().rss / 2**20,
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the seconds it took."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start
