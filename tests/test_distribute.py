"""Training under a tf.distribute strategy (config ``training``): the section's checks, its absence
from every fingerprint, the fixed shuffles a distributed run replays, and a tiny model trained on two
logical CPU devices (MirroredStrategy, in a fresh process: logical devices can only be made before
TensorFlow starts) against the same model trained on one device in this process.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmga_helpers.core.config import (
    AutoencoderConfig,
    ConfigError,
    TrainingConfig,
    config_from_dict,
    profile_dict,
)
from mmga_helpers.learn.strategy import StrategyError, configure_cpu_devices, shuffle_orders

REPO = Path(__file__).resolve().parents[1]
# Two replicas each take half of every global batch; Keras scales each replica's mean loss by 1/2
# and sums the gradients, so the update is one device's up to the order of float sums. Measured on
# this model: per-epoch losses agree to ~1e-7 relative. 1e-3 leaves room for other CPUs' kernels
# (oneDNN may choose others for a batch of 16 than of 32) while still catching a real difference:
# fed other shuffles (Keras's throwaway first iterator under a strategy advanced the seeded
# shuffle before learn.strategy.shuffle_orders fixed it), the curves differed by 3-6% per epoch.
RTOL = 1e-3


def tiny_cfg() -> AutoencoderConfig:
    return AutoencoderConfig(
        input_shape=[28, 28, 1], encoder_layers=[4], latent_dim=2, decoder_layers=[4], learning_rate=0.01,
        batch_size=32, epochs=4, patience=4, validation_fraction=0.1,
    )


def blob_images(n: int = 300, seed: int = 0) -> np.ndarray:
    """A Gaussian blob at a random place per image (as test_training): the loss falls every epoch."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    cy, cx = rng.uniform(6, 22, size=(2, n, 1, 1))
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0).astype(np.float32)[..., None]


# -- the config section ---------------------------------------------------------------------------
def _with_training(training: dict | None) -> dict:
    data = copy.deepcopy(profile_dict("quick"))
    data.pop("training", None)
    if training is not None:
        data["training"] = training
    return data


def test_training_section_defaults_to_one_device() -> None:
    cfg = config_from_dict(_with_training(None))
    assert cfg.training == TrainingConfig() and cfg.training.strategy == "default"
    mirrored = config_from_dict(_with_training({"strategy": "mirrored", "devices": 2}))
    assert (mirrored.training.strategy, mirrored.training.devices) == ("mirrored", 2)


@pytest.mark.parametrize(
    ("training", "expect"),
    [
        ({"strategy": "horovod"}, "'default' or 'mirrored'"),
        ({"strategy": "mirrored", "devices": 0}, "greater than 0"),
        ({"strategy": "mirrored", "devices": "2"}, "valid integer"),
        ({"devices": 2}, "read only with training.strategy: mirrored"),
        ({"strategy": "mirrored", "gpus": 2}, "unknown key"),
    ],
)
def test_bad_training_values_name_the_key(training: dict, expect: str) -> None:
    with pytest.raises(ConfigError, match="training") as err:
        config_from_dict(_with_training(training))
    assert expect in str(err.value)


def test_training_section_is_in_no_fingerprint() -> None:
    """How training runs is not what it makes: models (meta.json holds the model section), caches
    and notebook runs made without the section stay valid with it."""
    plain = config_from_dict(_with_training(None))
    mirrored = config_from_dict(_with_training({"strategy": "mirrored", "devices": 2}))
    assert mirrored.fingerprint() == plain.fingerprint()
    assert mirrored.model.model_dump() == plain.model.model_dump()
    assert "training" not in json.dumps(plain.model.audio_autoencoder.model_dump())


# -- the replayed shuffles --------------------------------------------------------------------------
def test_replayed_orders_give_the_batches_of_one_device() -> None:
    """epoch_dataset fed shuffle_orders (the distributed path) yields, batch for batch, what the
    default pipeline yields, with convergence targets, altered variants and frequency warping."""
    from mmga_helpers.learn.pipeline import epoch_dataset
    from mmga_helpers.learn.training import seed_everything

    rng = np.random.default_rng(1)
    x = rng.random((45, 8, 6, 1), dtype=np.float32)
    targets = np.eye(3, dtype=np.float32)[rng.integers(0, 3, len(x))]
    variants = rng.random((45, 2, 8, 6, 1), dtype=np.float32)
    kw = dict(targets=targets, variants=variants, variant_share=0.5, max_warp=0.1, start_epoch=1)
    epochs = 3
    seed_everything(7)
    plain, steps = epoch_dataset(x, 16, 7, **kw)
    seed_everything(7)
    orders = shuffle_orders(len(x), 7, epochs, 16, replicas=2)
    replayed, steps_replayed = epoch_dataset(x, 16, 7, orders=orders, **kw)
    assert steps == steps_replayed == 3
    n_batches = 0
    for a, b in zip(plain.take((epochs - 1) * steps), replayed, strict=True):
        for u, v in zip(
            [a[0], a[1]["reconstruction"], a[1]["convergence"]],
            [b[0], b[1]["reconstruction"], b[1]["convergence"]],
            strict=True,
        ):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
        n_batches += 1
    assert n_batches == (epochs - 1) * steps  # from start_epoch on, then the orders end


