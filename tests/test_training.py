"""Training: per-epoch checkpoints that a killed run resumes from (exactly), reuse of finished
models, refusal of models made by something else, atomic saves, and seeded determinism.

Every model here is tiny (one 4-filter block, a 2-D latent, 200 images of a blob at a random place)
so that an epoch is a few milliseconds; what costs time is TensorFlow's start and tracing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmga_helpers.core.config import AutoencoderConfig
from mmga_helpers.core.io import read_json
from mmga_helpers.learn.checkpoint import CHECKPOINT_DIR, CHECKPOINT_FILE
from mmga_helpers.learn.training import PARTS, ArtefactMismatch, train_autoencoder

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


def tiny_cfg(**changes) -> AutoencoderConfig:
    values = dict(
        input_shape=[28, 28, 1],
        encoder_layers=[4],
        latent_dim=2,
        decoder_layers=[4],
        learning_rate=0.01,
        batch_size=32,
        epochs=EPOCHS,
        patience=EPOCHS,
        validation_fraction=0.1,
    )
    return AutoencoderConfig(**{**values, **changes})


def blob_images(n: int = 200, seed: int = 0) -> np.ndarray:
    """A Gaussian blob at a random place per image: learnable, so the loss falls every epoch."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    cy, cx = rng.uniform(6, 22, size=(2, n, 1, 1))
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0).astype(np.float32)[..., None]


def epoch_recorder():
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[int] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    return Recorder()


def interrupt_after(epoch_index: int):
    """A callback that raises KeyboardInterrupt (as Ctrl-C would) at the end of an epoch, after
    that epoch's checkpoint is written."""
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == epoch_index:
                raise KeyboardInterrupt

    return Interrupt()


def weights(trained) -> list[np.ndarray]:
    return trained.model.autoencoder.get_weights()


def max_weight_diff(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(weights(a), weights(b), strict=True))


