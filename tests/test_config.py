"""The typed configuration: profiles, files, fingerprints and the errors that name the bad key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmga_helpers.core.config import (
    PROFILES,
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    profile_dict,
)


def _quick() -> dict[str, Any]:
    return copy.deepcopy(profile_dict("quick"))


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[last] = value
    return data


def _delete(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node = node[p]
    del node[last]
    return data


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, "test.yaml")
    assert "test.yaml" in str(err.value)  # the source is named
    return str(err.value)


# -- profiles --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PROFILES)
def test_profiles_load(name: str) -> None:
    cfg = load_config(name)
    assert isinstance(cfg, Config) and cfg.profile == name
    fs = cfg.data.fsdd
    assert cfg.model.audio_autoencoder.input_shape == [fs.n_mels, fs.n_frames, 1]
    assert cfg.model.image_autoencoder.input_shape[:2] == cfg.data.mnist.resize_to
    assert fs.n_samples == round(fs.sample_rate * fs.duration)
    assert cfg.run_dir("/r") == Path("/r") / cfg.paths.output_dir / name
    assert cfg.model_dir("/r").parent == cfg.run_dir("/r")


def test_profiles_differ_where_expected() -> None:
    quick, full = load_config("quick"), load_config("full")
    assert len(full.seeds) > len(quick.seeds)
    assert full.data.mnist.train_limit is None and quick.data.mnist.train_limit is not None
    assert quick.fingerprint() != full.fingerprint()
    assert quick.fingerprint("data.fsdd") == full.fingerprint("data.fsdd")


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        profile_dict("fast")
    with pytest.raises(ConfigError, match="not found"):
        load_config("fast")


def test_config_is_frozen() -> None:
    cfg = load_config("quick")
    with pytest.raises(ValueError, match="frozen"):
        cfg.model.clustering.n_clusters = 3  # type: ignore[misc]


# -- fingerprints ----------------------------------------------------------------------------------
def test_fingerprint_stable() -> None:
    a, b = load_config("quick"), config_from_dict(_quick())
    assert a.fingerprint() == b.fingerprint() == load_config("quick").fingerprint()
    assert len(a.fingerprint()) == 16 and int(a.fingerprint(), 16) >= 0
    assert a.fingerprint("model", "data") == a.fingerprint("data", "model")  # order of sections
    # an int written where a float is meant is the same configuration
    assert config_from_dict(_set(_quick(), "data.fsdd.duration", 1)).fingerprint() == a.fingerprint()


def test_fingerprint_changes_with_a_value() -> None:
    base = load_config("quick")
    epochs = base.model.image_autoencoder.epochs + 1
    changed = config_from_dict(_set(_quick(), "model.image_autoencoder.epochs", epochs))
    assert changed.fingerprint() != base.fingerprint()
    assert changed.fingerprint("model.image_autoencoder") != base.fingerprint("model.image_autoencoder")
    # sections the change does not touch keep their fingerprint
    assert changed.fingerprint("data.fsdd") == base.fingerprint("data.fsdd")
    assert changed.fingerprint("model.audio_autoencoder") == base.fingerprint("model.audio_autoencoder")
    seeds = config_from_dict(_set(_quick(), "seeds", [1]))
    assert seeds.fingerprint() != base.fingerprint()
    assert seeds.fingerprint("model") == base.fingerprint("model")


# -- errors that name the key ----------------------------------------------------------------------
def test_negative_epochs() -> None:
    msg = _error(_set(_quick(), "model.image_autoencoder.epochs", -1))
    assert "model.image_autoencoder.epochs" in msg and "greater than 0" in msg and "-1" in msg


def test_audio_umap_neighbours() -> None:
    msg = _error(_set(_quick(), "model.clustering.audio_umap_n_neighbors", 1))
    assert "model.clustering.audio_umap_n_neighbors" in msg
    cc = config_from_dict(_set(_quick(), "model.clustering.audio_umap_n_neighbors", 100)).model.clustering
    k, fine = cc.n_clusters, cc.audio_n_clusters
    assert (cc.umap_neighbors("audio", k), cc.umap_neighbors("image", k)) == (100, cc.umap_n_neighbors)
    assert cc.umap_neighbors("audio", fine) == cc.umap_n_neighbors  # an over-clustering of its own
    plain = config_from_dict(_quick()).model.clustering
    assert plain.audio_umap_n_neighbors is None and plain.umap_neighbors("audio", k) == plain.umap_n_neighbors


def test_fold_epochs_are_positive() -> None:
    msg = _error(_set(_quick(), "evaluation.speaker_holdout_epochs", 0))
    assert "evaluation.speaker_holdout_epochs" in msg
    cfg = config_from_dict(_set(_quick(), "evaluation.speaker_holdout_epochs", 15))
    assert cfg.holdout_autoencoder.epochs == 15 and cfg.model.audio_autoencoder.epochs != 15
    plain = config_from_dict(_quick())
    assert plain.holdout_autoencoder == plain.model.audio_autoencoder  # unset: the model's own


def test_voice_vote_is_a_share() -> None:
    msg = _error(_set(_quick(), "evaluation.voice_vote", 1.5))
    assert "evaluation.voice_vote" in msg and "1.5" in msg
    assert config_from_dict(_set(_quick(), "evaluation.voice_vote", 0.05)).evaluation.voice_vote == 0.05


def test_unknown_algorithm_lists_allowed() -> None:
    msg = _error(_set(_quick(), "model.clustering.algorithm", "dbscan"))
    assert "model.clustering.algorithm" in msg and "'dbscan'" in msg
    for allowed in ("'kmeans'", "'gmm'", "'umap_gmm'"):
        assert allowed in msg


def test_missing_key() -> None:
    msg = _error(_delete(_quick(), "data.fsdd.n_mels"))
    assert "data.fsdd.n_mels: missing key" in msg
    msg = _error(_delete(_quick(), "paths"))
    assert "paths: missing key" in msg


@pytest.mark.parametrize("where", ["model.clustering.n_cluster", "extra_section", "data.fsdd.hop"])
def test_unknown_key(where: str) -> None:
    msg = _error(_set(_quick(), where, 3))
    assert f"{where}: unknown key" in msg


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        ("model.image_autoencoder.epochs", "10", "valid integer"),  # no silent "10" -> 10
        ("model.image_autoencoder.batch_size", 64.0, "valid integer"),
        ("model.image_autoencoder.batch_size", True, "valid integer"),
        ("data.mnist.normalize", "yes", "valid boolean"),
        ("model.image_autoencoder.learning_rate", "0.002", "valid number"),
        ("data.fsdd.sample_rate", 16000, "8000"),
        ("seeds", [-1], "greater than or equal to 0"),
        ("seeds", [], "at least 1"),
        ("model.image_autoencoder.validation_fraction", 0.5, "less than 0.5"),
        ("generation.core_fraction", 0.0, "greater than 0"),
        ("generation.core_fraction", 1.5, "less than or equal to 1"),
    ],
)
def test_wrong_type_or_range(key: str, value: Any, expect: str) -> None:
    msg = _error(_set(_quick(), key, value))
    assert key in msg and expect in msg


def test_all_problems_reported_at_once() -> None:
    data = _set(_quick(), "model.image_autoencoder.epochs", 0)
    _set(data, "model.clustering.algorithm", "x")
    _delete(data, "seeds")
    msg = _error(data)
    for key in ("model.image_autoencoder.epochs", "model.clustering.algorithm", "seeds"):
        assert key in msg


def test_inconsistent_audio_input_shape() -> None:
    msg = _error(_set(_quick(), "model.audio_autoencoder.input_shape", [64, 62, 1]))
    assert "model.audio_autoencoder.input_shape" in msg and "[64, 63, 1]" in msg
    # changing the hop length without the shape is caught too
    msg = _error(_set(_quick(), "data.fsdd.hop_length", 64))
    assert "model.audio_autoencoder.input_shape" in msg and "[64, 126, 1]" in msg
    # and a consistent change is accepted
    ok = _set(_set(_quick(), "data.fsdd.hop_length", 64), "model.audio_autoencoder.input_shape", [64, 126, 1])
    assert config_from_dict(ok).data.fsdd.n_frames == 126


def test_inconsistent_image_shape_and_hop() -> None:
    msg = _error(_set(_quick(), "data.mnist.resize_to", [32, 32]))
    assert "model.image_autoencoder.input_shape" in msg and "data.mnist.resize_to" in msg
    data = _set(_quick(), "data.fsdd.n_fft", 64)
    _set(data, "data.fsdd.hop_length", 80)
    _set(data, "model.audio_autoencoder.input_shape", [64, 1 + 8000 // 80, 1])
    assert "data.fsdd.hop_length must not exceed data.fsdd.n_fft" in _error(data)


@pytest.mark.parametrize(
    ("key", "value"),
    [("paths.output_dir", "../x"), ("paths.output_dir", "out/../../x"), ("paths.model_dir", "/tmp/models")],
)
def test_paths_must_stay_in_project(key: str, value: str) -> None:
    msg = _error(_set(_quick(), key, value))
    assert key in msg and "allow_external" in msg
    ok = config_from_dict(_set(_set(_quick(), key, value), "paths.allow_external", True))
    assert ok.paths.model_dump()[key.split(".")[1]] == value


def test_path_inside_project_allowed() -> None:
    cfg = config_from_dict(_set(_quick(), "paths.output_dir", "runs/a..b"))  # '..' only as a whole part
    assert cfg.run_dir(".") == Path("runs/a..b/quick")


# -- files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_files_load(tmp_path: Path, suffix: str) -> None:
    data = _set(_quick(), "model.clustering.algorithm", "kmeans")
    path = tmp_path / f"my{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    cfg = load_config(path)
    assert cfg.model.clustering.algorithm == "kmeans"
    assert cfg == config_from_dict(data)
    assert load_config(str(path)) == cfg  # str or Path


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_set(_quick(), "model.image_autoencoder.epochs", -3)))
    with pytest.raises(ConfigError, match=r"bad\.yaml[\s\S]*model\.image_autoencoder\.epochs"):
        load_config(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path)  # a folder is not a config file


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("cfg.txt", "profile: quick\n", "use a .json, .yaml or .yml file"),
        ("cfg.toml", "profile = 'quick'\n", "use a .json, .yaml or .yml file"),
        ("cfg.json", "{not json", "not valid JSON"),
        ("cfg.yaml", "a: [1, 2\n", "not valid YAML"),
        ("cfg.yaml", "", "top level must be a mapping"),
        ("cfg.json", "[1, 2]", "top level must be a mapping"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, text: str, expect: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=expect):
        load_config(path)


def test_binary_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_non_ascii_comment_loads(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_bytes(("# réglages rapides\n" + yaml.safe_dump(_quick())).encode("utf-8"))
    assert load_config(path).profile == "quick"
