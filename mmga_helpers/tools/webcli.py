"""``mmga web-parity``, registered by :mod:`mmga_helpers.tools.cli` as a one-command group: the
command line of :mod:`mmga_helpers.tools.webparity`, which loads TensorFlow and Selenium only when
it runs (so ``mmga --help`` stays quick)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mmga_helpers.core.paths import finished_run, from_root

web_parity_app = typer.Typer(add_completion=False)


@web_parity_app.callback(invoke_without_command=True)
def web_parity(
    run: str | None = typer.Option(None, "--run", help="a finished run (default: outputs/full, else "
                                   "outputs/quick)"),
    items: int = typer.Option(200, "--items", min=1, help="MNIST test images and FSDD test clips compared"),
    book: str | None = typer.Option(None, "--book", help="a built book's HTML folder, to size it "
                                    "(default: outputs/<the run's profile>/book/_build/html when present)"),
    out: str | None = typer.Option(None, "--out", help="also write the figures to this JSON file"),
) -> None:
    """The live page against Python in headless Chromium: clusters, decoders and log-mel agreement,
    hear/see timings, export and book sizes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from mmga_helpers.tools.webparity import parity_command
    except ImportError as err:  # selenium is in the dev extra
        typer.echo(f"error: {err}; install the dev extra (make venv installs it)", err=True)
        raise typer.Exit(2) from None

    folder = finished_run(run)
    site = from_root(book) if book else folder / "book" / "_build" / "html"
    line, ok = parity_command(folder, items, site if site.is_dir() or book else None,
                              Path(out) if out else None, typer.echo)
    if not ok:
        typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2)
    typer.echo(line)
