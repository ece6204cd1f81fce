"""Shared view geometry of the canvases: a document of W×H pixels fitted into the widget."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..document import Rect

CANVAS_BG = QColor(40, 42, 46)


class DocCanvas(QWidget):
    """A widget showing a document scaled to fit, keeping its aspect ratio."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def doc_size(self) -> tuple[int, int]:  # overridden
        return (256, 256)

    def sizeHint(self) -> QSize:
        w, h = self.doc_size()
        s = min(512 / max(w, h), 2.0)
        return QSize(int(w * s), int(h * s))

    def view_scale(self) -> float:
        w, h = self.doc_size()
        return min(self.width() / w, self.height() / h)

    def view_offset(self) -> tuple[float, float]:
        w, h = self.doc_size()
        s = self.view_scale()
        return (self.width() - w * s) / 2, (self.height() - h * s) / 2

    def to_doc(self, pos: QPointF) -> tuple[float, float]:
        s = self.view_scale()
        ox, oy = self.view_offset()
        return (pos.x() - ox) / s, (pos.y() - oy) / s

    def to_view(self, x: float, y: float) -> QPointF:
        s = self.view_scale()
        ox, oy = self.view_offset()
        return QPointF(ox + x * s, oy + y * s)

    def doc_rect_in_view(self) -> QRectF:
        w, h = self.doc_size()
        s = self.view_scale()
        ox, oy = self.view_offset()
        return QRectF(ox, oy, w * s, h * s)

    def view_rect(self, rect: Rect | None, margin: int = 2) -> QRect:
        """The widget area covering a document rectangle (for partial repaints)."""
        if rect is None:
            return self.rect()
        x0, y0, x1, y1 = rect
        a, b = self.to_view(x0, y0), self.to_view(x1, y1)
        return QRect(int(a.x()) - margin, int(a.y()) - margin,
                     int(b.x() - a.x()) + 2 * margin + 1, int(b.y() - a.y()) + 2 * margin + 1)

    def paint_background(self, p: QPainter) -> None:
        p.fillRect(self.rect(), CANVAS_BG)
