"""Pose canvas: the 18-joint OpenPose skeleton with draggable joints and live bones.

Left-drag moves a joint; right-click on a joint removes it; right-click elsewhere adds the
selected missing joint there (``pending_joint``). Bone colours follow OpenPose's rendering."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from engine.api import POSE_COLORS_BGR

from ..document import JOINT_NAMES, POSE_LIMBS, PoseDocument
from .base import DocCanvas

# OpenPose's colour table (the engine's), read as RGB the way OpenPose shows it; one per limb
LIMB_COLOURS = [QColor(r, g, b) for r, g, b in POSE_COLORS_BGR[:len(POSE_LIMBS)]]
JOINT_RADIUS = 5.0


class PoseCanvas(DocCanvas):
    edited = Signal(object)
    strokeStarted = Signal()
    strokeFinished = Signal()
    jointSelected = Signal(int)

    def __init__(self, doc: PoseDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.background: np.ndarray | None = None
        self.selected: int | None = None
        self.pending_joint: int | None = None
        self._dragging: int | None = None
        doc.on_change(self._changed)

    def doc_size(self) -> tuple[int, int]:
        return self.doc.size

    def _changed(self, rect: object) -> None:
        self.update()
        self.edited.emit(None)

    def _hit(self, pos: QPointF) -> int | None:
        x, y = self.to_doc(pos)
        return self.doc.joint_at(x, y, (JOINT_RADIUS + 4) / self.view_scale())

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        j = self._hit(ev.position())
        if ev.button() == Qt.MouseButton.LeftButton and j is not None:
            self._dragging = self.selected = j
            self.jointSelected.emit(j)
            self.doc.begin_drag()
            self.strokeStarted.emit()
        elif ev.button() == Qt.MouseButton.RightButton:
            if j is not None:
                self.doc.remove_joint(j)
                self.strokeFinished.emit()
            elif self.pending_joint is not None and not self.doc.present(self.pending_joint):
                x, y = self.to_doc(ev.position())
                self.doc.add_joint(self.pending_joint, x, y)
                self.pending_joint = None
                self.strokeFinished.emit()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if self._dragging is not None:
            self.doc.drag_to(self._dragging, *self.to_doc(ev.position()))

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if ev.button() == Qt.MouseButton.LeftButton and self._dragging is not None:
            self._dragging = None
            self.doc.end_drag()
            self.strokeFinished.emit()

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if ev.key() == Qt.Key.Key_Escape and self._dragging is not None:
            self._dragging = None
            self.doc.abort_drag()
            self.strokeFinished.emit()
        elif ev.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.selected is not None:
            self.doc.remove_joint(self.selected)
            self.strokeFinished.emit()
        else:
            super().keyPressEvent(ev)

    def paintEvent(self, ev: QPaintEvent) -> None:
        p = QPainter(self)
        self.paint_background(p)
        p.fillRect(self.doc_rect_in_view(), QColor(0, 0, 0))
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        kp = self.doc.keypoints
        s = self.view_scale()
        for (a, b), colour in zip(POSE_LIMBS, LIMB_COLOURS, strict=True):
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                p.setPen(QPen(colour, max(4.0 * s, 2.0), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
                p.drawLine(self.to_view(kp[a, 0], kp[a, 1]), self.to_view(kp[b, 0], kp[b, 1]))
        for j in range(len(JOINT_NAMES)):
            if kp[j, 2] <= 0:
                continue
            c = self.to_view(kp[j, 0], kp[j, 1])
            p.setPen(QPen(QColor(255, 255, 255), 2.0 if j == self.selected else 1.0))
            p.setBrush(LIMB_COLOURS[min(j, len(LIMB_COLOURS) - 1)])
            p.drawEllipse(c, JOINT_RADIUS, JOINT_RADIUS)
        p.end()

    def joint_position(self, j: int) -> QPointF:
        """Widget position of joint ``j`` (tests drive drags with it)."""
        return self.to_view(float(self.doc.keypoints[j, 0]), float(self.doc.keypoints[j, 1]))
