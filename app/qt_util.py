"""numpy <-> Qt image conversion (GUI thread only) and small widget helpers.

The one place pixels cross between numpy and Qt, through ``qimage2ndarray``; every conversion
copies, so neither side's buffer can change under the other."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap

os.environ.setdefault("QT_DRIVER", "PySide6")  # qimage2ndarray: use the binding the studio uses
import qimage2ndarray


def qimage_from_rgb(image: np.ndarray) -> QImage:
    """H×W×3 (or H×W grey, or H×W×4 RGBA) uint8 -> a QImage that owns a copy of the pixels."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] not in (3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels, got {arr.shape[2]}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an H×W or H×W×C image, got shape {arr.shape}")
    return qimage2ndarray.array2qimage(arr)  # allocates a new QImage and copies into it


def pixmap_from_rgb(image: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(qimage_from_rgb(image))


def rgb_from_qimage(img: QImage) -> np.ndarray:
    """A QImage -> H×W×3 uint8 copy (for rendering tests and screenshots)."""
    return qimage2ndarray.rgb_view(img.convertToFormat(QImage.Format.Format_RGB32)).copy()


def rgb_image(width: int, height: int) -> tuple[QImage, np.ndarray]:
    """A black QImage and a writable H×W×3 numpy view of its pixels, for a canvas that recolours
    parts of its display buffer in place (the view lives as long as the image)."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(0, 0, 0))  # 0xff000000: RGB32 wants an opaque alpha byte, or smooth scaling blends it
    return image, qimage2ndarray.rgb_view(image)


def thumbnail(image: np.ndarray, size: int) -> QPixmap:
    return pixmap_from_rgb(image).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
