"""``mmga run``: order, skipping, --force, cascading reruns, failures that never reach the book.

Fixture notebooks (tests/fixtures) are copied into a private project root under ``tmp_path``; each
run of ``step.ipynb`` appends its name and parameters to ``outputs/quick/ran.log``, so the log says
exactly which notebooks executed. Each execution starts a kernel (a few seconds).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from mmga_helpers.tools import runner
from mmga_helpers.tools.cli import app
from mmga_helpers.tools.execution import NotebookFailed, RunError
from mmga_helpers.tools.kernels import WARM_UPS, warm_ups
from mmga_helpers.tools.runner import completed_notebooks, resolve_notebook, run_notebooks

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ("01_data", "02_image_autoencoder", "03_audio_autoencoder")


def write_step(root: Path, name: str, fixture: str = "step.ipynb", extra_cell: str | None = None) -> Path:
    nb = nbformat.read(FIXTURES / fixture, as_version=4)
    for cell in nb.cells:
        if cell.source.startswith('STEP = "step"'):
            cell.source = f'STEP = "{name}"'
    if extra_cell is not None:
        nb.cells.append(nbformat.v4.new_code_cell(extra_cell))
    path = root / "notebooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for name in NAMES:
        write_step(root, name)
    return root


def ran(root: Path) -> list[str]:
    log = root / "outputs" / "quick" / "ran.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.is_file() else []


def run(root: Path, **kwargs) -> runner.RunSummary:
    messages: list[str] = []
    summary = run_notebooks("quick", root=root, progress=False, echo=messages.append, **kwargs)
    assert len(messages) == len(summary.results) * 2 - len(summary.skipped)  # running + done, or skipped
    return summary


def test_run_in_order_then_skip_force_and_cascade(project: Path) -> None:
    out = project / "outputs" / "quick" / "notebooks"

    first = run(project)
    assert first.ran == list(NAMES)
    assert ran(project) == list(NAMES)
    line = (project / "outputs" / "quick" / "ran.log").read_text().splitlines()[0]
    assert line == "01_data quick 0 '' outputs/quick"  # parameters injected; "" stays a string
    for name in NAMES:
        executed = nbformat.read(out / f"{name}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    state = json.loads((out / "run_state.json").read_text())
    assert [state["notebooks"][n]["status"] for n in NAMES] == ["ok"] * 3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.suffix == ".ipynb"]

    second = run(project)  # nothing changed: nothing executes
    assert second.skipped == list(NAMES) and second.ran == []
    assert ran(project) == list(NAMES)

    write_step(project, "02_image_autoencoder", extra_cell="y = 2")  # an edit reruns it and what follows
    third = run(project)
    assert third.skipped == ["01_data"] and third.ran == ["02_image_autoencoder", "03_audio_autoencoder"]
    assert ran(project) == [*NAMES, "02_image_autoencoder", "03_audio_autoencoder"]

    forced = run(project, only="03", force=True)
    assert forced.ran == ["03_audio_autoencoder"]
    assert ran(project)[-1] == "03_audio_autoencoder"

    assert run(project, stage="train").skipped == list(NAMES)
    assert completed_notebooks(out) == [out / f"{n}.ipynb" for n in NAMES]


def test_failing_notebook_stops_the_run_and_never_reaches_the_final_path(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = project / "outputs" / "quick" / "notebooks"
    (project / "notebooks" / "03_audio_autoencoder.ipynb").unlink()
    run(project)
    good = (out / "02_image_autoencoder.ipynb").read_bytes()

    write_step(project, "02_image_autoencoder", fixture="fails.ipynb")
    write_step(project, "03_audio_autoencoder")
    with pytest.raises(NotebookFailed) as info:
        run(project)
    err = info.value
    assert (err.notebook, err.cell_index, err.ename) == ("02_image_autoencoder", 3, "ValueError")
    assert err.evalue == "deliberate failure for the runner test"
    assert err.failed_path == out / "02_image_autoencoder.failed.ipynb" and err.failed_path.is_file()
    assert (out / "02_image_autoencoder.ipynb").read_bytes() == good  # the failed run never lands there
    assert not (out / "03_audio_autoencoder.ipynb").exists()  # the run stopped at the failure
    assert ran(project) == ["01_data", "02_image_autoencoder"]
    assert completed_notebooks(out) == [out / "01_data.ipynb"]  # what the book may show
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.suffix == ".ipynb"]

    # the same through the command line: one fact per line, exit code 1
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["run", "--profile", "quick", "--only", "image_autoencoder"])
    assert result.exit_code == 1, result.output
    lines = [ln.removeprefix("error: ") for ln in result.output.splitlines() if ln.startswith("error:")]
    assert lines[0] == "notebook 02_image_autoencoder failed"
    assert lines[1].startswith("cell: 3 (In [") and "raise ValueError" in lines[1]
    assert lines[2] == "error: ValueError: deliberate failure for the runner test"
    assert "02_image_autoencoder.failed.ipynb" in lines[3]


def test_every_seed_of_the_config_runs_the_first_last(project: Path) -> None:
    """Without --seed, a profile with seeds [3, 5] runs seed 5 into notebooks/seed5 (less the
    data-only notebook), then seed 3 into notebooks/, the folder the book reads."""
    import yaml

    from mmga_helpers.core.config import profile_dict

    cfg = profile_dict("quick")
    cfg["seeds"] = [3, 5]
    (project / "two_seeds.yaml").write_text(yaml.safe_dump(cfg))
    messages: list[str] = []
    summary = run_notebooks(
        "quick", project / "two_seeds.yaml", root=project, progress=False, echo=messages.append
    )
    log = (project / "outputs" / "quick" / "ran.log").read_text().splitlines()
    assert [line.split()[:3] for line in log] == [
        ["02_image_autoencoder", "quick", "5"],
        ["03_audio_autoencoder", "quick", "5"],
        ["01_data", "quick", "3"],
        ["02_image_autoencoder", "quick", "3"],
        ["03_audio_autoencoder", "quick", "3"],
    ]
    out = project / "outputs" / "quick" / "notebooks"
    assert completed_notebooks(out) == [out / f"{n}.ipynb" for n in NAMES]
    assert completed_notebooks(out / "seed5") == [out / "seed5" / f"{n}.ipynb" for n in NAMES[1:]]
    assert summary.ran == [*NAMES[1:], *NAMES]
    assert [m for m in messages if m.startswith("seed")] == [
        "seed 5: 2 notebook(s) into outputs/quick/notebooks/seed5",
        "seed 3: 3 notebook(s) into outputs/quick/notebooks",
    ]
    again = run_notebooks("quick", project / "two_seeds.yaml", root=project, progress=False, echo=print)
    assert again.ran == [] and len(again.skipped) == 5


def test_names_and_request_errors(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aliases = ("02_image_autoencoder", "image_autoencoder", "02", "2", "notebooks/02_image_autoencoder.ipynb")
    for alias in aliases:
        assert resolve_notebook(alias) == "02_image_autoencoder"
    assert [nb for nb in runner.NOTEBOOKS if nb in runner.STAGES["evaluate"]] == [
        "04_clustering", "05_brain", "07_evaluation"
    ]
    with pytest.raises(RunError, match="unknown notebook 'nope'"):
        resolve_notebook("nope")
    with pytest.raises(RunError, match="unknown profile 'medium'"):
        run_notebooks("medium", root=project)
    with pytest.raises(RunError, match=r"05_brain.ipynb does not exist"):
        run_notebooks("quick", root=project, only="05")
    with pytest.raises(RunError, match=r"config file .* not found"):
        run_notebooks("quick", project / "missing.yaml", root=project)
    nb = nbformat.read(FIXTURES / "step.ipynb", as_version=4)
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, project / "notebooks" / "01_data.ipynb")
    with pytest.raises(RunError, match="no cell is tagged 'parameters'"):
        run_notebooks("quick", root=project)
    write_step(project, "01_data")
    nb = nbformat.read(project / "notebooks" / "02_image_autoencoder.ipynb", as_version=4)
    nb.metadata["mmga"] = {"warm_up": ["umpa"]}
    nbformat.write(nb, project / "notebooks" / "02_image_autoencoder.ipynb")
    with pytest.raises(RunError, match=r"unknown warm-up \['umpa'\]"):  # before any notebook ran
        run_notebooks("quick", root=project)
    assert not (project / "outputs" / "quick" / "ran.log").exists()

    monkeypatch.chdir(project)
    cli = CliRunner()
    for args in (["run", "--profile", "medium"], ["run", "--only", "nope"], ["evaluate"]):
        result = cli.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output


def test_key_changes_with_every_input() -> None:
    base = dict(source_hash="a", parameters={"seed": 0}, config_fingerprint="c", pkg_hash="p",
                previous_key="")
    key = runner.notebook_key(**base)
    for field, value in [("source_hash", "b"), ("parameters", {"seed": 1}), ("config_fingerprint", "d"),
                         ("pkg_hash", "q"), ("previous_key", "k")]:
        assert runner.notebook_key(**{**base, field: value}) != key, field
    assert runner.package_hash() == runner.package_hash()


def test_unwritable_outputs_folder_is_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mmga run` with an outputs folder it may not write (root ignores chmod, so mkdir refuses):
    one error line naming the folder and the fix, exit code 2, no traceback."""
    import errno

    monkeypatch.chdir(project)
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if "outputs" in self.parts:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = CliRunner().invoke(app, ["run", "--profile", "quick"])
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "outputs" in errors[0] and "Permission denied" in errors[0] and "writable" in errors[0]
    assert "Traceback" not in result.output and ran(project) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_at_the_notebook_it_was_in(project: Path, signum: int) -> None:
    """`mmga run` killed (SIGTERM or SIGKILL) inside notebook 02: the finished 01 stays, no partial
    02 or temporary file is left, and the next run skips 01 and runs 02 and 03."""
    hold = (
        "import time\n"
        "if Path('hold').exists():\n"
        "    (log.parent / 'in_02').touch()\n"
        "    time.sleep(120)"
    )
    write_step(project, "02_image_autoencoder", extra_cell=hold)
    (project / "hold").touch()
    out = project / "outputs" / "quick"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmga_helpers.tools.cli", "run", "--profile", "quick"],
        cwd=project, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "in_02").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "never reached notebook 02"
            time.sleep(0.2)
        os.kill(proc.pid, signum)  # the run itself, as `kill <pid>` would
        proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its kernel, orphaned by SIGKILL
    nbs = out / "notebooks"
    partial = lambda: sorted(p.name for p in nbs.glob(".*.partial.ipynb"))  # noqa: E731
    finished = sorted(p.name for p in nbs.glob("*.ipynb") if not p.name.startswith("."))
    assert finished == ["01_data.ipynb"]  # no 02, complete or not
    if signum == signal.SIGTERM:  # unwound: the temporary notebook went with the run
        assert proc.returncode != 0 and partial() == []
    (project / "hold").unlink()
    summary = run(project)
    assert summary.skipped == ["01_data"] and partial() == []  # a SIGKILL's leftover is swept
    assert ran(project) == ["01_data", "02_image_autoencoder", "02_image_autoencoder", "03_audio_autoencoder"]
    assert completed_notebooks(nbs) == [nbs / f"{n}.ipynb" for n in NAMES]


