"""The book's live page (``book/live.md``): its ES modules (``live/*.js`` in the project), the
onnxruntime-web files it runs the networks with (from npm, pinned by ``package.json`` and
``package-lock.json``), and a finished run's web export (``mmga export-web``), put into a built site:

* ``<site>/live/*.js`` and ``<site>/live/ort/`` (only the single-threaded WebAssembly build:
  ``ort.wasm.min.mjs``, its loader and its ``.wasm``, gzipped: 14.8 MB become 3.8 MB, and the page
  inflates it with the browser's ``DecompressionStream``), so the page works offline, with no CDN;
* ``<site>/web/``: the export;
* ``<site>/live/state.json``: whether the page can run and, if not, why (the page says so).

``npm ci`` runs only when ``node_modules`` does not hold what the lock pins (a stamp of the lock's
sha256 is kept in ``node_modules``); without npm the book is still built, and the page says what is
missing.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmga_helpers.core.io import atomic_write_bytes, atomic_write_text
from mmga_helpers.core.stamps import file_sha256

LIVE_DIR = "live"  # the page's modules, in the project and in the site
ORT_DIR = "ort"  # onnxruntime-web's files, under the site's live/
WEB_DIR = "web"  # the run's export, in the site
STATE_FILE = "state.json"
ORT_PACKAGE = "onnxruntime-web"
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
SHIPPED = (*ORT_FILES[:2], ORT_FILES[2] + ".gz")  # what the site holds: the .wasm gzipped
_STAMP = ".mmga-lock-sha256"  # in node_modules: the sha256 of the lock it was installed from
NPM_TIMEOUT_S = 600


@dataclass
class LiveState:
    """Whether the live page can run in a site, and the one line that says why not."""

    ready: bool
    why: str = ""
    ort_version: str | None = None


def npm_ci(root: Path) -> tuple[Path | None, str]:
    """``npm ci`` in ``root`` unless ``node_modules`` already holds the lock's packages; the folder
    of onnxruntime-web's built files, or None and why not (one line)."""
    lock = root / "package-lock.json"
    dist = root / "node_modules" / ORT_PACKAGE / "dist"
    if not lock.is_file() or not (root / "package.json").is_file():
        return None, f"{root} has no package.json and package-lock.json"
    stamp = root / "node_modules" / _STAMP
    have = all((dist / name).is_file() for name in ORT_FILES)
    if have and stamp.is_file() and stamp.read_text().strip() == file_sha256(lock):
        return dist, ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm was not found (install Node.js 20 with npm, then rebuild the book)"
    cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=NPM_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return None, f"npm ci took over {NPM_TIMEOUT_S} s (is the npm registry reachable?)"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        return None, f"npm ci failed (exit {proc.returncode}): {last}"
    if not all((dist / name).is_file() for name in ORT_FILES):
        return None, f"npm ci did not install {ORT_PACKAGE}'s {', '.join(ORT_FILES)}"
    atomic_write_text(stamp, file_sha256(lock) + "\n")
    return dist, ""


def _version(dist: Path) -> str | None:
    try:
        return str(json.loads((dist.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def install_live(site: Path, root: Path, export: Path | None, echo: Callable[[str], None]) -> LiveState:
    """Put the live page's modules, onnxruntime-web and the run's ``export`` (None: no finished run)
    into the built ``site``; one line through ``echo`` when the page cannot run."""
    site, root = Path(site), Path(root)
    modules = sorted((root / LIVE_DIR).glob("*.js"))
    if not modules:
        echo(f"live page absent: {root / LIVE_DIR} holds no modules")
        return LiveState(False, "the page's scripts were not shipped")
    target = site / LIVE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for module in modules:
        shutil.copy2(module, target / module.name)
    dist, why = npm_ci(root)
    state = LiveState(True, ort_version=None if dist is None else _version(dist))
    if dist is not None:
        (target / ORT_DIR).mkdir(exist_ok=True)
        for name in ORT_FILES[:2]:
            shutil.copy2(dist / name, target / ORT_DIR / name)
        wasm = gzip.compress((dist / ORT_FILES[2]).read_bytes(), compresslevel=9, mtime=0)
        atomic_write_bytes(target / ORT_DIR / SHIPPED[2], wasm)
    else:
        state = LiveState(False, f"onnxruntime-web was not shipped with this book: {why}")
    if export is not None and (export / "manifest.json").is_file():
        if (site / WEB_DIR).exists():
            shutil.rmtree(site / WEB_DIR)
        shutil.copytree(export, site / WEB_DIR)
    elif state.ready:
        state = LiveState(False, "this book was built without a finished run's web export "
                          "(`mmga run`, then `mmga book`)", state.ort_version)
    atomic_write_text(target / STATE_FILE, json.dumps(
        {"ready": state.ready, "why": state.why, "onnxruntime_web": state.ort_version}, indent=1) + "\n")
    if not state.ready:
        echo(f"live page inactive: {state.why}")
    return state


def page_markup(root: Path) -> str:
    """The live page's HTML (the ``{raw} html`` block of ``book/live.md``), for a bare page."""
    text = (Path(root) / "book" / "live.md").read_text()
    start = text.index("```{raw} html\n") + len("```{raw} html\n")
    return text[start : text.index("\n```", start)]


def bare_site(site: Path, root: Path, export: Path | None, echo: Callable[[str], None]) -> LiveState:
    """A site of the live page alone (``<site>/book/live.html``, as in the book, without the
    theme): what the browser tests and ``mmga web-parity`` open."""
    page = Path(site) / "book" / "live.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    head = "<meta charset='utf-8'><title>MMGA live</title><link rel='icon' href='data:,'>"
    html = f"<!DOCTYPE html>\n<html><head>{head}</head>\n<body>\n{page_markup(root)}\n</body></html>\n"
    atomic_write_text(page, html)
    return install_live(site, root, export, echo)


def folder_bytes(folder: Path) -> int:
    """The size of every file under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
