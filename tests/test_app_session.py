"""The studio as a person uses it (issue 18): nothing lost on Quit / close / New / Open, every menu
action works when Qt triggers it, an exception in a slot reaches the user and the log, and
autosave runs on its own thread with photos stored once."""
from __future__ import annotations

import logging
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.main import MainWindow
from app.project import SessionGuard, load_project
from app.settings import Settings
from tests.test_app_workspaces import GatedEngine, register_tiny

Save, Discard, Cancel = (QMessageBox.StandardButton.Save, QMessageBox.StandardButton.Discard,
                         QMessageBox.StandardButton.Cancel)


def menu_actions(win: MainWindow) -> dict[str, QAction]:
    """Every action of the menu bar by its text without '&' and '…'."""
    out: dict[str, QAction] = {}
    for top in win.menuBar().actions():
        for act in top.menu().actions():
            if not act.isSeparator():
                out[act.text().replace("&", "").rstrip("…")] = act
    return out


def paint(ws, label: int = 3) -> None:
    doc = ws.editor.doc
    doc.begin_stroke()
    doc.stroke_to(20, 20, 6, label)
    doc.stroke_to(60, 40, 6, label)
    doc.end_stroke()


@pytest.fixture
def window(qtbot, weights_dir):
    engine = GatedEngine()
    engine.gate.set()
    win = MainWindow(Settings.defaults(), run_fn=engine, restore="no")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_quit_asks_and_cancel_keeps_everything_and_the_autosave(qtbot, window, save_changes_answers,
                                                                 monkeypatch, tmp_path):
    win = window
    pan = win.workspaces["panoptic"]
    assert not win.is_modified()
    paint(pan)
    assert win.is_modified()
    assert win.autosave().result(10)
    labels = pan.editor.doc.labels.copy()
    seen_autosave = []
    ask = save_changes_answers
    original = QMessageBox.question

    def question(*args, **kwargs):  # the autosave must still be there while the user decides
        seen_autosave.append(win.guard.autosave.exists() and win.guard.lock.exists())
        return original(*args, **kwargs)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    ask.answers.append(Cancel)
    menu_actions(win)["Quit"].trigger()
    assert ask.asked == ["Save changes?"] and seen_autosave == [True]
    assert win.isVisible() and not win.bridge.closed
    assert np.array_equal(pan.editor.doc.labels, labels)
    assert win.guard.autosave.exists()

    ask.answers.append(Cancel)
    win.close()  # the window's close button goes the same way
    assert win.isVisible() and len(ask.asked) == 2

    # Save: the save dialog (patched) names the file, the project is written, the window closes
    target = tmp_path / "kept.i2i"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    ask.answers.append(Save)
    menu_actions(win)["Quit"].trigger()
    assert not win.isVisible() and target.exists()
    assert np.array_equal(load_project(target).workspaces["panoptic"].arrays["labels"], labels)
    assert not win.guard.autosave.exists()  # a clean exit after the answer


def test_save_dialog_cancelled_keeps_the_window(qtbot, window, save_changes_answers, monkeypatch):
    win = window
    paint(win.workspaces["exemplar"])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", "")))
    save_changes_answers.answers.append(Save)
    win.close()
    assert win.isVisible() and win.is_modified()
    win.close()  # default answer in tests: Discard
    assert not win.isVisible()


def test_new_project_asks_first_and_cancel_keeps_the_work(qtbot, window, save_changes_answers):
    win = window
    ex = win.workspaces["exemplar"]
    paint(ex, 5)
    new = menu_actions(win)["New project"]
    assert new.shortcut() == QKeySequence("Ctrl+N")
    save_changes_answers.answers.append(Cancel)
    new.trigger()
    assert save_changes_answers.asked == ["Save changes?"]
    assert (ex.editor.doc.labels == 5).any()
    save_changes_answers.answers.append(Discard)
    new.trigger()
    assert not ex.editor.doc.labels.any() and not win.is_modified()
    new.trigger()  # nothing changed since: no question
    assert len(save_changes_answers.asked) == 2


def test_opening_another_project_asks_first(qtbot, window, save_changes_answers, monkeypatch, tmp_path):
    win = window
    other = tmp_path / "other.i2i"
    win.save_project(other)
    paint(win.workspaces["panoptic"], 2)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(other), "")))
    save_changes_answers.answers.append(Cancel)
    menu_actions(win)["Open project"].trigger()
    assert save_changes_answers.asked == ["Save changes?"]
    assert (win.workspaces["panoptic"].editor.doc.labels == 2).any()
    save_changes_answers.answers.append(Discard)
    menu_actions(win)["Open project"].trigger()
    assert not win.workspaces["panoptic"].editor.doc.labels.any()
    assert win.project_path == other and not win.is_modified()
    assert "other.i2i" in win.windowTitle()


