"""The generation API on a tiny fake run: hear/see outputs, variety and seeds, bad inputs named in
one line, and MMGA.load refusing incomplete, changed or foreign run folders.

The fake run has untrained one-block autoencoders, k-means clusterers fitted on random latents and a
brain fitted on random cluster pairs: nothing it generates means anything, but every path from an
input to an output is the real one.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mmga_helpers.core import io as mio
from mmga_helpers.core.config import config_from_dict, profile_dict
from mmga_helpers.core.io import OutputError, read_json, write_json
from mmga_helpers.generation import MANIFEST, MMGA, LatentBank, RunFolderError
from mmga_helpers.modalities.audio import AudioError
from mmga_helpers.modalities.features import images_to_unit
from mmga_helpers.stages.export import export_generator

N_IMG, N_AUD = 3, 4  # clusters


def tiny_config():
    d = profile_dict("quick")
    for key in ("image_autoencoder", "audio_autoencoder"):
        d["model"][key].update(encoder_layers=[4], decoder_layers=[4], latent_dim=2)
    d["data"]["fsdd"]["griffin_lim_iters"] = 4
    d["model"]["image_autoencoder"]["convergence_weight"] = 0.0  # at its default: a run made before the key
    return config_from_dict(d)


def tone(freq: float = 440.0, seconds: float = 0.5, sr: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def build_fake_run(folder: Path) -> SimpleNamespace:
    """Parts of a tiny MMGA, and a run folder ``folder`` exported from them with ``export_generator``
    (also used by the benchmark tests)."""
    import keras

    from mmga_helpers.learn.brain import ConvergenceDivergenceZone
    from mmga_helpers.learn.clusterers import LatentKMeans
    from mmga_helpers.learn.models import build_autoencoder

    keras.utils.set_random_seed(0)
    cfg = tiny_config()
    rng = np.random.default_rng(0)
    img = build_autoencoder(cfg.model.image_autoencoder, "image_autoencoder")
    aud = build_autoencoder(cfg.model.audio_autoencoder, "audio_autoencoder")
    image_z, audio_z = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    audio_frames = rng.integers(4, cfg.data.fsdd.n_frames + 1, 40)
    image_km = LatentKMeans(N_IMG, n_init=2, random_state=0).fit(image_z)
    audio_km = LatentKMeans(N_AUD, n_init=2, random_state=0).fit(audio_z)
    brain = ConvergenceDivergenceZone(N_IMG, N_AUD).fit(
        rng.integers(0, N_IMG, 200), rng.integers(0, N_AUD, 200)
    )
    parts = {
        "image_encoder": img.encoder,
        "image_decoder": img.decoder,
        "audio_encoder": aud.encoder,
        "audio_decoder": aud.decoder,
        "image_clusterer": image_km,
        "audio_clusterer": audio_km,
        "brain": brain,
        # what export_generator writes: each cluster's core
        "image_bank": LatentBank(image_z.astype(np.float32), image_km.labels_).core(
            image_km.centre_distance(image_z), cfg.generation.core_fraction
        ),
        "audio_bank": LatentBank(audio_z.astype(np.float32), audio_km.labels_, audio_frames).core(
            audio_km.centre_distance(audio_z), cfg.generation.core_fraction
        ),
    }

    run = SimpleNamespace(dir=folder, seed=0, models=folder / "models" / "seed0", cfg=cfg)
    clusters = folder / "clusters" / "seed0"
    for name, ae in (("image_autoencoder", img), ("audio_autoencoder", aud)):
        (run.models / name).mkdir(parents=True)
        ae.encoder.save(run.models / name / "encoder.keras")
        ae.decoder.save(run.models / name / "decoder.keras")
        write_json(
            run.models / name / "meta.json", {"config": getattr(cfg.model, name).model_dump(mode="json")}
        )
    image_km.save(clusters / "image.npz")
    audio_km.save(clusters / "audio_brain.npz")
    brain.save(clusters / "brain.npz")
    latents = {"image_train": image_z.astype(np.float32), "audio_train": audio_z.astype(np.float32)}
    # the evaluation stage's ClusterResult, as far as export_generator reads it
    labels = SimpleNamespace(
        folder=clusters,
        ids={"image_brain_train": image_km.labels_, "audio_brain_train": audio_km.labels_},
        image_brain=image_km,
        audio_brain=audio_km,
    )
    export_generator(run, latents, labels, audio_frames)
    return SimpleNamespace(
        cfg=cfg, parts=parts, folder=folder, run=run, latents=latents, labels=labels, frames=audio_frames
    )


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> SimpleNamespace:
    return build_fake_run(tmp_path_factory.mktemp("run") / "outputs" / "quick")


@pytest.fixture
def m(fake_run) -> MMGA:
    return MMGA(fake_run.cfg, fake_run.parts, seed=0)


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


@pytest.fixture
def run_copy(fake_run, tmp_path: Path) -> Path:
    """A private copy of the exported run folder, to damage."""
    return Path(shutil.copytree(fake_run.folder, tmp_path / "quick"))


# -- outputs ---------------------------------------------------------------------------------------------
def test_hear_outputs(m: MMGA, images: np.ndarray) -> None:
    waves = m.hear(images)
    assert isinstance(waves, list) and len(waves) == len(images)
    n = m.cfg.data.fsdd.n_samples
    for w in waves:
        assert w.dtype == np.float32 and w.shape == (n,)
        assert np.isfinite(w).all() and np.abs(w).max() <= 1.0 + 1e-6
    # float images on either scale and [N, 28, 28, 1] are accepted too
    assert len(m.hear(images.astype(np.float32) / 255.0)) == 5
    assert len(m.hear(images[..., None].astype(np.float64))) == 5


def test_see_outputs(m: MMGA) -> None:
    clips = [tone(300), tone(500, 0.8), tone(700, 1.5)]
    out = m.see(clips)
    assert out.dtype == np.float32 and out.shape == (3, 28, 28)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # any sample rate, integer PCM
    pcm = (tone(400, 0.5, 16000) * 32767).astype(np.int16)
    assert m.see([pcm], sample_rate=16000).shape == (1, 28, 28)


def test_see_one_voice_votes_among_the_batch(fake_run) -> None:
    """With one_voice, the image clusters drawn are the vote, among the batch's own audio codes,
    over those the brain gives (a stray among a clip's neighbours is outvoted); a batch too small
    to ask anyone is unchanged."""
    from types import SimpleNamespace

    from mmga_helpers.learn.voices import VOTE_SHARE, neighbour_vote

    m = MMGA(fake_run.cfg, dict(fake_run.parts), seed=0)
    present = np.unique(m.parts["image_bank"].clusters)
    rng = np.random.default_rng(0)
    clips = [tone(f, 0.6) for f in np.repeat([250.0, 800.0], 30)]
    given = np.repeat(present[[0, -1]], 30)
    given[rng.choice(60, 6, replace=False)] = present[len(present) // 2]  # strays
    m._p["brain"] = SimpleNamespace(predict_image=lambda ids, mode, random_state: given[: len(ids)])
    alone = m.see_traced(clips, seed=3)
    voted = m.see_traced(clips, seed=3, one_voice=True)
    assert (alone.target == given).all()
    assert (voted.target == neighbour_vote(m.encode_waves(clips), given, VOTE_SHARE)).all()
    assert (voted.target != given).sum() > 0 and voted.outputs.shape == (60, 28, 28)
    few = m.see_traced(clips[:20], seed=3, one_voice=True)
    assert (few.target == given[:20]).all()


def test_inference_equals_keras_predict(m: MMGA, images: np.ndarray) -> None:
    """The traced inference path gives what Keras' predict gives, for any batch size."""
    from mmga_helpers.modalities.features import images_to_unit

    x = images_to_unit(images)
    ref = m._p["image_encoder"].predict_on_batch(x)
    np.testing.assert_allclose(m._run("image_encoder", x), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m._run("image_encoder", x[:2]), ref[:2], rtol=1e-5, atol=1e-5)


def test_calls_vary_and_seed_repeats(fake_run, images: np.ndarray) -> None:
    m = MMGA(fake_run.cfg, fake_run.parts, seed=0)
    clips = [tone(300), tone(600)]
    a, b = m.see(clips), m.see(clips)
    assert not np.array_equal(a, b)  # repeated calls draw other latents
    np.testing.assert_array_equal(m.see(clips, seed=7), m.see(clips, seed=7))
    h1, h2 = m.hear(images, seed=3), m.hear(images, seed=3)
    for x, y in zip(h1, h2, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(m.hear(images), m.hear(images), strict=True))
    # a fresh generator with the same seed replays the same sequence of unseeded calls
    fresh = MMGA(fake_run.cfg, fake_run.parts, seed=0)
    np.testing.assert_array_equal(fresh.see(clips), a)
    for mode in ("argmax", "sample"):
        assert m.see(clips, mode=mode).shape == (2, 28, 28)


# -- bad inputs: one line naming the offending item -----------------------------------------------------
def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg.strip(), msg
    return msg


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        (lambda x: x.__setitem__((2, 3, 4), np.nan), r"^image 2: contains NaN or inf; drop that image"),
        (lambda x: x.__setitem__((1, 0, 0), np.inf), r"^image 1: contains NaN or inf; drop that image"),
        (lambda x: x.__setitem__((4, 9, 9), -np.inf), r"^image 4: contains NaN or inf; drop that image"),
    ],
)
def test_non_finite_images(m: MMGA, damage, expect: str) -> None:
    x = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    damage(x)
    for call in (images_to_unit, m.hear):
        with pytest.raises(ValueError, match=expect) as err:
            call(x)
        _one_line(err)


