"""The exact pins on every platform researchers install on: Linux x86-64, macOS arm64, Windows x86-64.

``requirements.lock`` holds one ``name==version`` per line; a pin that holds on some platforms only
carries a PEP 508 marker (``tensorflow-cpu`` on x86-64 Linux and Windows, ``tensorflow`` on macOS,
``colorama`` on Windows, ...). ``environment.yml`` mirrors it and installs the project itself.

``python -m mmga_helpers.tools.pins check`` (``make check-platforms``) asks the package index, for each
platform, whether the lock's pins for it resolve to wheels: ``pip install --dry-run --only-binary=:all:
--platform ... --python-version ... --implementation cp --report``. pip judges markers by the machine
it runs on, not by ``--platform``, so the markers are evaluated here for the target, and pip's report is
checked for what pip would not have asked for: every dependency a resolved package declares *on that
platform* must be pinned there too. ``python -m mmga_helpers.tools.pins lock`` (``make lock``) rewrites
the lock from ``pip freeze`` keeping the markers, and ``environment.yml`` from the lock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mmga_helpers.core.io import atomic_write_text
from mmga_helpers.core.paths import from_root

PYTHON = "3.11.5"  # the lock's oldest Python: some pins (soupsieve 4.1) require 3.11.5
# Pins that must move together: the second's version follows the first's when `make lock` refreshes.
TWINS = {"tensorflow": "tensorflow-cpu"}
# Installer tooling pip freeze leaves out: pip may add setuptools and wheel to a resolution unpinned.
TOOLING = frozenset({"pip", "setuptools", "wheel"})
LOCK_HEADER = "# Exact pins, installed by make venv. Regenerate: make lock; check: make check-platforms"


@dataclass(frozen=True)
class Platform:
    """A platform's pip tags (``--platform``, several where pip does not expand one) and the marker
    environment its Python reports."""

    name: str
    tags: tuple[str, ...]
    sys_platform: str
    platform_system: str
    platform_machine: str
    os_name: str

    def environment(self, python: str = PYTHON) -> dict[str, str]:
        major_minor = ".".join(python.split(".")[:2])
        return {
            "implementation_name": "cpython", "implementation_version": python, "os_name": self.os_name,
            "platform_machine": self.platform_machine, "platform_python_implementation": "CPython",
            "platform_release": "", "platform_system": self.platform_system, "platform_version": "",
            "python_full_version": python, "python_version": major_minor, "sys_platform": self.sys_platform,
        }


# glibc 2.28 (Debian 10, Ubuntu 20.04, RHEL 8) and older wheels: pip 23 does not expand manylinux_2_28
_MANYLINUX = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)),
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64",
)
PLATFORMS: dict[str, Platform] = {
    "linux-x86_64": Platform("linux-x86_64", _MANYLINUX, "linux", "Linux", "x86_64", "posix"),
    # pip expands a macOS tag to the older releases and universal2
    "macos-arm64": Platform("macos-arm64", ("macosx_14_0_arm64",), "darwin", "Darwin", "arm64", "posix"),
    "windows-x86_64": Platform("windows-x86_64", ("win_amd64",), "win32", "Windows", "AMD64", "nt"),
}


class PinError(ValueError):
    """The lock has a line that is not ``name==version [; marker]``."""


# -- the lock -----------------------------------------------------------------------------------------
def read_pins(text: str) -> list[Requirement]:
    """The lock's pins, in order; comments and blank lines skipped."""
    pins = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as err:
            raise PinError(f"requirements.lock line {number}: {err}") from None
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or req.url or req.extras:
            raise PinError(f"requirements.lock line {number}: {line!r} is not name==version [; marker]")
        pins.append(req)
    return pins


def version_of(req: Requirement) -> str:
    return next(iter(req.specifier)).version