def assert_same_history(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


def assert_complete(folder: Path) -> None:
    """Finished artefacts: every .keras loads, meta.json is there, no checkpoint is left."""
    from mmga_helpers.learn.models import load_model

    meta_time = (folder / "meta.json").stat().st_mtime_ns
    for part in PARTS:
        path = folder / f"{part}.keras"
        assert path.stat().st_mtime_ns <= meta_time  # meta.json is written last
        load_model(path)
    assert (folder / "history.json").stat().st_mtime_ns <= meta_time
    assert not (folder / CHECKPOINT_DIR).exists()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return blob_images()


@pytest.fixture(scope="module")
def uninterrupted(x, tmp_path_factory):
    """The reference: one run of all epochs without interruption."""
    folder = tmp_path_factory.mktemp("ref") / "ae"
    return train_autoencoder(x, tiny_cfg(), "tiny", folder, seed=0, verbose=False), folder


# -- resume ---------------------------------------------------------------------------------------------
def test_fresh_run_writes_complete_artefacts(uninterrupted) -> None:
    trained, folder = uninterrupted
    assert not trained.reused and trained.meta["resumed_from_epoch"] == 0
    assert len(trained.history["loss"]) == EPOCHS == trained.meta["epochs_run"]
    assert trained.history["val_loss"][-1] < trained.history["val_loss"][0]  # it learned something
    assert_complete(folder)


def test_interrupted_run_resumes_exactly(x, uninterrupted, tmp_path: Path) -> None:
    folder = tmp_path / "ae"
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(x, tiny_cfg(), "tiny", folder, verbose=False, callbacks=[interrupt_after(1)])
    info = read_json(folder / CHECKPOINT_DIR / CHECKPOINT_FILE)
    assert info["epoch"] == 2 and len(info["history"]["loss"]) == 2
    assert not (folder / "meta.json").exists()  # incomplete: never taken for a finished model

    rec = epoch_recorder()
    resumed = train_autoencoder(x, tiny_cfg(), "tiny", folder, verbose=False, callbacks=[rec])
    assert rec.epochs == [2, 3]  # only the remaining epochs ran
    assert resumed.meta["resumed_from_epoch"] == 2 and resumed.meta["epochs_run"] == EPOCHS
    # same shuffles, same optimizer moments, same early-stopping state: the uninterrupted result
    assert_same_history(resumed.history, uninterrupted[0].history)
    assert max_weight_diff(resumed, uninterrupted[0]) <= 1e-6
    assert_complete(folder)


_CHILD = """
import sys, time
import numpy as np
import keras
from mmga_helpers.core.config import AutoencoderConfig
from mmga_helpers.learn.training import train_autoencoder

class Stall(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:  # after the 2nd epoch's checkpoint: wait here to be killed
            time.sleep(300)

x = np.load(sys.argv[1])
cfg = AutoencoderConfig.model_validate_json(sys.argv[2])
train_autoencoder(x, cfg, "tiny", sys.argv[3], seed=0, verbose=False, callbacks=[Stall()])
"""


def test_killed_process_resumes(x, uninterrupted, tmp_path: Path) -> None:
    """SIGTERM and SIGKILL after the 2nd epoch's checkpoint (two children in parallel); the next run
    trains only epochs 3 and 4 and ends where an uninterrupted run ends."""
    data = tmp_path / "x.npy"
    np.save(data, x)
    children = {}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        folder = tmp_path / sig.name
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(data), tiny_cfg().model_dump_json(), str(folder)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        children[sig] = (proc, folder)
    try:
        _kill_after_second_epoch(children)
    finally:
        for proc, _ in children.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    for sig, (_, folder) in children.items():
        assert not (folder / "meta.json").exists(), sig.name
        rec = epoch_recorder()
        resumed = train_autoencoder(x, tiny_cfg(), "tiny", folder, verbose=False, callbacks=[rec])
        assert rec.epochs == [2, 3], sig.name
        assert resumed.meta["resumed_from_epoch"] == 2 and len(resumed.history["loss"]) == EPOCHS
        assert_complete(folder)
        # another process, same seed: the same model as the uninterrupted in-process run
        assert max_weight_diff(resumed, uninterrupted[0]) <= 1e-6, sig.name


def _kill_after_second_epoch(children: dict) -> None:
    """Send each child its signal as soon as its checkpoint says 2 epochs are done."""
    deadline = time.monotonic() + 240
    pending = dict(children)
    while pending:
        for sig, (proc, folder) in list(pending.items()):
            info = folder / CHECKPOINT_DIR / CHECKPOINT_FILE
            if info.is_file() and json.loads(info.read_text())["epoch"] == 2:
                proc.send_signal(sig)
                proc.wait(30)
                assert proc.returncode == -sig, proc.stderr.read().decode()[-2000:]
                del pending[sig]
            elif proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"child did not reach epoch 2: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)


def checkpoint_info(meta: dict, epoch: int = 2, best: bool = True) -> dict:
    """What ``checkpoint.json`` holds after ``epoch`` epochs."""
    return {
        "meta": meta,
        "epoch": epoch,
        "history": {"loss": [0.2] * epoch, "val_loss": [0.3] * epoch},
        "early_stopping": {"wait": 0, "best": 0.3, "best_epoch": 0},
        "stopped": False,
        "seconds": 1.5,
        "weights": f"epoch{epoch:04d}.weights.h5",
        "best": f"epoch{epoch:04d}.best.npz" if best else None,
    }


def test_unusable_checkpoints_are_discarded(x, tmp_path: Path) -> None:
    """A checkpoint of another config/data/seed, one naming a missing file, or an unreadable one is
    removed (it is unfinished work, never mixed in); a valid one is read back."""
    from mmga_helpers.learn.checkpoint import read_checkpoint
    from mmga_helpers.learn.training import expected_meta

    expected = expected_meta(tiny_cfg(), "tiny", x, 0)
    ckpt = tmp_path / CHECKPOINT_DIR
    info = checkpoint_info(expected)

    def plant(**changes) -> None:
        ckpt.mkdir(exist_ok=True)
        for name in ("epoch0002.weights.h5", "epoch0002.best.npz"):
            (ckpt / name).write_bytes(b"w")
        (ckpt / CHECKPOINT_FILE).write_text(json.dumps({**info, **changes}))

    plant()
    state = read_checkpoint(tmp_path, expected)
    assert state is not None and state.epoch == 2 and state.history == info["history"]
    assert not state.stopped and state.seconds == 1.5 and state.early_stopping["best"] == 0.3
    assert state.weights == ckpt / "epoch0002.weights.h5" and state.best == ckpt / "epoch0002.best.npz"
    for changes in (
        {"meta": expected_meta(tiny_cfg(latent_dim=3), "tiny", x, 0)},
        {"meta": expected_meta(tiny_cfg(), "tiny", blob_images(seed=1), 0)},
        {"meta": expected_meta(tiny_cfg(), "tiny", x, 1)},
        {"weights": "epoch0001.weights.h5"},
        {"best": "epoch0001.best.npz"},
        {"epoch": "two"},
    ):
        plant(**changes)
        assert read_checkpoint(tmp_path, expected) is None, changes
        assert not ckpt.exists(), changes
    ckpt.mkdir()
    (ckpt / CHECKPOINT_FILE).write_text('{"epoch": 2, "hist')  # cannot happen (atomic), but still
    assert read_checkpoint(tmp_path, expected) is None and not ckpt.exists()


def test_damaged_checkpoint_restarts_training(x, tmp_path: Path) -> None:
    from mmga_helpers.learn.training import expected_meta

    cfg = tiny_cfg(epochs=2)
    ckpt = tmp_path / "ae" / CHECKPOINT_DIR
    ckpt.mkdir(parents=True)
    info = checkpoint_info(expected_meta(cfg, "tiny", x, 0), epoch=1, best=False)
    (ckpt / info["weights"]).write_bytes(b"not an HDF5 file")
    (ckpt / CHECKPOINT_FILE).write_text(json.dumps(info))
    rec = epoch_recorder()
    with pytest.warns(UserWarning, match=r"unreadable checkpoint .*training from the first epoch"):
        trained = train_autoencoder(x, cfg, "tiny", tmp_path / "ae", verbose=False, callbacks=[rec])
    assert rec.epochs == [0, 1] and trained.meta["resumed_from_epoch"] == 0
    assert_complete(tmp_path / "ae")


# -- reuse and refusal -----------------------------------------------------------------------------------
def test_unchanged_config_and_data_reuse(x, uninterrupted) -> None:
    first, folder = uninterrupted
    rec = epoch_recorder()
    again = train_autoencoder(x, tiny_cfg(), "tiny", folder, verbose=False, callbacks=[rec])
    assert again.reused and rec.epochs == []
    assert again.meta == first.meta and again.history == first.history
    assert max_weight_diff(again, first) == 0.0


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"cfg": tiny_cfg(latent_dim=3)}, "config"),
        ({"x": blob_images(seed=1)}, "data_fingerprint"),
        ({"seed": 1}, "seed"),
        ({"name": "other"}, "name"),
    ],
)
def test_changed_inputs_are_refused(x, uninterrupted, change: dict, what: str) -> None:
    _, folder = uninterrupted
    args = {"x": x, "cfg": tiny_cfg(), "name": "tiny", "seed": 0, **change}
    before = {p: (folder / f"{p}.keras").read_bytes() for p in PARTS}
    with pytest.raises(ArtefactMismatch, match=rf"{folder}.*different {what}.*force=True"):
        train_autoencoder(args["x"], args["cfg"], args["name"], folder, seed=args["seed"], verbose=False)
    assert {p: (folder / f"{p}.keras").read_bytes() for p in PARTS} == before  # nothing touched


