"""The package's house rules, read from the code: layers import only downwards, no import cycles,
no module over 450 lines, and imports of the package's own modules at module level.

The layers, lowest first (a module may import its own layer and those below it):

    core -> modalities -> learn -> generation (the public API) -> stages -> evaluation -> display
    -> lab (the notebooks' surface) -> tools

Every import counts, at module level or inside a function, ``import x`` and ``from x import y``
alike, relative or absolute; ``if TYPE_CHECKING:`` imports count too (a type from above is a
dependency on above). The same checks run on a small synthetic package that breaks each rule, so
that a check which could not fail cannot pass here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmga_helpers"
LAYERS = ("core", "modalities", "learn", "generation", "stages", "evaluation", "display", "lab", "tools")
DATA_FOLDERS = {"profiles", "manifests"}  # hold YAML and checksum files, no code
MAX_LINES = 450
# Modules allowed to import a package module inside a function, and why.
LAZY_PACKAGE_IMPORTS = {
    "mmga_helpers": "`from mmga_helpers import MMGA` loads the API (and TensorFlow) only when asked",
    "mmga_helpers.tools.cli": "`mmga --help` and `mmga run` start without loading TensorFlow",
    "mmga_helpers.tools.webcli": "`mmga --help` starts without loading TensorFlow or Selenium",
}


# Third-party modules a function may import when it runs, rather than its module at import time.
DELIBERATE_LAZY = {
    "tensorflow": "seconds to import; only training and inference need it",
    "keras": "imports TensorFlow",
    "umap": "seconds to import (it probes TensorFlow); only UMAP clustering and views need it",
    "librosa": "slow to import; only the MFCC judge and baseline need it",
    "matplotlib": "slow to import; only figures need it",
    "plotly": "slow to import; only figures need it",
    "IPython": "only a notebook displays",
    "ipywidgets": "only a live JupyterLab kernel shows widgets",
    "anywidget": "only a live JupyterLab kernel shows the canvas and recorder (it imports ipywidgets)",
    "papermill": "only executing a notebook needs it",
    "jupyter_client": "only executing a notebook needs it",
    "zmq": "only executing a notebook needs it",
    "traitlets": "only executing a notebook, or a widget's synced attributes, needs it",
    "pooch": "only a missing data file needs the network stack",
}


# -- reading the code ------------------------------------------------------------------------------
def read_modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path
    return out


def imports_of(module: str, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """``(imported package module, inside a function)`` for every import statement of ``module``."""
    path = modules[module]
    root = module.split(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    up = ".".join(parts[: len(parts) - child.level + 1])
                    base = f"{up}.{base}" if base else up
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in child.names]
            for target in targets:
                if target.split(".")[0] == root and (hit := resolve(target)) and hit != module:
                    found.append((hit, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def layer_of(module: str) -> int:
    """The layer index of a package module; the package root sits with the public API it serves."""
    parts = module.split(".")
    return LAYERS.index("generation" if len(parts) == 1 else parts[1])


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {m: {t for t, _ in imports_of(m, modules)} for m in modules}


# -- the rules -------------------------------------------------------------------------------------------
def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{m} ({LAYERS[layer_of(m)]}) imports {t} ({LAYERS[layer_of(t)]})"
        for m in sorted(graph)
        for t in sorted(graph[m])
        if layer_of(t) > layer_of(m)
    ]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path ``[a, b, ..., a]``, or ``[]``: a depth-first search over every
    edge, where an edge back to a module on the current path closes a cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def oversized(modules: dict[str, Path]) -> list[str]:
    sizes = {m: len(p.read_text().splitlines()) for m, p in modules.items()}
    return [f"{m}: {n} lines" for m, n in sorted(sizes.items()) if n > MAX_LINES]


def lazy_package_imports(modules: dict[str, Path]) -> list[str]:
    return [
        f"{m} imports {t} inside a function"
        for m in sorted(modules)
        if m not in LAZY_PACKAGE_IMPORTS
        for t, inside in sorted(set(imports_of(m, modules)))
        if inside
    ]


def defined_names(path: Path) -> set[str]:
    """Names a module defines itself at its top level (functions, classes, assignments), not the
    ones it imports."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))

    visit(ast.parse(path.read_text()).body)
    return names


def reexports(files: list[Path], modules: dict[str, Path], surfaces: set[str]) -> list[str]:
    """``from mmga_helpers.x import y`` where ``x`` only imports ``y`` from elsewhere: a name
    re-exported this way can be patched in one module while another keeps the original."""
    out = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module not in modules:
                continue
            if node.module in surfaces:
                continue
            own = defined_names(modules[node.module])
            for alias in node.names:
                if alias.name not in own and f"{node.module}.{alias.name}" not in modules:
                    out.append(f"{path.name}: from {node.module} import {alias.name}")
    return out


