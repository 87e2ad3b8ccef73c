"""Run the book's notebooks in order with papermill: ``mmga run``, ``mmga train|evaluate|visualize``.

Each notebook ``notebooks/NN_name.ipynb`` is executed in the project root (found from the working
directory or ``$MMGA_ROOT``, :mod:`mmga_helpers.core.paths`, so ``mmga`` typed in a subfolder runs the
same book) with its ``parameters``
cell overridden (``profile``, ``seed``, ``config_path``, ``output_dir``) into
``outputs/<profile>/notebooks/NN_name.ipynb``. The output is written under a temporary name and
renamed only when every cell succeeded (:mod:`~mmga_helpers.tools.execution`); a failed run is kept
as ``NN_name.failed.ipynb`` and never reaches the book.

A notebook is skipped when nothing it depends on changed since it last completed. Its key hashes
its source cells, its parameters, the configuration's fingerprint, the sources of the
``mmga_helpers`` package (less :mod:`mmga_helpers.tools`, which cannot change a result) and the key
of the previous notebook's last completed run, so that rerunning an upstream notebook reruns
everything after it. Keys live in ``outputs/<profile>/notebooks/run_state.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mmga_helpers.core.config import PROFILES, Config, ConfigError, load_config
from mmga_helpers.core.io import read_json, write_json
from mmga_helpers.core.paths import ROOT_ENV, from_root, locate
from mmga_helpers.tools.execution import (
    KERNEL_LOG_SUFFIX,
    NotebookFailed,
    RunError,
    check_parameters_cell,
    execute_one,
)
from mmga_helpers.tools.kernels import WarmKernel, warm_ups

NOTEBOOKS: tuple[str, ...] = (
    "01_data",
    "02_image_autoencoder",
    "03_audio_autoencoder",
    "04_clustering",
    "05_brain",
    "06_generation",
    "07_evaluation",
    "08_explorer",
)
STAGES: dict[str, tuple[str, ...]] = {
    "train": ("01_data", "02_image_autoencoder", "03_audio_autoencoder"),
    "evaluate": ("04_clustering", "05_brain", "07_evaluation"),
    "visualize": ("06_generation", "08_explorer"),
}
# Notebooks that only show the data or explore a run: the extra seeds of a profile skip them.
SEED_ONLY_ONCE: frozenset[str] = frozenset({"01_data", "08_explorer"})
NOTEBOOK_DIR = "notebooks"
STATE_FILE = "run_state.json"
# The tools only orchestrate runs, builds and benchmarks: editing them cannot change what a notebook
# computes, so they are left out of the package's hash.
_NOT_HASHED = "tools"
_HASHED_SUFFIXES = frozenset({".py", ".yaml", ".yml", ".txt", ".json"})


@dataclass
class NotebookResult:
    name: str
    status: str  # "ran" or "skipped"
    seconds: float
    output: Path


@dataclass
class RunSummary:
    profile: str
    notebook_dir: Path
    results: list[NotebookResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ran(self) -> list[str]:
        return [r.name for r in self.results if r.status == "ran"]

    @property
    def skipped(self) -> list[str]:
        return [r.name for r in self.results if r.status == "skipped"]


# -- names ------------------------------------------------------------------------------------------------
def resolve_notebook(name: str, order: Sequence[str] = NOTEBOOKS) -> str:
    """``"02_image_autoencoder"``, ``"image_autoencoder"``, ``"02"``, ``"2"`` or a path -> the name."""
    key = Path(name.strip()).name.removesuffix(".ipynb")
    for nb in order:
        number, _, short = nb.partition("_")
        if key in (nb, short) or (key.isdigit() and int(key) == int(number)):
            return nb
    raise RunError(f"unknown notebook {name!r}; choose one of: {', '.join(order)}")


def load_run_config(profile: str, config_path: str | Path | None = None) -> Config:
    """The run's config (a file wins over the profile); a bad one is a :class:`RunError`."""
    check_profile(profile)
    try:
        return load_config(config_path) if config_path else load_config(profile)
    except ConfigError as err:
        raise RunError(str(err)) from None


def config_location(config_path: str | Path | None, root: Path) -> Path | None:
    """Where a config file given to a run is: absolute as given; relative, under the run's ``root``
    when there, else from the project root or the working directory (:func:`locate`)."""
    if not config_path:
        return None
    path = Path(config_path).expanduser()
    return root / path if not path.is_absolute() and (root / path).is_file() else locate(path)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise RunError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    return profile


# -- hashing ----------------------------------------------------------------------------------------------
def _sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def notebook_source_hash(path: Path) -> str:
    """Hash of the cells' types, tags and sources: outputs and execution counts do not count."""
    nb = nbformat.read(path, as_version=4)
    cells = [
        [c.cell_type, list(c.get("metadata", {}).get("tags", [])), c.source] for c in nb.cells
    ]
    return _sha256(cells)