def test_changed_config_with_force_retrains(x, uninterrupted, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "ae"
    shutil.copytree(uninterrupted[1], folder)
    new = tiny_cfg(latent_dim=3, epochs=1)
    trained = train_autoencoder(x, new, "tiny", folder, force=True, verbose=False)
    assert not trained.reused and read_json(folder / "meta.json")["config"]["latent_dim"] == 3
    assert trained.model.encoder.output_shape == (None, 3)
    assert_complete(folder)


def test_meta_from_another_config_is_refused(x, uninterrupted, tmp_path: Path) -> None:
    """A models folder whose meta.json was copied from (or written by) another configuration."""
    import shutil

    folder = tmp_path / "ae"
    shutil.copytree(uninterrupted[1], folder)
    meta = read_json(folder / "meta.json")
    meta["config"]["encoder_layers"] = [8]
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtefactMismatch, match="different config"):
        train_autoencoder(x, tiny_cfg(), "tiny", folder, verbose=False)


def test_failed_save_keeps_previous_keras(x, uninterrupted, tmp_path: Path, monkeypatch) -> None:
    """A save that raises half-way leaves the earlier .keras intact (and loadable), the folder
    incomplete (no meta.json), and the next run finishes from the checkpoint of the last epoch
    without training: the model an uninterrupted run ends with (best weights restored)."""
    import shutil

    import keras

    from mmga_helpers.learn.models import load_model

    folder = tmp_path / "ae"
    shutil.copytree(uninterrupted[1], folder)
    old = {p: (folder / f"{p}.keras").read_bytes() for p in PARTS}
    real_save = keras.Model.save

    def broken_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    cfg = tiny_cfg()
    with pytest.raises(OSError, match="disk is full"):
        train_autoencoder(x, cfg, "tiny", folder, force=True, verbose=False)
    assert {p: (folder / f"{p}.keras").read_bytes() for p in PARTS} == old
    load_model(folder / "encoder.keras")
    assert not (folder / "meta.json").exists()
    monkeypatch.setattr(keras.Model, "save", real_save)
    rec = epoch_recorder()
    done = train_autoencoder(x, cfg, "tiny", folder, verbose=False, callbacks=[rec])
    assert rec.epochs == [] and done.meta["resumed_from_epoch"] == EPOCHS
    assert_same_history(done.history, uninterrupted[0].history)
    assert max_weight_diff(done, uninterrupted[0]) <= 1e-6
    assert_complete(folder)