def test_kernel_console_output_goes_to_its_log_not_the_terminal(tmp_path: Path, capfd) -> None:
    """What a kernel writes to its own file descriptors (TensorFlow's C++ log lines, absl's banner)
    stays out of ``mmga run``'s terminal and lands in ``<name>.kernel.log``; what a cell prints
    stays in the executed notebook."""
    root = tmp_path / "proj"
    noisy = (
        'import os\nos.write(2, b"KERNEL-NOISE fd2\\n")\nos.write(1, b"KERNEL-NOISE fd1\\n")\n'
        'print("CELL-OUTPUT")'
    )
    write_step(root, "01_data", extra_cell=noisy)
    run(root)
    captured = capfd.readouterr()
    assert "KERNEL-NOISE" not in captured.out + captured.err
    out = root / "outputs" / "quick" / "notebooks"
    log = (out / "01_data.kernel.log").read_text()
    assert "KERNEL-NOISE fd2" in log and "KERNEL-NOISE fd1" in log
    assert "CELL-OUTPUT" in (out / "01_data.ipynb").read_text()


def test_the_next_notebook_starts_in_a_kernel_that_has_imported_ahead(tmp_path: Path) -> None:
    """While a notebook runs, the next one's kernel starts and imports TensorFlow and the package; the
    notebook then runs in it from its own first cell (execution count 1), and no kernel is left."""
    root = tmp_path / "proj"
    probe = "import sys\nprint(sorted(m for m in ('tensorflow', 'mmga_helpers.lab') if m in sys.modules))"
    for name in NAMES[:2]:
        write_step(root, name, extra_cell=probe)
    run(root)
    out = root / "outputs" / "quick" / "notebooks"
    first, second = (nbformat.read(out / f"{n}.ipynb", as_version=4) for n in NAMES[:2])
    assert first.cells[-1].outputs[0]["text"].strip() == "[]"  # a kernel of its own, nothing ahead
    assert second.cells[-1].outputs[0]["text"].strip() == "['mmga_helpers.lab', 'tensorflow']"
    counts = [c.execution_count for c in second.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert (out / f"{NAMES[1]}.kernel.log").is_file()
    time.sleep(1)  # kernels are children of this process: none may outlive the run
    left = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "ipykernel"], capture_output=True)
    assert left.stdout == b"", left.stdout


