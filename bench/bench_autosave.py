"""Autosave and the GUI thread (issue 18): with an 8000×8000 16-bit exemplar loaded, how long does
the GUI thread stall while the session is autosaved?

A 5 ms QTimer heartbeat runs on the GUI thread; the longest gap between its ticks is the longest
stall. Three cases, in one run on one machine:

* baseline: the autosave as it was before issue 18 (``save_project`` of commit
  ``BASELINE_COMMIT``, read from git, called on the GUI thread: every array encoded on each save);
* worker, first autosave: the GUI snapshots the documents, the autosave thread hashes and encodes
  the photo once and writes atomically;
* worker, next autosave after an edit: the photo is found by its content hash and not encoded again.

    i2i bench autosave [--size 8000] [--keep-image PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402 - after sys.path gets the repo root

from bench.common import print_table, write_results  # noqa: E402 - after sys.path gets the repo root

BASELINE_COMMIT = "47d24aa"  # the last commit before the autosave worker
STALL_GOAL_MS = 50.0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_exemplar(path: Path, size: int) -> None:
    """A 16-bit RGB photo-like image (smooth gradients, texture, sensor noise) written with cv2."""
    import cv2

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.uint16)
    for c, (fx, fy) in enumerate(((3.0, 1.0), (1.5, 2.5), (0.7, 4.0))):
        plane = 0.5 + 0.25 * np.sin(2 * np.pi * fx * x) * np.cos(2 * np.pi * fy * y) + 0.2 * (x * y)
        plane += rng.normal(0, 0.01, (size, size)).astype(np.float32)
        img[..., c] = np.clip(plane * 65535, 0, 65535).astype(np.uint16)
    del y, x
    cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 1])


def baseline_save_project():
    """``save_project`` as it was at BASELINE_COMMIT (the synchronous autosave's writer)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE_COMMIT}:app/project.py"],
                         capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("baseline_project")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(src, f"{BASELINE_COMMIT}:app/project.py", "exec"), module.__dict__)
    return module.save_project


