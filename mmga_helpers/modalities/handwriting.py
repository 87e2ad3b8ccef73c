"""How handwriting and its capture differ, as transforms of MNIST digits.

Each transform takes a batch of digits (float ``[N, 28, 28]`` in [0, 1], white on black) and a
seeded generator, and returns pictures of any size and polarity, as a person's input would be:
thinner or thicker strokes, another size or place, a slant, blur, a coarse capture, a finger on a
canvas, ink on paper. :data:`TRANSFORMS` is the fixed suite the evaluation scores;
:func:`augment` draws random variants of the same kinds (other strengths) for training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from mmga_helpers.modalities.digits import normalize_digits

Transform = Callable[[NDArray[np.float32], np.random.Generator], NDArray[np.float32]]


def _pad(x: NDArray, margin: int) -> NDArray:
    return np.pad(x, ((0, 0), (margin, margin), (margin, margin)))


def _zoom_weights(n: int, factor: float) -> NDArray:
    """``[round(n * factor), n]``: linear interpolation along one axis of ``n`` pixels, as
    ``scipy.ndimage.zoom(..., order=1)`` does it (the zoom of an identity matrix)."""
    return ndimage.zoom(np.eye(n, dtype=np.float32), (factor, 1), order=1)


def _zoom(x: NDArray, factor: float) -> NDArray:
    """``scipy.ndimage.zoom(x, (1, factor, factor), order=1)`` as two matrix products: linear
    interpolation is separable."""
    return np.matmul(np.matmul(_zoom_weights(x.shape[1], factor), x), _zoom_weights(x.shape[2], factor).T)


def _dilate(size: int) -> Transform:
    return lambda x, rng: ndimage.grey_dilation(x, size=(1, size, size))


def _erode(size: int) -> Transform:
    return lambda x, rng: ndimage.grey_erosion(x, size=(1, size, size))


def _scale(factor: float) -> Transform:
    """Zoom about the middle of a canvas large enough to hold the result."""

    def apply(x: NDArray, rng: np.random.Generator) -> NDArray:
        canvas = _pad(x, 10)
        c = (canvas.shape[1] - 1) / 2
        matrix = np.diag([1.0, 1 / factor, 1 / factor])
        offset = np.array([0.0, c - c / factor, c - c / factor])
        return ndimage.affine_transform(canvas, matrix, offset=offset, order=1)

    return apply


def _shift(x: NDArray, rng: np.random.Generator) -> NDArray:
    """Every digit moved by whole pixels, each axis by -4..4 (at least one axis by 4), in its field."""
    n = len(x)
    d = rng.integers(-4, 5, size=(n, 2))
    d[np.arange(n), rng.integers(0, 2, size=n)] = rng.choice([-4, 4], size=n)
    canvas = _pad(x, 4)
    rows = (np.arange(28)[None, :] + 4 - d[:, :1])[:, :, None]
    cols = (np.arange(28)[None, :] + 4 - d[:, 1:])[:, None, :]
    return canvas[np.arange(n)[:, None, None], rows, cols]


def _rotate(x: NDArray, rng: np.random.Generator) -> NDArray:
    """Half the digits turned 20 degrees one way, half the other (the issue's extremes)."""
    out = np.empty_like(x)
    half = np.arange(len(x)) % 2 == 0
    for sign, sel in ((1, half), (-1, ~half)):
        out[sel] = ndimage.rotate(x[sel], sign * 20.0, axes=(2, 1), reshape=False, order=1)
    return out


def _blur(x: NDArray, rng: np.random.Generator) -> NDArray:
    return ndimage.gaussian_filter(x, sigma=(0, 1.0, 1.0))


def _low_resolution(side: int) -> Transform:
    """Down to ``side`` pixels (area average) and back up to 28 (bilinear): a small or far capture."""

    def apply(x: NDArray, rng: np.random.Generator) -> NDArray:
        smooth = ndimage.gaussian_filter(x, sigma=(0, 14 / side, 14 / side))  # no aliasing
        return _zoom(_zoom(smooth, side / 28), 28 / side)

    return apply


def _finger(x: NDArray, rng: np.random.Generator) -> NDArray:
    """Thick, soft strokes as a finger draws on a canvas: 3x larger, strokes swollen by a disc
    of radius 5 (about 2 MNIST pixels all round), edges blurred, dark on white like the canvas."""
    big = _zoom(x, 3)
    r = 5
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = (yy**2 + xx**2 <= r * r)[None]
    thick = ndimage.grey_dilation(big, footprint=disc)
    return 1.0 - ndimage.gaussian_filter(thick, sigma=(0, 2.0, 2.0))


def _placed(x: NDArray, zoom: float, side: int, rng: np.random.Generator) -> NDArray:
    """Each digit enlarged ``zoom`` times at a random place of a ``side`` x ``side`` black picture:
    :func:`_zoom`'s interpolation matrices, each moved down its picture's rows and columns."""
    n = len(x)
    weights = _zoom_weights(x.shape[1], zoom)  # [size, 28]
    size = weights.shape[0]
    r0, c0 = rng.integers(0, side - size, size=(2, n))
    span = np.arange(size)[None, :]
    rows = np.zeros((n, side, x.shape[1]), np.float32)
    cols = np.zeros((n, side, x.shape[2]), np.float32)
    rows[np.arange(n)[:, None], r0[:, None] + span] = weights
    cols[np.arange(n)[:, None], c0[:, None] + span] = weights
    return np.matmul(np.matmul(rows, x), np.swapaxes(cols, 1, 2))


def _off_centre(x: NDArray, rng: np.random.Generator) -> NDArray:
    """Each digit, enlarged 1.5x (42 px), lies in a random corner region of a 96 x 96 picture."""
    return _placed(x, 1.5, 96, rng)


def _inverted(x: NDArray, rng: np.random.Generator) -> NDArray:
    """Dark ink on light paper, as a scan or photograph shows it."""
    return 1.0 - x


def _photo(x: NDArray, rng: np.random.Generator) -> NDArray:
    """A photograph of ink on paper: 240 x 240, grey paper with grain, dark-grey ink, the digit 6x
    larger (168 px) and off-centre."""
    ink = _placed(x, 6, 240, rng)
    picture = rng.standard_normal(ink.shape, dtype=np.float32)  # in place below: 115 M pixels
    picture *= 0.03
    picture += 0.85
    ink *= 0.65
    picture -= ink
    return np.clip(picture, 0.0, 1.0, out=picture)


TRANSFORMS: dict[str, Transform] = {
    "erode_1px": _erode(2),
    "dilate_1px": _dilate(2),
    "dilate_2px": _dilate(3),
    "scale_60pct": _scale(0.6),
    "scale_120pct": _scale(1.2),
    "shift_4px": _shift,
    "rotate_20deg": _rotate,
    "blur": _blur,
    "low_resolution_8px": _low_resolution(8),
    "low_resolution_12px": _low_resolution(12),
    "finger": _finger,
    "off_centre": _off_centre,
    "inverted": _inverted,
    "photo": _photo,
}




def _rotate_each(x: NDArray, degrees: NDArray) -> NDArray:
    """Each picture turned by its own angle about its middle (bilinear), in one vectorised call."""
    n, h, w = x.shape
    a = np.deg2rad(degrees)[:, None, None]
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    cr, cc = (h - 1) / 2, (w - 1) / 2
    src_r = cr + np.cos(a) * (r - cr) - np.sin(a) * (c - cc)
    src_c = cc + np.sin(a) * (r - cr) + np.cos(a) * (c - cc)
    batch = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], src_r.shape)
    return ndimage.map_coordinates(x, np.stack([batch, src_r, src_c]), order=1, cval=0.0)


