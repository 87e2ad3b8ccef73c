"""The stages the notebooks call: data, autoencoders, latents, judges and the figures of merit.

A :class:`Run` ties a config to its folders (``outputs/<profile>/...``) and a seed. Each stage
reuses finished artefacts (models, judges, latents, cached features) and recomputes only what
changed, so rerunning a notebook is cheap and a killed run resumes where it stopped.
Metrics are recorded per seed in ``metrics_per_seed.json`` and aggregated (mean, std over seeds)
into ``metrics.json``; both are written atomically.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers import audio
from mmga_helpers.config import Config, load_config
from mmga_helpers.features import AudioSet, fsdd_split, mnist_split, unit_logmel_to_waves
from mmga_helpers.inference import BatchInference
from mmga_helpers.io import read_json, read_npz, write_json, write_npz


@dataclass
class Run:
    """One profile's run folder, for one seed."""

    cfg: Config
    seed: int = 0
    root: Path = field(default_factory=lambda: Path("."))

    @classmethod
    def from_params(
        cls, profile: str = "quick", config_path: str = "", output_dir: str = "", seed: int = 0
    ) -> Run:
        """The notebooks' parameters cell: a profile or a config file; ``output_dir`` is informative
        (``outputs/<profile>`` is derived from the config so that every stage agrees)."""
        cfg = load_config(config_path or profile)
        run = cls(cfg, seed)
        if output_dir and Path(output_dir).resolve() != run.dir.resolve():
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
    x, y = mnist_split(run.cfg, "train")
    xt, yt = mnist_split(run.cfg, "test")
    return Data(x, y, xt, yt, fsdd_split(run.cfg, "train", run.cache), fsdd_split(run.cfg, "test", run.cache))


