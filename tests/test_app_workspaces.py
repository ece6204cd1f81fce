"""Workspaces end to end: drag-and-drop pickers, the interpolation slider (latest wins), project
save/open and crash restore, export, settings and help dialogs, and a heartbeat that shows the GUI
thread never stalls while previews run."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QElapsedTimer, QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.dialogs import SHORTCUTS, HelpDialog, SettingsDialog
from app.main import MainWindow
from app.project import SessionGuard, load_project, projects_equal
from app.settings import Settings
from engine.api import Request, StarGANInterpolateRequest
from engine.tasks import TaskContext

from .helpers import register_tiny


class GatedEngine:
    """Fake run_fn: the first job waits for ``gate``; every job returns a flat image encoding its
    request (alpha·100 for interpolation, else the seed) after a cancellation check."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.requests: list[Request] = []

    def __call__(self, request: Request, ctx: TaskContext):
        self.requests.append(request)
        if len(self.requests) == 1:
            self.entered.set()
            self.gate.wait(10)
        ctx.check()
        if isinstance(request, StarGANInterpolateRequest):
            value = int(round(request.alpha * 100))
        else:
            value = request.seed % 256
        return ctx.result(np.full((16, 16, 3), value, np.uint8))


def drop_file(widget, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:
        enter = QDragEnterEvent(pos, *args)  # PySide6 ≥ 6.12 (the QPoint overload is deprecated there)
    except TypeError:
        enter = QDragEnterEvent(pos.toPoint(), *args)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)


@pytest.fixture
def photo(tmp_path):
    arr = (np.random.default_rng(1).random((48, 40, 3)) * 255).astype(np.uint8)
    path = tmp_path / "exemplar.png"
    Image.fromarray(arr).save(path)
    return path, arr


def test_drag_and_drop_sets_the_exemplar_and_bad_files_are_explained(qtbot, weights_dir, photo, tmp_path):
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["exemplar"]
    with qtbot.waitSignal(ws.exemplar.imageChanged, timeout=2000):
        drop_file(ws.exemplar, photo[0])
    assert np.array_equal(ws.exemplar.image, photo[1])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with qtbot.waitSignal(ws.exemplar.errorShown, timeout=2000) as blocker:
        drop_file(ws.exemplar, bad)
    assert "broken.png" in blocker.args[0]
    assert np.array_equal(ws.exemplar.image, photo[1])  # the previous exemplar stays
    win.close()


