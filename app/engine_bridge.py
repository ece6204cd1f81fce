"""The one place the GUI talks to the engine.

:class:`EngineBridge` owns the engine's :class:`~engine.api.Session` (scheduler, live policy, model
store) and only marshals: it re-emits the session's worker-thread callbacks as Qt signals on the GUI
thread (private signals with queued connections: napari's ``ensure_main_thread`` pattern), tagged
with the workspace that submitted. Which request runs, at what size, and which result may still be
shown are the engine's :class:`~engine.api.LivePolicy` rules. No model code runs on the GUI thread.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot

from app.settings import Settings
from engine.api import Failure, Quality, Request, Result, RunFn, SchedulerCallbacks, Session


class EngineBridge(QObject):
    """Submit requests on behalf of a workspace (``owner``); get its newest result as a signal."""

    resultReady = Signal(str, object)      # owner, Result
    failed = Signal(str, object)           # owner, Failure
    progress = Signal(str, str, float)     # owner, stage, fraction
    started = Signal(str, int)             # owner, request id
    busyChanged = Signal(bool)

    # Emitted on the worker thread; connected with QueuedConnection to the slots below.
    _workerResult = Signal(object)
    _workerFailure = Signal(object)
    _workerProgress = Signal(int, str, float)
    _workerStarted = Signal(int)
    _workerIdle = Signal()

    def __init__(self, settings: Settings, *, run_fn: RunFn | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        queued = Qt.ConnectionType.QueuedConnection
        self._workerResult.connect(self._on_result, queued)
        self._workerFailure.connect(self._on_failure, queued)
        self._workerProgress.connect(self._on_progress, queued)
        self._workerStarted.connect(self._on_started, queued)
        self._workerIdle.connect(self._on_idle, queued)
        callbacks = SchedulerCallbacks(on_result=self._workerResult.emit,
                                       on_failure=self._workerFailure.emit,
                                       on_progress=self._workerProgress.emit,
                                       on_started=self._workerStarted.emit,
                                       on_idle=self._workerIdle.emit)
        self.session = Session(callbacks, run_fn=run_fn, threads=int(settings.get("threads")) or None)
        self.apply_settings(settings)
        self._submitted: dict[int, tuple[str, Quality]] = {}  # request id -> (owner, quality)
        self._latest_id = 0
        self._busy = False
        self._closed = False
        self.last_device = ""
        self.last_quality: Quality = "full"

    def apply_settings(self, settings: Settings) -> None:
        """Device, precision and the live policy's timings and preview size from the preferences."""
        self.session.device = settings.get("device")
        self.session.precision = settings.get("precision")
        policy = self.session.policy
        policy.grace_s = settings.get("grace_ms") / 1000
        policy.max_wait_s = settings.get("max_wait_ms") / 1000
        policy.preview_size = int(settings.get("preview_size"))

    # ------------------------------------------------------------------ public API
    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def latest_id(self) -> int:
        return self._latest_id

    def submit(self, owner: str, request: Request, quality: Quality = "full") -> int:
        """Schedule ``request`` for ``owner`` (the engine's live policy decides what it supersedes)."""
        if self._closed:
            raise RuntimeError("the engine bridge is closed")
        self.apply_settings(self.settings)  # preferences as they are now (the dialog may have changed them)
        rid = self.session.submit(request, quality)
        self._latest_id = rid
        # forget requests the engine will never deliver
        self._submitted = {k: v for k, v in self._submitted.items() if self.session.is_current(k)}
        self._submitted[rid] = (owner, quality)
        self._set_busy(True)
        return rid

    def cancel(self) -> None:
        """Drop the pending request and stop the running one at its next checkpoint."""
        if self._closed:
            return
        self.session.cancel()
        self._submitted.clear()
        self._set_busy(self.session.busy)

    def close(self, timeout: float = 5.0) -> bool:
        """Cancel, then wait for the worker with a timeout; True when it stopped in time."""
        if self._closed:
            return True
        self._closed = True
        ok = self.session.close(timeout=timeout)
        self._submitted.clear()
        self._set_busy(False)
        return ok

    # ------------------------------------------------------------------ GUI-thread slots
    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def _owner_of(self, rid: int) -> tuple[str, Quality] | None:
        # the engine's rule, asked again now that the queued callback reached the GUI thread
        if self._closed or not self.session.is_current(rid):
            return None
        return self._submitted.get(rid)

    @Slot(object)
    def _on_result(self, result: Result) -> None:
        info = self._owner_of(result.request_id)
        if info is None:
            return
        self.last_device = result.device
        self.last_quality = info[1]
        self.resultReady.emit(info[0], result)

    @Slot(object)
    def _on_failure(self, failure: Failure) -> None:
        info = self._owner_of(failure.request_id)
        if info is not None:
            self.last_quality = info[1]  # lets a workspace tell a failed preview from a failed render
            self.failed.emit(info[0], failure)

    @Slot(int, str, float)
    def _on_progress(self, rid: int, stage: str, fraction: float) -> None:
        info = self._owner_of(rid)
        if info is not None:
            self.progress.emit(info[0], stage, fraction)

    @Slot(int)
    def _on_started(self, rid: int) -> None:
        info = self._owner_of(rid)
        if info is not None:
            self.started.emit(info[0], rid)

    @Slot()
    def _on_idle(self) -> None:
        if not self._closed:
            self._set_busy(self.session.busy)
