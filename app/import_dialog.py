"""Import official checkpoint files from the studio (what ``i2i weights import`` does), off the GUI
thread; the result or the loader's plain-words report is shown in the dialog."""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.api import EngineError, Session

from .weights_panel import FAMILY_HINTS


class ImportDialog(QDialog):
    """Choose file(s), family, released config and a name; Import converts, checks and registers."""

    finished_import = Signal(object, str)  # WeightsEntry or None, message
    _done = Signal(object, str)

    def __init__(self, family: str = "stargan2", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import official weights")
        self.paths: list[Path] = []
        self._thread: threading.Thread | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        row = QHBoxLayout()
        self.files_label = QLabel("(no files)")
        self.files_label.setWordWrap(True)
        browse = QPushButton("Choose files…")
        browse.clicked.connect(self.choose_files)
        row.addWidget(self.files_label, 1)
        row.addWidget(browse)
        form.addRow("Files", row)
        self.family = QComboBox()
        self.family.addItems(list(FAMILY_HINTS))
        self.family.currentTextChanged.connect(self._family_changed)
        form.addRow("Family", self.family)
        self.config = QComboBox()
        form.addRow("Configuration", self.config)
        self.name = QLineEdit()
        form.addRow("Name", self.name)
        lay.addLayout(form)
        self.expected = QLabel()
        self.expected.setWordWrap(True)
        lay.addWidget(self.expected)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("The import's result or problems appear here.")
        lay.addWidget(self.report, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.ActionRole)
        self.import_button.clicked.connect(self.start_import)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self._done.connect(self._finished, Qt.ConnectionType.QueuedConnection)
        self.config.currentTextChanged.connect(
            lambda c: self.name.setText(f"{self.family.currentText()}_{c}") if c else None)
        self.family.setCurrentText(family)
        self._family_changed(self.family.currentText())
        self.resize(640, 420)

    def _family_changed(self, family: str) -> None:
        self.config.clear()
        try:
            names = Session.family_configs(family)
            # released configurations first; test/default-sized ones (never official) last
            configs = sorted(names, key=lambda c: (c.startswith(("tiny", "small", "default")), names.index(c)))
        except Exception as exc:
            configs = []
            self.expected.setText(f"The {family} family is not available: {exc}")
        self.config.addItems(configs)
        files, example, display = FAMILY_HINTS.get(family, ("", "", family))
        if configs:
            self.expected.setText(f"{display}: expects {files or 'the official generator file'}.")
        self.name.setText(f"{family}_{self.config.currentText() or example}")

    def choose_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Official checkpoint file(s)", "",
                                                "Checkpoints (*.ckpt *.pth *.pt *.index *.data-*);;All files (*)")
        if names:
            self.set_paths([Path(n) for n in names])

    def set_paths(self, paths: list[Path]) -> None:
        self.paths = list(paths)
        self.files_label.setText(", ".join(p.name for p in self.paths) or "(no files)")

    def start_import(self) -> None:
        if not self.paths:
            self.report.setPlainText("Choose the official file(s) first.")
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self.import_button.setEnabled(False)
        self.report.setPlainText("Importing… (converting, checking every key against the architecture)")
        args = (list(self.paths), self.name.text().strip(), self.family.currentText(), self.config.currentText())
        self._thread = threading.Thread(target=self._work, args=args, name="i2i-import", daemon=True)
        self._thread.start()

    def _work(self, paths: list[Path], name: str, family: str, config: str) -> None:
        try:
            entry = Session.import_weights(paths, name=name, family=family, config=config)
            self._done.emit(entry, f"Imported {entry.name}: {entry.family}/{entry.config_name}, "
                                   f"{entry.bytes / 1e6:.1f} MB, sha256 {entry.sha256[:12]}…")
        except (EngineError, KeyError, OSError, ValueError) as exc:
            self._done.emit(None, str(exc))

    def _finished(self, entry: object, message: str) -> None:
        self.import_button.setEnabled(True)
        self.report.setPlainText(message)
        self.finished_import.emit(entry, message)

    def wait(self, timeout: float = 60.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def done(self, result: int) -> None:
        self.wait(60.0)  # never leave an import half-written behind a closed dialog
        super().done(result)
