"""Training the autoencoders: a validation split carved from train, early stopping,
seeds, a progress bar, atomic artefacts and reuse of a finished model when nothing changed (the
batches come from :mod:`~mmga_helpers.learn.pipeline`).

Artefacts for one model live in ``outputs/<profile>/models/seed<s>/<name>/``: ``encoder.keras``,
``decoder.keras``, ``autoencoder.keras``, ``history.json`` and ``meta.json``. ``meta.json`` is
written last and records the fingerprint of the config section, the data and the seed: a folder
without it is incomplete, a folder with another fingerprint is refused rather than mixed.

A run killed mid-training (Ctrl-C, SIGTERM, SIGKILL, a lost machine) resumes from its last per-epoch
checkpoint (:mod:`~mmga_helpers.learn.checkpoint`) on the next call with the same configuration,
data and seed, replaying the same shuffles, so the result equals that of an uninterrupted run. The
checkpoint is removed once the finished artefacts are written.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mmga_helpers.core.config import AutoencoderConfig, TrainingConfig
from mmga_helpers.core.io import read_json, write_json, write_with
from mmga_helpers.core.stamps import data_fingerprint, json_stamp
from mmga_helpers.learn.checkpoint import (
    CHECKPOINT_DIR,
    checkpoint_callback,
    read_checkpoint,
    read_weight_list,
)
from mmga_helpers.learn.models import (
    Autoencoder,
    add_convergence_head,
    build_autoencoder,
    compile_autoencoder,
    load_model,
)
from mmga_helpers.learn.pipeline import digit_variants, epoch_dataset, make_dataset
from mmga_helpers.learn.strategy import replicas, shuffle_orders, strategy_scope, training_strategy

PARTS = ("encoder", "decoder", "autoencoder")


class ArtefactMismatch(RuntimeError):
    """A models folder was made by another configuration, data or seed."""


def train_val_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded positions for train and validation, both carved from the training split."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _progress_callback(total_epochs: int, desc: str, initial: int = 0):
    import keras

    class EpochBar(keras.callbacks.Callback):
        """One bar over epochs (not one line per batch: it reads well in notebooks and logs)."""

        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total_epochs, initial=initial, desc=desc, unit="epoch", leave=True)

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


def expected_meta(
    cfg: AutoencoderConfig,
    name: str,
    x: np.ndarray,
    seed: int,
    *,
    targets: np.ndarray | None = None,
    init: TrainedAutoencoder | None = None,
) -> dict[str, Any]:
    """What ``meta.json`` must record for a model trained from these inputs to be reused."""
    meta = {
        "name": name,
        "config": cfg.model_dump(mode="json"),
        "data_fingerprint": data_fingerprint(x),
        "seed": seed,
    }
    if targets is not None:
        meta["targets_fingerprint"] = data_fingerprint(np.asarray(targets, np.float32))
    if init is not None:
        meta["init"] = init_stamp(init)
    return meta


def check_meta(folder: Path, expected: dict[str, Any]) -> bool:
    """True when ``folder`` holds complete artefacts made by ``expected``; False when incomplete;
    raises :class:`ArtefactMismatch` when complete but made by something else."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file() or not all((folder / f"{p}.keras").is_file() for p in PARTS):
        return False
    found = read_json(meta_path)
    keys = ("name", "config", "data_fingerprint", "seed", "targets_fingerprint", "init")
    diffs = [k for k in keys if found.get(k) != expected.get(k)]
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


def _fresh_model(
    cfg: AutoencoderConfig,
    name: str,
    seed: int,
    n_partner_clusters: int = 0,
    init: TrainedAutoencoder | None = None,
) -> Autoencoder:
    seed_everything(seed)
    ae = build_autoencoder(cfg, name)
    if init is not None:
        ae.encoder.set_weights(init.model.encoder.get_weights())
        ae.decoder.set_weights(init.model.decoder.get_weights())
    if n_partner_clusters:
        ae = add_convergence_head(ae, n_partner_clusters)
    compile_autoencoder(ae, cfg)
    return ae


def init_stamp(init: TrainedAutoencoder | None) -> str | None:
    """What a warm-started model started from: a hash of the starting model's meta.json (which
    changes with every retraining of it), so a reused model is one grown from the same start."""
    if init is None:
        return None
    return json_stamp(init.meta, sort_keys=True)


def _check_targets(cfg: AutoencoderConfig, name: str, x: np.ndarray, targets: np.ndarray | None) -> None:
    weight = float(getattr(cfg, "convergence_weight", 0.0))
    if weight > 0 and targets is None:
        raise ValueError(
            f"model.{name}.convergence_weight is {weight}: training needs co-occurrence targets "
            "(stages.autoencoders.train_audio_autoencoder computes them); set it to 0 for a plain autoencoder"
        )
    if targets is None:
        return
    if weight == 0:
        raise ValueError(f"co-occurrence targets given but model.{name}.convergence_weight is 0")
    t = np.asarray(targets)
    if t.ndim != 2 or len(t) != len(x) or t.shape[1] < 2 or not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(
            f"co-occurrence targets must be a finite, non-negative [{len(x)}, k >= 2] array; "
            f"got shape {t.shape}"
        )


