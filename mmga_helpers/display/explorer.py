"""The JupyterLab explorer: hear an image (pick, upload or draw one), see a sound (pick, upload or
record one) and move the convergence threshold.

Callbacks need a live kernel, so the static book shows a tour (the notebook's later cells) made of
the same calls with fixed choices, and the widgets (:func:`explorer`) are displayed only in an
interactive session (``MMGA_HEADLESS`` is set by ``mmga run`` for papermill's kernels).

Every input goes through the public API (``m.hear_traced`` / ``m.see_traced``), and each tab shows
what the system read (the picture after the MNIST recipe, or the clip), what it made, and on one
line the path taken: the input's cluster and the cluster the brain drew in the other modality. A
bad input (a blank canvas, a silent or overlong recording, a refused microphone, a broken upload)
leaves the last result in place and says why on that line, not in the log console.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from mmga_helpers.display.widgets import drawing_canvas, one_line, recorder, wav_bytes
from mmga_helpers.modalities.audio import read_wav
from mmga_helpers.modalities.digits import normalize_one, read_picture

PICTURE_PX = 112  # the 28 x 28 pictures shown 4 x
CONTROLS_WIDTH = "320px"  # the left column (pickers, canvas, recorder); results to its right
# pickers as wide as that column, their labels short: nothing overflows it on a laptop screen
# (less the 2 px margins ipywidgets puts around every widget)
PICKER = {"layout": {"width": "calc(100% - 4px)"}, "style": {"description_width": "72px"}}


def interactive_session() -> bool:
    """False under ``mmga run`` (papermill): widgets there would only be dead, CDN-loading shells."""
    return os.environ.get("MMGA_HEADLESS", "") != "1"


def png_bytes(image: np.ndarray, scale: int = 4) -> bytes:
    """A ``[H, W]`` image in [0, 1] (white ink on black) as a PNG, dark ink on white, enlarged."""
    arr = (np.clip(np.asarray(image, np.float32), 0, 1) * 255).astype(np.uint8)
    pil = Image.fromarray(255 - arr).resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def image_from_png(data: bytes) -> np.ndarray:
    """An uploaded or drawn picture (PNG, JPEG, ...; any size, grey, colour or with transparency)
    -> ``[28, 28]`` float in [0, 1], normalised the MNIST way like every picture the API is given.
    A blank picture raises :class:`DrawingError` ("no strokes found")."""
    return normalize_one(read_picture(data))


def wave_from_upload(data: bytes) -> tuple[np.ndarray, int]:
    """An uploaded clip (WAV, FLAC, OGG; any rate, mono or stereo) -> (mono waveform at 8 kHz, 8000)."""
    return read_wav(data, 8000), 8000


def zones_at(brain, threshold: float):
    """The zone table with the convergence threshold moved to ``threshold``."""
    return brain.zones(threshold=threshold)


def unit_image(image: np.ndarray) -> np.ndarray:
    """A test image (uint8 0-255 or float 0-1) as float32 in [0, 1]."""
    arr = np.asarray(image, np.float32)
    return arr / 255.0 if np.asarray(image).dtype == np.uint8 else arr


def note(text: str) -> str:
    """The message line's HTML for a result."""
    return f'<span class="mmga-note">{html.escape(text)}</span>'


def warning(text: str) -> str:
    """The message line's HTML for an input that could not be used (one line, in red)."""
    return f'<span class="mmga-error" style="color:#b3261e">⚠ {html.escape(one_line(text))}</span>'


def attempt(line: Any, busy: str, work: Callable[[], str]) -> None:
    """Run ``work`` (it returns the line to show) with ``busy`` on ``line`` meanwhile; any error
    becomes the line instead, so nothing reaches the log console and the last result stays."""
    line.value = note(busy)
    try:
        line.value = note(work())
    except Exception as err:  # the widget's boundary: every failure is told on its line
        known = isinstance(err, ValueError | OSError)
        line.value = warning(one_line(err) if known else f"{type(err).__name__}: {one_line(err)}")


def _upload(change: dict[str, Any]) -> tuple[str, bytes] | None:
    """The name and bytes of a FileUpload's new file, or None (the upload was reset)."""
    files = change["new"]
    return (files[0]["name"], bytes(files[0]["content"])) if files else None


