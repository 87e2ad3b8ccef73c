"""Bring your own corpus: a folder of ``{digit}_{speaker}_{index}.wav`` clips at any rate loads like
FSDD through the pipeline's loader, under a sha256 manifest written on first use and checked after."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from mmga_helpers.core.config import Config, ConfigError, config_from_dict, profile_dict
from mmga_helpers.modalities import corpus
from mmga_helpers.modalities.data import FSDD, DataError
from mmga_helpers.modalities.features import fsdd_split
from mmga_helpers.tools.cli import app

RATES = {"ann": 48000, "bob": 48000, "cy": 44100}  # cy: another rate, and stereo
INDICES = range(6)
SECONDS = 0.2


def tone_hz(digit: int) -> float:
    return 500.0 + 100.0 * digit  # digit 5: 1 kHz


def clip(freq: float, sr: int, seed: int, channels: int = 1) -> np.ndarray:
    """A tone burst with a little noise, between short silences."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(SECONDS * sr)) / sr
    burst = 0.5 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))
    wave = np.concatenate([np.zeros(sr // 20), burst, np.zeros(sr // 20)]).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def build_corpus(folder: Path) -> Path:
    """10 digits x 3 speakers x 6 recordings (180 clips), named as FSDD's are."""
    folder.mkdir(parents=True)
    for s, (speaker, sr) in enumerate(RATES.items()):
        for digit in range(10):
            for index in INDICES:
                seed = 1000 * s + 10 * digit + index
                wave = clip(tone_hz(digit), sr, seed, channels=1 if sr == 48000 else 2)
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", wave, sr, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("corpus") / "clips")


@pytest.fixture
def folder(pristine: Path, tmp_path: Path, offline) -> Path:
    """A fresh, writable copy of the corpus, in a private project (``offline``: no downloads)."""
    copy_dir = tmp_path / "mine"
    copy_dir.mkdir()
    for wav in pristine.iterdir():
        (copy_dir / wav.name).write_bytes(wav.read_bytes())
    return copy_dir


def cfg_with(**fsdd: Any) -> Config:
    data = copy.deepcopy(profile_dict("quick"))
    data["data"]["fsdd"].update(fsdd)
    return config_from_dict(data, "test.yaml")


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# -- loading through the pipeline --------------------------------------------------------------------------
def test_own_corpus_loads_like_fsdd(folder: Path, tmp_path: Path) -> None:
    cfg = cfg_with(source=str(folder))
    fs = cfg.data.fsdd
    assert not (folder / corpus.MANIFEST_NAME).exists()
    train = fsdd_split(cfg, "train", tmp_path / "cache")
    test = fsdd_split(cfg, "test", tmp_path / "cache")
    manifest = folder / corpus.MANIFEST_NAME
    assert manifest.is_file()  # written on first use, in sha256sum's format
    assert len(manifest.read_text().splitlines()) == 180
    assert (len(train), len(test)) == (30, 150)  # recordings 0-4 are test, as in FSDD
    assert train.x.shape == (30, fs.n_mels, fs.n_frames, 1) and train.waves.shape == (30, fs.n_samples)
    assert set(train.indices.tolist()) == {5} and set(test.indices.tolist()) == {0, 1, 2, 3, 4}
    assert sorted(set(test.speakers.tolist())) == sorted(RATES)  # speakers come from the files
    assert np.bincount(train.digits, minlength=10).tolist() == [3] * 10
    # a 1 kHz tone at 48 kHz has its energy at 1 kHz at 8 kHz: the loudest mel band is 1 kHz's
    centres = librosa.mel_frequencies(fs.n_mels + 2, fmax=fs.sample_rate / 2)[1:-1]
    loudest = centres[train.x[train.digits == 5, :, :, 0].mean(axis=(0, 2)).argmax()]
    assert 900 < loudest < 1100
    # cached, keyed by the manifest: a second load is the same arrays
    assert len(list((tmp_path / "cache").glob("fsdd_train_*.npz"))) == 1
    again = fsdd_split(cfg, "train", tmp_path / "cache")
    np.testing.assert_array_equal(again.x, train.x)


def test_any_rate_is_resampled(folder: Path) -> None:
    source = corpus.open_source(cfg_with(source=str(folder)).data.fsdd)
    assert source is not None
    data = corpus.load_folder(source, cfg_with().data.fsdd, "all")
    assert isinstance(data, FSDD) and len(data) == 180 and data.sample_rate == 8000
    for speaker in RATES:  # 48 kHz mono and 44.1 kHz stereo alike
        i = int(np.flatnonzero((data.speakers == speaker) & (data.digits == 5))[0])
        wave = data.waves[i]
        assert wave.ndim == 1 and abs(len(wave) - (SECONDS + 0.1) * 8000) <= 2
        power = np.abs(np.fft.rfft(wave)) ** 2
        freqs = np.fft.rfftfreq(len(wave), 1 / 8000)
        assert abs(freqs[power.argmax()] - 1000) < 10
        assert power[np.abs(freqs - 1000) < 100].sum() > 0.95 * power.sum()


def test_environment_variable_overrides_the_config(folder: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(corpus.AUDIO_DIR_ENV, str(folder))
    assert corpus.audio_source(None) == folder
    assert corpus.audio_source("elsewhere") == folder
    monkeypatch.setenv(corpus.AUDIO_DIR_ENV, "no/such/folder")
    with pytest.raises(DataError) as err:
        corpus.audio_source(None)
    assert "MMGA_AUDIO_DIR=no/such/folder is not a folder" in one_line(err)
    monkeypatch.delenv(corpus.AUDIO_DIR_ENV)
    (tmp_path / "proj" / "clips").symlink_to(folder)
    assert corpus.audio_source("clips").resolve() == folder.resolve()  # from the project root
    assert corpus.audio_source(None) is None  # FSDD


# -- split rules -----------------------------------------------------------------------------------------
def test_split_by_speakers(folder: Path) -> None:
    fs = cfg_with(source=str(folder), split="speakers", test_speakers=["cy"]).data.fsdd
    source = corpus.open_source(fs)
    train, test = (corpus.load_audio(fs, s, source) for s in ("train", "test"))
    assert set(test.speakers.tolist()) == {"cy"} and len(test) == 60
    assert set(train.speakers.tolist()) == {"ann", "bob"} and len(train) == 120
    assert set(train.indices.tolist()) == set(INDICES)  # every recording of a heard voice trains
    fs = cfg_with(source=str(folder), split="speakers", test_speakers=["dora"]).data.fsdd
    with pytest.raises(DataError) as err:
        corpus.load_audio(fs, "test", corpus.open_source(fs))
    assert "test_speakers names dora" in one_line(err) and "ann, bob, cy" in str(err.value)


def test_split_by_index_and_empty_splits(folder: Path) -> None:
    fs = cfg_with(source=str(folder), test_indices=2).data.fsdd
    test = corpus.load_audio(fs, "test", corpus.open_source(fs))
    assert len(test) == 60 and set(test.indices.tolist()) == {0, 1}
    fs = cfg_with(source=str(folder), test_indices=6).data.fsdd
    with pytest.raises(DataError) as err:
        corpus.load_audio(fs, "train", corpus.open_source(fs))
    assert "the train split is empty" in one_line(err)


def test_fsdd_follows_the_split_rule(monkeypatch) -> None:
    speakers = np.repeat(np.array(["george", "theo"]), 50)
    indices = np.tile(np.arange(50), 2)
    fake = FSDD([np.zeros(8)] * 100, np.zeros(100, np.int64), speakers, indices)
    asked: list[str] = []

    def load(split: str) -> FSDD:
        asked.append(split)
        return fake

    monkeypatch.setattr(corpus, "load_fsdd", load)
    assert corpus.load_audio(cfg_with().data.fsdd, "test", None) is fake  # the official rule: as before
    fs = cfg_with(split="speakers", test_speakers=["theo"]).data.fsdd
    assert set(corpus.load_audio(fs, "test", None).speakers.tolist()) == {"theo"}
    assert len(corpus.load_audio(cfg_with(test_indices=10).data.fsdd, "test", None)) == 20
    assert asked == ["test", "all", "all"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"split": "speakers"}, "split: speakers needs data.fsdd.test_speakers"),
        ({"test_speakers": ["theo"]}, "test_speakers is read only with data.fsdd.split: speakers"),
        ({"split": "voices"}, "data.fsdd.split"),
        ({"test_indices": 0}, "data.fsdd.test_indices"),
        ({"split": "speakers", "test_speakers": ["a_b"]}, "data.fsdd.test_speakers.0"),
        ({"source": ""}, "data.fsdd.source"),
    ],
)
def test_bad_split_keys_are_named(changes: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg_with(**changes)
    assert expected in str(err.value)


# -- the manifest ----------------------------------------------------------------------------------------
def test_changed_missing_and_added_clips_are_named(folder: Path) -> None:
    fs = cfg_with(source=str(folder)).data.fsdd
    corpus.open_source(fs)  # first use: recorded
    data = bytearray((folder / "3_bob_2.wav").read_bytes())
    data[-10] ^= 0xFF
    (folder / "3_bob_2.wav").write_bytes(bytes(data))
    (folder / "4_ann_0.wav").unlink()
    (folder / "9_cy_6.wav").write_bytes((folder / "9_cy_5.wav").read_bytes())
    with pytest.raises(DataError) as err:
        corpus.open_source(fs)
    msg = one_line(err)
    assert "changed: 3_bob_2.wav; missing: 4_ann_0.wav; added: 9_cy_6.wav" in msg
    assert f"mmga manifest {folder}" in msg


def test_malformed_names_are_refused(folder: Path) -> None:
    for name in ("hello.wav", "12_ann_0.wav", "3_ann.wav"):
        (folder / name).write_bytes(b"")
    (folder / "notes.txt").write_text("not a clip, not looked at")
    with pytest.raises(DataError) as err:
        corpus.open_source(cfg_with(source=str(folder)).data.fsdd)
    assert "3 clip name(s) not of the form" in one_line(err)
    assert "12_ann_0.wav, 3_ann.wav, hello.wav" in str(err.value)
    assert not (folder / corpus.MANIFEST_NAME).exists()


def test_read_only_folder_keeps_its_manifest_in_the_project(folder: Path, offline) -> None:
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    try:
        source = corpus.open_source(cfg_with(source=str(folder)).data.fsdd)
        assert source is not None and not (folder / corpus.MANIFEST_NAME).exists()
        assert source.manifest.parent == offline.root / "data" / "manifests"
        assert source.manifest.is_file() and corpus.check_manifest(folder)[0] == source.manifest
    finally:
        folder.chmod(stat.S_IMODE(mode))


# -- mmga manifest -------------------------------------------------------------------------------------------
def test_manifest_command(folder: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    res = cli.invoke(app, ["manifest", str(folder), "--check"])
    assert res.exit_code == 2 and "has no manifest yet" in res.output
    res = cli.invoke(app, ["manifest", str(folder)])
    assert res.exit_code == 0, res.output
    assert "180 clips of 3 speaker(s) recorded in" in res.output and (folder / corpus.MANIFEST_NAME).is_file()
    res = cli.invoke(app, ["manifest", str(folder), "--check"])
    assert res.exit_code == 0 and "180 clips of 3 speaker(s) match" in res.output
    os.remove(folder / "0_ann_0.wav")
    res = cli.invoke(app, ["manifest", str(folder), "--check"])
    assert res.exit_code == 2 and "missing: 0_ann_0.wav" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert cli.invoke(app, ["manifest", str(folder)]).exit_code == 0  # recorded anew, on purpose
    assert cli.invoke(app, ["manifest", str(folder), "--check"]).exit_code == 0
    res = cli.invoke(app, ["manifest", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "is not a folder" in res.output
    assert len(res.output.strip().splitlines()) == 1
