"""Declarative settings: defaults, persistence, invalid values fall back with a report, migration."""
from __future__ import annotations

import json
import os

import pytest

from app.settings import FILE_NAME, SCHEMA_VERSION, SETTINGS, Settings, config_dir, sections, setting


def test_config_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_CONFIG_DIR", str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg"
    assert Settings.load().path == tmp_path / "cfg" / FILE_NAME


def test_missing_file_gives_defaults_and_save_round_trips():
    s = Settings.load()
    assert not s.path.exists() and not s.problems
    assert s.get("device") == "auto" and s["preview_size"] == 96
    s.set("preview_size", 160)
    s.set("live_preview", False)
    s.save()
    raw = json.loads(s.path.read_text())
    assert raw["schema"] == SCHEMA_VERSION and raw["preview_size"] == 160
    again = Settings.load()
    assert again.get("preview_size") == 160 and again.get("live_preview") is False and not again.problems
    assert not [p for p in os.listdir(s.path.parent) if p.startswith(".settings-")]  # no temp files left


def test_invalid_values_fall_back_with_a_report():
    path = Settings.defaults().path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": SCHEMA_VERSION, "device": "tpu", "preview_size": 5,
                                "live_preview": "yes", "threads": 2, "colour": "red"}))
    s = Settings.load()
    assert s.get("device") == "auto" and s.get("preview_size") == 96 and s.get("live_preview") is True
    assert s.get("threads") == 2  # valid values are kept
    text = " ".join(s.problems)
    for word in ("device", "preview_size", "live_preview", "colour"):
        assert word in text


def test_broken_json_gives_defaults():
    path = Settings.defaults().path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{ not json")
    s = Settings.load()
    assert s.values == Settings.defaults().values and s.problems


def test_schema_1_is_migrated():
    path = Settings.defaults().path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": 1, "preview_px": 64, "autosave_min": 2, "device": "cpu"}))
    s = Settings.load()
    assert s.get("preview_size") == 64 and s.get("autosave_s") == 120 and s.get("device") == "cpu"
    assert not s.problems


def test_set_rejects_invalid_values_and_unknown_keys():
    s = Settings.defaults()
    with pytest.raises(ValueError, match="at least"):
        s.set("undo_limit", 0)
    with pytest.raises(ValueError, match="one of"):
        s.set("precision", "float64")
    with pytest.raises(KeyError, match="unknown setting"):
        s.get("nope")
    assert s.get("undo_limit") == setting("undo_limit").default


def test_every_setting_has_a_label_help_and_a_valid_default():
    keys = [s.key for s in SETTINGS]
    assert len(keys) == len(set(keys))
    for s in SETTINGS:
        assert s.label and s.help
        assert s.validate(s.default) == s.default
    assert sum(len(items) for _, items in sections()) == len(SETTINGS)
