"""Application look: Qt's Fusion style with a dark or light palette, or the platform's own."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

DARK = {
    QPalette.ColorRole.Window: "#2b2d31", QPalette.ColorRole.WindowText: "#e3e3e3",
    QPalette.ColorRole.Base: "#1f2023", QPalette.ColorRole.AlternateBase: "#2b2d31",
    QPalette.ColorRole.ToolTipBase: "#1f2023", QPalette.ColorRole.ToolTipText: "#e3e3e3",
    QPalette.ColorRole.Text: "#e3e3e3", QPalette.ColorRole.Button: "#383a40",
    QPalette.ColorRole.ButtonText: "#e3e3e3", QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Highlight: "#3d7fd9", QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6aa7ff", QPalette.ColorRole.PlaceholderText: "#8a8d93",
}


def apply_theme(app: QApplication, theme: str) -> None:
    """``dark`` / ``light`` (both Fusion) or ``system`` (leave the platform style alone)."""
    if theme == "system":
        return
    app.setStyle("Fusion")
    if theme == "light":
        app.setPalette(app.style().standardPalette())
        return
    pal = QPalette()
    for role, colour in DARK.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f7278"))
    app.setPalette(pal)