@pytest.mark.parametrize(
    ("shape", "dtype", "expect"),
    [
        ((5, 27, 28), np.float32, r"shape \[N, 28, 28\].*got \(5, 27, 28\)"),
        ((28, 28), np.uint8, r"shape \[N, 28, 28\].*got \(28, 28\)"),
        ((2, 28, 28, 3), np.uint8, r"got \(2, 28, 28, 3\)"),
        ((2, 784), np.float32, r"got \(2, 784\)"),
        ((2, 28, 28), np.complex64, r"uint8 or float, got dtype complex64"),
        ((2, 28, 28), np.dtype("U1"), r"uint8 or float, got dtype <U1"),
    ],
)
def test_wrong_images(shape, dtype, expect: str) -> None:
    with pytest.raises(ValueError, match=expect) as err:
        images_to_unit(np.zeros(shape, dtype=dtype))
    _one_line(err)


@pytest.mark.parametrize(
    ("images", "expect"),
    [
        (np.zeros((5, 27, 28), np.float32), r"^image 0: no strokes found"),
        ([np.eye(28), np.zeros((300, 300, 3), np.uint8)], r"^image 1: no strokes found"),
        (np.zeros((2, 784), np.float32), r"^image 0: 2 x 784 pixels is too small"),
        (np.zeros((2, 28, 28, 2), np.uint8), r"^image 0: 2 colour channels"),
        (np.zeros((2, 28, 28), np.complex64), r"dtype complex64"),
        ([np.zeros(28)], r"^image 0: expected \[height, width\(, channels\)\], got shape \(28,\)"),
    ],
)
def test_hear_refuses_pictures_that_hold_no_digit(m: MMGA, images, expect: str) -> None:
    with pytest.raises(ValueError, match=expect) as err:
        m.hear(images)
    _one_line(err)