class Heartbeat:
    """A 5 ms timer on the GUI thread; ``max_gap_ms`` is the longest time between two ticks."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        self.gaps.append(now - self._last)
        self._last = now

    def run_until(self, done, start=None, timeout_s: float = 600.0) -> tuple[float, float]:
        """Spin the event loop with the heartbeat until ``done()``; (max gap ms, wall s). ``start``
        runs inside the loop (as a timer slot would)."""
        from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

        self.gaps = []
        self.clock.start()
        self._last = 0.0
        self.timer.start()
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(5)
        poll.timeout.connect(lambda: loop.quit() if done() else None)
        t0 = time.perf_counter()
        if start is not None:
            QTimer.singleShot(20, start)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        poll.start()
        loop.exec()
        poll.stop()
        wall = time.perf_counter() - t0
        QCoreApplication.processEvents()
        self.timer.stop()
        return (max(self.gaps[1:]) if len(self.gaps) > 1 else wall * 1000), wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8000, help="exemplar width and height (default 8000)")
    ap.add_argument("--repeats", type=int, default=3, help="first autosaves, each with an empty cache")
    ap.add_argument("--keep-image", type=Path, default=None, help="reuse / keep the generated 16-bit PNG here")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="i2i-bench-autosave-"))
    os.environ["I2I_CONFIG_DIR"] = str(tmp / "config")
    os.environ["I2I_WEIGHTS_DIR"] = str(tmp / "weights")  # no models: nothing but the autosave runs
    (tmp / "weights").mkdir()

    image_path = args.keep_image or tmp / "exemplar16.png"
    if not image_path.exists():
        t0 = time.perf_counter()
        make_exemplar(image_path, args.size)
        print(f"wrote a {args.size}×{args.size} 16-bit RGB exemplar in {time.perf_counter() - t0:.1f} s")

    from PySide6.QtWidgets import QApplication

    from app.main import MainWindow
    from app.settings import Settings

    _qapp = QApplication.instance() or QApplication([])  # held: the windows need a live QApplication
    settings = Settings.defaults()
    settings.set("autosave_s", 0)  # the benchmark starts each autosave itself
    win = MainWindow(settings, run_fn=lambda r, c: c.result(np.zeros((8, 8, 3), np.uint8)), restore="no")
    ws = win.workspaces["exemplar"]
    t0 = time.perf_counter()
    assert ws.exemplar.load(image_path), ws.exemplar.error
    load_s = time.perf_counter() - t0
    exemplar = ws.exemplar.image
    print(f"exemplar in the studio: {exemplar.shape[1]}×{exemplar.shape[0]} {exemplar.dtype} "
          f"({exemplar.nbytes / 2**20:.0f} MiB), loaded in {load_s:.1f} s")

    beat = Heartbeat()
    rows = []

    # baseline: the pre-issue synchronous autosave on the GUI thread
    old_save = baseline_save_project()
    done = {"baseline": False}

    def old_autosave() -> None:
        old_save(win.guard.autosave, win.project())
        done["baseline"] = True

    gap, wall = beat.run_until(lambda: done["baseline"], start=old_autosave)
    rows.append({"case": f"baseline ({BASELINE_COMMIT}): save on the GUI thread", "max_stall_ms": gap,
                 "wall_s": wall, "file_mib": win.guard.autosave.stat().st_size / 2**20})

    # the worker: first autosaves (hash + encode the photo; repeated with an empty cache, since a
    # shared machine's load varies), then one after a small edit (the photo comes from the cache)
    from app.project import MediaCache

    doc = ws.editor.doc
    cases = [f"worker: first autosave (photo encoded), run {k + 1}" for k in range(args.repeats)]
    for i, case in enumerate([*cases, "worker: next autosave after an edit"]):
        if i < args.repeats:
            win.autosaver.cache = MediaCache()
        doc.begin_stroke()
        doc.stroke_to(30 + 10 * i, 30, 8, 3)
        doc.end_stroke()
        holder: dict[str, object] = {}
        gap, wall = beat.run_until(lambda holder=holder: "f" in holder and holder["f"].done(),
                                   start=lambda holder=holder: holder.__setitem__("f", win.autosave()))
        assert holder["f"].result() is True
        rows.append({"case": case, "max_stall_ms": gap, "wall_s": wall,
                     "file_mib": win.guard.autosave.stat().st_size / 2**20, "encodes": win.autosaver.cache.encodes})

    # the GUI-thread share of an autosave: the snapshot (project()) alone
    t0 = time.perf_counter()
    for _ in range(5):
        win.project()
    snapshot_ms = (time.perf_counter() - t0) / 5 * 1000
    rows.append({"case": "GUI thread: snapshot of all workspaces", "max_stall_ms": snapshot_ms})
    win.shutdown()  # (close() would ask "save changes?")

    worker_rows = [r for r in rows if r["case"].startswith("worker")]
    worst = max(r["max_stall_ms"] for r in worker_rows)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}); heartbeat 5 ms; "
          f"goal: longest stall < {STALL_GOAL_MS:.0f} ms")
    print_table(rows, ["case", "max_stall_ms", "wall_s", "file_mib", "encodes"])
    print(f"longest GUI stall with the worker: {worst:.1f} ms "
          f"({'meets' if worst < STALL_GOAL_MS else 'MISSES'} the {STALL_GOAL_MS:.0f} ms goal); "
          f"baseline {rows[0]['max_stall_ms']:.0f} ms")
    out = write_results("autosave", {"cpu": cpu_name(), "size": args.size, "exemplar_dtype_on_disk": "uint16 RGB PNG",
                                     "exemplar_in_studio": f"{exemplar.shape} {exemplar.dtype}",
                                     "load_s": load_s, "load_average_1min": os.getloadavg()[0],
                                     "goal_ms": STALL_GOAL_MS, "baseline_commit": BASELINE_COMMIT,
                                     "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
