"""Sketch canvas: smoothed freehand strokes, eraser, width; in scene mode strokes belong to the
selected object (drawn with its class and box) or to the background."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from ..document import BACKGROUND, Rect, SketchDocument
from ..qt_util import qimage_from_rgb
from .base import DocCanvas

# distinct hues for scene objects (strokes of object k are tinted with OBJECT_COLOURS[k % n])
OBJECT_COLOURS = [QColor(c) for c in ("#d94f4f", "#3f7fd9", "#3fa35a", "#c77d1a", "#8a4fd9", "#1aa3a3", "#d94fa0")]


class SketchCanvas(DocCanvas):
    edited = Signal(object)
    strokeStarted = Signal()
    strokeFinished = Signal()
    widthChanged = Signal(int)
    eraseChanged = Signal(bool)

    def __init__(self, doc: SketchDocument, parent: QWidget | None = None, *, scene_mode: bool = False) -> None:
        super().__init__(parent)
        self.doc = doc
        self.scene_mode = scene_mode
        self.stroke_width = 3
        self.erase = False
        self.current_group = BACKGROUND
        self._cache: QImage | None = None
        doc.on_change(self._changed)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def doc_size(self) -> tuple[int, int]:
        return self.doc.size

    def _changed(self, rect: Rect | None) -> None:
        if not self.doc.in_stroke:
            self._cache = None  # strokes list changed: re-rasterise on next paint
        self.update(self.view_rect(rect, 4) if rect is not None else self.rect())
        self.edited.emit(rect)

    def set_width(self, width: int) -> None:
        width = int(min(max(width, 1), 64))
        if width != self.stroke_width:
            self.stroke_width = width
            self.widthChanged.emit(width)

    def set_erase(self, erase: bool) -> None:
        if erase != self.erase:
            self.erase = erase
            self.eraseChanged.emit(erase)

    def set_group(self, group: int) -> None:
        self.current_group = group
        self.update()

    # -------------------------------------------------------------- input
    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        x, y = self.to_doc(ev.position())
        self.doc.begin_stroke(x, y, self.stroke_width, erase=self.erase,
                              group=self.current_group if self.scene_mode else BACKGROUND)
        self.strokeStarted.emit()
        self.doc.stroke_to(x, y)

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if self.doc.in_stroke:
            self.doc.stroke_to(*self.to_doc(ev.position()))

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if ev.button() == Qt.MouseButton.LeftButton and self.doc.in_stroke:
            self.doc.end_stroke()
            self.strokeFinished.emit()

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if ev.key() == Qt.Key.Key_BracketLeft:
            self.set_width(self.stroke_width - 1)
        elif ev.key() == Qt.Key.Key_BracketRight:
            self.set_width(self.stroke_width + 1)
        elif ev.key() == Qt.Key.Key_E:
            self.set_erase(not self.erase)
        elif ev.key() == Qt.Key.Key_Escape and self.doc.in_stroke:
            self.doc.abort_stroke()
            self.strokeFinished.emit()
        else:
            super().keyPressEvent(ev)

    # -------------------------------------------------------------- painting
    def _raster(self) -> QImage:
        if self._cache is None:
            w, h = self.doc.size
            if self.scene_mode:
                rgb = np.full((h, w, 3), 255, np.uint8)
                bg = self.doc.render([BACKGROUND])
                rgb[bg < 128] = (90, 90, 90)
                for k in range(len(self.doc.objects)):
                    m = self.doc.render([k]) < 128
                    c = OBJECT_COLOURS[k % len(OBJECT_COLOURS)]
                    rgb[m] = (c.red(), c.green(), c.blue())
            else:
                rgb = np.repeat(self.doc.render()[..., None], 3, axis=2)
            self._cache = qimage_from_rgb(rgb)
        return self._cache

    def paintEvent(self, ev: QPaintEvent) -> None:
        p = QPainter(self)
        p.setClipRect(ev.rect())
        self.paint_background(p)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(self.doc_rect_in_view(), self._raster())
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        s = self.view_scale()
        pts = self.doc.current_points()
        if pts is not None and self.doc._current_meta is not None:
            width, erase, group = self.doc._current_meta
            colour = QColor(255, 255, 255) if erase else (
                OBJECT_COLOURS[group % len(OBJECT_COLOURS)] if self.scene_mode and group >= 0 else QColor(0, 0, 0))
            pen = QPen(colour, max(width * s, 1.0), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                       Qt.PenJoinStyle.RoundJoin)
            p.setPen(pen)
            p.drawPolyline(QPolygonF([self.to_view(float(x), float(y)) for x, y in pts]))
        if self.scene_mode:
            font = QFont(self.font())
            font.setBold(True)
            p.setFont(font)
            for k, obj in enumerate(self.doc.objects):
                box = self.doc.object_box(k)
                if box is None:
                    continue
                c = OBJECT_COLOURS[k % len(OBJECT_COLOURS)]
                a, b = self.to_view(box[0], box[1]), self.to_view(box[2], box[3])
                pen = QPen(c, 2.0 if k == self.current_group else 1.0,
                           Qt.PenStyle.SolidLine if k == self.current_group else Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.drawRect(QRectF(a, b))
                p.drawText(a + QPointF(3, -4), f"{k + 1}: {obj.class_name}")
        p.end()