def test_a_kernel_that_cannot_start_ahead_costs_only_the_head_start(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the next kernel ahead is an optimisation: when it fails, each notebook starts its own."""

    def refuse(*args, **kwargs):
        raise RuntimeError("no kernel ahead")

    monkeypatch.setattr(runner, "WarmKernel", refuse)
    assert run(project).ran == list(NAMES)


def test_notebooks_ask_only_for_known_warm_ups(tmp_path: Path) -> None:
    """A notebook's metadata may ask its kernel, started ahead, to compile UMAP before it starts;
    the notebooks that cluster do, and a name the runner does not know is an error."""
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    asked = {p.stem: warm_ups(p) for p in sorted(notebooks.glob("*.ipynb"))}
    assert asked["04_clustering"] == asked["07_evaluation"] == ["umap"]
    assert asked["01_data"] == []
    nb = nbformat.v4.new_notebook(metadata={"mmga": {"warm_up": ["umap", "gpu"]}})
    nbformat.write(nb, tmp_path / "x.ipynb")
    with pytest.raises(RunError, match=r"x.ipynb: unknown warm-up \['gpu'\] in its metadata"):
        warm_ups(tmp_path / "x.ipynb")
    exec(WARM_UPS["umap"], {})  # the code a warm kernel runs: it imports and compiles
    assert "umap" in sys.modules
