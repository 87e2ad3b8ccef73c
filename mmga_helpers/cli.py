"""The ``mmga`` command line: benchmarks, runs of the notebook book, the report."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="MMGA: hear an image, see a sound.", no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Benchmarks that print figures (and save them under outputs/<profile>/).")
app.add_typer(bench_app, name="bench")
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def _print_figures(title: str, figures: dict) -> None:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, dict) and "mean" in value:
            value = f"{value['mean']:.4g} ± {value.get('std', 0):.2g}"
        table.add_row(key, str(value))
    console.print(table)


@bench_app.command("data")
def bench_data_cmd(profile: str = typer.Option("quick", help="config profile or file")) -> None:
    """Seconds to load and verify MNIST, to log-mel all FSDD clips, and the Griffin-Lim round trip."""
    from mmga_helpers.bench import bench_data
    from mmga_helpers.config import ConfigError
    from mmga_helpers.data import DataError
    from mmga_helpers.io import write_json

    try:
        figures = bench_data(profile)
    except (DataError, ConfigError) as err:
        _fail(str(err))
    _print_figures("mmga bench data", figures)
    from mmga_helpers.config import load_config

    out = load_config(profile).run_dir() / "bench_data.json"
    write_json(out, figures)
    console.print(f"saved {out}")


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
