"""The explorer in a real JupyterLab 4, driven by headless Chromium (selenium).

A private project is made in a temporary folder (the marker ``pyproject.toml``, the explorer
notebook, and a tiny finished run from :func:`test_generation.build_fake_run` at
``outputs/quick``, since a clean clone has no ``outputs/``); the real data sets come from
``MMGA_DATA_DIR``. JupyterLab is started there on 127.0.0.1, a free port and a random token, with
its settings, workspaces and runtime files in the temporary folder; the kernel starts in
``notebooks/`` as a reader's would and imports ``mmga_helpers`` from this repository.

The test opens the notebook, runs every cell and then, as a person would:

1. draws a stroke on the canvas with pointer events (selenium's actions: pointerdown, moves,
   pointerup) and checks that the ``<audio>`` player then holds a new WAV that decodes (its RIFF
   header and length read here, and the browser's own ``decodeAudioData``);
2. records from the microphone: Chromium's fake device plays an FSDD test clip
   (``--use-file-for-fake-audio-capture``, the clip resampled to 48 kHz 16-bit), and checks that
   the recording is seen as a new picture.

Screenshots of both land in ``outputs/screenshots/``. About a minute and a half on two busy cores;
most of it is the kernel importing TensorFlow and loading the data. Chromium is required (``make
chromium``): without it the test fails, it never skips. JupyterLab, its kernel and Chromium are
always shut down.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from test_generation import build_fake_run  # a sibling test module: tests/ is on sys.path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "08_explorer.ipynb"
SCREENSHOTS = REPO / "outputs" / "screenshots"
CLIP = "0_jackson_0.wav"  # an FSDD test-split clip (speaker jackson, digit 0, take 0)
SERVER_TIMEOUT_S = 60  # JupyterLab answering
RUN_TIMEOUT_S = 240  # every cell run: the kernel imports TensorFlow and loads MNIST and FSDD
ACTION_TIMEOUT_S = 60  # one drawing or recording heard / seen
WINDOW = (1366, 800)  # a laptop screen

pytestmark = pytest.mark.browser


# -- the project and the clip ----------------------------------------------------------------------------
def make_project(folder: Path) -> Path:
    """A project root JupyterLab can serve: marker, the explorer notebook, a finished fake run."""
    (folder / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", folder / "pyproject.toml")  # marks the project root
    shutil.copy(NOTEBOOK, folder / "notebooks" / NOTEBOOK.name)
    build_fake_run(folder / "outputs" / "quick")
    return folder


def fake_microphone_wav(source: Path, target: Path) -> Path:
    """The clip as Chromium's fake capture device wants it: 16-bit PCM at 48 kHz, with a little
    silence around the word (the device loops the file)."""
    from scipy.signal import resample_poly

    wave, sr = sf.read(source, dtype="float32", always_2d=True)
    wave = resample_poly(wave.mean(axis=1), 48000, sr).astype(np.float32)
    pad = np.zeros(48000 // 4, np.float32)
    sf.write(target, np.concatenate([pad, wave, pad]), 48000, subtype="PCM_16", format="WAV")
    return target


# -- JupyterLab ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@contextlib.contextmanager
def jupyter_lab(project: Path, home: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """JupyterLab serving ``project`` on 127.0.0.1: yields ``(base URL, token)``; on leaving, its
    kernels are shut down through the API, then the server (SIGTERM, then SIGKILL)."""
    token, port = secrets.token_hex(16), free_port()
    settings = home / "lab-settings"
    for name, value in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM
    }.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={project}", "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
        "--ServerApp.allow_root=True",  # CI containers run as root; the server only listens on 127.0.0.1
    ]
    log_path = home / "jupyterlab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode} while starting:\n{log_tail()}")
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {base} within {SERVER_TIMEOUT_S} s:\n"
                                f"{log_tail()}")
                time.sleep(0.5)
        yield base, token
    finally:
        with contextlib.suppress(OSError, ValueError):
            for kernel in _api(base, token, "/api/kernels"):
                _api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


# -- Chromium --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def chromium(profile: Path, microphone_wav: Path) -> Iterator[Any]:
    """Headless Chromium (through chromedriver) whose microphone plays ``microphone_wav`` and
    whose permission prompts are answered yes."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_path):
        pytest.fail("headless Chromium and chromedriver are required for the explorer's browser test; "
                    "install them with `make chromium` (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--user-data-dir={profile}", "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone_wav}",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console(driver: Any) -> str:
    """The browser console's errors, for a failure message."""
    try:
        lines = [e["message"][:300] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    except Exception as err:  # the browser itself may be gone
        lines = [f"(console unavailable: {err})"]
    return "\n".join(lines[-15:]) or "(no console errors)"


def wait_for(driver: Any, what: str, timeout: float, check: Callable[[], Any],
             failed: Callable[[], str | None] = lambda: None) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and what
    ``failed`` reports, checked each round, such as a cell's error) with the console's errors."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        problem = failed()
        if problem or time.monotonic() > deadline:
            why = problem or f"not within {timeout:.0f} s"
            pytest.fail(f"{what}: {why}\nbrowser console:\n{console(driver)}")
        time.sleep(0.5)


# -- scripts run in the page -----------------------------------------------------------------------------
KERNEL_IDLE = """
const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const kernel = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
return !!(kernel && kernel.status === 'idle' && nb.content && nb.content.widgets.length);
"""

CELL_ERROR = """
const errors = document.querySelectorAll(
  '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]');
return errors.length ? errors[0].innerText.slice(-1500) : null;
"""

FETCH_WAV = """
const done = arguments[arguments.length - 1];
const audio = document.querySelector(arguments[0]);
if (!audio || !audio.src) { done({error: 'no <audio> element with a source'}); return; }
(async () => {
  const bytes = new Uint8Array(await (await fetch(audio.src)).arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  const context = new OfflineAudioContext(1, 1, 8000);
  const decoded = await context.decodeAudioData(bytes.slice().buffer);
  done({src: audio.src, b64: btoa(text), browser_seconds: decoded.duration});
})().catch(err => done({error: String(err)}));
"""

IMAGE_STATE = """
const img = document.querySelector(arguments[0]);
return img ? {src: img.src, width: img.naturalWidth, complete: img.complete} : null;
"""


def text_of(driver: Any, selector: str) -> str:
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector)


def screenshot(driver: Any, name: str) -> Path:
    """The viewport with the explorer scrolled to its top, as a reader on a laptop sees it."""
    driver.execute_script(
        "document.querySelector('.mmga-explorer').scrollIntoView({block: 'start'});")
    time.sleep(0.3)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path


# -- the test ----------------------------------------------------------------------------------------------
def test_draw_and_speak_in_jupyterlab(tmp_path: Path, real_data: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    project = make_project(tmp_path / "project")
    microphone = fake_microphone_wav(real_data / "fsdd" / "recordings" / CLIP, tmp_path / "microphone.wav")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MMGA_HEADLESS", "MMGA_ROOT", "JUPYTER_TOKEN")}
    env.update(
        MMGA_DATA_DIR=str(real_data),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    with (
        jupyter_lab(project, home, env) as (base, token),
        chromium(tmp_path / "chromium", microphone) as driver,
    ):
        driver.set_window_size(*WINDOW)
        driver.get(f"{base}/lab/tree/notebooks/{NOTEBOOK.name}?token={token}")
        wait_for(driver, "the notebook open with its kernel idle", SERVER_TIMEOUT_S,
                 lambda: driver.execute_script(KERNEL_IDLE))
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
        wait_for(driver, "the explorer displayed after running every cell", RUN_TIMEOUT_S,
                 lambda: driver.execute_script("return !!document.querySelector('.mmga-explorer canvas');"),
                 lambda: driver.execute_script(CELL_ERROR))
        # the explorer opens showing a result: the first test image heard
        wait_for(driver, "the first test image heard", ACTION_TIMEOUT_S,
                 lambda: "test image #0: image cluster" in text_of(driver, ".mmga-hear-line"))
        first = driver.execute_async_script(FETCH_WAV, "audio.mmga-heard")
        assert "error" not in first, first

        # 1. draw a stroke (a "7"): pointerdown, moves, pointerup on the canvas
        canvas = driver.find_element(By.CSS_SELECTOR, ".mmga-explorer canvas.mmga-canvas")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
        (ActionChains(driver).move_to_element_with_offset(canvas, -60, -70).click_and_hold()
         .move_by_offset(40, 0).move_by_offset(50, 0).move_by_offset(-30, 60).move_by_offset(-30, 70)
         .release().perform())
        line = wait_for(driver, "the drawing heard", ACTION_TIMEOUT_S,
                        lambda: (t := text_of(driver, ".mmga-hear-line")).startswith(("your drawing", "⚠"))
                        and t)
        assert line.startswith("your drawing: image cluster"), line
        heard = driver.execute_async_script(FETCH_WAV, "audio.mmga-heard")
        assert "error" not in heard, heard
        assert heard["src"] != first["src"], "the <audio> player still holds the first test image's sound"
        wav = base64.b64decode(heard["b64"])
        assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE", wav[:16]
        assert int.from_bytes(wav[4:8], "little") == len(wav) - 8  # the RIFF size: the file is whole
        wave, sr = sf.read(io.BytesIO(wav), dtype="float32")
        assert sr == 8000 and 0.2 < len(wave) / sr <= 2.0 and np.abs(wave).max() > 0, (sr, len(wave))
        assert abs(heard["browser_seconds"] - len(wave) / sr) < 0.01, heard["browser_seconds"]
        shot_drawing = screenshot(driver, "explorer_drawing.png")

        # 2. record: Chromium's fake microphone plays the FSDD clip
        tab = next(t for t in driver.find_elements(By.CSS_SELECTOR, ".mmga-explorer .lm-TabBar-tab")
                   if "See a sound" in t.text)
        tab.click()
        before = driver.execute_script(IMAGE_STATE, "img.mmga-seen")
        assert before and before["width"] > 0, f"the explorer did not open showing a seen clip: {before}"
        record = driver.find_element(By.CSS_SELECTOR, ".mmga-explorer button.mmga-record")
        record.click()
        wait_for(driver, "the recorder recording", ACTION_TIMEOUT_S, lambda: "stop" in record.text,
                 lambda: (t := text_of(driver, ".mmga-see-line")).startswith("⚠") and t)
        time.sleep(1.5)  # the clip (with its silence) lasts about a second; the device loops it
        record.click()
        line = wait_for(driver, "the recording seen", ACTION_TIMEOUT_S,
                        lambda: (t := text_of(driver, ".mmga-see-line")).startswith(("your recording", "⚠"))
                        and t)
        assert line.startswith("your recording ("), line
        assert "audio cluster" in line and "image cluster" in line, line
        seen = wait_for(driver, "the seen picture loaded", ACTION_TIMEOUT_S,
                        lambda: (s := driver.execute_script(IMAGE_STATE, "img.mmga-seen"))["complete"]
                        and s["src"] != before["src"] and s)
        assert seen["width"] == 112, seen  # 28 x 28 shown 4 x
        played = driver.execute_async_script(FETCH_WAV, "audio.mmga-seen-clip")
        assert "error" not in played and played["browser_seconds"] > 1.0, played  # what was recorded
        shot_recording = screenshot(driver, "explorer_recording.png")

        # the third tab opens showing the zones at the run's threshold
        next(t for t in driver.find_elements(By.CSS_SELECTOR, ".mmga-explorer .lm-TabBar-tab")
             if "Convergence zones" in t.text).click()
        wait_for(driver, "the zone table shown", ACTION_TIMEOUT_S,
                 lambda: "best_partner" in text_of(driver, ".mmga-explorer"))
        screenshot(driver, "explorer_zones.png")

    for shot in (shot_drawing, shot_recording):
        assert shot.stat().st_size > 10_000, shot
    print(f"explorer browser test: {time.monotonic() - started:.0f} s; screenshots in {SCREENSHOTS}")
