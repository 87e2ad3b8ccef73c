"""The built book works in a browser, offline.

A small book is built with :mod:`mmga_helpers.tools.book` from a fixture notebook executed by papermill
(one plotly figure, one audio player, one matplotlib image), served on 127.0.0.1 and opened page by
page in headless Chromium: no severe console errors (a resource fetched from the network fails
here, as it would for an offline reader), every plotly figure draws, every sound decodes, every
image loads. A screenshot of each page goes to ``outputs/test_screenshots/``.

Chromium is required: without it the test fails (``make chromium`` installs it), it never skips.
The same checks run on any built book with ``python tests/test_book.py outputs/quick/book/_build/html``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mmga_helpers.tools.book import filter_toc, metrics_markdown
from mmga_helpers.tools.webparity import serve  # the live page's tests serve the same way

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SCREENSHOTS = REPO / "outputs" / "test_screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT_S = 30


# -- pure functions (no browser) ------------------------------------------------------------------------
def test_metrics_markdown_table() -> None:
    metrics = {"metrics": {
        "image_purity": {"mean": 0.8123, "std": 0.0123, "n": 3, "description": "cluster | purity",
                         "command": "mmga evaluate --profile full"},
        "brain": {"links_correct": {"mean": 0.9, "std": 0.05, "n": 3}, "n_links": 10},
        "note": "not a number",
    }}
    page = metrics_markdown(metrics, "full")
    rows = [ln for ln in page.splitlines() if ln.startswith("| `")]
    assert rows == [
        "| `image_purity` | 0.8123 ± 0.012 | 3 |  |",
        "| `brain.links_correct` | 0.9 ± 0.05 | 3 |  |",
        "| `brain.n_links` | 10 |  |  |",
    ]
    assert "## `image_purity`\n\ncluster | purity. \nRecompute: `mmga evaluate --profile full`." in page
    assert "## `brain`" in page and page.count("| Metric | Mean ± sample std | n | Target |") == 2
    assert "holds no numeric metrics" in metrics_markdown({}, "quick")


def test_metrics_page_of_a_real_metrics_json_layout() -> None:
    """metrics.json as the pipeline writes it: seeds counted, described, targets and the stage
    that recomputes each group; the run description is not a metric."""
    stat = {"mean": 0.9, "std": 0.01, "n_seeds": 3}
    metrics = {
        "image": {"reconstruction": {"mse": stat}, "cluster": {"acc": stat}},
        "generation": {"see_judge_acc": stat, "speaker_holdout_see_judge_acc": stat},
        "run": {"profile": "full", "seeds": [0, 1, 2]},
    }
    page = metrics_markdown(metrics, "full")
    rows = {ln.split("|")[1].strip(" `"): ln for ln in page.splitlines() if ln.startswith("| `")}
    assert set(rows) == {
        "image.reconstruction.mse", "image.cluster.acc", "generation.see_judge_acc",
        "generation.speaker_holdout_see_judge_acc",
    }
    assert rows["image.cluster.acc"] == "| `image.cluster.acc` | 0.9 ± 0.01 | 3 | >= 0.97 |"
    sections = page.split("## ")[1:]
    by_name = {sec.split("`")[1]: sec for sec in sections if "(continued)" not in sec.splitlines()[0]}
    assert set(by_name) == {"image.reconstruction", "image.cluster", "generation"}
    assert "`mmga train --profile full`" in by_name["image.reconstruction"]
    assert "`mmga visualize --profile full`" in by_name["generation"] and "judges" in by_name["generation"]
    held_out = [sec for sec in sections if sec.startswith("`generation` (continued)")]
    assert len(held_out) == 1 and "`mmga evaluate --profile full`" in held_out[0]


def test_toc_keeps_only_present_pages(tmp_path: Path) -> None:
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    for page in ("book/intro.md", "book/method.md", "notebooks/01_data.ipynb"):
        (tmp_path / page).write_text("")
    toc = {"format": "jb-book", "root": "book/intro", "parts": [
        {"caption": "A", "chapters": [{"file": "book/method"}, {"file": "book/metrics"}]},
        {"caption": "B", "chapters": [{"file": "notebooks/01_data"}, {"file": "notebooks/02_x"}]},
        {"caption": "C", "chapters": [{"file": "book/reproduce"}]},
    ]}
    assert filter_toc(toc, tmp_path)["parts"] == [
        {"caption": "A", "chapters": [{"file": "book/method"}]},
        {"caption": "B", "chapters": [{"file": "notebooks/01_data"}]},
    ]


def test_pages_share_one_plotly_js_and_no_sources_are_copied(tmp_path: Path) -> None:
    """The plotly.js bundle a notebook inlines (its first figure's cell) becomes a script tag of the
    book's one ``_static/plotly.min.js``; the figures' own output is left as it was."""
    import nbformat
    import yaml
    from plotly.offline import get_plotlyjs

    from mmga_helpers.tools.book import PLOTLY_JS, assemble_source

    config = "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
    setup = f"{config}\n<script>{get_plotlyjs()}</script>"
    figure = '<div id="f"></div><script>Plotly.newPlot("f", [], {});</script>'
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("setup", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": setup}),
        nbformat.v4.new_output("display_data", data={"text/html": figure})])])
    nbformat.write(nb, tmp_path / "01_data.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "02_image_autoencoder.ipynb")
    src = assemble_source(tmp_path / "src", REPO, [tmp_path / "01_data.ipynb"], "quick")
    outputs = nbformat.read(src / "notebooks" / "01_data.ipynb", as_version=4).cells[0].outputs
    page = outputs[0].data["text/html"]
    assert f'<script src="../_static/{PLOTLY_JS}"></script>' in page and "plotly.js v" not in page
    assert "MathJaxConfig" in page and outputs[1].data["text/html"] == figure
    assert (src / "_static" / PLOTLY_JS).read_text() == get_plotlyjs()
    assert yaml.safe_load((src / "_config.yml").read_text())["sphinx"]["config"]["html_copy_source"] is False
    plain = assemble_source(tmp_path / "plain", REPO, [tmp_path / "02_image_autoencoder.ipynb"], "quick")
    assert not (plain / "_static" / PLOTLY_JS).exists()  # no figure, no 4.8 MB file


# -- the browser check ----------------------------------------------------------------------------------
@contextmanager
def chromium(profile_dir: Path) -> Iterator[object]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"headless Chromium is required for the browser test but {', '.join(missing)} "
                    "is missing; install it with `make chromium` "
                    "(Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900",
                f"--user-data-dir={profile_dir}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


_DECODE_AUDIO = """
const done = arguments[arguments.length - 1];
const audios = Array.from(document.querySelectorAll('audio'));
const ctx = new (window.AudioContext || window.webkitAudioContext)();
Promise.all(audios.map(async (a, i) => {
  const src = a.currentSrc || a.src || (a.querySelector('source') || {}).src;
  if (!src) return {i, ok: false, why: 'no src'};
  try {
    const buf = await (await fetch(src)).arrayBuffer();
    const decoded = await ctx.decodeAudioData(buf);
    return {i, ok: decoded.duration > 0, why: 'duration ' + decoded.duration};
  } catch (e) { return {i, ok: false, why: String(e)}; }
})).then(r => { ctx.close(); done(r); });
"""

_IMAGES = """
return Array.from(document.images).map(img => ({src: img.currentSrc || img.src, complete: img.complete,
                                                 width: img.naturalWidth}));
"""

_PLOTS_DRAWN = """
const divs = Array.from(document.querySelectorAll('.plotly-graph-div'));
return divs.map(d => !!d.querySelector('svg.main-svg, canvas'));
"""


def _screenshot(driver, path: Path, width: int = 1280, max_height: int = 8000) -> None:
    """The whole page (up to ``max_height`` px): the window is made as tall as the page, so the
    layout is the one a reader scrolls through."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height, 900), max_height))
    driver.execute_script("window.scrollTo(0, 0)")
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.set_window_size(width, 900)


def check_site(html_dir: Path, screenshot_dir: Path, profile_dir: Path) -> tuple[list[str], dict[str, int]]:
    """Open every page; return the problems found and counts of what was checked."""
    from selenium.webdriver.support.ui import WebDriverWait

    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if not p.relative_to(html_dir).parts[0].startswith("_"))
    problems: list[str] = []
    counts = {"pages": 0, "plots": 0, "audio": 0, "images": 0}
    with serve(html_dir) as base, chromium(profile_dir) as driver:
        for page in pages:
            driver.get(f"{base}/{page}")
            WebDriverWait(driver, PAGE_TIMEOUT_S).until(
                lambda d: d.execute_script("return document.readyState") == "complete")
            counts["pages"] += 1
            try:
                WebDriverWait(driver, PAGE_TIMEOUT_S).until(lambda d: all(d.execute_script(_PLOTS_DRAWN)))
            except Exception:
                pass  # reported below
            drawn = driver.execute_script(_PLOTS_DRAWN)
            counts["plots"] += len(drawn)
            problems += [f"{page}: plotly figure {i} did not draw" for i, ok in enumerate(drawn) if not ok]
            for result in driver.execute_async_script(_DECODE_AUDIO):
                counts["audio"] += 1
                if not result["ok"]:
                    problems.append(f"{page}: audio {result['i']} does not decode ({result['why']})")
            driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
            try:
                WebDriverWait(driver, PAGE_TIMEOUT_S).until(
                    lambda d: all(i["complete"] for i in d.execute_script(_IMAGES)))
            except Exception:
                pass  # reported below
            for img in driver.execute_script(_IMAGES):
                counts["images"] += 1
                if not img["width"]:
                    problems.append(f"{page}: image {img['src'][:80]} did not load")
            for entry in driver.get_log("browser"):
                if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]:
                    problems.append(f"{page}: console: {entry['message'][:300]}")
            driver.execute_script("window.scrollTo(0, 0)")
            _screenshot(driver, screenshot_dir / (page.replace("/", "__").removesuffix(".html") + ".png"))
    return problems, counts


