"""Document models of the canvases, in numpy and free of Qt: label/panoptic maps, sketches, poses.

Widgets paint these and turn pointer events into calls here; every call returns the dirty
rectangle so a widget repaints only what changed. Edits are recorded as undoable deltas
(indices, old values, new values) grouped per stroke.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from engine.api import OPENPOSE_JOINTS, OPENPOSE_LIMBS, THING_MULTIPLIER, Palette

from .undo import CallbackEdit, UndoStack

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
MaskTool = Literal["brush", "eraser", "fill", "picker"]


def union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


# ------------------------------------------------------------------------------------------------
# Label map (semantic) with an optional panoptic instance map
# ------------------------------------------------------------------------------------------------
class MapDelta:
    """One stroke or fill: flat indices with old and new labels (and instance ids)."""

    def __init__(self, doc: LabelDocument, label: str, idx: np.ndarray, old_l: np.ndarray,
                 new_l: np.ndarray, old_i: np.ndarray | None, new_i: np.ndarray | None, rect: Rect) -> None:
        self.doc, self.label, self.idx, self.rect = doc, label, idx, rect
        self.old_l, self.new_l, self.old_i, self.new_i = old_l, new_l, old_i, new_i

    def _apply(self, labels: np.ndarray, inst: np.ndarray | None) -> None:
        self.doc.labels.reshape(-1)[self.idx] = labels
        if inst is not None and self.doc.instances is not None:
            self.doc.instances.reshape(-1)[self.idx] = inst
        self.doc.notify(self.rect)

    def undo(self) -> None:
        self._apply(self.old_l, self.old_i)

    def redo(self) -> None:
        self._apply(self.new_l, self.new_i)


class LabelDocument:
    """An H×W semantic label map (int32), plus an instance-id map in panoptic mode."""

    def __init__(self, size: tuple[int, int], palette: Palette, *, panoptic: bool = False,
                 fill: int = 0, undo_limit: int = 200) -> None:
        w, h = size
        self.palette = palette
        self.labels = np.full((h, w), fill, np.int32)
        self.instances: np.ndarray | None = self._stuff_ids(self.labels) if panoptic else None
        self.history = UndoStack(undo_limit)
        self._listeners: list = []
        self._stroke_start: tuple[np.ndarray, np.ndarray | None] | None = None
        self._stroke_rect: Rect | None = None
        self._last_point: tuple[float, float] | None = None

    # -------------------------------------------------------------- basics
    @property
    def size(self) -> tuple[int, int]:
        return self.labels.shape[1], self.labels.shape[0]

    @property
    def panoptic(self) -> bool:
        return self.instances is not None

    def on_change(self, fn) -> None:
        """``fn(rect)`` after every change of the map (painting, undo, load)."""
        self._listeners.append(fn)

    def notify(self, rect: Rect | None) -> None:
        for fn in self._listeners:
            fn(rect)

    def full_rect(self) -> Rect:
        return (0, 0, self.labels.shape[1], self.labels.shape[0])

    def is_thing(self, label: int) -> bool:
        return label in self.palette.things

    @staticmethod
    def _stuff_ids(labels: np.ndarray) -> np.ndarray:
        return labels.astype(np.int32).copy()

    def instance_for(self, label: int, instance: int) -> int:
        """The panoptic id painted for ``label``: c*1000+k for thing classes, c for stuff."""
        if label == 0 or not self.is_thing(label):
            return label
        return label * THING_MULTIPLIER + max(1, instance)

    def new_instance(self, label: int) -> int:
        """The next unused instance number k of thing class ``label``."""
        if self.instances is None:
            return 1
        ids = self.instances[(self.instances // THING_MULTIPLIER) == label]
        ks = ids % THING_MULTIPLIER
        return int(ks.max()) + 1 if ks.size else 1

    def pick(self, x: int, y: int) -> tuple[int, int]:
        """(label, instance number) under a pixel."""
        x, y = self._clip(x, y)
        label = int(self.labels[y, x])
        inst = 0 if self.instances is None else int(self.instances[y, x])
        return label, (inst % THING_MULTIPLIER if inst >= THING_MULTIPLIER else 0)

    def _clip(self, x: float, y: float) -> tuple[int, int]:
        h, w = self.labels.shape
        return int(min(max(x, 0), w - 1)), int(min(max(y, 0), h - 1))

    # -------------------------------------------------------------- whole-map edits
    def replace(self, labels: np.ndarray, instances: np.ndarray | None = None, *,
                record: bool = True, label: str = "load map") -> None:
        """Swap in a new map (loading a file); undoable as one step when ``record``."""
        labels = np.asarray(labels, dtype=np.int32)
        if labels.ndim != 2:
            raise ValueError(f"a label map must be 2-D, got shape {labels.shape}")
        old = (self.labels, self.instances)
        new_inst: np.ndarray | None = None
        if self.instances is not None:
            new_inst = (np.asarray(instances, np.int32) if instances is not None
                        else self._stuff_ids(labels))
            if new_inst.shape != labels.shape:
                raise ValueError(f"instance map {new_inst.shape} and label map {labels.shape} differ in size")
        new = (labels.copy(), None if new_inst is None else new_inst.copy())

        def apply(state: tuple[np.ndarray, np.ndarray | None]) -> None:
            self.labels, self.instances = state[0].copy(), None if state[1] is None else state[1].copy()
            self.notify(None)

        apply(new)
        if record:
            self.history.push(CallbackEdit(label, lambda: apply(old), lambda: apply(new)))

    # -------------------------------------------------------------- strokes
    def begin_stroke(self) -> None:
        self._stroke_start = (self.labels.copy(), None if self.instances is None else self.instances.copy())
        self._stroke_rect = None
        self._last_point = None

    @property
    def in_stroke(self) -> bool:
        return self._stroke_start is not None

    def stroke_to(self, x: float, y: float, radius: float, label: int, instance: int = 1) -> Rect | None:
        """Stamp the brush from the previous pointer position to (x, y); returns the dirty rect."""
        if self._stroke_start is None:
            self.begin_stroke()
        p0 = self._last_point or (x, y)
        self._last_point = (x, y)
        rect = self._stamp_segment(p0, (x, y), radius, label, self.instance_for(label, instance))
        self._stroke_rect = union(self._stroke_rect, rect)
        if rect is not None:
            self.notify(rect)
        return rect

    def _stamp_segment(self, p0: tuple[float, float], p1: tuple[float, float], radius: float,
                       label: int, inst_id: int) -> Rect | None:
        """Vectorised capsule stamp: every pixel centre within ``radius`` of the segment p0-p1."""
        h, w = self.labels.shape
        r = max(float(radius), 0.5)
        x0 = max(int(np.floor(min(p0[0], p1[0]) - r)), 0)
        y0 = max(int(np.floor(min(p0[1], p1[1]) - r)), 0)
        x1 = min(int(np.ceil(max(p0[0], p1[0]) + r)) + 1, w)
        y1 = min(int(np.ceil(max(p0[1], p1[1]) + r)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return None
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        xs += 0.5
        ys += 0.5
        ax, ay = p0
        dx, dy = p1[0] - ax, p1[1] - ay
        seg2 = dx * dx + dy * dy
        if seg2 > 0:
            t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / seg2, 0.0, 1.0)
            px, py = ax + t * dx, ay + t * dy
        else:
            px, py = ax, ay
        mask = (xs - px) ** 2 + (ys - py) ** 2 <= r * r
        if not mask.any():
            return None
        self.labels[y0:y1, x0:x1][mask] = label
        if self.instances is not None:
            self.instances[y0:y1, x0:x1][mask] = inst_id
        return (x0, y0, x1, y1)

    def end_stroke(self, label: str = "brush stroke") -> MapDelta | None:
        """Record the stroke as one undo step (only the pixels it changed)."""
        if self._stroke_start is None:
            return None
        old_l, old_i = self._stroke_start
        rect = self._stroke_rect
        self._stroke_start, self._stroke_rect, self._last_point = None, None, None
        if rect is None:
            return None
        return self._record(label, old_l, old_i, rect)

    def abort_stroke(self) -> None:
        """Esc: put back the map as it was when the stroke began."""
        if self._stroke_start is None:
            return
        self.labels, self.instances = self._stroke_start
        rect = self._stroke_rect
        self._stroke_start, self._stroke_rect, self._last_point = None, None, None
        self.notify(rect)

    def _record(self, label: str, old_l: np.ndarray, old_i: np.ndarray | None, rect: Rect) -> MapDelta | None:
        x0, y0, x1, y1 = rect
        w = self.labels.shape[1]
        changed = self.labels[y0:y1, x0:x1] != old_l[y0:y1, x0:x1]
        if self.instances is not None and old_i is not None:
            changed |= self.instances[y0:y1, x0:x1] != old_i[y0:y1, x0:x1]
        ry, rx = np.nonzero(changed)
        if ry.size == 0:
            return None
        idx = ((ry + y0) * w + (rx + x0)).astype(np.int64)
        flat_new, flat_old = self.labels.reshape(-1), old_l.reshape(-1)
        delta = MapDelta(self, label, idx, flat_old[idx].copy(), flat_new[idx].copy(),
                         None if old_i is None else old_i.reshape(-1)[idx].copy(),
                         None if self.instances is None else self.instances.reshape(-1)[idx].copy(),
                         rect)
        self.history.push(delta)
        return delta

    # -------------------------------------------------------------- fill
    def fill(self, x: float, y: float, label: int, instance: int = 1) -> Rect | None:
        """Contiguous (4-connected) flood fill of the region under (x, y) that shares its label
        (and instance id in panoptic mode)."""
        xi, yi = self._clip(x, y)
        same = self.labels == self.labels[yi, xi]
        if self.instances is not None:
            same &= self.instances == self.instances[yi, xi]
        region = same.astype(np.uint8)
        h, w = region.shape
        ff_mask = np.zeros((h + 2, w + 2), np.uint8)
        cv2.floodFill(region, ff_mask, (xi, yi), 2, flags=4)
        filled = region == 2
        ys, xs = np.nonzero(filled)
        rect = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        old_l = self.labels.copy()
        old_i = None if self.instances is None else self.instances.copy()
        self.labels[filled] = label
        if self.instances is not None:
            self.instances[filled] = self.instance_for(label, instance)
        self.notify(rect)
        self._record("fill", old_l, old_i, rect)
        return rect


# ------------------------------------------------------------------------------------------------
# Sketch (object mode and scene mode)
# ------------------------------------------------------------------------------------------------
BACKGROUND = -1  # group of background strokes in scene mode


@dataclass(eq=False)  # identity: undo removes this very stroke
class Stroke:
    """Freehand polyline in canvas pixels; ``group`` is an object index or BACKGROUND."""

    points: np.ndarray  # (N, 2) float32
    width: float
    erase: bool = False
    group: int = BACKGROUND


@dataclass(eq=False)
class SceneObjectSpec:
    """One object of a scene sketch: its class; its box follows its strokes."""

    class_name: str


class SketchDocument:
    """Strokes on a white canvas, rasterised on demand; undo is per stroke."""

    def __init__(self, size: tuple[int, int] = (256, 256), *, undo_limit: int = 200) -> None:
        self.size = size
        self.strokes: list[Stroke] = []
        self.objects: list[SceneObjectSpec] = []
        self.history = UndoStack(undo_limit)
        self.smoothing = 0.5  # 0 = raw pointer, towards 1 = heavier smoothing
        self._current: list[tuple[float, float]] | None = None
        self._current_meta: tuple[float, bool, int] | None = None
        self._listeners: list = []

    def on_change(self, fn) -> None:
        self._listeners.append(fn)

    def notify(self, rect: Rect | None = None) -> None:
        for fn in self._listeners:
            fn(rect)

    # -------------------------------------------------------------- strokes
    def begin_stroke(self, x: float, y: float, width: float, *, erase: bool = False,
                     group: int = BACKGROUND) -> None:
        self._current = [(float(x), float(y))]
        self._current_meta = (float(width), erase, group)

    @property
    def in_stroke(self) -> bool:
        return self._current is not None

    def stroke_to(self, x: float, y: float) -> Rect | None:
        """Add a pointer position (pressure-independent); smoothing is applied when the stroke ends."""
        if self._current is None:
            return None
        px, py = self._current[-1]
        if (px, py) == (x, y):
            return None
        self._current.append((float(x), float(y)))
        r = int(np.ceil(self._current_meta[0] / 2)) + 2
        rect = (int(min(px, x)) - r, int(min(py, y)) - r, int(max(px, x)) + r + 1, int(max(py, y)) + r + 1)
        self.notify(rect)
        return rect

    def current_points(self) -> np.ndarray | None:
        return None if self._current is None else np.asarray(self._current, np.float32)

    def end_stroke(self) -> Stroke | None:
        if self._current is None or self._current_meta is None:
            return None
        width, erase, group = self._current_meta
        points = smooth_polyline(np.asarray(self._current, np.float32), self.smoothing)
        stroke = Stroke(points, width, erase, group)
        self._current, self._current_meta = None, None
        self.add_stroke(stroke)
        return stroke

    def abort_stroke(self) -> None:
        self._current, self._current_meta = None, None
        self.notify(None)

    def add_stroke(self, stroke: Stroke) -> None:
        def redo() -> None:
            self.strokes.append(stroke)
            self.notify(None)

        def undo() -> None:
            self.strokes.remove(stroke)
            self.notify(None)

        redo()
        self.history.push(CallbackEdit("erase" if stroke.erase else "stroke", undo, redo))

    def clear(self) -> None:
        old_strokes, old_objects = list(self.strokes), list(self.objects)

        def redo() -> None:
            self.strokes, self.objects = [], []
            self.notify(None)

        def undo() -> None:
            self.strokes, self.objects = list(old_strokes), list(old_objects)
            self.notify(None)

        redo()
        self.history.push(CallbackEdit("clear", undo, redo))

    # -------------------------------------------------------------- scene objects
    def add_object(self, class_name: str) -> int:
        """A new (empty) object of ``class_name``; returns its index (the group of its strokes)."""
        spec = SceneObjectSpec(class_name)

        def redo() -> None:
            self.objects.append(spec)
            self.notify(None)

        def undo() -> None:
            self.objects.remove(spec)
            self.notify(None)

        redo()
        self.history.push(CallbackEdit("new object", undo, redo))
        return len(self.objects) - 1

    def object_box(self, index: int) -> Rect | None:
        """Box (x0, y0, x1, y1) around an object's strokes, or None when it has none."""
        pts = [s for s in self.strokes if s.group == index and not s.erase]
        if not pts:
            return None
        allp = np.concatenate([s.points for s in pts])
        pad = max(s.width for s in pts) / 2 + 1
        w, h = self.size
        x0, y0 = np.floor(allp.min(0) - pad).astype(int)
        x1, y1 = np.ceil(allp.max(0) + pad).astype(int)
        return (max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h))

    # -------------------------------------------------------------- rasterising
    def render(self, groups: Iterable[int] | None = None) -> np.ndarray:
        """H×W uint8 bitmap, dark (0) strokes on white (255); only ``groups`` when given."""
        w, h = self.size
        img = np.full((h, w), 255, np.uint8)
        wanted = None if groups is None else set(groups)
        for s in self.strokes:
            if wanted is not None and s.group not in wanted and not s.erase:
                continue
            draw_polyline(img, s.points, s.width, 255 if s.erase else 0)
        return img


