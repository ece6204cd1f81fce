"""Every workspace drives its real engine task: small random-initialised models are registered in a
temporary weights folder, inputs are set as a user would, and the output appears in the view."""
from __future__ import annotations

import numpy as np
import pytest

from app.main import MainWindow
from app.settings import Settings

from .helpers import register_tiny

RNG = np.random.default_rng(0)


def one_thread() -> Settings:
    """One engine thread: on a loaded 2-core CI machine OpenMP barriers make 2 threads far slower."""
    s = Settings.defaults()
    s.set("threads", 1)
    return s


def photo(h: int, w: int) -> np.ndarray:
    return (RNG.random((h, w, 3)) * 255).astype(np.uint8)


def parsing(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.int32)
    m[h // 6: h - h // 8, w // 5: w - w // 5] = 1  # skin
    m[h // 3: h // 3 + 4, w // 3: w // 3 + 6] = 4  # an eye
    m[2 * h // 3: 2 * h // 3 + 4, w // 2 - 6: w // 2 + 6] = 12  # upper lip
    return m


def wait_result(qtbot, ws, action):
    failures = []
    ws.bridge.failed.connect(lambda owner, f: failures.append(f))
    with qtbot.waitSignal(ws.resultShown, timeout=30000, raising=False) as blocker:
        action()
    assert not failures, failures[0].message if failures else ""
    assert blocker.signal_triggered, ws.hint.text()
    return blocker.args[0]


def test_exemplar_labels(qtbot, weights_dir):
    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "coco_tiny")
    win = MainWindow(one_thread(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["exemplar"]
    assert ws.kind == "labels" and len(ws.editor.doc.palette) == 8
    ws.editor.doc.replace(np.where(np.arange(256)[None, :] < 128, 2, 5).repeat(256, 0))
    ws.exemplar_map.set_image(np.full((64, 64), 3, np.int32))
    result = wait_result(qtbot, ws, lambda: ws.exemplar.set_image(photo(64, 64)))
    assert result.image.shape[2] == 3 and "warped_exemplar" in result.aux
    assert ws.warped.image is not None
    win.close()


def test_exemplar_pose(qtbot, weights_dir):
    register_tiny(weights_dir, "cocosnet", "tiny_deepfashion", "coco_pose")
    win = MainWindow(one_thread(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["exemplar"]
    assert ws.kind == "pose" and ws.canvas_stack.currentWidget() is ws.pose_canvas
    result = wait_result(qtbot, ws, lambda: ws.exemplar.set_image(photo(64, 44)))
    assert result.image.ndim == 3
    win.close()


def test_edit_and_makeup(qtbot, weights_dir):
    register_tiny(weights_dir, "cocosnet", "tiny_celebahq", "coco_face")
    win = MainWindow(one_thread(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ed = win.workspaces["edit"]
    ed.photo.set_image(photo(64, 64))
    result = wait_result(qtbot, ed, lambda: ed.photo_map.set_image(parsing(64, 64)))
    assert result.image.shape == (64, 64, 3)
    assert ed.output.mode == "slider" and ed.output.before is not None
    mk = win.workspaces["makeup"]
    mk.portrait.set_image(photo(64, 64))
    mk.portrait_map.set_image(parsing(64, 64))
    mk.exemplar.set_image(photo(64, 64))
    result = wait_result(qtbot, mk, lambda: mk.exemplar_map.set_image(parsing(64, 64)))
    assert result.image.shape[2] == 3
    win.close()


def test_panoptic(qtbot, weights_dir):
    register_tiny(weights_dir, "panoptic", "panoptic_tiny", "pan_tiny")
    win = MainWindow(one_thread(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["panoptic"]
    assert len(ws.editor.doc.palette) == 4

    def paint():
        doc = ws.editor.doc
        doc.begin_stroke()
        doc.stroke_to(40, 40, 20, label=2, instance=1)
        doc.end_stroke()

    result = wait_result(qtbot, ws, paint)
    assert result.image.shape[2] == 3 and ws.edges.image is not None
    win.close()


def test_sketch_object_and_scene(qtbot, weights_dir):
    register_tiny(weights_dir, "edgegan", "tiny", "edge_tiny")
    win = MainWindow(one_thread(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["sketch"]
    assert [ws.class_combo.itemText(i) for i in range(ws.class_combo.count())] == ["cat", "dog", "car"]

    def draw(doc, group=-1):
        doc.begin_stroke(60, 60, 4, group=group)
        for t in np.linspace(0, 2 * np.pi, 24):
            doc.stroke_to(120 + 50 * np.cos(t), 120 + 50 * np.sin(t))
        doc.end_stroke()

    result = wait_result(qtbot, ws, lambda: draw(ws.doc))
    assert result.image.shape[2] == 3
    sc = win.workspaces["scene"]
    k = sc.add_object("dog")
    assert k == 0 and sc.canvas.current_group == 0
    result = wait_result(qtbot, sc, lambda: draw(sc.doc, group=k))
    assert result.image.shape[:2] == (sc.doc.size[1], sc.doc.size[0])
    win.close()


def test_live_preview_while_painting_then_full_on_release(qtbot, weights_dir):
    """Mouse strokes on the exemplar canvas schedule previews at the preview size while the button
    is down and one full-size render on release; the real CoCosNet task answers both."""
    from PySide6.QtCore import Qt

    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "coco_tiny")
    settings = one_thread()
    settings.set("preview_size", 64)
    win = MainWindow(settings, restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["exemplar"]
    ws.exemplar_map.set_image(np.full((64, 64), 3, np.int32))
    wait_result(qtbot, ws, lambda: ws.exemplar.set_image(photo(64, 64)))
    submitted = []
    original = win.bridge.session.scheduler.submit
    win.bridge.session.scheduler.submit = lambda req, quality="full": (submitted.append(req), original(req, quality))[1]
    canvas = ws.editor.canvas
    canvas.resize(256, 256)
    win.show()
    qtbot.waitExposed(win)
    ws.editor.canvas.set_label(4)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=canvas.center_of(20, 20).toPoint())
    for x in range(30, 200, 10):
        qtbot.mouseMove(canvas, pos=canvas.center_of(x, 20 + x // 2).toPoint())
    assert submitted and all(r.preview_size == 64 for r in submitted)
    with qtbot.waitSignal(ws.resultShown, timeout=30000,
                          check_params_cb=lambda r: r.request_id == win.bridge.latest_id):
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=canvas.center_of(200, 120).toPoint())
    assert submitted[-1].preview_size is None
    assert (ws.editor.doc.labels == 4).sum() > 100
    win.close()


def _drag_setup(qtbot, win, workspace: str):
    """Inputs of a CoCosNet workspace, ready for a drag; returns (workspace, drag-start, drag-move,
    drag-end) callables acting as the user's pointer."""
    from PySide6.QtCore import Qt

    ws = win.workspaces[workspace]
    if workspace == "makeup":
        ws.portrait.set_image(photo(64, 64))
        ws.portrait_map.set_image(parsing(64, 64))
        ws.exemplar.set_image(photo(64, 64))
        ws.exemplar_map.set_image(parsing(64, 64))
        slider = ws.strength

        def start():
            slider.setSliderDown(True)

        def move(i):
            slider.setValue(90 - 5 * i)

        def end():
            slider.setSliderDown(False)
            slider.sliderReleased.emit()
        return ws, start, move, end
    if workspace == "exemplar":
        ws.exemplar_map.set_image(np.full((64, 64), 3, np.int32))
        ws.exemplar.set_image(photo(64, 64))
    else:
        ws.photo.set_image(photo(64, 64))
        ws.photo_map.set_image(parsing(64, 64))
    canvas = ws.editor.canvas
    canvas.resize(256, 256)
    ws.editor.canvas.set_label(4)

    def start():
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=canvas.center_of(20, 20).toPoint())

    def move(i):
        x = 30 + 12 * i
        qtbot.mouseMove(canvas, pos=canvas.center_of(x, 20 + x // 2).toPoint())

    def end():
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=canvas.center_of(200, 120).toPoint())
    return ws, start, move, end


@pytest.mark.parametrize("workspace,config", [("exemplar", "tiny_ade20k"), ("edit", "tiny_celebahq"),
                                              ("makeup", "tiny_celebahq")])
def test_live_preview_drag_at_default_settings_on_a_slow_machine(qtbot, weights_dir, workspace, config):
    """Default settings, previews measured slow (the bridge shrinks the wanted size below what
    CoCosNet accepts): every preview of the drag still runs, at a size the engine fitted to the
    model, and reaches the view while the pointer is down; no failure is reported."""
    register_tiny(weights_dir, "cocosnet", config, "coco_tiny")
    win = MainWindow(one_thread(), restore="no", autosave=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.tabs.setCurrentWidget(win.workspaces[workspace])
    ws, start, move, end = _drag_setup(qtbot, win, workspace)
    failures: list[str] = []
    win.bridge.failed.connect(lambda owner, f: failures.append(f.message))
    qtbot.waitUntil(lambda: ws.result is not None or bool(failures), timeout=30000)
    assert not failures, failures[0]
    for _ in range(6):
        win.bridge.session.policy.record(1.5, "preview", 96)  # what a laptop CPU measured on the previous drag
    assert win.bridge.session.policy.wanted_preview_size() < 64  # the wanted size alone is below CoCosNet's minimum
    submitted = []
    original = win.bridge.session.scheduler.submit
    win.bridge.session.scheduler.submit = lambda req, quality="full": (submitted.append(req), original(req, quality))[1]
    previews_shown: list[int] = []
    ws.resultShown.connect(lambda r: previews_shown.append(r.request_id)
                           if win.bridge.last_quality == "preview" else None)
    start()
    for i in range(8):
        move(i)
        qtbot.wait(30)
    qtbot.waitUntil(lambda: bool(previews_shown or failures), timeout=30000)  # the pointer is still down
    with qtbot.waitSignal(ws.resultShown, timeout=30000,
                          check_params_cb=lambda r: r.request_id == win.bridge.latest_id):
        end()
    assert not failures, failures[0]
    previews = [r for r in submitted if r.preview_size is not None]
    assert previews and all(r.preview_size >= 64 and r.preview_size % 32 == 0 for r in previews)
    assert submitted[-1].preview_size is None  # full size on release
    assert ws.hint.text() == ""
    win.close()


def test_a_failing_preview_keeps_the_last_good_image(qtbot, weights_dir):
    """A preview that fails mid-drag (here: the engine runs out of memory on previews) leaves the
    last good image and no error on screen; the full render on release replaces it."""
    from engine.api import EngineError
    from engine.tasks import run_request

    class OutOfMemory(EngineError):
        kind = "out_of_memory"

    def engine(request, ctx):
        if request.preview_size is not None:
            raise OutOfMemory("not enough memory for a preview")
        return run_request(request, ctx)

    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "coco_tiny")
    win = MainWindow(one_thread(), run_fn=engine, restore="no", autosave=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    ws, start, move, end = _drag_setup(qtbot, win, "exemplar")
    qtbot.waitUntil(lambda: ws.result is not None, timeout=30000)
    good = ws.output.image
    failed: list[str] = []
    win.bridge.failed.connect(lambda owner, f: failed.append(f.message))
    start()
    for i in range(4):
        move(i)
    qtbot.waitUntil(lambda: bool(failed), timeout=30000)
    assert ws.output.image is good and ws.hint.text() == ""
    with qtbot.waitSignal(ws.resultShown, timeout=30000):
        end()
    assert ws.output.image is not good and ws.hint.text() == ""
    win.close()