def package_hash() -> str:
    """sha256 over the sources and data files of ``mmga_helpers`` (:mod:`mmga_helpers.tools` excluded)."""
    pkg = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(pkg.rglob("*")):
        rel = path.relative_to(pkg)
        if (
            not path.is_file() or "__pycache__" in rel.parts or path.suffix not in _HASHED_SUFFIXES
            or rel.parts[0] == _NOT_HASHED
        ):
            continue
        digest.update(path.relative_to(pkg).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def notebook_key(source_hash: str, parameters: dict[str, Any], config_fingerprint: str, pkg_hash: str,
                 previous_key: str) -> str:
    return _sha256({
        "notebook": source_hash, "parameters": parameters, "config": config_fingerprint,
        "package": pkg_hash, "previous": previous_key,
    })


# -- state ------------------------------------------------------------------------------------------------
def read_state(notebook_dir: Path) -> dict[str, Any]:
    path = notebook_dir / STATE_FILE
    if not path.is_file():
        return {"version": 1, "notebooks": {}}
    try:
        state = read_json(path)
    except (json.JSONDecodeError, OSError):
        return {"version": 1, "notebooks": {}}  # unreadable state: everything simply reruns
    if not isinstance(state, dict) or not isinstance(state.get("notebooks"), dict):
        return {"version": 1, "notebooks": {}}
    return state


def completed_notebooks(notebook_dir: Path, order: Sequence[str] = NOTEBOOKS) -> list[Path]:
    """Executed notebooks that completed in their latest run, in book order (what the book shows)."""
    state = read_state(notebook_dir)["notebooks"]
    out = []
    for name in order:
        path = notebook_dir / f"{name}.ipynb"
        entry = state.get(name)
        if path.is_file() and (entry is None or entry.get("status") == "ok"):
            out.append(path)
    return out


@contextlib.contextmanager
def _run_lock(notebook_dir: Path) -> Iterator[None]:
    notebook_dir.mkdir(parents=True, exist_ok=True)
    with open(notebook_dir / ".run.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"another `mmga run` is executing notebooks into {notebook_dir}; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- execution --------------------------------------------------------------------------------------------
def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes}:{sec:02d} min" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{sec:02d} h"


def _stage_selection(stage: str | None, only: str | None, order: Sequence[str]) -> list[str]:
    if only and stage:
        raise RunError("give either a stage or --only, not both")
    if only:
        return [resolve_notebook(only, order)]
    if stage:
        if stage not in STAGES:
            raise RunError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
        return [nb for nb in order if nb in STAGES[stage]]
    return list(order)


def run_notebooks(
    profile: str = "quick",
    config_path: str | Path | None = None,
    *,
    only: str | None = None,
    stage: str | None = None,
    force: bool = False,
    seed: int | None = None,
    root: str | Path | None = None,
    order: Sequence[str] = NOTEBOOKS,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> RunSummary:
    """Execute the notebooks that exist, in book order (or one, or a stage's); return what ran.

    Without ``seed``, every seed of the config runs: the extra seeds first, each into
    ``notebooks/seed<s>/`` (skipping the notebooks that only show data or explore,
    :data:`SEED_ONLY_ONCE`), then the first seed into ``notebooks/``, the folder the book is built
    from, so that its evaluation notebook reports the mean ± std over all of them.

    Raises :class:`RunError` before anything runs when the request is wrong, and
    :class:`NotebookFailed` at the first failing cell (later notebooks are not run).
    """
    start = time.perf_counter()
    echo = echo or (lambda msg: print(msg, file=sys.stderr))
    root = from_root(root or ".").resolve()  # default: the project root
    config_file = config_location(config_path, root)
    cfg = load_run_config(profile, config_file)
    selection = _stage_selection(stage, only, order)
    nb_src = root / NOTEBOOK_DIR
    present = [nb for nb in order if (nb_src / f"{nb}.ipynb").is_file()]
    if only and selection[0] not in present:
        raise RunError(f"{NOTEBOOK_DIR}/{selection[0]}.ipynb does not exist (yet)")
    todo = [nb for nb in selection if nb in present]
    if not todo:
        raise RunError(f"no notebooks to run: none of {', '.join(selection)} exists under {nb_src}")
    asked: dict[str, list[str]] = {}  # what each notebook's kernel, started ahead, warms up
    for nb in todo:  # a bad notebook stops the run before anything runs
        check_parameters_cell(nb_src / f"{nb}.ipynb")
        asked[nb] = warm_ups(nb_src / f"{nb}.ipynb")

    run_dir = cfg.run_dir(root)
    keys = (cfg.fingerprint(), package_hash())  # the same for every seed: computed once
    summary = RunSummary(profile=profile, notebook_dir=run_dir / "notebooks")
    ctx = _RunContext(nb_src, present, keys, root, force, progress, echo, summary, start, asked)
    seeds = [int(seed)] if seed is not None else [int(s) for s in cfg.seeds]
    plan = [(s, run_dir / "notebooks" / f"seed{s}") for s in seeds[1:]] + [(seeds[0], run_dir / "notebooks")]
    with _kernels_rooted_at(root):
        for s, out_dir in plan:
            extra = out_dir != summary.notebook_dir
            names = [nb for nb in todo if not (extra and nb in SEED_ONLY_ONCE)]
            if len(plan) > 1:
                echo(f"seed {s}: {len(names)} notebook(s) into {_rel(out_dir, root)}")
            if names:
                parameters = {
                    "profile": profile,
                    "seed": s,
                    "config_path": "" if config_file is None else _rel(config_file.resolve(), root),
                    "output_dir": _rel(run_dir, root),
                }
                _run_sequence(ctx, names, out_dir, parameters)
    summary.seconds = time.perf_counter() - start
    return summary


@contextlib.contextmanager
def _kernels_rooted_at(root: Path) -> Iterator[None]:
    """Kernels inherit this process's environment: ``$MMGA_ROOT`` names the run's root to them, so
    a notebook resolves its paths where the runner does (even under another ``$MMGA_ROOT``)."""
    before = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ROOT_ENV, None)
        else:
            os.environ[ROOT_ENV] = before


@dataclass
class _RunContext:
    """What every seed of one ``run_notebooks`` call shares."""

    nb_src: Path  # the notebooks' sources
    present: Sequence[str]  # the notebooks that exist, in book order (each key chains to the previous)
    keys: tuple[str, str]  # the config's fingerprint and the package's hash
    root: Path
    force: bool
    progress: bool
    echo: Callable[[str], None]
    summary: RunSummary
    start: float  # perf_counter at the start of the call, for the elapsed time
    warm_ups: dict[str, list[str]]  # per notebook to run, its metadata's warm-ups (checked)


def _run_sequence(ctx: _RunContext, todo: Sequence[str], out_dir: Path, parameters: dict[str, Any]) -> None:
    """Execute ``todo`` (in order) for one seed into ``out_dir``, skipping unchanged notebooks."""
    fingerprint, pkg = ctx.keys
    nb_src, present, echo, summary, force = ctx.nb_src, ctx.present, ctx.echo, ctx.summary, ctx.force
    interactive = ctx.progress and sys.stderr.isatty()

    warm: dict[str, WarmKernel] = {}  # the next notebook's kernel, started while one runs
    with _run_lock(out_dir), _stopping(warm):
        for stale in out_dir.glob(".*.partial.ipynb"):  # left by a run killed with SIGKILL
            stale.unlink(missing_ok=True)
        state = read_state(out_dir)
        entries: dict[str, Any] = state["notebooks"]
        for i, name in enumerate(todo, 1):
            kernel = warm.pop(name, None)
            src = nb_src / f"{name}.ipynb"
            dst = out_dir / f"{name}.ipynb"
            pos = present.index(name)
            previous = entries.get(present[pos - 1], {}).get("key", "") if pos else ""
            key = notebook_key(notebook_source_hash(src), parameters, fingerprint, pkg, previous)
            entry = entries.get(name, {})
            tag = f"[{i}/{len(todo)}] {name}"
            if not force and entry.get("key") == key and entry.get("status") == "ok" and dst.is_file():
                if kernel is not None:
                    kernel.shutdown()
                echo(f"{tag}: unchanged since {entry.get('finished', '?')}, skipped (--force reruns it)")
                summary.results.append(NotebookResult(name, "skipped", 0.0, dst))
                continue
            echo(f"{tag}: running ...")
            t0 = time.perf_counter()
            bar: bool | dict[str, Any] = {"desc": f"  {name}", "leave": False} if interactive else False
            if i < len(todo):  # its imports run while this notebook does
                following = todo[i]
                with contextlib.suppress(Exception):  # no head start: that notebook starts its own kernel,
                    # and a kernel that cannot start is then reported as its failure (execute_one)
                    log = out_dir / f"{following}{KERNEL_LOG_SUFFIX}"
                    warm[following] = WarmKernel(log, ctx.root, ctx.warm_ups[following])
            try:
                execute_one(src, dst, parameters, ctx.root, name, progress_bar=bar,
                            kernel_manager=None if kernel is None else kernel.take())
            except NotebookFailed:
                entries[name] = {"key": key, "status": "failed", "finished": _now(),
                                 "seconds": round(time.perf_counter() - t0, 2)}
                write_json(out_dir / STATE_FILE, state)
                raise
            finally:
                if kernel is not None:
                    kernel.shutdown()
            seconds = time.perf_counter() - t0
            entries[name] = {"key": key, "status": "ok", "finished": _now(), "seconds": round(seconds, 2),
                             "parameters": parameters, "config_fingerprint": fingerprint}
            write_json(out_dir / STATE_FILE, state)
            summary.results.append(NotebookResult(name, "ran", seconds, dst))
            elapsed = format_seconds(time.perf_counter() - ctx.start)
            echo(f"{tag}: done in {format_seconds(seconds)} (elapsed {elapsed})")


@contextlib.contextmanager
def _stopping(warm: dict[str, WarmKernel]) -> Iterator[None]:
    """Stop the kernels started ahead that no notebook took (a failure, an interrupt)."""
    try:
        yield
    finally:
        for kernel in warm.values():
            kernel.shutdown()
        warm.clear()


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


__all__ = [
    "NOTEBOOKS", "STAGES", "NotebookResult", "RunSummary", "completed_notebooks", "package_hash",
    "resolve_notebook", "run_notebooks",
]
