"""Atomic, pickle-free artefact writing: round trips, and failures that keep the earlier file."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mmga_helpers.core import io as mio
from mmga_helpers.core.io import (
    OutputError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    read_json,
    read_npz,
    write_json,
    write_npz,
    write_with,
)


def _leftovers(folder: Path) -> list[str]:
    """Hidden temporary files ``atomic_path`` may have left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- round trips -----------------------------------------------------------------------------------
def test_json_round_trip(tmp_path: Path) -> None:
    data = {
        "b": [1, 2.5, "x", None, True],
        "a": {"nested": {"ok": False}},
        "np_int": np.int64(7),
        "np_float": np.float32(0.5),
        "array": np.arange(6).reshape(2, 3),
        "path": Path("outputs/quick"),
    }
    path = write_json(tmp_path / "sub" / "x.json", data)  # parent folders are created
    assert path == tmp_path / "sub" / "x.json"
    back = read_json(path)
    assert back == {
        "b": [1, 2.5, "x", None, True],
        "a": {"nested": {"ok": False}},
        "np_int": 7,
        "np_float": 0.5,
        "array": [[0, 1, 2], [3, 4, 5]],
        "path": "outputs/quick",
    }
    text = path.read_text()
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')  # sorted keys, stable diffs
    assert _leftovers(path.parent) == []


def test_json_unstorable_leaves_old_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", {"v": 1})
    with pytest.raises(TypeError, match="cannot store object in JSON"):
        write_json(path, {"v": object()})
    assert read_json(path) == {"v": 1}
    assert _leftovers(tmp_path) == []


def test_npz_round_trip(tmp_path: Path) -> None:
    arrays = {
        "f32": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32),
        "i64": np.arange(5, dtype=np.int64),
        "flag": np.array([True, False]),
        "names": np.array(["george", "theo"]),
        "scalar": np.array(3.5),
    }
    path = write_npz(tmp_path / "a.npz", **arrays)
    assert path.exists() and not (tmp_path / "a.npz.npz").exists()
    back = read_npz(path)
    assert set(back) == set(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)
    assert _leftovers(tmp_path) == []


def test_read_npz_refuses_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, ok=np.arange(3), bad=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        read_npz(path)


def test_write_npz_refuses_object_arrays(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "a.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="allow_pickle"):
        write_npz(path, x=np.array([{"a": 1}], dtype=object))
    np.testing.assert_array_equal(read_npz(path)["x"], np.arange(3))  # the old file is intact
    assert _leftovers(tmp_path) == []


def test_text_and_bytes(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_bytes() == "héllo\n".encode()
    atomic_write_bytes(tmp_path / "t.txt", b"\x00\x01")
    assert (tmp_path / "t.txt").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


def test_new_files_get_the_usual_mode(tmp_path: Path) -> None:
    # mkstemp makes 0600 files; an artefact must be as readable as one written by open()
    path = write_json(tmp_path / "x.json", {})
    with open(tmp_path / "plain", "w") as fh:
        fh.write("{}")
    assert (path.stat().st_mode & 0o777) == ((tmp_path / "plain").stat().st_mode & 0o777)
    assert path.stat().st_mode & 0o044  # readable beyond the owner under the usual umask 022


# -- failures keep the earlier file ----------------------------------------------------------------
def test_writer_raising_keeps_old_file(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "model.keras", "old")

    def writer(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise RuntimeError("saver crashed")

    with pytest.raises(RuntimeError, match="saver crashed"):
        write_with(path, writer)
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_path_interrupt_keeps_old_file(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "x.txt", "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_text("new")
        raise KeyboardInterrupt
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_write_with_success(tmp_path: Path) -> None:
    path = write_with(tmp_path / "m.weights.h5", lambda tmp: tmp.write_bytes(b"w"), suffix=".h5")
    assert path.read_bytes() == b"w" and _leftovers(tmp_path) == []


def test_disk_full_on_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_json(tmp_path / "x.json", {"v": "old"})

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mio.os, "replace", full)
    with pytest.raises(OutputError) as err:
        write_json(path, {"v": "new"})
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    msg = str(err.value)
    assert "disk is full" in msg and str(path) in msg and "intact" in msg
    monkeypatch.undo()
    assert read_json(path) == {"v": "old"}
    assert _leftovers(tmp_path) == []


def test_disk_full_while_writing(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "x.txt", "old")

    def writer(tmp: Path) -> None:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="disk is full"):
        write_with(path, writer)
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tests run as root, so chmod cannot make a folder unwritable: refuse the temporary file instead
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError) as err:
        write_json(tmp_path / "x.json", {})
    assert err.value.errno == errno.EACCES
    assert str(tmp_path) in str(err.value) and "writable" in str(err.value)
    assert not (tmp_path / "x.json").exists()


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    with pytest.raises(OutputError, match="cannot write under"):
        write_json(tmp_path / "blocker" / "x.json", {})
