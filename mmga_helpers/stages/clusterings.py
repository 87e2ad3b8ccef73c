"""Cached clusterings: every clusterer and brain of a seed lives under
``outputs/<profile>/clusters/seed<s>/`` (``.npz``, no pickle) with a stamp of the codes that made it;
a rerun with the same codes loads it instead of fitting again.

Clusterers get latent codes only, never a digit label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mmga_helpers.core.config import ClusteringConfig, Modality
from mmga_helpers.core.io import read_json, read_npz, write_json, write_npz
from mmga_helpers.core.stamps import array_stamp
from mmga_helpers.learn.clusterers import UmapGMM
from mmga_helpers.learn.clustering import Clusterer, load_clusterer, make_clusterer

if TYPE_CHECKING:
    from mmga_helpers.stages.run import Run

LATENT_SPLITS = ("image_train", "image_test", "audio_train", "audio_test")
STAMPS_FILE = "stamps.json"


def cluster_folder(run: Run) -> Path:
    """``outputs/<profile>/clusters/seed<s>``: every clusterer and brain of this seed."""
    return run.cfg.cluster_dir(run.root) / f"seed{run.seed}"


def _stamps(folder: Path) -> dict[str, str]:
    path = folder / STAMPS_FILE
    return read_json(path) if path.is_file() else {}


def _set_stamp(folder: Path, name: str, stamp: str) -> None:
    stamps = _stamps(folder)
    stamps[name] = stamp
    write_json(folder / STAMPS_FILE, stamps)


def cached_model(
    folder: Path, name: str, stamp: str, fit: Callable[[], Any], force: bool = False
) -> tuple[Any, bool]:
    """``folder/name.npz`` when it was made from inputs with this ``stamp``; otherwise ``fit()``,
    save and stamp it. Returns ``(model, reused)``."""
    path = folder / f"{name}.npz"
    if not force and path.is_file() and _stamps(folder).get(name) == stamp:
        return load_clusterer(path), True
    model = fit()
    model.save(path)
    _set_stamp(folder, name, stamp)
    return model, False


@dataclass
class ClusterResult:
    """The fitted clusterers of one seed and the cluster id of every train and test item.

    ``image`` and ``audio`` have ``n_clusters`` clusters (scored against the digits);
    ``image_brain`` and ``audio_brain`` are the ones the brain links: the audio side over-clustered
    to ``audio_n_clusters`` (one digit, several voices), the image side ``image`` itself unless an
    over-clustering was asked for (``image_brain.npz`` is written either way).
    ``ids[f"{model}_{split}"]`` holds the ids, e.g. ``ids["audio_brain_test"]``.
    """

    image: Clusterer
    audio: Clusterer
    audio_brain: Clusterer
    image_brain: Clusterer
    ids: dict[str, NDArray[np.int64]]
    folder: Path
    stamp: str
    reused: bool = False
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def n_image_brain(self) -> int:
        return int(self.image_brain.n_clusters)

    @property
    def n_audio_brain(self) -> int:
        return int(self.audio_brain.n_clusters)


def _cluster_params(run: Run, algorithm: str) -> dict[str, Any]:
    cc = run.cfg.model.clustering
    return {"algorithm": algorithm, "clustering": cc.model_dump(mode="json"), "seed": run.seed}


def cached_clusterer(
    run: Run,
    name: str,
    x: NDArray,
    k: int,
    *,
    modality: Modality,
    force: bool = False,
    algorithm: str | None = None,
    fit: Callable[[], Clusterer] | None = None,
) -> tuple[Clusterer, bool]:
    """``<cluster folder>/<name>.npz``: ``k`` clusters of ``algorithm`` (default: the config's)
    fitted on ``x``, the codes of ``modality``, or reused when made from the same ``x``, clustering
    config, seed and ``k``. One stamp for every caller, so that a model fitted by one stage is the
    one the next reuses.
    ``fit`` replaces the fitting (the stamp stays). Returns ``(model, reused)``."""
    cc = run.cfg.model.clustering
    algo = algorithm or cc.algorithm
    folder = cluster_folder(run)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = array_stamp(x, extra={**_cluster_params(run, algo), "k": k})
    if fit is None:
        fit = lambda: make_clusterer(algo, k, cc, run.seed, modality=modality).fit(x)  # noqa: E731
    return cached_model(folder, name, stamp, fit, force)


def finer_fit(
    run: Run, base: Clusterer, x: NDArray, k: int, algorithm: str, modality: Modality, **mixture: Any
) -> Callable[[], Clusterer]:
    """How to fit ``k`` clusters of the codes ``x`` that ``base`` (of ``algorithm``) clustered: for
    UMAP+GMM a new mixture on ``base``'s embedding
    (:meth:`~mmga_helpers.learn.clusterers.UmapGMM.with_clusters`; ``mixture`` overrides its
    starts and choice), otherwise a fit of the same algorithm."""
    if isinstance(base, UmapGMM):
        return lambda: base.with_clusters(k, **mixture)
    cc = run.cfg.model.clustering
    return lambda: make_clusterer(algorithm, k, cc, run.seed, modality=modality).fit(x)


def taught_clusterer(
    run: Run, name: str, x: NDArray, base: Clusterer, *, modality: Modality, force: bool = False
) -> Clusterer:
    """The clusters of the codes ``x`` that the partner modality's convergence head learns:
    ``base`` (the ``n_clusters`` clustering of ``x``, saved as ``name``) itself, or with
    ``model.clustering.convergence_clusters`` above it, a finer clustering ``<name>_taught`` on the
    same embedding. Finer clusters are purer: when ``base`` merges two digits, the partner is not
    taught to merge them too. One start of the mixture: their sizes need not be even."""
    cc = run.cfg.model.clustering
    k = cc.taught_clusters
    if k == cc.n_clusters:
        return base
    fit = finer_fit(run, base, x, k, cc.algorithm, modality, mixture_starts=1, mixture_choice="likeliest")
    return cached_clusterer(run, f"{name}_taught", x, k, modality=modality, force=force, fit=fit)[0]


def image_clusterer(
    run: Run, z_image_train: NDArray, *, force: bool = False, unimodal: bool = False
) -> Clusterer:
    """The image clustering of this seed (``image.npz``), fitted on the training images' codes or
    reused: the model :func:`fit_modality_clusters` fits, so the audio autoencoder's convergence
    targets and the clustering stage agree. ``unimodal`` (with image feedback): the clusters of the
    first-pass image autoencoder's codes (``image_unimodal.npz``), which the audio head learns."""
    name = "image_unimodal" if unimodal else "image"
    k = run.cfg.model.clustering.n_clusters
    return cached_clusterer(run, name, z_image_train, k, modality="image", force=force)[0]


def fit_modality_clusters(
    run: Run,
    z: Mapping[str, NDArray],
    *,
    force: bool = False,
    algorithm: str | None = None,
    image_brain_clusters: int | None = None,
    prefix: str = "",
) -> ClusterResult:
    """Cluster each modality's training latents (never a label) and assign every split.

    ``algorithm`` defaults to ``model.clustering.algorithm``; the baselines pass ``"kmeans"`` and
    ``prefix="baseline_"``. ``image_brain_clusters`` (default: ``n_clusters``, no extra model)
    over-clusters the images for the brain, as the audio side is with ``audio_n_clusters``.
    """
    cc: ClusteringConfig = run.cfg.model.clustering
    algo = algorithm or cc.algorithm
    k_img_brain = image_brain_clusters or cc.n_clusters
    missing = [s for s in LATENT_SPLITS if s not in z]
    if missing:
        raise ValueError(f"latents lack the splits {missing}")
    folder = cluster_folder(run)
    params = _cluster_params(run, algo)
    jobs = {
        "image": ("image_train", cc.n_clusters),
        "audio": ("audio_train", cc.n_clusters),
        "audio_brain": ("audio_train", cc.audio_n_clusters),
        "image_brain": ("image_train", k_img_brain),
    }
    models: dict[str, Clusterer] = {}
    reused = []
    for name, (split, k) in jobs.items():
        modality: Modality = "audio" if name.startswith("audio") else "image"
        fit = None
        if name == "image_brain" and k == cc.n_clusters:
            # no over-clustering: the brain links the image clusters themselves; the copy under
            # this name keeps image_brain.npz (read by generation) in step with them
            fit = lambda: models["image"]  # noqa: E731
        elif name.endswith("_brain"):  # the modality's over-clustering, on its clustering's embedding
            fit = finer_fit(run, models[modality], z[split], k, algo, modality)
        models[name], was = cached_clusterer(
            run, prefix + name, z[split], k, modality=modality, force=force, algorithm=algo, fit=fit
        )
        reused.append(was)
    if k_img_brain == cc.n_clusters:
        models["image_brain"] = models["image"]

    stamp = array_stamp(*(z[s] for s in LATENT_SPLITS), extra={**params, "k_img_brain": k_img_brain})
    ids_path = folder / f"{prefix}clusters.npz"
    ids: dict[str, NDArray[np.int64]] = {}
    if not force and all(reused) and ids_path.is_file():
        stored = read_npz(ids_path)
        if str(stored.pop("stamp", "")) == stamp:
            ids = {k: v.astype(np.int64) for k, v in stored.items()}
    if not ids:
        for name, model in models.items():
            modality = name.split("_")[0]
            for split in ("train", "test"):
                same = name == "image_brain" and model is models["image"]
                pred = ids[f"image_{split}"] if same else model.predict(z[f"{modality}_{split}"])
                ids[f"{name}_{split}"] = np.asarray(pred, np.int64)
        write_npz(ids_path, stamp=np.array(stamp), **ids)
    sizes = {name: int(m.n_clusters) for name, m in models.items()}
    return ClusterResult(
        models["image"],
        models["audio"],
        models["audio_brain"],
        models["image_brain"],
        ids,
        folder,
        stamp,
        reused=all(reused),
        sizes=sizes,
    )
