"""Held-out reconstruction: how well each autoencoder rebuilds what it never trained on, measured
(pixel MSE and PSNR; log-mel MSE and spectral convergence after Griffin-Lim), read by the judges
and, for sound, heard by the stock listener nobody here trained."""

from __future__ import annotations

import numpy as np

from mmga_helpers.core.inference import encode
from mmga_helpers.evaluation.judges import Judge
from mmga_helpers.evaluation.listener import StockListener
from mmga_helpers.learn.training import TrainedAutoencoder
from mmga_helpers.modalities import audio
from mmga_helpers.modalities.features import unit_logmel_to_waves
from mmga_helpers.stages.run import Data, Run


def image_reconstruction_metrics(
    data: Data, image_ae: TrainedAutoencoder, image_judge: Judge
) -> dict[str, float]:
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


def audio_reconstruction_metrics(
    run: Run, data: Data, audio_ae: TrainedAutoencoder, audio_judge: Judge | None, listener: StockListener
) -> dict[str, float]:
    """FSDD official test: log-mel MSE (unit scale), spectral convergence after Griffin-Lim, and the
    reconstructed clips turned back into waveforms as ``hear`` turns decoded ones (with
    ``generation.audio_contrast``) read by the FSDD judge (trained on vocoded
    clips, when there is one) and heard by the stock listener; both also on the real test clips."""
    at = data.audio_test
    mel_rec = encode(audio_ae.model.autoencoder, at.x)
    waves = unit_logmel_to_waves(
        mel_rec, run.cfg, at.frames, seed=run.seed, contrast=run.cfg.generation.audio_contrast
    )
    sc = audio.spectral_convergence(at.waves, waves, run.cfg.data.fsdd)
    rate = run.cfg.data.fsdd.sample_rate
    out = {
        "audio.reconstruction.mel_mse": float(((mel_rec - at.x) ** 2).mean()),
        "audio.reconstruction.spectral_convergence": float(sc.mean()),
        "audio.reconstruction.asr_acc": listener.accuracy(waves, at.digits, rate),
        "judges.audio_test_asr_acc": listener.accuracy(at.waves, at.digits, rate),
    }
    if audio_judge is not None:
        out["audio.reconstruction.judge_acc"] = audio_judge.accuracy(waves, at.digits)
        out["judges.audio_test_acc"] = audio_judge.accuracy(at.waves, at.digits)
    return out
