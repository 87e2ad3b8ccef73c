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
    assert meta["scripts"]["mmga"] == "mmga_helpers.cli:app"
    assert "3.11" in meta["requires-python"] or ">=3.11" in meta["requires-python"]
