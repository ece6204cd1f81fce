"""Render every studio workspace to ``docs/screenshots/<workspace>.png`` after a scripted session.

Runs offscreen (``QT_QPA_PLATFORM=offscreen``) unless a display is present (e.g. under
``xvfb-run``). Uses the weights registry as it is: a workspace whose family has no weights shows
the missing-weights message, which is what a user would see. Settings and autosaves go to a
temporary folder, never the user's.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--size 1400x820]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "assets" / "examples"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--size", default="1400x820", help="window size WxH")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each workspace's output")
    p.add_argument("--only", nargs="*", help="workspace keys to render (default: all)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["I2I_CONFIG_DIR"] = tempfile.mkdtemp(prefix="i2i-shots-")

    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.document import BACKGROUND
    from app.main import MainWindow
    from app.settings import Settings
    from engine.io import load_instance_map, load_label_map, load_openpose_json

    qapp = QApplication.instance() or QApplication(["i2i-studio"])
    from app.theme import apply_theme
    apply_theme(qapp, Settings.load().get("theme"))
    win = MainWindow(Settings.load(), restore="no", autosave=False)
    w, h = (int(v) for v in args.size.split("x"))
    win.resize(w, h)
    win.show()
    args.out.mkdir(parents=True, exist_ok=True)

    def pump(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def wait_output(ws, started: float) -> str:
        """Wait until this workspace shows a result newer than ``started`` or reports a problem."""
        deadline = time.monotonic() + args.timeout
        seen = len(ws.shown_request_ids)
        while time.monotonic() < deadline:
            pump(0.1)
            if not win.bridge.busy and (len(ws.shown_request_ids) > seen or ws.hint.text()):
                break
        pump(0.2)
        return ws.hint.text() or ("ok" if ws.result is not None else "no output")

    def class_index(palette, *names: str) -> int:
        for name in names:
            for i, n in enumerate(palette.names):
                if n.lower().split(";")[0].strip() == name:
                    return i
        return min(1, len(palette) - 1)

    def paint_scene_map(doc) -> None:
        """A landscape: sky, mountains, water, grass, a tree — using whatever classes exist."""
        pal = doc.palette
        hh, ww = doc.labels.shape
        y, x = np.mgrid[0:hh, 0:ww]
        labels = np.full((hh, ww), class_index(pal, "sky"), np.int32)
        labels[y > hh * (0.42 + 0.08 * np.sin(x / ww * 6))] = class_index(pal, "mountain", "hill")
        labels[y > hh * 0.62] = class_index(pal, "water", "sea", "river")
        labels[y > hh * 0.78] = class_index(pal, "grass", "field")
        inst = None
        if doc.instances is not None:
            inst = labels.copy()
        doc.replace(labels, inst, label="example map")
        tree = class_index(pal, "tree")
        doc.begin_stroke()
        for t in np.linspace(0, 1, 12):
            doc.stroke_to(ww * 0.75, hh * (0.80 - 0.35 * t), ww * 0.06, tree, 1)
        doc.end_stroke()

    def scripted(key: str, ws) -> None:
        if key == "exemplar":
            if ws.kind == "pose":
                kp = load_openpose_json(EXAMPLES / "maps" / "pose_000019.json")
                sy = ws.pose_doc.size[1] / 128  # uniform scale keeps the figure's proportions
                kp[:, 0] = (kp[:, 0] - 64) * sy + ws.pose_doc.size[0] / 2
                kp[:, 1] *= sy
                ws.pose_doc.set_keypoints(kp)
                ws.exemplar_map.load(EXAMPLES / "maps" / "pose_000039.json")
                ws.exemplar.load(EXAMPLES / "exemplars" / "pose_000039.png")
            elif ws.editor.doc.palette.names[:2] == ("background", "skin"):  # a face model
                ws.editor.load_map(EXAMPLES / "parsing" / "female_000019.png")
                ws.exemplar.load(EXAMPLES / "faces" / "female_000079.png")
                ws.exemplar_map.load(EXAMPLES / "parsing" / "female_000079.png")
            else:
                doc = ws.editor.doc
                if doc.palette.names[:3] == ("other", "sky", "cloud"):
                    ws.editor.load_map(EXAMPLES / "maps" / "scene_000019.png")
                    ws.exemplar_map.load(EXAMPLES / "maps" / "scene_000039.png")
                else:
                    paint_scene_map(doc)
                ws.exemplar.load(EXAMPLES / "exemplars" / "scene_000039.png")
        elif key == "edit":
            doc = ws.editor.doc
            if doc.palette.names[:2] == ("background", "skin"):  # a face model: widen the mouth
                ws.photo.load(EXAMPLES / "faces" / "female_000019.png")
                ws.photo_map.load(EXAMPLES / "parsing" / "female_000019.png")
                lip = class_index(doc.palette, "u_lip")
                doc.begin_stroke()
                doc.stroke_to(22, 46, 2, lip)
                doc.stroke_to(42, 46, 2, lip)
                doc.end_stroke()
            else:
                ws.photo.load(EXAMPLES / "exemplars" / "scene_000019.png")
                ws.photo_map.load(EXAMPLES / "maps" / "scene_000019.png")
                water = class_index(doc.palette, "water")
                doc.begin_stroke()
                doc.stroke_to(10, 110, 8, water)
                doc.stroke_to(118, 100, 8, water)
                doc.end_stroke()
            ws.output.divider = 0.5
        elif key == "makeup":
            ws.portrait.load(EXAMPLES / "faces" / "female_000019.png")
            ws.portrait_map.load(EXAMPLES / "parsing" / "female_000019.png")
            ws.exemplar.load(EXAMPLES / "faces" / "female_000079.png")
            ws.exemplar_map.load(EXAMPLES / "parsing" / "female_000079.png")
        elif key == "stargan":
            ws.source.load(EXAMPLES / "faces" / "female_000019.png")
            ws.reference.load(EXAMPLES / "faces" / "male_000039.png")
            ws.set_mode("interpolate")
            ws.b_from_reference.setChecked(True)
            if ws.domain.count() > 1:
                ws.domain.setCurrentIndex(1)
                ws.reference_domain.setCurrentIndex(1)
            ws.alpha.setValue(60)
        elif key == "panoptic":
            doc = ws.editor.doc
            if doc.palette.names[:3] == ("other", "sky", "cloud"):
                # a painted map: houses wall to wall, tree crowns and animals touching, 3-4 px flowers
                labels = load_label_map(EXAMPLES / "painted" / "painted_1.png")
                inst = load_instance_map(EXAMPLES / "painted" / "instances" / "painted_1.png")
                doc.replace(labels, inst)
                # paint one more instance of a thing class in the corner of the grass
                thing = sorted(doc.palette.things)[0] if doc.palette.things else 1
                ws.editor.canvas.set_label(thing)
                ws.editor.palette_list.select(thing)
                ws.editor.canvas.new_instance()
                doc.begin_stroke()
                doc.stroke_to(112, 118, 5, thing, ws.editor.canvas.current_instance)
                doc.stroke_to(120, 117, 5, thing, ws.editor.canvas.current_instance)
                doc.end_stroke()
            else:
                paint_scene_map(doc)
        elif key == "sketch":
            from engine.metrics import hand_sketches

            for name in ("cat", "mammal", "animals-nature"):
                if ws.class_combo.findText(name) >= 0:
                    ws.class_combo.setCurrentText(name)
                    break
            doc = ws.doc
            sx, sy = doc.size[0] / hand_sketches.CANVAS[0], doc.size[1] / hand_sketches.CANVAS[1]
            for stroke in hand_sketches.strokes("cat face"):  # the same freehand strokes as docs/quality
                doc.begin_stroke(stroke[0][0] * sx, stroke[0][1] * sy, hand_sketches.PEN)
                for x, y in stroke[1:]:
                    doc.stroke_to(x * sx, y * sy)
                doc.end_stroke()
        elif key == "scene":
            from engine.metrics import hand_sketches

            doc = ws.doc
            W, H = doc.size
            doc.begin_stroke(0, H * 0.55, 3, group=BACKGROUND)
            for x in np.linspace(0, W, 24):
                doc.stroke_to(x, H * (0.55 - 0.12 * math.sin(x / W * 5)))
            doc.end_stroke()
            doc.begin_stroke(W * 0.18 + 25, H * 0.15, 3, group=BACKGROUND)  # a cloud
            for t in np.linspace(0, 2 * math.pi, 20):
                doc.stroke_to(W * 0.18 + 25 * math.cos(t), H * 0.15 + 10 * math.sin(t))
            doc.end_stroke()
            # freehand objects (docs/quality's hand-drawn sketches) scaled into place: (name, class, x, y, side)
            placed = (("tree", "tree", 0.04, 0.36, 0.36), ("house", "house", 0.42, 0.42, 0.34),
                      ("sun", "sun", 0.72, 0.02, 0.24))
            for name, cls, x0, y0, side in placed:
                if ws.class_combo.findText(cls) < 0:
                    continue
                k = ws.add_object(cls)
                scale = side * min(W, H) / hand_sketches.CANVAS[0]
                for stroke in hand_sketches.strokes(name):
                    doc.begin_stroke(W * x0 + stroke[0][0] * scale, H * y0 + stroke[0][1] * scale, 3, group=k)
                    for x, y in stroke[1:]:
                        doc.stroke_to(W * x0 + x * scale, H * y0 + y * scale)
                    doc.end_stroke()

    # one shot per workspace, and the pose canvas: the Exemplar workspace on the first pose model
    shots = [(key, key, ws, "") for key, ws in win.workspaces.items()]
    exemplar_ws = win.workspaces.get("exemplar")
    if exemplar_ws is not None:
        combo = exemplar_ws.weights.combo
        pose_models = [combo.itemData(k) for k in range(combo.count())
                       if (e := exemplar_ws.weights.entries.get(combo.itemData(k))) is not None
                       and e.config.get("input_kind") == "pose"]
        if pose_models:
            shots.append(("pose", "exemplar", exemplar_ws, pose_models[0]))
    failures = 0
    for name, key, ws, model in shots:
        if args.only and name not in args.only:
            continue
        win.tabs.setCurrentIndex(list(win.workspaces).index(key))
        if model:
            ws.weights.combo.setCurrentIndex(ws.weights.combo.findData(model))
        pump(0.2)
        started = time.monotonic()
        try:
            scripted(key, ws)
        except Exception as exc:  # report and keep rendering the others
            print(f"{key}: scripted session failed: {type(exc).__name__}: {exc}")
            failures += 1
        status = wait_output(ws, started) if ws.weights.model else "no weights: " + ws.weights.missing
        path = args.out / f"{name}.png"
        win.grab().save(str(path))
        print(f"{name:<10} {status[:110]:<110} -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    win.shutdown()  # a scripted session: no "save changes?"
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
