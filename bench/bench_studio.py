"""Studio responsiveness (issue 8): painting a 512² label map at 60 Hz, fills, sketch strokes, and
the engine bridge's round trip, measured offscreen on this machine.

Per pointer move the mask canvas stamps a capsule between the previous and the current position
(vectorised), recolours only the dirty rectangle through the palette lookup table and repaints that
part of the widget. The table compares it with recolouring the whole map per move (what a naive
canvas does) against the 16.7 ms frame budget of a 60 Hz pointer.

    i2i bench studio [--size 512] [--moves 240]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import print_table, write_results  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--moves", type=int, default=240)
    ap.add_argument("--brush", type=int, default=24)
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from PySide6.QtWidgets import QApplication

    from app.canvases.mask import MaskCanvas
    from app.document import LabelDocument, SketchDocument
    from app.mask_editor import palette_for
    from engine.io import load_palette

    qapp = QApplication.instance() or QApplication([])
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

    from app.engine_bridge import EngineBridge
    from engine.api import Request
    from engine.settings import Settings
    from PySide6.QtCore import QEventLoop, QTimer

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
    out = write_results("studio", {"size": args.size, "brush": args.brush, "frame_budget_ms": FRAME_MS, "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
