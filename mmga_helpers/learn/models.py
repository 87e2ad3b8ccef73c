"""Convolutional autoencoders (Keras 3 functional API) for images and log-mel spectrograms.

One builder serves both modalities: ``encoder_layers`` are the filters of stride-2 convolution
blocks, ``decoder_layers`` those of the transposed blocks that mirror them; the decoder crops back
to the exact input size (126 spectrogram frames are not a power of two). The autoencoder is the
encoder followed by the decoder, so saving the decoder saves the trained weights, not fresh ones.
No Lambda layers: every saved model loads with ``safe_mode=True``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
from keras import layers

from mmga_helpers.core.config import AutoencoderConfig


@dataclass
class Autoencoder:
    """The three views of one trained network; ``autoencoder`` = ``decoder(encoder(x))``.

    ``trainer`` is the model that is fitted: the autoencoder itself, or, with a convergence head,
    the autoencoder with a second output that predicts the co-occurring image cluster."""

    encoder: keras.Model
    decoder: keras.Model
    autoencoder: keras.Model
    trainer: keras.Model | None = None

    @property
    def fitted(self) -> keras.Model:
        return self.trainer if self.trainer is not None else self.autoencoder


# No batch normalisation: on these CPUs it made training slower for no gain in reconstruction.
def _conv_block(x, filters: int, name: str):
    return layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"{name}_conv")(x)


def _deconv_block(x, filters: int, name: str):
    return layers.Conv2DTranspose(
        filters, 3, strides=2, padding="same", activation="relu", name=f"{name}_deconv"
    )(x)


def build_autoencoder(cfg: AutoencoderConfig, name: str) -> Autoencoder:
    """Encoder ``[H, W, C] -> latent_dim``; decoder back to ``[H, W, C]`` (sigmoid: inputs are in [0, 1])."""
    shape = tuple(cfg.input_shape) if len(cfg.input_shape) == 3 else (*cfg.input_shape, 1)
    h, w, c = shape
    steps = len(cfg.encoder_layers)
    if len(cfg.decoder_layers) != steps:
        raise ValueError(
            f"model.{name}.decoder_layers must mirror encoder_layers ({steps} blocks), "
            f"got {cfg.decoder_layers}"
        )
    inp = keras.Input(shape=shape, name=f"{name}_input")
    x = inp
    for i, f in enumerate(cfg.encoder_layers):
        x = _conv_block(x, f, f"enc{i}")
    x = layers.Flatten(name="enc_flatten")(x)
    latent = layers.Dense(cfg.latent_dim, name="latent")(x)
    encoder = keras.Model(inp, latent, name=f"{name}_encoder")

    bh, bw = math.ceil(h / 2**steps), math.ceil(w / 2**steps)
    z = keras.Input(shape=(cfg.latent_dim,), name=f"{name}_latent_input")
    y = layers.Dense(bh * bw * cfg.decoder_layers[0], activation="relu", name="dec_dense")(z)
    y = layers.Reshape((bh, bw, cfg.decoder_layers[0]), name="dec_reshape")(y)
    for i, f in enumerate(cfg.decoder_layers):
        y = _deconv_block(y, f, f"dec{i}")
    extra_h, extra_w = bh * 2**steps - h, bw * 2**steps - w
    if extra_h or extra_w:
        y = layers.Cropping2D(((0, extra_h), (0, extra_w)), name="dec_crop")(y)
    out = layers.Conv2D(c, 3, padding="same", activation="sigmoid", name="reconstruction")(y)
    decoder = keras.Model(z, out, name=f"{name}_decoder")

    autoencoder = keras.Model(inp, decoder(encoder(inp)), name=name)
    return Autoencoder(encoder, decoder, autoencoder)


def add_convergence_head(ae: Autoencoder, n_partner_clusters: int) -> Autoencoder:
    """The autoencoder with a softmax head on its latent code that predicts, for each input, the
    distribution of the other modality's clusters it co-occurred with: the convergence zone's pull
    on this modality's code. Outputs ``{"reconstruction", "convergence"}``; only the trainer has the
    head (generation needs encoder and decoder alone)."""
    inp = ae.autoencoder.input
    z = ae.encoder(inp)
    head = layers.Dense(n_partner_clusters, activation="softmax", name="convergence")(z)
    outputs = {"reconstruction": ae.decoder(z), "convergence": head}
    trainer = keras.Model(inp, outputs, name=f"{ae.autoencoder.name}_convergence")
    return Autoencoder(ae.encoder, ae.decoder, ae.autoencoder, trainer)


def compile_autoencoder(ae: Autoencoder, cfg: AutoencoderConfig) -> None:
    """Adam on the reconstruction MSE, plus ``convergence_weight`` x the cross-entropy of the
    convergence head when the model has one."""
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    if ae.trainer is None:
        ae.autoencoder.compile(optimizer=optimizer, loss="mse")
        return
    ae.trainer.compile(
        optimizer=optimizer,
        loss={"reconstruction": "mse", "convergence": "categorical_crossentropy"},
        loss_weights={"reconstruction": 1.0, "convergence": float(getattr(cfg, "convergence_weight", 1.0))},
    )


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` file in safe mode: a file with a Lambda layer (arbitrary code) is refused."""
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except ValueError as err:
        if "Lambda" in str(err) or "safe_mode" in str(err):
            raise ValueError(
                f"{path}: refused, it holds a Lambda layer (arbitrary code); re-save it without one"
            ) from None
        raise