def test_hear_takes_pictures_of_any_size_and_polarity(m: MMGA) -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a "1"
    photo = np.full((300, 200, 3), 235, np.uint8)  # dark ink on light paper, off-centre
    photo[40:240, 30:70] = 20
    waves = m.hear([digit, photo], seed=0)
    assert len(waves) == 2 and all(w.dtype == np.float32 and np.isfinite(w).all() for w in waves)
    prepared = m.prepare_images([digit, photo])
    assert prepared.shape == (2, 28, 28, 1)
    assert np.abs(prepared[0] - prepared[1]).mean() < 0.05  # the same stroke once normalised


@pytest.mark.parametrize(
    ("bad", "expect"),
    [
        (np.zeros(0, np.float32), r"^clip 1: empty"),
        (np.zeros(4000, np.float32), r"^clip 1: silent"),
        (np.concatenate([tone(), [np.nan]]), r"^clip 1: contains NaN or inf; drop that clip"),
        (np.concatenate([tone(), [np.inf]]), r"^clip 1: contains NaN or inf; drop that clip"),
        (np.stack([tone(), tone()]), r"^clip 1: expected a 1-D waveform, got shape \(2, 4000\)$"),
    ],
)
def test_bad_clips_for_see(m: MMGA, bad: np.ndarray, expect: str) -> None:
    with pytest.raises(AudioError, match=expect) as err:
        m.see([tone(), bad, tone()])
    _one_line(err)


