"""Six freehand sketches for judging EdgeGAN by eye: cat face, house, tree, car, fish, sun.

Each is a list of strokes (polylines) on the sketch workspace's 256×256 canvas, as a person would
draw them with the mouse: a few strokes, not closed exactly, slightly wobbly (a seeded smooth
jitter, see :func:`wobble`). :func:`render` rasterises them as the canvas does (round 3-px pen);
``scripts/screenshots.py`` replays the same strokes in the GUI's sketch workspace.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

Stroke = list[tuple[float, float]]
CANVAS = (256, 256)
PEN = 3


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> Stroke:
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in np.linspace(math.radians(a0), math.radians(a1), n)]


def _cat_face() -> list[Stroke]:
    head = _arc(128, 142, 82, 70, -60, 245, 40)
    ears = [[(68, 95), (74, 30), (112, 74)], [(146, 73), (184, 30), (190, 96)]]
    eyes = [_arc(98, 130, 10, 12, 0, 360, 14), _arc(158, 130, 10, 12, 0, 360, 14)]
    nose = [[(121, 160), (135, 160), (128, 169), (121, 160)]]
    mouth = [[(112, 180), (120, 186), (128, 178), (136, 186), (144, 180)]]
    whiskers = [[(100, 168), (52, 160)], [(100, 176), (54, 184)], [(156, 168), (204, 160)], [(156, 176), (202, 184)]]
    return [head, *ears, *eyes, *nose, *mouth, *whiskers]


def _house() -> list[Stroke]:
    walls = [(64, 120), (62, 222), (196, 224), (194, 118)]
    roof = [(48, 126), (128, 46), (210, 124), (48, 126)]
    door = [(110, 223), (110, 170), (142, 170), (142, 224)]
    window = [(160, 140), (184, 140), (184, 162), (160, 162), (160, 140)]
    return [walls, roof, door, window, [(172, 140), (172, 162)], [(160, 151), (184, 151)]]


def _tree() -> list[Stroke]:
    crown: Stroke = []
    for k in range(9):  # a bumpy cloud of arcs around (128, 96)
        a = -90 + k * 40
        cx, cy = 128 + 62 * math.cos(math.radians(a)), 96 + 58 * math.sin(math.radians(a))
        crown += _arc(cx, cy, 26, 24, a - 80, a + 80, 10)
    trunk = [(116, 152), (114, 232)], [(142, 152), (145, 232)]
    return [crown, *trunk, [(100, 233), (160, 233)]]


def _car() -> list[Stroke]:
    body = [(30, 176), (28, 140), (62, 132), (88, 96), (170, 96), (198, 132), (228, 138), (230, 176), (200, 176)]
    bottom = [(160, 176), (96, 176)]
    body_end = [(56, 176), (30, 176)]
    wheels = [_arc(76, 178, 20, 20, 0, 360, 20), _arc(180, 178, 20, 20, 0, 360, 20)]
    windows = [[(96, 104), (124, 104), (124, 132), (76, 132), (96, 104)],
               [(134, 104), (164, 104), (184, 132), (134, 132), (134, 104)]]
    return [body, bottom, body_end, *wheels, *windows]


def _fish() -> list[Stroke]:
    top = _arc(120, 160, 90, 72, 200, 340, 24)
    bottom = _arc(120, 96, 90, 72, 20, 160, 24)
    tail = [(200, 128), (240, 92), (232, 128), (242, 166), (200, 128)]
    eye = _arc(70, 118, 6, 6, 0, 360, 10)
    fin = [(116, 94), (132, 70), (150, 98)]
    gill = _arc(70, 128, 18, 24, -50, 50, 10)
    return [top, bottom, tail, eye, fin, [(p[0] + 22, p[1]) for p in gill]]


def _sun() -> list[Stroke]:
    rays = []
    for k in range(12):
        a = math.radians(k * 30 + 8)
        rays.append([(128 + 62 * math.cos(a), 128 + 62 * math.sin(a)),
                     (128 + 100 * math.cos(a), 128 + 100 * math.sin(a))])
    return [_arc(128, 128, 50, 48, 0, 365, 36), *rays]


SKETCHES: dict[str, tuple[str, Callable[[], list[Stroke]]]] = {  # name: (object class, strokes)
    "cat face": ("cat", _cat_face),
    "house": ("house", _house),
    "tree": ("tree", _tree),
    "car": ("car", _car),
    "fish": ("fish", _fish),
    "sun": ("sun", _sun),
}


def wobble(stroke: Stroke, rng: np.random.Generator, amplitude: float = 2.0, step: float = 4.0) -> Stroke:
    """Resample a polyline every ``step`` px and add a smooth random offset (a hand is never exact)."""
    pts = np.asarray(stroke, np.float64)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    t = np.concatenate([[0], np.cumsum(seg)])
    n = max(2, int(t[-1] / step) + 1)
    ts = np.linspace(0, t[-1], n)
    dense = np.stack([np.interp(ts, t, pts[:, 0]), np.interp(ts, t, pts[:, 1])], 1)
    noise = rng.normal(0, 1, (n, 2)).cumsum(0)
    noise -= np.linspace(noise[0], noise[-1], n)  # ends stay near where the pen was put
    noise *= amplitude / max(1e-6, np.abs(noise).max())
    return [tuple(p) for p in dense + noise]


def strokes(name: str, seed: int = 0) -> list[Stroke]:
    """The wobbled strokes of sketch ``name`` (one of :data:`SKETCHES`)."""
    rng = np.random.default_rng(seed)
    return [wobble(s, rng) for s in SKETCHES[name][1]()]


def render(name: str, seed: int = 0) -> np.ndarray:
    """256×256 uint8 grey sketch: dark 3-px anti-aliased strokes on white."""
    img = np.full(CANVAS[::-1], 255, np.uint8)
    for s in strokes(name, seed):
        pts = np.round(np.asarray(s) * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(img, [pts], False, 0, PEN, cv2.LINE_AA, shift=4)
    return img
