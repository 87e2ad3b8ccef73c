"""Choosing settings for voices never heard, on training speakers only.

One speaker (``--outer``, a leave-one-speaker-out speaker) is removed from every split; each of the
``--inner`` training speakers is then held out in turn of an audio autoencoder trained, the full
profile's way, on the remaining training speakers, and its clips are recalled as images (audio ->
image: voice-normalised with the voice vote, without the vote, and plain). Settings are compared
side by side on the quick profile's image side; nothing of the outer speaker, and no test clip,
chooses anything::

    python -m mmga_helpers.tools.voice_selection --seed 0 shipped: \\
        before:convergence_weight=1,mask_bands=0,mask_frames=0 wider:frequency_warp=0.2

``--votes 0.03 0.05`` scores each setting's folds again with those voice-vote shares (the fold
models and clusters are reused, so this costs seconds).

prints one line per setting and writes ``outputs/voice_selection/results.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import yaml

from mmga_helpers.core.config import ConfigError, config_from_dict, load_config, profile_dict
from mmga_helpers.core.io import write_json
from mmga_helpers.core.paths import from_root
from mmga_helpers.evaluation.holdout import holdout_images, recalled_accuracy, speaker_holdout
from mmga_helpers.modalities.data import DataError
from mmga_helpers.stages.run import Run, load_data

OUT = "outputs/voice_selection"


def parse_setting(text: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value,key=value`` (keys of ``model.audio_autoencoder``) -> ``(name, overrides)``."""
    name, _, rest = text.partition(":")
    if not name:
        raise ConfigError(f"setting {text!r}: give it a name, as in base: or tilt:spectral_tilt=0.2")
    pairs = [p for p in rest.split(",") if p]
    if any("=" not in p for p in pairs):
        raise ConfigError(f"setting {text!r}: write overrides as key=value, separated by commas")
    return name, {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in pairs)}


def setting_config(name: str, overrides: dict[str, Any]):
    """The quick profile with the full profile's audio autoencoder (and ``overrides``), the speaker
    hold-out, voice normalisation and the voice vote on, writing under ``outputs/voice_selection/<name>``."""
    data, full = profile_dict("quick"), load_config("full")
    # the folds train as the full profile's do (its speaker_holdout_epochs), unless epochs is set
    folds = full.holdout_autoencoder.model_dump(mode="json")
    data["model"]["audio_autoencoder"] = {**folds, **overrides}
    vote = full.evaluation.voice_vote
    data["evaluation"].update(speaker_holdout=True, voice_normalize=True, voice_vote=vote)
    data["paths"]["output_dir"] = f"{OUT}/{name}"
    return config_from_dict(data, f"setting {name}")


def inner_holdout(
    name: str,
    overrides: dict[str, Any],
    outer: str,
    inner: list[str],
    seed: int,
    votes: tuple[float, ...] = (),
) -> dict:
    """Audio -> image accuracy of each inner speaker for one setting: voice-normalised with the
    profile's voice vote, without it (``unvoted``), plain, and with each share of ``votes``."""
    run = Run(setting_config(name, overrides), seed)
    data = load_data(run)
    if outer not in set(data.audio_train.speakers):
        raise ConfigError(f"outer speaker {outer!r} is not a speaker of the corpus")
    kept = {s: np.flatnonzero(getattr(data, s).speakers != outer) for s in ("audio_train", "audio_test")}
    data = replace(data, **{s: getattr(data, s).subset(idx) for s, idx in kept.items()})
    unknown = sorted(set(inner) - set(data.audio_train.speakers))
    if unknown:
        raise ConfigError(f"inner speakers {unknown} are not training speakers (the outer one is {outer})")
    plain: dict[str, float] = {}
    unvoted: dict[str, tuple[Any, Any]] = {}
    images = holdout_images(run, data, {}, None)
    normalized = speaker_holdout(run, data, None, speakers=inner, images=images,
                                 voice_normalize=True, plain=plain, unvoted=unvoted)
    unvoted_acc = recalled_accuracy(images, data.image_train_labels, unvoted)
    by_vote = {
        str(v): speaker_holdout(
            run, data, None, speakers=inner, images=images, voice_normalize=True, voice_vote=v
        )
        for v in votes
    }
    return {
        "overrides": overrides, "voice_normalized": normalized, "unvoted": unvoted_acc, "plain": plain,
        "mean": _mean(normalized), "unvoted_mean": _mean(unvoted_acc), "plain_mean": _mean(plain),
        "votes": {v: {"per_speaker": r, "mean": _mean(r)} for v, r in by_vote.items()},
    }


def _mean(per_speaker: dict[str, float]) -> float:
    return float(np.mean(list(per_speaker.values())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmga_helpers.tools.voice_selection", description=__doc__.split("\n")[0]
    )
    parser.add_argument("settings", nargs="+", help="name:key=value,... (model.audio_autoencoder keys)")
    parser.add_argument("--outer", default="theo", help="the speaker removed from everything")
    parser.add_argument(
        "--inner", nargs="+", default=["george", "jackson"], help="training speakers held out in turn"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--votes", nargs="*", type=float, default=[], help="voice-vote shares to score too")
    args = parser.parse_args(argv)
    try:
        settings = dict(parse_setting(s) for s in args.settings)
        results = {}
        for name, overrides in settings.items():
            start = time.perf_counter()
            results[name] = inner_holdout(
                name, overrides, args.outer, args.inner, args.seed, tuple(args.votes)
            )
            r = results[name]
            per = ", ".join(f"{s} {v:.3f}" for s, v in r["voice_normalized"].items())
            shares = "".join(f"; vote {v} {x['mean']:.3f}" for v, x in r["votes"].items())
            print(f"{name}: {r['mean']:.3f} ({per}); without the voice vote {r['unvoted_mean']:.3f}; "
                  f"without voice normalisation {r['plain_mean']:.3f}{shares} "
                  f"[{time.perf_counter() - start:.0f} s]", flush=True)
    except (ConfigError, DataError) as err:
        print(f"voice_selection: {err}", file=sys.stderr)
        return 2
    write_json(from_root(OUT) / "results.json", {"outer": args.outer, "inner": args.inner, "seed": args.seed,
                                                  "settings": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
