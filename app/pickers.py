"""Pickers: image slots (drag-and-drop, file dialog, gallery of bundled examples, thumbnail, clear
errors), label-map slots, and the class palette list with a search box."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QIcon, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.api import ASSETS, FrozenArray, InputError, Palette, load_image

from .qt_util import thumbnail

EXAMPLES = ASSETS / "examples"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff);;All files (*)"


def gallery(kind: str) -> list[Path]:
    """Bundled example files of a kind (``assets/examples/<kind>/``), sorted."""
    folder = EXAMPLES / kind
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".json"))


class ImagePicker(QWidget):
    """An image slot. Drop a file on it, click "Open…", or choose a bundled example.

    ``loader(path) -> array`` reads the file (default: RGB photo); its InputError is shown in the
    slot instead of the thumbnail, never raised.
    """

    imageChanged = Signal(object)      # np.ndarray or None
    errorShown = Signal(str)

    def __init__(self, title: str, *, gallery_kind: str = "", parent: QWidget | None = None,
                 loader: Callable[[Path], np.ndarray] | None = None, thumb: int = 128,
                 display: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.title = title
        self.gallery_kind = gallery_kind
        self.loader = loader or (lambda p: load_image(p))
        self.display = display  # array -> RGB uint8 for the thumbnail (label maps, poses)
        self.thumb_size = thumb
        self.image: np.ndarray | None = None
        self._frozen: FrozenArray | None = None
        self.path: Path | None = None
        self.error = ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        head = QLabel(f"<b>{title}</b>")
        lay.addWidget(head)
        self.view = QLabel("Drop an image here\nor use Open…")
        self.view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.view.setFixedSize(thumb + 8, thumb + 8)
        self.view.setWordWrap(True)
        self.view.setStyleSheet("QLabel { border: 1px dashed #888; border-radius: 4px; color: #999; }")
        lay.addWidget(self.view)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open…")
        self.open_button.clicked.connect(self.open_dialog)
        row.addWidget(self.open_button)
        self.gallery_button = QToolButton()
        self.gallery_button.setText("Examples")
        self.gallery_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.gallery_button.setMenu(QMenu(self.gallery_button))
        self.set_gallery_filter(lambda path: True)
        row.addWidget(self.gallery_button)
        clear = QToolButton()
        clear.setText("✕")
        clear.setToolTip("Clear")
        clear.clicked.connect(self.clear)
        row.addWidget(clear)
        lay.addLayout(row)

    def set_gallery_filter(self, keep: Callable[[Path], bool]) -> None:
        """Offer only the bundled examples ``keep`` accepts (e.g. poses only for a pose model)."""
        menu = self.gallery_button.menu()
        menu.clear()
        for path in gallery(self.gallery_kind):
            if keep(path):
                act = menu.addAction(path.stem.replace("_", " "))
                act.triggered.connect(lambda _=False, p=path: self.load(p))
        self.gallery_button.setEnabled(bool(menu.actions()))

    def gallery_examples(self) -> list[str]:
        """Names of the examples offered now."""
        return [a.text() for a in self.gallery_button.menu().actions()]

    # -------------------------------------------------------------- loading
    def load(self, path: Path | str) -> bool:
        """Read ``path``; on failure show the reason in the slot and keep the previous image."""
        path = Path(path)
        try:
            image = self.loader(path)
        except (InputError, OSError, ValueError) as exc:
            self.show_error(f"{path.name}: {exc}")
            return False
        self.path = path
        self.set_image(image)
        return True

    @property
    def frozen(self) -> FrozenArray | None:
        """The image as a request field, hashed once per image (not once per slider move)."""
        if self._frozen is None and self.image is not None:
            self._frozen = FrozenArray(self.image)
        return self._frozen

    def set_image(self, image: np.ndarray | None, *, emit: bool = True) -> None:
        self.image = image
        self._frozen = None
        self.error = ""
        self.view.setStyleSheet("QLabel { border: 1px solid #666; border-radius: 4px; }")
        if image is None:
            self.path = None
            self.view.setPixmap(QPixmap())
            self.view.setText("Drop an image here\nor use Open…")
        else:
            self.view.setPixmap(thumbnail(self._displayable(image), self.thumb_size))
            self.view.setToolTip(f"{self.path.name if self.path else 'image'}: {image.shape[1]}×{image.shape[0]}")
        if emit:
            self.imageChanged.emit(image)

    def _displayable(self, image: np.ndarray) -> np.ndarray:
        if self.display is not None:
            return self.display(image)
        return image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)

    def show_error(self, message: str) -> None:
        self.error = message
        self.view.setPixmap(QPixmap())
        self.view.setText(message)
        self.view.setStyleSheet("QLabel { border: 1px solid #c33; border-radius: 4px; color: #e66; }")
        self.errorShown.emit(message)

    def clear(self) -> None:
        self.set_image(None)

    def open_dialog(self) -> None:
        start = str(EXAMPLES / self.gallery_kind) if self.gallery_kind else ""
        name, _ = QFileDialog.getOpenFileName(self, f"Open {self.title.lower()}", start, IMAGE_FILTER)
        if name:
            self.load(name)

    # -------------------------------------------------------------- drag and drop
    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev: QDropEvent) -> None:
        files = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if not files:
            ev.ignore()
            return
        self.load(files[0])
        ev.acceptProposedAction()


class PaletteList(QWidget):
    """Class list (colour swatch + name) with a search box; ``labelChosen(index)``."""

    labelChosen = Signal(int)

    def __init__(self, palette: Palette, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.palette = palette
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit()
        self.search.setPlaceholderText(f"Search {len(palette)} classes…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        lay.addWidget(self.search)
        self.list = QListWidget()
        self.list.setIconSize(QSize(14, 14))
        self.list.setUniformItemSizes(True)
        lay.addWidget(self.list)
        self.set_palette(palette)
        self.list.currentItemChanged.connect(self._chosen)

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self.list.blockSignals(True)
        self.list.clear()
        for i, (name, colour) in enumerate(zip(palette.names, palette.colors, strict=True)):
            pm = QPixmap(14, 14)
            pm.fill(QColor(int(colour[0]), int(colour[1]), int(colour[2])))
            suffix = "  ◆" if i in palette.things else ""
            item = QListWidgetItem(QIcon(pm), f"{i:3d}  {name}{suffix}")
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setToolTip(f"{name} (index {i}{', countable thing' if i in palette.things else ''})")
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.search.setPlaceholderText(f"Search {len(palette)} classes…")

    def _filter(self, text: str) -> None:
        text = text.strip().lower()
        first = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            name = self.palette.names[item.data(Qt.ItemDataRole.UserRole)].lower()
            hidden = bool(text) and text not in name
            item.setHidden(hidden)
            if not hidden and first is None:
                first = item
        if text and first is not None:
            self.list.setCurrentItem(first)

    def _chosen(self, item: QListWidgetItem | None, _prev: QListWidgetItem | None = None) -> None:
        if item is not None:
            self.labelChosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def select(self, index: int) -> None:
        """Highlight ``index`` without emitting (e.g. after the colour picker)."""
        if 0 <= index < self.list.count():
            self.list.blockSignals(True)
            self.list.setCurrentRow(index)
            self.list.blockSignals(False)

    def visible_labels(self) -> list[int]:
        return [self.list.item(r).data(Qt.ItemDataRole.UserRole) for r in range(self.list.count())
                if not self.list.item(r).isHidden()]
