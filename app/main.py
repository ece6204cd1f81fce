"""i2i-studio main window and the ``i2i-studio`` entry point."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Literal

from PySide6.QtCore import QByteArray, QObject, QSettings, QSize, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
)

from app.settings import Settings, config_dir
from engine.api import Failure, InputError, Result, RunFn, Session, image_grid, save_image

from . import display_check
from .dialogs import HelpDialog, SettingsDialog
from .engine_bridge import EngineBridge
from .import_dialog import ImportDialog
from .project import (
    SUFFIX,
    Autosaver,
    MediaCache,
    Project,
    SessionGuard,
    WorkspaceData,
    load_project,
    projects_equal,
    save_project,
)
from .theme import apply_theme
from .workspaces import WORKSPACES
from .workspaces.base import Workspace

RestorePolicy = Literal["ask", "yes", "no"]
log = logging.getLogger("i2i-studio")
# Progress of a job is shown once it has run this long: a live preview (tens of ms) would only
# flash the bar, and each status-bar relayout takes CPU from the engine it reports on.
PROGRESS_DELAY_S = 0.3


class ExceptionReporter(QObject):
    """The one handler for exceptions nobody caught (a slot raising, a signal-signature slip): it
    logs them and shows them in the main window, then passes them to the previous hook."""

    raised = Signal(str, str)  # one-line summary, traceback (queued to the GUI thread)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._previous = sys.excepthook
        sys.excepthook = self.hook

    def hook(self, etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("unexpected error: %s", value, exc_info=(etype, value, tb))
        self.raised.emit(f"{etype.__name__}: {value}", "".join(traceback.format_exception(etype, value, tb)))
        self._previous(etype, value, tb)

    def uninstall(self) -> None:
        if sys.excepthook == self.hook:
            sys.excepthook = self._previous


class MainWindow(QMainWindow):
    """Workspaces in tabs, a status bar with device, progress, busy indicator and cancel."""

    _autosaveDone = Signal(str)  # emitted on the autosave thread: '' or the error

    def __init__(self, settings: Settings | None = None, *, run_fn: RunFn | None = None,
                 restore: RestorePolicy = "ask", autosave: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings.load()
        self.setWindowTitle("i2i-studio")
        self.bridge = EngineBridge(self.settings, run_fn=run_fn, parent=self)
        self.project_path: Path | None = None
        self.guard = SessionGuard(config_dir())
        self.media_cache = MediaCache()
        self.autosaver: Autosaver | None = None
        self._autosaved: Project | None = None  # the newest snapshot handed to the autosaver
        self._saved: Project | None = None  # what the project file holds (None: never matches)
        self._messages: dict[str, str] = {}  # the last status message of each workspace
        self.error_box: QMessageBox | None = None
        self._closed = False
        self.exceptions = ExceptionReporter(self)
        self.exceptions.raised.connect(self.show_error)
        # what start-up found damaged and set aside (settings, window state, lock, autosave)
        self.startup_problems: list[str] = []  # besides self.settings.problems
        folder = config_dir()
        if folder.exists() and not folder.is_dir():
            self.startup_problems.append(f"The settings folder {folder} is a file, not a folder: settings, "
                                         "window layout and autosave are not kept this session")

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.workspaces: dict[str, Workspace] = {}
        for cls in WORKSPACES:
            ws = cls(self.bridge, self.settings)
            ws.statusMessage.connect(lambda text, key=ws.key: self.show_message(text, key))
            ws.weights.importRequested.connect(self.import_weights)
            ws.update_vary()
            self.workspaces[ws.key] = ws
            self.tabs.addTab(ws, ws.title)
            self.tabs.setTabToolTip(self.tabs.count() - 1, ws.description)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)

        self._build_status_bar()
        self._build_menus()
        self.bridge.busyChanged.connect(self._busy_changed)
        self.bridge.progress.connect(self._progress)
        self.bridge.started.connect(self._job_started)
        self._job_started_at = float("-inf")
        self.bridge.failed.connect(self._failed)
        self.bridge.resultReady.connect(self._result)

        self._restore_geometry()
        self._tab_changed(self.tabs.currentIndex())
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self._saved = self.project()  # a fresh session has nothing to lose
        if autosave:
            self.autosaver = Autosaver(self.guard, self.media_cache, on_done=self._autosaveDone.emit)
            self._autosaveDone.connect(self._autosave_done)
            self._recover(restore)
            try:
                moved = self.guard.start()
                if moved is not None:
                    self.startup_problems.append(f"The lock file {self.guard.lock} was not a file; "
                                                 f"it was set aside as {moved.name}")
            except OSError as exc:
                self.startup_problems.append(f"Autosave is off this session: {self.guard.lock} cannot be written "
                                             f"({exc.strerror or exc})")
                self.autosaver.close(timeout=1.0)
                self.autosaver = None
            self._apply_autosave_interval()
        self.modified_timer = QTimer(self)  # keeps the title's "*" current
        self.modified_timer.timeout.connect(self._update_title)
        self.modified_timer.start(1000)
        self._update_title()
        for problem in self.startup_problems:  # (settings logged their own)
            log.warning("%s", problem)
        if self.startup_problems or self.settings.problems:  # what was set aside first: it matters most
            first = sorted(self.startup_problems, key=lambda p: "set aside" not in p)
            self.show_message(" · ".join(first + self.settings.problems))

    # ------------------------------------------------------------------ construction
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.message = QLabel("Ready")
        bar.addWidget(self.message, 1)
        self.busy_label = QLabel("")
        bar.addPermanentWidget(self.busy_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setVisible(False)
        bar.addPermanentWidget(self.progress_bar)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(QLabel("Device:"))
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", *Session.devices()])
        self.device_combo.setCurrentText(self.settings.get("device")
                                         if self.settings.get("device") in ["auto", *Session.devices()] else "auto")
        self.device_combo.currentTextChanged.connect(self._device_changed)
        bar.addPermanentWidget(self.device_combo)
        self.device_label = QLabel()
        bar.addPermanentWidget(self.device_label)
        self._update_device_label()

    def _action(self, menu, text: str, slot, shortcut: str | QKeySequence.StandardKey | None = None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        # triggered(bool) would pass `checked` as the slot's first argument (a path, a flag…)
        act.triggered.connect(lambda _checked=False: slot())
        menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&New project", self.new_project, "Ctrl+N")
        self._action(f, "&Open project…", self.open_project_dialog, "Ctrl+O")
        self._action(f, "&Save project", self.save_project, "Ctrl+S")
        self._action(f, "Save project &as…", self.save_project_as, "Ctrl+Shift+S")
        f.addSeparator()
        self._action(f, "&Export output PNG…", self.export_output, "Ctrl+E")
        self._action(f, "Export &grid of recent outputs…", self.export_grid, "Ctrl+Shift+E")
        f.addSeparator()
        self._action(f, "&Quit", self.close, "Ctrl+Q")
        e = mb.addMenu("&Edit")
        self.undo_action = self._action(e, "&Undo", self.undo, "Ctrl+Z")
        self.redo_action = self._action(e, "&Redo", self.redo, "Ctrl+Shift+Z")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        e.addSeparator()
        self._action(e, "Se&ttings…", self.open_settings, "Ctrl+,")
        g = mb.addMenu("&Generate")
        self._action(g, "&Generate (full size)", lambda: self.current.schedule("full", force=True), "Ctrl+Return")
        self._action(g, "&Vary seed", lambda: self.current.vary(), "Ctrl+R")
        self._action(g, "&Cancel", self.cancel, "Ctrl+.")
        self._action(g, "&Import official weights…", lambda: self.import_weights(self.current.family))
        self._action(g, "Re-read &weights manifest", self.refresh_weights)
        w = mb.addMenu("&Workspace")
        for i, ws in enumerate(self.workspaces.values()):
            self._action(w, ws.title, lambda i=i: self.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}")
        h = mb.addMenu("&Help")
        self._action(h, "&Keyboard shortcuts", self.show_help, "F1")
        self._action(h, "&About", self._about)

    # ------------------------------------------------------------------ state
    @property
    def current(self) -> Workspace:
        return self.tabs.currentWidget()  # type: ignore[return-value]

    def show_message(self, text: str, owner: str | None = None) -> None:
        """Show ``text`` in the status bar; a workspace's message (``owner``) shows on its tab only."""
        current = self.current.key if self.current is not None else ""
        key = current if owner is None else owner
        self._messages[key] = text
        if key == current:
            self.message.setStyleSheet("")
            self.message.setText(text)
            self.message.setToolTip(text)

    @Slot(str, str)
    def show_error(self, summary: str, details: str) -> None:
        """An unexpected error: a red status message and a non-modal box with the traceback."""
        self.show_message(f"Error: {summary} (details in the log)")
        self.message.setStyleSheet("color: #e66;")
        if self.error_box is None:
            self.error_box = QMessageBox(QMessageBox.Icon.Warning, "i2i-studio: unexpected error", "",
                                         QMessageBox.StandardButton.Close, self)
            self.error_box.setModal(False)
        self.error_box.setText(f"Something went wrong; your work is still here.\n\n{summary}")
        self.error_box.setDetailedText(details)
        self.error_box.show()

    def _tab_changed(self, _index: int) -> None:
        ws = self.current
        if ws is not None and hasattr(self, "message"):
            self.message.setStyleSheet("")
            text = self._messages.get(ws.key, "Ready")
            self.message.setText(text)
            self.message.setToolTip(text)
        if ws is not None and ws.awaiting and not self._closed:
            ws.schedule("full")  # its last request was superseded by another workspace's
        stack = ws.undo_stack() if ws is not None else None
        self.undo_action.setEnabled(stack is not None)
        self.redo_action.setEnabled(stack is not None)

    def _update_device_label(self) -> None:
        used = self.bridge.last_device or self.bridge.session.device_label()
        self.device_label.setText(f"<b>{used}</b>")
        self.device_label.setToolTip(f"Models run on {used} (setting: {self.settings.get('device')})")

    def _device_changed(self, name: str) -> None:
        self.settings.set("device", name)
        self._save_settings()
        self.bridge.apply_settings(self.settings)
        self.bridge.last_device = ""
        self._update_device_label()

    @Slot(bool)
    def _busy_changed(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.busy_label.setText("Generating…" if busy else "")
        if not busy:
            self.progress_bar.setVisible(False)

    @Slot(str, int)
    def _job_started(self, owner: str, rid: int) -> None:
        self._job_started_at = time.monotonic()

    @Slot(str, str, float)
    def _progress(self, owner: str, stage: str, fraction: float) -> None:
        if time.monotonic() - self._job_started_at < PROGRESS_DELAY_S:
            return  # a live preview's job: a bar flashing per stroke step only costs the engine CPU
        self.progress_bar.setVisible(True)
        self.progress_bar.setValue(int(fraction * 1000))
        self.progress_bar.setToolTip(stage)
        self.busy_label.setText(f"Generating: {stage}")

    @Slot(str, object)
    def _failed(self, owner: str, failure: Failure) -> None:
        self.show_message(f"{self.workspaces[owner].title}: {failure.message}", owner)

    @Slot(str, object)
    def _result(self, owner: str, result: Result) -> None:
        self._update_device_label()
        total = sum(result.timings.values())
        self.show_message(f"{self.workspaces[owner].title}: {result.image.shape[1]}×{result.image.shape[0]} "
                          f"in {total * 1000:.0f} ms on {result.device}", owner)

    # ------------------------------------------------------------------ actions
    def cancel(self) -> None:
        self.bridge.cancel()
        for ws in self.workspaces.values():
            if ws.awaiting:
                ws.awaiting = False
                ws.mark_stale("Cancelled: the output is from earlier inputs (press Generate).")
        self.show_message("Cancelled")

    def undo(self) -> None:
        stack = self.current.undo_stack()
        if stack is not None:
            stack.undo()

    def redo(self) -> None:
        stack = self.current.undo_stack()
        if stack is not None:
            stack.redo()

    def refresh_weights(self) -> None:
        for ws in self.workspaces.values():
            ws.weights.refresh()

    def import_weights(self, family: str = "") -> ImportDialog:
        """Open the import dialog; every workspace re-reads the manifest after a successful import."""
        dlg = ImportDialog(family or "stargan2", self)
        dlg.finished_import.connect(lambda entry, msg: (self.refresh_weights(), self.show_message(msg))
                                    if entry is not None else self.show_message(msg))
        dlg.setModal(False)
        dlg.show()
        return dlg

    def show_help(self) -> None:
        HelpDialog(self).exec()

    def _about(self) -> None:
        QMessageBox.about(self, "i2i-studio",
                          "i2i-studio: CoCosNet, StarGAN v2, panoptic SPADE and EdgeGAN in one studio.")

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        if dlg.exec():
            self.apply_settings(dlg.result_settings())

    def apply_settings(self, new: Settings) -> None:
        self.settings.values.update(new.values)
        self.settings.problems = []
        self._save_settings()
        self.bridge.apply_settings(self.settings)
        self.device_combo.setCurrentText(self.settings.get("device"))
        for ws in self.workspaces.values():
            stack = ws.undo_stack()
            if stack is not None:
                stack.set_limit(self.settings.get("undo_limit"))
        self._apply_autosave_interval()
        self.show_message("Settings saved")

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            self.show_message(f"Could not save the settings to {self.settings.path}: {exc.strerror or exc}")

    def _apply_autosave_interval(self) -> None:
        seconds = int(self.settings.get("autosave_s"))
        if seconds > 0:
            self.autosave_timer.start(seconds * 1000)
        else:
            self.autosave_timer.stop()

    def export_output(self, path: str | Path | None = None) -> Path | None:
        image = self.current.output_image()
        if image is None:
            self.show_message("Nothing to export yet: generate an output first.")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export output", f"{self.current.key}.png", "PNG (*.png)")
            if not path:
                return None
        save_image(path, image)
        self.show_message(f"Exported {path}")
        return Path(path)

    def export_grid(self, path: str | Path | None = None) -> Path | None:
        images = [r.image for r in self.current.history]
        if not images:
            self.show_message("Nothing to export yet: generate some outputs first (Vary adds more).")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export grid", f"{self.current.key}_grid.png", "PNG (*.png)")
            if not path:
                return None
        save_image(path, image_grid(images))
        self.show_message(f"Exported a grid of {len(images)} outputs to {path}")
        return Path(path)

    # ------------------------------------------------------------------ projects
    def project(self) -> Project:
        out = Project(current=self.current.key)
        for key, ws in self.workspaces.items():
            out.workspaces[key] = WorkspaceData(state=ws.state(), arrays=ws.arrays())
        return out

    def apply_project(self, project: Project) -> None:
        """Put a project into the workspaces. A value no workspace can take (ValueError and kin)
        puts the previous contents back and raises InputError naming the workspace."""
        before = self.project()
        for key, data in project.workspaces.items():
            if key not in self.workspaces:
                continue
            try:
                self.workspaces[key].restore(data.state, data.arrays)
            except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
                for k, old in before.workspaces.items():
                    self.workspaces[k].restore(old.state, old.arrays)
                raise InputError(f"the {self.workspaces[key].title} workspace cannot use what was saved "
                                 f"({exc})") from exc
        if project.current in self.workspaces:
            self.tabs.setCurrentWidget(self.workspaces[project.current])

    def is_modified(self) -> bool:
        """Anything changed since the project was last saved or opened (or since a fresh start)."""
        return self._saved is None or not projects_equal(self._saved, self.project(), photos_by_identity=True)

    def _update_title(self) -> None:
        name = self.project_path.name if self.project_path is not None else "untitled"
        self.setWindowTitle(f"{name}[*] — i2i-studio")
        if not self._closed:
            self.setWindowModified(self.is_modified())

    def _mark_saved(self, project: Project | None) -> None:
        self._saved = project
        self._update_title()

    def maybe_save(self) -> bool:
        """Ask "save changes?" when something changed: True to go on (saved or discarded), False
        when the user cancelled (or cancelled the save dialog)."""
        if not self.is_modified():
            return True
        name = self.project_path.name if self.project_path is not None else "this session"
        answer = QMessageBox.question(
            self, "Save changes?", f"Save the changes to {name} before going on?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project() is not None
        return answer == QMessageBox.StandardButton.Discard

    def new_project(self) -> bool:
        """Empty every workspace (after "save changes?")."""
        if not self.maybe_save():
            return False
        for ws in self.workspaces.values():
            ws.restore({}, {})
        self.project_path = None
        self._mark_saved(self.project())
        self.show_message("New project")
        return True

    def open_project(self, path: str | Path) -> bool:
        if not self.maybe_save():
            return False
        try:
            project = load_project(path)
            self.apply_project(project)
        except InputError as exc:
            self.show_message(f"Could not open {Path(path).name}: {exc}" if Path(path).name not in str(exc)
                              else str(exc))
            return False
        self.project_path = Path(path)
        self._mark_saved(self.project())
        self.show_message(f"Opened {path}")
        return True

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", "", f"i2i-studio project (*{SUFFIX})")
        if path:
            self.open_project(path)

    def save_project(self, path: str | Path | None = None) -> Path | None:
        path = Path(path) if path else self.project_path
        if path is None:
            return self.save_project_as()
        if path.suffix != SUFFIX:
            path = path.with_suffix(SUFFIX)
        project = self.project()
        try:
            save_project(path, project, cache=self.media_cache)
        except OSError as exc:  # the old file, if any, is untouched (the write is atomic)
            self.show_message(f"Could not save {path}: {exc.strerror or exc}")
            return None
        self.project_path = path
        self._mark_saved(project)
        self.show_message(f"Saved {path}")
        return path

    def save_project_as(self) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save project", f"untitled{SUFFIX}",
                                              f"i2i-studio project (*{SUFFIX})")
        return self.save_project(path) if path else None

    def autosave(self) -> Future | None:
        """Hand a snapshot of the session to the autosave thread (nothing when it has not changed
        since the last autosave). Returns the write's future."""
        if self.autosaver is None or self._closed:
            return None
        project = self.project()
        project.source = str(self.project_path) if self.project_path is not None else ""
        if self._autosaved is not None and projects_equal(self._autosaved, project, photos_by_identity=True) \
                and self._autosaved.source == project.source:
            return None
        self._autosaved = project
        return self.autosaver.submit(project)

    @Slot(str)
    def _autosave_done(self, error: str) -> None:
        if error:
            self.show_message(error)

    def _set_aside(self, path: Path, what: str, reason: str) -> None:
        """Rename a damaged file of the config folder out of the way and say so at start-up."""
        try:
            moved = self.guard.set_aside(path)
            self.startup_problems.append(f"{what} was set aside as {moved} ({reason})")
        except OSError as exc:
            self.startup_problems.append(f"{what} could not be set aside ({exc.strerror or exc}; {reason})")

    def _recover(self, policy: RestorePolicy) -> None:
        autosave = self.guard.autosave
        if os.path.lexists(autosave) and not autosave.is_file():
            self._set_aside(autosave, "The autosave", "it is not a file")
            return
        crashed = self.guard.crashed_session()
        if crashed is None or policy == "no":
            return
        if policy == "ask":
            answer = QMessageBox.question(self, "Restore session?",
                                          "i2i-studio did not exit cleanly last time. Restore the autosaved session?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        try:
            project = load_project(crashed)
            self.apply_project(project)
        except InputError as exc:
            self._set_aside(crashed, "The autosave of the last session", f"it cannot be restored: {exc}")
            return
        if project.source:  # the session belongs to this file; its restored changes are not saved yet
            self.project_path = Path(project.source)
        self._saved = None
        self.show_message("Restored the autosaved session (not saved yet)")

    # ------------------------------------------------------------------ geometry and close
    def _qsettings(self) -> QSettings:
        return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)

    def _restore_geometry(self) -> None:
        """Window size, dock layout and tab of the last session; anything damaged in window.ini is
        ignored (defaults used) and named in the start-up message."""
        path = config_dir() / "window.ini"
        qs = self._qsettings()
        damaged: list[str] = []
        if qs.status() != QSettings.Status.NoError:
            damaged.append("unreadable")
        geometry = qs.value("geometry")
        if not (isinstance(geometry, QByteArray) and self.restoreGeometry(geometry)):
            if geometry is not None:
                damaged.append("geometry")
            # first start: 1400×820, or less on a small screen (a 1366×768 laptop), leaving room
            # for the window manager's title bar and borders
            room = self.screen().availableGeometry().size() - QSize(16, 48)
            self.resize(QSize(1400, 820).boundedTo(room))
        state = qs.value("state")
        if state is not None and not (isinstance(state, QByteArray) and self.restoreState(state)):
            damaged.append("state")
        tab = qs.value("tab")
        if tab is not None:
            text = str(tab).strip()
            if text.isdigit() and int(text) < self.tabs.count():
                self.tabs.setCurrentIndex(int(text))
            else:
                damaged.append(f"tab {text[:20]!r}")
        if damaged:
            self.startup_problems.append(f"{path} is damaged ({', '.join(damaged)}); "
                                         "using the default window layout")

    def shutdown(self, *, end_session: bool = True) -> bool:
        """Cancel work, wait for the engine and autosave threads, remember geometry; with
        ``end_session`` remove the autosave (a clean exit), otherwise keep it for the next start."""
        if self._closed:
            return True
        self._closed = True
        self.autosave_timer.stop()
        self.modified_timer.stop()
        self.exceptions.uninstall()
        qs = self._qsettings()
        qs.setValue("geometry", self.saveGeometry())
        qs.setValue("state", self.saveState())
        qs.setValue("tab", self.tabs.currentIndex())
        qs.sync()
        ok = self.bridge.close(timeout=5.0)
        if self.autosaver is not None:
            ok = self.autosaver.close(timeout=10.0) and ok
            if end_session:
                self.guard.finish()
        return ok

    def closeEvent(self, ev: QCloseEvent) -> None:
        """Quit / window close: "save changes?" first; Cancel keeps the window and everything in it."""
        if not self._closed and not self.maybe_save():
            ev.ignore()
            return
        self.shutdown()
        ev.accept()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="i2i-studio", description="Desktop studio for image-to-image synthesis")
    p.add_argument("project", nargs="?", help="a project file to open")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="override the device setting")
    p.add_argument("--workspace", help="open this workspace (e.g. stargan, exemplar, panoptic)")
    p.add_argument("--restore", choices=["ask", "yes", "no"], default="ask",
                   help="restore an autosaved session after a crash (default: ask)")
    p.add_argument("--quit-after", type=int, default=0, metavar="MS", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _log_to_file(path: Path) -> None:
    """Errors and warnings of the session go to a log file in the config folder (and stderr)."""
    if any(isinstance(h, logging.FileHandler) for h in log.handlers):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if display_check.needs_xcb() and display_check.check() != 0:
        return 1  # Qt would abort loading its X11 plugin; the check named the packages to install
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "i2i-studio"])
    app.setApplicationName("i2i-studio")
    app.setOrganizationName("i2i-studio")
    settings = Settings.load()
    _log_to_file(config_dir() / "i2i-studio.log")
    apply_theme(app, settings.get("theme"))
    if args.device:
        settings.set("device", args.device)
    window = MainWindow(settings, restore=args.restore)
    if args.workspace in window.workspaces:
        window.tabs.setCurrentWidget(window.workspaces[args.workspace])
    if args.project:
        window.open_project(args.project)
    window.show()
    if args.quit_after:
        QTimer.singleShot(args.quit_after, window.close)
    code = app.exec()
    # the event loop can end without the window being closed (e.g. the desktop session ends):
    # unsaved work then stays in the autosave for the next start
    window.shutdown(end_session=not window.is_modified())
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
