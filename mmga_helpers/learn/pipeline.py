"""The training batches as tf.data pipelines: seeded shuffles replayed on resume, the perturbations
a voice or a hand may bring (a warped or tilted spectrum, altered digits), masked bands and frames,
autotuning off."""

from __future__ import annotations

import numpy as np

from mmga_helpers.learn.strategy import replayed_dataset
from mmga_helpers.modalities.handwriting import augment

N_VARIANTS = 3  # altered copies of each training image under image augmentation
N_MASKS = 2  # masked bands, and masked stretches of frames, per item (SpecAugment's usual count)


def digit_variants(x: np.ndarray, seed: int) -> np.ndarray:
    """``[N, N_VARIANTS, 28, 28, 1]`` altered copies of MNIST-style images ``[N, 28, 28, 1]``
    (:func:`~mmga_helpers.modalities.handwriting.augment`), seeded."""
    rng = np.random.default_rng([seed, 2024])
    return np.stack([augment(x[..., 0], rng)[..., None] for _ in range(N_VARIANTS)], axis=1)


def without_autotune(ds):
    """``ds`` with tf.data's autotuning off. With it on, letting go of an unfinished iterator, as
    Keras does at the end of every ``fit``, sometimes waited 8 to 35 s with the CPU idle in a
    notebook kernel; the batches and their order are the same either way."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def make_dataset(
    x: np.ndarray,
    batch_size: int,
    seed: int | None,
    shuffle: bool,
    targets: np.ndarray | None = None,
    variants: np.ndarray | None = None,
):
    """``(x, x)`` batches, or ``(x, {"reconstruction": x, "convergence": targets})`` when the model
    has a convergence head; shuffling seeded and reshuffled each epoch. With ``variants``
    (``[N, V, ...]``, altered copies of each item) the inputs are ``(x, variants)`` pairs, for
    :func:`_with_variants` to choose from; the targets stay the clean items."""
    import tensorflow as tf

    y = x if targets is None else {"reconstruction": x, "convergence": targets.astype(np.float32)}
    ds = tf.data.Dataset.from_tensor_slices(((x, variants) if variants is not None else x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return without_autotune(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def warp_frequency_axis(x, alpha):
    """Each item's first (frequency) axis resampled by its factor ``alpha`` (linear interpolation,
    the top bin repeated past the edge): a vocal-tract-length perturbation on log-mel images, which
    moves formants as a shorter or longer voice would. ``x``: ``[B, F, T, C]``; ``alpha``: ``[B]``."""
    import tensorflow as tf

    n = tf.shape(x)[1]
    top = tf.cast(n - 1, tf.float32)
    pos = tf.clip_by_value(tf.range(n, dtype=tf.float32)[None, :] / alpha[:, None], 0.0, top)
    lo = tf.cast(tf.floor(pos), tf.int32)
    hi = tf.minimum(lo + 1, n - 1)
    frac = (pos - tf.cast(lo, tf.float32))[:, :, None, None]
    below = tf.gather(x, lo, axis=1, batch_dims=1)
    above = tf.gather(x, hi, axis=1, batch_dims=1)
    return below * (1.0 - frac) + above * frac


def tilt_spectrum(x, slope):
    """Each item's voiced bins (above 0, the floor) raised by ``slope / 2`` at the top of the first
    (frequency) axis and lowered by as much at its bottom, linearly between, clipped to [0, 1]: a
    voice or microphone with another spectral slope. ``x``: ``[B, F, T, C]``; ``slope``: ``[B]``."""
    import tensorflow as tf

    n = tf.shape(x)[1]
    ramp = tf.cast(tf.range(n), tf.float32) / tf.cast(tf.maximum(n - 1, 1), tf.float32) - 0.5
    shifted = tf.clip_by_value(x + slope[:, None, None, None] * ramp[None, :, None, None], 0.0, 1.0)
    return tf.where(x > 0, shifted, x)


def _per_batch(ds, seed: int, salt: int, change):
    """``ds`` with ``change(key, batch)`` applied to every batch, ``key`` = ``[seed + salt, batch
    number]``: stateless draws that a resumed run replays; each perturbation has its own ``salt``."""
    import tensorflow as tf

    def keyed(step, batch):
        return change(tf.stack([tf.cast(seed, tf.int64) + salt, step]), batch)

    return ds.enumerate().map(keyed, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _spans(key, batch, length, widest: int):
    """``[batch, length]`` booleans (``batch``, ``length``: scalar tensors), each row True over
    ``N_MASKS`` spans of 0 to ``widest`` positions at uniform starts (stateless draws from ``key``)."""
    import tensorflow as tf

    hit = tf.zeros([batch, length], tf.bool)
    at = tf.range(length)[None, :]
    for i in range(N_MASKS):
        k = key + 17 * (i + 1)
        width = tf.random.stateless_uniform([batch], seed=k, maxval=widest + 1, dtype=tf.int32)
        room = tf.cast(tf.maximum(length - width, 0), tf.float32)
        start = tf.cast(tf.random.stateless_uniform([batch], seed=k + 1) * room, tf.int32)
        hit = hit | ((at >= start[:, None]) & (at < (start + width)[:, None]))
    return hit


def mask_spectrum(x, key, max_bands: int, max_frames: int):
    """``x`` (``[B, F, T, C]``) with ``N_MASKS`` bands of up to ``max_bands`` rows and as many
    stretches of up to ``max_frames`` columns set to 0, the floor, per item; ``key`` seeds them."""
    import tensorflow as tf

    b, f, t = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    keep = tf.ones_like(x)
    if max_bands > 0:
        keep *= 1.0 - tf.cast(_spans(key, b, f, max_bands), x.dtype)[:, :, None, None]
    if max_frames > 0:
        keep *= 1.0 - tf.cast(_spans(key + 7, b, t, max_frames), x.dtype)[:, None, :, None]
    return x * keep


def _with_masks(ds, max_bands: int, max_frames: int, seed: int):
    """Mask every training input (:func:`mask_spectrum`), keyed by seed and batch number so that a
    resumed run replays them; the reconstruction target stays unmasked: the code must carry the word
    even where a band or a moment is missing."""

    def mask(key, batch):
        x, y = batch
        return mask_spectrum(x, key, max_bands, max_frames), y

    return _per_batch(ds, seed, 31337, mask)


def _with_voice_perturbation(ds, max_warp: float, seed: int, max_tilt: float = 0.0):
    """Warp every training batch by factors drawn uniformly in ``[1 - max_warp, 1 + max_warp]``
    and, with ``max_tilt``, tilt its spectra by slopes drawn in ``[-max_tilt, max_tilt]``
    (:func:`tilt_spectrum`); the draws are stateless, keyed by seed and batch number, so a resumed
    run replays them. The autoencoder reconstructs the perturbed input (a voice it could have
    heard); targets are unchanged."""
    import tensorflow as tf

    def warp(key, batch):
        x, y = batch
        xw = x
        if max_warp > 0:
            alpha = tf.random.stateless_uniform(
                tf.shape(x)[:1], seed=key, minval=1.0 - max_warp, maxval=1.0 + max_warp
            )
            xw = warp_frequency_axis(xw, alpha)
        if max_tilt > 0:
            slope = tf.random.stateless_uniform(
                tf.shape(x)[:1], seed=key + 104729, minval=-max_tilt, maxval=max_tilt
            )
            xw = tilt_spectrum(xw, slope)
        return xw, (xw if not isinstance(y, dict) else {**y, "reconstruction": xw})

    return _per_batch(ds, seed, 0, warp)


def _with_variants(ds, share: float, seed: int):
    """Show each item, with probability ``share``, as one of its altered copies (drawn uniformly);
    stateless draws keyed by seed and batch number, so a resumed run replays them. The target stays
    the clean item: the code learns to ignore what the alterations change."""
    import tensorflow as tf

    def pick(key, batch):
        (x, variants), y = batch
        n, v = tf.shape(variants)[0], tf.shape(variants)[1]
        altered = tf.random.stateless_uniform([n], seed=key) < share
        which = tf.random.stateless_uniform([n], seed=key + 1, maxval=v, dtype=tf.int32)
        chosen = tf.gather(variants, which, axis=1, batch_dims=1)
        mask = tf.reshape(altered, tf.concat([[n], tf.ones(tf.rank(x) - 1, tf.int32)], axis=0))
        return tf.where(mask, chosen, x), y

    return _per_batch(ds, seed, 7919, pick)


def epoch_dataset(
    x: np.ndarray,
    batch_size: int,
    seed: int,
    *,
    start_epoch: int = 0,
    targets: np.ndarray | None = None,
    max_warp: float = 0.0,
    max_tilt: float = 0.0,
    mask_bands: int = 0,
    mask_frames: int = 0,
    variants: np.ndarray | None = None,
    variant_share: float = 0.0,
    orders: np.ndarray | None = None,
):
    """Training batches for ``fit(..., steps_per_epoch=steps)``: one endless iterator whose k-th
    epoch is the k-th seeded reshuffle, so that resuming at ``start_epoch`` (skipping the batches of
    the completed epochs) replays exactly the orders an uninterrupted run would see, whatever Keras
    does with iterators between epochs. ``max_warp > 0`` perturbs the frequency axis of every batch
    (:func:`warp_frequency_axis`), ``max_tilt > 0`` its spectral slope (:func:`tilt_spectrum`);
    ``mask_bands`` / ``mask_frames`` mask the inputs, not the targets (:func:`mask_spectrum`);
    ``variants`` with ``variant_share > 0`` shows that share of items altered (:func:`_with_variants`).
    ``orders`` (``[epochs, N]``, under a tf.distribute strategy)
    replays those epochs' shuffles from fixed orders instead (:mod:`~mmga_helpers.learn.strategy`).
    Returns ``(dataset, steps)``."""
    steps = -(-(len(x) if orders is None else orders.shape[1]) // batch_size)
    use_variants = variants is not None and variant_share > 0
    kept = variants if use_variants else None
    if orders is None:
        ds = make_dataset(x, batch_size, seed, shuffle=True, targets=targets, variants=kept).repeat()
    else:
        ds = replayed_dataset(x, batch_size, orders, targets=targets, variants=kept)
    if use_variants:
        ds = _with_variants(ds, variant_share, seed)
    if max_warp > 0 or max_tilt > 0:
        ds = _with_voice_perturbation(ds, max_warp, seed, max_tilt)
    if mask_bands > 0 or mask_frames > 0:
        ds = _with_masks(ds, mask_bands, mask_frames, seed)
    if start_epoch:
        ds = ds.skip(start_epoch * steps)
    return without_autotune(ds), steps