def test_no_clips_for_see(m: MMGA) -> None:
    with pytest.raises(AudioError, match="no clips given"):
        m.see([])


# -- MMGA.load ------------------------------------------------------------------------------------------
def test_load_exported_run(fake_run, images: np.ndarray) -> None:
    loaded = MMGA.load(fake_run.folder)
    assert loaded.cfg == fake_run.cfg and loaded.seed == 0
    original = MMGA(fake_run.cfg, fake_run.parts, seed=0)
    clips = [tone(300), tone(600)]
    np.testing.assert_allclose(loaded.see(clips, seed=1), original.see(clips, seed=1), atol=1e-6)
    np.testing.assert_allclose(
        np.stack(loaded.hear(images, seed=1)), np.stack(original.hear(images, seed=1)), atol=1e-5
    )


def test_load_refuses_folder_without_manifest(run_copy: Path, tmp_path: Path) -> None:
    (run_copy / MANIFEST).unlink()
    with pytest.raises(RunFolderError, match=rf"{run_copy} is not a finished MMGA run \(mmga.json missing\)"):
        MMGA.load(run_copy)
    with pytest.raises(RunFolderError, match=r"mmga\.json missing"):
        MMGA.load(tmp_path / "never_made")


@pytest.mark.parametrize(
    "artefact",
    ["models/seed0/image_autoencoder/encoder.keras", "clusters/seed0/brain.npz", "generator/seed0_banks.npz"],
)
def test_load_refuses_missing_artefact(run_copy: Path, artefact: str) -> None:
    (run_copy / artefact).unlink()
    with pytest.raises(RunFolderError, match=rf"artefact {artefact} is missing") as err:
        MMGA.load(run_copy)
    _one_line(err)


@pytest.mark.parametrize(
    "artefact",
    [
        "models/seed0/audio_autoencoder/decoder.keras",
        "clusters/seed0/audio_brain.npz",
        "models/seed0/image_autoencoder/meta.json",
    ],
)
def test_load_refuses_artefact_changed_after_export(run_copy: Path, artefact: str) -> None:
    path = run_copy / artefact
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(RunFolderError, match=rf"artefact {artefact} changed since the manifest") as err:
        MMGA.load(run_copy)
    _one_line(err)


def test_load_refuses_models_of_another_config(fake_run, run_copy: Path) -> None:
    """Exported consistently, but the image model's meta.json says another configuration made it."""
    run = SimpleNamespace(**{**vars(fake_run.run), "dir": run_copy, "models": run_copy / "models" / "seed0"})
    meta = run.models / "image_autoencoder" / "meta.json"
    made = read_json(meta)
    made["config"]["latent_dim"] = 16
    write_json(meta, made)
    export_generator(run, fake_run.latents, _labels_in(fake_run, run_copy), fake_run.frames)
    with pytest.raises(RunFolderError, match="made with another configuration; refused"):
        MMGA.load(run_copy)


