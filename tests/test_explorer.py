"""The explorer's widgets without a browser: the messages the canvas and the recorder send, and the
explorer built on a tiny fake run (what each input shows, and how each bad one is told on one line).

The browser halves (canvas.js, recorder.js) are exercised by tests/test_explorer_browser.py; here
each message is handed to the widget as the comm would hand it (``receive``).
"""

from __future__ import annotations

import datetime
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_generation import build_fake_run  # a sibling test module: tests/ is on sys.path

from mmga_helpers.display import explorer as ex
from mmga_helpers.display import widgets as wd
from mmga_helpers.generation import MMGA
from mmga_helpers.modalities.audio import AudioError
from mmga_helpers.modalities.digits import DrawingError

RATE = 16000  # what recorder.js decodes to


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def canvas_png(stroke: bool = True, side: int = wd.CANVAS_SIDE) -> bytes:
    """What canvas.js sends: opaque white RGBA, with one black stroke (a "1") or none."""
    pixels = np.full((side, side, 4), 255, np.uint8)
    if stroke:
        pixels[40:180, 100:118, :3] = 0
    return png(pixels)


def pcm(wave: np.ndarray) -> bytes:
    return np.asarray(wave, "<f4").tobytes()


def spoken(seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A vowel-like tone with an envelope: something to hear."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size)).astype(np.float32)


def recording(wave: np.ndarray, rate: int = RATE) -> tuple[dict[str, Any], list[bytes]]:
    return {"type": "recording", "sample_rate": rate}, [pcm(wave)]


# -- the messages ----------------------------------------------------------------------------------------
def test_a_drawing_message_gives_its_png_and_a_malformed_one_is_refused() -> None:
    data = canvas_png()
    assert wd.png_from_message({"type": "drawing"}, [memoryview(data)]) == data
    with pytest.raises(DrawingError, match="empty picture"):
        wd.png_from_message({"type": "drawing"}, [b""])
    with pytest.raises(DrawingError, match="2 buffers"):
        wd.png_from_message({"type": "drawing"}, [data, data])
    with pytest.raises(DrawingError, match="unexpected message"):
        wd.png_from_message({"type": "recording"}, [data])
    with pytest.raises(DrawingError, match=r"^canvas lost$"):
        wd.png_from_message({"type": "error", "text": "canvas lost\nstack..."}, [])


def test_a_recording_message_gives_its_samples_at_its_rate() -> None:
    wave = spoken(0.8)
    got, rate = wd.wave_from_message(*recording(wave))
    assert rate == RATE and got.dtype == np.float32
    np.testing.assert_array_equal(got, wave)


@pytest.mark.parametrize(
    ("content", "data", "match"),
    [
        ({"type": "recording", "sample_rate": RATE}, np.zeros(RATE, "<f4").tobytes(), "silent"),
        ({"type": "recording", "sample_rate": RATE}, b"", "empty"),
        ({"type": "recording", "sample_rate": RATE}, b"\x00" * 7, "whole float32"),
        ({"type": "recording", "sample_rate": 44.5}, pcm(spoken()), "sample rate"),
        ({"type": "recording", "sample_rate": "48000"}, pcm(spoken()), "sample rate"),
        ({"type": "recording", "sample_rate": RATE}, pcm(np.full(100, np.nan)), "NaN"),
        ({"type": "error", "text": "microphone refused or missing (NotAllowedError)"}, b"", "refused"),
    ],
)
def test_a_bad_recording_is_refused_in_one_line(content: dict, data: bytes, match: str) -> None:
    with pytest.raises(AudioError, match=match) as err:
        wd.wave_from_message(content, [data] if content["type"] == "recording" else [])
    assert "\n" not in str(err.value)


def test_a_ten_minute_recording_is_refused_before_it_is_read() -> None:
    ten_minutes = np.zeros(600 * 8000, "<f4")
    ten_minutes[::97] = 0.3  # not silent: it is refused for its length
    with pytest.raises(AudioError, match=r"lasts 600\.0 s; say one digit \(at most 30 s\)"):
        wd.wave_from_message(*recording(ten_minutes, 8000))


def test_wav_bytes_is_a_16_bit_wav_at_the_rate() -> None:
    import soundfile as sf

    data = wd.wav_bytes(spoken(0.5, 8000) * 3, 8000)  # clipped, not wrapped
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    wave, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == 8000 and wave.shape == (4000,) and np.abs(wave).max() <= 1.0


def test_the_widgets_hand_inputs_and_errors_to_their_callbacks() -> None:
    got: list[tuple] = []
    errors: list[str] = []
    canvas = wd.drawing_canvas(lambda data: got.append(("drawing", data)), errors.append)
    mic = wd.recorder(lambda wave, sr: got.append(("recording", sr)), errors.append)
    assert (canvas.side, canvas.pen_width, mic.max_seconds) == (wd.CANVAS_SIDE, wd.PEN_WIDTH, 10.0)
    assert "pointerup" in canvas._esm and "decodeAudioData" in mic._esm  # the ES modules, shipped
    canvas.receive({"type": "drawing"}, [canvas_png()])
    mic.receive(*recording(spoken()))
    mic.receive({"type": "error", "text": "microphone refused or missing (NotAllowedError)"}, [])
    mic.receive(*recording(np.zeros(RATE, np.float32)))
    assert [g[0] for g in got] == ["drawing", "recording"] and got[1][1] == RATE
    assert errors[0].startswith("microphone refused") and "silent" in errors[1]


# -- the explorer on a fake run -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_m(tmp_path_factory) -> MMGA:
    fake = build_fake_run(tmp_path_factory.mktemp("run") / "outputs" / "quick")
    return MMGA(fake.cfg, fake.parts, seed=0)


def widgets_in(root: Any) -> list[Any]:
    out, todo = [], [root]
    while todo:
        widget = todo.pop()
        out.append(widget)
        todo.extend(getattr(widget, "children", ()))
    return out


def by_class(root: Any, name: str) -> Any:
    (found,) = [w for w in widgets_in(root) if name in getattr(w, "_dom_classes", ())]
    return found


def of_type(root: Any, cls: type) -> Any:
    (found,) = [w for w in widgets_in(root) if isinstance(w, cls)]
    return found


@pytest.fixture
def ui(fake_m: MMGA) -> Any:
    rng = np.random.default_rng(0)
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 6:22, 12:16] = 255  # three "1"s
    clips = [spoken(0.6, 8000), spoken(0.9, 8000) * rng.uniform(0.5, 1, 7200).astype(np.float32)]
    return ex.explorer(fake_m, images, clips, ["clip a", "clip b"])