def smooth_polyline(points: np.ndarray, strength: float) -> np.ndarray:
    """Centred smoothing of a pointer path: resample to ~1 px spacing, then repeated [1, 2, 1] / 4
    passes (more with ``strength`` in 0..1). Centred, so unlike a running average it does not lag
    behind the pointer; the end points stay where the stroke began and ended."""
    if len(points) < 3 or strength <= 0:
        return points.astype(np.float32)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(t[-1]), 2) + 1
    u = np.linspace(0.0, t[-1], n)
    pts = np.stack([np.interp(u, t, points[:, 0]), np.interp(u, t, points[:, 1])], 1)
    for _ in range(int(round(min(strength, 1.0) * 12))):
        pts[1:-1] = 0.25 * pts[:-2] + 0.5 * pts[1:-1] + 0.25 * pts[2:]
    return pts.astype(np.float32)


def draw_polyline(img: np.ndarray, points: np.ndarray, width: float, value: int) -> None:
    """Round-capped polyline (a single point draws a dot)."""
    pts = np.round(points * 4).astype(np.int32)  # cv2 sub-pixel precision (shift=2)
    thickness = max(1, int(round(width)))
    if len(pts) == 1:
        cv2.circle(img, tuple(int(v) for v in pts[0]), max(1, thickness * 2), value, -1, cv2.LINE_AA, 2)
    else:
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, value, thickness, cv2.LINE_AA, 2)


