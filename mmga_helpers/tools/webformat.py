"""The format of ``mmga export-web`` (``<run>/web/``), read back: its manifest checked file by file
(:func:`verify_web`), its raw arrays (:func:`read_arrays`), and cluster assignment computed from
those arrays alone (:func:`assign`), the reference a browser's implementation follows.

Every array is a raw little-endian file (``float32``, ``float64`` or ``int32``, the dtypes
JavaScript's typed arrays read), named with its shape, dtype, size and sha256 in ``manifest.json``.

k-means (nearest centre) and the Gaussian mixture (the largest weighted log-likelihood) are
reproduced exactly from their parameters. UMAP + GMM needs no UMAP: its ``predict`` is already a
vote of the new code's nearest training codes (:class:`~mmga_helpers.learn.clusterers.UmapGMM`), so
the standardised training codes (float32) and their mixture memberships are exported, and a
browser searches them by brute force; float32 rounding can move a near tie, which is why the export
measures and records the agreement.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from mmga_helpers.core.io import read_json
from mmga_helpers.learn.clusterers import LatentGMM, LatentKMeans, UmapGMM

WEB_DIR = "web"
WEB_MANIFEST = "manifest.json"
FORMAT, FORMAT_VERSION = "mmga-web", 1
DTYPES = {"float32": "<f4", "float64": "<f8", "int32": "<i4"}


class WebExportError(RuntimeError):
    """The web export cannot be made or read; the message is one line."""


# -- reading an export --------------------------------------------------------------------------------
def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data``, as the manifest writes it (hex)."""
    return hashlib.sha256(data).hexdigest()


def verify_web(folder: str | Path) -> dict[str, Any]:
    """The manifest of the export in ``folder``, after checking every file it names (present, of the
    size its shape and dtype make, with its sha256); a :class:`WebExportError` names the first bad one."""
    folder = Path(folder)
    path = folder / WEB_MANIFEST
    if not path.is_file():
        raise WebExportError(f"{folder} holds no web export ({WEB_MANIFEST} missing); run `mmga export-web`")
    manifest = read_json(path)
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise WebExportError(f"{path} is not a {FORMAT} manifest of version {FORMAT_VERSION}")
    for key, entry in [*manifest["models"].items(), *manifest["arrays"].items()]:
        file = folder / entry["path"]
        if not file.is_file():
            raise WebExportError(
                f"{folder}: {entry['path']} ({key}) is missing; run `mmga export-web --force`"
            )
        data = file.read_bytes()
        want = entry["bytes"]
        if "dtype" in entry:
            want = int(np.prod(entry["shape"], dtype=np.int64)) * np.dtype(DTYPES[entry["dtype"]]).itemsize
        if len(data) != want or sha256_hex(data) != entry["sha256"]:
            raise WebExportError(
                f"{folder}: {entry['path']} ({key}) does not match its manifest (size or sha256); "
                "run `mmga export-web --force`"
            )
    return manifest


def read_arrays(folder: str | Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every exported array, read back as a browser would: raw bytes, the manifest's dtype and shape."""
    out = {}
    for key, entry in manifest["arrays"].items():
        raw = (Path(folder) / entry["path"]).read_bytes()
        out[key] = np.frombuffer(raw, dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return out


# -- cluster assignment from the exported arrays --------------------------------------------------------
def clusterer_arrays(prefix: str, clusterer: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The description (algorithm, rule, array names) and arrays that :func:`assign` needs to place
    codes as ``clusterer.predict`` does. Gaussian precisions are written as full ``[k, d, d]``
    Cholesky factors whatever the covariance type, so a browser has one rule."""
    if isinstance(clusterer, LatentKMeans):
        spec = {"algorithm": "kmeans", "rule": "the nearest centre (Euclidean)"}
        return spec, {f"{prefix}_centres": np.asarray(clusterer.cluster_centers_, np.float32)}
    if isinstance(clusterer, LatentGMM):
        gm = clusterer.mixture_
        k, d = gm.means_.shape
        chol, kind = np.asarray(gm.precisions_cholesky_), gm.covariance_type
        full = {"full": lambda: chol, "tied": lambda: np.broadcast_to(chol, (k, d, d)),
                "diag": lambda: chol[:, :, None] * np.eye(d),
                "spherical": lambda: chol[:, None, None] * np.eye(d)}
        spec = {"algorithm": "gmm", "rule": "argmax_k log w_k + sum_j log L_k[j, j] - 0.5 |(x - mu_k) L_k|^2 "
                "(x a row vector, L_k the component's precision Cholesky factor)"}
        return spec, {
            f"{prefix}_weights": np.asarray(gm.weights_, np.float64),
            f"{prefix}_means": np.asarray(gm.means_, np.float64),
            f"{prefix}_precisions_cholesky": np.ascontiguousarray(full[kind](), np.float64),
        }
    if isinstance(clusterer, UmapGMM):
        spec = {
            "algorithm": "umap_gmm",
            "n_neighbors": int(clusterer.neighbors_.n_neighbors),
            "rule": "s = (x - mean) / scale; the n_neighbors training rows nearest s (Euclidean) vote "
            "with their memberships, weighted by 1 / distance (only exact matches, distance <= 1e-12, "
            "when there are any); the cluster is the argmax of the weighted mean membership",
        }
        return spec, {
            f"{prefix}_mean": np.asarray(clusterer.mean_, np.float64),
            f"{prefix}_scale": np.asarray(clusterer.scale_, np.float64),
            f"{prefix}_train_inputs": np.asarray(clusterer.train_inputs_, np.float32),
            f"{prefix}_train_posteriors": np.asarray(clusterer.train_posteriors_, np.float32),
        }
    raise WebExportError(
        f"cannot export a {type(clusterer).__name__} for a browser (only k-means, GMM, UMAP + GMM)"
    )


def assign(spec: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str, z: np.ndarray) -> np.ndarray:
    """Cluster of each code ``z`` computed from the exported arrays alone, in float64 as JavaScript
    computes: the reference a browser implementation is checked against."""
    x = np.asarray(z, np.float64)
    start = len(prefix) + 1
    a = {k[start:]: np.asarray(v, np.float64) for k, v in arrays.items() if k.startswith(prefix + "_")}
    if spec["algorithm"] == "kmeans":
        return (((x[:, None, :] - a["centres"][None]) ** 2).sum(axis=2)).argmin(axis=1)
    if spec["algorithm"] == "gmm":
        chol = a["precisions_cholesky"]
        y = np.einsum("nd,kde->nke", x, chol) - np.einsum("kd,kde->ke", a["means"], chol)[None]
        log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        return (np.log(a["weights"]) + log_det - 0.5 * (y**2).sum(axis=2)).argmax(axis=1)
    if spec["algorithm"] == "umap_gmm":
        s, train, k = (x - a["mean"]) / a["scale"], a["train_inputs"], spec["n_neighbors"]
        out = np.empty(len(x), np.int64)
        for lo in range(0, len(x), 256):
            d = np.sqrt(((s[lo : lo + 256, None, :] - train[None]) ** 2).sum(axis=2))
            idx = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.argsort(d, axis=1)
            dist = np.take_along_axis(d, idx, axis=1)
            exact = dist <= 1e-12
            w = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / np.maximum(dist, 1e-12))
            out[lo : lo + 256] = np.einsum("nk,nkc->nc", w, a["train_posteriors"][idx]).argmax(axis=1)
        return out
    raise WebExportError(f"unknown clustering algorithm {spec['algorithm']!r} in a web manifest")