def test_the_explorer_opens_showing_a_result(ui: Any) -> None:
    assert by_class(ui, "mmga-heard").value[:4] == b"RIFF"
    assert by_class(ui, "mmga-seen").value[:4] == b"\x89PNG"
    assert "test image #0: image cluster" in by_class(ui, "mmga-hear-line").value
    assert "clip a: audio cluster" in by_class(ui, "mmga-see-line").value
    assert "mmga-error" not in by_class(ui, "mmga-zone-line").value
    assert [ui.get_title(i) for i in range(3)] == ["Hear an image", "See a sound", "Convergence zones"]


def test_a_drawing_is_heard_and_an_empty_canvas_told_in_the_widget(ui: Any) -> None:
    canvas = of_type(ui, wd.widget_classes()[0])
    heard, line = by_class(ui, "mmga-heard"), by_class(ui, "mmga-hear-line")
    first = heard.value
    canvas.receive({"type": "drawing"}, [canvas_png(stroke=False)])
    assert "mmga-error" in line.value and "no strokes found" in line.value
    assert heard.value == first  # the last result stays
    canvas.receive({"type": "drawing"}, [canvas_png()])
    assert "your drawing: image cluster" in line.value and "audio cluster" in line.value
    assert heard.value[:4] == b"RIFF" and heard.value != first


def test_a_recording_is_seen_and_a_silent_or_overlong_one_told_in_the_widget(ui: Any) -> None:
    mic = of_type(ui, wd.widget_classes()[1])
    seen, line = by_class(ui, "mmga-seen"), by_class(ui, "mmga-see-line")
    first = seen.value
    mic.receive(*recording(np.zeros(RATE, np.float32)))
    assert "mmga-error" in line.value and "silent" in line.value
    mic.receive(*recording(np.full(600 * RATE, 0.1, np.float32)))  # ten minutes
    assert "mmga-error" in line.value and "lasts 600.0 s" in line.value
    mic.receive({"type": "error", "text": "microphone refused or missing (NotAllowedError); allow it"}, [])
    assert "microphone refused" in line.value
    assert seen.value == first
    mic.receive(*recording(spoken(1.2)))
    assert "your recording (1.2 s): audio cluster" in line.value and "image cluster" in line.value
    assert seen.value[:4] == b"\x89PNG" and seen.value != first


def test_a_bad_upload_is_told_in_the_widget(ui: Any) -> None:
    import ipywidgets as w

    uploads = {x.accept.split(",")[0]: x for x in widgets_in(ui) if isinstance(x, w.FileUpload)}
    up_img, up_wav = uploads["image/*"], uploads[".wav"]
    hear_line, see_line = by_class(ui, "mmga-hear-line"), by_class(ui, "mmga-see-line")
    meta = {"type": "", "size": 4, "last_modified": datetime.datetime.now(datetime.UTC)}
    up_img.value = ({"name": "broken.png", "content": memoryview(b"\x89PNG junk"), **meta},)
    assert "not a readable picture" in hear_line.value and "\n" not in hear_line.value
    assert up_img.value == ()  # ready for the next upload
    up_wav.value = ({"name": "fake.wav", "content": memoryview(b"RIFF....WAVEjunk"), **meta},)
    assert "mmga-error" in see_line.value and "not a readable WAV" in see_line.value
    up_img.value = ({"name": "ink.png", "content": memoryview(canvas_png()), **meta},)
    assert "ink.png: image cluster" in hear_line.value


def test_an_unexpected_failure_is_one_line_too(ui: Any, fake_m: MMGA, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("the model fell over\nTraceback ...")

    monkeypatch.setattr(fake_m, "hear_traced", broken)
    of_type(ui, wd.widget_classes()[0]).receive({"type": "drawing"}, [canvas_png()])
    assert "RuntimeError: the model fell over" in by_class(ui, "mmga-hear-line").value
    assert "Traceback" not in by_class(ui, "mmga-hear-line").value
