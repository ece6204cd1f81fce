"""Model chooser with weights status: which file is missing and the exact command to import it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.api import Session, WeightsEntry, WeightsError

# family -> (official file name(s) to import, example config, display name, how to train one)
FAMILY_HINTS: dict[str, tuple[str, str, str]] = {
    "stargan2": ("100000_nets_ema.ckpt wing.ckpt", "celeba_hq", "StarGAN v2"),
    "cocosnet": ("latest_net_G.pth latest_net_Corr.pth", "ade20k", "CoCosNet"),
    "panoptic": ("latest_net_G.pth", "spade_coco", "panoptic SPADE"),
    "edgegan": ("EdgeGAN-Model-N.index EdgeGAN-Model-N.data-00000-of-00001", "class14", "EdgeGAN"),
}


def import_command(family: str, config: str = "") -> str:
    files, example, _ = FAMILY_HINTS.get(family, ("PATH", "", family))
    config = config or example
    if not files:
        return f"i2i train {family}"
    return f"i2i weights import {files} --as {family}_{config} --family {family} --config {config}"


def family_status(family: str) -> str:
    """'' when the family's code imports, else the reason it does not."""
    return Session.family_problem(family)


class WeightsPanel(QWidget):
    """A combo box of usable models of one family and a status line.

    ``accept(entry) -> reason or ''`` filters entries (e.g. CoCosNet configs a task can use).
    """

    modelChanged = Signal(str)
    importRequested = Signal(str)  # family

    def __init__(self, family: str, session: Session, *, accept: Callable[[WeightsEntry], str] | None = None,
                 config: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.family = family
        self.session = session
        self.example_config = config  # the released config to suggest importing for this task
        self.accept = accept or (lambda e: "")
        self.entries: dict[str, WeightsEntry] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Model:"))
        self.combo = QComboBox()
        self.combo.setMinimumWidth(180)
        self.combo.setPlaceholderText("(no model registered)")
        self.combo.currentIndexChanged.connect(self._changed)
        row.addWidget(self.combo, 1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Re-read weights/manifest.json")
        self.refresh_button.clicked.connect(self.refresh)
        row.addWidget(self.refresh_button)
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Import official checkpoint files into the weights folder")
        self.import_button.clicked.connect(lambda: self.importRequested.emit(self.family))
        row.addWidget(self.import_button)
        lay.addLayout(row)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        self.missing = ""
        self.refresh()

    @property
    def model(self) -> str:
        return self.combo.currentData() or ""

    @property
    def entry(self) -> WeightsEntry | None:
        return self.entries.get(self.model)

    def refresh(self) -> None:
        previous = self.model
        _, _, display = FAMILY_HINTS.get(self.family, ("", "", self.family))
        self.combo.blockSignals(True)
        self.combo.clear()
        self.entries = {}
        problem = family_status(self.family)
        try:
            manifest = self.session.manifest()
            candidates = manifest.by_family(self.family)
        except WeightsError as exc:
            manifest, candidates = None, []
            problem = problem or str(exc)
        rejected: list[str] = []
        for e in sorted(candidates, key=lambda e: (not e.extra.get("default"), e.name)):
            why = self.accept(e)
            if why:
                rejected.append(f"{e.name} ({why})")
                continue
            self.entries[e.name] = e
            self.combo.addItem(f"{e.name} · {e.config_name} · {e.provenance.get('kind', '?')}", e.name)
        if previous in self.entries:
            self.combo.setCurrentIndex(list(self.entries).index(previous))
        elif self.entries:
            self.combo.setCurrentIndex(0)  # with a placeholder text set, Qt leaves the index at -1
        self.combo.blockSignals(False)
        if problem:
            self.missing = f"The {display} generator is not available: {problem}"
        elif not self.entries:
            where = manifest.path if manifest is not None else "weights/manifest.json"
            head = (f"No {display} weights in {where} fit this task (registered: {', '.join(rejected)})."
                    if rejected else f"No {display} weights are registered in {where}.")
            self.missing = (f"{head} Import an official checkpoint with: "
                            f"{import_command(self.family, self.example_config)} "
                            f"— or train one with: i2i train {self.family}")
        else:
            self.missing = ""
        self._update_status(manifest)
        self.modelChanged.emit(self.model)

    def _update_status(self, manifest: Any | None) -> None:
        entry = self.entry
        if self.missing:
            text, colour = self.missing, "#e06c6c"
        elif entry is not None and manifest is not None and not manifest.file_path(entry).exists():
            path = manifest.file_path(entry)
            text = (f"Weights file missing: {path} (registered as {entry.name!r}). "
                    f"Re-import it with: {import_command(entry.family, entry.config_name)}")
            colour = "#e06c6c"
            self.missing = text
        elif entry is not None:
            prov = entry.provenance
            if prov.get("kind") == "official":
                origin, detail = f"official ({prov.get('upstream', '')})", prov.get("upstream", "")
            else:
                origin, detail = "trained here (hover for the command)", prov.get("command", "")
            text, colour = f"{entry.file}, {entry.bytes / 1e6:.1f} MB — {origin}", "#8fbf8f"
            self.status.setToolTip(detail)
        else:
            text, colour = "", "#aaa"
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {colour};")

    def _changed(self) -> None:
        self.missing = ""
        try:
            manifest = self.session.manifest()
        except WeightsError:
            manifest = None
        self._update_status(manifest)
        self.modelChanged.emit(self.model)
