"""GUI shell: the main window opens and closes cleanly, the engine bridge marshals results to the
GUI thread, latest wins, and the status bar follows the engine."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from app.settings import Settings
from engine.api import InputError, Request
from engine.tasks import TaskContext

pytest.importorskip("pytestqt")

from app.engine_bridge import EngineBridge
from app.main import MainWindow, main


def make_result(request: Request, ctx: TaskContext, value: int):
    return ctx.result(np.full((8, 8, 3), value, np.uint8))


class BlockingEngine:
    """A fake run_fn: the first job blocks on a gate until released, then checks for cancellation."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.ran: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, request: Request, ctx: TaskContext):
        self.threads.add(threading.current_thread().name)
        self.ran.append(request.seed)
        if len(self.ran) == 1:
            self.entered.set()
            self.gate.wait(10)
        ctx.check()
        return make_result(request, ctx, request.seed)


def test_main_window_opens_and_closes_without_dangling_threads(qtbot):
    engine = BlockingEngine()
    win = MainWindow(Settings.defaults(), run_fn=engine, restore="no")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert win.tabs.count() >= 1
    assert win.device_label.text()  # device indicator shows something like "cpu"
    # a job is running when the window closes: close must cancel and join the worker
    win.bridge.submit("stargan", Request(seed=1))
    assert engine.entered.wait(5)
    engine.gate.set()
    win.close()
    assert win.bridge.session.scheduler._executor._shutdown
    assert not [t for t in threading.enumerate() if t.name.startswith("i2i-") and t.is_alive()]


def test_main_entry_point_runs_and_exits(qtbot, monkeypatch):
    assert main(["--quit-after", "50", "--restore", "no"]) == 0


def test_bridge_latest_wins_and_delivers_on_gui_thread(qtbot):
    engine = BlockingEngine()
    bridge = EngineBridge(Settings.defaults(), run_fn=engine)
    shown: list[tuple[str, int]] = []
    gui_thread = threading.current_thread()
    seen_threads: list[threading.Thread] = []

    def on_result(owner, result):
        seen_threads.append(threading.current_thread())
        shown.append((owner, int(result.image[0, 0, 0])))

    bridge.resultReady.connect(on_result)
    try:
        bridge.submit("ws", Request(seed=1))
        assert engine.entered.wait(5)
        bridge.submit("ws", Request(seed=2))  # pending, then replaced
        with qtbot.waitSignal(bridge.resultReady, timeout=5000,
                              check_params_cb=lambda owner, r: int(r.image[0, 0, 0]) == 3):
            bridge.submit("ws", Request(seed=3))
            engine.gate.set()
        qtbot.waitUntil(lambda: not bridge.busy, timeout=5000)
    finally:
        assert bridge.close(timeout=5)
    assert shown == [("ws", 3)]
    assert 2 not in engine.ran  # the middle request never started
    assert seen_threads == [gui_thread]
    assert all(name.startswith("i2i-engine") for name in engine.threads)


def test_bridge_holds_previews_while_a_preview_runs(qtbot):
    """A drag keeps refreshing: previews do not cancel a running preview; the newest one waits for
    it and runs next, the ones in between are dropped."""
    engine = BlockingEngine()
    bridge = EngineBridge(Settings.defaults(), run_fn=engine)
    shown: list[int] = []
    bridge.resultReady.connect(lambda owner, r: shown.append(int(r.image[0, 0, 0])))
    try:
        assert bridge.submit("ws", Request(seed=1), "preview") > 0
        assert engine.entered.wait(5)
        bridge.submit("ws", Request(seed=2), "preview")  # waits for the running preview
        bridge.submit("ws", Request(seed=3), "preview")  # replaces the waiting one
        engine.gate.set()
        qtbot.waitUntil(lambda: shown == [1, 3] and not bridge.busy, timeout=5000)
        assert engine.ran == [1, 3]
    finally:
        assert bridge.close(timeout=5)


def test_bridge_cancel_and_failures(qtbot):
    def failing(request: Request, ctx: TaskContext):
        raise InputError("the label map is empty")

    bridge = EngineBridge(Settings.defaults(), run_fn=failing)
    try:
        with qtbot.waitSignal(bridge.failed, timeout=5000) as blocker:
            bridge.submit("mask", Request())
        owner, failure = blocker.args
        assert owner == "mask" and failure.kind == "input" and "empty" in failure.message
        qtbot.waitUntil(lambda: not bridge.busy, timeout=5000)
    finally:
        bridge.close()


def test_preview_size_shrinks_when_previews_are_slow(qtbot):
    settings = Settings.defaults()
    settings.set("preview_size", 128)
    bridge = EngineBridge(settings, run_fn=lambda r, c: make_result(r, c, 0))
    try:
        policy = bridge.session.policy
        assert policy.wanted_preview_size() == 128
        policy.record(0.6, "preview", 128)
        policy.record(0.6, "preview", 128)
        assert 32 <= policy.wanted_preview_size() < 128
        for _ in range(6):
            policy.record(0.01, "preview", 128)
        assert policy.wanted_preview_size() == 128
        seen: list[int | None] = []

        def record(request: Request, ctx: TaskContext):
            seen.append(request.preview_size)
            return make_result(request, ctx, 0)

        bridge.session.scheduler._run_fn = record
        with qtbot.waitSignal(bridge.resultReady, timeout=5000):
            bridge.submit("w", Request(), "preview")
        with qtbot.waitSignal(bridge.resultReady, timeout=5000):
            bridge.submit("w", Request(), "full")
        assert seen == [128, None]
    finally:
        bridge.close()


