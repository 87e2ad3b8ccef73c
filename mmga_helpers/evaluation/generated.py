"""Generated samples, judged: ``see`` on FSDD test clips read by the MNIST judge, ``hear`` on
MNIST test images heard by the stock listener (and read by the FSDD judge, which trained on vocoded
clips), the diversity of both against real samples of the same digit, and the synthetic files a
reader can open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist

from mmga_helpers.core.io import write_with
from mmga_helpers.evaluation.judges import Judge
from mmga_helpers.evaluation.listener import StockListener
from mmga_helpers.generation import MMGA
from mmga_helpers.modalities import audio
from mmga_helpers.modalities.features import waves_to_unit_logmel
from mmga_helpers.stages.run import Data


def mean_pairwise_distance(x: np.ndarray, max_items: int = 200, seed: int = 0) -> float:
    """Mean Euclidean distance between distinct items (a seeded subsample of at most ``max_items``)."""
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


def generation_metrics(
    m: MMGA,
    data: Data,
    judges: tuple[Judge, Judge | None],
    listener: StockListener,
    *,
    seed: int = 0,
    max_hear: int | None = None,
) -> dict[str, float]:
    """``see`` on FSDD official test clips read by the MNIST judge; ``hear`` on MNIST test images
    heard by the stock listener (``generation.hear_asr_acc``, and over its reading of the real test
    clips, ``generation.hear_intelligibility``) and read by the FSDD judge (when the profile has
    one); diversity of both
    against real samples of the same digit. The API's default mode is scored;
    ``generation.argmax.*`` scores ``hear`` with the strongest link only."""
    image_judge, audio_judge = judges
    rate = m.cfg.data.fsdd.sample_rate
    at = data.audio_test
    seen = m.see(list(at.waves), sample_rate=rate, seed=seed)
    xt, yt = data.image_test, data.image_test_labels
    if max_hear is not None and len(xt) > max_hear:  # stratified by position: MNIST test is shuffled
        xt, yt = xt[:max_hear], yt[:max_hear]
    heard = np.stack(m.hear(xt, seed=seed))
    heard_mels = waves_to_unit_logmel(heard, m.cfg)[0][..., 0]  # the space the real ones are in
    real_mels = at.x[..., 0]
    strongest = np.stack(m.hear(xt, seed=seed, mode="argmax"))
    strongest_mels = waves_to_unit_logmel(strongest, m.cfg)[0][..., 0]
    real_asr = listener.accuracy(at.waves, at.digits, rate)
    hear_asr = listener.accuracy(heard, yt, rate)
    out = {
        "generation.hear_asr_acc": hear_asr,
        "generation.hear_intelligibility": hear_asr / real_asr if real_asr > 0 else float("nan"),
        "generation.argmax.diversity_ratio_audio": diversity_ratio(strongest_mels, real_mels, yt, at.digits),
        "generation.see_judge_acc": image_judge.accuracy(seen, at.digits),
        "generation.diversity_ratio_image": diversity_ratio(
            seen, data.image_test[..., 0], at.digits, data.image_test_labels
        ),
        "generation.diversity_ratio_audio": diversity_ratio(heard_mels, real_mels, yt, at.digits),
    }
    if audio_judge is not None:
        out["generation.argmax.hear_judge_acc"] = audio_judge.accuracy(strongest, yt)
        out["generation.hear_judge_acc"] = audio_judge.accuracy(heard, yt)
    return out


def write_synthetic(
    m: MMGA, data: Data, folder: str | Path, *, per_digit: int = 5, seed: int = 0
) -> list[Path]:
    """``synthetic/hear/digit<d>_<i>.wav`` from MNIST test images and ``synthetic/see/digit<d>.png``
    grids from FSDD test clips, ``per_digit`` of each digit (all written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
