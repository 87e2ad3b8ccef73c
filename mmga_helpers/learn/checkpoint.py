"""Per-epoch checkpoints, so that a training killed mid-way resumes where it stopped.

While training, ``<model folder>/checkpoint/`` holds the state after the last completed epoch
(weights with the optimizer's moments, the early-stopping state and its best weights, the history so
far), written atomically and named by ``checkpoint.json`` last. A checkpoint made by another
configuration, data or seed is deleted rather than mixed in.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.core.io import read_json, read_npz, write_json, write_npz, write_with

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.json"


@dataclass
class Checkpoint:
    """The state after ``epoch`` completed epochs, as read from ``checkpoint/checkpoint.json``."""

    folder: Path
    epoch: int
    history: dict[str, list[float]]
    early_stopping: dict[str, Any]
    stopped: bool
    seconds: float
    weights: Path
    best: Path | None
    best_weights: list[np.ndarray] | None = None  # read from ``best`` when resuming


def read_checkpoint(folder: Path, expected: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint of an interrupted training with exactly ``expected`` (name, config, data,
    seed), or None when there is none; one made by anything else is deleted (it is incomplete work,
    never mixed into this training)."""
    ckpt = folder / CHECKPOINT_DIR
    info_path = ckpt / CHECKPOINT_FILE
    if not info_path.is_file():
        return None
    try:
        info = read_json(info_path)
        state = Checkpoint(
            ckpt,
            int(info["epoch"]),
            {k: [float(v) for v in vals] for k, vals in info["history"].items()},
            dict(info["early_stopping"]),
            bool(info["stopped"]),
            float(info["seconds"]),
            ckpt / info["weights"],
            ckpt / info["best"] if info.get("best") else None,
        )
        valid = info.get("meta") == expected and state.weights.is_file()
        valid = valid and (state.best is None or state.best.is_file())
    except (ValueError, KeyError, TypeError, OSError):
        valid = False
    if not valid:
        shutil.rmtree(ckpt, ignore_errors=True)
        return None
    return state


def checkpoint_callback(
    folder: Path, expected: dict[str, Any], early_stopping, resume: Checkpoint | None, start_seconds: float
):
    """After every epoch: weights (+ optimizer), best weights and early-stopping state, then
    ``checkpoint.json`` naming them (all atomic); files of older epochs are removed afterwards."""
    import keras

    ckpt = folder / CHECKPOINT_DIR

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.history = {k: list(v) for k, v in (resume.history if resume else {}).items()}
            self.start = time.perf_counter()
            if resume is not None:  # after EarlyStopping.on_train_begin, which resets its state
                es = resume.early_stopping
                early_stopping.wait = es["wait"]
                early_stopping.best = es["best"]
                early_stopping.best_epoch = es["best_epoch"]
                early_stopping.best_weights = resume.best_weights

        def on_epoch_end(self, epoch, logs=None):
            # runs after EarlyStopping.on_epoch_end: its state already includes this epoch
            for k, v in (logs or {}).items():
                self.history.setdefault(k, []).append(float(v))
            done = epoch + 1
            weights = f"epoch{done:04d}.weights.h5"
            write_with(ckpt / weights, self.model.save_weights, suffix=".weights.h5")
            best = None
            if early_stopping.best_weights is not None:
                best = f"epoch{done:04d}.best.npz"
                write_npz(ckpt / best, **{f"w{i:04d}": w for i, w in enumerate(early_stopping.best_weights)})
            write_json(
                ckpt / CHECKPOINT_FILE,
                {
                    "meta": expected,
                    "epoch": done,
                    "history": self.history,
                    "early_stopping": {
                        "wait": int(early_stopping.wait),
                        "best": None if early_stopping.best is None else float(early_stopping.best),
                        "best_epoch": int(early_stopping.best_epoch),
                    },
                    "stopped": bool(self.model.stop_training),
                    "seconds": start_seconds + time.perf_counter() - self.start,
                    "weights": weights,
                    "best": best,
                },
            )
            for old in ckpt.iterdir():  # earlier epochs' files and leftovers of killed writes
                if old.name not in (weights, best, CHECKPOINT_FILE):
                    old.unlink(missing_ok=True)

    return EpochCheckpoint()


def read_weight_list(path: Path) -> list[np.ndarray]:
    """The best weights a checkpoint kept, in the model's order."""
    arrays = read_npz(path)
    return [arrays[k] for k in sorted(arrays)]