def lazy_third_party_imports(modules: dict[str, Path]) -> list[str]:
    """Third-party modules imported inside a function, outside :data:`DELIBERATE_LAZY`."""
    out = []
    for module, path in sorted(modules.items()):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top != "mmga_helpers" and top not in DELIBERATE_LAZY:
                        out.append(f"{module}.{fn.name} imports {name}")
    return sorted(set(out))


MODULES = read_modules(PACKAGE)
GRAPH = import_graph(MODULES)
# Modules that gather names defined elsewhere on purpose: the notebooks' surface, the package root.
SURFACES = {"mmga_helpers.lab", "mmga_helpers"}


# -- the package -----------------------------------------------------------------------------------------
def test_every_module_sits_in_a_layer() -> None:
    """The package is its root, one module or subpackage per layer, and the modules of those
    subpackages (plus the two data folders): nothing sits outside the layers."""
    assert {m.split(".")[1] for m in MODULES if m != "mmga_helpers"} == set(LAYERS)
    assert [m for m in MODULES if len(m.split(".")) > 3] == []
    folders = {p.name for p in PACKAGE.glob("*/*/") if p.name != "__pycache__"}
    assert folders <= DATA_FOLDERS, folders


def test_no_upward_import() -> None:
    assert upward_imports(GRAPH) == []


def test_no_import_cycle() -> None:
    assert find_cycle(GRAPH) == []


def test_no_module_over_450_lines() -> None:
    assert oversized(MODULES) == []


def test_package_imports_at_module_level() -> None:
    """Imports of the package's own modules sit at the top of the module (the lazy ones left are
    third-party libraries slow to import: TensorFlow, Keras, UMAP, librosa, matplotlib, widgets)."""
    assert lazy_package_imports(MODULES) == []


def test_third_party_imports_at_module_level() -> None:
    """Only the slow or rarely needed libraries of :data:`DELIBERATE_LAZY` load inside functions."""
    assert lazy_third_party_imports(MODULES) == []


def test_no_reexported_names() -> None:
    """Package and tests import every name from the module that defines it (the notebooks import
    from the ``lab`` surface), so a test that patches a name patches the one that is used."""
    files = [*MODULES.values(), *sorted((PACKAGE.parent / "tests").glob("*.py"))]
    assert reexports(files, MODULES, SURFACES) == []


def test_public_api_needs_nothing_above_it() -> None:
    """What ``MMGA.load(run).hear/see`` needs, transitively, lies in core, modalities and learn."""
    seen, todo = set(), ["mmga_helpers.generation"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(GRAPH[module])
    below = {"core", "modalities", "learn"}
    assert sorted(m for m in seen - {"mmga_helpers.generation"} if m.split(".")[1] not in below) == []


# -- the checks themselves ------------------------------------------------------------------------------
def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = root / "mmga_helpers" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_modules(root / "mmga_helpers")


def test_the_checks_catch_each_broken_rule(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/low.py": "from mmga_helpers.tools.top import x\n",  # upward
            "learn/__init__.py": "",
            "learn/a.py": "from . import b\n",  # relative, and a cycle a -> b -> a
            "learn/b.py": "def f():\n    import mmga_helpers.learn.a\n    import json\n",  # lazy
            "tools/__init__.py": "",
            "tools/top.py": "x = 1\n" + "y = 2\n" * MAX_LINES,  # too long
        },
    )
    graph = import_graph(modules)
    assert upward_imports(graph) == ["mmga_helpers.core.low (core) imports mmga_helpers.tools.top (tools)"]
    assert find_cycle(graph) == ["mmga_helpers.learn.a", "mmga_helpers.learn.b", "mmga_helpers.learn.a"]
    assert oversized(modules) == [f"mmga_helpers.tools.top: {MAX_LINES + 1} lines"]
    lazy = ["mmga_helpers.learn.b imports mmga_helpers.learn.a inside a function"]
    assert lazy_package_imports(modules) == lazy
    assert lazy_third_party_imports(modules) == ["mmga_helpers.learn.b.f imports json"]
    user = tmp_path / "user.py"
    user.write_text("from mmga_helpers.core.low import x\nfrom mmga_helpers.tools.top import y\n")
    assert reexports([user], modules, set()) == ["user.py: from mmga_helpers.core.low import x"]


@pytest.mark.parametrize("module", sorted(LAZY_PACKAGE_IMPORTS))
def test_the_allowed_lazy_imports_exist(module: str) -> None:
    """An allowance nobody uses any more is dropped, so the list says only what is true."""
    assert any(inside for _, inside in imports_of(module, MODULES)), module