def test_interpolation_slider_latest_wins(qtbot, weights_dir):
    register_tiny(weights_dir, "stargan2", "tiny", "sg_tiny")
    engine = GatedEngine()
    win = MainWindow(Settings.defaults(), run_fn=engine, restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["stargan"]
    ws.set_mode("interpolate")
    shown: list[int] = []
    ws.resultShown.connect(lambda r: shown.append(int(r.image[0, 0, 0])))
    ws.source.set_image(np.zeros((32, 32, 3), np.uint8))
    assert engine.entered.wait(5)  # the first (full) render is running and blocked
    ws.alpha.setSliderDown(True)
    for v in (10, 20, 30):  # a drag: each move emits an interpolation request
        ws.alpha.setValue(v)
    with qtbot.waitSignal(ws.resultShown, timeout=5000, check_params_cb=lambda r: int(r.image[0, 0, 0]) == 30):
        engine.gate.set()
    qtbot.waitUntil(lambda: not win.bridge.busy, timeout=5000)
    interp = [r for r in engine.requests if isinstance(r, StarGANInterpolateRequest)]
    alphas = [round(r.alpha, 2) for r in interp]
    assert alphas[0] == 0.5 and alphas[-1] == 0.3
    assert 0.2 not in alphas  # superseded before it ever ran
    assert 50 not in shown  # the cancelled full render never reached the view
    assert shown[-1] == 30 and shown == sorted(shown)  # nothing older shown after something newer
    # previews while the slider is held
    assert interp[-1].preview_size == win.bridge.session.policy.sized(interp[-1], "preview").preview_size
    with qtbot.waitSignal(ws.resultShown, timeout=5000):
        ws.alpha.setSliderDown(False)
        ws.alpha.sliderReleased.emit()
    assert engine.requests[-1].preview_size is None  # full size on release
    win.close()


def test_project_save_and_reopen_equals_the_original(qtbot, weights_dir, photo, tmp_path):
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ex = win.workspaces["exemplar"]
    ex.exemplar.load(photo[0])
    doc = ex.editor.doc
    doc.begin_stroke()
    doc.stroke_to(20, 20, 6, label=4)
    doc.stroke_to(90, 60, 6, label=4)
    doc.end_stroke()
    ex.pose_doc.remove_joint(3)
    ex.seed.setValue(1234)
    pan = win.workspaces["panoptic"]
    pan.editor.doc.begin_stroke()
    pan.editor.doc.stroke_to(30, 30, 8, label=sorted(pan.editor.doc.palette.things)[0], instance=2)
    pan.editor.doc.end_stroke()
    sc = win.workspaces["scene"]
    sc.doc.objects.append(__import__("app.document", fromlist=["SceneObjectSpec"]).SceneObjectSpec("cat"))
    sc.doc.begin_stroke(10, 10, 3, group=0)
    sc.doc.stroke_to(40, 30)
    sc.doc.end_stroke()
    sg = win.workspaces["stargan"]
    sg.source.set_image(photo[1])
    sg.set_mode("interpolate")
    sg.alpha.setValue(73)
    win.tabs.setCurrentWidget(pan)
    path = win.save_project(tmp_path / "session.i2i")
    original = win.project()
    win.close()

    win2 = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win2)
    assert win2.open_project(path)
    reopened = win2.project()
    assert projects_equal(original, reopened)
    assert projects_equal(original, load_project(path))
    assert win2.current.key == "panoptic"
    assert win2.workspaces["stargan"].alpha.value() == 73
    assert (win2.workspaces["exemplar"].editor.doc.labels == 4).sum() == (doc.labels == 4).sum() > 0
    assert not win2.open_project(tmp_path / "missing.i2i")
    win2.close()


def test_autosave_is_restored_after_a_crash(qtbot, weights_dir, photo):
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no")
    qtbot.addWidget(win)
    win.workspaces["makeup"].strength.setValue(42)
    win.workspaces["makeup"].portrait.set_image(photo[1])
    assert win.autosave().result(10)  # written on the autosave thread
    snapshot = win.project()
    # simulate a crash: the engine stops, but the session never ends cleanly
    win.bridge.close()
    win.autosaver.close()
    win._closed = True
    guard = SessionGuard(win.guard.folder)
    assert guard.crashed_session() is not None

    win2 = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="yes")
    qtbot.addWidget(win2)
    assert win2.workspaces["makeup"].strength.value() == 42
    assert projects_equal(snapshot, win2.project())
    win2.close()
    assert guard.crashed_session() is None  # clean exit removes the autosave and lock


def test_export_output_and_grid(qtbot, weights_dir, tmp_path):
    register_tiny(weights_dir, "stargan2", "tiny", "sg_tiny")
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    win.tabs.setCurrentWidget(win.workspaces["stargan"])
    ws = win.workspaces["stargan"]
    assert win.export_output(tmp_path / "none.png") is None
    ws.source.set_image(np.zeros((32, 32, 3), np.uint8))
    win.bridge.session.scheduler._run_fn.gate.set()
    qtbot.waitUntil(lambda: ws.result is not None, timeout=5000)
    for seed in (5, 6):
        with qtbot.waitSignal(ws.resultShown, timeout=5000):
            ws.seed.setValue(seed)
    out = win.export_output(tmp_path / "out.png")
    assert np.asarray(Image.open(out)).shape == (16, 16, 3)
    grid = win.export_grid(tmp_path / "grid.png")
    g = np.asarray(Image.open(grid))
    assert g.shape[1] > 16 * len(ws.history) and len(ws.history) >= 2
    win.close()