@contextmanager
def stage_timer(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def image_feedback(run: Run) -> bool:
    """Whether the convergence zone feeds back to the image encoder
    (``model.image_autoencoder.convergence_weight > 0``): then the image side is trained twice."""
    return run.cfg.model.image_autoencoder.convergence_weight > 0


def _mismatch_folder(run: Run, mismatch_fraction: float) -> Path:
    """``models/seed<s>``, or ``models/seed<s>/mismatch<pct>`` for the world with mismatched pairs."""
    from mmga_helpers.evaluation import mismatch_tag

    return run.models / mismatch_tag(mismatch_fraction) if mismatch_fraction else run.models


def train_unimodal_image_autoencoder(run: Run, data: Data, force: bool = False):
    """The image autoencoder trained on MNIST train images alone (reconstruction only). Its clusters
    are what the audio encoder's convergence head learns. Without image feedback it is the image
    autoencoder of the run (``image_autoencoder/``); with it, the first pass
    (``image_autoencoder_unimodal/``), which also serves the speaker hold-out (no voice reaches it)."""
    from mmga_helpers.training import train_autoencoder

    name = "image_autoencoder_unimodal" if image_feedback(run) else "image_autoencoder"
    return train_autoencoder(
        data.image_train,
        run.cfg.model.image_autoencoder.model_copy(update={"convergence_weight": 0.0}),
        "image_autoencoder",
        run.models / name,
        seed=run.seed,
        force=force,
    )


def train_image_autoencoder(run: Run, data: Data, force: bool = False, mismatch_fraction: float = 0.0):
    """Train (or reuse) the image autoencoder of this seed on MNIST train: the one that generation,
    the clusters and the brain use. With image feedback it is trained again, after the audio
    autoencoder, with a convergence head that learns the audio clusters of the clips each image
    co-occurred with (:func:`image_convergence_targets`), starting from the first pass's weights: the
    feedback refines a code that already reconstructs, instead of trading reconstruction for the
    partner's clusters from scratch. ``mismatch_fraction > 0`` trains the copy for the mismatched
    world in ``mismatch<pct>/``."""
    from mmga_helpers.training import train_autoencoder

    if not image_feedback(run):
        return train_unimodal_image_autoencoder(run, data, force)
    return train_autoencoder(
        data.image_train,
        run.cfg.model.image_autoencoder,
        "image_autoencoder",
        _mismatch_folder(run, mismatch_fraction) / "image_autoencoder",
        seed=run.seed,
        force=force,
        targets=image_convergence_targets(run, data, mismatch_fraction=mismatch_fraction),
        init=train_unimodal_image_autoencoder(run, data),
    )


def unimodal_image_side(run: Run, data: Data):
    """The unimodal image autoencoder (trained or reused), its codes of the MNIST training images and
    their cluster ids (the clustering stage's image clusterer when there is no image feedback,
    ``image_unimodal`` otherwise). Returns ``(trained, z_train, ids)``. The ids are the clusterer's
    own ``labels_``: it is reused only when stamped with these very codes, and on its training
    codes ``predict`` gives ``labels_``, so nothing is assigned twice (60,000 neighbour searches)."""
    from mmga_helpers.evaluation import image_clusterer

    trained = train_unimodal_image_autoencoder(run, data)
    z = encode(trained.model.encoder, data.image_train)
    ids = np.asarray(image_clusterer(run, z, unimodal=image_feedback(run)).labels_, np.int64)
    return trained, z, ids


def image_train_clusters(run: Run, data: Data) -> np.ndarray:
    """Cluster ids of the MNIST training images on the unimodal image autoencoder's codes
    (:func:`unimodal_image_side`): what the audio encoder's convergence head learns."""
    return unimodal_image_side(run, data)[2]


def audio_train_clusters(run: Run, data: Data, mismatch_fraction: float = 0.0) -> np.ndarray:
    """Cluster ids (``n_clusters``, the clustering stage's audio clusterer) of the FSDD training
    clips on this seed's audio autoencoder (the mismatched world's, for ``mismatch_fraction > 0``):
    what the image encoder's convergence head learns."""
    from mmga_helpers.evaluation import cached_clusterer, mismatch_tag

    ae = train_audio_autoencoder(run, data, mismatch_fraction=mismatch_fraction)
    z = encode(ae.model.encoder, data.audio_train.x)
    name = f"{mismatch_tag(mismatch_fraction)}_audio" if mismatch_fraction else "audio"
    clusterer, _ = cached_clusterer(run, name, z, run.cfg.model.clustering.n_clusters)
    return np.asarray(clusterer.labels_, np.int64)  # == predict(z) on its own training codes


def image_convergence_targets(
    run: Run, data: Data, audio_ids_train: np.ndarray | None = None, mismatch_fraction: float = 0.0
) -> np.ndarray:
    """The image encoder's convergence targets: for each training image, the distribution of the
    audio clusters of the clips it co-occurred with, over the pairs the brain is fitted on."""
    from mmga_helpers.evaluation import convergence_targets

    ids = audio_train_clusters(run, data, mismatch_fraction) if audio_ids_train is None else audio_ids_train
    return convergence_targets(
        run, ids, data.image_train_labels, data.audio_train.digits, mismatch_fraction, learner="image"
    )


def audio_convergence_targets(
    run: Run, data: Data, image_ids_train: np.ndarray | None = None, mismatch_fraction: float = 0.0
) -> np.ndarray | None:
    """The audio encoder's convergence targets (see :func:`evaluation.convergence_targets`), or None
    when ``model.audio_autoencoder.convergence_weight`` is 0."""
    from mmga_helpers.evaluation import convergence_targets

    if run.cfg.model.audio_autoencoder.convergence_weight == 0:
        return None
    ids = image_train_clusters(run, data) if image_ids_train is None else image_ids_train
    return convergence_targets(run, ids, data.image_train_labels, data.audio_train.digits, mismatch_fraction)


def train_audio_autoencoder(
    run: Run, data: Data, force: bool = False, mismatch_fraction: float = 0.0, image_ids_train=None
):
    """Train (or reuse) the audio autoencoder of this seed on FSDD train log-mels: reconstruction,
    plus (``convergence_weight > 0``) the co-occurring images' clusters as a second target.
    ``mismatch_fraction > 0`` trains the copy for the mismatched world in ``mismatch<pct>/``."""
    from mmga_helpers.training import train_autoencoder

    return train_autoencoder(
        data.audio_train.x,
        run.cfg.model.audio_autoencoder,
        "audio_autoencoder",
        _mismatch_folder(run, mismatch_fraction) / "audio_autoencoder",
        seed=run.seed,
        force=force,
        targets=audio_convergence_targets(run, data, image_ids_train, mismatch_fraction),
    )


def train_autoencoders(run: Run, data: Data, force: bool = False):
    """Both autoencoders for this seed; returns ``(image, audio)``."""
    return train_image_autoencoder(run, data, force), train_audio_autoencoder(run, data, force)


_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def encode(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Batch inference through one traced function per model (:class:`BatchInference`), so that the
    shorter last chunk does not retrace Keras' predict function and warn on every book page; its
    outputs are bit-identical to ``predict_on_batch``'s (checked on the full run's four networks)."""
    if len(getattr(model, "outputs", ())) != 1:  # a training model with its head: Keras' own path
        return np.concatenate(
            [np.asarray(model.predict_on_batch(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        )
    if model not in _INFERENCE or _INFERENCE[model].batch_size != batch_size:
        _INFERENCE[model] = BatchInference(model, batch_size)
    return _INFERENCE[model](x)


def latents(run: Run, data: Data, image_ae, audio_ae, force: bool = False) -> dict[str, np.ndarray]:
    """Latent codes of every split, cached per seed; the cache is tied to the two models' meta.json
    (which change with every retraining) and to the data they encode."""
    import json

    from mmga_helpers.training import data_fingerprint

    blob = json.dumps([image_ae.meta, audio_ae.meta, data.sizes(), data_fingerprint(data.image_test)])
    stamp = hashlib.sha256(blob.encode()).hexdigest()[:16]
    if not force and run.latents_path.is_file():
        cached = read_npz(run.latents_path)
        if str(cached.pop("stamp", "")) == stamp:
            return cached
    out = {
        "image_train": encode(image_ae.model.encoder, data.image_train),
        "image_test": encode(image_ae.model.encoder, data.image_test),
        "audio_train": encode(audio_ae.model.encoder, data.audio_train.x),
        "audio_test": encode(audio_ae.model.encoder, data.audio_test.x),
    }
    write_npz(run.latents_path, stamp=np.array(stamp), **out)
    return out


def train_image_judge(run: Run, force: bool = False):
    """The MNIST judge, trained supervised on the profile's MNIST train images (it scores; it is not
    part of the system, and never sees a test image)."""
    from mmga_helpers.features import mnist_split
    from mmga_helpers.judges import train_judge

    images, labels = mnist_split(run.cfg, "train")
    return train_judge("image", images, labels, run.judges_dir, seed=0, epochs=4, force=force)


def train_audio_judge(run: Run, data: Data, force: bool = False):
    """The FSDD judge, trained supervised on FSDD train waveforms with its own MFCC front end.

    Each training clip is seen twice: as recorded, and after the round trip that generated sound
    takes (unit log-mel, time normalisation undone, Griffin-Lim), so that the judge reads a digit
    through the vocoder's artefacts too. Only real training clips go in; nothing an autoencoder made."""
    from mmga_helpers.judges import train_judge

    at = data.audio_train
    vocoded = unit_logmel_to_waves(at.x, run.cfg, at.frames, seed=0)
    waves = np.concatenate([at.waves, vocoded])
    digits = np.concatenate([at.digits, at.digits])
    epochs = run.cfg.evaluation.audio_judge_epochs
    return train_judge("audio", waves, digits, run.judges_dir, seed=0, epochs=epochs, force=force)


