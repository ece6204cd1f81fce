"""The one place the GUI talks to the engine.

:class:`EngineBridge` owns the Qt-free :class:`~engine.scheduler.PreviewScheduler` and re-emits its
worker-thread callbacks as Qt signals on the GUI thread (private signals with queued connections:
napari's ``ensure_main_thread`` pattern). It also picks the working resolution of previews: a
reduced size while the user drags (shrunk further when previews are slow, and fitted by the engine
to what the model accepts), the full size on release. No model code ever runs on the GUI thread.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from typing import Callable, Literal

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine.api import Failure, Request, Result, preview_size_for
from engine.scheduler import PreviewScheduler, SchedulerCallbacks
from app.settings import Settings
from engine.tasks import TaskContext

Quality = Literal["preview", "full"]
RunFn = Callable[[Request, TaskContext], Result]

# A preview should come back within this many seconds; slower ones shrink the next preview.
PREVIEW_TARGET_S = 0.15


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
        kwargs = {} if run_fn is None else {"run_fn": run_fn}
        threads = int(settings.get("threads")) or None
        self.scheduler = PreviewScheduler(callbacks, grace_s=settings.get("grace_ms") / 1000,
                                          max_wait_s=settings.get("max_wait_ms") / 1000,
                                          threads=threads, **kwargs)
        self._owners: dict[int, tuple[str, Quality, float]] = {}
        self._held: tuple[str, Request] | None = None
        self._inflight: Quality | None = None
        self.held = 0  # previews held back while another preview ran (statistics)
        self._latest_id = 0
        self._busy = False
        self._closed = False
        self._preview_times: deque[float] = deque(maxlen=6)
        self.last_device = ""
        self.last_quality: Quality = "full"
        self.delivered = 0

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

    def preview_size(self, request: Request | None = None) -> int | None:
        """Working resolution while dragging: the setting, shrunk when previews run slower than
        :data:`PREVIEW_TARGET_S` (time grows with pixel count, so scale by the square root). With a
        request, the engine fits that size to the request's model (its minimum and stride; None
        when the model only runs at its native size)."""
        base = int(self.settings.get("preview_size"))
        size = base
        if self._preview_times:
            mean = sum(self._preview_times) / len(self._preview_times)
            if mean > PREVIEW_TARGET_S:
                size = max(1, int(base * math.sqrt(PREVIEW_TARGET_S / mean)))
        return size if request is None else preview_size_for(request, size)

    def submit(self, owner: str, request: Request, quality: Quality = "full") -> int:
        """Schedule ``request`` for ``owner``; it supersedes everything submitted before.

        A preview that arrives while another preview is still computing is held (the newest one
        replaces the held one) and submitted when that job ends, instead of cancelling it: a
        continuous drag then refreshes at the model's own pace rather than never finishing a
        frame. Full-quality requests always cancel what is running. Returns the request id, or 0
        for a held preview.
        """
        if self._closed:
            raise RuntimeError("the engine bridge is closed")
        changes: dict[str, object] = {"device": self.settings.get("device"),
                                      "precision": self.settings.get("precision")}
        if quality == "preview":
            changes["preview_size"] = self.preview_size(request)
        request = dataclasses.replace(request, **changes)
        if quality == "preview" and self._inflight == "preview" and self.scheduler.busy:
            self._held = (owner, request)
            self.held += 1
            self._set_busy(True)
            return 0
        self._held = None
        return self._submit_now(owner, request, quality)

    def _submit_now(self, owner: str, request: Request, quality: Quality) -> int:
        rid = self.scheduler.submit(request)
        self._latest_id = rid
        self._inflight = quality
        # Only the newest id can ever be delivered; forget the rest.
        self._owners = {rid: (owner, quality, time.perf_counter())}
        self._set_busy(True)
        return rid

    def _release_held(self) -> None:
        """The running preview ended: start the newest held one."""
        if self._held is not None and not self._closed:
            owner, request = self._held
            self._held = None
            self._submit_now(owner, request, "preview")

    def cancel(self) -> None:
        """Drop the pending request and stop the running one at its next checkpoint."""
        if self._closed:
            return
        self._held = None
        self.scheduler.cancel()
        self._latest_id = -1
        self._owners.clear()
        self._set_busy(self.scheduler.busy)

    def close(self, timeout: float = 5.0) -> bool:
        """Cancel, then wait for the worker with a timeout; True when it stopped in time."""
        if self._closed:
            return True
        self._closed = True
        self._held = None
        ok = self.scheduler.close(timeout=timeout)
        self._owners.clear()
        self._set_busy(False)
        return ok

    # ------------------------------------------------------------------ GUI-thread slots
    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def _owner_of(self, rid: int) -> tuple[str, Quality, float] | None:
        # A queued result can arrive after a newer submit: never show it.
        if self._closed or rid != self._latest_id:
            return None
        return self._owners.get(rid)

    @Slot(object)
    def _on_result(self, result: Result) -> None:
        info = self._owner_of(result.request_id)
        if info is None:
            return
        owner, quality, t0 = info
        if quality == "preview":
            self._preview_times.append(time.perf_counter() - t0)
        self.last_device = result.device
        self.last_quality = quality
        self.delivered += 1
        self.resultReady.emit(owner, result)
        self._release_held()

    @Slot(object)
    def _on_failure(self, failure: Failure) -> None:
        info = self._owner_of(failure.request_id)
        if info is not None:
            self.last_quality = info[1]  # lets a workspace tell a failed preview from a failed render
            self.failed.emit(info[0], failure)
            self._release_held()

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
            self._release_held()  # e.g. the running preview was dropped without a result
            self._set_busy(self.scheduler.busy or self._held is not None)
