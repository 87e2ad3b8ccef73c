"""A person's own files through a run (``mmga see`` / ``mmga hear``): formats, rates, folders, and
every bad input named in one line while the rest of the batch is still done."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from test_generation import build_fake_run, tone  # a sibling test module: tests/ is on sys.path

from mmga_helpers.generation import MMGA
from mmga_helpers.tools.files import (
    AUDIO_SUFFIXES,
    MAX_SECONDS,
    gather,
    hear_files,
    read_clip,
    read_picture,
    see_files,
)


@pytest.fixture(scope="module")
def m(tmp_path_factory) -> MMGA:
    run = build_fake_run(tmp_path_factory.mktemp("run") / "outputs" / "quick")
    return MMGA.load(run.folder)


def word(sr: int) -> np.ndarray:
    """Half a second of a voiced-like sound at ``sr``."""
    t = np.arange(int(0.5 * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size)).astype(np.float32)


def photo(path: Path, side: int = 300) -> Path:
    """Dark ink on white paper: a '1' drawn as a bar, off-centre."""
    page = np.full((side, side, 3), 238, np.uint8)
    page[side // 6 : side - side // 6, side // 3 : side // 3 + side // 12] = 15
    Image.fromarray(page).save(path)
    return path


def test_clips_in_any_format_rate_and_channels_are_seen(m, tmp_path):
    stereo = np.stack([word(44100), 0.5 * word(44100)], axis=1)
    sf.write(tmp_path / "a.wav", stereo, 44100)
    sf.write(tmp_path / "b.flac", word(16000), 16000)
    sf.write(tmp_path / "c.ogg", word(22050), 22050, format="OGG", subtype="VORBIS")
    files, skipped = gather([tmp_path], AUDIO_SUFFIXES)
    assert [f.name for f in files] == ["a.wav", "b.flac", "c.ogg"] and skipped == []
    out = see_files(m, files, tmp_path / "seen", seed=3)
    assert [o.error for o in out] == [None, None, None]
    for o in out:
        png = Image.open(o.output)
        assert png.size == (112, 112) and o.cluster is not None and o.drawn is not None
    again = see_files(m, files, tmp_path / "again", seed=3)
    for a, b in zip(out, again, strict=True):  # --seed makes a call repeatable
        assert Path(a.output).read_bytes() == Path(b.output).read_bytes()


def test_pictures_of_any_size_are_heard(m, tmp_path):
    photo(tmp_path / "photo.png")
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(tmp_path / "small.jpg")
    out = hear_files(m, [tmp_path / "photo.png", tmp_path / "small.jpg"], tmp_path / "heard", seed=0)
    assert [o.error for o in out] == [None, None]
    for o in out:
        wave, sr = sf.read(o.output)
        assert sr == 8000 and wave.ndim == 1 and wave.size > 0


def test_a_folder_of_mixed_files_does_the_good_ones_and_names_the_bad(m, tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    sf.write(d / "good.wav", word(8000), 8000)
    sf.write(d / "silent.wav", np.zeros(8000, np.float32), 8000)
    (d / "fake.wav").write_bytes(b"this is a text file, not a recording")
    sf.write(d / "long.wav", np.tile(word(8000), int(MAX_SECONDS * 2) + 2), 8000)  # > MAX_SECONDS
    photo(d / "drawing.png")
    (d / "notes.txt").write_text("not a clip")
    files, skipped = gather([d], AUDIO_SUFFIXES)
    assert sorted(p.name for p in skipped) == ["drawing.png", "notes.txt"]
    out = {Path(o.input).name: o for o in see_files(m, files, tmp_path / "seen")}
    assert out["good.wav"].error is None and Path(out["good.wav"].output).is_file()
    assert "silent" in out["silent.wav"].error
    assert "not a readable audio file" in out["fake.wav"].error
    assert "trim the recording" in out["long.wav"].error
    for name in ("silent.wav", "fake.wav", "long.wav"):
        assert out[name].output is None and "\n" not in out[name].error
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["good.png"]  # nothing half-written


def test_bad_pictures_are_named_and_the_rest_heard(m, tmp_path):
    good = photo(tmp_path / "good.png")
    buf = io.BytesIO()
    Image.fromarray(np.eye(64, dtype=np.uint8) * 255).save(buf, format="PNG")
    (tmp_path / "corrupt.png").write_bytes(buf.getvalue()[:60])
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(tmp_path / "empty.png")  # an empty canvas
    big = np.full((3000, 4000, 3), 240, np.uint8)
    big[500:2500, 1800:2100] = 20
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=80)
    files = [good, *(tmp_path / n for n in ("corrupt.png", "empty.png", "big.jpg", "no.png"))]
    out = {Path(o.input).name: o for o in hear_files(m, files, tmp_path / "heard")}
    assert out["good.png"].error is None and out["big.jpg"].error is None
    assert "not a readable picture" in out["corrupt.png"].error
    assert "no strokes found" in out["empty.png"].error
    assert "file not found" in out["no.png"].error
    assert sorted(p.name for p in (tmp_path / "heard").iterdir()) == ["big.wav", "good.wav"]


def test_repeated_names_get_distinct_outputs(m, tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "one.wav", word(8000), 8000)
    out = see_files(m, [tmp_path / "x" / "one.wav", tmp_path / "y" / "one.wav"], tmp_path / "o")
    assert [Path(o.output).name for o in out] == ["one.png", "one_2.png"]


def test_readers_refuse_with_the_file_named(tmp_path):
    with pytest.raises(ValueError, match=r"nothing\.wav: file not found"):
        read_clip(tmp_path / "nothing.wav")
    sf.write(tmp_path / "t.wav", tone(), 8000)
    assert read_clip(tmp_path / "t.wav").dtype == np.float32
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(ValueError, match=r"black\.png: no strokes found"):
        read_picture(tmp_path / "black.png")


def test_the_commands_write_files_print_json_and_exit_2_on_a_bad_one(tmp_path_factory, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from mmga_helpers.tools.cli import app

    run = build_fake_run(tmp_path_factory.mktemp("cli") / "outputs" / "quick").folder
    sf.write(tmp_path / "a.wav", np.stack([word(44100)] * 2, axis=1), 44100)
    (tmp_path / "b.wav").write_bytes(b"not audio")
    cli = CliRunner()
    res = cli.invoke(app, ["see", str(tmp_path / "a.wav"), "--run", str(run), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "a.wav -> " in res.output and (tmp_path / "o" / "a.png").is_file()
    res = cli.invoke(app, ["see", str(tmp_path), "--run", str(run), "--out", str(tmp_path / "j"), "--json"])
    assert res.exit_code == 2
    rows = {Path(r["input"]).name: r for r in json.loads(res.stdout)}
    assert rows["a.wav"]["error"] is None and "not a readable audio file" in rows["b.wav"]["error"]
    # --one-voice reaches see(): the readable clips are one speaker's and vote
    from mmga_helpers.generation import MMGA

    asked, see_traced = [], MMGA.see_traced

    def recorded(self, *args, **kwargs):
        asked.append(kwargs)
        return see_traced(self, *args, **kwargs)

    monkeypatch.setattr(MMGA, "see_traced", recorded)
    for flag in ([], ["--one-voice"]):
        argv = ["see", str(tmp_path / "a.wav"), "--run", str(run), "--out", str(tmp_path / "v"), *flag]
        res = cli.invoke(app, argv)
        assert res.exit_code == 0, res.output
    assert [k["one_voice"] for k in asked] == [False, True]
    photo(tmp_path / "d.png")
    res = cli.invoke(app, ["hear", str(tmp_path / "d.png"), "--run", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "missing is not a finished MMGA run" in res.output
    assert len(res.output.strip().splitlines()) == 1
