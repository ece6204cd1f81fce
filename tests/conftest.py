"""Test setup: headless Qt, isolated weights/settings folders, no dangling threads."""
from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("I2I_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty weights folder; the engine's Manifest() points at it for the test."""
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    """Tests never touch the real user settings."""
    monkeypatch.setenv("I2I_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture(autouse=True)
def _no_dangling_threads():
    """Fail a test that leaves engine worker threads running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leftover = [t for t in threading.enumerate()
                if t.ident not in before and t.is_alive() and t.name.startswith("i2i-")]
    for t in leftover:
        t.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads left running: {still}"
