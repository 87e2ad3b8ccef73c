"""``mmga export-web``: a finished run, in files a browser can read, in ``<run>/web/``
(the format: :mod:`mmga_helpers.tools.webformat`).

* ``image_encoder.onnx``, ``image_decoder.onnx``, ``audio_encoder.onnx``, ``audio_decoder.onnx``:
  the four networks (Keras' ONNX export through tf2onnx), each run by onnxruntime beside Keras on
  realistic inputs before it is kept; the largest difference is recorded (at most
  :data:`ONNX_TOLERANCE`, else nothing is written).
* ``*.bin``: raw little-endian arrays: the latent banks with each audio member's natural length,
  the brain's link tables, what assigns a code to a cluster, and the audio front end's mel filter
  bank, its pseudo-inverse and Hann window.
* ``manifest.json``, written last: every file's shape, dtype, size and sha256, the constants of the
  path (image normalisation, audio front end, Griffin-Lim, generation), the measured agreement of
  the exported cluster assignment with the run's, and what ties the export to its run: the seed,
  the config fingerprint and the sha256 of each artefact ``mmga.json`` names.

The folder is assembled beside ``web/`` and swapped in whole. Nothing is unpickled: the run is
opened through :meth:`MMGA.load <mmga_helpers.generation.MMGA.load>`, which checks every artefact.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from mmga_helpers.core.config import ConfigError
from mmga_helpers.core.io import OutputError, atomic_write_bytes, read_json, write_json, write_with
from mmga_helpers.core.paths import locate
from mmga_helpers.generation import MANIFEST, MMGA, RunFolderError
from mmga_helpers.learn.brain import DIRECTIONS, ConvergenceDivergenceZone
from mmga_helpers.modalities import audio, digits
from mmga_helpers.modalities.features import DEFAULT_FRAMES
from mmga_helpers.tools.webformat import (
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    WEB_DIR,
    WEB_MANIFEST,
    WebExportError,
    assign,
    clusterer_arrays,
    read_arrays,
    sha256_hex,
    verify_web,
)

ONNX_TOLERANCE = 1e-4  # largest |onnxruntime - Keras| an exported network may show
MIN_AGREEMENT = 0.99  # share of codes assign() must place as the run's clusterer does
NETWORKS = ("image_encoder", "image_decoder", "audio_encoder", "audio_decoder")
_FRONT_END = ("sample_rate", "duration", "normalize", "n_fft", "hop_length", "n_mels", "top_db",
              "griffin_lim_iters", "time_normalize")  # the data.fsdd keys the hear/see path reads


@dataclass
class WebExport:
    """Where the export is, its manifest, and whether an up-to-date one was reused."""

    folder: Path
    manifest: dict[str, Any]
    reused: bool = False

    def total_bytes(self) -> int:
        entries = [*self.manifest["models"].values(), *self.manifest["arrays"].values()]
        return sum(int(e["bytes"]) for e in entries)


# -- the networks ---------------------------------------------------------------------------------------
def _check_export_tools() -> None:
    if util.find_spec("tf2onnx") is None:
        raise WebExportError("tf2onnx is not installed; install the pinned packages (make venv)")


def _onnx_entry(path: Path, model: Any, x: np.ndarray) -> dict[str, Any]:
    """Run ``path`` with onnxruntime and ``model`` with Keras on ``x``; the manifest entry."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    got = session.run(None, {inp.name: x.astype(np.float32)})[0]
    diff = float(np.abs(got - np.asarray(model(x, training=False))).max())
    if not diff <= ONNX_TOLERANCE:
        raise WebExportError(
            f"{path.name}: onnxruntime differs from Keras by {diff:.3g} (> {ONNX_TOLERANCE:g}); not exported"
        )
    proto = onnx.load(str(path), load_external_data=False)
    data = path.read_bytes()

    def io(arg: Any) -> dict[str, Any]:  # a named (symbolic) dimension is the batch: null
        return {"name": arg.name, "dtype": "float32",
                "shape": [d if isinstance(d, int) else None for d in arg.shape]}

    return {
        "path": path.name, "bytes": len(data), "sha256": sha256_hex(data),
        "input": io(inp), "output": io(out),
        "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "ir_version": int(proto.ir_version), "max_abs_diff": diff, "checked_items": len(x),
    }


def _export_network(model: Any, path: Path, x: np.ndarray) -> dict[str, Any]:
    model(np.zeros((1, *model.inputs[0].shape[1:]), np.float32), training=False)  # export needs one call
    quiet = logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # keras' tf2onnx shim probes np.object
            warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
            write_with(path, lambda tmp: model.export(str(tmp), format="onnx", verbose=False), suffix=".onnx")
    finally:
        quiet.setLevel(level)
    return _onnx_entry(path, model, x)


