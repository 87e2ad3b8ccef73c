"""Clusters, scored: each modality's clusters on its held-out split (ACC, NMI, ARI against the
digits, silhouette of the codes), and the joint clustering of co-occurring (image, audio) pairs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mmga_helpers.core.metrics import cluster_scores
from mmga_helpers.core.pairs import cooccurring_pairs
from mmga_helpers.core.stamps import array_stamp
from mmga_helpers.learn.clustering import JointClustering
from mmga_helpers.stages.clusterings import ClusterResult, cached_model, cluster_folder
from mmga_helpers.stages.world import train_pairs

if TYPE_CHECKING:
    from mmga_helpers.stages.run import Data, Run


def cluster_figures(
    data: Data, z: Mapping[str, NDArray], clusters: ClusterResult, prefix: str = ""
) -> dict[str, float]:
    """``{prefix}image.cluster.*`` on MNIST test and ``{prefix}audio.cluster.*`` on FSDD test
    (ACC, NMI, ARI against the digits; silhouette of the test assignments on the test latents)."""
    out: dict[str, float] = {}
    for modality, digits in (("image", data.image_test_labels), ("audio", data.audio_test.digits)):
        scores = cluster_scores(digits, clusters.ids[f"{modality}_test"], z[f"{modality}_test"])
        out.update({f"{prefix}{modality}.cluster.{k}": v for k, v in scores.items()})
    return out


def joint_figures(
    run: Run, data: Data, z: Mapping[str, NDArray], *, force: bool = False
) -> dict[str, float]:
    """Cluster (image, audio) latent pairs together: fitted on co-occurring training pairs, scored on
    co-occurring pairs of MNIST test x FSDD test labelled by the digit they share."""
    cc = run.cfg.model.clustering
    ii, ai = train_pairs(data.image_train_labels, data.audio_train.digits, run.seed)
    stamp = array_stamp(
        z["image_train"],
        z["audio_train"],
        ii,
        ai,
        extra={"clustering": cc.model_dump(mode="json"), "seed": run.seed},
    )

    def fit() -> JointClustering:
        joint = JointClustering(
            cc.n_clusters,
            cc.algorithm,
            random_state=run.seed,
            umap_n_components=cc.umap_n_components,
            umap_n_neighbors=cc.umap_n_neighbors,
        )
        return joint.fit(z["image_train"][ii], z["audio_train"][ai])

    joint, _ = cached_model(cluster_folder(run), "joint", stamp, fit, force)
    ti, ta = cooccurring_pairs(
        data.image_test_labels,
        data.audio_test.digits,
        len(data.image_test),
        random_state=np.random.default_rng([run.seed, 7]),
    )
    pred = joint.predict(z["image_test"][ti], z["audio_test"][ta])
    scores = cluster_scores(data.image_test_labels[ti], pred)
    return {f"joint.cluster.{k}": scores[k] for k in ("acc", "nmi", "ari")}
