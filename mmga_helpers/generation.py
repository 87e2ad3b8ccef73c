"""Hear an image, see a sound: the stable public API of a finished run.

    >>> from mmga_helpers import MMGA
    >>> m = MMGA.load("outputs/full")
    >>> waves = m.hear(images)                    # [N, 28, 28] -> list of float32 waves at 8 kHz
    >>> imgs = m.see(waves, sample_rate=16000)    # clips at any rate -> float32 [N, 28, 28] in [0, 1]

The path is: encoder -> cluster -> the brain (one link drawn by strength from its one-to-many
table, the default, or the strongest association)
-> a latent drawn *inside* the other modality's cluster (the code of one of its training members,
drawn uniformly, so repeated calls vary; ``seed`` makes them repeatable) -> decoder -> for audio,
Griffin-Lim back to a waveform. A run folder is usable only with its manifest ``mmga.json``,
written by :func:`~mmga_helpers.stages.export.export_generator` once every artefact is complete;
the manifest records the configuration, and a folder whose models were made under another
configuration is refused.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from mmga_helpers.core.config import Config, config_from_dict
from mmga_helpers.core.inference import BatchInference
from mmga_helpers.core.io import read_json, read_npz
from mmga_helpers.core.paths import locate
from mmga_helpers.core.stamps import file_sha256
from mmga_helpers.learn.brain import ConvergenceDivergenceZone
from mmga_helpers.learn.clustering import load_clusterer
from mmga_helpers.learn.models import load_model
from mmga_helpers.learn.voices import VOTE_SHARE, neighbour_vote
from mmga_helpers.modalities.digits import normalize_digits
from mmga_helpers.modalities.features import images_to_unit, unit_logmel_to_waves, waves_to_unit_logmel

MANIFEST = "mmga.json"
Mode = Literal["argmax", "sample"]


class RunFolderError(RuntimeError):
    """A run folder is incomplete or was made by another configuration."""


class RunNotFoundError(RunFolderError, FileNotFoundError):
    """The run folder, or its manifest, does not exist: a :class:`RunFolderError` that
    ``except FileNotFoundError`` catches too (``filename`` names the folder, ``errno`` is ENOENT)."""

    def __init__(self, message: str, folder: str | Path) -> None:
        super().__init__(message)  # OSError's own argument parsing does not run behind RuntimeError
        self.errno, self.strerror, self.filename = errno.ENOENT, message, str(folder)

    def __str__(self) -> str:
        return str(self.strerror)  # the one-line message, without OSError's "[Errno 2] ...: 'path'"

    def __reduce__(self) -> tuple[type[RunNotFoundError], tuple[str, str]]:
        return type(self), (str(self.strerror), str(self.filename))


def _cluster_runs(clusters: np.ndarray, n_clusters: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Size of each cluster and where its run starts once members are sorted by cluster."""
    counts = np.bincount(clusters, minlength=n_clusters)
    return counts, np.concatenate([[0], np.cumsum(counts)[:-1]])