def test_a_last_batch_smaller_than_the_replicas_is_left_out() -> None:
    with pytest.warns(UserWarning, match="fewer than the 2 replicas"):
        orders = shuffle_orders(33, 0, 2, 16, replicas=2)  # 16 + 16 + 1
    assert orders.shape == (2, 32) and len(set(orders[0])) == 32
    assert shuffle_orders(34, 0, 2, 16, replicas=2).shape == (2, 34)  # 1 + 1 per replica: kept


def test_logical_devices_after_tensorflow_started_is_a_clear_error() -> None:
    import tensorflow as tf

    tf.constant(0.0) + 1  # TensorFlow has started in this process
    have = len(tf.config.list_logical_devices("CPU"))
    configure_cpu_devices(have)  # already there: nothing to do
    with pytest.raises(StrategyError, match="before its first operation"):
        configure_cpu_devices(have + 1)


# -- two replicas against one device ---------------------------------------------------------------
TWO_REPLICAS = """
import json, sys
from mmga_helpers.core.config import TrainingConfig
from mmga_helpers.learn.strategy import prepare_devices, replicas, shuffle_orders, training_strategy
training = TrainingConfig(strategy="mirrored", devices=2)
prepare_devices(training)  # before TensorFlow's first operation
sys.path.insert(0, sys.argv[1])
from test_distribute import blob_images, tiny_cfg
from mmga_helpers.learn.training import epoch_dataset, seed_everything, train_autoencoder
x, cfg = blob_images(), tiny_cfg()
trained = train_autoencoder(x, cfg, "tiny", sys.argv[2], seed=0, verbose=False, training=training)
strategy = training_strategy(training)
seed_everything(0)
ds, _ = epoch_dataset(x[:270], cfg.batch_size, 0, orders=shuffle_orders(270, 0, 1, cfg.batch_size, 2))
first = next(iter(strategy.experimental_distribute_dataset(ds)))  # as Keras's fit distributes it
devices = [v.device.split("device:")[-1] for v in first[0].values]
print(json.dumps({"history": trained.history, "replicas": replicas(strategy),
                  "per_replica_batch": [int(v.shape[0]) for v in first[0].values], "devices": devices}))
"""


def test_two_replicas_train_like_one_device(tmp_path: Path) -> None:
    """The global batch (32) is split 16 + 16 over two logical CPU devices; the per-epoch losses
    match one device's within RTOL, and the artefacts record the same configuration."""
    from mmga_helpers.core.io import read_json
    from mmga_helpers.learn.training import train_autoencoder

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-c", TWO_REPLICAS, str(Path(__file__).parent), str(tmp_path / "two")]
    pipe = subprocess.PIPE
    worker = subprocess.Popen(cmd, stdout=pipe, stderr=pipe, text=True, cwd=REPO, env=env)
    try:  # one device meanwhile, here
        one = train_autoencoder(blob_images(), tiny_cfg(), "tiny", tmp_path / "one", seed=0, verbose=False)
        out, err = worker.communicate(timeout=240)
    finally:
        worker.kill()
    assert worker.returncode == 0, err[-3000:]
    two = json.loads(out.strip().splitlines()[-1])
    assert two["replicas"] == 2 and two["per_replica_batch"] == [16, 16]
    assert two["devices"] == ["CPU:0", "CPU:1"]
    assert two["history"].keys() == one.history.keys() == {"loss", "val_loss"}
    for key, curve in one.history.items():
        assert len(two["history"][key]) == len(curve) == 4
        np.testing.assert_allclose(two["history"][key], curve, rtol=RTOL, err_msg=key)
    assert one.history["loss"][-1] < one.history["loss"][0] / 2  # it learned: the check means something
    meta_one, meta_two = (read_json(tmp_path / run / "meta.json") for run in ("one", "two"))
    for key in ("config", "data_fingerprint", "seed"):
        assert meta_one[key] == meta_two[key], key


# -- the benchmark ---------------------------------------------------------------------------------
def test_replica_worker_prints_its_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The worker mmga bench runs per replica count (here one replica, in this process)."""
    from mmga_helpers.tools import replicas

    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((200, 28, 28, 1), dtype=np.float32))
    replicas.main([str(data), "--name", "image_autoencoder", "--steps", "2", "--rounds", "1"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["replicas"], out["steps"], out["batch_size"], len(out["round_s"])) == (1, 2, 128, 2)
    assert out["items_per_s"] > 0 and out["step_ms"] > 0


def test_cli_bench_replicas_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mmga bench --replicas` adds the replicas section; plain `mmga bench` stays as fast as it was."""
    from typer.testing import CliRunner

    from mmga_helpers.tools import bench
    from mmga_helpers.tools.cli import app

    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_bench_all(profile, sections=()):
        calls.append(tuple(sections))
        return {"profile": profile, "replicas": {"speedup": 1.5}}

    monkeypatch.setattr(bench, "bench_all", fake_bench_all)
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--replicas"])
    assert result.exit_code == 0, result.output
    assert calls[-1] == ("data", "models", "generation", "replicas") and "replicas.speedup" in result.output
    assert runner.invoke(app, ["bench"]).exit_code == 0 and calls[-1] == ("data", "models", "generation")