def test_settings_dialog_and_help(qtbot, weights_dir):
    settings = Settings.defaults()
    win = MainWindow(settings, run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    dlg = SettingsDialog(win.settings, win)
    qtbot.addWidget(dlg)
    dlg.set_value("preview_size", 160)
    dlg.set_value("device", "cpu")
    win.apply_settings(dlg.result_settings())
    assert win.settings.get("preview_size") == 160 and win.device_combo.currentText() == "cpu"
    assert Settings.load(win.settings.path).get("preview_size") == 160  # persisted
    dlg.restore_defaults()
    assert dlg.result_settings().get("preview_size") == 96
    help_dialog = HelpDialog(win)
    qtbot.addWidget(help_dialog)
    assert help_dialog.table.rowCount() == len(SHORTCUTS)
    keys = {help_dialog.table.item(r, 0).text() for r in range(help_dialog.table.rowCount())}
    assert "Ctrl+Z / Ctrl+Shift+Z" in keys and "[ / ]" in keys
    win.close()


def test_every_workspace_builds_without_weights_and_names_the_fix(qtbot, weights_dir):
    win = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win)
    assert len(win.workspaces) == 7
    for ws in win.workspaces.values():
        assert ws.weights.model == ""
        assert ("i2i weights import" in ws.weights.missing or "i2i train" in ws.weights.missing
                or "not available" in ws.weights.missing), ws.key
    win.close()


def test_window_geometry_and_tab_are_remembered(qtbot, weights_dir):
    win = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.tabs.setCurrentIndex(3)
    saved = bytes(win.saveGeometry())
    win.close()
    qs = win._qsettings()
    assert bytes(qs.value("geometry")) == saved  # what restoreGeometry() gets on the next start
    win2 = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win2)
    assert win2.tabs.currentIndex() == 3
    win2.close()