def train_autoencoder(
    x_train: np.ndarray,
    cfg: AutoencoderConfig,
    name: str,
    folder: str | Path,
    *,
    seed: int = 0,
    force: bool = False,
    verbose: bool = True,
    callbacks: Sequence[Any] = (),
    targets: np.ndarray | None = None,
    init: TrainedAutoencoder | None = None,
    training: TrainingConfig | None = None,
) -> TrainedAutoencoder:
    """Fit on ``x_train`` (validation carved from it), save atomically, or reuse a finished model.

    A checkpoint left by an interrupted call with the same configuration, data and seed is resumed
    from its last completed epoch (``force`` starts afresh). ``callbacks`` are extra Keras callbacks,
    called after the checkpoint of each epoch is written. ``targets`` (``[N, k]``, each row the
    distribution of the partner clusters that item co-occurred with) are required when the config
    has ``convergence_weight > 0``: the model is then fitted with a convergence head. ``init`` (a
    trained autoencoder of the same architecture) warm-starts encoder and decoder from its weights.
    ``training`` (the config's ``training`` section) chooses the ``tf.distribute`` strategy the
    model is built and fitted under (:mod:`~mmga_helpers.learn.strategy`); ``batch_size`` stays the
    global batch. It is not part of ``meta.json``: a model is reused whatever strategy trained it."""
    import keras

    folder = Path(folder)
    _check_targets(cfg, name, x_train, targets)
    n_partner = 0 if targets is None else int(np.asarray(targets).shape[1])
    expected = expected_meta(cfg, name, x_train, seed, targets=targets, init=init)
    if not force and check_meta(folder, expected):
        return TrainedAutoencoder(
            load_autoencoder(folder),
            read_json(folder / "history.json"),
            read_json(folder / "meta.json"),
            reused=True,
        )
    (folder / "meta.json").unlink(missing_ok=True)  # the folder is incomplete until meta.json is back
    if force:
        shutil.rmtree(folder / CHECKPOINT_DIR, ignore_errors=True)
    resume = read_checkpoint(folder, expected)
    strategy = training_strategy(training)  # None: the default strategy, one device
    with strategy_scope(strategy):  # variables made in the scope are mirrored
        ae = _fresh_model(cfg, name, seed, n_partner, init)
        if resume is not None:
            try:
                model = ae.fitted
                model.optimizer.build(model.trainable_variables)  # so that its moments load too
                model.load_weights(resume.weights)
                resume.best_weights = read_weight_list(resume.best) if resume.best is not None else None
            except (OSError, ValueError, KeyError) as err:  # atomic writes make this a damaged disk
                warnings.warn(
                    f"{folder / CHECKPOINT_DIR}: unreadable checkpoint ({type(err).__name__}: {err}); "
                    "training from the first epoch",
                    stacklevel=2,
                )
                shutil.rmtree(folder / CHECKPOINT_DIR, ignore_errors=True)
                resume = None
                ae = _fresh_model(cfg, name, seed, n_partner, init)
    start_epoch = resume.epoch if resume else 0
    tr, va = train_val_split(len(x_train), cfg.validation_fraction, seed)
    t_tr, t_va = (None, None) if targets is None else (targets[tr], targets[va])
    max_warp = float(getattr(cfg, "frequency_warp", 0.0))
    max_tilt = float(getattr(cfg, "spectral_tilt", 0.0))
    share = float(getattr(cfg, "augment", 0.0))
    orders = None  # under a strategy: one device's shuffles, replayed (learn.strategy)
    if strategy is not None:
        orders = shuffle_orders(len(tr), seed, cfg.epochs, cfg.batch_size, replicas(strategy))
    train_ds, steps = epoch_dataset(
        x_train[tr], cfg.batch_size, seed, start_epoch=start_epoch, targets=t_tr, max_warp=max_warp,
        max_tilt=max_tilt, mask_bands=int(getattr(cfg, "mask_bands", 0)),
        mask_frames=int(getattr(cfg, "mask_frames", 0)),
        variants=digit_variants(x_train[tr], seed) if share > 0 else None, variant_share=share,
        orders=orders,
    )
    val_ds = make_dataset(x_train[va], cfg.batch_size, None, shuffle=False, targets=t_va)
    early = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=cfg.patience, restore_best_weights=True
    )
    cbs = [early, checkpoint_callback(folder, expected, early, resume, resume.seconds if resume else 0.0)]
    if verbose:
        cbs.append(_progress_callback(cfg.epochs, name, initial=start_epoch))
    cbs.extend(callbacks)
    start = time.perf_counter()
    if resume is not None and (resume.stopped or start_epoch >= cfg.epochs):
        # killed after the last epoch, before the artefacts were written: finish as fit would have
        history = resume.history
        if resume.best_weights is not None:
            ae.fitted.set_weights(resume.best_weights)
    else:
        ae.fitted.fit(
            train_ds,
            steps_per_epoch=steps,
            shuffle=False,  # the dataset shuffles, seeded per epoch
            validation_data=val_ds,
            epochs=cfg.epochs,
            initial_epoch=start_epoch,
            callbacks=cbs,
            verbose=0,
        )
        history = cbs[1].history
    seconds = (resume.seconds if resume else 0.0) + time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in history.items()}
    for part in PARTS:
        write_with(folder / f"{part}.keras", getattr(ae, part).save, suffix=".keras")
    write_json(folder / "history.json", history)
    meta = {
        **expected,
        "train_seconds": seconds,
        "epochs_run": len(history["loss"]),
        "resumed_from_epoch": start_epoch,
        "n_train": len(tr),
        "n_val": len(va),
        "best_val_loss": float(min(history["val_loss"])),
    }
    write_json(folder / "meta.json", meta)
    shutil.rmtree(folder / CHECKPOINT_DIR, ignore_errors=True)
    return TrainedAutoencoder(ae, history, meta, reused=False)
