"""The JupyterLab explorer: widgets to hear an image, see a sound and move the convergence threshold.

Callbacks need a live kernel, so the static book shows a tour (:func:`tour`) made of the same calls
with fixed choices, and the widgets (:func:`explorer`) are displayed only in an interactive session
(``MMGA_HEADLESS`` is set by ``mmga run`` for papermill's kernels).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image

from mmga_helpers.modalities.audio import read_wav
from mmga_helpers.modalities.digits import DrawingError, normalize_digits


def interactive_session() -> bool:
    """False under ``mmga run`` (papermill): widgets there would only be dead, CDN-loading shells."""
    return os.environ.get("MMGA_HEADLESS", "") != "1"


def _png(image: np.ndarray, scale: int = 4) -> bytes:
    arr = (np.clip(np.asarray(image, np.float32), 0, 1) * 255).astype(np.uint8)
    pil = Image.fromarray(255 - arr).resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def image_from_png(data: bytes) -> np.ndarray:
    """An uploaded picture (PNG, JPEG, ...; any size, grey, colour or with transparency) ->
    ``[28, 28]`` float in [0, 1], normalised the MNIST way like every picture the API is given."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, SyntaxError, ValueError):
        raise DrawingError(
            "the upload is not a readable picture (damaged, or not an image); upload a PNG or JPEG"
        ) from None
    mode = "RGBA" if "A" in img.getbands() or "transparency" in img.info else "L"
    return normalize_digits([np.asarray(img.convert(mode))])[0]


def wave_from_upload(data: bytes) -> tuple[np.ndarray, int]:
    """An uploaded WAV at any rate -> (mono waveform at 8 kHz, 8000)."""
    return read_wav(data, 8000), 8000


def zones_at(brain, threshold: float):
    """The zone table with the convergence threshold moved to ``threshold``."""
    return brain.zones(threshold=threshold)


def explorer(m, images: np.ndarray, clips: list[np.ndarray], clip_names: list[str]) -> Any:
    """Three tabs: hear an image (pick or upload), see a sound (pick or upload), zones by threshold."""
    import ipywidgets as w
    from IPython.display import Audio, display

    out_hear, out_see, out_zone = w.Output(), w.Output(), w.Output()
    pick_img = w.IntSlider(0, 0, len(images) - 1, description="test image")
    up_img = w.FileUpload(accept="image/*", description="or upload")
    pick_clip = w.Dropdown(options=list(enumerate(clip_names)), description="test clip")
    pick_clip.options = [(name, i) for i, name in enumerate(clip_names)]
    up_wav = w.FileUpload(accept=".wav", description="or upload")
    thr = w.FloatSlider(
        m.cfg.model.clustering.convergence_threshold, min=0.05, max=0.95, step=0.05, description="threshold"
    )

    def hear(image: np.ndarray) -> None:
        with out_hear:
            out_hear.clear_output()
            display(w.Image(value=_png(image), format="png"))
            display(Audio(m.hear(image[None])[0], rate=8000))

    def see(wave: np.ndarray, sr: int) -> None:
        with out_see:
            out_see.clear_output()
            display(Audio(wave, rate=sr))
            display(w.Image(value=_png(m.see([wave], sample_rate=sr)[0]), format="png"))

    def zones(threshold: float) -> None:
        with out_zone:
            out_zone.clear_output()
            display(zones_at(m.brain, threshold))

    pick_img.observe(
        lambda ch: hear(images[ch["new"]] / (255.0 if images.dtype == np.uint8 else 1.0)), "value"
    )
    up_img.observe(
        lambda ch: up_img.value and hear(image_from_png(bytes(up_img.value[0]["content"]))), "value"
    )
    pick_clip.observe(lambda ch: see(clips[ch["new"]], 8000), "value")
    up_wav.observe(
        lambda ch: up_wav.value and see(*wave_from_upload(bytes(up_wav.value[0]["content"]))), "value"
    )
    thr.observe(lambda ch: zones(ch["new"]), "value")
    tabs = w.Tab(
        children=[
            w.VBox([w.HBox([pick_img, up_img]), out_hear]),
            w.VBox([w.HBox([pick_clip, up_wav]), out_see]),
            w.VBox([thr, out_zone]),
        ]
    )
    for i, title in enumerate(("Hear an image", "See a sound", "Convergence threshold")):
        tabs.set_title(i, title)
    return tabs