# -- determinism -----------------------------------------------------------------------------------------
def test_same_seed_same_weights(x, uninterrupted, tmp_path: Path) -> None:
    again = train_autoencoder(x, tiny_cfg(), "tiny", tmp_path / "ae", seed=0, verbose=False)
    assert max_weight_diff(again, uninterrupted[0]) <= 1e-6
    assert_same_history(again.history, uninterrupted[0].history)


# -- the convergence head: an autoencoder that also learns what co-occurs with its input -------------
def side_targets(x: np.ndarray) -> np.ndarray:
    """Stand-in for the partner modality's clusters: which half of the image the blob lies in."""
    right = (x[..., 0].reshape(len(x), -1).argmax(axis=1) % 28) >= 14
    return np.stack([~right, right], axis=1).astype(np.float32)


def conv_cfg(**changes):
    from mmga_helpers.core.config import AudioAutoencoderConfig

    return AudioAutoencoderConfig(**{**tiny_cfg(**changes).model_dump(), "convergence_weight": 1.0})


@pytest.fixture(scope="module")
def with_head(x, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv") / "ae"
    return train_autoencoder(x, conv_cfg(), "tiny", folder, verbose=False, targets=side_targets(x)), folder


def test_convergence_head_learns_the_partner_clusters(x, with_head) -> None:
    trained, folder = with_head
    h = trained.history
    assert {"reconstruction_loss", "convergence_loss", "val_convergence_loss"} <= h.keys()
    assert h["convergence_loss"][-1] < 0.5 * h["convergence_loss"][0]  # it learned the halves
    assert trained.meta["targets_fingerprint"] and trained.model.trainer is not None
    assert_complete(folder)
    # what is saved and what generation loads: encoder and decoder alone, no head
    from mmga_helpers.learn.models import load_model

    assert load_model(folder / "autoencoder.keras").output_shape == (None, 28, 28, 1)
    # the code the head reads is the encoder's: the two halves part along it
    z = trained.model.encoder.predict_on_batch(x)
    side = side_targets(x)[:, 1]
    gap = np.abs(z[side == 1].mean(0) - z[side == 0].mean(0)) / z.std(0)
    assert gap.max() > 1.0


def test_convergence_targets_are_part_of_the_fingerprint(x, with_head) -> None:
    _, folder = with_head
    again = train_autoencoder(x, conv_cfg(), "tiny", folder, verbose=False, targets=side_targets(x))
    assert again.reused
    with pytest.raises(ArtefactMismatch, match="different targets_fingerprint"):
        train_autoencoder(x, conv_cfg(), "tiny", folder, verbose=False, targets=1 - side_targets(x))


def test_interrupted_convergence_run_resumes_exactly(x, with_head, tmp_path: Path) -> None:
    folder, t = tmp_path / "ae", side_targets(x)
    with pytest.raises(KeyboardInterrupt):
        stop = [interrupt_after(1)]
        train_autoencoder(x, conv_cfg(), "tiny", folder, verbose=False, targets=t, callbacks=stop)
    resumed = train_autoencoder(x, conv_cfg(), "tiny", folder, verbose=False, targets=t)
    assert resumed.meta["resumed_from_epoch"] == 2
    assert_same_history(resumed.history, with_head[0].history)
    assert max_weight_diff(resumed, with_head[0]) <= 1e-6


@pytest.mark.parametrize(
    ("cfg", "targets", "message"),
    [
        (conv_cfg(), None, "convergence_weight is 1.0: training needs co-occurrence targets"),
        (tiny_cfg(), "good", "convergence_weight is 0"),
        (conv_cfg(), "short", "finite, non-negative"),
        (conv_cfg(), "nan", "finite, non-negative"),
    ],
)
def test_bad_convergence_targets(x, tmp_path: Path, cfg, targets, message) -> None:
    t = {"good": side_targets(x), "short": side_targets(x)[:10], "nan": side_targets(x) * np.nan, None: None}
    with pytest.raises(ValueError, match=message):
        train_autoencoder(x, cfg, "tiny", tmp_path / "ae", verbose=False, targets=t[targets])
    assert not (tmp_path / "ae").exists()  # refused before anything was written


# -- warm starts and frequency warping -----------------------------------------------------------------
def test_warm_start_begins_from_the_given_model(x, uninterrupted, tmp_path: Path) -> None:
    """A warm-started model's first epoch already reconstructs as well as its start, and its meta
    names the start: a folder grown from another start is refused, not reused."""
    start = uninterrupted[0]
    warm = train_autoencoder(x, conv_cfg(epochs=1), "tiny", tmp_path / "w", verbose=False,
                             targets=side_targets(x), init=start)
    cold = train_autoencoder(x, conv_cfg(epochs=1), "tiny", tmp_path / "c", verbose=False,
                             targets=side_targets(x))
    assert warm.meta["init"] and "init" not in cold.meta
    assert warm.history["val_reconstruction_loss"][0] < cold.history["val_reconstruction_loss"][0]
    again = train_autoencoder(x, conv_cfg(epochs=1), "tiny", tmp_path / "w", verbose=False,
                              targets=side_targets(x), init=start)
    assert again.reused
    with pytest.raises(ArtefactMismatch, match="different init"):
        train_autoencoder(x, conv_cfg(epochs=1), "tiny", tmp_path / "w", verbose=False,
                          targets=side_targets(x), init=cold)


def test_frequency_warp_resamples_the_first_axis() -> None:
    from mmga_helpers.learn.pipeline import warp_frequency_axis

    ramp = np.tile(np.arange(8, dtype=np.float32)[None, :, None, None], (3, 1, 5, 1))
    out = warp_frequency_axis(ramp, np.array([1.0, 2.0, 0.5], np.float32)).numpy()
    np.testing.assert_allclose(out[0], ramp[0])  # factor 1: unchanged
    np.testing.assert_allclose(out[1, :, 0, 0], np.arange(8) / 2)  # stretched: bin i reads i / 2
    np.testing.assert_allclose(out[2, :, 0, 0], np.minimum(np.arange(8) * 2, 7))  # squeezed, top kept
    assert out.shape == ramp.shape


def test_warped_batches_are_seeded_and_replayed_on_resume() -> None:
    from mmga_helpers.learn.pipeline import epoch_dataset

    x = np.random.default_rng(0).random((40, 8, 4, 1), dtype=np.float32)
    def first(start: int) -> list[np.ndarray]:
        return [b[0].numpy() for b in epoch_dataset(x, 16, 3, start_epoch=start, max_warp=0.2)[0].take(6)]

    a, again, resumed = first(0), first(0), first(1)
    for u, v in zip(a, again, strict=True):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(a[3:], resumed, strict=False):  # epoch 1 starts at batch 3 (40 / 16 -> 3 steps)
        np.testing.assert_array_equal(u, v)
    plain = [b[0].numpy() for b in epoch_dataset(x, 16, 3)[0].take(1)]
    assert not np.allclose(a[0], plain[0])  # the same items, warped
    targets = epoch_dataset(x, 16, 3, max_warp=0.2)[0].take(1).get_single_element()
    np.testing.assert_array_equal(targets[0].numpy(), targets[1].numpy())  # it rebuilds what it reads


def test_frequency_warp_is_bounded_in_config() -> None:
    from pydantic import ValidationError

    from mmga_helpers.core.config import AudioAutoencoderConfig

    base = {**tiny_cfg().model_dump()}
    assert AudioAutoencoderConfig(**base, frequency_warp=0.1).frequency_warp == 0.1
    for bad in (-0.1, 0.5):
        with pytest.raises(ValidationError, match="frequency_warp"):
            AudioAutoencoderConfig(**base, frequency_warp=bad)


def test_training_and_validation_batches_run_without_autotuning() -> None:
    """Letting go of an autotuned iterator at the end of fit could stall for tens of seconds: the
    training and validation pipelines turn autotuning off, on every path (warp, variants, resume)."""
    from mmga_helpers.learn.pipeline import epoch_dataset, make_dataset

    x = np.random.default_rng(0).random((12, 8, 8, 1)).astype(np.float32)
    datasets = [
        make_dataset(x, 4, None, shuffle=False),
        epoch_dataset(x, 4, 0)[0],
        epoch_dataset(x, 4, 0, max_warp=0.1, start_epoch=1)[0],
        epoch_dataset(x, 4, 0, variants=np.stack([x, 1 - x], 1), variant_share=0.5)[0],
    ]
    assert [ds.options().autotune.enabled for ds in datasets] == [False] * 4
    first = next(iter(epoch_dataset(x, 4, 0)[0]))[0].numpy()
    assert first.shape == (4, 8, 8, 1)


def test_spectral_tilt_moves_voiced_bins_along_the_mel_axis_and_keeps_the_floor() -> None:
    from mmga_helpers.learn.pipeline import epoch_dataset, tilt_spectrum

    x = np.full((2, 5, 3, 1), 0.5, np.float32)
    x[:, :, 0] = 0.0  # a silent frame stays at the floor
    out = tilt_spectrum(x, np.array([0.4, -0.4], np.float32)).numpy()
    np.testing.assert_allclose(out[0, :, 1, 0], 0.5 + 0.4 * (np.arange(5) / 4 - 0.5), atol=1e-6)
    np.testing.assert_allclose(out[1, :, 1, 0], 0.5 - 0.4 * (np.arange(5) / 4 - 0.5), atol=1e-6)
    assert (out[:, :, 0] == 0).all() and out.min() >= 0 and out.max() <= 1
    y = np.random.default_rng(0).random((16, 8, 4, 1), dtype=np.float32)
    tilted = epoch_dataset(y, 8, 3, max_tilt=0.3)[0].take(1).get_single_element()
    again = epoch_dataset(y, 8, 3, max_tilt=0.3)[0].take(1).get_single_element()
    np.testing.assert_array_equal(tilted[0].numpy(), again[0].numpy())  # seeded
    np.testing.assert_array_equal(tilted[0].numpy(), tilted[1].numpy())  # it rebuilds what it reads
    plain = epoch_dataset(y, 8, 3)[0].take(1).get_single_element()[0].numpy()
    assert not np.allclose(tilted[0].numpy(), plain)


def test_masks_floor_bands_and_frames_of_the_input_not_the_target() -> None:
    import tensorflow as tf

    from mmga_helpers.learn.pipeline import N_MASKS, epoch_dataset, mask_spectrum

    x = np.ones((64, 16, 12, 1), np.float32)
    out = mask_spectrum(x, tf.constant([3, 0], tf.int64), 4, 0).numpy()
    rows = (out == 0).all(axis=(2, 3))  # a masked band is floored over every frame
    assert ((out == 0) == rows[:, :, None, None]).all() and (out[~rows] == 1).all()
    assert rows.sum(axis=1).max() <= N_MASKS * 4 and rows.any()
    cols = (mask_spectrum(x, tf.constant([3, 0], tf.int64), 0, 3).numpy() == 0).all(axis=(1, 3))
    assert cols.sum(axis=1).max() <= N_MASKS * 3 and cols.any()
    y = np.random.default_rng(0).random((16, 8, 6, 1), dtype=np.float32) + 0.1
    first = epoch_dataset(y, 8, 3, mask_bands=3, mask_frames=2)[0].take(2)
    again = epoch_dataset(y, 8, 3, mask_bands=3, mask_frames=2)[0].take(2)
    for (xa, ta), (xb, _) in zip(first, again, strict=True):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())  # seeded, replayed
        masked = xa.numpy() == 0
        assert masked.any() and (ta.numpy() > 0).all()  # the target keeps what the input lost
        np.testing.assert_array_equal(xa.numpy()[~masked], ta.numpy()[~masked])


def test_masks_are_counted_in_config() -> None:
    from pydantic import ValidationError

    from mmga_helpers.core.config import AudioAutoencoderConfig

    base = {**tiny_cfg().model_dump()}
    cfg = AudioAutoencoderConfig(**base, mask_bands=8, mask_frames=8)
    assert (cfg.mask_bands, cfg.mask_frames) == (8, 8)
    for key in ("mask_bands", "mask_frames"):
        with pytest.raises(ValidationError, match=key):
            AudioAutoencoderConfig(**base, **{key: -1})
