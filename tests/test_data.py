"""Verified MNIST and FSDD loaders: the real shared data, and copies of it with one byte changed.

The real data must be present (``$MMGA_DATA_DIR``, else ``../shared/data``): its absence fails these
tests rather than skipping them. Nothing is downloaded: ``pooch.retrieve`` is replaced throughout.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmga_helpers.modalities import data
from mmga_helpers.modalities.data import DataError, load_fsdd, load_mnist, speaker_folds

try:  # tests/ is on sys.path (no __init__.py there) ...
    from conftest import MNIST_FILES, FakeMnist, FsddCopy, Offline, corrupt_gz_content, sha256
except ImportError:  # ... or a package
    from tests.conftest import MNIST_FILES, FakeMnist, FsddCopy, Offline, corrupt_gz_content, sha256

# Well-known per-digit counts of the MNIST labels.
MNIST_LABEL_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# -- MNIST, real data ------------------------------------------------------------------------------
@pytest.mark.parametrize(("split", "count"), [("train", 60_000), ("test", 10_000)])
def test_mnist_real_split(real_env: Offline, split: str, count: int) -> None:
    images, labels = load_mnist(split)
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == MNIST_LABEL_COUNTS[split]
    assert set(np.unique(labels)) == set(range(10))
    assert images.min() == 0 and images.max() == 255
    assert 30 < images.mean() < 37  # MNIST's mean pixel is about 33
    assert real_env.calls == []  # nothing was downloaded
    assert _files_under(real_env.data_dir) == []  # nothing was written into the project


def test_mnist_invalid_split(real_env: Offline) -> None:
    for split in ("val", "all", "TRAIN", ""):
        with pytest.raises(ValueError, match="MNIST split"):
            load_mnist(split)  # type: ignore[arg-type]


# -- MNIST, corrupted copies of the real files -----------------------------------------------------
@pytest.mark.parametrize(
    ("name", "offset"), [("t10k-images-idx3-ubyte", 5000), ("t10k-labels-idx1-ubyte", -1)]
)
def test_mnist_corrupt_byte(mnist_copy: Path, name: str, offset: int) -> None:
    before, after = corrupt_gz_content(mnist_copy / f"{name}.gz", offset)
    assert before == data.MNIST_SHA256[name]
    with pytest.raises(DataError) as err:
        load_mnist("test")
    msg = str(err.value)
    assert f"{name}.gz" in msg
    assert data.MNIST_SHA256[name] in msg  # expected
    assert after in msg  # actual
    assert "delete" in msg and "MMGA_DATA_DIR" in msg
    assert (mnist_copy / f"{name}.gz").exists()  # the user's own file is reported, never deleted
    load_mnist("train")  # the train files are untouched and still load


@pytest.mark.parametrize("damage", ["truncated", "not_gzip", "empty"])
def test_mnist_truncated_or_not_gzip(mnist_copy: Path, damage: str) -> None:
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    raw = path.read_bytes()
    payloads = {"truncated": raw[: len(raw) // 2], "not_gzip": b"<html>404</html>", "empty": b""}
    path.write_bytes(payloads[damage])
    with pytest.raises(DataError) as err:
        load_mnist("test")
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg
    assert "MMGA_DATA_DIR" in msg
    if damage != "empty":  # an empty .gz decompresses to b"" and fails the checksum instead
        assert "truncated or not gzip" in msg


def test_mnist_missing_file_is_not_downloaded_here(mnist_copy: Path, real_env: Offline) -> None:
    (mnist_copy / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_mnist("test")
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte" in msg and "MMGA_DATA_DIR" in msg
    assert "ConnectionError" in msg  # the cause of each failed mirror is reported
    assert real_env.calls == [m + "t10k-images-idx3-ubyte.gz" for m in data.MNIST_MIRRORS]
    # a failed download leaves nothing at the final path (nor anywhere in the project)
    assert not (real_env.data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    assert _files_under(real_env.data_dir) == []


def test_mnist_uncompressed_files_accepted(mnist_copy: Path) -> None:
    gz = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    (mnist_copy / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    _, labels = load_mnist("test")
    assert np.bincount(labels).tolist() == MNIST_LABEL_COUNTS["test"]


# -- MNIST, fake data (hashes and counts patched) --------------------------------------------------
def test_fake_mnist_loads_exactly(fake_mnist: FakeMnist) -> None:
    for split in ("train", "test"):
        images, labels = load_mnist(split)
        np.testing.assert_array_equal(images, fake_mnist.images[split])
        np.testing.assert_array_equal(labels, fake_mnist.labels[split])
        assert labels.dtype == np.int64


def test_fake_mnist_wrong_count(fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch) -> None:
    splits = dict(data.MNIST_SPLITS)
    splits["test"] = (*splits["test"][:2], 11)
    monkeypatch.setattr(data, "MNIST_SPLITS", splits)
    with pytest.raises(DataError, match="holds 10 items, expected 11"):
        load_mnist("test")


def test_fake_mnist_wrong_dimensions(fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch) -> None:
    # a labels file (1-D IDX) where the images (3-D) belong, with a matching checksum
    labels_gz = fake_mnist.gz["t10k-labels-idx1-ubyte"]
    (fake_mnist.folder / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(labels_gz)
    hashes = dict(data.MNIST_SHA256)
    hashes["t10k-images-idx3-ubyte"] = sha256(gzip.decompress(labels_gz))
    monkeypatch.setattr(data, "MNIST_SHA256", hashes)
    with pytest.raises(DataError, match="not an IDX file of 3 dimensions"):
        load_mnist("test")


def _serve(payload: bytes):
    """A stand-in for ``pooch.retrieve`` that "downloads" ``payload`` to ``path / fname``."""

    def retrieve(url, known_hash=None, fname=None, path=None, **kwargs):
        target = Path(path) / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        return str(target)

    return retrieve


def test_mnist_download_into_project(fake_mnist: FakeMnist, offline: Offline) -> None:
    name = "t10k-images-idx3-ubyte"
    (fake_mnist.folder / "mnist" / f"{name}.gz").unlink()
    good = _serve(fake_mnist.gz[name])

    def first_mirror_down(url, *args, **kwargs):
        if url.startswith(data.MNIST_MIRRORS[0]):
            raise ConnectionError("mirror down")
        return good(url, *args, **kwargs)

    offline.set_retrieve(first_mirror_down)
    images, _ = load_mnist("test")
    np.testing.assert_array_equal(images, fake_mnist.images["test"])
    assert offline.calls == [m + f"{name}.gz" for m in data.MNIST_MIRRORS]
    assert (offline.data_dir / "mnist" / f"{name}.gz").read_bytes() == fake_mnist.gz[name]
    offline.calls.clear()
    load_mnist("test")  # the second time it is found in the project's data/ folder
    assert offline.calls == []


@pytest.mark.parametrize("payload", ["corrupt", "truncated"])
def test_mnist_bad_download_is_removed(fake_mnist: FakeMnist, offline: Offline, payload: str) -> None:
    name = "t10k-labels-idx1-ubyte"
    (fake_mnist.folder / "mnist" / f"{name}.gz").unlink()
    content = bytearray(gzip.decompress(fake_mnist.gz[name]))
    content[-1] ^= 0x01
    bad = gzip.compress(bytes(content)) if payload == "corrupt" else fake_mnist.gz[name][:20]
    offline.set_retrieve(_serve(bad))
    with pytest.raises(DataError, match=name):
        load_mnist("test")
    assert not (offline.data_dir / "mnist" / f"{name}.gz").exists()  # never left for the next run


# -- FSDD, real data -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fsdd_all(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> data.FSDD:
    with pytest.MonkeyPatch.context() as mp:
        import pooch

        def refuse(*args, **kwargs):
            raise ConnectionError("tests never download")

        mp.setattr(pooch, "retrieve", refuse)
        mp.setenv("MMGA_DATA_DIR", str(real_data))
        mp.setenv("MMGA_ROOT", str(tmp_path_factory.mktemp("proj")))
        return load_fsdd("all")


@pytest.mark.parametrize(("split", "count"), [("train", 2700), ("test", 300)])
def test_fsdd_real_split(real_env: Offline, split: str, count: int) -> None:
    fsdd = load_fsdd(split)
    assert len(fsdd) == count
    assert fsdd.sample_rate == 8000
    assert all(w.dtype == np.float32 and w.ndim == 1 for w in fsdd.waves)
    assert len(fsdd.digits) == len(fsdd.speakers) == len(fsdd.indices) == count
    if split == "test":
        assert set(fsdd.indices.tolist()) == {0, 1, 2, 3, 4}
        assert fsdd.is_official_test.all()
    else:
        assert set(fsdd.indices.tolist()) == set(range(5, 50))
        assert not fsdd.is_official_test.any()
    # every digit and speaker appears equally often
    assert np.bincount(fsdd.digits).tolist() == [count // 10] * 10
    assert sorted(set(fsdd.speakers.tolist())) == sorted(data.FSDD_SPEAKERS)
    assert real_env.calls == [] and _files_under(real_env.data_dir) == []


def test_fsdd_all(fsdd_all: data.FSDD) -> None:
    assert len(fsdd_all) == 3000 and fsdd_all.sample_rate == 8000
    assert sorted(set(fsdd_all.speakers.tolist())) == sorted(data.FSDD_SPEAKERS)
    assert len(set(fsdd_all.speakers.tolist())) == 6
    assert set(fsdd_all.digits.tolist()) == set(range(10))
    keys = set(
        zip(fsdd_all.digits.tolist(), fsdd_all.speakers.tolist(), fsdd_all.indices.tolist(), strict=True)
    )
    assert len(keys) == 3000  # no clip twice
    assert int(fsdd_all.is_official_test.sum()) == 300
    lengths = np.array([len(w) for w in fsdd_all.waves]) / 8000
    assert 0.13 < lengths.min() and lengths.max() < 2.3  # 0.14 s to 2.28 s
    assert all(np.isfinite(w).all() for w in fsdd_all.waves)
    assert all(0 < np.abs(w).max() <= 1.0 for w in fsdd_all.waves)


def test_fsdd_waves_aligned_with_labels(fsdd_all: data.FSDD, real_data: Path) -> None:
    rng = np.random.default_rng(0)
    for i in rng.choice(len(fsdd_all), size=12, replace=False):
        name = f"{fsdd_all.digits[i]}_{fsdd_all.speakers[i]}_{fsdd_all.indices[i]}.wav"
        wave, sr = sf.read(real_data / "fsdd" / "recordings" / name, dtype="float32")
        assert sr == 8000
        np.testing.assert_array_equal(fsdd_all.waves[i], wave)


def test_fsdd_splits_partition_all(fsdd_all: data.FSDD, real_env: Offline) -> None:
    test = load_fsdd("test")
    sub = fsdd_all.subset(fsdd_all.is_official_test)
    assert len(sub) == 300
    np.testing.assert_array_equal(sub.digits, test.digits)
    np.testing.assert_array_equal(sub.speakers, test.speakers)
    np.testing.assert_array_equal(sub.indices, test.indices)
    assert all(np.array_equal(a, b) for a, b in zip(sub.waves, test.waves, strict=True))


def test_fsdd_subset_mask_and_positions(fsdd_all: data.FSDD) -> None:
    positions = [5, 0, 2999]
    sub = fsdd_all.subset(positions)
    assert len(sub) == 3 and sub.waves[0] is fsdd_all.waves[5] and sub.waves[2] is fsdd_all.waves[2999]
    assert sub.digits.tolist() == fsdd_all.digits[positions].tolist()
    mask = fsdd_all.speakers == "theo"
    by_mask = fsdd_all.subset(mask)
    assert len(by_mask) == 500 and set(by_mask.speakers.tolist()) == {"theo"}


def test_speaker_folds(fsdd_all: data.FSDD) -> None:
    folds = list(speaker_folds(fsdd_all))
    assert [s for s, _, _ in folds] == sorted(data.FSDD_SPEAKERS)
    held_out_total = 0
    for speaker, train, held in folds:
        assert set(held.speakers.tolist()) == {speaker}
        assert speaker not in set(train.speakers.tolist())
        assert len(set(train.speakers.tolist())) == 5
        assert len(train) + len(held) == len(fsdd_all)
        held_out_total += len(held)
    assert held_out_total == len(fsdd_all)  # every clip is held out exactly once


def test_fsdd_invalid_split(real_env: Offline) -> None:
    for split in ("validation", "TEST", "", "val"):
        with pytest.raises(ValueError, match="FSDD split"):
            load_fsdd(split)  # type: ignore[arg-type]


# -- FSDD, damaged copies --------------------------------------------------------------------------
def test_fsdd_corrupt_wav(fsdd_copy: FsddCopy) -> None:
    name = "3_theo_2.wav"  # in the test split
    good, bad = fsdd_copy.corrupt(name)
    assert good == data.fsdd_manifest()[name]
    with pytest.raises(DataError) as err:
        load_fsdd("test")
    msg = str(err.value)
    assert name in msg and good in msg and bad in msg
    assert "1 of 300" in msg and "MMGA_DATA_DIR" in msg and "\n" not in msg  # one line
    assert (fsdd_copy.recordings / name).exists()  # reported, not deleted


def test_fsdd_corrupt_wav_in_all(fsdd_copy: FsddCopy) -> None:
    fsdd_copy.corrupt("9_yweweler_49.wav", offset=-1)  # a train file, the last byte
    with pytest.raises(DataError, match=r"9_yweweler_49\.wav"):
        load_fsdd("all")
    assert len(load_fsdd("test")) == 300  # the test split does not hold it


def test_fsdd_many_problems_summarised(fsdd_copy: FsddCopy) -> None:
    names = [f"{d}_george_0.wav" for d in range(7)]
    for n in names:
        fsdd_copy.corrupt(n)
    with pytest.raises(DataError) as err:
        load_fsdd("test")
    msg = str(err.value)
    assert "7 of 300" in msg and "and 2 more" in msg and "\n" not in msg


def test_fsdd_missing_wav(fsdd_copy: FsddCopy) -> None:
    fsdd_copy.remove("0_lucas_4.wav")
    with pytest.raises(DataError) as err:
        load_fsdd("test")
    msg = str(err.value)
    assert "0_lucas_4.wav" in msg and "missing" in msg and "MMGA_DATA_DIR" in msg


def test_fsdd_wrong_rate_with_matching_checksum(
    fsdd_copy: FsddCopy, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "5_nicolas_1.wav"
    buf = io.BytesIO()
    sf.write(buf, np.zeros(1600, np.float32) + 0.1, 16000, format="WAV", subtype="PCM_16")
    fsdd_copy.replace(name, buf.getvalue())
    manifest = data.fsdd_manifest()
    manifest[name] = sha256(buf.getvalue())
    monkeypatch.setattr(data, "fsdd_manifest", lambda: dict(manifest))
    with pytest.raises(DataError, match=r"5_nicolas_1\.wav: 16000 Hz .*expected 8000 Hz mono"):
        load_fsdd("test")


def test_fsdd_absent_is_not_downloaded_here(real_env: Offline, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    real_env.use_data_dir(empty)
    with pytest.raises(DataError) as err:
        load_fsdd("test")
    msg = str(err.value)
    assert "MMGA_DATA_DIR" in msg and "ConnectionError" in msg
    assert real_env.calls == [data.FSDD_ARCHIVE_URL]
    assert not (real_env.data_dir / "fsdd" / "recordings").exists()
    assert _files_under(real_env.data_dir) == []


def _fake_archive(source: Path | None):
    """A stand-in for ``pooch.retrieve(..., processor=Untar)``: "extracts" an archive whose
    ``recordings/`` links to ``source`` (none when ``source`` is None); returns the member list."""

    def retrieve(url, known_hash=None, fname=None, path=None, processor=None, **kwargs):
        root = Path(path) / "_archive" / "free-spoken-digit-dataset-1.0.10"
        (root / "recordings").mkdir(parents=True)
        (root / "README.md").write_text("fsdd")
        members = [str(root / "README.md")]
        for wav in sorted(os.listdir(source)) if source else []:
            os.symlink(source / wav, root / "recordings" / wav)
            members.append(str(root / "recordings" / wav))
        return members

    return retrieve


def test_fsdd_download_into_project(real_env: Offline, real_data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    real_env.use_data_dir(empty)
    real_env.set_retrieve(_fake_archive(real_data / "fsdd" / "recordings"))
    fsdd = load_fsdd("test")
    assert len(fsdd) == 300
    target = real_env.data_dir / "fsdd"
    assert len(os.listdir(target / "recordings")) == 3000
    assert not (target / "_archive").exists() and not (target / ".recordings.partial").exists()
    assert real_env.calls == [data.FSDD_ARCHIVE_URL]
    real_env.calls.clear()
    assert len(load_fsdd("test")) == 300  # found in the project's data/ the second time
    assert real_env.calls == []


def test_fsdd_download_without_recordings(real_env: Offline, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    real_env.use_data_dir(empty)
    real_env.set_retrieve(_fake_archive(None))
    with pytest.raises(DataError, match="no recordings/ folder"):
        load_fsdd("test")
    assert not (real_env.data_dir / "fsdd" / "recordings").exists()


def test_mnist_file_names_match_manifest() -> None:
    # the fixtures and the loader agree on the four file names
    assert set(MNIST_FILES) == set(data.MNIST_SHA256)


def test_data_dir_that_is_not_a_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A mistyped MMGA_DATA_DIR is named in one line, before any download is tried."""
    monkeypatch.setenv("MMGA_DATA_DIR", str(tmp_path / "no_such_folder"))
    for load in (lambda: data.load_mnist("test"), lambda: load_fsdd("test")):
        with pytest.raises(DataError, match=r"MMGA_DATA_DIR=.*no_such_folder is not a folder") as err:
            load()
        assert "\n" not in str(err.value)
