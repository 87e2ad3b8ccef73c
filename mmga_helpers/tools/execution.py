"""Executing one notebook with papermill: its ``parameters`` cell checked and overridden, its output
written atomically, a failing cell named, and the kernel's own console output (TensorFlow's C++ log
lines) kept in ``<name>.kernel.log`` beside the executed notebook instead of the terminal.

A failed run is kept as ``<name>.failed.ipynb`` and never reaches the book.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat

from mmga_helpers.core.io import atomic_path

PARAMETER_NAMES: tuple[str, ...] = ("profile", "seed", "config_path", "output_dir")
KERNEL_NAME = "python3"  # jupyter_client starts it with this interpreter (the venv's python)
KERNEL_LOG_SUFFIX = ".kernel.log"


class RunError(ValueError):
    """The request cannot start: unknown profile or notebook, a missing file, a bad parameters cell."""


class NotebookFailed(RuntimeError):
    """A cell raised; names the notebook, the cell and the error. The run stops here."""

    def __init__(
        self, notebook: str, cell_index: int | None, ename: str, evalue: str, failed_path: Path,
        source_line: str = "", exec_count: int | None = None, kernel_log: Path | None = None,
    ) -> None:
        self.notebook = notebook
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue
        self.failed_path = failed_path
        self.source_line = source_line
        self.exec_count = exec_count
        self.kernel_log = kernel_log
        super().__init__(self.describe())

    def describe(self) -> str:
        cell = "unknown (the kernel stopped)" if self.cell_index is None else str(self.cell_index)
        if self.exec_count is not None:
            cell += f" (In [{self.exec_count}])"
        lines = [
            f"notebook {self.notebook} failed",
            f"cell: {cell}" + (f": {self.source_line}" if self.source_line else ""),
            f"error: {self.ename}: {self.evalue}" if self.evalue else f"error: {self.ename}",
            f"failed notebook kept at {self.failed_path} (it is not used by the book)",
        ]
        if self.kernel_log is not None and self.kernel_log.is_file():
            lines.append(f"the kernel's console output is in {self.kernel_log}")
        return "\n".join(lines)


def check_parameters_cell(path: Path) -> int:
    """Index of the cell tagged ``parameters``; a RunError when it is missing or lacks a name."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            missing = [n for n in PARAMETER_NAMES if n not in cell.source]
            if missing:
                raise RunError(f"{path}: the parameters cell does not define {', '.join(missing)}")
            return i
    raise RunError(
        f"{path}: no cell is tagged 'parameters'; tag the cell that sets {', '.join(PARAMETER_NAMES)}"
    )


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 80 else line[:77] + "..."
    return ""


def kernel_manager_class(log_path: Path) -> type:
    """A kernel manager whose kernel writes its console output (file descriptors 1 and 2: the C++
    log of TensorFlow, numba's and absl's warnings) to ``log_path`` rather than to the terminal of
    ``mmga run``, and that provisions CurveZMQ keys when the kernel supports them (the kernel's
    traffic is encrypted, and ipykernel does not print its plain-TCP warning into every run).
    What a cell prints still lands in the executed notebook."""
    import zmq
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    curve = zmq.has("curve")

    class QuietKernelManager(AsyncKernelManager):
        @default("transport_encryption")
        def _default_transport_encryption(self) -> str:
            return "auto" if curve else "disabled"

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:  # the kernel holds its own copy of the descriptor
                kw.update(stdout=log, stderr=log)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


def execute_one(source: Path, output: Path, parameters: dict[str, Any], root: Path, name: str, *,
                progress_bar: bool | dict[str, Any] = False, kernel_manager: Any = None) -> None:
    """Execute ``source`` into ``output`` atomically; on a failing cell keep ``*.failed.ipynb`` and
    raise :class:`NotebookFailed`. ``kernel_manager``: a kernel already started for it (in ``root``,
    logging to its ``.kernel.log``, :mod:`~mmga_helpers.tools.kernels`), which the caller stops."""
    import papermill as pm

    os.environ["MMGA_HEADLESS"] = "1"  # the kernel inherits it: no live widgets in a static book
    failed = output.with_name(f"{name}.failed.ipynb")
    params_index = check_parameters_cell(source)
    log = output.with_name(f"{name}{KERNEL_LOG_SUFFIX}")
    if kernel_manager is None:
        log.unlink(missing_ok=True)  # this run's log only (a started kernel is already writing it)
        kernel = {"kernel_manager_class": kernel_manager_class(log)}
    else:
        kernel = {"km": kernel_manager}
    with atomic_path(output, suffix=".partial.ipynb") as tmp:
        try:
            pm.execute_notebook(
                str(source), str(tmp), parameters=parameters, kernel_name=KERNEL_NAME, cwd=str(root),
                progress_bar=progress_bar, log_output=False, request_save_on_cell_execute=True, **kernel,
            )
        except pm.PapermillExecutionError as err:
            _keep_failed(tmp, failed)
            # papermill counts its injected-parameters cell (inserted after the parameters cell)
            index = err.cell_index - 1 if err.cell_index > params_index else err.cell_index
            raise NotebookFailed(name, index, err.ename, _first_line(str(err.evalue)), failed,
                                 _first_line(err.source or ""), err.exec_count) from None
        except Exception as err:  # the kernel died, could not start, or the notebook is unreadable
            _keep_failed(tmp, failed)
            raise NotebookFailed(name, None, type(err).__name__, _first_line(str(err)), failed,
                                 kernel_log=log) from None
    failed.unlink(missing_ok=True)  # an earlier failure is now stale


def _keep_failed(tmp: Path, failed: Path) -> None:
    if tmp.is_file() and tmp.stat().st_size:
        os.replace(tmp, failed)