def train_judges(run: Run, data: Data, force: bool = False):
    """Both judges, shared by every seed of a profile; returns ``(image_judge, audio_judge)``."""
    return train_image_judge(run, force), train_audio_judge(run, data, force)


def image_reconstruction_metrics(data: Data, image_ae, image_judge) -> dict[str, float]:
    """MNIST test: pixel MSE and PSNR (pixels in [0, 1]); the MNIST judge reading reconstructions."""
    xt = data.image_test
    rec = encode(image_ae.model.autoencoder, xt)
    per_image = ((rec - xt) ** 2).reshape(len(xt), -1).mean(axis=1)
    return {
        "image.reconstruction.mse": float(per_image.mean()),
        "image.reconstruction.psnr": float(np.mean(10 * np.log10(1.0 / np.maximum(per_image, 1e-12)))),
        "image.reconstruction.judge_acc": image_judge.accuracy(rec, data.image_test_labels),
        "judges.image_test_acc": image_judge.accuracy(xt, data.image_test_labels),
    }


def audio_reconstruction_metrics(run: Run, data: Data, audio_ae, audio_judge) -> dict[str, float]:
    """FSDD official test: log-mel MSE (unit scale), spectral convergence after Griffin-Lim, and the
    FSDD judge reading the reconstructed clips turned back into waveforms."""
    at = data.audio_test
    mel_rec = encode(audio_ae.model.autoencoder, at.x)
    waves = unit_logmel_to_waves(mel_rec, run.cfg, at.frames, seed=run.seed)
    sc = audio.spectral_convergence(at.waves, waves, run.cfg.data.fsdd)
    return {
        "audio.reconstruction.mel_mse": float(((mel_rec - at.x) ** 2).mean()),
        "audio.reconstruction.spectral_convergence": float(sc.mean()),
        "audio.reconstruction.judge_acc": audio_judge.accuracy(waves, at.digits),
        "judges.audio_test_acc": audio_judge.accuracy(at.waves, at.digits),
    }


def reconstruction_metrics(run: Run, data: Data, image_ae, audio_ae, judges) -> dict[str, float]:
    """Held-out reconstruction quality of both autoencoders, measured and judged."""
    return {
        **image_reconstruction_metrics(data, image_ae, judges[0]),
        **audio_reconstruction_metrics(run, data, audio_ae, judges[1]),
    }


# -- metrics.json ------------------------------------------------------------------------------------------
def record_metrics(run: Run, figures: dict[str, float], info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge this seed's flat figures into ``metrics_per_seed.json`` and rewrite ``metrics.json``
    with ``{"mean", "std", "n_seeds"}`` per key over the seeds recorded so far."""
    from mmga_helpers.metrics import mean_std, unflatten

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