# ------------------------------------------------------------------------------------------------
# Pose (18 OpenPose/COCO joints)
# ------------------------------------------------------------------------------------------------
# A standing person facing the viewer, in units of the canvas (x right, y down). The person's right
# side is on the viewer's left, as in OpenPose output.
DEFAULT_POSE_UNIT: np.ndarray = np.array([
    (0.50, 0.13),  # nose
    (0.50, 0.23),  # neck
    (0.39, 0.23),  # r_shoulder
    (0.35, 0.38),  # r_elbow
    (0.33, 0.52),  # r_wrist
    (0.61, 0.23),  # l_shoulder
    (0.65, 0.38),  # l_elbow
    (0.67, 0.52),  # l_wrist
    (0.43, 0.52),  # r_hip
    (0.42, 0.71),  # r_knee
    (0.42, 0.90),  # r_ankle
    (0.57, 0.52),  # l_hip
    (0.58, 0.71),  # l_knee
    (0.58, 0.90),  # l_ankle
    (0.48, 0.11),  # r_eye
    (0.52, 0.11),  # l_eye
    (0.46, 0.12),  # r_ear
    (0.54, 0.12),  # l_ear
], np.float32)
assert len(DEFAULT_POSE_UNIT) == len(OPENPOSE_JOINTS)
POSE_LIMBS = OPENPOSE_LIMBS
JOINT_NAMES = OPENPOSE_JOINTS


