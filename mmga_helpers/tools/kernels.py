"""A kernel started ahead: while one notebook runs, the next one's kernel starts and imports what
every notebook imports (TensorFlow, Keras, the package, plotly), so the next notebook begins at its
first cell instead of spending its first ten seconds on start-up.

The warm kernel is an ordinary kernel of :func:`~mmga_helpers.tools.execution.kernel_manager_class`
(its console output goes to the notebook's ``.kernel.log``), started in the run's root with the
runner's environment; only imports, and the warm-ups the notebook's metadata asks for, run in it
before the notebook, silently and outside its history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync

from mmga_helpers.tools.execution import KERNEL_NAME, RunError, kernel_manager_class

# imports only: nothing that reads the config, seeds a generator or touches a device
PRELOAD = "\n".join((
    "import mmga_helpers",  # first: it sets TensorFlow's environment before TensorFlow loads
    "import numpy, pandas, plotly.express, plotly.graph_objects",
    "import tensorflow, keras",
    "import mmga_helpers.lab",
))


# what a notebook may ask its kernel to do ahead (its metadata's ``mmga.warm_up``): compile UMAP's
# numba kernels, which a process otherwise compiles at its first clustering
WARM_UPS: dict[str, str] = {
    "umap": "import mmga_helpers.learn.clusterers\nmmga_helpers.learn.clusterers.compile_umap()",
}


def warm_ups(notebook: Path) -> list[str]:
    """The warm-ups ``notebook`` asks for in its metadata (``{"mmga": {"warm_up": [...]}}``)."""
    meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    names = list(meta.get("mmga", {}).get("warm_up", []))
    unknown = sorted(set(names) - set(WARM_UPS))
    if unknown:
        raise RunError(f"{notebook}: unknown warm-up {unknown} in its metadata; known: {sorted(WARM_UPS)}")
    return names


class WarmKernel:
    """A started kernel, importing :data:`PRELOAD` and running the ``warm_up`` steps of
    :data:`WARM_UPS`, for the notebook whose log is ``log_path``.

    Nothing here waits for the kernel: the import request is queued on its shell channel as it comes
    up, and the caller goes on. :meth:`take` hands the kernel over; the client that sent the request
    stays connected until then, so the request cannot be dropped on the way.
    """

    def __init__(self, log_path: Path, cwd: Path, warm_up: Sequence[str] = ()) -> None:
        log_path.unlink(missing_ok=True)  # this run's log only
        self.manager: Any = kernel_manager_class(log_path)(kernel_name=KERNEL_NAME)
        self._client: Any = None
        run_sync(self.manager.start_kernel)(cwd=str(cwd))
        try:
            self._client = self.manager.blocking_client()
            self._client.start_channels()
            code = "\n".join([PRELOAD, *(WARM_UPS[name] for name in warm_up)])
            self._client.execute(code, silent=True, store_history=False)
        except BaseException:
            self.shutdown()  # a kernel that cannot be reached is not left running
            raise

    def take(self) -> Any:
        """The kernel manager, for the notebook's own client."""
        self._release()
        return self.manager

    def shutdown(self) -> None:
        """Stop the kernel (the notebook's client has already let go of it)."""
        self._release()
        if self.manager.has_kernel:
            run_sync(self.manager.shutdown_kernel)(now=True)

    def _release(self) -> None:
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
