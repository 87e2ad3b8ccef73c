"""The explorer's two browser widgets: a drawing canvas and a microphone recorder.

Each is an `anywidget <https://anywidget.dev>`_ class whose browser half is a small ES module
shipped beside this file (``canvas.js``, ``recorder.js``). The browser talks to Python in custom
messages with one binary buffer:

- the canvas sends ``{"type": "drawing"}`` and the picture as a PNG each time a stroke ends
  (pointer events: mouse, touch and pen);
- the recorder sends ``{"type": "recording", "sample_rate": sr}`` and the recording as mono
  little-endian float32 samples: MediaRecorder's WebM/Opus is decoded in the browser
  (``decodeAudioData``), since soundfile cannot read it;
- either sends ``{"type": "error", "text": ...}`` when the browser fails (microphone refused).

:func:`png_from_message` and :func:`wave_from_message` check a message and return its content or
raise :class:`~mmga_helpers.modalities.digits.DrawingError` /
:class:`~mmga_helpers.modalities.audio.AudioError` in one line; the widgets pass the content to
their ``on_input`` callback and any such error to ``on_error``. anywidget (and ipywidgets under
it) loads only when a widget is made, as the rest of the explorer's widgets do.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mmga_helpers.modalities.audio import SILENCE_PEAK, AudioError
from mmga_helpers.modalities.digits import DrawingError

HERE = Path(__file__).resolve().parent
CANVAS_SIDE = 224  # CSS pixels: 8 x the MNIST field, comfortable for a mouse or a finger
PEN_WIDTH = 18.0  # canvas pixels: about MNIST's stroke once the drawing is brought to 28 x 28
RECORD_SECONDS = 10.0  # the browser stops a recording after this long
MAX_RECORDING_SECONDS = 30.0  # a spoken digit lasts about a second; longer ones are refused, not cut
RATES = (3000, 384_000)  # Hz: the sample rates a browser's audio can have

Buffers = Sequence[bytes | memoryview]


def one_line(err: BaseException | str) -> str:
    """An error's message on one line (its first), for the widget's message line."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _buffer(content: dict[str, Any], buffers: Buffers, kind: str, error: type[ValueError]) -> memoryview:
    """The message's one binary buffer, after refusing a message of another ``kind`` (an
    ``"error"`` from the browser becomes ``error`` with the browser's text)."""
    kind_sent = content.get("type")
    if kind_sent == "error":
        raise error(one_line(str(content.get("text") or "the browser reported an error")))
    if kind_sent != kind:
        raise error(f"unexpected message from the browser: {kind_sent!r} (expected {kind!r})")
    if len(buffers) != 1:
        raise error(f"the browser sent {len(buffers)} buffers with the {kind} (expected 1)")
    return memoryview(buffers[0]).cast("B")


def png_from_message(content: dict[str, Any], buffers: Buffers) -> bytes:
    """The PNG bytes of a canvas's ``drawing`` message (judged a picture later, by the reader)."""
    data = _buffer(content, buffers, "drawing", DrawingError)
    if data.nbytes == 0:
        raise DrawingError("the canvas sent an empty picture; draw again")
    return data.tobytes()


def wave_from_message(
    content: dict[str, Any], buffers: Buffers, max_seconds: float = MAX_RECORDING_SECONDS
) -> tuple[np.ndarray, int]:
    """``(mono float32 waveform, sample rate)`` of a recorder's ``recording`` message; a recording
    that is empty, longer than ``max_seconds``, not finite or silent is refused in one line."""
    data = _buffer(content, buffers, "recording", AudioError)
    rate = content.get("sample_rate")
    if not isinstance(rate, int | float) or not RATES[0] <= rate <= RATES[1] or rate != int(rate):
        raise AudioError(f"the recording's sample rate {rate!r} is not a whole number of Hz in {RATES}")
    rate = int(rate)
    if data.nbytes % 4:
        raise AudioError(f"the recording holds {data.nbytes} bytes, not whole float32 samples")
    n = data.nbytes // 4
    if n == 0:
        raise AudioError("the recording is empty (no samples); record again and speak")
    if n > max_seconds * rate:  # judged before any copy: a long recording costs nothing more
        raise AudioError(
            f"the recording lasts {n / rate:.1f} s; say one digit (at most {max_seconds:.0f} s)"
        )
    wave = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(wave).all():
        raise AudioError("the recording holds NaN or inf samples; record again")
    if np.abs(wave).max() < SILENCE_PEAK:
        raise AudioError(
            f"the recording is silent (peak below {SILENCE_PEAK:g}); check that the microphone is on "
            "and not muted, then record again"
        )
    return wave, rate


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit PCM WAV file of ``wave`` (clipped to [-1, 1]), for an ``<audio>`` player."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wave, np.float32), -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


@functools.cache
def widget_classes() -> tuple[type, type]:
    """``(DrawingCanvas, Recorder)``: made once, on first use, so that importing the explorer
    (as every notebook does, papermill's included) does not load anywidget and ipywidgets."""
    import anywidget
    import traitlets

    class _Input(anywidget.AnyWidget):
        """A widget whose browser half sends one kind of input: ``on_input`` gets each one,
        ``on_error`` the one-line reason when the input (or the browser) fails."""

        def __init__(
            self, on_input: Callable[..., None], on_error: Callable[[str], None], **kwargs: Any
        ) -> None:
            super().__init__(**kwargs)
            self._on_input, self._on_error = on_input, on_error
            self.on_msg(lambda _widget, content, buffers: self.receive(content, buffers))

        def parse(self, content: dict[str, Any], buffers: Buffers) -> tuple:
            raise NotImplementedError

        def receive(self, content: dict[str, Any], buffers: Buffers) -> None:
            """Handle one message from the browser (what the comm calls; tests call it too)."""
            try:
                parsed = self.parse(content, buffers)
            except (DrawingError, AudioError) as err:
                self._on_error(one_line(err))
                return
            self._on_input(*parsed)

    class DrawingCanvas(_Input):
        """Draw a digit; ``on_input(png_bytes)`` when a stroke ends."""

        _esm = HERE / "canvas.js"
        side = traitlets.Int(CANVAS_SIDE).tag(sync=True)
        pen_width = traitlets.Float(PEN_WIDTH).tag(sync=True)

        def parse(self, content: dict[str, Any], buffers: Buffers) -> tuple[bytes]:
            return (png_from_message(content, buffers),)

    class Recorder(_Input):
        """Record from the microphone; ``on_input(wave, sample_rate)`` when a recording ends."""

        _esm = HERE / "recorder.js"
        max_seconds = traitlets.Float(RECORD_SECONDS).tag(sync=True)

        def parse(self, content: dict[str, Any], buffers: Buffers) -> tuple[np.ndarray, int]:
            return wave_from_message(content, buffers)

    return DrawingCanvas, Recorder


def drawing_canvas(
    on_drawing: Callable[[bytes], None], on_error: Callable[[str], None], side: int = CANVAS_SIDE
) -> Any:
    """A canvas ``side`` pixels square with a clear button; ``on_drawing(png)`` on each release."""
    return widget_classes()[0](on_drawing, on_error, side=side)


def recorder(
    on_recording: Callable[[np.ndarray, int], None],
    on_error: Callable[[str], None],
    max_seconds: float = RECORD_SECONDS,
) -> Any:
    """A record/stop button; ``on_recording(wave, sample_rate)`` when a recording is decoded."""
    return widget_classes()[1](on_recording, on_error, max_seconds=max_seconds)
