"""The pose canvas is reachable: pose examples are offered only with a pose model; without one the
Exemplar workspace says which model is missing and how to get it."""
from __future__ import annotations

import numpy as np

from app.main import MainWindow
from app.settings import Settings

from .helpers import register_tiny


def _window(qtbot):
    win = MainWindow(Settings.defaults(), run_fn=lambda r, c: c.result(np.zeros((8, 8, 3), np.uint8)),
                     restore="no", autosave=False)
    qtbot.addWidget(win)
    return win, win.workspaces["exemplar"]


def test_without_a_pose_model_no_pose_examples_and_the_missing_model_is_named(qtbot, weights_dir):
    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "coco_labels")
    win, ws = _window(qtbot)
    assert ws.kind == "labels"
    photos, maps = ws.exemplar.gallery_examples(), ws.exemplar_map.gallery_examples()
    assert photos and not any(name.startswith("pose") for name in photos)  # scene exemplars only
    assert maps and not any(name.startswith("pose") for name in maps)
    note = ws.pose_note.text()
    assert not ws.pose_note.isHidden()
    assert "No pose model is registered" in note and "DeepFashion" in note
    assert "--family cocosnet --config deepfashion" in note and "i2i train cocosnet --config small_deepfashion" in note
    win.close()


def test_with_a_pose_model_the_pose_examples_lead_to_the_pose_canvas(qtbot, weights_dir):
    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "coco_labels")
    register_tiny(weights_dir, "cocosnet", "tiny_deepfashion", "coco_pose")
    win, ws = _window(qtbot)
    ws.weights.combo.setCurrentIndex(ws.weights.combo.findData("coco_labels"))
    assert ws.kind == "labels" and "choose coco_pose under Model" in ws.pose_note.text()
    ws.weights.combo.setCurrentIndex(ws.weights.combo.findData("coco_pose"))
    assert ws.kind == "pose" and ws.canvas_stack.currentWidget() is ws.pose_canvas
    assert ws.pose_note.isHidden()
    photos = ws.exemplar.gallery_examples()
    assert photos and all(name.startswith("pose") for name in photos)
    # choosing a pose example brings its skeleton along (the exemplar's pose JSON)
    ws.exemplar.gallery_button.menu().actions()[0].trigger()
    assert ws.exemplar.image is not None and ws.exemplar_map.image is not None
    assert ws.exemplar_map.image.shape == (18, 3)
    win.close()