def test_autosave_interval_setting_and_restore_keeps_the_file_name(qtbot, weights_dir, tmp_path):
    settings = Settings.defaults()
    settings.set("autosave_s", 1)  # the declarative setting drives the timer
    win = MainWindow(settings, run_fn=GatedEngine(), restore="no")
    qtbot.addWidget(win)
    assert win.autosave_timer.interval() == 1000 and win.autosave_timer.isActive()
    path = win.save_project(tmp_path / "portrait.i2i")
    pan = win.workspaces["panoptic"]
    paint(pan, 4)  # the last edit before the "crash"
    guard = win.guard

    def autosaved_edit() -> bool:
        try:
            return bool((load_project(guard.autosave).workspaces["panoptic"].arrays["labels"] == 4).any())
        except Exception:  # not written yet
            return False

    qtbot.waitUntil(autosaved_edit, timeout=5000)  # within about one interval, by the timer alone
    # crash: threads stop, the session never ends cleanly
    win.bridge.close()
    win.autosaver.close()
    win._closed = True
    assert SessionGuard(guard.folder).crashed_session() is not None

    win2 = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="yes")
    qtbot.addWidget(win2)
    assert (win2.workspaces["panoptic"].editor.doc.labels == 4).any()
    assert win2.project_path == path  # Save goes back to portrait.i2i, not to "untitled"
    assert "portrait.i2i" in win2.windowTitle()
    assert win2.is_modified()  # the restored edit is not in portrait.i2i yet
    win2.close()


def test_every_menu_action_works_when_triggered(qtbot, weights_dir, save_changes_answers, monkeypatch, tmp_path):
    """Each menu action fires through QAction.trigger() (Qt passes `checked`), dialogs answered
    by patches; a slot that raised would fail the test (pytest-qt) and show an error."""
    from app.dialogs import HelpDialog, SettingsDialog

    register_tiny(weights_dir, "stargan2", "tiny", "sg_tiny")
    engine = GatedEngine()
    engine.gate.set()
    win = MainWindow(Settings.defaults(), run_fn=engine, restore="no", autosave=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    sg = win.workspaces["stargan"]
    win.tabs.setCurrentWidget(sg)
    with qtbot.waitSignal(sg.resultShown, timeout=5000):
        sg.source.set_image(np.zeros((32, 32, 3), np.uint8))
    with qtbot.waitSignal(sg.resultShown, timeout=5000):
        sg.seed.setValue(7)
    saves = {"Export output": tmp_path / "out.png", "Export grid": tmp_path / "grid.png",
             "Save project": tmp_path / "menu.i2i"}
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda parent, title, *a, **k: (str(saves[title]), "")))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(saves["Save project"]), "")))
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", staticmethod(lambda *a: shown.append("about")))
    monkeypatch.setattr(HelpDialog, "exec", lambda self: shown.append("help") or 0)
    monkeypatch.setattr(SettingsDialog, "exec", lambda self: shown.append("settings") or 1)
    acts = menu_actions(win)
    expected_keys = {"Export output PNG": "Ctrl+E", "Export grid of recent outputs": "Ctrl+Shift+E",
                     "New project": "Ctrl+N", "Open project": "Ctrl+O", "Save project": "Ctrl+S",
                     "Save project as": "Ctrl+Shift+S", "Quit": "Ctrl+Q", "Undo": "Ctrl+Z",
                     "Redo": "Ctrl+Shift+Z", "Settings": "Ctrl+,", "Generate (full size)": "Ctrl+Return",
                     "Vary seed": "Ctrl+R", "Cancel": "Ctrl+.", "Keyboard shortcuts": "F1"}
    for name, key in expected_keys.items():
        assert acts[name].shortcut() == QKeySequence(key), name

    acts["Export output PNG"].trigger()
    assert np.asarray(Image.open(saves["Export output"])).shape == (16, 16, 3)
    acts["Export grid of recent outputs"].trigger()
    assert np.asarray(Image.open(saves["Export grid"])).shape[1] > 32
    acts["Save project as"].trigger()
    assert saves["Save project"].exists() and not win.is_modified()
    saves["Save project"].unlink()
    acts["Save project"].trigger()  # saves to the same file again, no dialog needed
    assert saves["Save project"].exists()
    acts["Open project"].trigger()
    assert win.project_path == saves["Save project"]
    seed = sg.seed.value()
    with qtbot.waitSignal(sg.resultShown, timeout=5000):
        acts["Vary seed"].trigger()
    assert sg.seed.value() != seed
    with qtbot.waitSignal(sg.resultShown, timeout=5000):
        acts["Generate (full size)"].trigger()
    acts["Cancel"].trigger()
    assert "Cancelled" in win.message.text()
    pan = win.workspaces["panoptic"]
    acts["Panoptic → image"].trigger()
    assert win.current is pan
    assert acts["Panoptic → image"].shortcut() == QKeySequence(f"Ctrl+{win.tabs.indexOf(pan) + 1}")
    paint(pan)
    acts["Undo"].trigger()
    assert not pan.editor.doc.labels.any()
    acts["Redo"].trigger()
    assert pan.editor.doc.labels.any()
    for i, ws in enumerate(win.workspaces.values()):
        acts[ws.title].trigger()
        assert win.tabs.currentIndex() == i
    acts["Keyboard shortcuts"].trigger()
    acts["About"].trigger()
    acts["Settings"].trigger()
    assert shown == ["help", "about", "settings"] and win.message.text() == "Settings saved"
    acts["Re-read weights manifest"].trigger()
    before = set(win.findChildren(__import__("app.import_dialog", fromlist=["ImportDialog"]).ImportDialog))
    acts["Import official weights"].trigger()
    dialogs = set(win.findChildren(__import__("app.import_dialog", fromlist=["ImportDialog"]).ImportDialog)) - before
    assert len(dialogs) == 1 and dialogs.pop().isVisible()
    save_changes_answers.answers.append(Discard)
    acts["Quit"].trigger()
    assert not win.isVisible()
    assert not set(expected_keys) - set(acts)  # nothing renamed away from the table above


