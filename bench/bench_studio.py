"""Studio responsiveness (issue 8): painting a 512² label map at 60 Hz, fills, sketch strokes, and
the engine bridge's round trip, measured offscreen on this machine.

Per pointer move the mask canvas stamps a capsule between the previous and the current position
(vectorised), recolours only the dirty rectangle through the palette lookup table and repaints that
part of the widget. The table compares it with recolouring the whole map per move (what a naive
canvas does) against the 16.7 ms frame budget of a 60 Hz pointer.

Live, as felt (issue 17): the real main window, offscreen, driven like a user — brush strokes on
the exemplar and panoptic workspaces' maps, the StarGAN v2 interpolation slider dragged at 60 Hz — with
edit → image-shown latency p50 / p95 per workspace (an edit counts as shown when the first result
of a request submitted at or after it appears), the longest GUI-thread stall (a 5 ms heartbeat
timer on the GUI thread), and for StarGAN v2 the share of slider results that ran only the decoder.
First with the default models at their preview size, then (``--released``) with released-size
random-weight models at 256² (StarGAN v2 afhq, CoCosNet ade20k).

    i2i bench studio [--size 512] [--moves 240] [--live-only] [--released] [--edits 40]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.common import print_table, write_results

FRAME_MS = 1000 / 60


def stats(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"median_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            "max_ms": ms[-1]}


def drag_path(size: int, moves: int) -> list[tuple[float, float]]:
    """A looping drag across the map, ~6 px per move (a brisk 60 Hz stroke)."""
    c = size / 2
    return [(c + 0.38 * size * math.cos(t) + 20 * math.sin(5 * t), c + 0.38 * size * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, moves)]


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"


def percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]


def run_event_loop(seconds: float) -> None:
    """Run the GUI thread's event loop for ``seconds`` as the application would: asleep until an
    event or timer arrives (a polling loop would take a core from the engine it measures)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(0, round(seconds * 1000)), loop.quit)
    loop.exec()


