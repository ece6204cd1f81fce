"""Test setup: headless Qt, isolated weights/settings folders, no dangling threads."""
from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny test models gain nothing from two OpenMP threads, and on busy cores the threads stall.
os.environ.setdefault("I2I_THREADS", "1")
# No background inductor compilation behind the scheduler's tiny test models (tests/test_compiled.py
# covers it explicitly).
os.environ.setdefault("I2I_COMPILE", "off")

import pytest
import torch

torch.set_num_threads(int(os.environ["I2I_THREADS"]))


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
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Nor the real user cache: on a CPU with native bfloat16 it may hold the benchmark's verdict
    that makes ``auto`` bfloat16, and tests compare ``auto`` results with float32 networks. One
    folder per session, so compiled kernels are still shared between tests."""
    monkeypatch.setenv("I2I_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "user-cache"))


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


@pytest.fixture(autouse=True)
def save_changes_answers(monkeypatch):
    """The studio asks "save changes?" (and "restore the session?") with QMessageBox.question. A
    test never blocks on it: each question is recorded and answered from this list (first in,
    first out), by default Discard, so closing a window in a test leaves nothing on disk."""
    try:
        from PySide6.QtWidgets import QMessageBox
    except ImportError:  # the engine tests run without Qt too
        yield []
        return
    asked: list[str] = []
    answers: list = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(title)
        return answers.pop(0) if answers else QMessageBox.StandardButton.Discard

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    question.asked = asked
    question.answers = answers
    yield question
