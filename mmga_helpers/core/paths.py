"""Where the project is, so that every path it names means the same folder from anywhere.

JupyterLab starts a notebook's kernel in ``notebooks/``; ``mmga`` may be typed in a subfolder. Both
must find ``outputs/``, ``data/`` and a config file given relatively where a run from the root
would. The project root is, first match wins:

1. ``$MMGA_ROOT`` when set (relative to the working directory; it must be a folder: a typo there
   should not send a run's outputs somewhere else);
2. the nearest folder at or above the working directory holding the project's marker files: a
   ``pyproject.toml`` whose ``[project]`` is ``mmga-helpers``, or ``_toc.yml`` beside ``mmga_helpers/``
   (a checkout without its packaging files);
3. the working directory (the package installed elsewhere and used from a person's own folder).

:func:`from_root` resolves a relative path from there. When the root is the working directory the
path stays relative, so messages read ``outputs/quick`` as they always did; from elsewhere it is
absolute.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT_ENV = "MMGA_ROOT"
PROJECT_NAME = "mmga-helpers"
PACKAGE_DIR = "mmga_helpers"
BOOK_TOC = "_toc.yml"


class ProjectRootError(ValueError):
    """``$MMGA_ROOT`` names no folder."""


def is_project_root(folder: Path | str) -> bool:
    """Whether ``folder`` holds the project's marker files (see the module's docstring)."""
    folder = Path(folder)
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            project = {}  # an unreadable pyproject.toml is not this project's
        if isinstance(project, dict) and project.get("name") == PROJECT_NAME:
            return True
    return (folder / BOOK_TOC).is_file() and (folder / PACKAGE_DIR).is_dir()


def find_project_root(start: Path | str | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) that
    :func:`is_project_root`, as an absolute path; None when there is none."""
    here = Path.cwd() if start is None else Path(start).expanduser().resolve()
    for folder in (here, *here.parents):
        if is_project_root(folder):
            return folder
    return None


def project_root() -> Path:
    """The project root, absolute: ``$MMGA_ROOT``, else the marked folder at or above the working
    directory, else the working directory. Raises :class:`ProjectRootError` when ``$MMGA_ROOT`` is
    set to something that is not a folder."""
    given = os.environ.get(ROOT_ENV, "")
    if given:
        root = Path(given).expanduser().resolve()
        if not root.is_dir():
            raise ProjectRootError(
                f"{ROOT_ENV}={given} is not a folder; point it at the project (the folder holding "
                "pyproject.toml and notebooks/) or unset it to find the project from the working directory"
            )
        return root
    return find_project_root() or Path.cwd()


def from_root(path: Path | str = ".") -> Path:
    """``path`` as given when absolute; else under :func:`project_root`, written relative to the
    working directory when that is the root (the same folder, in fewer characters), absolute
    otherwise."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    root = project_root()
    return path if root == Path.cwd() else root / path


def locate(path: Path | str) -> Path:
    """An input file a person names (a config file): absolute as given; relative, under the project
    root, or else under the working directory when it exists only there (``mmga run -c my.yaml``
    typed in the folder holding ``my.yaml``). When it exists in neither, the root's candidate."""
    path = Path(path).expanduser()
    candidate = from_root(path)
    if not candidate.exists() and not path.is_absolute() and (Path.cwd() / path).exists():
        return Path.cwd() / path
    return candidate


def finished_run(run: Path | str | None = None) -> Path:
    """The run a command works on: ``run`` (from the project root), else the first of
    ``outputs/full`` and ``outputs/quick`` that holds a manifest ``mmga.json`` (``outputs/full``
    when neither does, so that the error names it)."""
    candidates = [from_root(run)] if run else [from_root("outputs/full"), from_root("outputs/quick")]
    return next((c for c in candidates if (c / "mmga.json").is_file()), candidates[0])


__all__ = [
    "PROJECT_NAME",
    "ROOT_ENV",
    "ProjectRootError",
    "find_project_root",
    "finished_run",
    "from_root",
    "is_project_root",
    "locate",
    "project_root",
]
