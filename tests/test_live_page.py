"""The book's live page (``book/live.md``, ``live/*.js``) against the package.

* Every function of ``live/*.js`` on a table of test vectors written by Python
  (:mod:`mmga_helpers.tools.webvectors`), run in node: the MNIST recipe, the front end, the inverse
  with Griffin-Lim from the same initial phases, cluster assignment, the brain's draw, the FFT and
  the page's random numbers.
* The page itself in headless Chromium, served from a local HTTP server with a tiny finished run's
  web export (:func:`test_generation.build_fake_run`): an empty canvas is refused in one line;
  strokes drawn with pointer events are heard (a decodable ``<audio>``), the drawing normalised as
  Python normalises the same canvas and sent along the same path Python takes with the same seed;
  Chromium's fake microphone plays an FSDD test clip, and the picture the page draws equals Python's
  ``see`` of the samples the page recorded with the same draw (within the decoders' ONNX tolerance);
  a non-audio file, a silent one, a refused microphone and a browser without WebAssembly each get a
  clear line, and the console stays free of errors. The recording differs from the file (Opus and
  the browser's resampler), so the clip itself is compared by correlation only.

Screenshots go to ``outputs/test_screenshots/live/``. Chromium and node are required (they never skip).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from test_generation import build_fake_run  # a sibling test module: tests/ is on sys.path

from mmga_helpers.generation import MMGA
from mmga_helpers.modalities.data import load_fsdd, load_mnist
from mmga_helpers.modalities.digits import normalize_one, read_picture
from mmga_helpers.tools.webexport import export_web
from mmga_helpers.tools.webpage import bare_site
from mmga_helpers.tools.webparity import chromium, open_live, serve
from mmga_helpers.tools.webvectors import draw_path, make_vectors, see_drawn, write_vectors

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "outputs" / "test_screenshots" / "live"
CLIP = "0_jackson_0.wav"  # an FSDD test-split clip
WAIT_S = 60


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = build_fake_run(tmp_path_factory.mktemp("live") / "outputs" / "quick").folder
    export_web(folder)
    return folder


# -- the functions, on Python's test vectors ------------------------------------------------------------
def test_every_js_function_matches_python(run: Path, real_data: Path, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is required for the live page's unit parity (Debian: apt-get install nodejs)"
    fsdd = load_fsdd("test")
    mnist = load_mnist("test")[0][:3]
    clips = [fsdd.waves[i] for i in (0, 100, 250)]
    path = write_vectors(tmp_path / "vectors.json", make_vectors(run, mnist, clips, fsdd.sample_rate))
    proc = subprocess.run([node, str(REPO / "tests" / "js" / "check_vectors.mjs"), str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["random"] == 0 and got["cluster_mismatches"] == 0 and got["brain_mismatches"] == 0, got
    assert got["fft"] < 1e-9 and got["ifft"] < 1e-12, got
    assert got["digits"] <= 1e-5 and got["digit_errors"] == ["same"], got  # float32 steps kept exactly
    assert got["prepared"] <= 1e-6 and got["voiced_mismatches"] == 0, got
    assert got["logmel_db"] <= 0.01 and got["unit_db"] <= 0.01, got  # float32 FFTs in Python
    assert got["inverse_wave"] <= 1e-3 * got["inverse_wave_peak"], got


def test_page_script_draws_like_python() -> None:
    """The page's generator, the same in both languages (the JavaScript's values are pinned above)."""
    from mmga_helpers.tools.webvectors import mulberry32

    g = mulberry32(1)
    values = [g() for _ in range(1000)]
    assert all(0 <= v < 1 for v in values) and 0.45 < float(np.mean(values)) < 0.55
    assert len(set(values)) == 1000


# -- the page in Chromium ----------------------------------------------------------------------------------
def _microphone(real_data: Path, target: Path) -> tuple[Path, np.ndarray]:
    """The clip as Chromium's fake device wants it (48 kHz 16-bit), a quarter second of silence
    before the word and two seconds after it: the device loops the file, and a recording of 1.4 s
    then holds the word once, as a person says it; and the clip itself."""
    wave, sr = sf.read(real_data / "fsdd" / "recordings" / CLIP, dtype="float32")
    up = resample_poly(wave, 48000, sr).astype(np.float32)
    before, after = np.zeros(12000, np.float32), np.zeros(96000, np.float32)
    sf.write(target, np.concatenate([before, up, after]), 48000, subtype="PCM_16", format="WAV")
    return target, wave


def _line(driver, element: str, starts: tuple[str, ...]) -> str:
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        text = driver.execute_script(f"return document.getElementById('{element}').textContent")
        if text.startswith(starts):
            return text
        time.sleep(0.2)
    raise AssertionError(f"#{element} still says {text!r}")


def _last(driver, which: str) -> dict:
    return driver.execute_script(f"""
        const r = window.mmgaLive.last.{which};
        const out = {{}};
        for (const [k, v] of Object.entries(r)) out[k] = ArrayBuffer.isView(v) ? Array.from(v) : v;
        return out;""")


_DECODE = """
const done = arguments[arguments.length - 1];
const a = document.getElementById(arguments[0]);
if (!a || !a.src) { done({error: 'no player'}); } else {
  fetch(a.src).then(r => r.arrayBuffer()).then(b => new OfflineAudioContext(1, 1, 8000).decodeAudioData(b))
    .then(d => done({seconds: d.duration}), e => done({error: String(e)}));
}
"""


def _give_file(driver, path: Path) -> None:
    driver.find_element("id", "mmga-file").send_keys(str(path))


@pytest.mark.browser
def test_live_page_hears_a_drawing_and_sees_a_recording(run: Path, real_data: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    state = bare_site(tmp_path / "site", REPO, run / "web", lambda _line: None)
    assert state.ready, state.why
    mic, clip = _microphone(real_data, tmp_path / "microphone.wav")
    fake = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}")
    m = MMGA.load(run)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with serve(tmp_path / "site") as base, chromium(tmp_path / "profile", fake) as driver:
        assert open_live(driver, base).startswith("ready"), driver.execute_script("return mmgaLive.error")
        # an empty canvas has nothing to hear
        driver.find_element("id", "mmga-hear").click()
        assert "no strokes found" in _line(driver, "mmga-hear-line", ("⚠",))

        # strokes (a "7") with pointer events: heard when the pen lifts
        canvas = driver.find_element("id", "mmga-canvas")
        (ActionChains(driver).move_to_element_with_offset(canvas, -70, -90).click_and_hold()
         .move_by_offset(60, 0).move_by_offset(60, 0).move_by_offset(-40, 90).move_by_offset(-30, 80)
         .release().perform())
        line = _line(driver, "mmga-hear-line", ("heard", "⚠"))
        assert line.startswith("heard: image cluster") and "strength" in line, line
        played = driver.execute_async_script(_DECODE, "mmga-heard")
        assert abs(played.get("seconds", 0) - 1.0) < 0.01, played
        heard = _last(driver, "hear")
        png = base64.b64decode(driver.execute_script(
            "return document.getElementById('mmga-canvas').toDataURL('image/png').split(',')[1]"))
        python_digit = normalize_one(read_picture(png))
        assert np.abs(np.asarray(heard["normalized"]).reshape(28, 28) - python_digit).max() <= 1e-5
        source = int(m.image_clusters(python_digit[None])[0])
        targets, strengths, members = draw_path(m, "image_to_audio", np.array([source]), [heard["seed"]])
        assert (heard["source"], heard["target"], heard["member"]) == (source, targets[0], members[0])
        assert abs(heard["strength"] - strengths[0]) < 1e-12
        driver.save_screenshot(str(SHOTS / "after_drawing.png"))

        # the fake microphone plays the FSDD clip; the page sees what it recorded
        driver.find_element("id", "mmga-record").click()
        _line(driver, "mmga-see-line", ("recording",))
        time.sleep(1.4)
        driver.find_element("id", "mmga-record").click()
        line = _line(driver, "mmga-see-line", ("your recording seen", "⚠"))
        assert line.startswith("your recording seen: audio cluster"), line
        seen = _last(driver, "see")
        recorded = np.asarray(seen["input"], np.float32)
        python = see_drawn(m, [recorded], 8000, [seen["seed"]])
        assert (seen["source"], seen["target"], seen["member"]) == (
            python["source"][0], python["target"][0], python["member"][0])
        assert np.abs(np.asarray(seen["image"]).reshape(28, 28) - python["images"][0]).max() <= 1e-3
        xcorr = np.correlate(recorded, clip, mode="valid" if len(recorded) >= len(clip) else "full")
        similarity = np.abs(xcorr).max() / (np.linalg.norm(clip) * np.linalg.norm(recorded) + 1e-12)
        print(f"recorded {len(recorded) / 8000:.2f} s, correlation with the clip {similarity:.3f}; "
              f"audio cluster {seen['source']} (Python's of the file: {m.audio_clusters([clip])[0]})")
        assert similarity > 0.6, similarity  # the recording holds the clip (Opus, resampling)
        assert "error" not in driver.execute_async_script(_DECODE, "mmga-seen-clip")
        driver.save_screenshot(str(SHOTS / "after_recording.png"))

        # files that cannot be seen: not audio, silent
        (tmp_path / "notes.txt").write_text("not a recording\n")
        _give_file(driver, tmp_path / "notes.txt")
        assert "not an audio file" in _line(driver, "mmga-see-line", ("⚠",))
        sf.write(tmp_path / "silence.wav", np.zeros(8000, np.float32), 8000, subtype="PCM_16")
        driver.execute_script("document.getElementById('mmga-see-line').textContent = ''")
        _give_file(driver, tmp_path / "silence.wav")
        assert "silent" in _line(driver, "mmga-see-line", ("⚠",))
        driver.save_screenshot(str(SHOTS / "bad_file.png"))
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe


@pytest.mark.browser
def test_live_page_without_microphone_or_webassembly(run: Path, tmp_path: Path) -> None:
    bare_site(tmp_path / "site", REPO, run / "web", lambda _line: None)
    denied = ("--deny-permission-prompts",)
    with serve(tmp_path / "site") as base, chromium(tmp_path / "profile", denied) as driver:
        assert open_live(driver, base).startswith("ready")
        driver.find_element("id", "mmga-record").click()
        assert "microphone refused or missing" in _line(driver, "mmga-see-line", ("⚠",))
        no_wasm = {"source": "delete window.WebAssembly;"}
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", no_wasm)
        status = open_live(driver, base)
        assert status.startswith("⚠") and "no WebAssembly" in status, status
        driver.save_screenshot(str(SHOTS / "no_webassembly.png"))
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe


def test_the_book_ships_the_page_without_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a finished run (or without npm), the site still gets the page's scripts and a state
    that says why it cannot run; one line is said."""
    from mmga_helpers.tools import webpage

    said: list[str] = []
    state = webpage.install_live(tmp_path / "site", REPO, None, said.append)
    assert not state.ready and "without a finished run's web export" in state.why
    assert len(said) == 1 and said[0].startswith("live page inactive")
    assert json.loads((tmp_path / "site" / "live" / "state.json").read_text())["ready"] is False
    assert {p.name for p in (tmp_path / "site" / "live" / "ort").iterdir()} == set(webpage.SHIPPED)
    said.clear()
    fresh = tmp_path / "clone"  # a checkout without node_modules, on a machine without npm
    shutil.copytree(REPO / "live", fresh / "live")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(REPO / name, fresh / name)
    monkeypatch.setattr(webpage.shutil, "which", lambda _name: None)
    state = webpage.install_live(tmp_path / "bare", fresh, None, said.append)
    assert not state.ready and "npm was not found" in state.why and len(said) == 1
    assert not (tmp_path / "bare" / "live" / "ort").exists()