def _check_inputs(m: MMGA, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Realistic inputs for each network: bank codes and noisy ones for the decoders, what the
    decoders make of them (and uniform noise) for the encoders."""
    out = {}
    for modality in ("image", "audio"):
        z = m.parts[f"{modality}_bank"].z
        pick = z[rng.choice(len(z), size=min(n, len(z)), replace=False)].astype(np.float32)
        noisy = (pick + rng.normal(size=pick.shape) * z.std(axis=0)).astype(np.float32)
        out[f"{modality}_decoder"] = np.concatenate([pick, noisy])
        decoded = np.asarray(m.parts[f"{modality}_decoder"](pick, training=False))
        noise = rng.random((len(pick) // 4 + 1, *decoded.shape[1:]), dtype=np.float32)
        out[f"{modality}_encoder"] = np.concatenate([decoded, noise]).astype(np.float32)
    return out


# -- everything else ------------------------------------------------------------------------------------
def _brain_arrays(brain: ConvergenceDivergenceZone) -> dict[str, np.ndarray]:
    """The counts, and per direction the strengths (``mode="argmax"`` takes a row's largest) and the
    weights ``mode="sample"`` draws a target with (:meth:`ConvergenceDivergenceZone.draw_weights`)."""
    out = {"brain_counts": np.asarray(brain.counts_, np.int32)}
    for direction in DIRECTIONS:
        out[f"brain_{direction}_strengths"] = np.asarray(brain.strengths_[direction], np.float64)
        out[f"brain_{direction}_links"] = brain.draw_weights(direction)
    return out


def _constants(m: MMGA) -> dict[str, Any]:
    cfg, fs = m.cfg, m.cfg.data.fsdd
    momentum = inspect.signature(audio.griffinlim).parameters["momentum"].default
    return {
        "image": {
            "input": "[N, 28, 28, 1] float32 in [0, 1], white ink on black (NHWC)",
            "standardize": cfg.data.mnist.standardize, "normalize": cfg.data.mnist.normalize,
            "recipe": "modalities.digits.normalize_digits", "size": digits.SIZE, "centre": digits.CENTRE,
            "box": digits.BOX, "max_side": digits.MAX_SIDE, "noise_floor": digits.NOISE_FLOOR,
            "min_side": digits.MIN_SIDE, "min_contrast": digits.MIN_CONTRAST, "luma": [0.299, 0.587, 0.114],
        },
        "audio": {
            **{key: getattr(fs, key) for key in _FRONT_END},
            "n_samples": fs.n_samples, "n_frames": fs.n_frames,
            "n_bins": fs.n_fft // 2 + 1, "db_floor": audio.DB_FLOOR, "db_ceil": audio.DB_CEIL,
            "amin": audio.AMIN, "silence_peak": audio.SILENCE_PEAK, "power_mask_db": audio.DB_FLOOR + 1e-3,
            "default_frames": DEFAULT_FRAMES, "griffin_lim_momentum": momentum,
            "window": "periodic Hann, centred frames, zero padding of n_fft // 2",
            "unit": "(db - db_floor) / (db_ceil - db_floor), clipped to [0, 1]",
            "input": "[N, n_mels, n_frames, 1] float32 unit log-mel (mels x frames)",
            "resampling": "soxr_hq in Python; a browser's own resampler is an approximation",
        },
        "generation": {**cfg.generation.model_dump(mode="json"), "modes": ["sample", "argmax"],
                       "default_mode": "sample", "link_threshold": float(m.brain.link_threshold),
                       "convergence_threshold": float(m.brain.convergence_threshold)},
    }


def _write_array(folder: Path, key: str, arr: np.ndarray) -> dict[str, Any]:
    """``arr`` as raw little-endian ``int32`` (integers), ``float64`` (doubles kept) or ``float32``."""
    kind = "float64" if arr.dtype == np.float64 else "float32"
    kind = "int32" if np.issubdtype(arr.dtype, np.integer) else kind
    data = np.ascontiguousarray(arr, dtype=DTYPES[kind]).tobytes()
    atomic_write_bytes(folder / f"{key}.bin", data)
    return {"path": f"{key}.bin", "dtype": kind, "shape": list(arr.shape), "bytes": len(data),
            "sha256": sha256_hex(data)}


def _run_ties(folder: Path, m: MMGA) -> dict[str, Any]:
    made = read_json(folder / MANIFEST)
    files = made["seeds"][str(m.seed)]["files"]
    return {"profile": m.cfg.profile, "seed": m.seed, "config_fingerprint": m.cfg.fingerprint(),
            "artefacts": {k: v["sha256"] for k, v in sorted(files.items())}}


def _fresh(out: Path, ties: dict[str, Any]) -> dict[str, Any] | None:
    try:
        manifest = verify_web(out)
    except (WebExportError, OSError, ValueError, KeyError):
        return None
    return manifest if manifest.get("run") == ties else None


def _swap_in(stage: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``stage`` folder (two renames: never a half-written ``out``)."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_line(
    run: str | Path,
    seed: int | None = None,
    *,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """:func:`export_web` for a command: one line saying what was written, or why nothing was, and
    whether it worked (a missing or damaged run, a network or clusterer not reproduced, a disk error)."""
    try:
        done = export_web(run, seed, force=force, echo=echo)
    except (RunFolderError, WebExportError, ConfigError, OutputError) as err:
        return " ".join(str(err).split()), False
    except OSError as err:
        return f"{err.filename or run}: {err.strerror or err}; nothing was exported", False
    what = "up to date" if done.reused else "written"
    return (f"web export {what}: {done.folder} ({len(done.manifest['models'])} networks, "
            f"{len(done.manifest['arrays'])} arrays, {done.total_bytes() / 1e6:.2f} MB)"), True


def export_web(
    run: str | Path,
    seed: int | None = None,
    out: str | Path | None = None,
    *,
    force: bool = False,
    check_items: int = 128,
    echo: Callable[[str], None] | None = None,
) -> WebExport:
    """Write ``run`` (a finished run folder) for a browser into ``out`` (default ``<run>/web``).

    An export already there for the same seed, configuration and artefacts is reused unless ``force``.
    Raises :class:`~mmga_helpers.generation.RunFolderError` for a missing or damaged run and
    :class:`WebExportError` when a network or a clusterer cannot be reproduced closely enough."""
    folder = locate(run)
    m = MMGA.load(folder, seed)
    out = Path(out) if out is not None else folder / WEB_DIR
    ties = _run_ties(folder, m)
    if not force and (manifest := _fresh(out, ties)) is not None:
        return WebExport(out, manifest, reused=True)
    _check_export_tools()
    echo = echo or (lambda _msg: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial.", dir=out.parent))
    os.chmod(stage, out.parent.stat().st_mode & 0o777)  # mkdtemp's 0700 would hide it from a web server
    try:
        manifest = _write_export(stage, m, ties, check_items, echo)
        _swap_in(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return WebExport(out, manifest)


def _write_export(
    stage: Path, m: MMGA, ties: dict[str, Any], check_items: int, echo: Callable[[str], None]
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    inputs = _check_inputs(m, rng, check_items)
    models = {}
    for name in NETWORKS:
        models[name] = _export_network(m.parts[name], stage / f"{name}.onnx", inputs[name])
        echo(f"{name}.onnx: {models[name]['bytes'] / 1e3:.0f} kB, |onnxruntime - Keras| <= "
             f"{models[name]['max_abs_diff']:.2g}")
    fs = m.cfg.data.fsdd
    arrays: dict[str, np.ndarray] = {
        "image_bank_z": m.parts["image_bank"].z, "image_bank_clusters": m.parts["image_bank"].clusters,
        "audio_bank_z": m.parts["audio_bank"].z, "audio_bank_clusters": m.parts["audio_bank"].clusters,
        "audio_bank_frames": m.parts["audio_bank"].frames,
        **_brain_arrays(m.brain),
        "mel_basis": audio._mel_basis(fs), "mel_pinv": audio._mel_pinv(fs), "hann": audio._hann(fs.n_fft),
    }
    clusterers = {}
    for modality in ("image", "audio"):
        prefix = f"{modality}_clusterer"
        spec, own = clusterer_arrays(prefix, m.parts[prefix])
        arrays.update(own)
        clusterers[modality] = {**spec, "arrays": sorted(own), "n_clusters": int(m.parts[prefix].n_clusters)}
    entries = {key: _write_array(stage, key, np.asarray(arr)) for key, arr in arrays.items()}
    stored = read_arrays(stage, {"arrays": entries})
    for modality in ("image", "audio"):  # agreement of the browser's rule with the run's clusterer
        prefix, z = f"{modality}_clusterer", inputs[f"{modality}_decoder"]
        trip = np.asarray(m.parts[f"{modality}_encoder"](inputs[f"{modality}_encoder"], training=False))
        codes = np.concatenate([m.parts[f"{modality}_bank"].z, z, trip]).astype(np.float32)
        same = assign(clusterers[modality], stored, prefix, codes) == m.parts[prefix].predict(codes)
        clusterers[modality]["agreement"] = {"fraction": float(same.mean()), "codes": int(same.size)}
        echo(f"{modality} clusters ({clusterers[modality]['algorithm']}): the exported rule agrees on "
             f"{same.mean():.4f} of {same.size} codes")
        if same.mean() < MIN_AGREEMENT:
            raise WebExportError(
                f"the exported {modality} clusterer agrees with the run's on only {same.mean():.3f} of codes"
            )
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "byte_order": "little", "run": ties,
        "models": models, "arrays": entries, "clusterers": clusterers, **_constants(m),
        "latent_dims": {k: int(m.parts[f"{k}_bank"].z.shape[1]) for k in ("image", "audio")},
        "versions": {p: metadata.version(p) for p in ("keras", "tf2onnx", "onnx", "onnxruntime")},
        "onnx_tolerance": ONNX_TOLERANCE,
    }
    write_json(stage / WEB_MANIFEST, manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``python -m mmga_helpers.tools.webexport RUN``: what ``mmga book`` runs, in a process of its
    own (the book's stays free of TensorFlow). Prints one line last; exit 2 when nothing was exported."""
    parser = argparse.ArgumentParser(prog="python -m mmga_helpers.tools.webexport", description=main.__doc__)
    parser.add_argument("run", help="a finished run folder (holding mmga.json)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    line, ok = export_line(args.run, args.seed, force=args.force, echo=print)
    print(line)
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
