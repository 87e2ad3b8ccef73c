"""Build the HTML book (``mmga book``) from notebooks that :mod:`mmga_helpers.tools.runner` executed.

Nothing is executed here. A build folder ``outputs/<profile>/book_src/`` is assembled from the
project's ``_config.yml``, ``_toc.yml`` and ``book/*.md`` pages plus the notebooks whose latest run
completed (a failed notebook never gets in); the table of contents keeps only the pages present. A
metrics page is generated when ``outputs/<profile>/metrics.json`` exists. jupyter-book 1.x builds it
with ``-W --keep-going`` (a warning fails the build) into a temporary folder that replaces
``outputs/<profile>/book/`` only on success; the pages are under ``outputs/<profile>/book/_build/html``,
with a finished run's web export (``mmga export-web``, refreshed first) under ``web/`` and the live
page's scripts and onnxruntime-web under ``live/`` (:mod:`~mmga_helpers.tools.webpage`); the theme's
source maps are left out. The pages share
one ``_static/plotly.min.js`` (each executed notebook inlines its own 4.8 MB copy) and no ``_sources/``
copy of the notebooks is made: a quick book of five notebooks went from 57 MB to 14 MB, most of it
the theme's fonts and scripts.

``metrics.json`` format (written by the evaluation notebook)::

    {"metrics": {"<name>": {"mean": 0.81, "std": 0.02, "n": 3,
                            "description": "what it measures", "unit": "",
                            "command": "mmga evaluate --profile full"}}}

``std``, ``n``, ``description``, ``unit`` and ``command`` are optional; a bare number is a value
without a spread; a mapping without ``mean`` is a group whose members are named ``group.member``.
Without a ``"metrics"`` key the whole top level is read as the metrics.
"""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import nbformat
import yaml

from mmga_helpers.core.io import atomic_write_text, read_json
from mmga_helpers.evaluation.tables import TARGETS
from mmga_helpers.tools.runner import NOTEBOOKS, completed_notebooks, load_run_config
from mmga_helpers.tools.webpage import install_live

PAGES_DIR = "book"
CONFIG_FILE = "_config.yml"
TOC_FILE = "_toc.yml"
METRICS_PAGE = "book/metrics"
_NESTED = ("parts", "chapters", "sections")
WEB_EXPORT = "web"  # `mmga export-web`'s folder in a run (tools/webexport.py), copied into the book's HTML
STYLE_FILE = "mmga.css"  # written to <source>/_static/ and listed in _config.yml's html_css_files
PLOTLY_JS = "plotly.min.js"  # the plotly package's copy, in <source>/_static/: one file for every page
# the plotly.js bundle the notebook renderer inlines once per notebook (display.figures.setup_plotly)
_INLINE_PLOTLY = re.compile(r"<script[^>]*>\s*/\*\*\s*\* plotly\.js v[^\n]*\n.*?</script>", re.DOTALL)
BOOK_CSS = """\
/* MMGA book: a quiet page for a paper's companion site. */
@media (min-width: 960px) {
  /* the theme's top bar only repeats the sidebar's search box on wide screens */
  #pst-header { display: none; }
  :root { --pst-header-height: 0px; }
}
/* code cells: ~88 characters fit the text column */
div.cell_input pre, div.highlight pre { font-size: 0.8rem; line-height: 1.45; }
div.cell_output pre { font-size: 0.8rem; }
/* tables and figures produced by the notebooks */
div.cell_output table.dataframe { font-size: 0.85rem; margin-left: 0; }
div.cell_output img { max-width: 100%; height: auto; }
table.mmga-audio { margin-left: 0; }
table.mmga-audio td { vertical-align: middle; padding: 0.15rem 1rem 0.15rem 0; border: none; }
"""


class BookError(RuntimeError):
    """The book could not be built; the message says why and where the full log is."""