class LiveProbe:
    """Edit → image-shown latencies and GUI-thread stalls while a workspace is driven."""

    def __init__(self, window, workspace) -> None:  # Qt objects
        from PySide6.QtCore import QTimer

        self.window, self.ws = window, workspace
        self.edits: list[tuple[float, int]] = []  # (time of the edit, newest request id before it)
        self.shown: list[tuple[float, int, dict]] = []
        self.shown_sides: list[int] = []  # the longer side of each shown image (drag previews may be smaller)
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        workspace.resultShown.connect(self._on_shown)
        self.beat = QTimer()
        self.beat.setInterval(5)
        self.beat.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def _on_shown(self, result) -> None:
        self.shown.append((time.perf_counter(), result.request_id, dict(result.timings)))
        self.shown_sides.append(int(max(result.image.shape[:2])))

    def edit(self, fn, pace_s: float) -> None:
        self.edits.append((time.perf_counter(), self.window.bridge.latest_id))
        fn()
        run_event_loop(pace_s)

    def settle(self, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            run_event_loop(0.01)
            if not self.window.bridge.busy and not self.ws.awaiting:
                return True
        return False

    def latencies(self) -> list[float]:
        return edit_latencies(self.edits, [(ts, rid) for ts, rid, _ in self.shown])


def edit_latencies(edits: list[tuple[float, int]], shown: list[tuple[float, int]]) -> list[float]:
    """Per edit (time, newest request id before it): seconds until the first image shown from a
    request submitted after it (a newer request id: the edit's own, or a later one that includes
    it). Edits never followed by such an image are left out (the caller reports how many)."""
    out = []
    for t, before in edits:
        seen = [ts for ts, rid in shown if rid > before and ts >= t]
        if seen:
            out.append(min(seen) - t)
    return out


def released_models(weights_dir: Path) -> dict[str, str]:
    """Random-weight StarGAN v2 afhq and CoCosNet ade20k (released sizes) registered as defaults."""
    import torch

    from engine.nets import cocosnet as cc
    from engine.nets import stargan2 as sg
    from engine.train.common import he_init
    from engine.weights import Manifest, register_file, save_state_dicts

    manifest = Manifest(weights_dir)
    torch.manual_seed(0)
    sg_nets = sg.build(sg.CONFIGS["afhq"], with_discriminator=False)
    for m in sg_nets.values():
        he_init(m)
    cc_nets = cc.build(cc.CONFIGS["ade20k"])
    del cc_nets["netD"]
    out = {}
    for name, family, config_name, config, nets in (
            ("afhq_random", "stargan2", "afhq", sg.CONFIGS["afhq"], sg_nets),
            ("ade20k_random", "cocosnet", "ade20k", cc.CONFIGS["ade20k"], cc_nets)):
        path = weights_dir / f"{name}.safetensors"
        save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
        register_file(manifest, name=name, family=family, config_name=config_name, config=config, path=path,
                      provenance={"kind": "trained-here", "command": "bench studio: random weights"},
                      extra={"default": True})
        out[family] = name
    return out


def live_latency(label: str, edits: int, *, settle_s: float, preview_size: int | None,
                 compile_wait_s: float, threads: int = 2, panoptic: bool = True) -> list[dict]:
    """Drive the real window: strokes on the exemplar and panoptic maps, the StarGAN v2 slider."""
    from PySide6.QtWidgets import QApplication

    from app.main import MainWindow
    from app.settings import Settings

    def window() -> MainWindow:
        # one window per workspace: the scheduler's debounce follows its rolling mean job time,
        # which would otherwise carry over from the previous workspace's model
        settings = Settings.defaults()
        settings.set("threads", threads)
        if preview_size is not None:
            settings.set("preview_size", preview_size)
        win = MainWindow(settings, restore="no", autosave=False)
        win.resize(1400, 900)
        win.show()
        QApplication.processEvents()
        return win

    rows = []
    win = window()
    try:
        # ---- exemplar workspace: brush strokes on the label map
        ws = win.workspaces["exemplar"]
        win.tabs.setCurrentWidget(ws)
        ws.exemplar.load(EXAMPLES / "exemplars" / "scene_000019.png")
        if ws.exemplar_map.image is None:
            ws.exemplar_map.load(EXAMPLES / "maps" / "scene_000019.png")
        rows.append(_brush_strokes(win, ws, ws.editor.canvas, (1, 2, 3, 4, 5), edits, settle_s, compile_wait_s,
                                   f"{label}: exemplar: brush strokes"))
    finally:
        win.shutdown()  # a scripted session: no "save changes?"
        win.close()
    if panoptic:  # no panoptic model was released: only the trained default
        win = window()
        try:
            # ---- panoptic workspace: brush strokes (stuff and thing classes) on a painted map
            from engine.io import load_instance_map, load_label_map

            ws = win.workspaces["panoptic"]
            win.tabs.setCurrentWidget(ws)
            doc = ws.editor.doc
            if doc.palette.names[:3] == ("other", "sky", "cloud"):  # the scenes palette of the default model
                doc.replace(load_label_map(EXAMPLES / "painted" / "painted_1.png"),
                            load_instance_map(EXAMPLES / "painted" / "instances" / "painted_1.png"))
            things = sorted(doc.palette.things)
            classes = (6, things[0], 3, things[-1], 4) if things else (1, 2, 3, 4, 5)
            rows.append(_brush_strokes(win, ws, ws.editor.canvas, classes, edits, settle_s, compile_wait_s,
                                       f"{label}: panoptic: brush strokes"))
        finally:
            win.shutdown()
            win.close()
    win = window()
    try:
        # ---- StarGAN v2: drag the interpolation slider
        ws = win.workspaces["stargan"]
        win.tabs.setCurrentWidget(ws)
        ws.set_mode("interpolate")
        ws.source.load(sorted((EXAMPLES / "faces").glob("*.png"))[0])
        probe = LiveProbe(win, ws)
        ok = probe.settle(settle_s)

        def drag(values: list[int]) -> None:
            ws.alpha.setSliderDown(True)
            for v in values:
                probe.edit(lambda v=v: ws.alpha.setValue(v), 1 / 60)
            probe.edit(lambda: ws.alpha.setSliderDown(False), 1 / 60)
            probe.settle(settle_s)

        waited = _warm_up(win, lambda: drag([40, 45, 50, 55, 60, 65, 70, 75]), compile_wait_s)
        probe.edits.clear()
        probe.gaps.clear()
        probe.shown.clear()
        probe.shown_sides.clear()
        probe.beat.start()
        drag([(5 + 3 * i) % 100 for i in range(edits)])
        probe.beat.stop()
        row = _live_row(f"{label}: stargan: interpolation slider drag", probe, ok, waited, win)
        slider = [t for _, _, t in probe.shown]
        row["decoder_only_results"] = sum(1 for t in slider if "decode" in t and "encode" not in t and "masks" not in t)
        rows.append(row)
    finally:
        win.shutdown()  # a scripted session: no "save changes?"
        win.close()
    return rows


def _brush_strokes(win, ws, canvas, classes: tuple[int, ...], edits: int, settle_s: float, compile_wait_s: float,
                   case: str) -> dict:
    """Strokes of 10 pointer moves at 60 Hz across a workspace's map canvas, class by class."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    probe = LiveProbe(win, ws)
    ok = probe.settle(settle_s)
    w, h = canvas.width(), canvas.height()

    def stroke(k: int, moves: int) -> None:
        pts = [QPoint(int(w * (0.2 + 0.6 * i / moves)), int(h * (0.3 + 0.4 * ((i + k * 7) % moves) / moves)))
               for i in range(moves + 1)]
        canvas.current_label = classes[k % len(classes)]
        probe.edit(lambda: QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=pts[0]), 1 / 60)
        for p in pts[1:]:
            probe.edit(lambda p=p: QTest.mouseMove(canvas, p), 1 / 60)
        probe.edit(lambda: QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=pts[-1]), 1 / 60)
        probe.settle(settle_s)

    # warm-up: model load, exemplar features, the drag size the live policy settles on and
    # (where enabled) the compile of each stage at that size, asked for after a few slow eager calls
    waited = _warm_up(win, lambda: (stroke(0, 10), stroke(0, 10)), compile_wait_s)
    probe.edits.clear()
    probe.shown.clear()
    probe.shown_sides.clear()
    probe.gaps.clear()
    probe.beat.start()
    per_stroke = 10
    for k in range(max(1, edits // per_stroke)):
        stroke(k + 1, per_stroke)
    probe.beat.stop()
    return _live_row(case, probe, ok, waited, win)


def _warm_up(win, edit, compile_wait_s: float, rounds: int = 4) -> float:
    """Repeat ``edit`` until a round starts no new compile (the drag size has settled and its stages
    are compiled), at most ``rounds`` times; returns the seconds spent waiting for compiles."""
    compiler = win.bridge.session.scheduler.models.compiler
    waited = 0.0
    for _ in range(rounds):
        before = len(compiler.records)
        edit()
        waited += _wait_compiled(win, compile_wait_s)
        if len(compiler.records) == before:
            break
    return waited


def _wait_compiled(win, timeout_s: float) -> float:
    """Let background compilation (I2I_COMPILE) finish before measuring the steady state."""
    compiler = win.bridge.session.scheduler.models.compiler
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s and not compiler.wait(0):
        run_event_loop(0.05)  # asleep between checks, as the application's event loop is
    return time.perf_counter() - t0


def _live_row(case: str, probe: LiveProbe, settled: bool, compile_wait_s: float, win) -> dict:
    lat = [v * 1000 for v in probe.latencies()]
    compiler = win.bridge.session.scheduler.models.compiler
    return {"case": case, "edits": len(probe.edits), "shown_edits": len(lat),
            "p50_ms": percentile(lat, 50) if lat else None, "p95_ms": percentile(lat, 95) if lat else None,
            "max_ms": max(lat) if lat else None,
            "gui_stall_max_ms": max(probe.gaps[1:]) * 1000 if len(probe.gaps) > 1 else None,
            "model": probe.ws.weights.model, "preview_size": win.settings.get("preview_size"),
            "compile_mode": compiler.mode, "compiled_stages": [r.stage for r in compiler.records if r.ok],
            "compile_wait_s": round(compile_wait_s, 1), "first_result_in_time": settled,
            "results": len(probe.shown), "result_sides": dict(sorted(Counter(probe.shown_sides).items())),
            "stage_p50_ms": stage_medians([t for _, _, t in probe.shown])}


def stage_medians(timings: list[dict]) -> dict[str, float]:
    """Median milliseconds per stage over the shown results (a stage absent from a result counts as 0)."""
    stages = sorted({k for t in timings for k in t})
    return {k: round(statistics.median(t.get(k, 0.0) for t in timings) * 1000, 1) for k in stages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--moves", type=int, default=240)
    ap.add_argument("--brush", type=int, default=24)
    ap.add_argument("--edits", type=int, default=40, help="edits per workspace in the live-latency part")
    ap.add_argument("--live-only", action="store_true", help="only the live edit → image latency part")
    ap.add_argument("--released", action="store_true",
                    help="also released-size random-weight models at 256² (slow: seconds per image on a CPU)")
    ap.add_argument("--threads", type=int, default=2, help="the engine's threads (the studio's Threads setting)")
    ap.add_argument("--compile-wait", type=float, default=600,
                    help="seconds to let background compilation finish before measuring (I2I_COMPILE)")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from PySide6.QtWidgets import QApplication

    qapp = QApplication.instance() or QApplication([])
    live: list[dict] = []
    from engine.devices import CPU_FLAGS_OF_INTEREST, cpu_flags, cpu_name

    live += live_latency("default models", args.edits, settle_s=120, preview_size=None,
                         compile_wait_s=args.compile_wait, threads=args.threads)
    if args.released:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get("I2I_WEIGHTS_DIR")
            os.environ["I2I_WEIGHTS_DIR"] = tmp
            try:
                released_models(Path(tmp))
                live += live_latency("released size 256², random weights", max(10, args.edits // 2), settle_s=600,
                                     preview_size=256, compile_wait_s=args.compile_wait, threads=args.threads,
                                     panoptic=False)
            finally:
                if old is None:
                    os.environ.pop("I2I_WEIGHTS_DIR", None)
                else:
                    os.environ["I2I_WEIGHTS_DIR"] = old
    print_table(live, ["case", "edits", "shown_edits", "p50_ms", "p95_ms", "max_ms", "gui_stall_max_ms",
                       "preview_size", "compile_mode"])
    meta = {"cpu": cpu_name(), "cpu_flags": [f for f in CPU_FLAGS_OF_INTEREST if f in cpu_flags()],
            "loadavg": list(os.getloadavg()), "engine_threads": args.threads, "live": live}
    if args.live_only:
        out = write_results("studio_live", meta)
        print(f"wrote {out}")
        return 0

    from app.canvases.mask import MaskCanvas
    from app.document import LabelDocument, SketchDocument
    from app.mask_editor import palette_for
    from engine.io import load_palette

    rows: list[dict] = []
    path = drag_path(args.size, args.moves)

    for mode, palette, panoptic in (("semantic (ADE20k 151)", load_palette("ade20k"), False),
                                    ("panoptic (scenes 16)", palette_for("scenes"), True)):
        doc = LabelDocument((args.size, args.size), palette, panoptic=panoptic)
        canvas = MaskCanvas(doc, brush_size=args.brush)
        canvas.resize(args.size, args.size)
        canvas.show()
        qapp.processEvents()
        label = sorted(palette.things)[0] if panoptic and palette.things else 5
        per_move, full = [], []
        doc.begin_stroke()
        for x, y in path:
            t0 = time.perf_counter()
            rect = doc.stroke_to(x, y, args.brush / 2, label, 1)  # stamps, recolours the rect, schedules repaint
            if rect is not None:
                canvas.repaint(canvas.view_rect(rect))  # paint now, to include the painting cost
            per_move.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        doc.end_stroke()
        end_s = time.perf_counter() - t0
        for _ in range(20):  # the naive alternative: recolour and repaint everything per move
            t0 = time.perf_counter()
            canvas._recolour(doc.full_rect())
            canvas.repaint()
            full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        doc.fill(2, 2, 3)
        fill_s = time.perf_counter() - t0
        s, f = stats(per_move), stats(full)
        rows.append({"case": f"{mode}: brush move", **s, "frames_missed": sum(v * 1000 > FRAME_MS for v in per_move),
                     "moves": len(per_move)})
        rows.append({"case": f"{mode}: full recolour+repaint", **f})
        rows.append({"case": f"{mode}: stroke end (undo delta)", "median_ms": end_s * 1000})
        rows.append({"case": f"{mode}: flood fill", "median_ms": fill_s * 1000})
        canvas.close()

    sk = SketchDocument((args.size, args.size))
    ends, renders = [], []
    for k in range(20):
        sk.begin_stroke(*path[0], 4)
        for x, y in path[1:80]:
            sk.stroke_to(x + k, y)
        t0 = time.perf_counter()
        sk.end_stroke()
        ends.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sk.render()
        renders.append(time.perf_counter() - t0)
    rows.append({"case": "sketch: stroke end (smoothing)", **stats(ends)})
    rows.append({"case": f"sketch: rasterise {len(sk.strokes)} strokes", **stats(renders)})

    from PySide6.QtCore import QEventLoop, QTimer

    from app.engine_bridge import EngineBridge
    from app.settings import Settings
    from engine.api import Request

    bridge = EngineBridge(Settings.defaults(), run_fn=lambda r, c: c.result(np.zeros((8, 8, 3), np.uint8)))
    trips = []
    for i in range(50):
        loop = QEventLoop()
        bridge.resultReady.connect(loop.quit)
        t0 = time.perf_counter()
        bridge.submit("bench", Request(seed=i))
        QTimer.singleShot(2000, loop.quit)
        loop.exec()
        trips.append(time.perf_counter() - t0)
        bridge.resultReady.disconnect(loop.quit)
    bridge.close()
    rows.append({"case": "bridge: submit -> result on GUI thread", **stats(trips)})

    print(f"map {args.size}², brush {args.brush} px, {args.moves} pointer moves; 60 Hz budget {FRAME_MS:.1f} ms")
    print_table(rows, ["case", "median_ms", "p99_ms", "max_ms", "frames_missed", "moves"])
    out = write_results("studio", {"size": args.size, "brush": args.brush, "frame_budget_ms": FRAME_MS, "rows": rows,
                                   **meta})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
