"""Settings dialog (built from the declarative table in ``app.settings``) and the shortcuts help."""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.settings import Setting, Settings, sections

SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Ctrl+N", "New project"),
    ("Ctrl+O", "Open project"),
    ("Ctrl+S / Ctrl+Shift+S", "Save project / save as"),
    ("Ctrl+E", "Export the output as PNG"),
    ("Ctrl+Shift+E", "Export a grid of recent outputs"),
    ("Ctrl+Z / Ctrl+Shift+Z", "Undo / redo (per stroke)"),
    ("Ctrl+Return", "Generate at full size"),
    ("Ctrl+R", "Vary: new random seed"),
    ("Ctrl+.", "Cancel the running job"),
    ("Ctrl+1 … Ctrl+7", "Switch workspace"),
    ("Ctrl+,", "Settings"),
    ("(Generate menu)", "Import official weights…"),
    ("F1", "This help"),
    ("B / E / F / I", "Mask workspaces: brush / eraser / fill / colour picker"),
    ("[ / ]", "Smaller / larger brush or stroke"),
    ("N", "Panoptic canvas: new instance of the current class"),
    ("E", "Sketch workspaces: toggle eraser"),
    ("Esc", "Abort the stroke or drag in progress"),
    ("Delete", "Pose canvas: remove the selected joint"),
    ("Right click", "Pose canvas: remove a joint / place the chosen missing joint"),
)


class HelpDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        lay = QVBoxLayout(self)
        table = QTableWidget(len(SHORTCUTS), 2)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().setVisible(False)
        for row, (keys, action) in enumerate(SHORTCUTS):
            table.setItem(row, 0, QTableWidgetItem(keys))
            table.setItem(row, 1, QTableWidgetItem(action))
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.resizeColumnToContents(0)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(table)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(560, 520)


class SettingsDialog(QDialog):
    """Edits a copy of the settings; :meth:`result_settings` returns it after OK."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings.copy()
        self.editors: dict[str, QWidget] = {}
        lay = QVBoxLayout(self)
        if settings.problems:
            warn = QLabel("Problems in the settings file (defaults used):\n" + "\n".join(settings.problems))
            warn.setWordWrap(True)
            warn.setStyleSheet("color: #d9a441;")
            lay.addWidget(warn)
        for section, items in sections():
            box = QGroupBox(section)
            form = QFormLayout(box)
            for s in items:
                editor = self._editor(s, settings.get(s.key))
                editor.setToolTip(s.help)
                self.editors[s.key] = editor
                form.addRow(s.label, editor)
            lay.addWidget(box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.restore_defaults)
        lay.addWidget(buttons)

    def _editor(self, s: Setting, value: Any) -> QWidget:
        if s.kind == "bool":
            w = QCheckBox()
            w.setChecked(bool(value))
        elif s.kind == "int":
            w = QSpinBox()
            w.setRange(int(s.minimum if s.minimum is not None else -10**9),
                       int(s.maximum if s.maximum is not None else 10**9))
            w.setValue(int(value))
        elif s.kind == "float":
            w = QDoubleSpinBox()
            w.setRange(s.minimum if s.minimum is not None else -1e9, s.maximum if s.maximum is not None else 1e9)
            w.setValue(float(value))
        elif s.kind == "choice":
            w = QComboBox()
            w.addItems(list(s.choices))
            w.setCurrentText(str(value))
        else:
            w = QLineEdit(str(value))
        return w

    def _read(self, s: Setting, w: QWidget) -> Any:
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            return w.value()
        if isinstance(w, QComboBox):
            return w.currentText()
        return w.text()

    def set_value(self, key: str, value: Any) -> None:
        w = self.editors[key]
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
            w.setValue(value)
        elif isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        else:
            w.setText(str(value))

    def restore_defaults(self) -> None:
        for _, items in sections():
            for s in items:
                self.set_value(s.key, s.default)

    def result_settings(self) -> Settings:
        out = self._settings.copy()
        out.problems = []
        for _, items in sections():
            for s in items:
                out.set(s.key, self._read(s, self.editors[s.key]))
        return out
