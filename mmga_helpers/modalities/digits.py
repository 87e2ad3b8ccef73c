"""Any picture of a digit, normalised the way MNIST was made.

MNIST's digits were scaled so that their bounding box fits a 20 x 20 square (aspect kept,
anti-aliased) and then placed in a 28 x 28 field with their centre of mass at its centre, white
ink on black. A digit drawn on a canvas, photographed on paper or cut from a scan is none of
that: it may be dark on light, any size, off-centre, in colour or with an alpha channel.
:func:`normalize_digits` brings every such picture to the MNIST convention, so the image encoder
meets what it was trained on.

The steps, all on whole batches of same-sized pictures (no loop over images):

1. to grey levels in [0, 1] (RGB by luminance; a transparent background counts as white paper);
2. pictures wider or taller than :data:`MAX_SIDE` are first averaged down by whole blocks;
3. the background is the median of the border pixels; a light background means dark ink, and
   the picture is inverted; the background level is subtracted and the ink scaled to peak 1;
   faint specks below :data:`NOISE_FLOOR` of the peak are dropped;
4. the ink's bounding box gives the scale (its longer side to :data:`BOX` pixels) and its
   centre of mass the offset; one separable resampling (a triangle filter as wide as the scale
   asks, so that shrinking averages rather than skips pixels) writes the 28 x 28 result.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 28  # the MNIST field
CENTRE = 14.5  # MNIST's centres of mass lie at pixel (14, 14), whose middle is 14.5 from the edge
BOX = 20  # the side of the square the ink's bounding box is scaled into
MAX_SIDE = 112  # larger pictures are block-averaged to at most this side first (4 x the field)
NOISE_FLOOR = 0.1  # ink below this share of the peak is paper texture or sensor noise
MIN_SIDE = 4  # pixels: anything narrower cannot hold a digit (a flattened [N, 784] batch, say)
MIN_CONTRAST = 0.08  # a picture whose ink peaks below this over its background is blank


class DrawingError(ValueError):
    """A picture cannot be read as a digit; the message names the item and why."""


def read_picture(source: bytes | str | Path) -> np.ndarray:
    """A picture file, or its bytes (PNG, JPEG, ...; any size and colour) -> its pixels: grey, or
    RGBA where it has transparency (a canvas' empty background). A damaged or non-image source, or
    one past PIL's decompression-bomb limit, raises :class:`DrawingError`."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            img.load()
            mode = "RGBA" if "A" in img.getbands() or "transparency" in img.info else "L"
            return np.asarray(img.convert(mode))
    except Image.DecompressionBombError:
        raise DrawingError(f"over {Image.MAX_IMAGE_PIXELS:,} pixels; scale the picture down") from None
    except (OSError, SyntaxError, ValueError):
        raise DrawingError("not a readable picture (damaged, or not an image); give a PNG or JPEG") from None


def normalize_one(pixels: np.ndarray) -> np.ndarray:
    """:func:`normalize_digits` of one picture, ``[28, 28]``; its errors without "image 0: "."""
    try:
        return normalize_digits([pixels])[0]
    except DrawingError as err:
        raise DrawingError(str(err).removeprefix("image 0: ")) from None


def to_grey(pictures: np.ndarray, names: np.ndarray | None = None) -> np.ndarray:
    """Same-sized pictures ``[N, H, W, C]`` (C = 1 grey, 3 RGB, 4 RGBA; uint8, uint16, bool or
    float) -> float32 ``[N, H, W]`` in [0, 1]. Transparent pixels count as white paper. Errors name
    a picture by its entry in ``names`` (default: its row)."""
    arr = np.asarray(pictures)
    names = np.arange(len(arr)) if names is None else names
    first_index = int(names[0]) if len(names) else 0
    n, h, w, channels = arr.shape
    if channels not in (1, 3, 4):
        raise DrawingError(f"image {first_index}: {channels} colour channels (expected 1, 3 or 4)")
    if min(h, w) < MIN_SIDE:
        raise DrawingError(f"image {first_index}: {h} x {w} pixels is too small to hold a digit")
    if arr.dtype == np.bool_:
        x = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        top = 255.0 if arr.max(initial=0) <= 255 else float(np.iinfo(arr.dtype).max)
        x = arr.astype(np.float32) / top
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        bad = ~np.isfinite(x).reshape(n, -1).all(axis=1)
        if bad.any():
            raise DrawingError(
                f"image {int(names[np.flatnonzero(bad)[0]])}: contains NaN or inf; "
                "drop that image or fix its pixels"
            )
        if x.max(initial=0) > 1.0 + 1e-6:  # float pixels on a 0-255 scale
            x = x / 255.0
    else:
        raise DrawingError(f"image {first_index}: pixels of dtype {arr.dtype} are not numbers")
    x = np.clip(x, 0.0, 1.0)
    if channels == 1:
        return x[..., 0]
    grey = x[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL's "L"
    if channels == 4:
        alpha = x[..., 3]
        grey = alpha * grey + (1.0 - alpha)  # composited over white paper
    return grey


def _block_average(x: np.ndarray) -> np.ndarray:
    """``[N, H, W]`` averaged over whole blocks so that neither side exceeds :data:`MAX_SIDE`."""
    n, h, w = x.shape
    f = -(-max(h, w) // MAX_SIDE)
    if f == 1:
        return x
    hp, wp = -(-h // f) * f, -(-w // f) * f
    bg = np.median(_border(x), axis=1)  # pad with each picture's own background, not black
    padded = np.broadcast_to(bg[:, None, None], (n, hp, wp)).copy()
    padded[:, :h, :w] = x
    return padded.reshape(n, hp // f, f, wp // f, f).mean(axis=(2, 4))


def _border(x: np.ndarray) -> np.ndarray:
    """Each picture's outermost pixels, ``[N, 2H + 2W - 4]``."""
    return np.concatenate([x[:, 0, :], x[:, -1, :], x[:, 1:-1, 0], x[:, 1:-1, -1]], axis=1)


class _Blank(Exception):
    def __init__(self, row: int) -> None:
        self.row = row


def ink_of(x: np.ndarray) -> np.ndarray:
    """Grey pictures ``[N, H, W]`` -> ink ``[N, H, W]`` in [0, 1]: light on dark, background 0,
    peak 1, specks below :data:`NOISE_FLOOR` removed. A blank picture raises ``_Blank(row)``."""
    bg = np.median(_border(x), axis=1)
    light_paper = bg > 0.5
    x = np.where(light_paper[:, None, None], 1.0 - x, x)
    bg = np.where(light_paper, 1.0 - bg, bg)
    ink = np.clip(x - bg[:, None, None], 0.0, None)
    peak = ink.max(axis=(1, 2))
    blank = peak < MIN_CONTRAST
    if blank.any():
        raise _Blank(int(np.flatnonzero(blank)[0]))
    ink = ink / peak[:, None, None]
    return np.where(ink >= NOISE_FLOOR, ink, 0.0).astype(np.float32)


def _resampling_matrix(centre: np.ndarray, scale: np.ndarray, n_src: int) -> np.ndarray:
    """``[N, SIZE, n_src]`` weights: output pixel k of picture i reads source pixels around
    ``(k + 0.5 - CENTRE) / scale[i] + centre[i]`` with a triangle filter of half-width
    ``max(1, 1 / scale)`` source pixels; rows sum to about 1 inside the picture, and the outside
    (background) adds nothing."""
    width = np.maximum(1.0, 1.0 / scale)[:, None, None]
    k = np.arange(SIZE, dtype=np.float64) + 0.5
    u = (k[None, :] - CENTRE) / scale[:, None] + centre[:, None]  # [N, SIZE] in source coordinates
    p = np.arange(n_src, dtype=np.float64) + 0.5
    return np.clip(1.0 - np.abs(p[None, None, :] - u[:, :, None]) / width, 0.0, None) / width


def _normalize_same_size(x: np.ndarray) -> np.ndarray:
    """Grey pictures of one size ``[N, H, W]`` -> MNIST-style ``[N, 28, 28]``."""
    ink = ink_of(_block_average(x)).astype(np.float64)
    _, h, w = ink.shape
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    top, bottom = rows.argmax(axis=1), h - rows[:, ::-1].argmax(axis=1)
    left, right = cols.argmax(axis=1), w - cols[:, ::-1].argmax(axis=1)
    # the first and last inked pixel centres land BOX - 1 apart: with the filter's reach that makes
    # a box of BOX pixels, as in MNIST
    scale = (BOX - 1) / np.maximum(np.maximum(bottom - top, right - left) - 1, 1)
    mass = ink.sum(axis=(1, 2))
    com_r = (ink.sum(axis=2) @ (np.arange(h) + 0.5)) / mass
    com_c = (ink.sum(axis=1) @ (np.arange(w) + 0.5)) / mass
    wr = _resampling_matrix(com_r, scale, h)
    wc = _resampling_matrix(com_c, scale, w)
    out = np.matmul(np.matmul(wr, ink), np.swapaxes(wc, 1, 2))
    out /= np.maximum(out.max(axis=(1, 2), keepdims=True), 1e-12)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _as_batches(images: Sequence[np.ndarray] | np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(positions, pictures [n, H, W, C])`` per distinct picture size, in first-seen order."""
    if isinstance(images, np.ndarray) and images.dtype != object:
        if images.ndim == 2:  # one grey picture
            return [(np.array([0]), images[None, ..., None])]
        if images.ndim == 3:  # a batch of grey pictures
            return [(np.arange(len(images)), images[..., None])]
        if images.ndim == 4:
            return [(np.arange(len(images)), images)]
        raise DrawingError(f"images: expected [N, H, W] or [N, H, W, C] pixels, got shape {images.shape}")
    items = [np.asarray(img) for img in images]
    for i, img in enumerate(items):
        if img.ndim not in (2, 3):
            raise DrawingError(f"image {i}: expected [height, width(, channels)], got shape {img.shape}")
    items = [img[..., None] if img.ndim == 2 else img for img in items]
    shapes = [img.shape for img in items]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(i)
    return [(np.array(idx), np.stack([items[i] for i in idx])) for idx in groups.values()]


def normalize_digits(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Pictures of digits of any size, colour and polarity -> float32 ``[N, 28, 28]`` in [0, 1],
    white ink on black, bounding box in 20 x 20, centre of mass at the centre (MNIST's recipe).

    ``images``: one picture ``[H, W]``, a batch ``[N, H, W]`` or ``[N, H, W, C]``, or a sequence of
    pictures of any sizes (each ``[H, W]`` or ``[H, W, C]``); same-sized pictures are processed
    together. A blank, NaN-holding or malformed picture raises :class:`DrawingError` naming it."""
    batches = _as_batches(images)
    total = sum(len(pos) for pos, _ in batches)
    if total == 0:
        raise DrawingError("no images given")
    out = np.empty((total, SIZE, SIZE), np.float32)
    for positions, pictures in batches:
        try:
            out[positions] = _normalize_same_size(to_grey(pictures, positions))
        except _Blank as blank:
            raise DrawingError(
                f"image {int(positions[blank.row])}: no strokes found (a blank or uniform picture); "
                "draw a digit first"
            ) from None
    return out
