"""``mmga web-parity``: the live page (``book/live.md``, ``live/*.js``) against the package, measured
in headless Chromium on a run's first ``items`` MNIST test images and ``items`` FSDD test clips
(spread evenly over the split): the share of items the page puts in the same cluster as Python,
the largest difference of its decoders (onnxruntime-web) from Keras on the same codes, and of its
log-mel (the encoder's input, in dB) from the package's; then the time of one ``hear`` (a 280 x 280
drawing) and one ``see`` (a clip) after the models are loaded (median of ten), the exported
assets' size and the built book's.

The page is opened from a bare site (:func:`~mmga_helpers.tools.webpage.bare_site`: the page's
markup, scripts, onnxruntime-web and the export) served on 127.0.0.1; the items and Python's
answers are files beside it (``parity/``), compared in the page, so only small results travel back.
"""

from __future__ import annotations

import functools
import http.server
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from mmga_helpers.core.inference import encode
from mmga_helpers.core.io import atomic_write_bytes, write_json
from mmga_helpers.generation import MMGA, RunFolderError
from mmga_helpers.modalities.corpus import load_audio, open_source
from mmga_helpers.modalities.data import load_mnist
from mmga_helpers.modalities.features import waves_to_unit_logmel
from mmga_helpers.tools.webexport import export_web
from mmga_helpers.tools.webformat import WebExportError
from mmga_helpers.tools.webpage import LIVE_DIR, bare_site, folder_bytes

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PAGE = "book/live.html"
TARGETS = {"clusters": 0.99, "decoder": 1e-3, "logmel_db": 0.05, "ms": 150.0, "export_mb": 10.0,
           "book_mb": 20.0}  # issue 19's
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000")


class ParityError(RuntimeError):
    """The page could not be measured; the message is one line."""


