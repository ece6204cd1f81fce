"""Sketch → object (EdgeGAN) and sketch → scene (objects with classes and boxes + background)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import FrozenArray, InputError, Request, SceneObject, SceneRequest, SketchObjectRequest, class_names

from ..canvases.sketch import OBJECT_COLOURS, SketchCanvas
from ..document import BACKGROUND, SketchDocument, Stroke
from ..undo import UndoStack
from ..views import ImageView
from .base import Workspace

SCENE_SIZE = (320, 240)
OBJECT_SIZE = (256, 256)


def entry_classes(entry: Any) -> list[str]:
    return class_names(entry.config) if entry is not None else []


def export_scene_json(doc: SketchDocument, path: Path) -> Path:
    """Write the scene sketch in the shared JSON format (``i2i generate scene --sketch`` reads it):
    the JSON plus a background bitmap and one full-canvas bitmap per object beside it."""
    from engine.api import save_image

    path = Path(path)
    stem = path.with_suffix("")
    save_image(f"{stem}_background.png", doc.render([BACKGROUND]))
    objects = []
    for k, obj in enumerate(doc.objects):
        box = doc.object_box(k)
        if box is None:
            continue
        name = f"{stem.name}_obj{k}.png"
        save_image(path.parent / name, doc.render([k]))
        objects.append({"class": obj.class_name, "box": list(box), "sketch": name})
    data = {"size": list(doc.size), "background": f"{stem.name}_background.png", "objects": objects}
    path.write_text(json.dumps(data, indent=1))
    return path


def strokes_to_arrays(doc: SketchDocument) -> dict[str, np.ndarray]:
    """Strokes as two arrays: all points, and (count, width, erase, group) per stroke."""
    if not doc.strokes:
        return {"stroke_points": np.zeros((0, 2), np.float32), "stroke_meta": np.zeros((0, 4), np.float32)}
    points = np.concatenate([s.points for s in doc.strokes]).astype(np.float32)
    meta = np.array([(len(s.points), s.width, float(s.erase), s.group) for s in doc.strokes], np.float32)
    return {"stroke_points": points, "stroke_meta": meta}


def strokes_from_arrays(points: np.ndarray | None, meta: np.ndarray | None) -> list[Stroke]:
    if points is None or meta is None:
        return []
    out, start = [], 0
    for n, width, erase, group in meta:
        n = int(n)
        out.append(Stroke(points[start:start + n].astype(np.float32), float(width), bool(erase), int(group)))
        start += n
    return out


class SketchTools(QWidget):
    """Width, eraser, smoothing, clear."""

    def __init__(self, canvas: SketchCanvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Width"))
        self.width = QSpinBox()
        self.width.setRange(1, 64)
        self.width.setValue(canvas.stroke_width)
        self.width.valueChanged.connect(canvas.set_width)
        canvas.widthChanged.connect(self.width.setValue)
        row.addWidget(self.width)
        self.eraser = QCheckBox("Eraser (E)")
        self.eraser.toggled.connect(canvas.set_erase)
        canvas.eraseChanged.connect(self.eraser.setChecked)
        row.addWidget(self.eraser)
        lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Smoothing"))
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 90)
        self.smoothing.setValue(int(canvas.doc.smoothing * 100))
        self.smoothing.valueChanged.connect(lambda v: setattr(canvas.doc, "smoothing", v / 100))
        row.addWidget(self.smoothing)
        lay.addLayout(row)
        clear = QPushButton("Clear")
        clear.clicked.connect(canvas.doc.clear)
        lay.addWidget(clear)
        self.canvas = canvas

    def shortcuts(self) -> list[tuple[str, object]]:
        """The canvas keys, for the workspace to bind wherever its focus is."""
        c = self.canvas
        return [("E", lambda: c.set_erase(not c.erase)), ("[", lambda: c.set_width(c.stroke_width - 1)),
                ("]", lambda: c.set_width(c.stroke_width + 1))]


class SketchObjectWorkspace(Workspace):
    key = "sketch"
    title = "Sketch → object"
    family = "edgegan"
    description = "Draw one object; EdgeGAN turns the sketch into a photo of the chosen class."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.doc = SketchDocument(OBJECT_SIZE, undo_limit=self.settings.get("undo_limit"))
        self.canvas = SketchCanvas(self.doc)
        self.class_combo = QComboBox()
        self.class_combo.currentIndexChanged.connect(lambda _=0: self.schedule("full"))
        self.inputs_layout.addWidget(QLabel("Class"))
        self.inputs_layout.addWidget(self.class_combo)
        self.tools = SketchTools(self.canvas)
        self.inputs_layout.addWidget(self.tools)
        self.inputs_layout.addStretch(1)
        for key, fn in self.tools.shortcuts():
            self.add_shortcut(key, fn)
        self.center_layout.addWidget(self.canvas, 1)
        self.connect_canvas(self.canvas)
        self.model_changed(self.weights.model)

    def model_changed(self, name: str) -> None:
        current = self.class_combo.currentText()
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(entry_classes(self.weights.entry))
        if current:
            self.class_combo.setCurrentText(current)
        self.class_combo.blockSignals(False)
        self.schedule("full")

    def undo_stack(self) -> UndoStack | None:
        return self.doc.history

    def before_image(self) -> np.ndarray | None:
        return np.repeat(self.doc.render()[..., None], 3, axis=2)

    def make_request(self) -> Request:
        bitmap = self.doc.render()
        if not (bitmap < 128).any():
            raise InputError("Draw a sketch on the canvas first.")
        if not self.class_combo.currentText():
            raise InputError("This model lists no classes.")
        return SketchObjectRequest(model=self.weights.model, seed=self.seed.value(), sketch=FrozenArray(bitmap),
                                   class_name=self.class_combo.currentText())

    def state(self) -> dict[str, Any]:
        return {**super().state(), "class": self.class_combo.currentText(), "width": self.canvas.stroke_width}

    def arrays(self) -> dict[str, np.ndarray]:
        return strokes_to_arrays(self.doc)

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        with self.live_paused(state):  # one render at the end, not one per restored field
            super().restore(state, arrays)
            self.doc.strokes = strokes_from_arrays(arrays.get("stroke_points"), arrays.get("stroke_meta"))
            self.doc.history.clear()
            self.doc.notify(None)
            if state.get("class"):
                self.class_combo.setCurrentText(state["class"])
            self.canvas.set_width(int(state.get("width", 3)))


class SceneWorkspace(Workspace):
    key = "scene"
    title = "Sketch → scene"
    family = "edgegan"
    description = "Draw background strokes and objects (each with a class and a box) to compose a scene."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.doc = SketchDocument(SCENE_SIZE, undo_limit=self.settings.get("undo_limit"))
        self.canvas = SketchCanvas(self.doc, scene_mode=True)
        self.inputs_layout.addWidget(QLabel("<b>Layers</b> — strokes go to the selected one"))
        self.layers = QListWidget()
        self.layers.currentRowChanged.connect(self._layer_selected)
        self.inputs_layout.addWidget(self.layers, 1)
        row = QHBoxLayout()
        self.class_combo = QComboBox()
        row.addWidget(self.class_combo, 1)
        add = QPushButton("Add object")
        add.clicked.connect(lambda: self.add_object(self.class_combo.currentText()))
        row.addWidget(add)
        self.inputs_layout.addLayout(row)
        self.tools = SketchTools(self.canvas)
        self.inputs_layout.addWidget(self.tools)
        for key, fn in self.tools.shortcuts():
            self.add_shortcut(key, fn)
        export = QPushButton("Export scene JSON…")
        export.setToolTip("The format `i2i generate scene --sketch FILE.json` reads")
        export.clicked.connect(self._export_dialog)
        self.inputs_layout.addWidget(export)
        self.center_layout.addWidget(self.canvas, 1)
        self.connect_canvas(self.canvas)
        self.doc.on_change(lambda _r: self._refresh_layers())
        self.parts = ImageView("Foreground objects")
        self.parts.setMaximumHeight(200)
        self.aux_row.addWidget(self.parts)
        self._refresh_layers()
        self.model_changed(self.weights.model)

    def model_changed(self, name: str) -> None:
        current = self.class_combo.currentText()
        self.class_combo.clear()
        self.class_combo.addItems(entry_classes(self.weights.entry))
        if current:
            self.class_combo.setCurrentText(current)
        self.schedule("full")

    def add_object(self, class_name: str) -> int:
        if not class_name:
            self.hint.setText("Choose a model with classes before adding objects.")
            return -1
        k = self.doc.add_object(class_name)
        self._refresh_layers()
        self.layers.setCurrentRow(k + 1)
        return k

    def _refresh_layers(self) -> None:
        if self.layers.count() == len(self.doc.objects) + 1:
            for k, obj in enumerate(self.doc.objects):
                self.layers.item(k + 1).setText(f"{k + 1}: {obj.class_name}")
            return
        row = self.layers.currentRow()
        self.layers.blockSignals(True)
        self.layers.clear()
        self.layers.addItem(QListWidgetItem("Background strokes"))
        for k, obj in enumerate(self.doc.objects):
            item = QListWidgetItem(f"{k + 1}: {obj.class_name}")
            item.setForeground(OBJECT_COLOURS[k % len(OBJECT_COLOURS)])
            self.layers.addItem(item)
        self.layers.blockSignals(False)
        self.layers.setCurrentRow(min(max(row, 0), self.layers.count() - 1))

    def _export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        name, _ = QFileDialog.getSaveFileName(self, "Export scene sketch", "scene.json", "Scene sketch (*.json)")
        if name:
            export_scene_json(self.doc, Path(name))

    def _layer_selected(self, row: int) -> None:
        self.canvas.set_group(BACKGROUND if row <= 0 else row - 1)

    def undo_stack(self) -> UndoStack | None:
        return self.doc.history

    def before_image(self) -> np.ndarray | None:
        return np.repeat(self.doc.render()[..., None], 3, axis=2)

    def make_request(self) -> Request:
        objects = []
        for k, obj in enumerate(self.doc.objects):
            box = self.doc.object_box(k)
            if box is None:
                continue  # an object without strokes yet
            objects.append(SceneObject(sketch=FrozenArray(self.doc.render([k])), class_name=obj.class_name, box=box))
        background = self.doc.render([BACKGROUND])
        if not objects and not (background < 128).any():
            raise InputError("Draw background strokes or add an object and sketch it.")
        return SceneRequest(model=self.weights.model, seed=self.seed.value(), objects=tuple(objects),
                            background=FrozenArray(background), size=self.doc.size)

    def show_aux(self, result: Any) -> None:
        self.parts.set_image(result.aux.get("foreground"))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "objects": [o.class_name for o in self.doc.objects],
                "layer": self.layers.currentRow()}

    def arrays(self) -> dict[str, np.ndarray]:
        return strokes_to_arrays(self.doc)

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        from ..document import SceneObjectSpec

        with self.live_paused(state):  # one render at the end, not one per restored field
            super().restore(state, arrays)
            self.doc.objects = [SceneObjectSpec(c) for c in state.get("objects", [])]
            self.doc.strokes = strokes_from_arrays(arrays.get("stroke_points"), arrays.get("stroke_meta"))
            self.doc.history.clear()
            self.doc.notify(None)
            self._refresh_layers()
            self.layers.setCurrentRow(int(state.get("layer", 0)))
