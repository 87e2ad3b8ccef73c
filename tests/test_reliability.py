"""Reliability across the package: artefacts that cannot run code, seeded determinism of the
clustering stage, and an outputs folder that cannot be written or fills up."""

from __future__ import annotations

import ast
import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mmga_helpers.core import io as mio
from mmga_helpers.core.io import OutputError, read_json

PACKAGE = Path(__file__).resolve().parents[1] / "mmga_helpers"


# -- safe artefacts ---------------------------------------------------------------------------------------
def test_keras_file_with_lambda_is_refused(tmp_path: Path) -> None:
    import keras

    from mmga_helpers.learn.models import load_model

    inp = keras.Input((3,))
    out = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(keras.layers.Dense(2)(inp))
    path = tmp_path / "evil.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ValueError, match=r"evil\.keras: refused, it holds a Lambda layer") as err:
        load_model(path)
    assert "\n" not in str(err.value)

    plain = tmp_path / "plain.keras"
    keras.Model(inp, keras.layers.Dense(2)(inp)).save(plain)
    assert load_model(plain).output_shape == (None, 2)  # a model without Lambda loads


@pytest.mark.parametrize("loader", ["clusterer", "brain"])
def test_model_files_with_pickled_objects_are_refused(tmp_path: Path, loader: str) -> None:
    """An ``.npz`` that would need pickle (object arrays) is refused by every model loader."""
    from mmga_helpers.learn.brain import ConvergenceDivergenceZone
    from mmga_helpers.learn.clustering import load_clusterer

    path = tmp_path / "model.npz"
    np.savez(path, __meta__=np.array('{"kind": "LatentKMeans"}'), payload=np.array([object()], dtype=object))
    load = load_clusterer if loader == "clusterer" else ConvergenceDivergenceZone.load
    with pytest.raises(ValueError, match="allow_pickle"):
        load(path)


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def unsafe_uses(package: Path) -> list[str]:
    """Imports of a pickling module; ``allow_pickle=True``, ``safe_mode=False``,
    ``read_pickle``/``to_pickle``, ``eval``/``exec`` calls, in every module under ``package``."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package.parent)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                names = []
            problems += [f"{where}:{node.lineno}: imports {n}" for n in names if n in UNSAFE_MODULES]
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    value = getattr(kw.value, "value", None)
                    if (kw.arg, value) in (("allow_pickle", True), ("safe_mode", False)):
                        problems.append(f"{where}:{node.lineno}: {kw.arg}={value}")
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("read_pickle", "to_pickle", "eval", "exec"):
                    problems.append(f"{where}:{node.lineno}: calls {name}")
    return problems


def test_no_module_uses_pickle() -> None:
    assert len(list(PACKAGE.rglob("*.py"))) >= 10
    problems = unsafe_uses(PACKAGE)
    assert not problems, "\n".join(problems)


def test_pickle_check_catches_offenders(tmp_path: Path) -> None:
    """The check above is not vacuous: it flags each kind of offence in a planted module."""
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "ok.py").write_text("import numpy as np\nnp.load('x', allow_pickle=False)\n")
    (fake / "bad.py").write_text(
        "import joblib\nfrom pickle import loads\nimport numpy as np\nnp.load('x', allow_pickle=True)\n"
        "import keras\nkeras.models.load_model('m', safe_mode=False)\n"
        "import pandas as pd\npd.read_pickle('p')\n"
    )
    found = unsafe_uses(fake)
    assert found == [
        "pkg/bad.py:1: imports joblib",
        "pkg/bad.py:2: imports pickle",
        "pkg/bad.py:4: allow_pickle=True",
        "pkg/bad.py:6: safe_mode=False",
        "pkg/bad.py:8: calls read_pickle",
    ]


# -- determinism of the clustering stage -----------------------------------------------------------------
@pytest.fixture(scope="module")
def latents() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs

    return make_blobs(n_samples=300, n_features=6, centers=4, cluster_std=2.5, random_state=3)


@pytest.mark.parametrize("name", ["kmeans", "gmm", "umap_gmm"])
def test_clustering_is_repeatable(latents, name: str) -> None:
    """Same data and seed: identical labels, predictions and figures of merit; the fits are
    independent (no shared state between the two)."""
    from mmga_helpers.core.config import load_config
    from mmga_helpers.core.metrics import cluster_acc, cluster_scores
    from mmga_helpers.learn.clustering import make_clusterer

    X, y = latents
    cfg = load_config("quick").model.clustering.model_copy(
        update={"umap_n_neighbors": 10, "umap_n_components": 3}
    )
    a = make_clusterer(name, 4, cfg, random_state=5).fit(X)
    b = make_clusterer(name, 4, cfg, random_state=5).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    # the pipeline reads a cached clusterer's training ids off labels_ instead of predicting again
    np.testing.assert_array_equal(a.predict(X), a.labels_)
    probe = X[:50] + np.random.default_rng(0).normal(scale=0.3, size=(50, X.shape[1]))
    np.testing.assert_array_equal(a.predict(probe), b.predict(probe))
    assert cluster_acc(y, a.labels_) == cluster_acc(y, b.labels_)
    sa, sb = cluster_scores(y, a.labels_, X), cluster_scores(y, b.labels_, X)
    assert sa == sb and all(np.isfinite(v) for v in sa.values())


def test_brain_sampling_is_repeatable() -> None:
    from mmga_helpers.learn.brain import ConvergenceDivergenceZone

    rng = np.random.default_rng(0)
    brain = ConvergenceDivergenceZone(4, 6).fit(rng.integers(0, 4, 500), rng.integers(0, 6, 500))
    ids = rng.integers(0, 4, 200)
    first = brain.predict_audio(ids, mode="sample", random_state=11)
    np.testing.assert_array_equal(first, brain.predict_audio(ids, mode="sample", random_state=11))
    assert not np.array_equal(first, brain.predict_audio(ids, mode="sample", random_state=12))


# -- the outputs folder ---------------------------------------------------------------------------------
@pytest.fixture
def run(tmp_path: Path):
    from mmga_helpers.core.config import load_config
    from mmga_helpers.stages.run import Run

    return Run(load_config("quick"), seed=0, root=tmp_path)


def test_unwritable_outputs_folder(run, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmga_helpers.stages.run import record_metrics

    def refuse(*args, **kwargs):  # root ignores chmod: refuse the temporary file instead
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError) as err:
        record_metrics(run, {"image.reconstruction.mse": 0.1})
    msg = str(err.value)
    assert err.value.errno == errno.EACCES and "\n" not in msg
    assert f"cannot write under {run.dir}" in msg and "writable" in msg
    assert not (run.dir / "metrics.json").exists()


def test_full_disk_keeps_earlier_metrics(run, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmga_helpers.stages.run import record_metrics

    record_metrics(run, {"image.reconstruction.mse": 0.1})
    before = {p.name: p.read_bytes() for p in run.dir.iterdir()}

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mio.os, "replace", full)
    with pytest.raises(OutputError, match=r"metrics_per_seed\.json: the disk is full; the previous version"):
        record_metrics(run, {"image.reconstruction.mse": 0.2})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in run.dir.iterdir()} == before  # nothing half-written, no temp
    assert read_json(run.dir / "metrics.json")["image"]["reconstruction"]["mse"]["mean"] == 0.1