def test_load_takes_a_run_made_before_a_key_was_added(fake_run, run_copy: Path) -> None:
    """A model whose meta.json predates a config key was made with its default (here
    ``convergence_weight``, 0 in the image section of the tiny configuration)."""
    run = SimpleNamespace(**{**vars(fake_run.run), "dir": run_copy, "models": run_copy / "models" / "seed0"})
    meta = run.models / "image_autoencoder" / "meta.json"
    made = read_json(meta)
    assert made["config"].pop("convergence_weight") == 0.0
    write_json(meta, made)
    export_generator(run, fake_run.latents, _labels_in(fake_run, run_copy), fake_run.frames)
    assert MMGA.load(run_copy).hear(np.eye(28)[None], seed=0)[0].size > 0


def _labels_in(fake_run, folder: Path) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(fake_run.labels), "folder": folder / "clusters" / "seed0"})


def test_load_unknown_seed(fake_run) -> None:
    with pytest.raises(RunFolderError, match=r"no generator for seed 5; have \['0'\]"):
        MMGA.load(fake_run.folder, seed=5)


# -- the outputs folder: unwritable, full ---------------------------------------------------------------
def test_export_into_unwritable_folder(fake_run, run_copy: Path, monkeypatch) -> None:
    # tests run as root, where chmod cannot make a folder unwritable: refuse the temporary file instead
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    before = (run_copy / MANIFEST).read_bytes()
    run = SimpleNamespace(**{**vars(fake_run.run), "dir": run_copy, "models": run_copy / "models" / "seed0"})
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=r"cannot write under .*generator: Permission denied") as err:
        export_generator(run, fake_run.latents, _labels_in(fake_run, run_copy), fake_run.frames)
    assert err.value.errno == errno.EACCES
    _one_line(err)
    monkeypatch.undo()
    assert (run_copy / MANIFEST).read_bytes() == before
    MMGA.load(run_copy)  # still a usable run


def test_export_on_full_disk_keeps_earlier_run(fake_run, run_copy: Path, monkeypatch) -> None:
    before = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    run = SimpleNamespace(**{**vars(fake_run.run), "dir": run_copy, "models": run_copy / "models" / "seed0"})
    latents = {k: v + 1.0 for k, v in fake_run.latents.items()}  # a new export would change the banks

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mio.os, "replace", full)
    with pytest.raises(OutputError, match=r"disk is full.*intact") as err:
        export_generator(run, latents, _labels_in(fake_run, run_copy), fake_run.frames)
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    after = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    assert after == before  # every earlier artefact intact, no temporary file left
    MMGA.load(run_copy)


def test_latent_bank_draws_members_of_the_target_cluster() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 4)).astype(np.float32)
    clusters = np.repeat(np.arange(5), 10)
    bank = LatentBank(z, clusters, np.arange(50) + 100)
    targets = rng.integers(0, 5, size=400)
    drawn, frames = bank.draw_with_frames(targets, np.random.default_rng(1))
    member = frames - 100  # the frames identify the member that was drawn
    np.testing.assert_array_equal(drawn, z[member])
    np.testing.assert_array_equal(clusters[member], targets)
    assert len(np.unique(member)) > 40  # repeated draws vary over the members, not one template
    with pytest.raises(RunFolderError, match=r"clusters \[7\]"):
        bank.draw(np.array([7]), rng)