def explorer(m, images: np.ndarray, clips: list[np.ndarray], clip_names: list[str]) -> Any:
    """Three tabs: hear an image (pick, upload or draw), see a sound (pick, upload or record), and
    the zones by threshold. Opens showing the first test image heard and the first clip seen."""
    import ipywidgets as w

    rate = m.cfg.data.fsdd.sample_rate

    def titled(text: str, widget: Any) -> Any:
        return w.VBox([w.HTML(f"<b>{html.escape(text)}</b>"), widget])

    def message_line(name: str) -> Any:
        widget = w.HTML(layout=w.Layout(min_height="1.6em"))
        widget.add_class(name)
        return widget

    def tab(controls: list[Any], results: list[Any]) -> Any:
        return w.HBox([
            w.VBox(controls, layout=w.Layout(width=CONTROLS_WIDTH, flex="0 0 auto")),
            w.VBox(results, layout=w.Layout(margin="0 0 0 24px", flex="1 1 auto")),
        ])

    # -- hear an image: pick a test image, upload a picture or draw one ---------------------------------
    read_img = w.Image(format="png", width=PICTURE_PX, height=PICTURE_PX)
    heard = w.Audio(format="wav", autoplay=False, controls=True, loop=False)
    heard.add_class("mmga-heard")
    hear_line = message_line("mmga-hear-line")

    def hear(picture: np.ndarray, what: str) -> str:
        traced = m.hear_traced(picture[None])
        read_img.value, heard.value = png_bytes(picture), wav_bytes(traced.outputs[0], rate)
        return f"{what}: image cluster {traced.source[0]} → heard as audio cluster {traced.target[0]}"

    def hear_test_image(i: int) -> None:
        what = f"test image #{i}"
        attempt(hear_line, f"hearing {what}…", lambda: hear(unit_image(images[i]), what))

    def hear_picture(data: bytes, what: str) -> None:
        attempt(hear_line, f"hearing {what}…", lambda: hear(image_from_png(data), what))

    def hear_upload(change: dict[str, Any]) -> None:
        if (got := _upload(change)) is not None:
            up_img.value = ()  # the same file may be uploaded again
            hear_picture(got[1], got[0])

    pick_img = w.IntSlider(0, 0, len(images) - 1, description="test image", continuous_update=False, **PICKER)
    up_img = w.FileUpload(accept="image/*", description="upload a picture", layout={"width": "auto"})
    canvas = drawing_canvas(
        lambda png: hear_picture(png, "your drawing"), lambda text: setattr(hear_line, "value", warning(text))
    )
    pick_img.observe(lambda ch: hear_test_image(ch["new"]), "value")
    up_img.observe(hear_upload, "value")
    hear_tab = tab(
        [pick_img, up_img, w.HTML("or <b>draw a digit</b>: heard when you lift the pen"), canvas],
        [titled("what it reads", read_img), titled("what it hears", heard), hear_line],
    )

    # -- see a sound: pick a test clip, upload one or record yourself ------------------------------------
    seen_clip = w.Audio(format="wav", autoplay=False, controls=True, loop=False)
    seen_clip.add_class("mmga-seen-clip")
    seen = w.Image(format="png", width=PICTURE_PX, height=PICTURE_PX)
    seen.add_class("mmga-seen")
    see_line = message_line("mmga-see-line")

    def see(wave: np.ndarray, sr: int, what: str) -> str:
        traced = m.see_traced([wave], sample_rate=sr)
        seen_clip.value, seen.value = wav_bytes(wave, sr), png_bytes(traced.outputs[0])
        return f"{what}: audio cluster {traced.source[0]} → seen as image cluster {traced.target[0]}"

    def see_test_clip(i: int) -> None:
        attempt(see_line, f"seeing {clip_names[i]}…", lambda: see(clips[i], rate, clip_names[i]))

    def see_upload(change: dict[str, Any]) -> None:
        if (got := _upload(change)) is not None:
            up_wav.value = ()
            name, data = got
            attempt(see_line, f"seeing {name}…", lambda: see(*wave_from_upload(data), name))

    def see_recording(wave: np.ndarray, sr: int) -> None:
        what = f"your recording ({len(wave) / sr:.1f} s)"
        attempt(see_line, f"seeing {what}…", lambda: see(wave, sr, what))

    pick_clip = w.Dropdown(
        options=[(name, i) for i, name in enumerate(clip_names)], description="test clip", **PICKER
    )
    up_wav = w.FileUpload(
        accept=".wav,.flac,.ogg,audio/*", description="upload a clip", layout={"width": "auto"}
    )
    mic = recorder(see_recording, lambda text: setattr(see_line, "value", warning(text)))
    pick_clip.observe(lambda ch: see_test_clip(ch["new"]), "value")
    up_wav.observe(see_upload, "value")
    see_tab = tab(
        [pick_clip, up_wav, w.HTML("or <b>say a digit</b> into the microphone"), mic],
        [titled("what it hears", seen_clip), titled("what it sees", seen), see_line],
    )

    # -- the convergence threshold ------------------------------------------------------------------
    thr = w.FloatSlider(
        m.cfg.model.clustering.convergence_threshold, min=0.05, max=0.95, step=0.05,
        description="threshold", continuous_update=False, **PICKER,
    )
    zone_counts = w.HTML()
    zone_table = w.HTML(layout=w.Layout(max_height="320px", overflow="auto"))
    zone_line = message_line("mmga-zone-line")

    def zones(threshold: float) -> str:
        table = zones_at(m.brain, threshold)
        counts = table.groupby(["modality", "zone"]).size().unstack(fill_value=0)
        zone_counts.value = counts.reset_index().rename_axis(columns=None).to_html(index=False)
        zone_table.value = table.to_html(index=False, float_format="%.2f")
        return f"threshold {threshold:.2f}: clusters per modality and zone, then every cluster"

    thr.observe(lambda ch: attempt(zone_line, "…", lambda: zones(ch["new"])), "value")
    zone_tab = tab([thr, zone_counts], [zone_line, zone_table])

    # open showing a result in each tab
    hear_test_image(0)
    see_test_clip(0)
    attempt(zone_line, "…", lambda: zones(thr.value))
    tabs = w.Tab(children=[hear_tab, see_tab, zone_tab])
    for i, title in enumerate(("Hear an image", "See a sound", "Convergence zones")):
        tabs.set_title(i, title)
    tabs.add_class("mmga-explorer")
    return tabs
