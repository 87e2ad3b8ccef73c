"""The pins users install from agree everywhere, and the package declares what it imports."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_environment_yml_mirrors_the_lock() -> None:
    env = re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)$", (ROOT / "environment.yml").read_text(), re.M)
    assert {n.lower().replace("_", "-"): v for n, v in env} == _lock()


def test_every_dependency_is_pinned_in_the_lock() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    declared = meta["dependencies"] + [d for extra in meta["optional-dependencies"].values() for d in extra]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in declared}
    assert names - lock.keys() == set()


def test_console_script_and_python_version() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["scripts"]["mmga"] == "mmga_helpers.tools.cli:app"
    assert "3.11" in meta["requires-python"] or ">=3.11" in meta["requires-python"]


def test_warmup_fills_the_numba_cache(tmp_path) -> None:
    """``python -m mmga_helpers.tools.warmup`` (run by ``make venv``) compiles the numba kernels of every
    path it names into ``NUMBA_CACHE_DIR``, so that the first notebook process does not."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "mmga_helpers.tools.warmup"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"compiled into {cache}" in done.stdout
    for path in ("2-D views", "UMAP + GMM", "audio front end", "MFCC"):
        assert path in done.stdout
    kernels = {p.relative_to(cache).parts[0].split("_")[0] for p in cache.rglob("*.nbi")}
    # numba names a cache folder after the kernel's package folder: librosa's are core_ and util_
    assert {"umap", "pynndescent", "core", "util"} <= kernels, kernels
