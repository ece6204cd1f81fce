"""The `i2i` command line: help everywhere, one-line errors, weights commands."""
from __future__ import annotations

import argparse

import pytest
import torch

import tests.test_weights as tw  # registers the tiny test family
from engine import cli


def _all_command_paths(parser: argparse.ArgumentParser, prefix=()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_command_paths(sub, prefix + (name,))


def test_help_everywhere(capsys):
    paths = list(_all_command_paths(cli.build_parser()))
    assert ("weights", "verify") in paths and ("doctor",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as info:
            cli.main([*path, "--help"])
        assert info.value.code == 0, path
        assert "usage:" in capsys.readouterr().out


def test_error_is_one_line_without_traceback(capsys, weights_dir, tmp_path):
    code = cli.main(["weights", "import", str(tmp_path / "nope.ckpt"), "--as", "x",
                     "--family", "test_tiny", "--config", "small"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "does not exist" in err and "Traceback" not in err
    code = cli.main(["weights", "keys", "nosuchfamily", "--config", "x"])
    assert code == 2 and "unknown generator family" in capsys.readouterr().err


def test_debug_shows_traceback(weights_dir, tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        cli.main(["--debug", "weights", "import", str(tmp_path / "nope.ckpt"), "--as", "x",
                  "--family", "test_tiny", "--config", "small"])


def test_weights_import_list_verify(capsys, weights_dir, tmp_path):
    p, _ = tw._official_file(tmp_path)
    assert cli.main(["weights", "import", str(p), "--as", "tiny", "--family", "test_tiny", "--config", "small"]) == 0
    assert "imported tiny" in capsys.readouterr().out
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "official: official.pth" in out
    assert cli.main(["weights", "verify"]) == 0
    assert capsys.readouterr().out.startswith("verified")
    (weights_dir / "tiny.safetensors").unlink()
    assert cli.main(["weights", "verify"]) == 1
    assert capsys.readouterr().out.startswith("missing")


def test_weights_keys_prints_manifest_json(capsys):
    import json

    assert cli.main(["weights", "keys", "test_tiny", "--config", "wide"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["net"]["conv.weight"] == [[6, 3, 3, 3], "float32"]


def test_doctor_reports_devices_and_weights(capsys, weights_dir):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"torch       {torch.__version__}" in out and "cpu" in out
