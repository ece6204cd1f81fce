"""Qt-free latest-wins scheduler: one worker thread, one pending slot, cooperative cancellation.

``submit`` never queues: it replaces the pending request and cancels the running one; when the
worker finishes a job it pulls the newest pending request. Only the result of the newest request
is delivered; anything older is dropped. Callbacks run on the worker thread — a GUI marshals them
to its own thread (``app/engine_bridge.py``).
"""
from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .requests.base import Cancelled, EngineError, Failure, Request, Result
import torch

from .compiled import compile_mode_from_env
from .devices import configure_threads, pick_device, run_with_oom_fallback
from .tasks import CancelToken, LRUCache, ModelStore, TaskContext, make_context, run_request

RunFn = Callable[[Request, TaskContext], Result]


@dataclass
class SchedulerCallbacks:
    on_result: Callable[[Result], None] | None = None
    on_failure: Callable[[Failure], None] | None = None
    on_progress: Callable[[int, str, float], None] | None = None
    on_started: Callable[[int], None] | None = None
    on_idle: Callable[[], None] | None = None


class PreviewScheduler:
    """Runs requests on one worker thread, newest wins.

    Adaptive debounce: when the rolling mean job time exceeds ``slow_threshold_s``, the worker
    waits ``grace_s`` for further edits before starting, but never more than ``max_wait_s`` after
    the oldest unserved submit, so a continuous stroke still refreshes.
    """

    def __init__(self, callbacks: SchedulerCallbacks | None = None, *, models: ModelStore | None = None,
                 run_fn: RunFn = run_request, grace_s: float = 0.12, max_wait_s: float = 0.5,
                 slow_threshold_s: float = 0.25, cache_capacity: int = 32,
                 threads: int | None = None) -> None:
        self.callbacks = callbacks or SchedulerCallbacks()
        self.models = models or ModelStore(compile=compile_mode_from_env())
        self.cache = LRUCache(cache_capacity)
        self._run_fn = run_fn
        self.grace_s, self.max_wait_s, self.slow_threshold_s = grace_s, max_wait_s, slow_threshold_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="i2i-engine",
                                            initializer=configure_threads, initargs=(threads,))
        self._cond = threading.Condition()
        self._next_id = 0
        self._latest_id = 0
        self._pending: tuple[int, Request] | None = None
        self._pending_since: float | None = None
        self._running_token: CancelToken | None = None
        self._drain: Future | None = None
        self._closed = False
        self._durations: deque[float] = deque(maxlen=8)
        self.delivered = 0
        self.dropped = 0

    # ---------------------------------------------------------------- public
    @property
    def mean_duration(self) -> float:
        return sum(self._durations) / len(self._durations) if self._durations else 0.0

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None or self._running_token is not None

    def submit(self, request: Request) -> int:
        """Schedule ``request``; returns its id. Older pending/running requests are superseded."""
        with self._cond:
            if self._closed:
                raise RuntimeError("scheduler is closed")
            self._next_id += 1
            rid = self._next_id
            self._latest_id = rid
            if self._pending is not None:
                self.dropped += 1
            else:
                self._pending_since = time.monotonic()
            self._pending = (rid, request)
            if self._running_token is not None:
                self._running_token.cancel()
            self._cond.notify_all()
            if self._drain is None or self._drain.done():
                self._drain = self._executor.submit(self._drain_loop)
            return rid

    def cancel(self) -> None:
        """Drop the pending request and cancel the running one (the user pressed Cancel)."""
        with self._cond:
            self._next_id += 1
            self._latest_id = self._next_id  # nothing older may be delivered
            if self._pending is not None:
                self.dropped += 1
            self._pending = None
            if self._running_token is not None:
                self._running_token.cancel()
            self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> bool:
        """Cancel everything and wait for the worker; True when it stopped within ``timeout``."""
        self.cancel()
        with self._cond:
            self._closed = True
            drain = self._drain
        ok = True
        if drain is not None:
            try:
                drain.result(timeout=timeout)
            except TimeoutError:
                ok = False
            except Exception:  # noqa: BLE001 - the loop reports its own errors
                pass
        self._executor.shutdown(wait=ok, cancel_futures=True)
        self.models.clear()
        self.cache.clear()
        return ok

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job is pending or running (CLI and tests)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._running_token is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ---------------------------------------------------------------- worker
    def _take_pending(self) -> tuple[int, Request] | None:
        with self._cond:
            if self._pending is None:
                # This drain is ending; forget it so a submit arriving before the future is done
                # (e.g. during on_idle) starts a new drain instead of leaving its request pending.
                self._drain = None
                return None
            if self.mean_duration > self.slow_threshold_s and self._pending_since is not None:
                # Slow model: give the user a moment to finish the edit, bounded by max_wait_s.
                hard_deadline = self._pending_since + self.max_wait_s
                while not self._closed:
                    seen = self._pending
                    left = min(self.grace_s, hard_deadline - time.monotonic())
                    if left <= 0:
                        break
                    self._cond.wait(left)
                    if self._pending is seen:  # no newer edit during the grace period
                        break
                if self._pending is None:
                    self._drain = None  # as above
                    return None
            item, self._pending, self._pending_since = self._pending, None, None
            self._running_token = CancelToken()
            return item

    def _drain_loop(self) -> None:
        while True:
            item = self._take_pending()
            if item is None:
                if self.callbacks.on_idle is not None:
                    self.callbacks.on_idle()
                return
            rid, request = item
            self._run_one(rid, request)

    def _is_latest(self, rid: int) -> bool:
        with self._cond:
            return rid == self._latest_id

    def _run_one(self, rid: int, request: Request) -> None:
        try:
            outcome = self._compute(rid, request)
            self._deliver(rid, outcome)
        finally:
            # Cleared only after delivery, so wait_idle() returning means callbacks have run.
            with self._cond:
                self._running_token = None
                self._cond.notify_all()

    def _compute(self, rid: int, request: Request) -> Result | Failure | None:
        token = self._running_token
        assert token is not None
        cb = self.callbacks

        def progress(stage: str, fraction: float) -> None:
            if cb.on_progress is not None and self._is_latest(rid):
                cb.on_progress(rid, stage, fraction)

        t0 = time.perf_counter()
        try:
            if cb.on_started is not None:
                cb.on_started(rid)
            notes: list[str] = []

            def job(device: torch.device) -> Result:
                ctx = make_context(rid, request, self.models, self.cache, token, progress, device)
                ctx.notes.extend(notes)  # e.g. "the GPU ran out of memory" on the CPU rerun
                return self._run_fn(request, ctx)

            outcome = run_with_oom_fallback(job, pick_device(request.device), notes.append)
            self._durations.append(time.perf_counter() - t0)
            return outcome
        except Cancelled:
            return None
        except EngineError as exc:
            return Failure(rid, exc.kind, str(exc))
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything a task raises
            return Failure(rid, "internal", f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def _deliver(self, rid: int, outcome: Result | Failure | None) -> None:
        cb = self.callbacks
        if outcome is None or not self._is_latest(rid):
            with self._cond:
                self.dropped += 1
            return
        if isinstance(outcome, Result) and outcome.request_id != rid:
            outcome = Result(rid, outcome.image, outcome.aux, outcome.timings, outcome.device, outcome.notes)
        self.delivered += 1
        if isinstance(outcome, Failure):
            if cb.on_failure is not None:
                cb.on_failure(outcome)
        elif cb.on_result is not None:
            cb.on_result(outcome)
