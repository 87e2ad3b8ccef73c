"""Benchmarks on tiny inputs: the structure of what they report and that every figure is a positive,
finite number. No timing thresholds here: speed is measured by ``mmga bench``, not by tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_generation import build_fake_run, tone  # a sibling test module: tests/ is on sys.path
from test_training import tiny_cfg as _tiny_cfg

from mmga_helpers.core import machine
from mmga_helpers.core.config import AutoencoderConfig
from mmga_helpers.core.io import write_json
from mmga_helpers.tools import bench, throughput


def tiny_cfg(**changes) -> AutoencoderConfig:
    """test_training's tiny autoencoder, one epoch: a benchmark needs no convergence."""
    return _tiny_cfg(**{"epochs": 1, "patience": 1, **changes})


def positive(value) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


@pytest.fixture(autouse=True)
def private_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """outputs/<profile> is relative to the working directory: keep it out of the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- FLOPs ----------------------------------------------------------------------------------------------
def test_macs_counted_by_hand() -> None:
    from mmga_helpers.learn.models import build_autoencoder

    ae = build_autoencoder(tiny_cfg(), "tiny")
    encoder = {"enc0_conv": 14 * 14 * (3 * 3 * 1 * 4), "latent": 14 * 14 * 4 * 2}
    decoder = {
        "dec_dense": 2 * 14 * 14 * 4,
        "dec0_deconv": 14 * 14 * (3 * 3 * 4 * 4),  # per input pixel: the whole kernel
        "reconstruction": 28 * 28 * (3 * 3 * 4 * 1),
    }
    assert throughput.model_macs(ae.encoder) == encoder
    assert throughput.model_macs(ae.decoder) == decoder
    assert throughput.model_macs(ae.autoencoder) == {**encoder, **decoder}  # nested models are counted
    assert throughput.model_flops(ae.encoder) == 2 * sum(encoder.values())


def test_macs_of_the_cropped_audio_model() -> None:
    from mmga_helpers.core.config import load_config
    from mmga_helpers.learn.models import build_autoencoder

    cfg = load_config("quick").model.audio_autoencoder
    ae = build_autoencoder(cfg, "audio")
    macs = throughput.model_macs(ae.autoencoder)
    n_blocks = len(cfg.encoder_layers)
    assert len(macs) == 2 * n_blocks + 3  # convs, deconvs, latent, dec_dense, reconstruction
    h, w = cfg.input_shape[:2]
    assert macs["reconstruction"] == h * w * 9 * cfg.decoder_layers[-1]  # after the crop: the input size
    assert macs["enc0_conv"] == math.ceil(h / 2) * math.ceil(w / 2) * 9 * cfg.encoder_layers[0]


# -- the machine ---------------------------------------------------------------------------------------
def test_matmul_rate_and_memory() -> None:
    rate = throughput.matmul_rate(n=64, repeats=1)
    assert rate["n"] == 64 and positive(rate["numpy_gflops"]) and positive(rate["tensorflow_gflops"])
    mem = machine.memory()
    assert set(mem) == {"peak_rss_mib", "peak_rss_children_mib", "rss_now_mib"}
    assert positive(mem["peak_rss_mib"]) and mem["peak_rss_mib"] >= mem["rss_now_mib"] * 0.5
    info = machine.machine()
    assert info["cores"] >= 1 and len(info["load_average_1_5_15_min"]) == 3


# -- throughput ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("convergence", [False, True])
def test_training_throughput(convergence: bool) -> None:
    x = np.random.default_rng(0).random((96, 28, 28, 1), dtype=np.float32)
    cfg = tiny_cfg()
    if convergence:  # the model as an encoder with feedback trains it: with its convergence head
        cfg = cfg.model_copy(update={"convergence_weight": 1.0})
    out = throughput.training_throughput(cfg, x, "tiny", rounds=1)
    assert (out["n_train"], out["n_val"], out["batch_size"], out["rounds"]) == (86, 10, 32, 1)
    for key in ("pipeline_samples_per_s", "bare_fit_samples_per_s", "ratio"):
        assert positive(out[key]), key
    assert len(out["pipeline_epoch_s"]) == len(out["bare_fit_epoch_s"]) == 2
    assert all(positive(s) for s in out["pipeline_epoch_s"] + out["bare_fit_epoch_s"])
    assert out["ratio"] == pytest.approx(out["pipeline_samples_per_s"] / out["bare_fit_samples_per_s"])
    assert isinstance(out["target_met"], bool)


def test_encoder_throughput() -> None:
    from mmga_helpers.learn.models import build_autoencoder

    encoder = build_autoencoder(tiny_cfg(), "tiny").encoder
    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    out = throughput.encoder_throughput(encoder, x, gflops=10.0, repeats=1)
    assert out["n"] == 64
    for key in ("seconds", "items_per_s", "mflops_per_item", "bound_s", "fraction_of_bound"):
        assert positive(out[key]), key
    assert out["mflops_per_item"] == pytest.approx(throughput.model_flops(encoder) / 1e6)
    assert out["bound_s"] == pytest.approx(throughput.model_flops(encoder) * 64 / 10e9)


# -- generation ------------------------------------------------------------------------------------------
def test_bench_generation_without_a_run(private_root: Path) -> None:
    out = bench.bench_generation("quick")
    assert out == {"status": bench.NO_RUN, "run_dir": str(Path("outputs/quick"))}
    assert bench.NO_RUN == "no finished run: run mmga run first"


def test_bench_generation_of_a_finished_run(private_root: Path, offline) -> None:
    """A tiny exported run; no data folder (the offline fixture), so synthetic inputs are used."""
    fake = build_fake_run(private_root / "outputs" / "quick")
    out = bench.bench_generation("quick", fake.folder, n_see=16, n_hear=4)
    assert out["status"] == "ok" and out["real_data"] is False
    assert (out["see_clips"], out["hear_images"]) == (16, 4)
    for key in ("see_s", "see_clips_per_s", "hear_s", "hear_clips_per_s"):
        assert positive(out[key]), key
    assert isinstance(out["see_target_met"], bool) and isinstance(out["hear_target_met"], bool)
    assert out["griffin_lim_iters"] == fake.cfg.data.fsdd.griffin_lim_iters


def test_generation_throughput_direct(tmp_path: Path) -> None:
    from mmga_helpers.generation import MMGA

    fake = build_fake_run(tmp_path / "run")
    m = MMGA(fake.cfg, fake.parts)
    images = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    out = throughput.generation_throughput(m, images, [tone(300), tone(500)], 8000, repeats=1)
    assert out["see_clips"] == 2 and out["hear_images"] == 3 and positive(out["hear_clips_per_s"])


# -- stages, everything, the command ---------------------------------------------------------------------
def test_run_stages(private_root: Path) -> None:
    from mmga_helpers.core.config import load_config

    cfg = load_config("quick")
    empty = bench.run_stages(cfg)
    assert empty == {"notebooks_s": {}, "evaluation_s": {}, "training_s": {}}
    run_dir = cfg.run_dir()
    write_json(
        run_dir / "notebooks" / "run_state.json",
        {
            "version": 1,
            "notebooks": {
                "01_data": {"status": "ok", "seconds": 12.5},
                "02_image_autoencoder": {"status": "ok", "seconds": 40.0},
                "03_audio_autoencoder": {"status": "failed", "seconds": 3.0},
            },
        },
    )
    write_json(run_dir / "metrics.json", {"run": {"wall_time_s": {"clusters": 4.0, "brain": 0.5}}})
    write_json(
        cfg.model_dir() / "seed0" / "image_autoencoder" / "meta.json",
        {"train_seconds": 33.0, "epochs_run": 3},
    )
    out = bench.run_stages(cfg)
    assert out["notebooks_s"] == {
        "01_data": 12.5,
        "02_image_autoencoder": 40.0,
    }  # failed runs are not timings
    assert out["notebooks_total_s"] == 52.5
    assert out["evaluation_s"] == {"clusters": 4.0, "brain": 0.5}
    assert out["training_s"] == {"seed0/image_autoencoder": {"seconds": 33.0, "epochs": 3}}


def test_bench_all_and_write(private_root: Path) -> None:
    out = bench.bench_all("quick", sections=("generation",))
    assert {"profile", "machine", "targets", "generation", "stages", "memory"} <= set(out)
    assert "data" not in out and "training" not in out
    assert out["generation"]["status"] == bench.NO_RUN
    assert positive(out["stages"]["bench_s"]["generation"])
    path = bench.write_bench("quick", out)
    assert path == Path("outputs/quick/bench.json")
    bench.write_bench("quick", {"training": {"x": 1.0}})  # a partial run replaces only its sections
    saved = json.loads(path.read_text())
    assert saved["training"] == {"x": 1.0} and saved["generation"]["status"] == bench.NO_RUN
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]


def test_cli_bench(private_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mmga bench` without a subcommand runs every section; `mmga bench generation` one."""
    from typer.testing import CliRunner

    from mmga_helpers.tools.cli import app

    calls = []

    def fake_bench_all(profile, sections=("data", "models", "generation")):
        calls.append((profile, tuple(sections)))
        return {
            "profile": profile,
            "training": {"image_autoencoder": {"ratio": 0.95, "pipeline_epoch_s": [1.5, 1.25]}},
            "generation": {"status": bench.NO_RUN},
        }

    monkeypatch.setattr(bench, "bench_all", fake_bench_all)
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--profile", "full"])
    assert result.exit_code == 0, result.output
    assert calls[-1] == ("full", ("data", "models", "generation"))
    assert "training.image_autoencoder.ratio" in result.output and "0.95" in result.output
    assert bench.NO_RUN in result.output
    assert json.loads(Path("outputs/full/bench.json").read_text())["profile"] == "full"

    result = runner.invoke(app, ["bench", "generation"])
    assert result.exit_code == 0 and calls[-1] == ("quick", ("generation",))
    result = runner.invoke(app, ["bench", "-p", "full", "models"])  # the group's profile is inherited
    assert result.exit_code == 0 and calls[-1] == ("full", ("models",))
    result = runner.invoke(app, ["bench", "models", "--profile", "nope"])
    assert calls[-1] == ("nope", ("models",))  # the fake does not validate; the real one refuses
    monkeypatch.undo()
    result = runner.invoke(app, ["bench", "generation", "--profile", "nope"])
    assert result.exit_code == 2 and "config file nope not found" in result.output


