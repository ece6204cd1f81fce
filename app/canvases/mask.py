"""Mask canvas: paint semantic label maps (and panoptic instance ids) with brush, eraser, fill and
picker. Colours come from one lookup table; a stroke recolours and repaints only its dirty rect."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from ..document import LabelDocument, MaskTool, Rect
from ..qt_util import rgb_image
from .base import DocCanvas

OUTLINE = np.array([20, 20, 20], np.uint8)


class MaskCanvas(DocCanvas):
    """Edits a :class:`LabelDocument`. ``background`` (an RGB photo of the same size) is shown
    under the colours at ``1 - opacity`` for map editing over a photo."""

    edited = Signal(object)          # dirty rect (x0, y0, x1, y1) or None for everything
    strokeStarted = Signal()
    strokeFinished = Signal()
    labelPicked = Signal(int, int)   # label, instance number
    brushSizeChanged = Signal(int)
    instanceChanged = Signal(int)
    toolChanged = Signal(str)

    def __init__(self, doc: LabelDocument, parent: QWidget | None = None, *, brush_size: int = 12) -> None:
        super().__init__(parent)
        self.tool: MaskTool = "brush"
        self.current_label = 1 if len(doc.palette) > 1 else 0
        self.current_instance = 1
        self.brush_size = brush_size
        self.background: np.ndarray | None = None
        self.opacity = 1.0
        self.show_outlines = True
        self._hover: tuple[float, float] | None = None
        self._drawing = False
        self.doc = doc
        self._lut = np.zeros((1, 3), np.uint8)
        self._listening: set[int] = set()
        self.set_document(doc)

    # -------------------------------------------------------------- document
    def set_document(self, doc: LabelDocument) -> None:
        self.doc = doc
        self._lut = np.zeros((max(len(doc.palette), 1) + 1, 3), np.uint8)
        self._lut[: len(doc.palette)] = doc.palette.colors
        if id(doc) not in self._listening:  # once per document, however often its palette changes
            self._listening.add(id(doc))
            doc.on_change(self._doc_changed)
        self._rebuild()

    def doc_size(self) -> tuple[int, int]:
        return self.doc.size

    def set_background(self, photo: np.ndarray | None, opacity: float = 0.6) -> None:
        self.background = None if photo is None else np.ascontiguousarray(photo[..., :3], np.uint8)
        self.opacity = opacity if photo is not None else 1.0
        self._rebuild()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(min(max(opacity, 0.0), 1.0))
        self._rebuild()

    def _doc_changed(self, rect: Rect | None) -> None:
        if rect is None or self._rgb.shape[:2] != self.doc.labels.shape:
            self._rebuild()
        else:
            self._recolour(rect)
            self.update(self.view_rect(rect))
        self.edited.emit(rect)

    def _rebuild(self) -> None:
        h, w = self.doc.labels.shape
        self._image, self._rgb = rgb_image(w, h)
        self._recolour((0, 0, w, h))
        self.update()

    def _recolour(self, rect: Rect) -> None:
        """Colour one rectangle of the display buffer from the maps (vectorised LUT)."""
        h, w = self.doc.labels.shape
        x0, y0, x1, y1 = rect
        # outlines depend on neighbours: widen by one pixel
        x0, y0, x1, y1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, w), min(y1 + 1, h)
        if x0 >= x1 or y0 >= y1:
            return
        labels = self.doc.labels[y0:y1, x0:x1]
        idx = np.clip(labels, 0, len(self._lut) - 1)
        rgb = self._lut[idx]
        if self.background is not None and self.background.shape[:2] == (h, w) and self.opacity < 1:
            bg = self.background[y0:y1, x0:x1].astype(np.float32)
            rgb = (bg * (1 - self.opacity) + rgb.astype(np.float32) * self.opacity).astype(np.uint8)
        inst = self.doc.instances
        if inst is not None and self.show_outlines:
            # outline pixels: an instance id differs from the right or lower neighbour
            ex0, ey0, ex1, ey1 = x0, y0, min(x1 + 1, w), min(y1 + 1, h)
            block = inst[ey0:ey1, ex0:ex1]
            # only around thing instances (ids >= 1000): stuff borders are class borders already
            thing = block >= 1000
            edge = np.zeros(block.shape, bool)
            edge[:, :-1] |= (block[:, 1:] != block[:, :-1]) & (thing[:, 1:] | thing[:, :-1])
            edge[:-1, :] |= (block[1:, :] != block[:-1, :]) & (thing[1:, :] | thing[:-1, :])
            edge = edge[: y1 - y0, : x1 - x0]
            rgb = rgb.copy()
            rgb[edge] = OUTLINE
        self._rgb[y0:y1, x0:x1] = rgb

    def display_rgb(self) -> np.ndarray:
        """The colours currently shown (map colours, blended photo, outlines)."""
        return self._rgb.copy()

    # -------------------------------------------------------------- tools
    def set_tool(self, tool: MaskTool) -> None:
        self.tool = tool
        self.setCursor(Qt.CursorShape.CrossCursor if tool in ("fill", "picker") else Qt.CursorShape.BlankCursor)
        self.toolChanged.emit(tool)
        self.update()

    def step_brush(self, direction: int) -> None:
        """[ / ]: a smaller or larger brush, in steps of about a sixth of its size."""
        self.set_brush_size(self.brush_size + direction * max(1, self.brush_size // 6))

    def set_label(self, label: int) -> None:
        self.current_label = int(label)

    def set_instance(self, instance: int) -> None:
        self.current_instance = max(1, int(instance))
        self.instanceChanged.emit(self.current_instance)

    def new_instance(self) -> int:
        """Key N: the next free instance number of the current class."""
        self.set_instance(self.doc.new_instance(self.current_label))
        return self.current_instance

    def set_brush_size(self, size: int) -> None:
        size = int(min(max(size, 1), 256))
        if size != self.brush_size:
            self.brush_size = size
            self.brushSizeChanged.emit(size)
            self.update()

    # -------------------------------------------------------------- input
    def _paint_value(self) -> int:
        return 0 if self.tool == "eraser" else self.current_label

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        x, y = self.to_doc(ev.position())
        w, h = self.doc.size
        if self.tool == "picker":
            label, inst = self.doc.pick(x, y)
            self.current_label = label
            if inst:
                self.current_instance = inst
            self.labelPicked.emit(label, inst)
            return
        if not (0 <= x < w and 0 <= y < h):
            return
        if self.tool == "fill":
            self.strokeStarted.emit()
            self.doc.fill(x, y, self._paint_value(), self.current_instance)
            self.strokeFinished.emit()
            return
        self._drawing = True
        self.doc.begin_stroke()
        self.strokeStarted.emit()
        self.doc.stroke_to(x, y, self.brush_size / 2, self._paint_value(), self.current_instance)

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        old = self._hover
        x, y = self.to_doc(ev.position())
        self._hover = (x, y)
        if self._drawing:
            self.doc.stroke_to(x, y, self.brush_size / 2, self._paint_value(), self.current_instance)
        self._update_cursor(old)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if ev.button() == Qt.MouseButton.LeftButton and self._drawing:
            self._drawing = False
            self.doc.end_stroke("erase" if self.tool == "eraser" else "brush stroke")
            self.strokeFinished.emit()

    def leaveEvent(self, ev) -> None:
        old, self._hover = self._hover, None
        self._update_cursor(old)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key = ev.key()
        if key == Qt.Key.Key_BracketLeft:
            self.step_brush(-1)
        elif key == Qt.Key.Key_BracketRight:
            self.step_brush(+1)
        elif key == Qt.Key.Key_N and self.doc.panoptic:
            self.new_instance()
        elif key == Qt.Key.Key_Escape and self._drawing:
            self._drawing = False
            self.doc.abort_stroke()
            self.strokeFinished.emit()
        elif key == Qt.Key.Key_B:
            self.set_tool("brush")
        elif key == Qt.Key.Key_E:
            self.set_tool("eraser")
        elif key == Qt.Key.Key_F:
            self.set_tool("fill")
        elif key == Qt.Key.Key_I:
            self.set_tool("picker")
        else:
            super().keyPressEvent(ev)

    def _update_cursor(self, old: tuple[float, float] | None) -> None:
        r = self.brush_size / 2 + 2
        for p in (old, self._hover):
            if p is not None:
                self.update(self.view_rect((int(p[0] - r), int(p[1] - r), int(p[0] + r) + 1, int(p[1] + r) + 1), 3))

    # -------------------------------------------------------------- painting
    def paintEvent(self, ev: QPaintEvent) -> None:
        p = QPainter(self)
        p.setClipRect(ev.rect())
        self.paint_background(p)
        target = self.doc_rect_in_view()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(target, self._image)
        if self._hover is not None and self.tool in ("brush", "eraser"):
            s = self.view_scale()
            c = self.to_view(*self._hover)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setPen(QPen(QColor(255, 255, 255), 1.5))
            p.drawEllipse(c, self.brush_size / 2 * s, self.brush_size / 2 * s)
            p.setPen(QPen(QColor(0, 0, 0), 1.0))
            p.drawEllipse(c, self.brush_size / 2 * s + 1.5, self.brush_size / 2 * s + 1.5)
        p.end()

    def center_of(self, x: float, y: float) -> QPointF:
        """Widget position of a document pixel centre (tests drive the mouse with it)."""
        return self.to_view(x + 0.5, y + 0.5)
