"""A run: one configuration's folders (``outputs/<profile>/...``) and a seed, its data, its timers and
its ``metrics.json``.

Each stage reuses finished artefacts (models, judges, latents, cached features) and recomputes only
what changed, so rerunning a notebook is cheap and a killed run resumes where it stopped. Metrics are
recorded per seed in ``metrics_per_seed.json`` and aggregated (mean and sample std over seeds) into
``metrics.json``; both are written atomically.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.core.config import Config, load_config
from mmga_helpers.core.io import read_json, write_json
from mmga_helpers.core.metrics import mean_std, unflatten
from mmga_helpers.core.paths import from_root
from mmga_helpers.learn.strategy import prepare_devices
from mmga_helpers.modalities.features import AudioSet, fsdd_split, mnist_split


@dataclass
class Run:
    """One profile's run folder, for one seed. ``root``: the project root (the default, found from
    the working directory or ``$MMGA_ROOT``; see :mod:`mmga_helpers.core.paths`) or a folder of
    one's own; relative roots are taken from the project root."""

    cfg: Config
    seed: int = 0
    root: Path = field(default_factory=lambda: Path("."))

    def __post_init__(self) -> None:
        # logical CPU devices for training.strategy: mirrored can only be made before TensorFlow's
        # first operation: opening the run (the notebooks' parameters cell) comes before any
        prepare_devices(self.cfg.training)

    @classmethod
    def from_params(
        cls, profile: str = "quick", config_path: str = "", output_dir: str = "", seed: int = 0
    ) -> Run:
        """The notebooks' parameters cell: a profile or a config file; ``output_dir`` is informative
        (``outputs/<profile>`` is derived from the config so that every stage agrees). Relative paths
        are taken from the project root, wherever the kernel started."""
        cfg = load_config(config_path or profile)
        run = cls(cfg, seed)
        if output_dir and from_root(output_dir).resolve() != run.dir.resolve():
            raise ValueError(
                f"output_dir={output_dir!r} disagrees with the config ({run.dir}); set paths.output_dir "
                "and profile in the config instead"
            )
        return run

    @property
    def dir(self) -> Path:
        return self.cfg.run_dir(self.root)

    @property
    def models(self) -> Path:
        return self.cfg.model_dir(self.root) / f"seed{self.seed}"

    @property
    def judges_dir(self) -> Path:
        return self.cfg.model_dir(self.root) / "judges"

    @property
    def cache(self) -> Path:
        return self.dir / "cache"

    @property
    def latents_path(self) -> Path:
        return self.dir / "latents" / f"seed{self.seed}.npz"

    @property
    def image_feedback(self) -> bool:
        """Whether the convergence zone feeds back to the image encoder
        (``model.image_autoencoder.convergence_weight > 0``): then the image side is trained twice."""
        return self.cfg.model.image_autoencoder.convergence_weight > 0

    @property
    def audio_feedback(self) -> bool:
        """Whether the audio encoder learns the co-occurring images' clusters
        (``model.audio_autoencoder.convergence_weight > 0``)."""
        return self.cfg.model.audio_autoencoder.convergence_weight > 0


@dataclass
class Data:
    """Model-ready training and held-out data for both modalities."""

    image_train: np.ndarray
    image_train_labels: np.ndarray
    image_test: np.ndarray
    image_test_labels: np.ndarray
    audio_train: AudioSet
    audio_test: AudioSet

    def sizes(self) -> dict[str, int]:
        return {
            "mnist_train": len(self.image_train),
            "mnist_test": len(self.image_test),
            "fsdd_train": len(self.audio_train),
            "fsdd_test": len(self.audio_test),
        }


def load_data(run: Run) -> Data:
    """Both modalities' training and held-out splits as the run's config shapes them."""
    x, y = mnist_split(run.cfg, "train")
    xt, yt = mnist_split(run.cfg, "test")
    return Data(x, y, xt, yt, fsdd_split(run.cfg, "train", run.cache), fsdd_split(run.cfg, "test", run.cache))


@contextmanager
def stage_timer(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[name]``."""
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def record_metrics(run: Run, figures: dict[str, float], info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge this seed's flat figures into ``metrics_per_seed.json`` and rewrite ``metrics.json``
    with ``{"mean", "std", "n_seeds"}`` per key over the seeds recorded so far (``std``: sample
    standard deviation, ddof=1)."""
    per_seed_path = run.dir / "metrics_per_seed.json"
    per_seed = read_json(per_seed_path) if per_seed_path.is_file() else {}
    per_seed.setdefault(str(run.seed), {}).update(figures)
    write_json(per_seed_path, per_seed)
    seeds = [s for s in map(str, run.cfg.seeds) if s in per_seed]
    keys = sorted({k for s in seeds for k in per_seed[s]})
    summary = {k: mean_std([per_seed[s][k] for s in seeds if k in per_seed[s]]) for k in keys}
    path = run.dir / "metrics.json"
    old = read_json(path) if path.is_file() else {}
    run_info = {
        **old.get("run", {}),
        **(info or {}),
        "profile": run.cfg.profile,
        "seeds": [int(s) for s in seeds],
    }
    out = {**unflatten(summary), "run": run_info}
    write_json(path, out)
    return out
