"""The ``mmga`` command line: benchmarks, runs of the notebook book, the report.

What a command needs beyond the runner is imported when the command runs, so that ``mmga --help``
and ``mmga run`` start without loading TensorFlow into this process. Every command works from the
project root (``$MMGA_ROOT``, else found above the working directory: :mod:`mmga_helpers.core.paths`),
so typed in ``notebooks/`` or any subfolder it reads and writes what it would from the root; a file
named on the command line is looked for from the root, then from the working directory.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Column, Table

from mmga_helpers.core.config import ConfigError, load_config
from mmga_helpers.core.io import OutputError, read_json, write_json
from mmga_helpers.core.paths import ProjectRootError, finished_run, from_root, locate, project_root
from mmga_helpers.modalities.data import DataError
from mmga_helpers.tools.execution import NotebookFailed, RunError
from mmga_helpers.tools.runner import format_seconds, run_notebooks
from mmga_helpers.tools.webcli import web_parity_app

app = typer.Typer(help="MMGA: hear an image, see a sound.", no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Benchmarks that print figures (and save them under outputs/<profile>/).")
app.add_typer(bench_app, name="bench")
app.add_typer(web_parity_app, name="web-parity")  # tools/webcli.py
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.callback()
def _project_root_is_valid() -> None:
    # Runs before every command: a mistyped $MMGA_ROOT is one line, before anything is read or written.
    try:
        project_root()
    except ProjectRootError as err:
        _fail(str(err))


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """While TensorFlow loads into this process (``mmga bench``), file descriptor 2 points at
    /dev/null: its C++ start-up lines are printed before its logging is configured, whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says. Python errors are raised, not printed, so none is lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _disk_message(err: OSError) -> str:
    """One line for a file the command could not write or read (permissions, a full disk)."""
    if isinstance(err, OutputError):
        return str(err)
    where = f"{err.filename}: " if err.filename else ""
    return (
        f"{where}{err.strerror or err}; make the outputs folder writable and give it room "
        "(or set paths.output_dir in a config); finished artefacts are kept"
    )


def _print_figures(title: str, figures: dict) -> None:
    table = Table("figure", Column("value", justify="right"), title=title)
    for key, value in figures.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, dict) and "mean" in value:
            value = f"{value['mean']:.4g} ± {value.get('std', 0):.2g}"
        table.add_row(key, str(value))
    console.print(table)


_BENCH_PROFILE_OPT = typer.Option(None, "--profile", "-p", help="profile (quick, full) or a config file")
_REPLICAS_OPT = typer.Option(False, "--replicas", help="also training items/s with 1 and 2 replicas (slower)")


def _bench_profile(ctx: typer.Context, profile: str | None) -> str:
    """The subcommand's --profile, else the one given to `mmga bench`, else quick."""
    parent = ctx.parent.params.get("profile") if ctx.parent is not None else None
    return profile or parent or "quick"