@pytest.mark.browser
def test_small_book_works_offline_in_chromium(tmp_path: Path) -> None:
    from mmga_helpers.tools.book import build_book
    from mmga_helpers.tools.execution import execute_one

    executed = tmp_path / "executed" / "01_data.ipynb"
    params = {"profile": "quick", "seed": 0, "config_path": "", "output_dir": str(tmp_path / "out")}
    execute_one(FIXTURES / "book_page.ipynb", executed, params, REPO, "01_data")
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"metrics": {"example_score": {"mean": 0.5, "std": 0.1, "n": 3}}}')

    index = build_book("quick", root=REPO, notebooks=[executed], out_dir=tmp_path / "book",
                       src_dir=tmp_path / "book_src", metrics_path=metrics, echo=lambda _msg: None)
    html_dir = index.parent
    page = (html_dir / "notebooks" / "01_data.html").read_text()
    assert "STDERR-MARKER" not in page  # nb_output_stderr: remove
    assert "0.5 ± 0.1" in (html_dir / "book" / "metrics.html").read_text()
    assert not (html_dir / "notebooks" / "02_image_autoencoder.html").exists()
    assert not list(html_dir.rglob("*.map"))  # no source maps: readers never need them
    assert (html_dir / "book" / "live.html").is_file() and (html_dir / "live" / "state.json").is_file()

    shots = SCREENSHOTS / "small_book"
    shutil.rmtree(shots, ignore_errors=True)
    problems, counts = check_site(html_dir, shots, tmp_path / "chromium-profile")
    assert not problems, "\n".join(problems)
    assert counts["plots"] >= 1 and counts["audio"] >= 1 and counts["images"] >= 1, counts
    assert counts["pages"] >= 5, counts  # intro, method, metrics, the notebook, reproduce (+ index, search)
    assert len(list(shots.glob("*.png"))) == counts["pages"]


if __name__ == "__main__":  # check a built book: python tests/test_book.py outputs/quick/book/_build/html
    site = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/quick/book/_build/html").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        found, checked = check_site(site, SCREENSHOTS / "book", Path(tmp) / "chromium-profile")
    print(checked)
    print("\n".join(found) or "no problems")
    sys.exit(1 if found else 0)