@dataclass
class LatentBank:
    """Training latents grouped by cluster: where generated latents are drawn from."""

    z: np.ndarray
    clusters: np.ndarray
    frames: np.ndarray | None = None  # audio: each member's natural length in frames

    def core(self, distance: np.ndarray, fraction: float) -> LatentBank:
        """This bank cut to each cluster's ``fraction`` of members nearest its centre (``distance``,
        e.g. a clusterer's ``centre_distance``; at least one member per cluster).

        A cluster's rim holds its strays, and a stray decodes as another digit; how much the core
        helps is measured in the book's method page."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}")
        distance = np.asarray(distance, dtype=np.float64)
        if distance.shape != self.clusters.shape:
            n = self.clusters.shape[0]
            raise ValueError(f"distance has shape {distance.shape}; the bank has {n} members")
        order = np.lexsort((distance, self.clusters))  # by cluster, nearest first
        counts, starts = _cluster_runs(self.clusters)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size) - starts[self.clusters[order]]
        keep = rank < np.maximum(1, np.ceil(fraction * counts[self.clusters]))
        frames = None if self.frames is None else self.frames[keep]
        return LatentBank(self.z[keep], self.clusters[keep], frames)

    def draw(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each target cluster, the code of one of its members, drawn uniformly.

        The brain re-activates a pattern the other modality actually experienced (Damasio's
        retro-activation), not a blend: mixing two members (``a + u (b - a)``) would pull every
        draw towards the cluster's middle and narrow the spread of what is generated."""
        return self.draw_with_frames(targets, rng)[0]

    def draw_with_frames(
        self, targets: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`draw`, plus the drawn members' natural lengths (None without ``frames``).
        Vectorised: members are addressed through a cluster-sorted index."""
        targets = np.asarray(targets, dtype=np.int64)
        order = np.argsort(self.clusters, kind="stable")
        n_clusters = int(max(self.clusters.max(), targets.max()) + 1)
        counts, starts = _cluster_runs(self.clusters, n_clusters)
        if (counts[targets] == 0).any():
            missing = sorted(set(targets[counts[targets] == 0].tolist()))
            raise RunFolderError(f"clusters {missing} have no training latents to draw from")
        members = order[starts[targets] + rng.integers(0, counts[targets])]
        z = self.z[members]
        return z, (None if self.frames is None else np.asarray(self.frames[members], np.int64))


@dataclass
class Traced:
    """What a generation produced (``outputs``: waves or images) and the path it took: the cluster
    of each input in its own modality (``source``) and the other modality's cluster the brain
    drew for it (``target``)."""

    outputs: Any
    source: np.ndarray
    target: np.ndarray


class MMGA:
    """A finished run, ready to hear images and see sounds."""

    def __init__(self, cfg: Config, parts: dict[str, Any], seed: int = 0) -> None:
        self.cfg = cfg
        self.seed = seed
        self._p = parts
        self._calls = 0
        self._infer: dict[str, BatchInference] = {}

    def _run(self, part: str, x: np.ndarray) -> np.ndarray:
        """Run the network ``part`` (e.g. ``"audio_encoder"``) on ``x`` in inference mode."""
        if part not in self._infer:
            self._infer[part] = BatchInference(self._p[part])
        return self._infer[part](x)

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path, seed: int | None = None) -> MMGA:
        """Open a run folder (``outputs/<profile>``); refuses missing, changed or foreign artefacts."""
        folder = locate(folder)  # a relative folder means the same from notebooks/ as from the root
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            why = f"{MANIFEST} missing" if folder.is_dir() else f"no such folder; {MANIFEST} missing"
            if not folder.is_absolute():  # relative to the working directory, which a kernel may not share
                why += f" in {folder.resolve()}"
            raise RunNotFoundError(
                f"{folder} is not a finished MMGA run ({why}); run `mmga run --profile "
                "<profile>` (or the generation notebook) to create it",
                folder,
            )
        try:
            manifest = read_json(manifest_path)
            config_data, seeds, default_seed = manifest["config"], manifest["seeds"], manifest["default_seed"]
        except (ValueError, KeyError, TypeError) as err:  # not JSON, or not a manifest's keys
            raise RunFolderError(
                f"{manifest_path} is damaged ({type(err).__name__}: {err}); rerun `mmga run --force`"
            ) from None
        cfg = config_from_dict(config_data, str(manifest_path))
        seed = default_seed if seed is None else seed
        entry = seeds.get(str(seed))
        if entry is None:
            raise RunFolderError(f"{folder}: no generator for seed {seed}; have {sorted(manifest['seeds'])}")
        files = {}
        for key, info in entry["files"].items():
            path = folder / info["path"]
            if not path.is_file():
                raise RunFolderError(
                    f"{folder}: artefact {info['path']} is missing; rerun `mmga run --force`"
                )
            if file_sha256(path) != info["sha256"]:
                raise RunFolderError(
                    f"{folder}: artefact {info['path']} changed since the manifest was written (another "
                    "config or a retraining); rerun the generation notebook to export a consistent run"
                )
            files[key] = path
        for key in ("image_meta", "audio_meta"):
            section = "image_autoencoder" if key == "image_meta" else "audio_autoencoder"
            schema = type(getattr(cfg.model, section))
            try:  # keys added since the run was made take their defaults, as in its manifest
                made_with = schema.model_validate(read_json(files[key])["config"]).model_dump(mode="json")
            except ValueError:
                made_with = None
            if made_with != cfg.model_dump(mode="json")["model"][section]:
                raise RunFolderError(f"{folder}: {files[key]} was made with another configuration; refused")
        banks = read_npz(files["banks"])
        parts = {
            "image_encoder": load_model(files["image_encoder"]),
            "image_decoder": load_model(files["image_decoder"]),
            "audio_encoder": load_model(files["audio_encoder"]),
            "audio_decoder": load_model(files["audio_decoder"]),
            "image_clusterer": load_clusterer(files["image_clusterer"]),
            "audio_clusterer": load_clusterer(files["audio_clusterer"]),
            "brain": ConvergenceDivergenceZone.load(files["brain"]),
            "image_bank": LatentBank(banks["image_z"], banks["image_clusters"]),
            "audio_bank": LatentBank(banks["audio_z"], banks["audio_clusters"], banks["audio_frames"]),
        }
        return cls(cfg, parts, seed)

    @property
    def brain(self):
        """The fitted :class:`~mmga_helpers.learn.brain.ConvergenceDivergenceZone` of this run."""
        return self._p["brain"]

    @property
    def parts(self) -> MappingProxyType[str, Any]:
        """The run's parts, read-only: the four networks (``image_encoder``, ...), the two
        clusterers, the ``brain`` and the two latent banks (what ``mmga export-web`` writes out)."""
        return MappingProxyType(self._p)

    # -- encoding and clustering ----------------------------------------------------------------
    def prepare_images(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Pictures as the image encoder was trained on them, ``[N, 28, 28, 1]`` in [0, 1].

        Any picture (any size, grey, RGB or RGBA, dark ink on light paper or light on dark) is
        normalised the MNIST way (:func:`~mmga_helpers.modalities.digits.normalize_digits`). A run
        trained on raw MNIST (``data.mnist.standardize`` false) takes ``[N, 28, 28]`` arrays as
        they are, like its training images, and normalises only other pictures."""
        mnist = self.cfg.data.mnist
        if not mnist.standardize and isinstance(images, np.ndarray) and images.shape[1:3] == (28, 28):
            if images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 1):
                return images_to_unit(images, mnist.normalize)
        return normalize_digits(images)[..., None]

    def encode_images(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        return self._run("image_encoder", self.prepare_images(images))

    def encode_waves(self, waves: list[np.ndarray] | np.ndarray, sample_rate: int = 8000) -> np.ndarray:
        x = waves_to_unit_logmel(list(waves), self.cfg, sample_rate)[0]
        return self._run("audio_encoder", x)

    def image_clusters(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        return self._p["image_clusterer"].predict(self.encode_images(images))

    def audio_clusters(self, waves: list[np.ndarray] | np.ndarray, sample_rate: int = 8000) -> np.ndarray:
        return self._p["audio_clusterer"].predict(self.encode_waves(waves, sample_rate))

    # -- generation --------------------------------------------------------------------------------
    def _rng(self, seed: int | None) -> np.random.Generator:
        if seed is not None:
            return np.random.default_rng(seed)
        self._calls += 1  # repeated calls vary, yet a fresh MMGA replays the same sequence
        return np.random.default_rng([self.seed, self._calls])

    def hear(
        self, images: np.ndarray | list[np.ndarray], seed: int | None = None, mode: Mode = "sample"
    ) -> list[np.ndarray]:
        """Pictures of digits -> one float32 waveform at 8 kHz each. ``images``: MNIST-like
        ``[N, 28, 28]`` (uint8 or float), or any pictures (a list of arrays of any size, grey or
        colour, either polarity), normalised as in :meth:`prepare_images`.

        ``mode="sample"`` (the default) draws the audio cluster from the brain's one-to-many table,
        so one digit is heard in the several voices it co-occurred with; ``"argmax"`` always takes
        the strongest link, which is one voice cluster per image cluster."""
        return self.hear_traced(images, seed, mode).outputs

    def hear_traced(
        self, images: np.ndarray | list[np.ndarray], seed: int | None = None, mode: Mode = "sample"
    ) -> Traced:
        """:meth:`hear`, with the image cluster of each picture and the audio cluster drawn for it."""
        rng = self._rng(seed)
        clusters = self.image_clusters(images)
        targets = self._p["brain"].predict_audio(clusters, mode=mode, random_state=rng.integers(2**31))
        z, frames = self._p["audio_bank"].draw_with_frames(np.asarray(targets), rng)
        unit = self._run("audio_decoder", z)
        waves = unit_logmel_to_waves(
            unit, self.cfg, frames, seed=int(rng.integers(2**31)), contrast=self.cfg.generation.audio_contrast
        )
        return Traced(list(waves.astype(np.float32)), np.asarray(clusters), np.asarray(targets))

    def see(
        self,
        waves: list[np.ndarray] | np.ndarray,
        sample_rate: int = 8000,
        seed: int | None = None,
        mode: Mode = "sample",
        one_voice: bool = False,
    ) -> np.ndarray:
        """Clips (1-D arrays at ``sample_rate``) -> float32 images ``[N, 28, 28]`` in [0, 1]
        (``mode`` as in :meth:`hear`). ``one_voice=True`` says every clip is spoken by one voice:
        each clip then takes the image cluster recalled most often among its nearest 5 % of the
        batch's clips (``evaluation.voice_vote`` when set;
        :func:`~mmga_helpers.learn.voices.neighbour_vote`), which helps a voice the run never
        heard; with 50 clips or fewer nothing changes."""
        return self.see_traced(waves, sample_rate, seed, mode, one_voice).outputs

    def see_traced(
        self,
        waves: list[np.ndarray] | np.ndarray,
        sample_rate: int = 8000,
        seed: int | None = None,
        mode: Mode = "sample",
        one_voice: bool = False,
    ) -> Traced:
        """:meth:`see`, with the audio cluster of each clip and the image cluster drawn for it."""
        rng = self._rng(seed)
        z = self.encode_waves(waves, sample_rate)
        clusters = self._p["audio_clusterer"].predict(z)
        targets = self._p["brain"].predict_image(clusters, mode=mode, random_state=rng.integers(2**31))
        if one_voice:
            targets = neighbour_vote(z, targets, self.cfg.evaluation.voice_vote or VOTE_SHARE)
        z = self._p["image_bank"].draw(np.asarray(targets), rng)
        images = self._run("image_decoder", z)[..., 0].astype(np.float32)
        return Traced(images, np.asarray(clusters), np.asarray(targets))