def test_default_mode_draws_from_the_one_to_many_table(m, fake_run) -> None:
    """``hear``/``see`` default to drawing from the brain's table; ``mode="argmax"`` is the strongest
    link. generation_metrics scores the default and, under ``generation.argmax``, the strongest."""
    from mmga_helpers.evaluation.generated import generation_metrics
    from mmga_helpers.modalities.features import waves_to_unit_logmel

    seen_modes: list[str] = []
    brain = m._p["brain"]

    class Spy:
        def __getattr__(self, name):
            return getattr(brain, name)

        def predict_audio(self, clusters, mode="argmax", random_state=None):
            seen_modes.append(mode)
            return brain.predict_audio(clusters, mode=mode, random_state=random_state)

        def predict_image(self, clusters, mode="argmax", random_state=None):
            seen_modes.append(mode)
            return brain.predict_image(clusters, mode=mode, random_state=random_state)

    spied = MMGA(fake_run.cfg, {**fake_run.parts, "brain": Spy()}, seed=0)
    rng = np.random.default_rng(0)
    images = rng.random((6, 28, 28)).astype(np.float32)
    waves = np.stack([tone(300 + 100 * i, 1.0) for i in range(4)])
    spied.hear(images)
    spied.see(list(waves))
    spied.hear(images, mode="argmax")
    assert seen_modes == ["sample", "sample", "argmax"]
    judge = SimpleNamespace(accuracy=lambda x, y: float(len(x) == len(y)))
    data = SimpleNamespace(
        image_test=images[..., None],
        image_test_labels=np.arange(6) % 2,
        audio_test=SimpleNamespace(
            waves=waves, digits=np.arange(4) % 2, x=waves_to_unit_logmel(waves, fake_run.cfg)[0]
        ),
    )
    heard_at = []

    def listen(waves, digits, sample_rate=8000):
        heard_at.append(sample_rate)
        return 0.5 if len(waves) == len(data.audio_test.waves) else 0.25  # real clips, then heard ones

    figures = generation_metrics(spied, data, (judge, judge), SimpleNamespace(accuracy=listen), seed=0)
    assert {"generation.hear_judge_acc", "generation.argmax.hear_judge_acc",
            "generation.argmax.diversity_ratio_audio", "generation.diversity_ratio_audio"} <= figures.keys()
    assert all(np.isfinite(v) for v in figures.values())
    assert figures["generation.hear_asr_acc"] == 0.25 and heard_at == [8000, 8000]
    assert figures["generation.hear_intelligibility"] == 0.5  # heard / real


def test_exported_banks_hold_each_clusters_core(fake_run) -> None:
    """The run folder's banks hold, per cluster, the half of the training codes nearest the centre
    (``generation.core_fraction``), so ``hear``/``see`` never draw a cluster's strays."""
    banks = mio.read_npz(next((fake_run.folder / "generator").glob("seed0_banks.npz")))
    km = fake_run.parts["image_clusterer"]
    z = fake_run.latents["image_train"]
    d = km.centre_distance(z)
    for c in range(N_IMG):
        kept = banks["image_z"][banks["image_clusters"] == c]
        mine = d[km.labels_ == c]
        assert len(kept) == np.ceil(0.5 * len(mine))
        assert km.centre_distance(kept).max() <= np.median(mine) + 1e-6
    assert len(banks["audio_frames"]) == len(banks["audio_z"]) < len(fake_run.latents["audio_train"])


def test_latent_bank_core_keeps_each_clusters_nearest_members() -> None:
    """``core`` keeps, per cluster, the ``fraction`` of members with the smallest distance (at least
    one), with their frames; a bad fraction or a distance of the wrong length is refused."""
    clusters = np.array([0] * 10 + [1] * 4 + [2])
    distance = np.r_[np.arange(10)[::-1], [3.0, 1.0, 2.0, 0.0], [9.0]]
    z = np.arange(15, dtype=np.float32)[:, None]
    bank = LatentBank(z, clusters, np.arange(15) + 100).core(distance, 0.5)
    np.testing.assert_array_equal(np.sort(bank.frames - 100), [5, 6, 7, 8, 9, 11, 13, 14])
    np.testing.assert_array_equal(bank.z[:, 0], bank.frames - 100)  # codes and frames stay paired
    drawn = bank.draw(np.repeat([0, 1, 2], 200), np.random.default_rng(0))[:, 0]
    assert set(drawn[:200]) == {5, 6, 7, 8, 9} and set(drawn[200:400]) == {11, 13}
    assert set(drawn[400:]) == {14}
    assert len(LatentBank(z, clusters).core(distance, 1.0).z) == 15
    with pytest.raises(ValueError, match="fraction"):
        LatentBank(z, clusters).core(distance, 0.0)
    with pytest.raises(ValueError, match="15 members"):
        LatentBank(z, clusters).core(distance[:3], 0.5)
