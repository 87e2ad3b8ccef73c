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
written by :func:`export_generator` once every artefact is complete; the manifest records the
configuration, and a folder whose models were made under another configuration is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmga_helpers import audio
from mmga_helpers.config import Config, config_from_dict
from mmga_helpers.features import images_to_unit, unit_logmel_to_waves, waves_to_unit_logmel
from mmga_helpers.inference import BatchInference
from mmga_helpers.io import read_json, read_npz, write_json, write_npz

MANIFEST = "mmga.json"
Mode = Literal["argmax", "sample"]


class RunFolderError(RuntimeError):
    """A run folder is incomplete or was made by another configuration."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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

        A cluster's rim holds its strays, and a stray decodes as another digit: drawing from the
        inner half, the MNIST judge read the decoded members of the first-pass image clusters as
        their cluster's digit 0.993 of the time, against 0.964 drawing from all (MNIST train,
        full profile, seed 0)."""
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
        retro-activation), not a blend: mixing two members (``a + u (b - a)``) pulls every draw
        towards the cluster's middle, and the decoded sounds lost a tenth of the spread of real
        ones (diversity ratio 0.458 against 0.518 for members, full profile, seed 1)."""
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
        from mmga_helpers.brain import ConvergenceDivergenceZone
        from mmga_helpers.clustering import load_clusterer
        from mmga_helpers.models import load_model

        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise RunFolderError(
                f"{folder} is not a finished MMGA run ({MANIFEST} missing); run `mmga run --profile "
                "<profile>` (or the generation notebook) to create it"
            )
        manifest = read_json(manifest_path)
        cfg = config_from_dict(manifest["config"], str(manifest_path))
        seed = manifest["default_seed"] if seed is None else seed
        entry = manifest["seeds"].get(str(seed))
        if entry is None:
            raise RunFolderError(f"{folder}: no generator for seed {seed}; have {sorted(manifest['seeds'])}")
        files = {}
        for key, info in entry["files"].items():
            path = folder / info["path"]
            if not path.is_file():
                raise RunFolderError(
                    f"{folder}: artefact {info['path']} is missing; rerun `mmga run --force`"
                )
            if _sha(path) != info["sha256"]:
                raise RunFolderError(
                    f"{folder}: artefact {info['path']} changed since the manifest was written (another "
                    "config or a retraining); rerun the generation notebook to export a consistent run"
                )
            files[key] = path
        for key in ("image_meta", "audio_meta"):
            made_with = read_json(files[key])["config"]
            section = "image_autoencoder" if key == "image_meta" else "audio_autoencoder"
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
        """The fitted :class:`~mmga_helpers.brain.ConvergenceDivergenceZone` of this run."""
        return self._p["brain"]

    # -- encoding and clustering ----------------------------------------------------------------
    def encode_images(self, images: np.ndarray) -> np.ndarray:
        return self._run("image_encoder", images_to_unit(images, self.cfg.data.mnist.normalize))

    def encode_waves(self, waves: list[np.ndarray] | np.ndarray, sample_rate: int = 8000) -> np.ndarray:
        x = waves_to_unit_logmel(list(waves), self.cfg, sample_rate)[0]
        return self._run("audio_encoder", x)

    def image_clusters(self, images: np.ndarray) -> np.ndarray:
        return self._p["image_clusterer"].predict(self.encode_images(images))

    def audio_clusters(self, waves: list[np.ndarray] | np.ndarray, sample_rate: int = 8000) -> np.ndarray:
        return self._p["audio_clusterer"].predict(self.encode_waves(waves, sample_rate))

    # -- generation --------------------------------------------------------------------------------
    def _rng(self, seed: int | None) -> np.random.Generator:
        if seed is not None:
            return np.random.default_rng(seed)
        self._calls += 1  # repeated calls vary, yet a fresh MMGA replays the same sequence
        return np.random.default_rng([self.seed, self._calls])

    def hear(self, images: np.ndarray, seed: int | None = None, mode: Mode = "sample") -> list[np.ndarray]:
        """Images ``[N, 28, 28]`` (uint8 or float) -> one float32 waveform at 8 kHz each.

        ``mode="sample"`` (the default) draws the audio cluster from the brain's one-to-many table,
        so one digit is heard in the several voices it co-occurred with; ``"argmax"`` always takes
        the strongest link, which is one voice cluster per image cluster."""
        rng = self._rng(seed)
        clusters = self.image_clusters(images)
        targets = self._p["brain"].predict_audio(clusters, mode=mode, random_state=rng.integers(2**31))
        z, frames = self._p["audio_bank"].draw_with_frames(np.asarray(targets), rng)
        unit = self._run("audio_decoder", z)
        waves = unit_logmel_to_waves(unit, self.cfg, frames, seed=int(rng.integers(2**31)))
        return list(waves.astype(np.float32))

    def see(
        self,
        waves: list[np.ndarray] | np.ndarray,
        sample_rate: int = 8000,
        seed: int | None = None,
        mode: Mode = "sample",
    ) -> np.ndarray:
        """Clips (1-D arrays at ``sample_rate``) -> float32 images ``[N, 28, 28]`` in [0, 1]
        (``mode`` as in :meth:`hear`)."""
        rng = self._rng(seed)
        clusters = self.audio_clusters(waves, sample_rate)
        targets = self._p["brain"].predict_image(clusters, mode=mode, random_state=rng.integers(2**31))
        z = self._p["image_bank"].draw(np.asarray(targets), rng)
        return self._run("image_decoder", z)[..., 0].astype(np.float32)


def export_generator(run, latents: dict[str, np.ndarray], clusters, audio_frames: np.ndarray) -> Path:
    """Write the latent banks and the manifest ``mmga.json`` for ``run.seed`` (atomically, last).

    ``clusters`` is the evaluation stage's ``ClusterResult``: the brain links its ``image_brain``
    and ``audio_brain`` clusterings, so those are what generation uses; ``audio_frames`` are the
    natural lengths of the audio training clips, so that a generated word is spoken at their pace."""
    folder = run.dir
    banks = folder / "generator" / f"seed{run.seed}_banks.npz"
    fraction = run.cfg.generation.core_fraction
    image = LatentBank(latents["image_train"], clusters.ids["image_brain_train"]).core(
        clusters.image_brain.centre_distance(latents["image_train"]), fraction
    )
    audio = LatentBank(
        latents["audio_train"], clusters.ids["audio_brain_train"], np.asarray(audio_frames, dtype=np.int64)
    ).core(clusters.audio_brain.centre_distance(latents["audio_train"]), fraction)
    write_npz(
        banks,
        image_z=image.z,
        image_clusters=image.clusters,
        audio_z=audio.z,
        audio_clusters=audio.clusters,
        audio_frames=audio.frames,
    )
    models, cl = run.models, clusters.folder
    image_clusterer = cl / "image_brain.npz" if (cl / "image_brain.npz").is_file() else cl / "image.npz"
    paths = {
        "image_encoder": models / "image_autoencoder" / "encoder.keras",
        "image_decoder": models / "image_autoencoder" / "decoder.keras",
        "image_meta": models / "image_autoencoder" / "meta.json",
        "audio_encoder": models / "audio_autoencoder" / "encoder.keras",
        "audio_decoder": models / "audio_autoencoder" / "decoder.keras",
        "audio_meta": models / "audio_autoencoder" / "meta.json",
        "image_clusterer": image_clusterer,
        "audio_clusterer": cl / "audio_brain.npz",
        "brain": cl / "brain.npz",
        "banks": banks,
    }
    manifest_path = folder / MANIFEST
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    if manifest.get("config") not in (None, run.cfg.model_dump(mode="json")):
        manifest = {}  # another configuration: start a fresh manifest rather than mix
    manifest["config"] = run.cfg.model_dump(mode="json")
    manifest.setdefault("default_seed", run.seed)
    manifest.setdefault("seeds", {})[str(run.seed)] = {
        "files": {k: {"path": str(p.relative_to(folder)), "sha256": _sha(p)} for k, p in paths.items()}
    }
    write_json(manifest_path, manifest)
    return manifest_path


def prepare_generator(run, data, force: bool = False) -> MMGA:
    """Everything generation needs for this seed (reusing finished stages), exported and reloaded
    through the public :meth:`MMGA.load`, so the notebook uses exactly what users get."""
    from mmga_helpers.evaluation import cross_modal, fit_modality_clusters
    from mmga_helpers.pipeline import latents, train_autoencoders

    image_ae, audio_ae = train_autoencoders(run, data, force)
    z = latents(run, data, image_ae, audio_ae, force)
    clusters = fit_modality_clusters(run, z, force)
    if force or not (clusters.folder / "brain.npz").is_file() or not clusters.reused:
        cross_modal(run, data, z, clusters, save_as="brain")
    export_generator(run, z, clusters, data.audio_train.frames)
    return MMGA.load(run.dir, seed=run.seed)


# -- judged scores -----------------------------------------------------------------------------------
def mean_pairwise_distance(x: np.ndarray, max_items: int = 200, seed: int = 0) -> float:
    """Mean Euclidean distance between distinct items (a seeded subsample of at most ``max_items``)."""
    from scipy.spatial.distance import pdist

    x = x.reshape(len(x), -1)
    if len(x) > max_items:
        x = x[np.random.default_rng(seed).choice(len(x), max_items, replace=False)]
    return float(pdist(x).mean()) if len(x) > 1 else float("nan")


def diversity_ratio(
    generated: np.ndarray, real: np.ndarray, gen_digits: np.ndarray, real_digits: np.ndarray
) -> float:
    """Mean over digits of (spread among one digit's generated samples) / (spread among its real
    samples): one template per digit scores 0, real-like variety scores about 1."""
    ratios = [
        mean_pairwise_distance(generated[gen_digits == d]) / mean_pairwise_distance(real[real_digits == d])
        for d in np.intersect1d(gen_digits, real_digits)
    ]
    return float(np.nanmean(ratios))


def generation_metrics(m: MMGA, data, judges, seed: int = 0, max_hear: int | None = None) -> dict[str, float]:
    """``see`` on FSDD official test clips read by the MNIST judge; ``hear`` on MNIST test images read
    by the FSDD judge; diversity of both against real samples of the same digit. The API's default
    mode is scored; ``generation.argmax.*`` scores ``hear`` with the strongest link only."""
    image_judge, audio_judge = judges
    at = data.audio_test
    seen = m.see(list(at.waves), sample_rate=m.cfg.data.fsdd.sample_rate, seed=seed)
    xt, yt = data.image_test, data.image_test_labels
    if max_hear is not None and len(xt) > max_hear:  # stratified by position: MNIST test is shuffled
        xt, yt = xt[:max_hear], yt[:max_hear]
    heard = np.stack(m.hear(xt, seed=seed))
    heard_mels = waves_to_unit_logmel(heard, m.cfg)[0][..., 0]  # the space the real ones are in
    real_mels = at.x[..., 0]
    strongest = np.stack(m.hear(xt, seed=seed, mode="argmax"))
    strongest_mels = waves_to_unit_logmel(strongest, m.cfg)[0][..., 0]
    return {
        "generation.argmax.hear_judge_acc": audio_judge.accuracy(strongest, yt),
        "generation.argmax.diversity_ratio_audio": diversity_ratio(strongest_mels, real_mels, yt, at.digits),
        "generation.see_judge_acc": image_judge.accuracy(seen, at.digits),
        "generation.hear_judge_acc": audio_judge.accuracy(heard, yt),
        "generation.diversity_ratio_image": diversity_ratio(
            seen, data.image_test[..., 0], at.digits, data.image_test_labels
        ),
        "generation.diversity_ratio_audio": diversity_ratio(heard_mels, real_mels, yt, at.digits),
    }


def write_synthetic(m: MMGA, data, folder: str | Path, per_digit: int = 5, seed: int = 0) -> list[Path]:
    """``synthetic/hear/digit<d>_<i>.wav`` from MNIST test images and ``synthetic/see/digit<d>.png``
    grids from FSDD test clips, ``per_digit`` of each digit (all written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmga_helpers.io import write_with

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    written: list[Path] = []
    labels, at = data.image_test_labels, data.audio_test
    img_idx = np.concatenate(
        [rng.choice(np.flatnonzero(labels == d), per_digit, replace=False) for d in range(10)]
    )
    clip_idx = np.concatenate(
        [rng.choice(np.flatnonzero(at.digits == d), per_digit, replace=False) for d in range(10)]
    )
    heard = m.hear(data.image_test[img_idx], seed=seed)
    for k, (i, wave) in enumerate(zip(img_idx, heard, strict=True)):
        written.append(audio.write_wav(folder / "hear" / f"digit{labels[i]}_{k % per_digit}.wav", wave))
    seen = m.see(list(at.waves[clip_idx]), seed=seed).reshape(10, per_digit, 28, 28)
    for d in range(10):
        fig, axes = plt.subplots(1, per_digit, figsize=(per_digit, 1.1))
        for ax, img in zip(np.atleast_1d(axes), seen[d], strict=True):
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
            ax.set_axis_off()
        fig.suptitle(f"seen from spoken '{d}'", fontsize=8)
        written.append(
            write_with(folder / "see" / f"digit{d}.png", lambda p, f=fig: f.savefig(p, format="png", dpi=100))
        )
        plt.close(fig)
    return written