def test_heartbeat_never_stalls_while_previews_run(qtbot, weights_dir):
    """A 5 ms timer on the GUI thread keeps ticking while the engine renders previews of a real
    StarGAN v2 network on the CPU; no gap between ticks exceeds 50 ms."""
    register_tiny(weights_dir, "stargan2", "default", "sg_default")
    settings = Settings.defaults()
    settings.set("threads", 1)
    win = MainWindow(settings, restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["stargan"]
    ws.set_mode("interpolate")
    with qtbot.waitSignal(ws.resultShown, timeout=30000):
        ws.source.set_image((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    beat = QTimer()
    beat.setInterval(5)
    beat.timeout.connect(tick)
    results_before = len(ws.shown_request_ids)
    ws.alpha.setSliderDown(True)
    step = [0]

    def move() -> None:
        step[0] += 1
        ws.alpha.setValue(step[0] % 100)

    mover = QTimer()
    mover.setInterval(16)  # a 60 Hz drag
    mover.timeout.connect(move)
    failures: list[str] = []
    win.bridge.failed.connect(lambda owner, f: failures.append(f.message))
    beat.start()
    mover.start()
    t0 = time.monotonic()
    try:
        qtbot.waitUntil(lambda: failures or (len(ws.shown_request_ids) - results_before >= 5
                                             and time.monotonic() - t0 > 1.0), timeout=30000)
    finally:  # never leave timers driving a closed window (they would fail later tests)
        mover.stop()
        beat.stop()
        ws.alpha.setSliderDown(False)
        win.close()
    assert not failures, failures[0]
    previews = len(ws.shown_request_ids) - results_before
    print(f"heartbeat: {len(gaps)} ticks, max gap {max(gaps[1:])} ms, {previews} previews shown")
    assert len(gaps) > 50
    assert max(gaps[1:]) < 50, f"event loop stalled for {max(gaps[1:])} ms"


def test_exemplar_map_is_found_beside_the_photo(qtbot, weights_dir, tmp_path):
    from app.workspaces.cocosnet import companion_map
    from engine.io import save_label_map

    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    arr = np.zeros((16, 16, 3), np.uint8)
    Image.fromarray(arr).save(tmp_path / "image" / "007.png")
    labels = np.zeros((16, 16), np.int32)
    labels[4:9] = 3
    save_label_map(tmp_path / "label" / "007.png", labels)
    assert companion_map(tmp_path / "image" / "007.png", pose=False) == tmp_path / "label" / "007.png"
    assert companion_map(tmp_path / "image" / "007.png", pose=True) is None
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["exemplar"]
    ws.exemplar.load(tmp_path / "image" / "007.png")
    assert np.array_equal(ws.exemplar_map.image, labels)
    win.close()


def test_import_dialog_imports_an_official_style_checkpoint(qtbot, weights_dir, tmp_path):
    from engine.families import get_family

    fam = get_family("stargan2")
    nets = fam.build(dict(fam.configs["tiny"]))
    ckpt = tmp_path / "100000_nets_ema.ckpt"  # the official layout: {sub-network: state dict}
    torch.save({k: m.state_dict() for k, m in nets.items() if k != "discriminator"}, ckpt)
    bad = tmp_path / "not_a_checkpoint.ckpt"
    bad.write_bytes(b"garbage")

    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["stargan"]
    assert ws.weights.model == ""
    dlg = win.import_weights("stargan2")
    qtbot.addWidget(dlg)
    dlg.config.setCurrentText("tiny")
    assert dlg.name.text() == "stargan2_tiny"
    dlg.set_paths([bad])
    with qtbot.waitSignal(dlg.finished_import, timeout=20000) as blocker:
        dlg.start_import()
    assert blocker.args[0] is None and "not_a_checkpoint.ckpt" in dlg.report.toPlainText()
    dlg.set_paths([ckpt])
    with qtbot.waitSignal(dlg.finished_import, timeout=20000) as blocker:
        dlg.start_import()
    assert blocker.args[0] is not None, dlg.report.toPlainText()
    assert ws.weights.model == "stargan2_tiny"  # every workspace re-read the manifest
    assert (weights_dir / "stargan2_tiny.safetensors").exists()
    dlg.close()
    win.close()


def test_task_specific_weights_hint(qtbot, weights_dir):
    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "scenes_model")
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    makeup = win.workspaces["makeup"]
    assert makeup.weights.model == ""
    assert "scenes_model (not a face model)" in makeup.weights.missing
    assert "--config celebahqedge" in makeup.weights.missing
    assert win.workspaces["exemplar"].weights.model == "scenes_model"
    win.close()


def test_switching_to_a_superseded_workspace_renders_it(qtbot, weights_dir):
    register_tiny(weights_dir, "stargan2", "tiny", "sg_tiny")
    register_tiny(weights_dir, "panoptic", "panoptic_tiny", "pan_tiny")
    engine = GatedEngine()
    engine.gate.set()
    win = MainWindow(Settings.defaults(), run_fn=engine, restore="no", autosave=False)
    qtbot.addWidget(win)
    sg, pan = win.workspaces["stargan"], win.workspaces["panoptic"]
    win.tabs.setCurrentWidget(pan)
    sg.source.set_image(np.zeros((32, 32, 3), np.uint8))  # submitted …
    with qtbot.waitSignal(pan.resultShown, timeout=5000):
        pan.editor.doc.begin_stroke()
        pan.editor.doc.stroke_to(10, 10, 4, 1)
        pan.editor.doc.end_stroke()  # … and superseded by the panoptic edit
    assert sg.awaiting and sg.result is None
    with qtbot.waitSignal(sg.resultShown, timeout=5000):
        win.tabs.setCurrentWidget(sg)
    assert not sg.awaiting
    win.close()


def test_live_paused_restores_live_when_the_restore_raises(qtbot, weights_dir):
    win = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["stargan"]
    ws.live.setChecked(True)
    with pytest.raises(ValueError, match="bad field"):
        with ws.live_paused({"live": False}):
            assert not ws.live.isChecked()
            raise ValueError("bad field")
    assert ws.live.isChecked()  # as it was: the failed restore changed nothing
    with ws.live_paused({"live": False}):
        pass
    assert not ws.live.isChecked()  # a completed restore sets what the state says
    win.close()