# -- metrics page -------------------------------------------------------------------------------------------
def _flatten_metrics(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            yield name, {"mean": value}
        elif isinstance(value, dict) and isinstance(value.get("mean"), int | float):
            yield name, value
        elif isinstance(value, dict):
            yield from _flatten_metrics(value, f"{name}.")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _number(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}" if x != int(x) or abs(x) >= 1e6 else f"{int(x):d}"


# What each recorded figure measures, by key prefix (the longest matching prefix wins).
DESCRIPTIONS: dict[str, str] = {
    "image.reconstruction": "MNIST test images through the image autoencoder",
    "audio.reconstruction": "FSDD official test clips through the audio autoencoder (then Griffin-Lim)",
    "judges": "the independent supervised judges on the real test splits",
    "image.cluster": "clusters of MNIST test latents against the digits (Hungarian ACC)",
    "audio.cluster": "clusters of FSDD test latents against the digits (Hungarian ACC)",
    "joint.cluster": "joint clusters of co-occurring image and audio latents",
    "cross_modal": "the brain's recall across modalities on held-out items",
    "cross_modal.mismatch20": "the same, brain trained with 20% mismatched pairs",
    "cross_modal.speaker_holdout_audio_to_image_acc": "audio -> image for speakers held out of "
    "every learned part (mean over the folds)",
    "generation": "generated samples read by the independent judges",
    "generation.diversity_ratio_image": "spread of generated images / spread of real ones, per digit",
    "generation.diversity_ratio_audio": "spread of generated log-mels / spread of real ones, per digit",
    "generation.hear_asr_acc": "hear(MNIST test images) heard as their digit by a stock speech recogniser "
    "nobody here trained (PocketSphinx en-us, ten-digit grammar)",
    "generation.hear_intelligibility": "generation.hear_asr_acc over the same recogniser's reading of real "
    "FSDD test clips",
    "judges.audio_test_asr_acc": "real FSDD test clips heard as their digit by the stock speech recogniser",
    "audio.reconstruction.asr_acc": "reconstructed FSDD test clips heard as their digit by the stock "
    "speech recogniser",
    "generation.argmax": "hear() with mode='argmax' (always the strongest link: one voice cluster "
    "per image cluster), for comparison",
    "generation.speaker_holdout_see_judge_acc": "see() on held-out speakers' clips, judged (mean over "
    "the folds)",
    "baseline": "the same figure for PCA + k-means (images) and MFCC statistics + k-means (audio)",
    "ablation.speaker_holdout_without_voice_normalize_audio_to_image_acc": "the speaker hold-out on the "
    "same fold models with voice normalisation (and the voice vote) off",
    "ablation.speaker_holdout_without_voice_vote_audio_to_image_acc": "the speaker hold-out on the same "
    "fold models and clusters, voice-normalised, without the voice vote",
    "ablation.speaker_holdout_see_without_voice_vote_judge_acc": "see() on held-out speakers' clips "
    "without the voice vote, judged",
    "ablation.speaker_holdout_vote_without_voice_normalize_audio_to_image_acc": "the speaker hold-out "
    "with the voice vote but without voice normalisation",
}
# Which ``mmga`` stage recomputes a figure (the notebook that records it belongs to that stage).
_STAGE_OF = (
    ("generation.speaker_holdout", "evaluate"),
    ("ablation", "evaluate"),
    ("image.reconstruction", "train"),
    ("audio.reconstruction", "train"),
    ("judges", "train"),
    ("generation", "visualize"),
)


def _describe(name: str) -> str:
    keys = [k for k in DESCRIPTIONS if name == k or name.startswith(f"{k}.")]
    return DESCRIPTIONS[max(keys, key=len)] if keys else ""


def _command(name: str, profile: str) -> str:
    stage = next((st for prefix, st in _STAGE_OF if name.startswith(prefix)), "evaluate")
    return f"mmga {stage} --profile {profile}"


def metrics_markdown(metrics: dict[str, Any], profile: str, source: str = "metrics.json") -> str:
    """A Markdown page with one short table per group of metrics (``image.cluster``, ...): what the
    group measures and the command that recomputes it, then per metric its value as ``mean ± std``,
    the number of seeds it summarises and its target (full profile)."""
    body = metrics.get("metrics", metrics) if isinstance(metrics, dict) else {}
    body = {k: v for k, v in body.items() if k != "run"} if isinstance(body, dict) else {}
    rows = list(_flatten_metrics(body))
    lines = [
        "# Measured results",
        "",
        f"Every number below was computed by the notebooks for the **{profile}** profile and read "
        f"from `{source}`; none is typed in by hand. Values are mean ± sample standard deviation "
        "(ddof=1) over the seeds counted in the *n* column (a single run has no spread). Each group "
        "says what it measures and the command that recomputes it; targets are those of the full "
        "profile.",
        "",
    ]
    if not rows:
        lines.append(f"`{source}` holds no numeric metrics yet.")
        return "\n".join(lines) + "\n"
    sections: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for name, m in rows:  # one short table per group of figures: the page stays narrow enough to read
        cmd = m.get("command", _command(name, profile))
        sections.setdefault((name.rpartition(".")[0] or name, cmd), []).append((name, m))
    seen: set[str] = set()
    for (section, cmd), items in sections.items():
        first = items[0][1]
        desc = first.get("description", first.get("label", _describe(items[0][0])))
        title = f"`{section}`" + (" (continued)" if section in seen else "")
        seen.add(section)
        lines += [f"## {title}", "", f"{desc}. " if desc else "", f"Recompute: `{cmd}`.", ""]
        lines += ["| Metric | Mean ± sample std | n | Target |", "|---|---:|---:|---|"]
        for name, m in items:
            value = _number(float(m["mean"]))
            n = m.get("n", m.get("n_seeds", ""))
            if isinstance(m.get("std"), int | float) and n != 1:
                value += f" ± {float(m['std']):.2g}"
            if m.get("unit"):
                value += f" {m['unit']}"
            cells = [f"`{_cell(name)}`", *map(_cell, (value, n, TARGETS.get(name, "")))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# -- table of contents ------------------------------------------------------------------------------------
def _page_exists(src: Path, file: str) -> bool:
    return any((src / f"{file}{ext}").is_file() for ext in ("", ".md", ".ipynb"))


def _filter_entries(entries: list[dict[str, Any]], src: Path) -> list[dict[str, Any]]:
    kept = []
    for entry in entries:
        entry = dict(entry)
        for key in _NESTED:
            if key in entry:
                entry[key] = _filter_entries(entry[key], src)
                if not entry[key]:
                    del entry[key]
        if "file" in entry and not _page_exists(src, entry["file"]):
            continue
        if "file" not in entry and not any(k in entry for k in (*_NESTED, "url", "glob")):
            continue  # a part whose chapters are all absent
        kept.append(entry)
    return kept


def filter_toc(toc: dict[str, Any], src: Path) -> dict[str, Any]:
    """The table of contents without the pages that ``src`` lacks (notebooks not yet executed)."""
    if not _page_exists(src, toc["root"]):
        raise BookError(f"the book's root page {toc['root']} is missing from {src}")
    out = dict(toc)
    for key in _NESTED:
        if key in out:
            out[key] = _filter_entries(out[key], src)
            if not out[key]:
                del out[key]
    return out


# -- assembling the source folder --------------------------------------------------------------------------
def _share_plotly(cell: Any) -> bool:
    """The plotly.js bundle a cell's output inlines becomes a ``<script src>`` of the book's one copy
    (``_static/plotly.min.js``, from a page in ``notebooks/``): a classic script, so it is loaded
    before the figures that follow it run. Whether the cell had one."""
    shared = False
    for out in cell.get("outputs", []):
        html = out.get("data", {}).get("text/html")
        if html is not None:
            html = html if isinstance(html, str) else "".join(html)
            text, n = _INLINE_PLOTLY.subn(f'<script src="../_static/{PLOTLY_JS}"></script>', html)
            if n:
                out["data"]["text/html"], shared = text, True
    return shared


def _prepare_notebook(source: Path, target: Path, share_plotly: bool = True) -> bool:
    """Copy an executed notebook; the ``parameters`` cell (defaults, overridden by the injected
    cell that follows it) is removed from the page, and plotly.js, inlined in the notebook, is
    loaded from the book's shared copy instead (:func:`_share_plotly`; whether it was)."""
    nb = nbformat.read(source, as_version=4)
    shared = False
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        shared = (share_plotly and _share_plotly(cell)) or shared
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return shared


def _plotly_js() -> Path | None:
    """The plotly package's ``plotly.min.js`` (found without importing plotly), or None."""
    spec = importlib.util.find_spec("plotly")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "package_data" / PLOTLY_JS).is_file():
            return Path(folder) / "package_data" / PLOTLY_JS
    return None


def assemble_source(src: Path, root: Path, notebooks: list[Path], profile: str,
                    metrics: dict[str, Any] | None = None) -> Path:
    """Fill ``src`` (emptied first) with the config, the pages, the notebooks and a filtered toc."""
    for name in (CONFIG_FILE, TOC_FILE):
        if not (root / name).is_file():
            raise BookError(f"{root / name} is missing; the book needs it")
    if src.exists():
        shutil.rmtree(src)
    (src / PAGES_DIR).mkdir(parents=True)
    (src / "_static").mkdir()
    (src / "_static" / STYLE_FILE).write_text(BOOK_CSS)
    config = yaml.safe_load((root / CONFIG_FILE).read_text())
    config["title"] = f"{config.get('title', 'MMGA')} ({profile} run)"
    (src / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    for page in sorted((root / PAGES_DIR).glob("*.md")):
        shutil.copy2(page, src / PAGES_DIR / page.name)
    bundle = _plotly_js()
    shared = [_prepare_notebook(nb, src / "notebooks" / nb.name, bundle is not None) for nb in notebooks]
    if any(shared):
        shutil.copy2(bundle, src / "_static" / PLOTLY_JS)
    if metrics is not None:
        (src / f"{METRICS_PAGE}.md").write_text(metrics_markdown(metrics, profile))
    toc = filter_toc(yaml.safe_load((root / TOC_FILE).read_text()), src)
    (src / TOC_FILE).write_text(yaml.safe_dump(toc, sort_keys=False))
    return src


def _jupyter_book() -> str:
    beside = Path(sys.executable).parent / "jupyter-book"
    found = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if not found:
        raise BookError("jupyter-book is not installed; install the project's 'book' extra (make venv)")
    return found


def start_web_export(run_dir: Path) -> subprocess.Popen[str] | None:
    """``mmga export-web`` of a finished run started in a process of its own (this one, and
    Sphinx's, stay free of TensorFlow), so that it runs while the book builds; None when ``run_dir``
    is not a finished run."""
    if not (run_dir / "mmga.json").is_file():
        return None
    cmd = [sys.executable, "-m", "mmga_helpers.tools.webexport", str(run_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_web_export(proc: subprocess.Popen[str] | None, echo: Callable[[str], None]) -> bool:
    """Whether the export started by :func:`start_web_export` brought ``<run>/web`` up to date. A
    failure is one line, and the book is then built without the export."""
    if proc is None:
        return False
    out, err = proc.communicate()
    last = (out.strip().splitlines() or err.strip().splitlines() or ["no output"])[-1]
    echo(last if proc.returncode == 0 else f"web export left out of the book: {last}")
    return proc.returncode == 0


def refresh_web_export(run_dir: Path, echo: Callable[[str], None]) -> bool:
    """Export a finished run for the live page and wait for it (:func:`start_web_export`)."""
    return finish_web_export(start_web_export(run_dir), echo)


def build_book(
    profile: str = "quick",
    config_path: str | Path | None = None,
    *,
    root: str | Path = ".",
    notebooks: list[Path] | None = None,
    out_dir: str | Path | None = None,
    src_dir: str | Path | None = None,
    metrics_path: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Build the book; returns the path of its ``index.html``.

    By default the notebooks are those of ``outputs/<profile>/notebooks/`` that completed, the
    source goes to ``outputs/<profile>/book_src/`` and the book to ``outputs/<profile>/book/``.
    """
    echo = echo or (lambda msg: print(msg, file=sys.stderr))
    root = Path(root).resolve()
    cfg = load_run_config(profile, config_path)
    run_dir = cfg.run_dir(root)
    if notebooks is None:
        notebooks = completed_notebooks(run_dir / "notebooks", NOTEBOOKS)
        skipped = sorted(p.name for p in (run_dir / "notebooks").glob("*.failed.ipynb"))
        if skipped:
            echo(f"left out (their last run failed): {', '.join(skipped)}")
    if not notebooks:
        echo(f"no executed notebooks in {run_dir / 'notebooks'}: the book has only its text pages "
             f"(run `mmga run --profile {profile}` first)")
    out = Path(out_dir) if out_dir else run_dir / "book"
    src = Path(src_dir) if src_dir else run_dir / "book_src"
    metrics_file = Path(metrics_path) if metrics_path else run_dir / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.is_file() else None
    assemble_source(src, root, list(notebooks), cfg.profile, metrics)
    names = ", ".join(p.stem for p in notebooks) or "-"
    echo(f"building the book from {len(notebooks)} notebook(s): {names}")

    partial = out.with_name(f".{out.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    cmd = [_jupyter_book(), "build", str(src), "--path-output", str(partial), "-W", "--keep-going", "--all"]
    export = start_web_export(run_dir)  # the two are independent: one core each
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        web_ok = finish_web_export(export, echo)
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # no terminal colours in messages
    partial.mkdir(parents=True, exist_ok=True)
    atomic_write_text(partial / "build.log", log)
    if proc.returncode != 0:
        failed_log = out.with_name(f"{out.name}.failed.log")
        atomic_write_text(failed_log, log)
        shutil.rmtree(partial, ignore_errors=True)
        problems = [ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln or "Error" in ln]
        shown = "\n  ".join(problems[:15]) or "\n  ".join(log.strip().splitlines()[-15:])
        raise BookError(
            f"jupyter-book build failed (exit {proc.returncode}); the previous book, if any, is intact.\n"
            f"  {shown}\nfull log: {failed_log}"
        )
    if (partial / "_build" / "html").is_dir():  # the live page: its scripts, onnxruntime-web, the export
        install_live(partial / "_build" / "html", root, run_dir / WEB_EXPORT if web_ok else None, echo)
        for source_map in (partial / "_build" / "html" / "_static").rglob("*.map"):
            source_map.unlink()  # the theme's source maps (3.4 MB) serve its developers, never a reader
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    out.with_name(f"{out.name}.failed.log").unlink(missing_ok=True)
    index = out / "_build" / "html" / "index.html"
    if not index.is_file():
        raise BookError(f"jupyter-book finished but {index} is missing; see {out / 'build.log'}")
    return index


# -- a Sphinx extension (``sphinx.extra_extensions`` in _config.yml) -------------------------------------
def _dedupe_page_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any],
                         doctree: Any) -> None:
    """Drop repeated ``<script>`` entries. Under Sphinx 7.4, inline scripts that extensions add after
    the builder starts (sphinx-thebe's ``const THEBE_JS_URL = ...``) are emitted twice per page,
    and declaring a ``const`` twice is a JavaScript error in every reader's console."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for js in scripts:
        name = getattr(js, "filename", js) or ""  # the copies differ only in None versus ""
        key = (str(name), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _dedupe_page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


__all__ = ["BookError", "assemble_source", "build_book", "filter_toc", "metrics_markdown"]
