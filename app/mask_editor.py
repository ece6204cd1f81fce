"""A mask canvas with its tool panel: class palette with search, tools, brush size, instance
controls (panoptic), load/save of label and instance PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.api import InputError, Palette, load_instance_map, load_label_map, save_instance_map, save_label_map

from .canvases.mask import MaskCanvas
from .document import LabelDocument
from .pickers import PaletteList

MAP_FILTER = "Label maps (*.png);;All files (*)"
# Fusion's sunken look of a checked tool button is hard to see on the dark theme
ACTIVE_TOOL_STYLE = ("QToolButton { padding: 3px 8px; }"
                     "QToolButton:checked { background: palette(highlight); color: palette(highlighted-text);"
                     " border: 1px solid palette(highlight); border-radius: 3px; }")


class MaskEditor(QWidget):
    """``tools`` goes in a side column, ``canvas`` in the centre; both edit ``doc``."""

    def __init__(self, palette: Palette, size: tuple[int, int] = (256, 256), *, panoptic: bool = False,
                 brush_size: int = 12, undo_limit: int = 200, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = LabelDocument(size, palette, panoptic=panoptic, undo_limit=undo_limit)
        self.canvas = MaskCanvas(self.doc, brush_size=brush_size)
        self.tools = QWidget()
        lay = QVBoxLayout(self.tools)
        lay.setContentsMargins(0, 0, 0, 0)
        grid = QGridLayout()
        self.tool_group = QButtonGroup(self)
        for i, (tool, text, tip) in enumerate((("brush", "Brush", "B"), ("eraser", "Eraser", "E"),
                                               ("fill", "Fill", "F"), ("picker", "Pick", "I"))):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(f"{text} ({tip})")
            b.setCheckable(True)
            b.setObjectName(f"tool_{tool}")
            b.setStyleSheet(ACTIVE_TOOL_STYLE)
            b.clicked.connect(lambda _=False, t=tool: self.canvas.set_tool(t))
            self.tool_group.addButton(b)
            grid.addWidget(b, 0, i)
        self.tool_group.setExclusive(True)
        self.tool_buttons = {b.objectName()[len("tool_"):]: b for b in self.tool_group.buttons()}
        self.canvas.toolChanged.connect(lambda t: self.tool_buttons[t].setChecked(True))
        self.tool_buttons[self.canvas.tool].setChecked(True)
        lay.addLayout(grid)
        row = QHBoxLayout()
        row.addWidget(QLabel("Size"))
        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, 256)
        self.size_spin.setValue(brush_size)
        self.size_spin.setToolTip("Brush diameter in map pixels ([ and ])")
        self.size_spin.valueChanged.connect(self.canvas.set_brush_size)
        self.canvas.brushSizeChanged.connect(self.size_spin.setValue)
        row.addWidget(self.size_spin)
        lay.addLayout(row)
        self.instance_row = QWidget()
        ir = QHBoxLayout(self.instance_row)
        ir.setContentsMargins(0, 0, 0, 0)
        ir.addWidget(QLabel("Instance"))
        self.instance_spin = QSpinBox()
        self.instance_spin.setRange(1, 999)
        self.instance_spin.setToolTip("Instance number painted for countable (◆) classes")
        self.instance_spin.valueChanged.connect(self.canvas.set_instance)
        self.canvas.instanceChanged.connect(self.instance_spin.setValue)
        ir.addWidget(self.instance_spin)
        new = QPushButton("New (N)")
        new.setToolTip("Next unused instance of the current class")
        new.clicked.connect(self.canvas.new_instance)
        ir.addWidget(new)
        lay.addWidget(self.instance_row)
        self.instance_row.setVisible(panoptic)
        self.palette_list = PaletteList(palette)
        self.palette_list.labelChosen.connect(self._label_chosen)
        self.canvas.labelPicked.connect(self._picked)
        lay.addWidget(self.palette_list, 1)
        self.opacity_row = QWidget()
        orow = QHBoxLayout(self.opacity_row)
        orow.setContentsMargins(0, 0, 0, 0)
        orow.addWidget(QLabel("Map opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.valueChanged.connect(lambda v: self.canvas.set_opacity(v / 100))
        orow.addWidget(self.opacity)
        lay.addWidget(self.opacity_row)
        self.opacity_row.setVisible(False)
        files = QHBoxLayout()
        for text, slot in (("Load map…", self.load_dialog), ("Save map…", self.save_dialog)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            files.addWidget(b)
        lay.addLayout(files)
        self.palette_list.select(self.canvas.current_label)

    def shortcuts(self) -> list[tuple[str, object]]:
        """The canvas keys, for the workspace to bind wherever its focus is."""
        keys: list[tuple[str, object]] = [
            ("B", lambda: self.canvas.set_tool("brush")), ("E", lambda: self.canvas.set_tool("eraser")),
            ("F", lambda: self.canvas.set_tool("fill")), ("I", lambda: self.canvas.set_tool("picker")),
            ("[", lambda: self.canvas.step_brush(-1)), ("]", lambda: self.canvas.step_brush(+1))]
        if self.doc.panoptic:
            keys.append(("N", self.canvas.new_instance))
        return keys

    # -------------------------------------------------------------- palette
    def set_palette(self, palette: Palette) -> None:
        if palette.names == self.doc.palette.names and np.array_equal(palette.colors, self.doc.palette.colors):
            return
        self.doc.palette = palette
        labels = np.where(self.doc.labels < len(palette), self.doc.labels, 0)
        self.canvas.set_document(self.doc)
        self.palette_list.set_palette(palette)
        if not np.array_equal(labels, self.doc.labels):
            self.doc.replace(labels, None if self.doc.instances is None else
                             np.where(self.doc.labels < len(palette), self.doc.instances, 0), label="palette change")
        self.canvas.current_label = min(self.canvas.current_label, len(palette) - 1)
        self.palette_list.select(self.canvas.current_label)

    def _label_chosen(self, label: int) -> None:
        self.canvas.set_label(label)
        if self.doc.panoptic and self.doc.is_thing(label):
            self.canvas.set_instance(max(1, self.doc.new_instance(label) - 1))

    def _picked(self, label: int, instance: int) -> None:
        self.palette_list.select(label)
        if instance:
            self.instance_spin.setValue(instance)

    # -------------------------------------------------------------- files
    def load_map(self, path: str | Path, instances: str | Path | None = None) -> None:
        """Load a label PNG (indexed, grey, or RGB in this palette), plus an instance PNG."""
        labels = load_label_map(path, self.doc.palette, num_classes=len(self.doc.palette))
        inst = load_instance_map(instances) if instances else None
        self.doc.replace(labels, inst)

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load label map", "", MAP_FILTER)
        if not path:
            return
        inst = None
        if self.doc.panoptic:
            inst, _ = QFileDialog.getOpenFileName(self, "Load instance map (optional)", str(Path(path).parent),
                                                  MAP_FILTER)
        try:
            self.load_map(path, inst or None)
        except (InputError, ValueError) as exc:
            self.palette_list.search.setPlaceholderText(str(exc))

    def save_map(self, path: str | Path) -> None:
        save_label_map(path, self.doc.labels, self.doc.palette)
        if self.doc.instances is not None:
            p = Path(path)
            save_instance_map(p.with_name(p.stem + "_instances.png"), self.doc.instances)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save label map", "labels.png", MAP_FILTER)
        if path:
            self.save_map(path)
