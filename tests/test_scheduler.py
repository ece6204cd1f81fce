"""Latest-wins scheduler, tested deterministically with a blocking fake task (no sleeps)."""
from __future__ import annotations

import gc
import threading
import weakref
from dataclasses import dataclass

import numpy as np
import pytest

from engine.api import FrozenArray, InputError, Request, Result
from engine.scheduler import PreviewScheduler, SchedulerCallbacks


@dataclass(frozen=True)
class FakeRequest(Request):
    value: int = 0
    payload: FrozenArray | None = None


class Recorder:
    def __init__(self) -> None:
        self.results: list[Result] = []
        self.failures = []
        self.progress: list[tuple[int, str, float]] = []
        self.lock = threading.Lock()

    def callbacks(self) -> SchedulerCallbacks:
        return SchedulerCallbacks(on_result=self._res, on_failure=self._fail,
                                  on_progress=lambda rid, s, f: self.progress.append((rid, s, f)))

    def _res(self, r):
        with self.lock:
            self.results.append(r)

    def _fail(self, f):
        with self.lock:
            self.failures.append(f)


def image_of(v: int) -> np.ndarray:
    return np.full((2, 2, 3), v % 256, np.uint8)


@pytest.fixture
def gate():
    """The first job blocks until the test opens the gate."""
    started, release = threading.Event(), threading.Event()
    return started, release


def test_burst_of_1000_only_last_delivered(gate):
    started, release = gate
    seen: list[int] = []
    rec = Recorder()

    def run(req, ctx):
        seen.append(req.value)
        if req.value == 0:
            started.set()
            assert release.wait(10)
        ctx.progress("stage-1", 0.5)  # raises Cancelled when superseded
        return ctx.result(image_of(req.value))

    s = PreviewScheduler(rec.callbacks(), run_fn=run)
    try:
        s.submit(FakeRequest(value=0))
        assert started.wait(10)
        ids = [s.submit(FakeRequest(value=i)) for i in range(1, 1001)]
        release.set()
        assert s.wait_idle(30)
    finally:
        assert s.close()
    assert seen == [0, 1000]  # the 999 intermediate requests never ran
    assert [r.request_id for r in rec.results] == [ids[-1]]
    assert rec.results[0].image[0, 0, 0] == 1000 % 256
    assert rec.failures == []
    assert s.dropped == 1000  # 999 replaced while pending + the cancelled running one
    assert all(rid == ids[-1] for rid, _, _ in rec.progress)


def test_middle_request_cancelled_newest_shown(gate):
    started, release = gate
    rec = Recorder()
    ran = []

    def run(req, ctx):
        ran.append(req.value)
        if req.value == 1:
            started.set()
            release.wait(10)
        ctx.check()
        return ctx.result(image_of(req.value))

    s = PreviewScheduler(rec.callbacks(), run_fn=run)
    try:
        s.submit(FakeRequest(value=1))
        started.wait(10)
        s.submit(FakeRequest(value=2))
        last = s.submit(FakeRequest(value=3))
        release.set()
        s.wait_idle(10)
    finally:
        s.close()
    assert ran == [1, 3]
    assert [r.request_id for r in rec.results] == [last]


def test_errors_are_typed_results_and_worker_survives():
    rec = Recorder()

    def run(req, ctx):
        if req.value == 1:
            raise InputError("the mask has 3 channels; a label map must have one")
        if req.value == 2:
            raise ZeroDivisionError("boom")
        return ctx.result(image_of(req.value))

    s = PreviewScheduler(rec.callbacks(), run_fn=run)
    try:
        s.submit(FakeRequest(value=1))
        s.wait_idle(10)
        s.submit(FakeRequest(value=2))
        s.wait_idle(10)
        s.submit(FakeRequest(value=3))
        s.wait_idle(10)
    finally:
        s.close()
    kinds = [(f.kind, f.message) for f in rec.failures]
    assert kinds[0] == ("input", "the mask has 3 channels; a label map must have one")
    assert kinds[1][0] == "internal" and "ZeroDivisionError" in kinds[1][1]
    assert "Traceback" in rec.failures[1].detail
    assert [r.image[0, 0, 0] for r in rec.results] == [3]


def test_cancel_drops_running_result(gate):
    started, release = gate
    rec = Recorder()

    def run(req, ctx):
        started.set()
        release.wait(10)
        ctx.check()
        return ctx.result(image_of(1))

    s = PreviewScheduler(rec.callbacks(), run_fn=run)
    try:
        s.submit(FakeRequest(value=1))
        started.wait(10)
        s.cancel()
        release.set()
        s.wait_idle(10)
    finally:
        s.close()
    assert rec.results == [] and rec.failures == []


def test_requests_are_not_retained_and_submit_after_close_fails():
    rec = Recorder()
    s = PreviewScheduler(rec.callbacks(), run_fn=lambda req, ctx: ctx.result(image_of(0)))
    req = FakeRequest(value=5, payload=FrozenArray(np.zeros((256, 256, 3), np.uint8)))
    ref = weakref.ref(req)
    s.submit(req)
    del req
    assert s.wait_idle(10)
    gc.collect()
    assert ref() is None, "the scheduler kept a finished request alive"
    assert s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.submit(FakeRequest())


def test_request_value_equality_detects_no_change():
    a = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    r1 = FakeRequest(value=1, payload=FrozenArray(a))
    r2 = FakeRequest(value=1, payload=FrozenArray(a.copy()))
    b = a.copy()
    b[0, 0, 0] = 99
    assert r1 == r2 and hash(r1) == hash(r2)
    assert r1 != FakeRequest(value=1, payload=FrozenArray(b))
    assert not FrozenArray(a).array.flags.writeable


def test_gpu_out_of_memory_is_retried_on_cpu(monkeypatch):
    import torch

    import engine.scheduler as sched

    monkeypatch.setattr(sched, "pick_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    rec = Recorder()
    devices = []

    def run(req, ctx):
        devices.append(ctx.device.type)
        if ctx.device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return ctx.result(image_of(7))

    s = PreviewScheduler(rec.callbacks(), run_fn=run)
    try:
        s.submit(FakeRequest(device="cuda"))
        s.wait_idle(10)
    finally:
        s.close()
    assert devices == ["cuda", "cpu"]
    assert len(rec.results) == 1 and rec.results[0].device == "cpu"
    assert any("ran out of memory" in n for n in rec.results[0].notes)