def pins_for(pins: Iterable[Requirement], env: dict[str, str]) -> dict[str, Requirement]:
    """Canonical name -> the pin that holds in ``env`` (a marker environment)."""
    out: dict[str, Requirement] = {}
    for req in pins:
        if req.marker is None or req.marker.evaluate(env):
            name = canonicalize_name(req.name)
            if name in out:
                raise PinError(f"{req.name} is pinned twice for one platform: {out[name]} and {req}")
            out[name] = req
    return out


def lock_line(name: str, version: str, marker: object = None) -> str:
    return f"{name}=={version}" + (f" ; {marker}" if marker is not None else "")


def lock_from_freeze(freeze: Iterable[str], old: Sequence[Requirement], host: dict[str, str]) -> str:
    """The new lock: ``pip freeze``'s pins of this machine, each keeping the marker its name had in
    the old lock; the old pins for other platforms kept as they were (a freeze cannot see them), but
    those of :data:`TWINS` moved to their twin's new version."""
    frozen: dict[str, tuple[str, str]] = {}
    for line in freeze:
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            frozen[canonicalize_name(name)] = (name, version)
    lines: dict[tuple[str, str], str] = {}
    for req in old:
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate(host):
            twin = canonicalize_name(TWINS.get(name, ""))
            version = frozen[twin][1] if twin in frozen else version_of(req)
            lines[name, str(req.marker)] = lock_line(req.name, version, req.marker)
    for name, (written, version) in frozen.items():
        written = next((r.name for r in old if canonicalize_name(r.name) == name), written)  # stable diffs
        markers = [r.marker for r in old if canonicalize_name(r.name) == name and r.marker is not None]
        held = [m for m in markers if m.evaluate(host)]
        lines[name, str(held[0]) if held else ""] = lock_line(written, version, held[0] if held else None)
    return "\n".join([LOCK_HEADER, *(lines[k] for k in sorted(lines))]) + "\n"


def environment_yml(pins: Sequence[Requirement]) -> str:
    """``environment.yml``: conda's Python and pip, then the lock's pins (markers kept) and the
    project itself, editable, through pip."""
    tf = next((version_of(r) for r in pins if canonicalize_name(r.name) == "tensorflow-cpu"), "<version>")
    head = [
        "# Conda users, from this folder: conda env create -f environment.yml && conda activate mmga",
        "# (the pins, then the project itself, editable). Mirrors requirements.lock exactly",
        "# (tests/test_packaging.py checks it); regenerate with make lock. NVIDIA GPU on Linux, then:",
        f"# pip uninstall -y tensorflow-cpu && pip install 'tensorflow[and-cuda]=={tf}' (or make venv GPU=1)",
        "name: mmga",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python>={PYTHON},<3.12",
        "  - pip",
        "  - pip:",
    ]
    lines = [lock_line(req.name, version_of(req), req.marker) for req in pins]
    body = [f"      - '{line}'" if ";" in line else f"      - {line}" for line in lines]
    return "\n".join([*head, *body, "      - -e .", ""])


# -- resolving for a platform ---------------------------------------------------------------------------
@dataclass
class Resolution:
    platform: str
    pins: int  # the lock's pins for this platform
    seconds: float = 0.0
    resolved: dict[str, str] = field(default_factory=dict)  # canonical name -> version pip would install
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"{self.platform}: ok, {self.pins} pins resolve to wheels for Python {PYTHON} "
                    f"({self.seconds:.0f} s)")
        return f"{self.platform}: FAILED ({self.seconds:.0f} s): " + "; ".join(self.problems)


def pip_command(platform: Platform, requirements: Path, report: Path, target: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--disable-pip-version-check", "--no-input", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", PYTHON, *(f"--platform={tag}" for tag in platform.tags),
        "--target", str(target), "--report", str(report), "-r", str(requirements),
    ]


