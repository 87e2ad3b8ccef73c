"""Training throughput with one and with several replicas (``training.strategy: mirrored``).

Items/s of a fixed number of training steps of one autoencoder, through the project's pipeline
(:func:`~mmga_helpers.learn.training.epoch_dataset`, the model built and compiled inside the
strategy's scope as :func:`~mmga_helpers.learn.training.train_autoencoder` does). Without a GPU the
replicas are logical CPU devices: they share the CPU's cores, so the figure says how well two
replicas use those cores, not what several GPUs would gain. Each replica count runs in a
fresh Python process: logical devices can only be made before TensorFlow starts, and fresh
processes start alike. ``python -m mmga_helpers.tools.replicas X.npy --profile quick --name
audio_autoencoder --replicas 2 --steps 20`` prints the figures of one count as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.core.config import AutoencoderConfig, TrainingConfig, load_config
from mmga_helpers.learn.models import add_convergence_head, build_autoencoder, compile_autoencoder
from mmga_helpers.learn.pipeline import epoch_dataset
from mmga_helpers.learn.strategy import (
    prepare_devices,
    replicas,
    shuffle_orders,
    strategy_scope,
    training_strategy,
)
from mmga_helpers.learn.training import seed_everything
from mmga_helpers.tools.throughput import _epoch_timer

WORKER_TIMEOUT_S = 900
NAMES = ("audio_autoencoder", "image_autoencoder")


def _training(n_replicas: int) -> TrainingConfig | None:
    return TrainingConfig(strategy="mirrored", devices=n_replicas) if n_replicas > 1 else None


def replica_throughput(
    cfg: AutoencoderConfig,
    x: np.ndarray,
    name: str,
    n_replicas: int,
    steps: int,
    rounds: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Items/s of ``steps`` training steps (global batch ``cfg.batch_size``) on ``n_replicas``
    replicas, the fastest of ``rounds`` after a warm-up round (it traces the step). In this
    process: for ``n_replicas > 1`` TensorFlow must not have started yet (see :func:`main`)."""
    strategy = training_strategy(_training(n_replicas))
    targets = None
    if getattr(cfg, "convergence_weight", 0.0) > 0:  # as training_throughput: random 10-cluster targets
        targets = np.eye(10, dtype=np.float32)[np.random.default_rng(seed).integers(0, 10, len(x))]
    with strategy_scope(strategy):
        seed_everything(seed)
        ae = build_autoencoder(cfg, name)
        if targets is not None:
            ae = add_convergence_head(ae, targets.shape[1])
        compile_autoencoder(ae, cfg)
    orders = None
    if strategy is not None:
        full_epochs = -(-(rounds + 1) * steps * cfg.batch_size // len(x)) + 1
        orders = shuffle_orders(len(x), seed, full_epochs, cfg.batch_size, replicas(strategy))
    ds, _ = epoch_dataset(x, cfg.batch_size, seed, targets=targets, orders=orders)
    timer = _epoch_timer()
    ae.fitted.fit(ds, steps_per_epoch=steps, epochs=rounds + 1, shuffle=False, callbacks=[timer], verbose=0)
    best = min(timer.seconds[1:])
    return {
        "replicas": replicas(strategy),
        "steps": steps,
        "batch_size": cfg.batch_size,
        "items_per_s": steps * cfg.batch_size / best,
        "step_ms": 1000 * best / steps,
        "round_s": timer.seconds,
    }


def replica_figures(
    profile: str, name: str, x: np.ndarray, counts: tuple[int, ...] = (1, 2), steps: int = 20, rounds: int = 2
) -> dict[str, Any]:
    """:func:`replica_throughput` of the ``name`` autoencoder of a profile on ``x``, for each replica
    count, each in a fresh process; ``speedup``: items/s of the largest count over one replica's."""
    load_config(profile)  # a bad profile fails here, not in a worker
    out: dict[str, Any] = {"model": name, "n_items": len(x)}
    with tempfile.TemporaryDirectory(prefix="mmga-replicas-") as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, x)
        for n in counts:
            cmd = [
                sys.executable, "-m", "mmga_helpers.tools.replicas", str(data), "--profile", profile,
                "--name", name, "--replicas", str(n), "--steps", str(steps), "--rounds", str(rounds),
            ]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=env)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[2:])} failed:\n{done.stderr[-3000:]}")
            out[f"replicas_{n}"] = json.loads(done.stdout.strip().splitlines()[-1])
    if len(counts) > 1:
        first, last = out[f"replicas_{counts[0]}"], out[f"replicas_{counts[-1]}"]
        out["speedup"] = last["items_per_s"] / first["items_per_s"]
    return out


def main(argv: list[str] | None = None) -> None:
    """The worker: figures of one replica count, as one JSON line on stdout."""
    parser = argparse.ArgumentParser(prog="python -m mmga_helpers.tools.replicas")
    parser.add_argument("data", help=".npy array of model-ready items")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--name", default="audio_autoencoder", choices=NAMES)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    prepare_devices(_training(args.replicas))  # before TensorFlow's first operation
    cfg = getattr(load_config(args.profile).model, args.name)
    figures = replica_throughput(cfg, np.load(args.data), args.name, args.replicas, args.steps, args.rounds)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