# -- the command -----------------------------------------------------------------------------------------
@pytest.mark.browser
def test_web_parity_command_measures_the_page(run: Path, real_data: Path, tmp_path: Path) -> None:
    """``mmga web-parity`` on the tiny run (five items of each kind): figures printed and written;
    a missing run is one line and exit 2."""
    from typer.testing import CliRunner

    from mmga_helpers.tools.cli import app

    out = tmp_path / "parity.json"
    res = CliRunner().invoke(app, ["web-parity", "--run", str(run), "--items", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "same image cluster as Python" in res.output and "whole built book" in res.output
    fig = json.loads(out.read_text())
    assert fig["items"] == {"images": 5, "clips": 5} and not fig["console_errors"], fig
    assert fig["image_clusters_same"] == 1.0 and fig["audio_clusters_same"] == 1.0, fig
    assert fig["image_decoder_max_abs"] <= 1e-3 and fig["audio_decoder_max_abs"] <= 1e-3, fig
    assert fig["logmel_max_abs_db"] <= 0.05 and fig["hear_ms_median"] > 0 and fig["see_ms_median"] > 0, fig
    assert fig["export_bytes"] > 0 and fig["book_bytes"] is None, fig
    res = CliRunner().invoke(app, ["web-parity", "--run", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "is not a finished MMGA run" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
