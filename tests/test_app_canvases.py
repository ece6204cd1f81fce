"""Canvases and their numpy documents: painting changes the model as expected, undo/redo
round-trips, fill/picker/eraser, panoptic instances, sketch strokes and scene objects, pose joints."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.canvases import MaskCanvas, PoseCanvas, SketchCanvas
from app.document import BACKGROUND, LabelDocument, PoseDocument, SketchDocument, default_pose
from app.mask_editor import MaskEditor
from app.qt_util import rgb_from_qimage
from engine.api import palette_for
from engine.io import load_openpose_json, load_palette, save_openpose_json


def drag(qtbot, widget, points, button=Qt.MouseButton.LeftButton):
    p0 = points[0].toPoint() if isinstance(points[0], QPointF) else points[0]
    qtbot.mousePress(widget, button, pos=p0)
    for p in points[1:]:
        qtbot.mouseMove(widget, pos=p.toPoint() if isinstance(p, QPointF) else p)
    last = points[-1]
    qtbot.mouseRelease(widget, button, pos=last.toPoint() if isinstance(last, QPointF) else last)


@pytest.fixture
def ade():
    return load_palette("ade20k")


def test_stamp_segment_paints_a_capsule_and_undo_redo_round_trips(ade):
    doc = LabelDocument((64, 64), ade)
    before = doc.labels.copy()
    doc.begin_stroke()
    doc.stroke_to(10, 32, 3, label=5)
    rect = doc.stroke_to(50, 32, 3, label=5)
    delta = doc.end_stroke()
    assert rect is not None and delta is not None
    painted = doc.labels == 5
    # the whole segment is covered, nothing beyond radius
    assert painted[32, 10:51].all()
    assert not painted[:28].any() and not painted[37:].any()
    assert painted.sum() == delta.idx.size
    after = doc.labels.copy()
    assert doc.history.undo()
    assert np.array_equal(doc.labels, before)
    assert doc.history.redo()
    assert np.array_equal(doc.labels, after)


def test_history_is_bounded_and_new_edit_clears_redo(ade):
    doc = LabelDocument((32, 32), ade, undo_limit=3)
    for i in range(5):
        doc.begin_stroke()
        doc.stroke_to(i * 6 + 3, 16, 2, label=i + 1)
        doc.end_stroke()
    assert len(doc.history) == 3
    doc.history.undo()
    assert doc.history.can_redo()
    doc.begin_stroke()
    doc.stroke_to(5, 5, 2, label=9)
    doc.end_stroke()
    assert not doc.history.can_redo()


def test_fill_is_contiguous_and_undoable(ade):
    doc = LabelDocument((40, 40), ade)
    doc.labels[:, 20] = 3  # a wall splitting the map
    doc.fill(5, 5, label=7)
    assert (doc.labels[:, :20] == 7).all() and (doc.labels[:, 21:] == 0).all() and (doc.labels[:, 20] == 3).all()
    doc.history.undo()
    assert (doc.labels[:, :20] == 0).all()


def test_abort_stroke_restores_the_map(ade):
    doc = LabelDocument((32, 32), ade)
    doc.begin_stroke()
    doc.stroke_to(4, 4, 3, label=2)
    doc.stroke_to(28, 28, 3, label=2)
    doc.abort_stroke()
    assert not doc.labels.any() and not doc.history.can_undo()


def test_panoptic_instances_and_new_instance():
    pal = palette_for("scenes")
    thing = sorted(pal.things)[0]
    doc = LabelDocument((32, 32), pal, panoptic=True)
    doc.begin_stroke()
    doc.stroke_to(8, 8, 3, label=thing, instance=1)
    doc.end_stroke()
    assert doc.new_instance(thing) == 2
    doc.begin_stroke()
    doc.stroke_to(24, 24, 3, label=thing, instance=2)
    doc.end_stroke()
    ids = set(np.unique(doc.instances)) - {0}
    assert ids == {thing * 1000 + 1, thing * 1000 + 2}
    assert doc.pick(24, 24) == (thing, 2)
    stuff = next(i for i in range(1, len(pal)) if i not in pal.things)
    doc.fill(0, 31, label=stuff)
    assert doc.instances[31, 0] == stuff  # stuff pixels carry the class index


def test_mask_canvas_mouse_painting_changes_the_document(qtbot, ade):
    doc = LabelDocument((64, 64), ade)
    canvas = MaskCanvas(doc, brush_size=6)
    qtbot.addWidget(canvas)
    canvas.resize(256, 256)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_label(12)
    edits = []
    canvas.edited.connect(edits.append)
    with qtbot.waitSignals([canvas.strokeStarted, canvas.strokeFinished], order="strict", timeout=2000):
        drag(qtbot, canvas, [canvas.center_of(8, 8), canvas.center_of(30, 8), canvas.center_of(56, 8)])
    assert (doc.labels[8, 8:57] == 12).all()
    assert doc.labels[30:].max() == 0
    assert edits and all(r is not None for r in edits)  # partial repaints only
    # the display buffer shows the class colour where painted (vectorised LUT)
    assert (canvas.display_rgb()[8, 20] == ade.colors[12]).all()
    # picker then eraser
    canvas.set_tool("picker")
    with qtbot.waitSignal(canvas.labelPicked, check_params_cb=lambda label, i: label == 12):
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.center_of(20, 8).toPoint())
    canvas.set_tool("eraser")
    drag(qtbot, canvas, [canvas.center_of(8, 8), canvas.center_of(56, 8)])
    assert doc.labels.max() == 0
    doc.history.undo()
    assert (doc.labels[8, 8:57] == 12).all()
    # brush size keys
    canvas.set_tool("brush")
    size = canvas.brush_size
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.brush_size > size
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size < size


def test_mask_canvas_renders_outlines_in_panoptic_mode(qtbot):
    pal = palette_for("scenes")
    thing = sorted(pal.things)[0]
    editor = MaskEditor(pal, (48, 48), panoptic=True, brush_size=8)
    qtbot.addWidget(editor.canvas)
    editor.canvas.set_label(thing)
    editor.canvas.set_instance(1)
    editor.doc.begin_stroke()
    editor.doc.stroke_to(12, 24, 6, thing, 1)
    editor.doc.end_stroke()
    qtbot.keyClick(editor.canvas, Qt.Key.Key_N)
    assert editor.canvas.current_instance == 2 == editor.instance_spin.value()
    rgb = editor.canvas.display_rgb()
    # pixels at the instance border are dark outline pixels
    assert (rgb[24, 5:8] == 20).all(axis=-1).any()
    # snapshot of the widget at a pinned size shows the class colour
    editor.canvas.resize(200, 200)
    img = rgb_from_qimage(editor.canvas.grab().toImage())
    assert img.shape[:2] == (200, 200)
    assert (np.abs(img.astype(int) - pal.colors[thing]).sum(-1) < 10).any()


def test_palette_search_filters_names(qtbot, ade):
    editor = MaskEditor(ade, (32, 32))
    qtbot.addWidget(editor.tools)
    editor.palette_list.search.setText("tree")
    visible = editor.palette_list.visible_labels()
    assert visible and all("tree" in ade.names[i].lower() for i in visible)
    assert editor.canvas.current_label == visible[0]


def test_sketch_strokes_undo_per_stroke_and_scene_objects(qtbot):
    doc = SketchDocument((64, 64))
    canvas = SketchCanvas(doc, scene_mode=True)
    qtbot.addWidget(canvas)
    canvas.resize(128, 128)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_width(3)
    drag(qtbot, canvas, [canvas.to_view(5, 5), canvas.to_view(20, 5), canvas.to_view(40, 5)])
    assert len(doc.strokes) == 1 and doc.strokes[0].group == BACKGROUND
    bg = doc.render([BACKGROUND])
    assert (bg[3:8, 6:30] < 128).any() and (bg[30:] == 255).all()
    k = doc.add_object("cat")
    canvas.set_group(k)
    drag(qtbot, canvas, [canvas.to_view(30, 30), canvas.to_view(50, 50)])
    assert doc.strokes[-1].group == k
    box = doc.object_box(k)
    assert box is not None and box[0] <= 31 and box[2] >= 45
    assert (doc.render([k])[:20] == 255).all()  # object bitmap excludes background strokes
    doc.history.undo()
    assert len(doc.strokes) == 1
    doc.history.undo()
    assert doc.objects == []
    doc.history.redo()
    doc.history.redo()
    assert len(doc.strokes) == 2 and doc.objects[0].class_name == "cat"
    doc.clear()
    assert not doc.strokes
    doc.history.undo()
    assert len(doc.strokes) == 2


def test_sketch_smoothing_is_centred_and_keeps_end_points():
    doc = SketchDocument((64, 64))
    doc.smoothing = 0.6
    doc.begin_stroke(0, 10, 2)
    for i in range(1, 41):  # a zig-zag along y = 10
        doc.stroke_to(i, 10 + (2 if i % 2 else -2))
    stroke = doc.end_stroke()
    pts = stroke.points
    assert tuple(pts[0]) == (0, 10) and tuple(pts[-1]) == pytest.approx((40, 8))
    inner = pts[5:-5]
    assert np.abs(inner[:, 1] - 10).max() < 1.0  # jitter removed, no drift off the path
    doc.smoothing = 0.0
    doc.begin_stroke(0, 0, 2)
    doc.stroke_to(10, 3)
    doc.stroke_to(20, 0)
    assert np.array_equal(doc.end_stroke().points, np.array([[0, 0], [10, 3], [20, 0]], np.float32))


def test_pose_canvas_drag_remove_add_reset_and_json(qtbot, tmp_path):
    doc = PoseDocument((176, 256))
    canvas = PoseCanvas(doc)
    qtbot.addWidget(canvas)
    canvas.resize(176, 256)
    canvas.show()
    qtbot.waitExposed(canvas)
    start = canvas.joint_position(4)  # r_wrist
    target = QPointF(start.x() + 20, start.y() + 30)
    drag(qtbot, canvas, [start, QPointF(start.x() + 10, start.y() + 15), target])
    x, y = canvas.to_doc(target)
    assert doc.keypoints[4, 0] == pytest.approx(x, abs=1.5) and doc.keypoints[4, 1] == pytest.approx(y, abs=1.5)
    assert doc.history.undo_label == "move joint"
    qtbot.mouseClick(canvas, Qt.MouseButton.RightButton, pos=canvas.joint_position(0).toPoint())
    assert not doc.present(0)
    path = tmp_path / "pose.json"
    save_openpose_json(path, doc.keypoints, doc.size)
    kp = load_openpose_json(path)
    assert np.allclose(kp, doc.keypoints, atol=1e-3) and kp[0, 2] == 0
    doc.add_joint(0, 80, 30)
    assert doc.present(0) and tuple(doc.keypoints[0, :2]) == (80, 30)
    doc.reset()
    assert np.array_equal(doc.keypoints, default_pose((176, 256)))
    for _ in range(4):
        doc.history.undo()
    assert doc.keypoints[4, 0] == pytest.approx(default_pose((176, 256))[4, 0])


def test_palette_change_keeps_one_listener_and_clamps_labels(qtbot):
    editor = MaskEditor(load_palette("ade20k"), (32, 32))
    qtbot.addWidget(editor.canvas)
    editor.doc.labels[:] = 100
    editor.set_palette(palette_for("scenes"))
    assert editor.doc.labels.max() < 16 and len(editor.palette_list.palette) == 16
    edits = []
    editor.canvas.edited.connect(edits.append)
    editor.doc.begin_stroke()
    editor.doc.stroke_to(5, 5, 2, 3)
    assert len(edits) == 1  # one repaint + one preview request per change, not one per palette switch


def test_scene_sketch_exports_the_shared_json_format(tmp_path):
    from app.workspaces.sketch import export_scene_json
    from engine.inputs.sketch import load_scene_sketch

    doc = SketchDocument((96, 64))
    doc.begin_stroke(0, 40, 2)
    doc.stroke_to(95, 40)
    doc.end_stroke()
    k = doc.add_object("cat")
    doc.begin_stroke(20, 10, 3, group=k)
    doc.stroke_to(40, 30)
    doc.end_stroke()
    path = export_scene_json(doc, tmp_path / "scene.json")
    scene = load_scene_sketch(path)
    assert tuple(scene.size) == (96, 64)
    (cls, box, bitmap), = scene.objects
    assert cls == "cat" and tuple(box) == doc.object_box(k)
    assert np.array_equal(bitmap < 128, doc.render([k]) < 128)
    assert (scene.background < 128).any()