@pytest.fixture
def tiny_stargan(weights_dir):
    from engine.families import get_family
    from engine.weights import Manifest, register_file, save_state_dicts

    torch.manual_seed(0)
    fam = get_family("stargan2")
    config = dict(fam.configs["tiny"])
    nets = fam.build(config)
    path = weights_dir / "sg_tiny.safetensors"
    save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
    register_file(Manifest(), name="sg_tiny", family="stargan2", config_name="tiny", config=config, path=path,
                  provenance={"kind": "trained-here", "command": "test"}, extra={"default": True})
    return "sg_tiny"


def test_stargan_workspace_end_to_end_with_real_engine(qtbot, tiny_stargan):
    settings = Settings.defaults()
    settings.set("threads", 1)
    win = MainWindow(settings, restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["stargan"]
    assert ws.weights.model == tiny_stargan
    assert [ws.domain.itemText(i) for i in range(ws.domain.count())] == ["a", "b"]
    src = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    with qtbot.waitSignal(ws.resultShown, timeout=20000) as blocker:
        ws.source.set_image(src)
    result = blocker.args[0]
    assert result.image.dtype == np.uint8 and result.image.shape == (32, 32, 3)
    assert ws.output.image is result.image
    qtbot.waitUntil(lambda: "cpu" in win.device_label.text(), timeout=5000)
    win.close()


def test_workspace_without_weights_names_the_import_command(qtbot, weights_dir):
    win = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win)
    ws = win.workspaces["stargan"]
    assert ws.weights.model == ""
    assert "i2i weights import 100000_nets_ema.ckpt" in ws.weights.missing
    assert "--family stargan2" in ws.weights.status.text()
    ws.source.set_image(np.zeros((16, 16, 3), np.uint8))
    assert "weights" in ws.hint.text() and ws.result is None
    win.close()


def test_long_sessions_survive_pyside_refcount_defect():
    """Tens of thousands of signal emissions and event-loop turns (a long painting session) must
    not abort the interpreter (PySide6 6.12.0 on CPython 3.11 over-releases None/True; the
    pyproject pin keeps that release out)."""
    import subprocess
    import sys

    code = (
        "import os; os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')\n"
        "import app\n"
        "from PySide6.QtCore import QObject, Signal\n"
        "from PySide6.QtWidgets import QApplication, QSlider\n"
        "a = QApplication([])\n"
        "class B(QObject):\n    s = Signal(object)\n"
        "b = B(); b.s.connect(lambda o: None)\n"
        "sl = QSlider(); sl.valueChanged.connect(lambda v: None)\n"
        "for i in range(12000):\n    b.s.emit(i); a.processEvents(); sl.setValue(i % 99)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-500:]


def test_scheduler_starts_a_request_submitted_while_the_worker_goes_idle():
    """A submit that lands while the drain loop is finishing (here: inside on_idle) must run; the
    bridge submits held previews exactly then."""
    from engine.scheduler import PreviewScheduler, SchedulerCallbacks

    idle_entered, idle_gate = threading.Event(), threading.Event()
    results: list[int] = []
    done = threading.Event()

    def on_idle():
        if not idle_entered.is_set():
            idle_entered.set()
            idle_gate.wait(5)

    def on_result(r):
        results.append(int(r.image[0, 0, 0]))
        if len(results) == 2:
            done.set()

    sched = PreviewScheduler(SchedulerCallbacks(on_result=on_result, on_idle=on_idle),
                             run_fn=lambda r, c: make_result(r, c, r.seed))
    try:
        sched.submit(Request(seed=1))
        assert idle_entered.wait(5)  # the worker found nothing pending and is going idle
        sched.submit(Request(seed=2))
        idle_gate.set()
        assert done.wait(5), f"the second request never ran (results: {results})"
        assert results == [1, 2]
    finally:
        idle_gate.set()
        assert sched.close(timeout=5)


def test_progress_shows_only_for_a_job_that_runs_a_while(qtbot, weights_dir, monkeypatch):
    import app.main as main_module

    win = MainWindow(Settings.defaults(), restore="no", autosave=False)
    qtbot.addWidget(win)
    now = [100.0]
    monkeypatch.setattr(main_module.time, "monotonic", lambda: now[0])
    win.bridge.started.emit("exemplar", 7)
    win.bridge.progress.emit("exemplar", "correspondence", 0.4)  # a live preview, 0 ms in
    assert not win.progress_bar.isVisibleTo(win)
    now[0] += main_module.PROGRESS_DELAY_S + 0.01
    win.bridge.progress.emit("exemplar", "translation", 0.6)  # the same job, still running
    assert win.progress_bar.isVisibleTo(win) and win.progress_bar.value() == 600
    win.close()
