"""Qt-free live preview: one policy object and a latest-wins scheduler with one worker thread.

:class:`LivePolicy` holds every rule of live previews once: when to wait for more edits (grace
only when generation is slow, bounded by a max wait), whether a new request cancels the running
one, and the working size of a preview (reduced while dragging, fitted to the model; full on
release). :class:`PreviewScheduler` applies it: ``submit`` never queues, it replaces the pending
request; when the worker finishes a job it pulls the newest pending one. Only results no newer
request superseded are delivered. Callbacks run on the worker thread — a GUI marshals them to its
own thread (``app/engine_bridge.py``) and asks :meth:`PreviewScheduler.is_current` there.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import statistics
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from .compiled import compile_mode_from_env
from .devices import configure_threads, pick_device, run_with_oom_fallback
from .families import get_family
from .requests.base import Cancelled, EngineError, Failure, Quality, Request, Result
from .tasks import CancelToken, LRUCache, ModelStore, TaskContext, make_context, run_request
from .weights import Manifest, current_manifest

RunFn = Callable[[Request, TaskContext], Result]


@dataclass
class SchedulerCallbacks:
    on_result: Callable[[Result], None] | None = None
    on_failure: Callable[[Failure], None] | None = None
    on_progress: Callable[[int, str, float], None] | None = None
    on_started: Callable[[int], None] | None = None
    on_idle: Callable[[], None] | None = None


@dataclass
class _Job:
    """The running job: ``work`` is its request as the image it computes (:meth:`LivePolicy.work`);
    ``deliver_as`` is the newest request id its result answers (a later submit of the same work
    adopts the job instead of starting it again)."""

    rid: int
    work: Request
    quality: Quality
    token: CancelToken
    deliver_as: int
    side: int | None = None  # the working size a preview runs at
    started: float = 0.0  # policy clock time
    handed_over: bool = False  # its result went out under ``deliver_as``: too late to adopt it


def preview_size_for(request: Request, wanted: int, manifest: Manifest | None = None) -> int | None:
    """``wanted`` (pixels of the longer side) fitted to the preview grid of the model that runs
    ``request``: never below the model's minimum, aligned to its stride, at most its native size.
    None when that model only runs at its native size. ``wanted`` itself when the model is not
    known (running the request then reports that)."""
    if not request.family:
        return int(wanted)
    try:
        manifest = manifest if manifest is not None else current_manifest()
        model = request.preview_model
        entry = manifest.entries.get(model) if model else manifest.default(request.family)
        if entry is None:
            return int(wanted)
        grid = get_family(entry.family).preview_grid(entry.config)
    except (EngineError, KeyError, ValueError):
        return int(wanted)
    return None if grid is None else grid.fit(int(wanted))


@dataclass
class LivePolicy:
    """Every rule of live previews, once (napari's slicer / krita's LiveScheduler).

    * Adaptive debounce: when the median of the recent job times exceeds ``slow_threshold_s``, a
      job starts ``grace_s`` after the newest edit, but never later than ``max_wait_s`` after the
      oldest unserved one, so a continuous stroke still refreshes. Fast models start at once.
    * Latest wins: a new request cancels the running job, except that a preview arriving while a
      preview runs lets it finish (a continuous drag then refreshes at the model's own pace
      instead of never finishing a frame); the newest pending request replaces older ones. A
      request equal to the running one (a release whose full size is the drag's size) adopts
      the running job rather than cancelling and recomputing it.
    * Sizes: a preview (drag) runs at ``preview_size``, or smaller where the recent previews' typical
      (median) time per pixel says a frame at that size would take longer than ``preview_target_s``,
      fitted to the model; a full request (release) runs at the model's full size. Judging time per
      pixel, not per job, keeps the size steady: a shrunk preview's faster job does not grow it back.

    ``clock`` is injectable so the timing rules are tested without sleeping.
    """

    grace_s: float = 0.12
    max_wait_s: float = 0.5
    slow_threshold_s: float = 0.25
    # 96 px drag previews: the default 128² CoCosNet model then refreshes a stroke within the 150 ms
    # felt-latency goal on 2 cores (bench/bench_studio.py); the release renders the full size.
    preview_size: int = 96
    preview_target_s: float = 0.15
    release_wait_s: float = 0.1
    clock: Callable[[], float] = time.monotonic
    _durations: deque[float] = field(default_factory=lambda: deque(maxlen=8), repr=False)
    _preview_rates: deque[float] = field(default_factory=lambda: deque(maxlen=6), repr=False)  # s per pixel

    def record(self, seconds: float, quality: Quality = "full", side: int | None = None) -> None:
        """A finished job's generation time (model loading excluded: it happens once); ``side`` is
        the working size a preview ran at (None where its model has no reduced sizes)."""
        self._durations.append(seconds)
        if quality == "preview" and side:
            self._preview_rates.append(seconds / (side * side))

    @property
    def typical_duration(self) -> float:
        """The median of the recent job times: one slow warm-up job (first run, a stage still
        compiling) must not switch the debounce on or shrink previews for the jobs after it."""
        return statistics.median(self._durations) if self._durations else 0.0

    @property
    def slow(self) -> bool:
        return self.typical_duration > self.slow_threshold_s

    def start_delay(self, first_submit: float, last_submit: float) -> float:
        """Seconds still to wait before starting the pending job (0: start now); ``first_submit``
        and ``last_submit`` are the clock times of the oldest unserved and the newest edit."""
        if not self.slow:
            return 0.0
        start_at = min(last_submit + self.grace_s, first_submit + self.max_wait_s)
        return max(0.0, start_at - self.clock())

    @staticmethod
    def reduced_size(request: Request, manifest: Manifest | None = None) -> int | None:
        """The side ``request`` runs at when below its model's full size; None at the full size."""
        if request.preview_size is None:
            return None
        full = preview_size_for(request, 1 << 30, manifest)  # the model's native size
        return None if full is None or request.preview_size >= full else request.preview_size

    def work(self, request: Request, manifest: Manifest | None = None) -> Request:
        """``request`` as the image it computes: ``preview_size`` None where it is the model's full
        size (a preview at the native size computes the release's image). Equal work, equal image."""
        size = self.reduced_size(request, manifest)
        return request if size == request.preview_size else dataclasses.replace(request, preview_size=size)

    def same_work(self, a: Request, b: Request) -> bool:
        """Whether ``a`` and ``b`` compute the same image."""
        return self.work(a) == self.work(b)

    def expected_seconds(self, side: int | None) -> float | None:
        """A preview's expected time at working size ``side`` from the recent time per pixel."""
        if not side or not self._preview_rates:
            return None
        return statistics.median(self._preview_rates) * side * side

    def cancels_running(self, new: Request, new_quality: Quality, running: Request, running_quality: Quality,
                        running_left_s: float | None = None) -> bool:
        """Whether submitting ``new`` stops the running job (both as :meth:`work` gives them).
        ``running_left_s``: the running preview's expected time left (None: unknown). A running
        preview finishes when ``new`` is another preview (a drag then refreshes at the model's own
        pace instead of never finishing a frame), or a release at the preview's own size (that frame
        is as sharp as the release's and partly done), or a release that it would keep waiting no
        longer than ``release_wait_s`` (the stroke's last edits show that much sooner; the sharper
        release follows). A full render, or a longer reduced-size preview under a release, is cancelled."""
        if running_quality != "preview":
            return True
        if new_quality == "preview" or new.preview_size == running.preview_size:
            return False
        return running_left_s is None or running_left_s > self.release_wait_s

    def wanted_preview_size(self) -> int:
        """The drag-time working size before fitting it to a model."""
        size = int(self.preview_size)
        if self._preview_rates:
            affordable = math.sqrt(self.preview_target_s / statistics.median(self._preview_rates))
            size = max(1, min(size, int(affordable)))
        return size

    def sized(self, request: Request, quality: Quality, manifest: Manifest | None = None) -> Request:
        """``request`` at the working size of ``quality``: a preview gets the reduced size its model
        accepts (None where the model runs only at its native size); a full request is unchanged."""
        if quality != "preview":
            return request
        return dataclasses.replace(request, preview_size=preview_size_for(request, self.wanted_preview_size(),
                                                                          manifest))


class PreviewScheduler:
    """Runs requests on one worker thread, newest wins, as :class:`LivePolicy` says."""

    def __init__(self, callbacks: SchedulerCallbacks | None = None, *, models: ModelStore | None = None,
                 run_fn: RunFn = run_request, policy: LivePolicy | None = None, grace_s: float = 0.12,
                 max_wait_s: float = 0.5, slow_threshold_s: float = 0.25, cache_capacity: int = 32,
                 threads: int | None = None) -> None:
        self.callbacks = callbacks or SchedulerCallbacks()
        self.models = models or ModelStore(compile=compile_mode_from_env())
        # Compile when no edit is waiting, not between the frames of a drag: tracing holds the GIL
        # for up to hundreds of ms at a time, which the GUI thread would feel as a stall.
        self.models.compiler.start_on = "idle"
        self.cache = LRUCache(cache_capacity)
        self.policy = policy or LivePolicy(grace_s=grace_s, max_wait_s=max_wait_s,
                                           slow_threshold_s=slow_threshold_s)
        self._run_fn = run_fn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="i2i-engine",
                                            initializer=configure_threads, initargs=(threads,))
        self._cond = threading.Condition()
        self._next_id = 0
        self._floor_id = 0  # results of older requests were superseded: never delivered
        self._pending: tuple[int, Request, Quality, Request] | None = None  # id, request, quality, work
        self._first_submit = self._last_submit = 0.0
        self._running: _Job | None = None
        self._drain: Future | None = None
        self._closed = False
        self.dropped = 0  # requests that never reached a callback (superseded, cancelled)

    # ---------------------------------------------------------------- public
    @property
    def typical_duration(self) -> float:
        return self.policy.typical_duration

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None or self._running is not None

    def is_current(self, rid: int) -> bool:
        """Whether a result of request ``rid`` may still be shown: no newer request superseded it.
        A GUI asks again when a queued result reaches its thread."""
        with self._cond:
            return rid >= self._floor_id and not self._closed

    def submit(self, request: Request, quality: Quality = "full") -> int:
        """Schedule ``request``; returns its id. It replaces the pending request and, unless the
        policy lets a running preview finish, cancels the running one."""
        work = self.policy.work(request)  # outside the lock: it may look up the model's sizes
        with self._cond:
            if self._closed:
                raise RuntimeError("scheduler is closed")
            self._next_id += 1
            rid = self._next_id
            now = self.policy.clock()
            if self._pending is None:
                self._first_submit = now
            else:
                self.dropped += 1
            self._last_submit = now
            running = self._running
            if running is not None and running.handed_over:
                running = None  # finished: it neither answers nor waits for the new request
            if running is not None and not running.token.cancelled and running.work == work:
                # The job already computes exactly this: its result answers the new id.
                running.deliver_as = rid
                self._floor_id = rid
                self._pending = None
                return rid
            self._pending = (rid, request, quality, work)
            left = None
            if running is not None:
                expected = self.policy.expected_seconds(running.side)
                left = None if expected is None else expected - (now - running.started)
            if running is None or self.policy.cancels_running(work, quality, running.work, running.quality, left):
                self._floor_id = rid
                if running is not None:
                    running.token.cancel()
            self._cond.notify_all()
            if self._drain is None or self._drain.done():
                self._drain = self._executor.submit(self._drain_loop)
            return rid

    def cancel(self) -> None:
        """Drop the pending request and cancel the running one (the user pressed Cancel)."""
        with self._cond:
            self._next_id += 1
            self._floor_id = self._next_id  # nothing older may be delivered
            if self._pending is not None:
                self.dropped += 1
            self._pending = None
            if self._running is not None:
                self._running.token.cancel()
            self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> bool:
        """Cancel everything and wait for the worker; True when it stopped within ``timeout``."""
        self.cancel()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            drain = self._drain
        ok = True
        if drain is not None:
            try:
                drain.result(timeout=timeout)
            except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                ok = False
            except Exception:
                pass
        self._executor.shutdown(wait=ok, cancel_futures=True)
        self.models.clear()
        self.cache.clear()
        return ok

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job is pending or running (CLI and tests)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ---------------------------------------------------------------- worker
    def _take_pending(self) -> tuple[int, Request, Quality] | None:
        with self._cond:
            # Slow model: give the user a moment to finish the edit, bounded by the max wait.
            while self._pending is not None and not self._closed:
                delay = self.policy.start_delay(self._first_submit, self._last_submit)
                if delay <= 0:
                    break
                self._cond.wait(delay)
            if self._pending is None:
                # This drain is ending; forget it so a submit arriving before the future is done
                # (e.g. during on_idle) starts a new drain instead of leaving its request pending.
                self._drain = None
                return None
            (rid, request, quality, work), self._pending = self._pending, None
            self._running = _Job(rid, work, quality, CancelToken(), rid, request.preview_size, self.policy.clock())
            return rid, request, quality

    def _drain_loop(self) -> None:
        while True:
            item = self._take_pending()
            if item is None:
                self.models.compiler.start()
                if self.callbacks.on_idle is not None:
                    self.callbacks.on_idle()
                return
            rid, request, quality = item
            self._run_one(rid, request, quality)

    def _run_one(self, rid: int, request: Request, quality: Quality) -> None:
        try:
            outcome = self._compute(rid, request, quality)
            with self._cond:
                assert self._running is not None
                deliver_as = self._running.deliver_as
                self._running.handed_over = True
            self._deliver(deliver_as, outcome)
        finally:
            # Cleared only after delivery, so wait_idle() returning means callbacks have run.
            with self._cond:
                self._running = None
                self._cond.notify_all()

    def _compute(self, rid: int, request: Request, quality: Quality) -> Result | Failure | None:
        running = self._running
        assert running is not None
        token = running.token
        cb = self.callbacks

        def progress(stage: str, fraction: float) -> None:
            current = running.deliver_as  # the id an adopting request gave the job
            if cb.on_progress is not None and self.is_current(current):
                cb.on_progress(current, stage, fraction)

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
            self.policy.record(time.perf_counter() - t0 - outcome.timings.get("load", 0.0), quality,
                               request.preview_size)
            return outcome
        except Cancelled:
            return None
        except EngineError as exc:
            return Failure(rid, exc.kind, str(exc))
        except Exception as exc:
            return Failure(rid, "internal", f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def _deliver(self, rid: int, outcome: Result | Failure | None) -> None:
        cb = self.callbacks
        if outcome is None or not self.is_current(rid):
            with self._cond:
                self.dropped += 1
            return
        if isinstance(outcome, Result) and outcome.request_id != rid:
            outcome = Result(rid, outcome.image, outcome.aux, outcome.timings, outcome.device, outcome.notes)
        if isinstance(outcome, Failure):
            if cb.on_failure is not None:
                cb.on_failure(outcome)
        elif cb.on_result is not None:
            cb.on_result(outcome)