def default_pose(size: tuple[int, int]) -> np.ndarray:
    """(18, 3) keypoints (x, y, confidence) of the default standing pose on a W×H canvas."""
    w, h = size
    kp = np.ones((len(JOINT_NAMES), 3), np.float32)
    kp[:, 0] = DEFAULT_POSE_UNIT[:, 0] * w
    kp[:, 1] = DEFAULT_POSE_UNIT[:, 1] * h
    return kp


class PoseDocument:
    """18 keypoints; confidence 0 marks a missing joint."""

    def __init__(self, size: tuple[int, int] = (176, 256), *, undo_limit: int = 200) -> None:
        self.size = size
        self.keypoints = default_pose(size)
        self.history = UndoStack(undo_limit)
        self._listeners: list = []
        self._drag_start: np.ndarray | None = None

    def on_change(self, fn) -> None:
        self._listeners.append(fn)

    def notify(self) -> None:
        for fn in self._listeners:
            fn(None)

    def present(self, j: int) -> bool:
        return bool(self.keypoints[j, 2] > 0)

    def joint_at(self, x: float, y: float, radius: float) -> int | None:
        """Nearest present joint within ``radius`` of (x, y)."""
        d2 = (self.keypoints[:, 0] - x) ** 2 + (self.keypoints[:, 1] - y) ** 2
        d2[self.keypoints[:, 2] <= 0] = np.inf
        j = int(np.argmin(d2))
        return j if d2[j] <= radius * radius else None

    def _set(self, kp: np.ndarray, label: str) -> None:
        old, new = self.keypoints.copy(), kp.astype(np.float32).copy()

        def apply(state: np.ndarray) -> None:
            self.keypoints = state.copy()
            self.notify()

        apply(new)
        self.history.push(CallbackEdit(label, lambda: apply(old), lambda: apply(new)))

    # drags are one undo step from press to release
    def begin_drag(self) -> None:
        self._drag_start = self.keypoints.copy()

    def drag_to(self, j: int, x: float, y: float) -> None:
        w, h = self.size
        self.keypoints[j, 0] = min(max(x, 0), w - 1)
        self.keypoints[j, 1] = min(max(y, 0), h - 1)
        self.notify()

    def end_drag(self) -> None:
        if self._drag_start is None:
            return
        start, self._drag_start = self._drag_start, None
        if not np.array_equal(start, self.keypoints):
            moved = self.keypoints.copy()
            self.keypoints = start
            self._set(moved, "move joint")

    def abort_drag(self) -> None:
        if self._drag_start is not None:
            self.keypoints, self._drag_start = self._drag_start, None
            self.notify()

    def remove_joint(self, j: int) -> None:
        kp = self.keypoints.copy()
        kp[j, 2] = 0
        self._set(kp, f"remove {JOINT_NAMES[j]}")

    def add_joint(self, j: int, x: float | None = None, y: float | None = None) -> None:
        """Put joint ``j`` back at (x, y), by default where the default pose has it."""
        kp = self.keypoints.copy()
        d = default_pose(self.size)[j]
        kp[j] = (d[0] if x is None else x, d[1] if y is None else y, 1.0)
        self._set(kp, f"add {JOINT_NAMES[j]}")

    def reset(self) -> None:
        self._set(default_pose(self.size), "reset pose")

    def set_keypoints(self, kp: np.ndarray, label: str = "load pose") -> None:
        kp = np.asarray(kp, np.float32)
        if kp.shape != (len(JOINT_NAMES), 3):
            raise ValueError(f"a pose has {len(JOINT_NAMES)} joints × (x, y, confidence); got {kp.shape}")
        self._set(kp, label)