# -- a local server and a headless browser (also the browser tests') -------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on 127.0.0.1 (a free port) while the block runs; yields its URL."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(profile: Path, extra: tuple[str, ...] = ()) -> Iterator[webdriver.Chrome]:
    """Headless Chromium (Debian's, with its chromedriver) with the project's flags plus ``extra``."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise ParityError(f"headless Chromium is needed but {', '.join(missing)} is missing "
                          "(`make chromium`)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (*CHROME_FLAGS, f"--user-data-dir={profile}", *extra):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(600)
    try:
        yield driver
    finally:
        driver.quit()


def open_live(driver: webdriver.Chrome, base: str, timeout: float = 120) -> str:
    """Open the live page and wait until it is ready or says why it cannot be; its status line."""
    driver.get(f"{base}/{PAGE}")
    status = "#mmga-live.mmga-ready, #mmga-live.mmga-failed"
    found = f"return !!document.querySelector('{status}')"
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(found))
    return str(driver.execute_script("return document.getElementById('mmga-status').textContent"))


# -- what the page computes -----------------------------------------------------------------------------
HARNESS = """
const done = arguments[arguments.length - 1];
(async () => {
  const { prepareImage } = await import('../live/digits.js');
  const { waveToUnitLogmel } = await import('../live/audio.js');
  const run = window.mmgaLive.run;
  const get = async (name, T) => new T(await (await fetch('../parity/' + name)).arrayBuffer());
  const meta = await (await fetch('../parity/meta.json')).json();
  const out = { image_clusters: [], audio_clusters: [], logmel_db: 0 };
  const images = await get('images.bin', Uint8Array);
  for (let i = 0; i < meta.n_images; i++) {
    const data = images.subarray(i * 784, (i + 1) * 784);
    const x = prepareImage({ data, width: 28, height: 28, channels: 1 }, run.image);
    out.image_clusters.push(run.cluster('image', await run.encode('image', x)));
  }
  const clips = await get('clips.bin', Float32Array);
  const unitPy = await get('unit.bin', Float32Array);
  const size = run.audio.n_mels * run.audio.n_frames, range = run.audio.db_ceil - run.audio.db_floor;
  let at = 0;
  for (let i = 0; i < meta.lengths.length; i++) {
    const wave = clips.subarray(at, at + meta.lengths[i]);
    at += meta.lengths[i];
    const { unit } = waveToUnitLogmel(wave, run.audio, run.arrays);
    for (let j = 0; j < size; j++) {
      out.logmel_db = Math.max(out.logmel_db, Math.abs(unit[j] - unitPy[i * size + j]) * range);
    }
    out.audio_clusters.push(run.cluster('audio', await run.encode('audio', unit)));
  }
  for (const modality of ['image', 'audio']) {
    const codes = await get(modality + '_codes.bin', Float32Array);
    const keras = await get(modality + '_decoded.bin', Float32Array);
    const got = (await run.run(modality + '_decoder', codes, meta['n_' + modality + '_codes'])).data;
    let m = 0;
    for (let j = 0; j < got.length; j++) m = Math.max(m, Math.abs(got[j] - keras[j]));
    out[modality + '_decoder'] = got.length === keras.length ? m : Infinity;
  }
  // one drawing: the first image, ten times larger, dark ink on white RGBA paper
  const side = 280, pic = new Uint8ClampedArray(side * side * 4);
  for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) {
    const v = 255 - images[Math.floor(r / 10) * 28 + Math.floor(c / 10)];
    pic.set([v, v, v, 255], (r * side + c) * 4);
  }
  const first = clips.subarray(0, meta.lengths[0]);
  out.hear_ms = []; out.see_ms = [];
  for (let k = 0; k < 11; k++) {
    let t = performance.now();
    await run.hear({ data: pic, width: side, height: side, channels: 4 }, k);
    out.hear_ms.push(performance.now() - t);
    t = performance.now();
    await run.see(first, k);
    out.see_ms.push(performance.now() - t);
  }
  out.hear_ms.shift(); out.see_ms.shift();  // the first call warms the WebAssembly up
  return out;
})().then(done, (err) => done({ error: String(err && err.stack || err) }));
"""


def _write_items(
    folder: Path, m: MMGA, images: np.ndarray, waves: list[np.ndarray], rate: int
) -> dict[str, np.ndarray]:
    """The items and Python's answers as raw files for the page; Python's clusters."""
    folder.mkdir(parents=True, exist_ok=True)
    unit = waves_to_unit_logmel(waves, m.cfg, rate)[0]
    image_codes, audio_codes = m.encode_images(images), m.encode_waves(waves, rate)
    files = {
        "images.bin": np.ascontiguousarray(images, np.uint8),
        "clips.bin": np.concatenate(waves).astype("<f4"), "unit.bin": unit.astype("<f4"),
        "image_codes.bin": image_codes.astype("<f4"), "audio_codes.bin": audio_codes.astype("<f4"),
        "image_decoded.bin": encode(m.parts["image_decoder"], image_codes).astype("<f4"),
        "audio_decoded.bin": encode(m.parts["audio_decoder"], audio_codes).astype("<f4"),
    }
    for name, arr in files.items():
        atomic_write_bytes(folder / name, arr.tobytes())
    write_json(folder / "meta.json", {"n_images": len(images), "lengths": [len(w) for w in waves],
                                      "n_image_codes": len(image_codes), "n_audio_codes": len(audio_codes)})
    return {"image": m.parts["image_clusterer"].predict(image_codes),
            "audio": m.parts["audio_clusterer"].predict(audio_codes)}


def measure(run: Path, items: int = 200, book: Path | None = None,
            echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Every figure of ``mmga web-parity`` for ``run`` (exported first when needed), as a dict."""
    export = export_web(run)
    m = MMGA.load(run)
    images = load_mnist("test")[0][:items]
    audio = load_audio(m.cfg.data.fsdd, "test", open_source(m.cfg.data.fsdd))
    pick = np.unique(np.linspace(0, len(audio) - 1, min(items, len(audio))).astype(int))
    waves = [audio.waves[i] for i in pick]
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="mmga-parity-") as tmp:
        site = Path(tmp) / "site"
        state = bare_site(site, root, export.folder, echo)
        if not state.ready:
            raise ParityError(f"the live page cannot run: {state.why}")
        python = _write_items(site / "parity", m, images, waves, audio.sample_rate)
        with serve(site) as base, chromium(Path(tmp) / "profile") as driver:
            started = time.monotonic()
            status = open_live(driver, base)
            if not status.startswith("ready"):
                raise ParityError(f"the live page did not load: {status}")
            got = driver.execute_async_script(HARNESS)
            seconds = time.monotonic() - started
            severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        live_bytes = folder_bytes(site / LIVE_DIR)
    if "error" in got:
        raise ParityError(f"the page failed: {got['error'].splitlines()[0]}")
    book_bytes = folder_bytes(book) if book is not None and book.is_dir() else None
    return {
        "run": str(run), "items": {"images": len(images), "clips": len(waves)}, "browser_seconds": seconds,
        "image_clusters_same": float(np.mean(np.asarray(got["image_clusters"]) == python["image"])),
        "audio_clusters_same": float(np.mean(np.asarray(got["audio_clusters"]) == python["audio"])),
        "image_decoder_max_abs": got["image_decoder"], "audio_decoder_max_abs": got["audio_decoder"],
        "logmel_max_abs_db": got["logmel_db"],
        "hear_ms_median": float(np.median(got["hear_ms"])), "see_ms_median": float(np.median(got["see_ms"])),
        "export_bytes": folder_bytes(export.folder), "live_bytes": live_bytes,
        "book": None if book is None else str(book), "book_bytes": book_bytes, "console_errors": severe,
    }


