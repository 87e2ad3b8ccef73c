"""The tool that chooses voice settings on training speakers only."""

from __future__ import annotations

import pytest

from mmga_helpers.core.config import ConfigError, load_config
from mmga_helpers.tools.voice_selection import main, parse_setting, setting_config


def test_settings_parse_and_keep_the_outer_speaker_out_of_the_config() -> None:
    assert parse_setting("base:") == ("base", {})
    assert parse_setting("tilt:spectral_tilt=0.2,frequency_warp=0.15") == (
        "tilt", {"spectral_tilt": 0.2, "frequency_warp": 0.15}
    )
    for bad in (":frequency_warp=0.2", "x:frequency_warp"):
        with pytest.raises(ConfigError):
            parse_setting(bad)
    cfg = setting_config("tilt", {"spectral_tilt": 0.2})
    audio = cfg.model.audio_autoencoder
    folds = load_config("full").holdout_autoencoder.epochs  # the folds train as the full profile's do
    assert (audio.spectral_tilt, audio.epochs, cfg.evaluation.voice_normalize) == (0.2, folds, True)
    assert setting_config("e3", {"epochs": 3}).model.audio_autoencoder.epochs == 3
    assert str(cfg.paths.output_dir).endswith("voice_selection/tilt")
    with pytest.raises(ConfigError, match="spectral_tilt"):
        setting_config("bad", {"spectral_tilt": 2.0})


def test_a_bad_setting_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x:frequency_warp"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("voice_selection: setting 'x:frequency_warp'") and "\n" not in err
