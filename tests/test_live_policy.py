"""The one live-preview policy (engine.scheduler.LivePolicy) and the scheduler that applies it,
tested deterministically: a fake clock for the timing rules, a fake run function that blocks on
events for latest-wins and cancel (no sleeps, no timing asserts)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from engine.api import ExemplarRequest, LivePolicy, Request, SchedulerCallbacks
from engine.families import get_family
from engine.scheduler import PreviewScheduler
from engine.weights import Manifest, WeightsEntry


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass(frozen=True)
class Job(Request):
    value: int = 0


class BlockingRun:
    """Runs record their values; ``block`` values wait for ``gate`` after signalling ``entered``."""

    def __init__(self, block: tuple[int, ...] = ()) -> None:
        self.block = block
        self.ran: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, request: Job, ctx):
        self.ran.append(request.value)
        if request.value in self.block:
            self.entered.set()
            assert self.gate.wait(10)
        ctx.check()  # a superseded job stops here
        return ctx.result(np.full((2, 2, 3), request.value, np.uint8))


class Delivered:
    def __init__(self) -> None:
        self.values: list[int] = []

    def callbacks(self) -> SchedulerCallbacks:
        return SchedulerCallbacks(on_result=lambda r: self.values.append(int(r.image[0, 0, 0])))


def slow_policy(clock: FakeClock) -> LivePolicy:
    policy = LivePolicy(grace_s=0.12, max_wait_s=0.5, slow_threshold_s=0.25, clock=clock)
    for _ in range(3):
        policy.record(1.0)  # the model takes a second per job
    return policy


# ------------------------------------------------------------------------------ the policy alone
def test_grace_applies_only_when_generation_is_slow():
    clock = FakeClock()
    fast = LivePolicy(clock=clock)
    fast.record(0.05)
    assert not fast.slow and fast.start_delay(0.0, 0.0) == 0.0
    slow = slow_policy(clock)
    assert slow.slow
    assert slow.start_delay(0.0, 0.0) == pytest.approx(0.12)  # wait for the rest of the edit
    clock.advance(0.12)
    assert slow.start_delay(0.0, 0.0) == 0.0


def test_max_wait_bounds_the_delay_under_continuous_edits():
    clock = FakeClock()
    policy = slow_policy(clock)
    first = clock()
    delays = []
    for _ in range(10):  # an edit every 0.1 s: each alone would restart the grace period
        clock.advance(0.1)
        delays.append(policy.start_delay(first, clock()))
    assert delays[0] == pytest.approx(0.12)
    assert delays[3] == pytest.approx(0.1)  # at 0.4 s: 0.1 s left of the 0.5 s max wait
    assert all(d == 0.0 for d in delays[4:])  # from 0.5 s on the job starts despite new edits


def test_one_slow_warm_up_job_neither_debounces_nor_shrinks_the_jobs_after_it():
    policy = LivePolicy(clock=FakeClock(), preview_size=128, preview_target_s=0.15)
    policy.record(0.9, "preview", 128)  # the first run: caches cold, a stage still compiling
    for _ in range(2):
        policy.record(0.08, "preview", 128)
    assert not policy.slow and policy.start_delay(0.0, 0.0) == 0.0
    assert policy.wanted_preview_size() == 128


def test_a_running_preview_finishes_under_a_preview_or_a_same_size_release():
    policy, small, native = LivePolicy(), Job(value=1, preview_size=64), Job(value=1)
    assert not policy.cancels_running(small, "preview", small, "preview")
    assert not policy.cancels_running(native, "full", native, "preview")  # same working size
    assert policy.cancels_running(native, "full", small, "preview")  # the release is sharper
    assert policy.cancels_running(native, "full", small, "preview", 0.5)  # and the preview far from done
    assert not policy.cancels_running(native, "full", small, "preview", 0.03)  # nearly done: show it first
    assert policy.cancels_running(small, "preview", native, "full")
    assert policy.cancels_running(native, "full", native, "full")


def test_drag_gets_the_reduced_fitted_size_and_release_the_full_size(weights_dir):
    config = dict(get_family("cocosnet").configs["small_ade20k"])  # native 128, grid from 64 in steps of 32
    m = Manifest()
    m.add(WeightsEntry(name="coco", family="cocosnet", config_name="small_ade20k", config=config,
                       file="coco.safetensors", bytes=0, sha256="", provenance={"kind": "trained-here"},
                       extra={"default": True}))
    m.save()
    policy = LivePolicy(preview_size=128, preview_target_s=0.15)
    request = ExemplarRequest(seed=3)
    preview = policy.sized(request, "preview")
    assert preview.preview_size == 128
    assert policy.sized(request, "full") == request  # release: full quality, nothing changed
    assert policy.same_work(preview, request)  # at the native size the preview is the release's image
    for _ in range(6):
        policy.record(0.6, "preview", 128)  # 4× too slow: half the side, a quarter of the pixels
    assert policy.wanted_preview_size() == 64
    assert policy.sized(request, "preview").preview_size == 64
    policy.record(0.6, "full")  # full renders do not shrink previews
    assert policy.wanted_preview_size() == 64
    assert policy.sized(request, "full").preview_size is None


def test_a_shrunk_drag_size_stays_shrunk_while_the_model_keeps_its_speed():
    """Time per pixel, not per job: a preview made faster by shrinking must not grow back to the
    size that was too slow (and then shrink again, frame after frame)."""
    policy = LivePolicy(preview_size=128, preview_target_s=0.15)
    for _ in range(6):
        policy.record(0.18, "preview", 128)  # 128² takes 180 ms: over the 150 ms frame budget
    shrunk = policy.wanted_preview_size()
    assert shrunk == int(128 * (0.15 / 0.18) ** 0.5) < 128
    for _ in range(6):
        policy.record(0.18 * (96 / 128) ** 2, "preview", 96)  # the same model, run at 96²
    assert policy.wanted_preview_size() == shrunk
    for _ in range(6):
        policy.record(0.02, "preview", 128)  # the model got faster (compiled twin ready)
    assert policy.wanted_preview_size() == 128
    policy.record(5.0, "preview", None)  # a model with no reduced sizes does not count
    assert policy.wanted_preview_size() == 128


# ------------------------------------------------------------------------------ applied by the scheduler
def test_middle_of_three_submits_is_dropped_and_only_the_newest_is_delivered():
    run, seen = BlockingRun(block=(1,)), Delivered()
    s = PreviewScheduler(seen.callbacks(), run_fn=run)
    try:
        s.submit(Job(value=1))
        assert run.entered.wait(10)
        s.submit(Job(value=2))
        s.submit(Job(value=3))  # replaces 2 while it is pending; cancels 1
        run.gate.set()
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert run.ran == [1, 3]
    assert seen.values == [3]
    assert s.dropped == 2  # 2 never ran, 1 was cancelled


def test_previews_during_a_running_preview_wait_and_the_newest_runs_next():
    run, seen = BlockingRun(block=(1,)), Delivered()
    s = PreviewScheduler(seen.callbacks(), run_fn=run)
    try:
        s.submit(Job(value=1), "preview")
        assert run.entered.wait(10)
        s.submit(Job(value=2), "preview")
        s.submit(Job(value=3), "preview")
        run.gate.set()
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert run.ran == [1, 3]
    assert seen.values == [1, 3]  # the running frame still shows: a drag keeps refreshing


def test_a_release_equal_to_the_running_preview_adopts_it_instead_of_recomputing():
    """Preview and full size coincide for small models: the release's request equals the running
    drag frame, so that frame answers the release (one run, delivered under the newest id)."""
    run, ids = BlockingRun(block=(1,)), []
    s = PreviewScheduler(SchedulerCallbacks(on_result=lambda r: ids.append(r.request_id)), run_fn=run)
    try:
        first = s.submit(Job(value=1), "preview")
        assert run.entered.wait(10)
        release = s.submit(Job(value=1), "full")  # equal request: adopted, not cancelled
        assert not s.is_current(first) and s.is_current(release)
        run.gate.set()
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert run.ran == [1]
    assert ids == [release]


def test_a_release_equal_to_a_frame_already_handed_over_is_delivered_itself():
    """The release arrives while the equal drag frame's result is being delivered (the job is
    still registered as running): too late to adopt, so the release gets its own result. Before,
    it was adopted by a job whose delivery was over, and the release never arrived (CI flake)."""
    run, ids = BlockingRun(), []
    s: PreviewScheduler

    def on_result(result):
        ids.append(result.request_id)
        if len(ids) == 1:
            ids.append(s.submit(Job(value=1), "full"))  # the release, during the frame's delivery

    s = PreviewScheduler(SchedulerCallbacks(on_result=on_result), run_fn=run)
    try:
        s.submit(Job(value=1), "preview")
        assert s.wait_idle(10)
    finally:
        assert s.close()
    frame, release = ids[0], ids[1]
    assert ids == [frame, release, release]  # the release's own result came


def test_a_release_at_the_preview_size_shows_the_running_frame_then_renders():
    run, seen = BlockingRun(block=(1,)), Delivered()
    s = PreviewScheduler(seen.callbacks(), run_fn=run)
    try:
        s.submit(Job(value=1), "preview")
        assert run.entered.wait(10)
        s.submit(Job(value=2), "full")  # newer content at the same size: the frame finishes first
        run.gate.set()
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert run.ran == [1, 2]
    assert seen.values == [1, 2]


@pytest.mark.parametrize("preview_s,shown", [(None, [2]), (0.5, [2]), (0.02, [1, 2])])
def test_a_release_over_a_reduced_preview_cancels_it_unless_it_is_nearly_done(preview_s, shown):
    """Unknown or long: cancelled for the sharper release. Expected to end within the release wait:
    that frame (with the stroke's last edits) shows first, then the release."""
    policy = LivePolicy(clock=FakeClock(), slow_threshold_s=10.0)  # no debounce: the fake clock stands still
    for _ in range(3 if preview_s is not None else 0):
        policy.record(preview_s, "preview", 64)
    run, seen = BlockingRun(block=(1,)), Delivered()
    s = PreviewScheduler(seen.callbacks(), run_fn=run, policy=policy)
    try:
        s.submit(Job(value=1, preview_size=64), "preview")
        assert run.entered.wait(10)
        s.submit(Job(value=2), "full")
        run.gate.set()
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert run.ran == [1, 2]
    assert seen.values == shown


def test_cancel_stops_the_running_job_and_drops_the_pending_one():
    run, seen = BlockingRun(block=(1,)), Delivered()
    s = PreviewScheduler(seen.callbacks(), run_fn=run)
    try:
        first = s.submit(Job(value=1))
        assert run.entered.wait(10)
        s.submit(Job(value=2), "preview")  # pending (and, over a full job, it cancels that one too)
        s.cancel()
        assert not s.is_current(first)
        run.gate.set()
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert run.ran == [1]
    assert seen.values == []


def test_slow_model_collapses_a_burst_into_its_newest_request():
    clock = FakeClock()
    run, seen = BlockingRun(), Delivered()
    s = PreviewScheduler(seen.callbacks(), run_fn=run, policy=slow_policy(clock))
    try:
        for value in (1, 2, 3):  # the fake clock stands still: the grace period never ends by itself
            s.submit(Job(value=value), "preview")
        assert run.ran == []
        clock.advance(0.5)  # the max wait has passed
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert run.ran == [3]
    assert seen.values == [3]


def test_close_returns_after_its_timeout_while_a_job_blocks():
    run = BlockingRun(block=(1,))
    s = PreviewScheduler(run_fn=run)
    s.submit(Job(value=1))
    assert run.entered.wait(10)
    t0 = time.monotonic()
    try:
        assert s.close(timeout=0.2) is False  # the job ignores cancellation until its gate opens
        assert time.monotonic() - t0 < 5.0  # it did not wait for the job
    finally:
        run.gate.set()
        s._executor.shutdown(wait=True)


def test_the_live_scheduler_starts_compiles_only_when_no_edit_waits():
    """Compiling (GIL-heavy tracing) starts when the worker goes idle, not between a drag's frames."""
    events: list[str] = []
    run = BlockingRun(block=(1,))

    def run_fn(request, ctx):
        out = run(request, ctx)
        events.append(f"ran {request.value}")
        ctx.models.compiler.request_done()  # what run_request does after each request
        return out

    s = PreviewScheduler(run_fn=run_fn)
    s.models.compiler.start = lambda: events.append("compile")
    try:
        s.submit(Job(value=1), "preview")
        assert run.entered.wait(10)
        s.submit(Job(value=2), "preview")  # the next frame of the drag is waiting
        run.gate.set()
        assert s.wait_idle(10)
    finally:
        assert s.close()
    assert events == ["ran 1", "ran 2", "compile"]
