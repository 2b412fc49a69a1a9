"""Settings: parsing, validation, and agreement between config.py and the sample settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import ConfigError, Settings, describe_settings, sample_values

ROOT = Path(__file__).resolve().parents[2]
# Read by the Functions host itself, not by shared/config.py.
HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"}


def test_defaults_match_security_md():
    settings = Settings.from_env({})
    limits = settings.limits()
    assert limits.max_frame_pixels == 40_000_000
    assert limits.max_total_pixels == 100_000_000
    assert limits.max_frames == 100
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    assert settings.max_operations == 20 and settings.max_chain_steps == 10
    assert limits.formats == {"jpeg", "png", "webp", "gif", "avif"}


def test_values_are_parsed_by_type():
    settings = Settings.from_env(
        {
            "PIXELPIPE_MAX_FRAMES": "7",
            "PIXELPIPE_OPERATION_TIMEOUT_SECONDS": "2.5",
            "PIXELPIPE_INPUT_FORMATS": "jpeg, png",
            "PIXELPIPE_MAX_UPLOAD_BYTES": "1_000",
        }
    )
    assert settings.max_frames == 7 and settings.operation_timeout_seconds == 2.5
    assert settings.input_formats == ("jpeg", "png") and settings.max_upload_bytes == 1000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PIXELPIPE_MAX_FRAMES", "many"),
        ("PIXELPIPE_MAX_FRAMES", "-1"),
        ("PIXELPIPE_INPUT_FORMATS", "jpeg,tiff"),
    ],
)
def test_bad_values_fail_at_start_up_naming_the_setting(name, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    assert name in str(err.value)


def test_every_setting_is_documented():
    for entry in describe_settings():
        assert len(entry["doc"]) > 20, entry["env"]


def test_sample_settings_agree_with_config():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    declared = {entry["env"] for entry in describe_settings()}
    assert set(sample) - HOST_SETTINGS == declared
    assert sample == sample_values()  # regenerate with shared.config.sample_values()
    for entry in describe_settings():
        if entry["secret"]:
            assert sample[entry["env"]] == "", f"{entry['env']} must not hold a secret"
