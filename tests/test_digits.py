"""MNIST-style normalisation of any picture, and the handwriting transforms and their score."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mmga_helpers.evaluation.handwriting import digit_to_cluster, robustness_figures, transformed_digits
from mmga_helpers.modalities.digits import BOX, DrawingError, normalize_digits
from mmga_helpers.modalities.handwriting import AUGMENTATIONS, TRANSFORMS, augment


@pytest.fixture(scope="module")
def mnist_test(real_data):
    with gzip.open(real_data / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(real_data / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return images[:300], labels[:300]


def centre_of_mass(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mass = x.sum(axis=(1, 2))
    return (x.sum(2) @ (np.arange(28) + 0.5)) / mass, (x.sum(1) @ (np.arange(28) + 0.5)) / mass


def extent(x: np.ndarray) -> np.ndarray:
    rows, cols = (x > 0.05).any(2), (x > 0.05).any(1)
    height = 28 - rows[:, ::-1].argmax(1) - rows.argmax(1)
    width = 28 - cols[:, ::-1].argmax(1) - cols.argmax(1)
    return np.maximum(height, width)


def photo_of(digit: np.ndarray, side: int, at: tuple[int, int], zoom: int) -> np.ndarray:
    """A dark-on-light RGB picture of ``digit`` (uint8 [28, 28]) enlarged ``zoom`` times at ``at``."""
    big = np.kron(digit.astype(np.float32) / 255, np.ones((zoom, zoom), np.float32))
    page = np.full((side, side), 0.9, np.float32)
    r, c = at
    page[r : r + big.shape[0], c : c + big.shape[1]] -= 0.8 * big
    return (np.repeat(page[..., None], 3, axis=2) * 255).astype(np.uint8)


def test_mnist_digits_keep_their_shape(mnist_test):
    images, _ = mnist_test
    out = normalize_digits(images)
    assert out.shape == (300, 28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and np.allclose(out.max(axis=(1, 2)), 1.0)
    rows, cols = centre_of_mass(out)
    assert np.abs(rows - 14.5).max() < 0.05 and np.abs(cols - 14.5).max() < 0.05
    assert (extent(out) >= BOX - 1).all() and (extent(out) <= BOX + 1).all()
    # MNIST digits are already normalised: little changes
    assert np.abs(out - images / 255.0).mean() < 0.04


def test_photographed_digits_match_their_mnist_originals(mnist_test):
    images, _ = mnist_test
    reference = normalize_digits(images[:6])
    photos = [photo_of(d, 300, (20 + 9 * i, 60 - 5 * i), 8) for i, d in enumerate(images[:6])]
    out = normalize_digits(photos)  # a list of pictures, RGB, dark ink on light paper
    assert np.abs(out - reference).mean(axis=(1, 2)).max() < 0.05


def test_a_transparent_canvas_with_black_strokes_reads_as_white_ink():
    canvas = np.zeros((200, 150, 4), np.uint8)  # RGBA, fully transparent
    canvas[40:160, 70:80] = (0, 0, 0, 255)  # a black vertical stroke: a "1"
    out = normalize_digits([canvas])[0]
    assert out[4:24, 13:16].mean() > 0.5  # the stroke, 20 px tall, in the middle
    assert out[:, :8].max() == 0 and out[:, 20:].max() == 0


def test_pictures_of_several_sizes_keep_their_order(mnist_test):
    images, _ = mnist_test
    photos = photo_of(images[1], 120, (10, 10), 3), photo_of(images[3], 300, (0, 0), 10)
    mixed = [images[0], photos[0], images[2], photos[1]]
    out = normalize_digits(mixed)
    expected = normalize_digits(images[:4])
    assert np.abs(out - expected).mean(axis=(1, 2)).max() < 0.06


def test_a_large_photo_is_normalised_in_bounded_memory(mnist_test):
    images, _ = mnist_test
    photo = np.full((3000, 4000, 3), 230, np.uint8)
    digit = np.kron(images[0], np.ones((80, 80), np.uint8))  # 2240 x 2240
    photo[300:2540, 900:3140] -= (digit[..., None] // 2).astype(np.uint8)
    out = normalize_digits([photo])
    assert np.abs(out[0] - normalize_digits(images[:1])[0]).mean() < 0.05


@pytest.mark.parametrize(
    ("pictures", "message"),
    [
        ([np.zeros((28, 28))], "image 0: no strokes found"),
        ([np.ones((28, 28)), np.full((50, 50, 3), 255, np.uint8)], "image 0: no strokes found"),
        ([np.eye(28), np.full((28, 28), np.nan)], "image 1: contains NaN"),
        ([np.zeros((28, 28, 2))], "2 colour channels"),
        ([np.zeros((1, 28))], "too small"),
        ([np.zeros((3, 3, 3, 3))], "image 0: expected"),
        ([], "no images given"),
    ],
)
def test_bad_pictures_are_refused_by_index(pictures, message):
    with pytest.raises(DrawingError, match=message):
        normalize_digits(pictures)


def test_a_blank_picture_in_a_batch_is_named(mnist_test):
    images, _ = mnist_test
    batch = images[:5].copy()
    batch[3] = 0
    with pytest.raises(DrawingError, match="image 3: no strokes"):
        normalize_digits(batch)


def test_every_transform_yields_pictures_that_normalise(mnist_test):
    images, _ = mnist_test
    x = normalize_digits(images[:40])
    out = transformed_digits(x, seed=1)
    assert set(out) == set(TRANSFORMS)
    for name, pictures in out.items():
        assert pictures.shape == (40, 28, 28), name
        assert np.isfinite(pictures).all() and np.allclose(pictures.max(axis=(1, 2)), 1.0), name
    # normalisation undoes placement, size and polarity; it cannot undo a slant or a blur
    assert np.abs(out["inverted"] - normalize_digits(x)).mean() < 0.02
    assert np.abs(out["off_centre"] - normalize_digits(x)).mean() < 0.08
    assert np.abs(out["rotate_20deg"] - normalize_digits(x)).mean() > 0.05
    again = transformed_digits(x, seed=1)
    assert all(np.array_equal(out[k], again[k]) for k in out)  # seeded


def test_augment_draws_every_kind_and_keeps_ink(mnist_test):
    images, _ = mnist_test
    x = normalize_digits(images[:120])
    a = augment(x, np.random.default_rng(0))
    assert a.shape == x.shape and np.allclose(a.max(axis=(1, 2)), 1.0)
    assert np.abs(a - x).mean(axis=(1, 2)).min() > 0  # every digit altered
    assert len(AUGMENTATIONS) == 6
    assert np.array_equal(a, augment(x, np.random.default_rng(0)))


def test_digit_to_cluster_matches_training_clusters_one_to_one():
    digits = np.repeat(np.arange(10), 20)
    clusters = (digits * 3 + 1) % 10  # a permutation of the ten digits
    clusters[::20] = 0  # a few strays
    match = digit_to_cluster(clusters, digits)
    assert match == {d: (d * 3 + 1) % 10 for d in range(10)}


def test_robustness_figures_score_what_the_assignment_gets_right(mnist_test):
    images, labels = mnist_test
    x = normalize_digits(images[:60])
    match = {d: 9 - d for d in range(10)}

    def oracle(pictures):  # knows the answer for the first 30 items, wrong on the rest
        out = np.array([match[int(d)] for d in labels[:60]])
        out[30:] = (out[30:] + 1) % 10
        return out

    figs = robustness_figures(oracle, x, labels[:60], match)
    assert figs["image.robustness.clean"] == pytest.approx(0.5)
    assert figs["image.robustness.mean"] == pytest.approx(0.5)
    assert figs["image.robustness.worst"] == pytest.approx(0.5)
    assert {f"image.robustness.{k}" for k in TRANSFORMS} <= set(figs)


def test_an_uploaded_photo_is_read_the_mnist_way_and_a_broken_one_refused():
    import io

    from PIL import Image

    from mmga_helpers.display.explorer import image_from_png

    page = np.full((300, 300, 3), 240, np.uint8)
    page[50:250, 140:160] = 10  # a dark "1" on white paper
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, format="JPEG")
    digit = image_from_png(buf.getvalue())
    assert digit.shape == (28, 28) and digit[4:24, 13:16].mean() > 0.5 and digit[:, :8].max() == 0
    with pytest.raises(DrawingError, match="not a readable picture"):
        image_from_png(buf.getvalue()[:200])  # cut short
    with pytest.raises(DrawingError, match="not a readable picture"):
        image_from_png(b"RIFF....WAVEfmt ")


def test_a_bad_picture_among_others_of_its_size_is_named_by_its_place():
    good = np.eye(28)
    bad = np.full((28, 28), np.nan)
    with pytest.raises(DrawingError, match=r"^image 3: contains NaN"):
        normalize_digits([good, np.eye(40), good, bad])


def test_transform_names_make_flat_figure_keys():
    """Figure keys are dotted paths in metrics.json: a dot inside a name would nest it wrongly."""
    from mmga_helpers.core.metrics import flatten, unflatten

    figures = {f"image.robustness.{name}": 0.5 for name in TRANSFORMS}
    assert all("." not in name for name in TRANSFORMS)
    assert flatten(unflatten(figures)) == figures