def unmet_dependencies(report: dict, env: dict[str, str], pinned: dict[str, Requirement]) -> list[str]:
    """What the resolved packages declare they need in ``env`` that the lock does not pin there (or
    pins at a version outside the range asked for). Extras asked for anywhere count."""
    installs = {canonicalize_name(i["metadata"]["name"]): i for i in report.get("install", [])}
    extras: dict[str, set[str]] = {n: set(i.get("requested_extras") or ()) for n, i in installs.items()}
    problems: set[str] = set()
    changed = True
    while changed:  # extras asked for by a dependency add that dependency's optional requirements
        changed = False
        for name, item in installs.items():
            for text in item["metadata"].get("requires_dist") or ():
                req = Requirement(text)
                contexts = [{**env, "extra": e} for e in ("", *sorted(extras[name]))]
                if req.marker is not None and not any(req.marker.evaluate(c) for c in contexts):
                    continue
                dep = canonicalize_name(req.name)
                if dep in TOOLING:
                    continue
                if dep not in pinned:
                    problems.add(f"{item['metadata']['name']} needs {req.name}{req.specifier} there, "
                                 "not pinned")
                    continue
                if not req.specifier.contains(version_of(pinned[dep]), prereleases=True):
                    problems.add(f"{item['metadata']['name']} needs {req}, the lock pins {pinned[dep]}")
                if dep in extras and not set(req.extras) <= extras[dep]:
                    extras[dep] |= set(req.extras)
                    changed = True
    return sorted(problems)


def resolve(platform: Platform, pins: Sequence[Requirement]) -> Resolution:
    """Ask pip (and the index) whether the lock's pins for ``platform`` resolve to wheels there."""
    env = platform.environment()
    pinned = pins_for(pins, env)
    result = Resolution(platform.name, len(pinned))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"mmga-pins-{platform.name}-") as tmp:
        requirements, report = Path(tmp) / "requirements.txt", Path(tmp) / "report.json"
        requirements.write_text("".join(f"{req.name}=={version_of(req)}\n" for req in pinned.values()))
        done = subprocess.run(
            pip_command(platform, requirements, report, Path(tmp) / "target"),
            capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"},
        )
        result.seconds = time.perf_counter() - start
        if done.returncode != 0:
            errors = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")] or [done.stderr[-500:]]
            result.problems.append(" ".join(errors).strip())
            return result
        data = json.loads(report.read_text())
    result.resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
                       for i in data.get("install", [])}
    extra = sorted(set(result.resolved) - set(pinned) - TOOLING)
    if extra:
        result.problems.append("pip adds unpinned " + ", ".join(f"{n}=={result.resolved[n]}" for n in extra))
    result.problems += unmet_dependencies(data, env, pinned)
    return result


def check(names: Sequence[str], lock: Path) -> list[Resolution]:
    """Resolve the lock for each named platform, in parallel (the time is the index's)."""
    pins = read_pins(lock.read_text())
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        return list(pool.map(lambda n: resolve(PLATFORMS[n], pins), names))


def refresh_lock(lock: Path, env_file: Path) -> None:
    """``make lock``: this venv's ``pip freeze`` into the lock (markers kept), then environment.yml."""
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    freeze = [ln for ln in freeze if not canonicalize_name(ln.split("==")[0]).startswith("mmga")]
    text = lock_from_freeze(freeze, read_pins(lock.read_text()), dict(default_environment()))
    atomic_write_text(lock, text)
    atomic_write_text(env_file, environment_yml(read_pins(text)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmga_helpers.tools.pins", description="requirements.lock on every platform"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("check", help="resolve the lock for each platform against the package index")
    run.add_argument("--platform", action="append", choices=sorted(PLATFORMS), help="default: all three")
    run.add_argument("--lock", type=Path, help="another lock file (default: the project's requirements.lock)")
    sub.add_parser("lock", help="requirements.lock from pip freeze (markers kept), environment.yml from it")
    args = parser.parse_args(argv)
    lock, env_file = from_root("requirements.lock"), from_root("environment.yml")
    if args.command == "lock":
        refresh_lock(lock, env_file)
        print(f"wrote {lock} and {env_file}")
        return 0
    results = check(args.platform or list(PLATFORMS), args.lock or lock)
    for result in results:
        print(result.summary())
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