AUGMENTATIONS = ("rotate", "thicken", "thin", "blur", "coarsen", "finger")


def augment(x: NDArray, rng: np.random.Generator) -> NDArray[np.float32]:
    """One random variant of each digit (``[N, 28, 28]`` in [0, 1]), normalised the MNIST way: a
    slant of up to 25 degrees, strokes thickened by 1-2 px or thinned by 1, a blur, a capture
    coarsened to 7-14 px, or a finger's thick soft stroke, each kind for an equal share, at
    strengths drawn at random (wider than the evaluation's fixed ones)."""
    x = np.asarray(x, np.float32)
    n = len(x)
    kind = rng.integers(0, len(AUGMENTATIONS), size=n)
    out = np.empty_like(x)
    for k, name in enumerate(AUGMENTATIONS):
        sel = np.flatnonzero(kind == k)
        if sel.size == 0:
            continue
        part = x[sel]
        if name == "rotate":
            part = _rotate_each(part, rng.uniform(-25, 25, size=sel.size))
        elif name == "thicken":
            big = rng.random(sel.size) < 0.5
            part = np.where(big[:, None, None], _dilate(3)(part, rng), _dilate(2)(part, rng))
        elif name == "thin":
            part = _erode(2)(part, rng)
        elif name == "blur":
            part = ndimage.gaussian_filter(part, sigma=(0, rng.uniform(0.6, 1.6), rng.uniform(0.6, 1.6)))
        elif name == "coarsen":
            part = _low_resolution(int(rng.integers(7, 15)))(part, rng)
        else:
            part = ndimage.gaussian_filter(_dilate(3)(part, rng), sigma=(0, 1.0, 1.0))
        # a variant that lost its ink (a thin digit eroded away) stays the clean digit
        empty = np.clip(part, 0, 1).reshape(sel.size, -1).max(axis=1) < 0.2
        out[sel] = np.where(empty[:, None, None], x[sel], np.clip(part, 0.0, 1.0))
    return normalize_digits(out)
