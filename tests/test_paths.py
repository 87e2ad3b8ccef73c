"""Paths resolve from the project root wherever the process starts (mmga_helpers.core.paths).

JupyterLab starts a kernel in ``notebooks/``; ``mmga`` may be typed in any subfolder. The unit tests
build a private project (a ``pyproject.toml`` naming ``mmga-helpers``) under ``tmp_path``; the kernel
tests execute a small notebook with papermill, its kernel started in ``notebooks/`` (a few seconds
each), once in that private project and once in this repository (reading only).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml
from typer.testing import CliRunner

from mmga_helpers.core.config import ConfigError, load_config, profile_dict
from mmga_helpers.core.paths import (
    ProjectRootError,
    find_project_root,
    from_root,
    is_project_root,
    locate,
    project_root,
)
from mmga_helpers.modalities.data import DataError, project_data_dir, search_dirs
from mmga_helpers.stages.run import Run
from mmga_helpers.tools.cli import app
from mmga_helpers.tools.execution import KERNEL_NAME

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def no_root_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMGA_ROOT", raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with its marker, ``notebooks/``, a config file and a data folder beside it."""
    root = tmp_path / "proj"
    (root / "notebooks" / "deep").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "mmga-helpers"\nversion = "0"\n')
    cfg = profile_dict("quick")
    cfg["seeds"] = [7]
    (root / "configs").mkdir()
    (root / "configs" / "mine.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "shared" / "data").mkdir(parents=True)
    return root


# -- finding the root ------------------------------------------------------------------------------------
def test_markers(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    assert not is_project_root(other)
    (other / "pyproject.toml").write_text("[project\nname = 'mmga-helpers'")  # broken TOML: not ours
    assert not is_project_root(other)
    (other / "pyproject.toml").write_text('[tool.x]\nname = "mmga-helpers"\n')  # the name elsewhere
    assert not is_project_root(other)
    book = tmp_path / "book"
    (book / "mmga_helpers").mkdir(parents=True)
    assert not is_project_root(book)
    (book / "_toc.yml").write_text("root: intro\n")  # a checkout without its packaging files
    assert is_project_root(book)
    assert is_project_root(REPO)


def test_walks_up_to_the_nearest_root(project: Path, tmp_path: Path) -> None:
    assert find_project_root(project / "notebooks" / "deep") == project
    assert find_project_root(project) == project
    assert find_project_root(tmp_path) is None
    assert find_project_root(REPO / "notebooks") == REPO
    inner = project / "vendored"  # a project inside another: the nearest wins
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "mmga-helpers"\n')
    assert find_project_root(inner) == inner


def test_project_root_from_a_subfolder_env_or_nowhere(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "notebooks" / "deep")
    assert project_root() == project
    monkeypatch.chdir(tmp_path)  # no project above: the working directory (the package used elsewhere)
    assert project_root() == tmp_path
    monkeypatch.setenv("MMGA_ROOT", "proj")  # relative to the working directory
    assert project_root() == project
    monkeypatch.setenv("MMGA_ROOT", str(tmp_path / "nope"))
    with pytest.raises(ProjectRootError, match=r"MMGA_ROOT=.*nope is not a folder"):
        project_root()
    monkeypatch.setenv("MMGA_ROOT", "")  # set but empty: unset
    assert project_root() == tmp_path


def test_from_root_and_locate(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert from_root("outputs/quick") == Path("outputs/quick")  # at the root: as short as before
    assert from_root("/abs/x") == Path("/abs/x")
    monkeypatch.chdir(project / "notebooks")
    assert from_root("outputs/quick") == project / "outputs" / "quick"
    assert from_root("../shared/data").resolve() == project.parent / "shared" / "data"
    assert locate("configs/mine.yaml") == project / "configs" / "mine.yaml"  # from the root
    (project / "notebooks" / "here.yaml").write_text("x: 1\n")
    assert locate("here.yaml") == project / "notebooks" / "here.yaml"  # only beside the caller
    assert locate("nowhere.yaml") == project / "nowhere.yaml"  # neither: the root's, for the message


# -- what the project resolves -------------------------------------------------------------------------
def test_config_run_and_data_resolve_from_the_root(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "notebooks")
    monkeypatch.setenv("MMGA_DATA_DIR", "../shared/data")  # as the Makefile sets it, from the root
    cfg = load_config("configs/mine.yaml")
    assert cfg.seeds == [7]
    assert cfg.run_dir() == project / "outputs" / "quick" == cfg.run_dir(".")
    assert cfg.plot_dir().parent == project / "outputs" / "quick"
    run = Run.from_params("quick", "configs/mine.yaml", "outputs/quick", 7)
    assert run.dir == project / "outputs" / "quick" and run.models == run.dir / "models" / "seed7"
    with pytest.raises(ValueError, match="disagrees with the config"):
        Run.from_params("quick", "", "outputs/elsewhere", 0)
    assert [d.resolve() for d in search_dirs()] == [project.parent / "shared" / "data", project / "data"]
    assert project_data_dir() == project / "data"
    monkeypatch.setenv("MMGA_DATA_DIR", "../shard/data")
    with pytest.raises(DataError, match=rf"MMGA_DATA_DIR=../shard/data is not a folder \(from the project "
                                        rf"root: {project}/../shard/data\)"):
        search_dirs()
    with pytest.raises(ConfigError, match=rf"config file configs/nope.yaml not found \(looked for from the "
                                          rf"project root {project}\)"):
        load_config("configs/nope.yaml")


def _step_notebooks(root: Path) -> None:
    nb = nbformat.read(FIXTURES / "step.ipynb", as_version=4)
    for name in ("01_data", "02_image_autoencoder"):
        for cell in nb.cells:
            if cell.source.startswith("STEP ="):
                cell.source = f'STEP = "{name}"'
        nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")


def test_cli_from_a_subfolder_runs_the_projects_book(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mmga run` typed in notebooks/deep: the project's notebooks, executed at its root, outputs
    under its outputs/, the config file named from the root."""
    _step_notebooks(project)
    monkeypatch.chdir(project / "notebooks" / "deep")
    result = CliRunner().invoke(app, ["run", "--only", "01", "--config", "configs/mine.yaml"])
    assert result.exit_code == 0, result.output
    assert f"project root: {project}" in result.output
    log = (project / "outputs" / "quick" / "ran.log").read_text().splitlines()
    assert log == ["01_data quick 7 'configs/mine.yaml' outputs/quick"]
    assert not (project / "notebooks" / "deep" / "outputs").exists()
    assert "MMGA_ROOT" not in os.environ  # the kernels' root was set for the run only

    monkeypatch.setenv("MMGA_ROOT", str(project / "missing"))
    result = CliRunner().invoke(app, ["run", "--only", "01"])
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert "MMGA_ROOT=" in result.output and "missing is not a folder" in result.output


def test_cli_compare_names_files_from_the_root(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = project / "outputs" / "quick"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"a": {"mean": 1.0, "std": 0.0}}))
    monkeypatch.chdir(project / "notebooks")
    result = CliRunner().invoke(app, ["compare", "outputs/quick/metrics.json", "outputs/quick/metrics.json"])
    assert result.exit_code == 0, result.output
    assert "2 of 2 figures identical" in result.output  # mean and std


# -- a kernel started in notebooks/ ----------------------------------------------------------------------
PROBE = '''\
import json, os
from pathlib import Path
from mmga_helpers import lab
from mmga_helpers.modalities.data import search_dirs

run = lab.Run.from_params(profile, config_path, output_dir, seed)
found = {
    "cwd": os.getcwd(),
    "root": str(lab.project_root()),
    "run_dir": str(run.dir.resolve()),
    "plot_dir": str(run.cfg.plot_dir().resolve()),
    "seeds": run.cfg.seeds,
    "data_dirs": [str(d.resolve()) for d in search_dirs()],
}
if write:
    run.dir.mkdir(parents=True, exist_ok=True)
    (run.dir / "from_the_kernel.txt").write_text("written by a kernel started in notebooks/")
Path(report).write_text(json.dumps(found))
'''


def _probe(notebooks: Path, report: Path, **parameters) -> dict:
    import papermill as pm

    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nb.cells = [
        nbformat.v4.new_code_cell(
            'profile = "quick"\nseed = 0\nconfig_path = ""\noutput_dir = ""\nreport = ""\nwrite = False',
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(PROBE),
    ]
    src = report.with_suffix(".ipynb")
    nbformat.write(nb, src)
    pm.execute_notebook(str(src), str(report.with_suffix(".out.ipynb")), kernel_name=KERNEL_NAME,
                        cwd=str(notebooks), parameters={"report": str(report), **parameters},
                        progress_bar=False, log_output=False)
    return json.loads(report.read_text())


def test_a_kernel_started_in_notebooks_works_from_the_root(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMGA_DATA_DIR", "../shared/data")  # the kernel inherits it, relative to the root
    found = _probe(project / "notebooks", tmp_path / "probe.json", config_path="configs/mine.yaml",
                   output_dir="outputs/quick", seed=7, write=True)
    assert found["cwd"] == str(project / "notebooks")
    assert found["root"] == str(project)
    assert found["run_dir"] == str(project / "outputs" / "quick")
    assert found["plot_dir"].startswith(str(project / "outputs" / "quick"))
    assert found["seeds"] == [7]  # the config file, named from the root, was read
    assert found["data_dirs"] == [str(tmp_path / "shared" / "data"), str(project / "data")]
    assert (project / "outputs" / "quick" / "from_the_kernel.txt").is_file()
    assert not (project / "notebooks" / "outputs").exists()


def test_a_kernel_started_in_this_repositorys_notebooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case of the issue: JupyterLab on this checkout, a notebook's parameters cell as shipped."""
    monkeypatch.setenv("MMGA_DATA_DIR", "../shared/data")
    found = _probe(REPO / "notebooks", tmp_path / "probe.json")
    assert found["root"] == str(REPO)
    assert found["run_dir"] == str(REPO / "outputs" / "quick")
    assert found["data_dirs"] == [str((REPO / ".." / "shared" / "data").resolve()), str(REPO / "data")]
