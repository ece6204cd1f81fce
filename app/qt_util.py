"""numpy <-> Qt image conversion (GUI thread only) and small widget helpers."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def qimage_from_rgb(image: np.ndarray) -> QImage:
    """H×W×3 (or H×W) uint8 -> a QImage that owns a copy of the pixels."""
    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        h, w = arr.shape
        return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8).copy()
    h, w, c = arr.shape
    if c == 4:
        return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGBA8888).copy()
    if c != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {c}")
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888).copy()


def pixmap_from_rgb(image: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(qimage_from_rgb(image))


def rgb_from_qimage(img: QImage) -> np.ndarray:
    """A QImage -> H×W×3 uint8 copy (for rendering tests and screenshots)."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


def thumbnail(image: np.ndarray, size: int) -> QPixmap:
    return pixmap_from_rgb(image).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
