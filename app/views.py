"""Output display: one image, a before/after slider, or two images side by side; busy overlay."""
from __future__ import annotations

from typing import Literal

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .qt_util import qimage_from_rgb

CompareMode = Literal["single", "slider", "side"]


class ImageView(QWidget):
    """Shows ``image`` fitted to the widget. In "slider" mode the left part shows ``before`` up to
    a draggable divider; in "side" mode both appear next to each other."""

    dividerMoved = Signal(float)

    def __init__(self, placeholder: str = "No output yet", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.placeholder = placeholder
        self.image: np.ndarray | None = None
        self.before: np.ndarray | None = None
        self.mode: CompareMode = "single"
        self.divider = 0.5
        self.busy = False
        self.stale = ""  # why the image no longer matches the inputs ('' when it does)
        self.caption = ""
        self._q: QImage | None = None
        self._qb: QImage | None = None
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(384, 384)

    def set_image(self, image: np.ndarray | None, caption: str = "") -> None:
        self.image = image
        self._q = None if image is None else qimage_from_rgb(image)
        self.caption = caption
        self.update()

    def set_before(self, image: np.ndarray | None) -> None:
        self.before = image
        self._qb = None if image is None else qimage_from_rgb(image)
        self.update()

    def set_mode(self, mode: CompareMode) -> None:
        self.mode = mode
        self.update()

    def set_stale(self, reason: str) -> None:
        """Mark the image as out of date (dimmed, a "stale" badge, the reason as tooltip)."""
        if reason != self.stale:
            self.stale = reason
            self.setToolTip(reason)
            self.update()

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.update()

    def _fit(self, img: QImage, area: QRectF) -> QRectF:
        s = min(area.width() / img.width(), area.height() / img.height())
        w, h = img.width() * s, img.height() * s
        return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)

    def paintEvent(self, ev: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 31, 34))
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        area = QRectF(self.rect()).adjusted(4, 4, -4, -18)
        if self._q is None:
            p.setPen(QColor(150, 150, 150))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
        elif self.mode == "side" and self._qb is not None:
            half = area.width() / 2
            left = QRectF(area.x(), area.y(), half - 2, area.height())
            right = QRectF(area.x() + half + 2, area.y(), half - 2, area.height())
            p.drawImage(self._fit(self._qb, left), self._qb)
            p.drawImage(self._fit(self._q, right), self._q)
        else:
            target = self._fit(self._q, area)
            p.drawImage(target, self._q)
            if self.mode == "slider" and self._qb is not None:
                cut = target.width() * self.divider
                src_w = self._qb.width() * self.divider
                p.drawImage(QRectF(target.x(), target.y(), cut, target.height()), self._qb,
                            QRectF(0, 0, src_w, self._qb.height()))
                x = target.x() + cut
                p.setPen(QPen(QColor(255, 255, 255), 2))
                p.drawLine(QPointF(x, target.top()), QPointF(x, target.bottom()))
                p.drawText(QRectF(target.x() + 4, target.y() + 4, 80, 16), "before")
                p.drawText(QRectF(target.right() - 44, target.y() + 4, 40, 16), "after")
        if self.caption:
            p.setPen(QColor(170, 170, 170))
            p.drawText(QRectF(self.rect()).adjusted(6, 0, -6, -2),
                       Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft, self.caption)
        if self.stale and self._q is not None:
            p.fillRect(area, QColor(30, 31, 34, 140))  # dim the out-of-date image
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(217, 164, 65, 230))
            badge = QRectF(8, 8, 150, 22)
            p.drawRoundedRect(badge, 6, 6)
            p.setPen(QColor(20, 20, 20))
            p.drawText(badge, Qt.AlignmentFlag.AlignCenter, "stale: inputs changed")
        if self.busy:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 150))
            badge = QRectF(self.width() - 104, 8, 96, 22)
            p.drawRoundedRect(badge, 6, 6)
            p.setPen(QColor(255, 255, 255))
            p.drawText(badge, Qt.AlignmentFlag.AlignCenter, "generating…")
        p.end()

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self._move_divider(ev)

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if ev.buttons() & Qt.MouseButton.LeftButton:
            self._move_divider(ev)

    def _move_divider(self, ev: QMouseEvent) -> None:
        if self.mode != "slider" or self._q is None:
            return
        target = self._fit(self._q, QRectF(self.rect()).adjusted(4, 4, -4, -18))
        self.divider = float(min(max((ev.position().x() - target.x()) / max(target.width(), 1), 0), 1))
        self.dividerMoved.emit(self.divider)
        self.update()
