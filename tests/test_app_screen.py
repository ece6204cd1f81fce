"""The studio on a fresh machine's screen: the real MainWindow fits a 1366×768 laptop (its first
size never exceeds the screen, tall input columns scroll), and no UI text uses a glyph the default
font lacks (it would render as an empty box)."""
from __future__ import annotations

import ast
from pathlib import Path

from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QGroupBox, QLabel, QLineEdit, QWidget

from app.main import MainWindow
from app.settings import Settings

APP_DIR = Path(__file__).resolve().parent.parent / "app"
LAPTOP_W, LAPTOP_H = 1366, 768
WINDOW_DECORATION = 60  # title bar and a panel leave about this much of the 768 px


def test_main_window_fits_a_1366x768_screen(qtbot, weights_dir):
    win = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win)
    screen = win.screen().availableGeometry()
    # first start: the window and its title bar fit the screen
    assert win.width() <= screen.width() and win.height() + 30 <= screen.height()
    for ws in win.workspaces.values():
        win.tabs.setCurrentWidget(ws)
        hint = win.minimumSizeHint()
        assert hint.width() <= LAPTOP_W and hint.height() <= LAPTOP_H - WINDOW_DECORATION, (ws.key, hint)
        assert win.minimumSize().height() <= LAPTOP_H - WINDOW_DECORATION
    win.resize(LAPTOP_W, LAPTOP_H - WINDOW_DECORATION)
    win.show()
    qtbot.waitExposed(win)
    assert (win.width(), win.height()) == (LAPTOP_W, LAPTOP_H - WINDOW_DECORATION)
    stargan = win.workspaces["stargan"]  # the tallest input column: it scrolls to its last control
    win.tabs.setCurrentWidget(stargan)
    column = stargan.splitter.widget(0)
    assert column.height() < stargan.inputs.minimumSizeHint().height()
    qtbot.waitUntil(lambda: column.verticalScrollBar().maximum() > 0)
    win.close()


def _ui_strings() -> dict[str, str]:
    """Every string literal of app/ that is not a docstring: {text: where}."""
    found: dict[str, str] = {}
    for path in sorted(APP_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                found.setdefault(node.value, f"{path.name}:{node.lineno}")
    return found


def _missing(fm: QFontMetrics, text: str) -> list[str]:
    # inFontUcs4: PySide's inFont(str) mis-converts non-ASCII characters
    return [c for c in text if ord(c) > 127 and not fm.inFontUcs4(ord(c))]


def test_no_ui_text_uses_a_glyph_the_default_font_lacks(qtbot, weights_dir):
    fm = QFontMetrics(QApplication.font())
    bad = {where: "".join(_missing(fm, text)) for text, where in _ui_strings().items() if _missing(fm, text)}
    assert not bad, f"glyphs missing from {QApplication.font().family()}: {bad}"
    # and what the real window shows, busy included (the progress label)
    win = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win)
    win.bridge.busyChanged.emit(True)
    win.bridge.progress.emit("exemplar", "correspondence", 0.4)
    texts: list[str] = [win.windowTitle()]
    for w in win.findChildren(QWidget):
        texts.append(w.toolTip())
        if isinstance(w, (QLabel, QAbstractButton, QLineEdit)):
            texts.append(w.text())
        if isinstance(w, QLineEdit):
            texts.append(w.placeholderText())
        if isinstance(w, QGroupBox):
            texts.append(w.title())
        if isinstance(w, QComboBox):
            texts += [w.itemText(i) for i in range(w.count())]
    texts += [win.tabs.tabText(i) for i in range(win.tabs.count())]
    texts += [a.text() for a in win.findChildren(type(win.menuBar().actions()[0]))]
    shown = {t for t in texts if _missing(fm, t)}
    assert not shown, shown
    assert win.busy_label.text()  # the busy state was really shown
    win.bridge.busyChanged.emit(False)
    win.close()
