"""``mmga export-web`` on a tiny fake run: the files and their manifest, ONNX against Keras, cluster
assignment from the exported arrays alone (k-means, GMM, UMAP + GMM), reuse, and a missing or
damaged run refused in one line (exit 2)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from test_generation import build_fake_run  # a sibling test module: tests/ is on sys.path
from typer.testing import CliRunner

from mmga_helpers.core.io import read_json
from mmga_helpers.generation import MMGA
from mmga_helpers.learn.clusterers import LatentGMM, LatentKMeans, UmapGMM
from mmga_helpers.tools.cli import app
from mmga_helpers.tools.webexport import NETWORKS, export_web
from mmga_helpers.tools.webformat import (
    WEB_DIR,
    WEB_MANIFEST,
    WebExportError,
    assign,
    clusterer_arrays,
    read_arrays,
    verify_web,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return build_fake_run(tmp_path_factory.mktemp("web") / "outputs" / "quick").folder


@pytest.fixture(scope="module")
def exported(run: Path):
    return export_web(run)


def test_export_writes_every_file_with_its_checksum(run: Path, exported) -> None:
    assert exported.folder == run / WEB_DIR and not exported.reused
    manifest = read_json(run / WEB_DIR / WEB_MANIFEST)
    assert manifest == exported.manifest and manifest["byte_order"] == "little"
    assert set(manifest["models"]) == set(NETWORKS)
    for entry in [*manifest["models"].values(), *manifest["arrays"].values()]:
        data = (run / WEB_DIR / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    names = {p.name for p in (run / WEB_DIR).iterdir()}
    assert names == {WEB_MANIFEST} | {e["path"] for e in [*manifest["models"].values(),
                                                           *manifest["arrays"].values()]}
    assert not [p for p in run.iterdir() if p.name.startswith(f".{WEB_DIR}")]  # no staging folder left
    m = MMGA.load(run)
    assert manifest["run"]["config_fingerprint"] == m.cfg.fingerprint() and manifest["run"]["seed"] == 0
    made = read_json(run / "mmga.json")["seeds"]["0"]["files"]
    assert manifest["run"]["artefacts"] == {k: v["sha256"] for k, v in made.items()}


def test_onnx_networks_agree_with_keras(run: Path, exported) -> None:
    m = MMGA.load(run)
    rng = np.random.default_rng(5)
    for name, entry in exported.manifest["models"].items():
        assert entry["max_abs_diff"] <= 1e-4 and entry["checked_items"] > 0
        session = ort.InferenceSession(str(run / WEB_DIR / entry["path"]), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].name == entry["input"]["name"]
        x = rng.random((7, *entry["input"]["shape"][1:]), dtype=np.float32)
        keras_out = np.asarray(m.parts[name](x, training=False))
        onnx_out = session.run(None, {entry["input"]["name"]: x})[0]
        assert onnx_out.shape == keras_out.shape and list(onnx_out.shape[1:]) == entry["output"]["shape"][1:]
        assert np.abs(onnx_out - keras_out).max() <= 1e-4, name


def test_arrays_are_what_generation_uses(run: Path, exported) -> None:
    m = MMGA.load(run)
    arrays = read_arrays(exported.folder, verify_web(exported.folder))
    for modality in ("image", "audio"):
        bank = m.parts[f"{modality}_bank"]
        np.testing.assert_array_equal(arrays[f"{modality}_bank_z"], bank.z)
        np.testing.assert_array_equal(arrays[f"{modality}_bank_clusters"], bank.clusters)
        spec = exported.manifest["clusterers"][modality]
        assert spec["algorithm"] == "kmeans" and spec["agreement"]["fraction"] == 1.0
        z = np.random.default_rng(2).normal(size=(200, bank.z.shape[1])).astype(np.float32)
        got = assign(spec, arrays, f"{modality}_clusterer", z)
        np.testing.assert_array_equal(got, m.parts[f"{modality}_clusterer"].predict(z))
    np.testing.assert_array_equal(arrays["audio_bank_frames"], m.parts["audio_bank"].frames)
    np.testing.assert_array_equal(arrays["brain_counts"], m.brain.counts_)
    links = arrays["brain_image_to_audio_links"]
    assert (links <= arrays["brain_image_to_audio_strengths"]).all() and (links.max(axis=1) > 0).all()
    assert arrays["mel_pinv"].shape == (257, 64) and arrays["hann"].shape == (512,)
    assert exported.manifest["audio"]["n_frames"] == 63 and exported.manifest["image"]["standardize"]


def test_an_up_to_date_export_is_reused_and_a_damaged_one_rewritten(run: Path, exported) -> None:
    assert export_web(run).reused
    victim = run / WEB_DIR / exported.manifest["arrays"]["image_bank_z"]["path"]
    victim.write_bytes(victim.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(WebExportError, match=r"image_bank_z\.bin .* does not match its manifest"):
        verify_web(run / WEB_DIR)
    again = export_web(run)
    assert not again.reused and verify_web(again.folder) == again.manifest


def _mixture_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three blobs in 4-D, and query points between and around them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(3, 4))
    x = np.concatenate([c + rng.normal(size=(80, 4)) * (1 + i) for i, c in enumerate(centres)])
    return x, rng.normal(scale=5.0, size=(400, 4))


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical"])
def test_assign_reproduces_a_gaussian_mixture(kind: str) -> None:
    x, queries = _mixture_like()
    gmm = LatentGMM(3, covariance_type=kind, random_state=0).fit(x)
    spec, arrays = clusterer_arrays("c", gmm)
    np.testing.assert_array_equal(assign(spec, arrays, "c", queries), gmm.predict(queries))


def test_assign_reproduces_umap_gmm_and_kmeans() -> None:
    """UMAP + GMM placed by the exported neighbours' vote, float32 training rows included; the
    estimator is rebuilt from arrays (a random 'embedding'), so umap itself is not needed here."""
    from sklearn.mixture import GaussianMixture

    x, queries = _mixture_like(1)
    rng = np.random.default_rng(3)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    embedding = np.concatenate([rng.normal(loc=4 * i, size=(80, 2)) for i in range(3)])
    gm = GaussianMixture(3, random_state=0).fit(embedding)
    state = {"mean_": mean, "scale_": scale, "train_inputs_": (x - mean) / scale, "embedding_": embedding,
             "labels_": gm.predict(embedding), "n_features_in_": np.asarray(4)}
    state.update({f"mixture.{k}": getattr(gm, k) for k in ("weights_", "means_", "covariances_",
                                                            "precisions_cholesky_")})
    umap_gmm = UmapGMM(n_clusters=3, n_components=2, n_neighbors=7)
    umap_gmm._set_state(state)
    spec, arrays = clusterer_arrays("u", umap_gmm)
    assert spec["n_neighbors"] == 7 and arrays["u_train_inputs"].dtype == np.float32
    codes = np.concatenate([x, queries])
    agree = (assign(spec, arrays, "u", codes) == umap_gmm.predict(codes)).mean()
    assert agree >= 0.99, agree
    km = LatentKMeans(3, n_init=2, random_state=0).fit(x)
    spec, arrays = clusterer_arrays("k", km)
    np.testing.assert_array_equal(assign(spec, arrays, "k", queries), km.predict(queries))


# -- the command ----------------------------------------------------------------------------------------
def _one_line_failure(args: list[str]) -> str:
    res = CliRunner().invoke(app, ["export-web", *args])
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    return res.output


def test_command_reuses_an_export_and_refuses_a_missing_or_damaged_run(run: Path, exported, tmp_path) -> None:
    res = CliRunner().invoke(app, ["export-web", "--run", str(run)])
    assert res.exit_code == 0, res.output
    assert "web export up to date" in res.output and str(run / WEB_DIR) in res.output.replace("\n", "")
    assert "is not a finished MMGA run" in _one_line_failure(["--run", str(tmp_path / "missing")])
    copy = Path(shutil.copytree(run, tmp_path / "quick"))
    decoder = copy / "models" / "seed0" / "audio_autoencoder" / "decoder.keras"
    decoder.write_bytes(decoder.read_bytes() + b"\0")
    assert "changed since the manifest" in _one_line_failure(["--run", str(copy)])
    (copy / "mmga.json").write_text('{"config": ')
    assert "mmga.json is damaged" in _one_line_failure(["--run", str(copy)])
    assert "no generator for seed 7" in _one_line_failure(["--run", str(run), "--seed", "7"])


def test_the_book_refreshes_the_export_in_a_process_of_its_own(run: Path, exported, tmp_path) -> None:
    from mmga_helpers.tools.book import refresh_web_export

    said: list[str] = []
    assert refresh_web_export(run, said.append)
    assert said == [said[-1]] and said[-1].startswith(f"web export up to date: {run / WEB_DIR}")
    assert not refresh_web_export(tmp_path, said.append) and len(said) == 1  # not a finished run: silent