def _flat_figures(figures: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not ("mean" in value and "std" in value):
            out.update(_flat_figures(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, float) for v in value):
            out[name] = ", ".join(f"{v:.3g}" for v in value)
        else:
            out[name] = value
    return out


def _print_bench_table(title: str, figures: dict) -> None:
    table = Table(title=title)
    table.add_column("figure", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")
    for key, value in figures.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


def _bench(profile: str, sections: tuple[str, ...], title: str) -> None:
    """Run benchmark sections, print them and merge them into outputs/<profile>/bench.json."""
    with _native_stderr_silenced():
        from mmga_helpers.generation import RunFolderError
        from mmga_helpers.tools.bench import bench_all, write_bench

    try:
        figures = bench_all(profile, sections)
    except (DataError, ConfigError, RunFolderError) as err:
        _fail(str(err))
    except OSError as err:
        _fail(_disk_message(err))
    _print_bench_table(title, _flat_figures(figures))
    generation = figures.get("generation", {})
    if generation.get("status") not in (None, "ok"):
        console.print(f"generation: {generation['status']}", highlight=False)
    try:
        saved = write_bench(profile, figures)
    except OSError as err:
        _fail(_disk_message(err))
    console.print(f"saved {saved}", highlight=False)


@bench_app.callback(invoke_without_command=True)
def bench_cmd(
    ctx: typer.Context, profile: str | None = _BENCH_PROFILE_OPT, replicas: bool = _REPLICAS_OPT
) -> None:
    """Without a subcommand: every benchmark (data, models, generation) into outputs/<profile>/bench.json."""
    if ctx.invoked_subcommand is None:
        _bench(profile or "quick", ("data", "models", "generation") + ("replicas",) * replicas, "mmga bench")


@bench_app.command("data")
def bench_data_cmd(ctx: typer.Context, profile: str | None = _BENCH_PROFILE_OPT) -> None:
    """Seconds to load and verify MNIST, to log-mel all FSDD clips, and the Griffin-Lim round trip."""
    with _native_stderr_silenced():
        from mmga_helpers.tools.bench import bench_data

    profile = _bench_profile(ctx, profile)
    try:
        figures = bench_data(profile)
    except (DataError, ConfigError) as err:
        _fail(str(err))
    _print_bench_table("mmga bench data", _flat_figures(figures))
    out = load_config(profile).run_dir() / "bench_data.json"
    try:
        write_json(out, figures)
    except OSError as err:
        _fail(_disk_message(err))
    console.print(f"saved {out}")


@bench_app.command("models")
def bench_models_cmd(ctx: typer.Context, profile: str | None = _BENCH_PROFILE_OPT) -> None:
    """Training samples/s (pipeline vs bare fit) and encoder items/s (vs the FLOP bound)."""
    _bench(_bench_profile(ctx, profile), ("models",), "mmga bench models")


@bench_app.command("generation")
def bench_generation_cmd(ctx: typer.Context, profile: str | None = _BENCH_PROFILE_OPT) -> None:
    """see and hear clips/s of the finished run of a profile (after `mmga run`)."""
    _bench(_bench_profile(ctx, profile), ("generation",), "mmga bench generation")


# -- the notebook book: run the notebooks (all, one, or a stage's) and build the HTML book ------------------
_PROFILE_OPT = typer.Option("quick", "--profile", "-p", help="configuration profile: quick or full")
_CONFIG_OPT = typer.Option(None, "--config", "-c", help="a .yaml/.json config file (overrides the profile)")
_FORCE_OPT = typer.Option(False, "--force", help="rerun notebooks even when their inputs are unchanged")
_SEED_OPT = typer.Option(None, "--seed", help="run one seed (default: every seed of the config)")


def _terminate_cleanly() -> None:
    """SIGTERM (``kill <pid>``, a batch scheduler's stop) unwinds like Ctrl-C: the notebook being
    executed is dropped with its temporary file and kernel; finished notebooks stay."""
    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def _echo(message: str) -> None:
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _run_notebooks(
    profile: str,
    config: str | None,
    force: bool,
    seed: int | None,
    only: str | None = None,
    stage: str | None = None,
) -> None:
    _terminate_cleanly()
    root = project_root()
    if root != Path.cwd():
        _echo(f"project root: {root}")
    try:
        summary = run_notebooks(
            profile, config, only=only, stage=stage, force=force, seed=seed, root=root, echo=_echo
        )
    except RunError as err:
        _fail(str(err))
    except OSError as err:  # the outputs folder: unwritable or full
        _fail(_disk_message(err))
    except NotebookFailed as err:
        for line in err.describe().splitlines():
            console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(
        f"ran {len(summary.ran)}, skipped {len(summary.skipped)} notebook(s) in "
        f"{format_seconds(summary.seconds)}; executed notebooks in {summary.notebook_dir}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("run")
def run_cmd(
    profile: str = _PROFILE_OPT,
    config: str | None = _CONFIG_OPT,
    only: str | None = typer.Option(
        None, "--only", help="run one notebook: 02_image_autoencoder, image_autoencoder or 02"
    ),
    force: bool = _FORCE_OPT,
    seed: int | None = _SEED_OPT,
) -> None:
    """Execute the notebooks in order into outputs/<profile>/notebooks/ (unchanged ones are skipped)."""
    _run_notebooks(profile, config, force, seed, only=only)


@app.command("train")
def train_cmd(
    profile: str = _PROFILE_OPT,
    config: str | None = _CONFIG_OPT,
    force: bool = _FORCE_OPT,
    seed: int | None = _SEED_OPT,
) -> None:
    """Stage 1: the data and the two autoencoders (notebooks 01-03)."""
    _run_notebooks(profile, config, force, seed, stage="train")


@app.command("evaluate")
def evaluate_cmd(
    profile: str = _PROFILE_OPT,
    config: str | None = _CONFIG_OPT,
    force: bool = _FORCE_OPT,
    seed: int | None = _SEED_OPT,
) -> None:
    """Stage 2: clustering, the brain and the evaluation (notebooks 04, 05, 07)."""
    _run_notebooks(profile, config, force, seed, stage="evaluate")


@app.command("visualize")
def visualize_cmd(
    profile: str = _PROFILE_OPT,
    config: str | None = _CONFIG_OPT,
    force: bool = _FORCE_OPT,
    seed: int | None = _SEED_OPT,
) -> None:
    """Stage 3: generation and the explorer (notebooks 06, 08)."""
    _run_notebooks(profile, config, force, seed, stage="visualize")


@app.command("book")
def book_cmd(profile: str = _PROFILE_OPT, config: str | None = _CONFIG_OPT) -> None:
    """Build the HTML book from the executed notebooks (nothing is re-executed)."""
    from mmga_helpers.tools.book import BookError, build_book
    start = time.perf_counter()
    try:
        index = build_book(profile, config, root=project_root(), echo=_echo)
    except RunError as err:
        _fail(str(err))
    except OSError as err:
        _fail(_disk_message(err))
    except BookError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(
        f"book built in {time.perf_counter() - start:.1f} s: open {index}", highlight=False, soft_wrap=True
    )


@app.command("compare")
def compare_cmd(
    first: str = typer.Argument(..., help="a metrics.json or metrics_per_seed.json"),
    second: str = typer.Argument(..., help="the same file of another run"),
    tolerance: float = typer.Option(1e-6, help="differences up to this count as identical"),
) -> None:
    """How far two runs' figures are apart (same seed and profile: the run-to-run spread)."""
    from mmga_helpers.core.metrics import figure_differences

    try:
        diffs = figure_differences(read_json(locate(first)), read_json(locate(second)))
    except (OSError, ValueError) as err:
        _fail(f"cannot compare {first} and {second}: {err}")
    if not diffs:
        _fail(f"{first} and {second} hold no figure in common")
    apart = {k: v for k, v in diffs.items() if not v <= tolerance}
    table = Table(title=f"{len(diffs) - len(apart)} of {len(diffs)} figures identical to {tolerance:g}")
    table.add_column("figure that differs", overflow="fold")
    table.add_column("|difference|", justify="right")
    for key, value in sorted(apart.items(), key=lambda kv: -kv[1] if kv[1] == kv[1] else 0.0):
        table.add_row(key, f"{value:.3g}")
    console.print(table)


@app.command("manifest")
def manifest_cmd(
    folder: str = typer.Argument(..., help="a folder of {digit}_{speaker}_{index}.wav clips (any rate)"),
    check: bool = typer.Option(False, "--check", help="verify the folder against its manifest instead"),
) -> None:
    """Record (or with --check verify) the sha256 manifest of your own corpus (data.fsdd.source)."""
    from mmga_helpers.modalities import corpus

    path = locate(folder)
    try:
        written, digests = (corpus.check_manifest if check else corpus.write_manifest)(path)
    except DataError as err:
        _fail(str(err))
    except OSError as err:
        _fail(_disk_message(err))
    speakers = len(set(corpus.parse_names(sorted(digests))[1].tolist()))
    done = "match" if check else "recorded in"
    _echo(f"{len(digests)} clips of {speakers} speaker(s) {done} {written}")


_RUN_OPT = typer.Option(None, "--run", help="a finished run (default: outputs/full, else outputs/quick)")
_CLIPS_ARG = typer.Argument(..., help="recordings (WAV, FLAC, OGG; any rate) or folders of them")
_PICTURES_ARG = typer.Argument(..., help="pictures of digits (PNG, JPEG; any size) or folders of them")
_SEED_OPT = typer.Option(None, "--seed", help="makes the draws repeatable (default: they vary per call)")
_JSON_OPT = typer.Option(False, "--json", help="print one JSON list of results instead of lines")


def _open_run(run: str | None):
    """The run to generate with (loading TensorFlow quietly); one line and exit 2 when missing."""
    with _native_stderr_silenced():
        from mmga_helpers.generation import MMGA, RunFolderError
    try:
        with _native_stderr_silenced():
            return MMGA.load(finished_run(run))
    except RunFolderError as err:
        _fail(str(err))


def _generate(kind: str, files: list[str], run: str | None, out: str | None, seed: int | None, as_json: bool,
              **options: bool):
    with _native_stderr_silenced():  # TensorFlow's C++ start-up lines
        from mmga_helpers.tools import files as io_files
    suffixes = io_files.AUDIO_SUFFIXES if kind == "see" else io_files.IMAGE_SUFFIXES
    inputs, skipped = io_files.gather(files, suffixes)
    if not inputs:
        _fail(f"no {'audio' if kind == 'see' else 'picture'} files among {', '.join(files)}")
    m = _open_run(run)
    out_dir = from_root(out or f"outputs/{'seen' if kind == 'see' else 'heard'}")
    step = io_files.see_files if kind == "see" else io_files.hear_files
    try:
        outcomes = step(m, inputs, out_dir, seed=seed, **options)
    except OSError as err:
        _fail(_disk_message(err))
    failed = [o for o in outcomes if o.error]
    if as_json:
        print(json.dumps([o.as_dict() for o in outcomes], indent=1))
    else:
        names = ("audio cluster", "image cluster") if kind == "see" else ("image cluster", "audio cluster")
        for o in outcomes:
            if o.error:
                console.print(f"[bold red]error:[/] {o.error}", highlight=False, soft_wrap=True)
            else:
                console.print(
                    f"{o.input} -> {o.output} ({names[0]} {o.cluster} -> {names[1]} {o.drawn})",
                    highlight=False, soft_wrap=True,
                )
        if skipped:
            console.print(f"skipped {len(skipped)} file(s) of another kind in the folders", highlight=False)
    if failed:
        raise typer.Exit(2)


@app.command("see")
def see_cmd(
    files: list[str] = _CLIPS_ARG,
    run: str | None = _RUN_OPT,
    out: str | None = typer.Option(None, "--out", help="where the PNGs go (default: outputs/seen)"),
    seed: int | None = _SEED_OPT,
    as_json: bool = _JSON_OPT,
    one_voice: bool = typer.Option(False, "--one-voice", help="one speaker said them all: clips vote (>50)"),
) -> None:
    """See what a run sees for each spoken digit: one PNG per recording, and the clusters it took."""
    _generate("see", files, run, out, seed, as_json, one_voice=one_voice)


@app.command("hear")
def hear_cmd(
    files: list[str] = _PICTURES_ARG,
    run: str | None = _RUN_OPT,
    out: str | None = typer.Option(None, "--out", help="where the WAVs go (default: outputs/heard)"),
    seed: int | None = _SEED_OPT,
    as_json: bool = _JSON_OPT,
) -> None:
    """Hear what a run hears for each picture of a digit: one 8 kHz WAV per picture."""
    _generate("hear", files, run, out, seed, as_json)


@app.command("export-web")
def export_web_cmd(
    run: str | None = _RUN_OPT,
    seed: int | None = typer.Option(None, "--seed", help="the generator of this seed (default: the run's)"),
    force: bool = typer.Option(False, "--force", help="write it again even when an up-to-date one is there"),
) -> None:
    """Write a finished run for a browser into <run>/web/: ONNX networks, raw arrays, a manifest."""
    with _native_stderr_silenced():  # TensorFlow's and tf2onnx's start-up lines
        from mmga_helpers.tools.webexport import export_line
        line, ok = export_line(finished_run(run), seed, force=force, echo=_echo)
    (_echo if ok else _fail)(line)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