def test_export_shortcuts_open_the_save_dialog(qtbot, weights_dir, monkeypatch, tmp_path):
    register_tiny(weights_dir, "stargan2", "tiny", "sg_tiny")
    engine = GatedEngine()
    engine.gate.set()
    win = MainWindow(Settings.defaults(), run_fn=engine, restore="no", autosave=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    sg = win.workspaces["stargan"]
    win.tabs.setCurrentWidget(sg)
    with qtbot.waitSignal(sg.resultShown, timeout=5000):
        sg.source.set_image(np.zeros((32, 32, 3), np.uint8))
    titles: list[str] = []

    def save_name(parent, title, *a, **k):
        titles.append(title)
        return str(tmp_path / f"{len(titles)}.png"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_name))
    qtbot.keyClick(sg.source_view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(sg.source_view, Qt.Key.Key_E,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert titles == ["Export output", "Export grid"]
    assert (tmp_path / "1.png").exists() and (tmp_path / "2.png").exists()
    win.close()


@pytest.mark.qt_no_exception_capture
def test_an_exception_in_a_slot_is_shown_and_logged(qtbot, weights_dir, caplog):
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    win.show()

    def broken() -> None:
        raise ValueError("the tile cache is gone")

    act = QAction("Broken", win)
    act.triggered.connect(broken)
    with caplog.at_level(logging.ERROR, logger="i2i-studio"):
        act.trigger()
        qtbot.waitUntil(lambda: win.error_box is not None and win.error_box.isVisible(), timeout=2000)
    assert "the tile cache is gone" in win.message.text()
    assert "the tile cache is gone" in win.error_box.text() and "broken" in win.error_box.detailedText()
    assert not win.error_box.isModal()
    assert any("the tile cache is gone" in r.getMessage() and r.exc_info for r in caplog.records)
    assert win.isVisible()  # the studio stays up
    win.close()


# ------------------------------------------------------------------------------------------------
# Autosave: a worker thread, photos stored once by content hash, not encoded again
# ------------------------------------------------------------------------------------------------
def test_autosave_encodes_on_its_thread_and_stores_photos_once(qtbot, weights_dir, monkeypatch):
    import app.project as project_module

    encoded_on: list[str] = []
    real_encode = project_module._encode

    def spy(arr):
        encoded_on.append(threading.current_thread().name)
        return real_encode(arr)

    monkeypatch.setattr(project_module, "_encode", spy)
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no")
    qtbot.addWidget(win)
    photo = (np.random.default_rng(3).random((600, 700, 3)) * 255).astype(np.uint8)  # > 1 MB
    win.workspaces["exemplar"].exemplar.set_image(photo)
    win.workspaces["edit"].photo.set_image(photo.copy())  # the same content in another workspace
    win.workspaces["makeup"].portrait.set_image(photo)
    assert win.autosave().result(20)
    assert encoded_on and all(name.startswith("i2i-autosave") for name in encoded_on)
    with zipfile.ZipFile(win.guard.autosave) as zf:
        media = [n for n in zf.namelist() if n.startswith("media/")]
    assert len(media) == 1  # one photo, three uses
    assert win.media_cache.encodes == 1
    paint(win.workspaces["panoptic"])
    assert win.autosave().result(20)
    assert win.media_cache.encodes == 1  # the photo was not encoded again
    assert win.autosave() is None  # nothing changed since: nothing to write
    restored = load_project(win.guard.autosave)
    assert np.array_equal(restored.workspaces["edit"].arrays["photo"], photo)
    assert np.array_equal(restored.workspaces["exemplar"].arrays["exemplar"], photo)
    win.close()


def test_project_png_writer_is_lossless_for_grey_rgb_and_rgba():
    import io

    from app.project import encode_png

    rng = np.random.default_rng(7)
    for shape in [(1, 1), (5, 7), (5, 7, 3), (33, 17, 4), (300, 2, 3)]:
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        for level in (1, 6):
            back = np.asarray(Image.open(io.BytesIO(b"".join(encode_png(arr, level)))))
            assert back.shape == arr.shape and np.array_equal(back, arr), (shape, level)
