"""Training the autoencoders: tf.data pipelines, a validation split carved from train, early stopping,
seeds, a progress bar, atomic artefacts and reuse of a finished model when nothing changed.

Artefacts for one model live in ``outputs/<profile>/models/seed<s>/<name>/``: ``encoder.keras``,
``decoder.keras``, ``autoencoder.keras``, ``history.json`` and ``meta.json``. ``meta.json`` is
written last and records the fingerprint of the config section, the data and the seed: a folder
without it is incomplete, a folder with another fingerprint is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.config import AutoencoderConfig
from mmga_helpers.io import read_json, write_json, write_with
from mmga_helpers.models import Autoencoder, build_autoencoder, compile_autoencoder, load_model

PARTS = ("encoder", "decoder", "autoencoder")


class ArtefactMismatch(RuntimeError):
    """A models folder was made by another configuration, data or seed."""


def data_fingerprint(x: np.ndarray) -> str:
    """Cheap but content-sensitive: shape, dtype and a hash of every 97th value."""
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(np.ascontiguousarray(x.reshape(-1)[::97]).tobytes())
    return h.hexdigest()[:16]


def train_val_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded positions for train and validation, both carved from the training split."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_dataset(x: np.ndarray, batch_size: int, seed: int | None, shuffle: bool):
    """``(x, x)`` batches; shuffling seeded and reshuffled each epoch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, x))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _progress_callback(total_epochs: int, desc: str):
    import keras
    from tqdm import tqdm

    class EpochBar(keras.callbacks.Callback):
        """One bar over epochs (not one line per batch: it reads well in notebooks and logs)."""

        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total_epochs, desc=desc, unit="epoch", leave=True)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in (logs or {}).items()})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


@dataclass
class TrainedAutoencoder:
    model: Autoencoder
    history: dict[str, list[float]]
    meta: dict[str, Any]
    reused: bool


def _meta(cfg: AutoencoderConfig, name: str, x: np.ndarray, seed: int) -> dict[str, Any]:
    return {
        "name": name,
        "config": cfg.model_dump(mode="json"),
        "data_fingerprint": data_fingerprint(x),
        "seed": seed,
    }


def check_meta(folder: Path, expected: dict[str, Any]) -> bool:
    """True when ``folder`` holds complete artefacts made by ``expected``; False when incomplete;
    raises :class:`ArtefactMismatch` when complete but made by something else."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file() or not all((folder / f"{p}.keras").is_file() for p in PARTS):
        return False
    found = read_json(meta_path)
    diffs = [k for k in ("name", "config", "data_fingerprint", "seed") if found.get(k) != expected[k]]
    if diffs:
        raise ArtefactMismatch(
            f"{folder} holds a model made with a different {', '.join(diffs)}; rerun with force=True "
            "(mmga run --force) to retrain, or point paths.output_dir elsewhere"
        )
    return True


def load_autoencoder(folder: Path) -> Autoencoder:
    enc, dec = load_model(folder / "encoder.keras"), load_model(folder / "decoder.keras")
    import keras

    inp = keras.Input(shape=enc.input_shape[1:])
    return Autoencoder(enc, dec, keras.Model(inp, dec(enc(inp)), name=folder.name))


def train_autoencoder(
    x_train: np.ndarray,
    cfg: AutoencoderConfig,
    name: str,
    folder: str | Path,
    seed: int = 0,
    force: bool = False,
    verbose: bool = True,
) -> TrainedAutoencoder:
    """Fit on ``x_train`` (validation carved from it), save atomically, or reuse a finished model."""
    import keras

    folder = Path(folder)
    expected = _meta(cfg, name, x_train, seed)
    if not force and check_meta(folder, expected):
        return TrainedAutoencoder(
            load_autoencoder(folder),
            read_json(folder / "history.json"),
            read_json(folder / "meta.json"),
            reused=True,
        )
    (folder / "meta.json").unlink(missing_ok=True)  # the folder is incomplete until meta.json is back
    seed_everything(seed)
    ae = build_autoencoder(cfg, name)
    compile_autoencoder(ae, cfg)
    tr, va = train_val_split(len(x_train), cfg.validation_fraction, seed)
    train_ds = make_dataset(x_train[tr], cfg.batch_size, seed, shuffle=True)
    val_ds = make_dataset(x_train[va], cfg.batch_size, None, shuffle=False)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    ]
    if verbose:
        callbacks.append(_progress_callback(cfg.epochs, name))
    start = time.perf_counter()
    hist = ae.autoencoder.fit(
        train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=callbacks, verbose=0
    )
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    for part in PARTS:
        write_with(folder / f"{part}.keras", getattr(ae, part).save, suffix=".keras")
    write_json(folder / "history.json", history)
    meta = {
        **expected,
        "train_seconds": seconds,
        "epochs_run": len(history["loss"]),
        "n_train": len(tr),
        "n_val": len(va),
        "best_val_loss": float(min(history["val_loss"])),
    }
    write_json(folder / "meta.json", meta)
    return TrainedAutoencoder(ae, history, meta, reused=False)
