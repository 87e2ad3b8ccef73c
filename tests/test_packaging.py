"""The pins users install from agree everywhere, and the package declares what it imports."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mmga_helpers.tools.pins import PLATFORMS

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> set[tuple[str, str, str]]:
    """``(name, version, marker)`` of each ``name==version [; marker]`` line."""
    out = set()
    for req in map(Requirement, lines):
        (spec,) = req.specifier
        assert spec.operator == "==", req
        out.add((canonicalize_name(req.name), spec.version, str(req.marker or "")))
    return out


def _lock_lines() -> list[str]:
    text = (ROOT / "requirements.lock").read_text()
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _lock() -> dict[str, str]:
    return {name: version for name, version, _ in _pins(_lock_lines())}


def test_environment_yml_mirrors_the_lock_and_installs_the_project() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[-1] == "-e ."  # the project itself, editable, once the pins are in
    assert _pins(pip[:-1]) == _pins(_lock_lines())  # markers and all


def test_each_platform_gets_one_tensorflow() -> None:
    """The lock and pyproject.toml pick tensorflow-cpu on x86-64 Linux and Windows, tensorflow on
    macOS (no CPU-only wheel there) and ARM; the gpu extra brings the CUDA build on Linux."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sources = {"lock": [Requirement(ln) for ln in _lock_lines()],
               "pyproject": [Requirement(d) for d in meta["dependencies"]]}
    for source, reqs in sources.items():
        for platform, want in (("linux-x86_64", "tensorflow-cpu"), ("windows-x86_64", "tensorflow-cpu"),
                               ("macos-arm64", "tensorflow")):
            env = PLATFORMS[platform].environment()
            picked = [r.name for r in reqs if r.name.startswith("tensorflow")
                      and (r.marker is None or r.marker.evaluate(env))]
            assert picked == [want], (source, platform, picked)
    (gpu,) = map(Requirement, meta["optional-dependencies"]["gpu"])
    assert (gpu.name, gpu.extras) == ("tensorflow", {"and-cuda"})
    assert gpu.marker.evaluate(PLATFORMS["linux-x86_64"].environment())
    assert not gpu.marker.evaluate(PLATFORMS["macos-arm64"].environment())


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
