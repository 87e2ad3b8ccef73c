"""Where training runs (config ``training``): one device under TensorFlow's default strategy, as
without the section, or a ``tf.distribute.MirroredStrategy`` over several GPUs or several logical
CPU devices.

Under a strategy the model is built and compiled inside ``strategy.scope()``; Keras 3 then
distributes the tf.data pipeline itself (``experimental_distribute_dataset``), so each global batch
(``model.*.batch_size``) is split between the replicas, each replica's mean loss is scaled by
``1 / replicas`` and the gradients are summed: the update is that of one device on the whole batch,
up to the order of float sums. The batches come in the orders one device sees
(:func:`shuffle_orders`, :func:`replayed_dataset`). Logical CPU devices can only be made before
TensorFlow initialises its devices (its first op in the process): :func:`prepare_devices` is called
when a run is opened (:class:`~mmga_helpers.stages.run.Run`), before any training.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any

import numpy as np

from mmga_helpers.core.config import TrainingConfig


class StrategyError(RuntimeError):
    """The configured strategy cannot be set up in this process."""


def configure_cpu_devices(n: int) -> None:
    """Split the CPU into ``n`` logical devices, so that a MirroredStrategy can put one replica on
    each (they share the CPU's cores: what they gain is better use of the cores, not more of them).
    Idempotent; TensorFlow allows it only before its devices are initialised, so afterwards it
    passes when the process already has ``n`` or more and raises :class:`StrategyError` otherwise."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) >= n:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have >= n:
            return
        raise StrategyError(
            f"training.devices: {n} needs {n} logical CPU devices, but TensorFlow already started in "
            f"this process with {have}; they can only be made before its first operation: open the "
            "run (stages.run.Run) or call learn.strategy.prepare_devices first, or restart the kernel"
        ) from None


def device_names(training: TrainingConfig) -> list[str]:
    """The devices of a mirrored strategy: the first ``devices`` GPUs (all when None), or, with no
    GPU visible, ``devices`` logical CPU devices (made here when TensorFlow has not started yet)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        n = training.devices or len(gpus)
        if n > len(gpus):
            raise StrategyError(f"training.devices: {n}, but only {len(gpus)} GPU(s) are visible")
        return [f"/gpu:{i}" for i in range(n)]
    n = training.devices or 1
    if training.devices is None:
        warnings.warn(
            "training.strategy: mirrored found no GPU: one replica on the CPU; set training.devices "
            "to split the CPU into that many logical devices",
            stacklevel=3,
        )
    if n > 1:
        configure_cpu_devices(n)
    return [f"/cpu:{i}" for i in range(n)]


def prepare_devices(training: TrainingConfig | None) -> None:
    """Make the logical devices a mirrored strategy will need, while TensorFlow has not started:
    call it early (opening a run does). Nothing to do, and TensorFlow not even imported, for the
    default strategy."""
    if training is not None and training.strategy == "mirrored":
        device_names(training)


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> Any:
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(devices))


def training_strategy(training: TrainingConfig | None) -> Any | None:
    """The ``tf.distribute`` strategy for ``training``, one per device set in a process; None for
    the default strategy (no scope is entered: training is exactly what it was without one)."""
    if training is None or training.strategy == "default":
        return None
    return _mirrored(tuple(device_names(training)))


def strategy_scope(strategy: Any | None) -> contextlib.AbstractContextManager:
    """``strategy.scope()``, or a scope that does nothing for the default strategy (None)."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def shuffle_orders(n: int, seed: int, epochs: int, batch_size: int, replicas: int) -> np.ndarray:
    """``[epochs, n]``: the item order of each of the first ``epochs`` epochs of the seeded shuffle
    that :func:`~mmga_helpers.learn.training.make_dataset` applies (the same op, seed and buffer: the
    order depends on nothing else), read once, eagerly. When an epoch would end on a batch of fewer
    items than ``replicas`` (one replica would get none, and TensorFlow cannot take the gradient of
    an empty batch), those last items of each order are left out, with a warning.

    Why: under a strategy Keras's ``fit`` first draws one batch from a throwaway iterator (to build
    the model), and a seeded ``shuffle`` with ``reshuffle_each_iteration`` hands every new iterator
    (and every epoch of one) the next shuffle; prefetching may open the next epoch, too. A
    distributed run fed that pipeline would see other orders than one device does, and not always
    the same ones. Fed these fixed orders (:func:`replayed_dataset`) it sees one device's."""
    import tensorflow as tf

    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(n)
    orders = np.stack([order.numpy() for order in ds.repeat(epochs)])
    rest = n % batch_size
    if 0 < rest < replicas:
        warnings.warn(
            f"{n} training items in batches of {batch_size} end each epoch on {rest} item(s), fewer "
            f"than the {replicas} replicas: each epoch leaves its last {rest} out",
            stacklevel=2,
        )
        orders = orders[:, : n - rest]
    return orders


def replayed_dataset(
    x: np.ndarray,
    batch_size: int,
    orders: np.ndarray,
    targets: np.ndarray | None = None,
    variants: np.ndarray | None = None,
) -> Any:
    """The batches :func:`~mmga_helpers.learn.training.make_dataset` would give over
    ``len(orders)`` epochs (same elements, same structure), in the fixed ``orders``
    (:func:`shuffle_orders`): no random state, so any number of iterators all see them."""
    import tensorflow as tf

    constants: dict[int, Any] = {}  # x is both input and target: one copy

    def const(a: np.ndarray) -> Any:
        return constants.setdefault(id(a), tf.constant(a))

    y = x if targets is None else {"reconstruction": x, "convergence": targets.astype(np.float32)}
    table = tf.nest.map_structure(const, ((x, variants) if variants is not None else x, y))
    per_epoch = tf.data.Dataset.from_tensor_slices(orders.astype(np.int64))
    idx = per_epoch.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    ds = idx.map(lambda i: tf.nest.map_structure(lambda t: tf.gather(t, i), table))
    return ds.prefetch(tf.data.AUTOTUNE)


def replicas(strategy: Any | None) -> int:
    """How many copies of the model train side by side (1 for the default strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)