def test_cli_bench_full_disk_is_one_line(private_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.json on a full disk: one error line, exit code 2, the earlier bench.json kept."""
    import errno
    import os

    from typer.testing import CliRunner

    from mmga_helpers.core import io as mio
    from mmga_helpers.tools.cli import app

    monkeypatch.setattr(bench, "bench_all", lambda profile, sections=(): {"profile": profile, "run": 2})
    runner = CliRunner()
    assert runner.invoke(app, ["bench", "models"]).exit_code == 0
    saved = private_root / "outputs" / "quick" / "bench.json"
    before = saved.read_bytes()

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(bench, "bench_all", lambda profile, sections=(): {"profile": profile, "run": 3})
    monkeypatch.setattr(mio.os, "replace", full)
    result = runner.invoke(app, ["bench", "models"])
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "bench.json" in errors[0] and "disk is full" in errors[0]
    monkeypatch.undo()
    assert saved.read_bytes() == before


def test_mmga_bench_prints_no_tensorflow_noise(tmp_path: Path) -> None:
    """`mmga bench` loads TensorFlow into its own process; its C++ start-up lines (printed before
    TensorFlow's logging is configured, whatever TF_CPP_MIN_LOG_LEVEL says) stay off the terminal,
    also when the command is started without the Makefile's environment."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    done = subprocess.run(
        [sys.executable, "-m", "mmga_helpers.tools.cli", "bench", "generation"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert bench.NO_RUN in done.stdout
    for noise in ("oneDNN", "absl::InitializeLog", "cpu_feature_guard"):
        assert noise not in done.stdout + done.stderr