def report(fig: dict[str, Any]) -> list[str]:
    """The figures as lines, each with its target and whether it is met."""
    def line(name: str, value: str, ok: bool | None, target: str) -> str:
        mark = "" if ok is None else (" ok" if ok else " NOT MET")
        return f"{name:<40} {value:>14}   target {target}{mark}"

    t, mb = TARGETS, 1e6
    n = fig["items"]
    lines = [f"live page against Python on {n['images']} MNIST test images and {n['clips']} FSDD test clips "
             f"({fig['run']}; {fig['browser_seconds']:.0f} s in headless Chromium)"]
    for key, label in (("image_clusters_same", "same image cluster as Python"),
                       ("audio_clusters_same", "same audio cluster as Python")):
        lines.append(line(label, f"{fig[key]:.4f}", fig[key] >= t["clusters"], f">= {t['clusters']}"))
    for key, label in (("image_decoder_max_abs", "image decoder |web - Keras| max"),
                       ("audio_decoder_max_abs", "audio decoder |web - Keras| max")):
        lines.append(line(label, f"{fig[key]:.2e}", fig[key] <= t["decoder"], f"<= {t['decoder']:g}"))
    lines.append(line("log-mel |web - Python| max (dB)", f"{fig['logmel_max_abs_db']:.2e}",
                      fig["logmel_max_abs_db"] <= t["logmel_db"], f"<= {t['logmel_db']} dB"))
    for key, label in (("hear_ms_median", "hear, one drawing (median of 10)"),
                       ("see_ms_median", "see, one clip (median of 10)")):
        lines.append(line(label, f"{fig[key]:.0f} ms", fig[key] <= t["ms"], f"<= {t['ms']:.0f} ms"))
    lines.append(line("exported assets (web/)", f"{fig['export_bytes'] / mb:.2f} MB",
                      fig["export_bytes"] / mb <= t["export_mb"], f"<= {t['export_mb']:.0f} MB"))
    lines.append(line("page scripts + onnxruntime-web (live/)", f"{fig['live_bytes'] / mb:.2f} MB",
                      None, "-"))
    if fig["book_bytes"] is None:
        lines.append(f"{'whole built book':<40} {'not built':>14}   ({fig['book'] or 'no --book given'})")
    else:
        lines.append(line("whole built book", f"{fig['book_bytes'] / mb:.2f} MB",
                          fig["book_bytes"] / mb <= t["book_mb"], f"<= {t['book_mb']:.0f} MB"))
    if fig["console_errors"]:
        lines.append(f"console errors: {len(fig['console_errors'])}, first: {fig['console_errors'][0][:200]}")
    return lines


def parity_command(run: Path, items: int, book: Path | None, out: Path | None,
                   echo: Callable[[str], None]) -> tuple[str, bool]:
    """What ``mmga web-parity`` prints (the figures, through ``echo``); a last line and whether it worked."""
    try:
        fig = measure(run, items, book, echo)
    except (ParityError, RunFolderError, WebExportError) as err:
        return " ".join(str(err).split()), False
    for text in report(fig):
        echo(text)
    if out is not None:
        write_json(out, fig)
    return ("figures written to " + str(out)) if out else "done", True


__all__ = ["HARNESS", "ParityError", "chromium", "measure", "open_live", "parity_command", "serve"]
