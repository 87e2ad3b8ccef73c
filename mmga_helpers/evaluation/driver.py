"""The evaluation driver: every figure of merit of a seed (:func:`evaluate`) and its record in
``metrics.json`` (:func:`record_evaluation`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mmga_helpers.core.inference import encode
from mmga_helpers.core.io import read_json, write_json
from mmga_helpers.core.machine import machine
from mmga_helpers.evaluation.baselines import baseline_figures
from mmga_helpers.evaluation.clusters import cluster_figures, joint_figures
from mmga_helpers.evaluation.handwriting import handwriting_figures
from mmga_helpers.evaluation.holdout import (
    holdout_images,
    recalled_accuracy,
    speaker_holdout,
    speaker_holdout_see,
)
from mmga_helpers.evaluation.judges import train_image_judge
from mmga_helpers.evaluation.robustness import cross_modal_figures, mismatched_world
from mmga_helpers.learn.training import TrainedAutoencoder
from mmga_helpers.stages.clusterings import cluster_folder, fit_modality_clusters
from mmga_helpers.stages.run import Data, Run, record_metrics, stage_timer


@dataclass
class Evaluation:
    """What :func:`evaluate` computed besides the flat figures: timings, per-speaker hold-out."""

    wall_time_s: dict[str, float] = field(default_factory=dict)
    speaker_holdout: dict[str, float] = field(default_factory=dict)
    speaker_holdout_plain: dict[str, float] = field(default_factory=dict)  # no voice normalisation
    speaker_holdout_unvoted: dict[str, float] = field(default_factory=dict)  # normalised, no voice vote
    speaker_holdout_see_unvoted: dict[str, float] = field(default_factory=dict)
    speaker_holdout_vote_only: dict[str, float] = field(default_factory=dict)  # vote, not normalised
    baseline_speaker_holdout: dict[str, float] = field(default_factory=dict)
    speaker_holdout_see: dict[str, float] = field(default_factory=dict)
    cluster_sizes: dict[str, int] = field(default_factory=dict)

    def as_info(self) -> dict[str, Any]:
        return {
            "wall_time_s": self.wall_time_s,
            "speaker_holdout_audio_to_image_acc": self.speaker_holdout,
            "speaker_holdout_without_voice_normalize_audio_to_image_acc": self.speaker_holdout_plain,
            "speaker_holdout_without_voice_vote_audio_to_image_acc": self.speaker_holdout_unvoted,
            "speaker_holdout_vote_without_voice_normalize_audio_to_image_acc": self.speaker_holdout_vote_only,
            "speaker_holdout_see_judge_acc": self.speaker_holdout_see,
            "speaker_holdout_see_without_voice_vote_judge_acc": self.speaker_holdout_see_unvoted,
            "baseline_speaker_holdout_audio_to_image_acc": self.baseline_speaker_holdout,
            "clusters": self.cluster_sizes,
        }


def _timed(timings: dict[str, float], name: str, fn: Callable[..., dict[str, float]], *args: Any,
           **kwargs: Any) -> dict[str, float]:
    with stage_timer(timings, name):
        return fn(*args, **kwargs)


def evaluate(
    run: Run,
    data: Data,
    z: Mapping[str, NDArray],
    image_ae: TrainedAutoencoder | None = None,
    *,
    loso: bool | None = None,
    force: bool = False,
    baselines: bool | None = None,
    soft: bool = False,
    image_brain_clusters: int | None = None,
    details: Evaluation | None = None,
) -> dict[str, float]:
    """Every figure of merit of this seed as flat keys (``image.cluster.acc``, ...,
    ``baseline.cross_modal.speaker_holdout_audio_to_image_acc``).

    ``loso`` runs the leave-one-speaker-out test (six audio autoencoder trainings the first time)
    and ``baselines`` the baselines; None (the default) follows ``evaluation.speaker_holdout`` and
    ``evaluation.baselines`` of the config. ``details`` (an :class:`Evaluation`) receives wall
    times per stage and per-speaker values.
    ``image_ae`` encodes the images when ``z`` lacks them. ``soft`` recalls through mixture
    posteriors; ``image_brain_clusters`` over-clusters the images for the brain.
    """
    info = details if details is not None else Evaluation()
    t = info.wall_time_s
    loso = run.cfg.evaluation.speaker_holdout if loso is None else loso
    baselines = run.cfg.evaluation.baselines if baselines is None else baselines
    z = dict(z)
    if image_ae is not None:
        for split in ("train", "test"):
            if f"image_{split}" not in z:
                z[f"image_{split}"] = encode(image_ae.model.encoder, getattr(data, f"image_{split}"))
    out: dict[str, float] = {}
    with stage_timer(t, "clusters"):
        clusters = fit_modality_clusters(run, z, force=force, image_brain_clusters=image_brain_clusters)
        out.update(cluster_figures(data, z, clusters))
    info.cluster_sizes = clusters.sizes
    # the handwriting suite (numpy and scipy, which let go of the GIL) and the joint clustering (UMAP's
    # seeded layout, one thread) are independent: one core each
    with ThreadPoolExecutor(max_workers=1) as pool:
        hand = None
        if image_ae is not None:
            hand = pool.submit(
                _timed, t, "handwriting", handwriting_figures,
                image_ae.model.encoder, clusters.image, clusters.ids["image_train"], data, seed=run.seed,
            )
        with stage_timer(t, "joint"):
            joint = joint_figures(run, data, z, force=force)
        if hand is not None:
            out.update(hand.result())
    out.update(joint)
    noisy_world = None
    noisy = run.cfg.evaluation.mismatched_world
    if noisy and run.audio_feedback:
        with stage_timer(t, "mismatched_world"):
            noisy_world = mismatched_world(run, data, z, clusters, force=force)
    with stage_timer(t, "brain"):
        out.update(
            cross_modal_figures(run, data, z, clusters, soft=soft, noisy_world=noisy_world, noisy=noisy)
        )
    if loso:
        recalled: dict[str, tuple[NDArray, NDArray]] = {}
        # with voice normalisation, the ablation without it on the same fold models and codes
        plain = info.speaker_holdout_plain if run.cfg.evaluation.voice_normalize else None
        # with the voice vote, the recall before it (the ablation, from the same clusters)
        unvoted = {} if run.cfg.evaluation.voice_vote > 0 else None
        plain_voted = info.speaker_holdout_vote_only if unvoted is not None and plain is not None else None
        with stage_timer(t, "speaker_holdout"):
            images = holdout_images(run, data, z, clusters, image_ae)
            info.speaker_holdout = speaker_holdout(
                run, data, clusters, force=force, soft=soft, recalled=recalled, images=images, plain=plain,
                unvoted=unvoted, plain_voted=plain_voted,
            )
        out["cross_modal.speaker_holdout_audio_to_image_acc"] = float(
            np.mean(list(info.speaker_holdout.values()))
        )
        if plain:
            out["ablation.speaker_holdout_without_voice_normalize_audio_to_image_acc"] = float(
                np.mean(list(plain.values()))
            )
        if plain_voted:
            out["ablation.speaker_holdout_vote_without_voice_normalize_audio_to_image_acc"] = float(
                np.mean(list(plain_voted.values()))
            )
        if unvoted:
            info.speaker_holdout_unvoted = recalled_accuracy(images, data.image_train_labels, unvoted)
            out["ablation.speaker_holdout_without_voice_vote_audio_to_image_acc"] = float(
                np.mean(list(info.speaker_holdout_unvoted.values()))
            )
        if image_ae is not None:
            with stage_timer(t, "speaker_holdout_see"):
                judge = train_image_judge(run)
                info.speaker_holdout_see = speaker_holdout_see(run, images, judge, recalled)
                if unvoted:
                    info.speaker_holdout_see_unvoted = speaker_holdout_see(run, images, judge, unvoted)
            out["generation.speaker_holdout_see_judge_acc"] = float(
                np.mean(list(info.speaker_holdout_see.values()))
            )
            if unvoted:
                out["ablation.speaker_holdout_see_without_voice_vote_judge_acc"] = float(
                    np.mean(list(info.speaker_holdout_see_unvoted.values()))
                )
    if baselines:
        with stage_timer(t, "baselines"):
            figs, info.baseline_speaker_holdout = baseline_figures(
                run, data, force=force, loso=loso, image_brain_clusters=image_brain_clusters
            )
        out.update(figs)
    return out


def record_evaluation(
    run: Run, data: Data, figures: Mapping[str, float], details: Evaluation
) -> dict[str, Any]:
    """Record this seed's figures in ``metrics_per_seed.json``/``metrics.json`` with the run's
    description (wall times, data sizes, machine) and per-seed details kept under ``per_seed``."""
    path = run.dir / "metrics.json"
    old = read_json(path).get("run", {}) if path.is_file() else {}
    per_seed = {**old.get("per_seed", {}), str(run.seed): details.as_info()}
    write_json(cluster_folder(run) / "evaluation.json", {"figures": dict(figures), **details.as_info()})
    info = {
        "wall_time_s": details.wall_time_s,
        "data_sizes": data.sizes(),
        "seeds": list(run.cfg.seeds),
        "machine": machine(),
        "per_seed": per_seed,
    }
    return record_metrics(run, dict(figures), info=info)
