"""Independent judges: supervised digit classifiers that only *score* what MMGA produces.

They are trained on the training splits with labels (MNIST train; FSDD train) and never feed any
part of the unsupervised system. The audio judge has its own front end (MFCCs from a different
STFT than the autoencoder's log-mel), so it does not share the generator's blind spots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmga_helpers.core.inference import BatchInference
from mmga_helpers.core.io import read_json, write_json, write_with
from mmga_helpers.core.stamps import data_fingerprint, json_stamp
from mmga_helpers.learn.models import load_model
from mmga_helpers.learn.training import seed_everything, train_val_split
from mmga_helpers.modalities.features import images_to_unit, mnist_split, unit_logmel_to_waves
from mmga_helpers.stages.run import Data, Run

MFCC = {"n_mfcc": 20, "n_fft": 512, "hop_length": 128, "n_mels": 40}


def mfcc_features(waves: np.ndarray, sample_rate: int = 8000) -> np.ndarray:
    """``[N, n_samples]`` -> ``[N, n_mfcc, frames, 1]`` float32 (batched librosa)."""
    import librosa

    m = librosa.feature.mfcc(y=np.asarray(waves, np.float32), sr=sample_rate, **MFCC)
    return m.astype(np.float32)[..., None]


def _image_net():
    import keras
    from keras import layers

    inp = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(32, 3, activation="relu")(inp)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(128, activation="relu")(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x), name="mnist_judge")


def _audio_net(x_train: np.ndarray):
    import keras
    from keras import layers

    norm = layers.Normalization(axis=1, name="mfcc_norm")  # per-coefficient statistics of FSDD train
    norm.adapt(x_train)
    inp = keras.Input(x_train.shape[1:], name="mfcc")
    x = norm(inp)
    for f in (32, 64):
        x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x), name="fsdd_judge")


@dataclass
class Judge:
    """A trained classifier plus how it reads its input (``"image"`` or ``"audio"``)."""

    model: object
    kind: str
    meta: dict
    _infer: BatchInference | None = field(default=None, init=False, repr=False, compare=False)

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Digits read from ``x``: one traced function for any number of items (``model.predict``
        retraced on every new batch shape, and said so in every notebook that scores)."""
        feats = mfcc_features(x) if self.kind == "audio" else _as_images(x)
        if self._infer is None:
            self._infer = BatchInference(self.model, batch_size)
        return self._infer(feats).argmax(axis=1)

    def accuracy(self, x: np.ndarray, digits: np.ndarray) -> float:
        return float((self.predict(x) == np.asarray(digits)).mean())


def _as_images(x: np.ndarray) -> np.ndarray:
    return images_to_unit(x)


def train_judge(
    kind: str,
    x: np.ndarray | Callable[[], np.ndarray],
    digits: np.ndarray,
    folder: str | Path,
    *,
    seed: int = 0,
    epochs: int = 12,
    force: bool = False,
    data_key: str | None = None,
) -> Judge:
    """Train (or reuse) the ``"image"`` judge on MNIST train images or the ``"audio"`` judge on
    prepared FSDD train waveforms; early stopping on a validation split carved from train.

    ``x`` may be a function that makes the inputs, called only when the judge trains; then
    ``data_key`` (a stamp of what it makes them from) stands for them in the saved judge's
    fingerprint."""
    import keras

    folder = Path(folder)
    path, meta_path = folder / f"{kind}_judge.keras", folder / f"{kind}_judge.json"
    if data_key is None:
        if callable(x):
            raise ValueError("inputs given as a function need a data_key")
        data_key = data_fingerprint(np.asarray(x))
    fingerprint = {"kind": kind, "data": data_key, "seed": seed, "epochs": epochs}
    if not force and path.is_file() and meta_path.is_file():
        meta = read_json(meta_path)
        if {k: meta.get(k) for k in fingerprint} == fingerprint:
            return Judge(load_model(path), kind, meta)
    x = x() if callable(x) else x
    seed_everything(seed)
    feats = mfcc_features(x) if kind == "audio" else _as_images(x)
    tr, va = train_val_split(len(feats), 0.1, seed)
    model = _audio_net(feats[tr]) if kind == "audio" else _image_net()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3, restore_best_weights=True)
    hist = model.fit(
        feats[tr],
        digits[tr],
        validation_data=(feats[va], digits[va]),
        epochs=epochs,
        batch_size=128 if kind == "image" else 64,
        callbacks=[stop],
        verbose=0,
    )
    write_with(path, model.save, suffix=".keras")
    meta = {
        **fingerprint,
        "val_accuracy": float(max(hist.history["val_accuracy"])),
        "epochs_run": len(hist.history["loss"]),
    }
    write_json(meta_path, meta)
    return Judge(model, kind, meta)


def train_image_judge(run: Run, *, force: bool = False) -> Judge:
    """The MNIST judge, trained supervised on the profile's MNIST train images (it scores; it is not
    part of the system, and never sees a test image)."""
    images, labels = mnist_split(run.cfg, "train")
    return train_judge("image", images, labels, run.judges_dir, seed=0, epochs=4, force=force)


def train_audio_judge(run: Run, data: Data, *, force: bool = False) -> Judge | None:
    """The FSDD judge, trained supervised on FSDD train waveforms with its own MFCC front end.

    Each training clip is seen twice: as recorded, and after the round trip that generated sound
    takes (unit log-mel, time normalisation undone, Griffin-Lim), so that the judge reads a digit
    through the vocoder's artefacts too. Only real training clips go in; nothing an autoencoder made.
    None when ``evaluation.audio_judge_epochs`` is 0."""
    if run.cfg.evaluation.audio_judge_epochs == 0:
        return None
    at = data.audio_train
    front_end = run.cfg.data.fsdd.model_dump(mode="json")

    def waves() -> np.ndarray:  # vocoding 2,700 clips takes seconds: only when the judge trains
        return np.concatenate([at.waves, unit_logmel_to_waves(at.x, run.cfg, at.frames, seed=0)])

    digits = np.concatenate([at.digits, at.digits])
    epochs = run.cfg.evaluation.audio_judge_epochs
    key = json_stamp([data_fingerprint(at.waves), front_end, "with vocoded copies"])
    return train_judge(
        "audio", waves, digits, run.judges_dir, seed=0, epochs=epochs, force=force, data_key=key
    )


def train_judges(run: Run, data: Data, *, force: bool = False) -> tuple[Judge, Judge | None]:
    """Both judges, shared by every seed of a profile; returns ``(image_judge, audio_judge)`` (the
    audio one None when the profile has none)."""
    return train_image_judge(run, force=force), train_audio_judge(run, data, force=force)
