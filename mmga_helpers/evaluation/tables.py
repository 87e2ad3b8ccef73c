"""Tables of figures: the metrics table (MMGA, the baseline and the target per figure), the
clustering scores, and the share of convergence zones by threshold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mmga_helpers.core.metrics import flatten
from mmga_helpers.learn.brain import ConvergenceDivergenceZone

# What the full profile aims for (the README's targets); the tables show them next to the figures.
TARGETS: dict[str, str] = {
    "image.reconstruction.mse": "<= 0.010",
    "image.reconstruction.judge_acc": ">= 0.95",
    "audio.reconstruction.judge_acc": ">= 0.85",
    "judges.image_test_acc": ">= 0.98",
    "judges.audio_test_acc": ">= 0.97",
    "image.cluster.acc": ">= 0.97",
    "audio.cluster.acc": ">= 0.70",
    "cross_modal.image_to_audio_acc": ">= 0.97",
    "cross_modal.audio_to_image_acc": ">= 0.97",
    "cross_modal.speaker_holdout_audio_to_image_acc": ">= 0.90",
    "cross_modal.mismatch20.image_to_audio_drop": "<= 0.02",
    "cross_modal.mismatch20.audio_to_image_drop": "<= 0.02",
    "generation.see_judge_acc": ">= 0.95",
    "generation.hear_judge_acc": ">= 0.90",
    "generation.hear_intelligibility": ">= 0.95",
    "generation.diversity_ratio_image": ">= 0.5",
    "generation.diversity_ratio_audio": ">= 0.5",
    "generation.speaker_holdout_see_judge_acc": ">= 0.88",
    "image.robustness.mean": ">= 0.90",
    "image.robustness.worst": ">= 0.80",
}


def _fmt(stat: Any) -> str:
    if isinstance(stat, Mapping):
        mean, std, n = stat.get("mean"), stat.get("std"), stat.get("n_seeds", 1)
        if mean is None or not np.isfinite(mean):
            return "-"
        return f"{mean:.3f} ± {std:.3f}" if n and n > 1 else f"{mean:.3f}"
    if stat is None or (isinstance(stat, float) and not np.isfinite(stat)):
        return "-"
    return f"{float(stat):.3f}"


def metrics_table(figures: Mapping[str, Any]) -> pd.DataFrame:
    """One row per figure: MMGA (mean ± sample std over seeds, ddof=1), the baseline's value where
    there is one, and the target. ``figures`` is flat (one seed's floats or ``{key: mean_std}``) or
    a metrics.json."""
    flat = dict(figures)
    if "run" in flat or any(isinstance(v, Mapping) and "mean" not in v for v in flat.values()):
        nested = {k: v for k, v in flat.items() if k != "run"}
        flat = {}
        for key, value in flatten(nested).items():
            head, _, leaf = key.rpartition(".")
            if leaf in ("mean", "std", "n_seeds"):
                flat.setdefault(head, {})[leaf] = value
            else:
                flat[key] = value
    rows = []
    for key in sorted(k for k in flat if not k.startswith("baseline.")):
        if key.startswith(("image.reconstruction", "audio.reconstruction", "judges.")):
            continue
        rows.append(
            {
                "figure": key,
                "MMGA": _fmt(flat[key]),
                "baseline": _fmt(flat.get(f"baseline.{key}")),
                "target": TARGETS.get(key, ""),
            }
        )
    return pd.DataFrame(rows, columns=["figure", "MMGA", "baseline", "target"]).set_index("figure")


def scores_table(figures: Mapping[str, float]) -> pd.DataFrame:
    """Clustering scores: rows image/audio/joint, columns ACC/NMI/ARI/silhouette, MMGA vs baseline."""
    rows = []
    for who, prefix in (("MMGA", ""), ("baseline", "baseline.")):
        for modality in ("image", "audio", "joint"):
            vals = {
                m: figures.get(f"{prefix}{modality}.cluster.{m}") for m in ("acc", "nmi", "ari", "silhouette")
            }
            if all(v is None for v in vals.values()):
                continue
            rows.append(
                {
                    "modality": modality,
                    "method": who,
                    **{k: np.nan if v is None else v for k, v in vals.items()},
                }
            )
    return pd.DataFrame(rows).set_index(["modality", "method"]).sort_index().round(3)


def zone_share_by_threshold(brain: ConvergenceDivergenceZone, thresholds: ArrayLike) -> pd.DataFrame:
    """Share of each modality's clusters that are convergence zones, for every threshold."""
    rows = []
    for thr in np.asarray(thresholds, dtype=float):
        zones = brain.zones(float(thr))
        for modality, part in zones.groupby("modality"):
            rows.append(
                {
                    "threshold": float(thr),
                    "modality": modality,
                    "convergence_share": float((part["zone"] == "convergence").mean()),
                }
            )
        pairs = brain.pair_zones(float(thr))
        rows.append(
            {
                "threshold": float(thr),
                "modality": "pairs",
                "convergence_share": float((pairs["zone"] == "convergence").mean()),
            }
        )
    return pd.DataFrame(rows)
