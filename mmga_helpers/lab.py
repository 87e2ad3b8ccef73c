"""What the notebooks import: one namespace for a chapter of the book, as d2l's chapters have theirs.

    >>> from mmga_helpers import lab
    >>> ch = lab.open_chapter(profile, config_path, output_dir, seed, models=True)
    >>> clusters = lab.fit_modality_clusters(ch.run, ch.z)

:func:`open_chapter` is the set-up every notebook repeats: the run of the parameters cell, its data,
plotly's offline renderer and, with ``models=True``, the seed's two autoencoders and latent codes
(reused when the earlier chapters trained them). Everything else here is the stage, figure or
table a chapter calls, each defined in the layer it belongs to (see the README's package map); a
notebook that needs something not listed imports it from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmga_helpers.core.config import Config, load_config
from mmga_helpers.core.inference import encode
from mmga_helpers.core.metrics import cluster_digit_counts
from mmga_helpers.core.paths import project_root
from mmga_helpers.display import figures
from mmga_helpers.display.explorer import explorer, interactive_session, zones_at
from mmga_helpers.display.views import reading_order, two_d_views
from mmga_helpers.evaluation.baselines import baseline_clusters
from mmga_helpers.evaluation.clusters import cluster_figures
from mmga_helpers.evaluation.driver import Evaluation, evaluate, record_evaluation
from mmga_helpers.evaluation.generated import generation_metrics, write_synthetic
from mmga_helpers.evaluation.handwriting import transformed_digits
from mmga_helpers.evaluation.judges import train_audio_judge, train_image_judge, train_judges
from mmga_helpers.evaluation.listener import StockListener
from mmga_helpers.evaluation.reconstruction import audio_reconstruction_metrics, image_reconstruction_metrics
from mmga_helpers.evaluation.robustness import mismatched_world
from mmga_helpers.evaluation.tables import metrics_table, scores_table, zone_share_by_threshold
from mmga_helpers.generation import MMGA
from mmga_helpers.learn.training import TrainedAutoencoder
from mmga_helpers.modalities import audio
from mmga_helpers.modalities.data import load_fsdd, load_mnist
from mmga_helpers.modalities.features import unit_logmel_to_waves
from mmga_helpers.stages.autoencoders import (
    latents,
    train_audio_autoencoder,
    train_autoencoders,
    train_image_autoencoder,
    train_unimodal_image_autoencoder,
)
from mmga_helpers.stages.clusterings import fit_modality_clusters
from mmga_helpers.stages.export import prepare_generator
from mmga_helpers.stages.linking import cross_modal
from mmga_helpers.stages.run import Data, Run, load_data, record_metrics
from mmga_helpers.stages.world import MISMATCH_FRACTION


@dataclass
class Chapter:
    """A notebook's run, its data and, when opened with ``models=True``, the seed's autoencoders
    (``image_ae``, ``audio_ae``) and the latent codes of every split (``z``)."""

    run: Run
    data: Data
    image_ae: TrainedAutoencoder | None = None
    audio_ae: TrainedAutoencoder | None = None
    z: dict[str, np.ndarray] | None = None

    @property
    def cfg(self) -> Config:
        return self.run.cfg


def open_chapter(
    profile: str = "quick",
    config_path: str = "",
    output_dir: str = "",
    seed: int = 0,
    *,
    models: bool = False,
) -> Chapter:
    """The set-up of a notebook from its parameters cell: the run and its data, plotly's offline
    renderer, and with ``models`` the autoencoders and latents (trained, or reused when an earlier
    chapter trained them). Prints one line saying what was opened. Paths (``config_path``,
    ``output_dir``, outputs, data) are taken from the project root (:func:`project_root`), so a
    kernel started in ``notebooks/``, as JupyterLab starts it, reads and writes where ``mmga run`` does."""
    figures.setup_plotly()
    run = Run.from_params(profile, config_path, output_dir, seed)
    chapter = Chapter(run, load_data(run))
    if models:
        chapter.image_ae, chapter.audio_ae = train_autoencoders(run, chapter.data)
        chapter.z = latents(run, chapter.data, chapter.image_ae, chapter.audio_ae)
    print(f"profile {run.cfg.profile} ({run.cfg.fingerprint()}), seed {seed}; outputs in {run.dir}; "
          f"data: {chapter.data.sizes()}")
    return chapter


__all__ = [
    "MISMATCH_FRACTION",
    "MMGA",
    "Chapter",
    "Evaluation",
    "StockListener",
    "audio",
    "audio_reconstruction_metrics",
    "baseline_clusters",
    "cluster_digit_counts",
    "cluster_figures",
    "cross_modal",
    "encode",
    "evaluate",
    "explorer",
    "figures",
    "fit_modality_clusters",
    "generation_metrics",
    "image_reconstruction_metrics",
    "interactive_session",
    "latents",
    "load_config",
    "load_fsdd",
    "load_mnist",
    "metrics_table",
    "mismatched_world",
    "open_chapter",
    "prepare_generator",
    "project_root",
    "reading_order",
    "record_evaluation",
    "record_metrics",
    "scores_table",
    "train_audio_autoencoder",
    "train_audio_judge",
    "train_image_autoencoder",
    "train_image_judge",
    "train_judges",
    "train_unimodal_image_autoencoder",
    "transformed_digits",
    "two_d_views",
    "unit_logmel_to_waves",
    "write_synthetic",
    "zone_share_by_threshold",
    "zones_at",
]
