"""``MMGA.load`` on a folder that is not there: a ``FileNotFoundError`` naming it, in one line."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmga_helpers.generation import MMGA, RunFolderError, RunNotFoundError


def test_missing_folder_is_a_file_not_found_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as caught:
        MMGA.load("no/such/folder")
    err = caught.value
    assert isinstance(err, RunNotFoundError) and isinstance(err, RunFolderError)
    assert err.errno == errno.ENOENT and err.filename == "no/such/folder"
    message = str(err)
    assert "\n" not in message and not message.startswith("[Errno")
    assert message.startswith("no/such/folder is not a finished MMGA run (no such folder; mmga.json missing")
    assert str(tmp_path / "no" / "such" / "folder") in message  # a relative folder: where it was looked for
    assert "mmga run --profile" in message
    again = pickle.loads(pickle.dumps(err))  # crosses process boundaries (multiprocessing, joblib) intact
    assert type(again) is RunNotFoundError and str(again) == message


def test_folder_without_manifest_is_a_file_not_found_error(tmp_path: Path) -> None:
    expected = rf"^{tmp_path} is not a finished MMGA run \(mmga.json missing\);"
    with pytest.raises(FileNotFoundError, match=expected):
        MMGA.load(tmp_path)
    with pytest.raises(RunFolderError):  # what callers caught before still catches it
        MMGA.load(tmp_path)


def test_a_relative_run_folder_is_found_from_a_subfolder_of_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_generation import build_fake_run  # a sibling test module: tests/ is on sys.path

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mmga-helpers"\n')
    build_fake_run(tmp_path / "outputs" / "quick")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv("MMGA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path / "notebooks")  # where JupyterLab starts a notebook's kernel
    assert MMGA.load("outputs/quick").hear(np.eye(28)[None], seed=0)[0].size > 0
