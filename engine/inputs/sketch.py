"""Sketch and edge-map inputs for EdgeGAN: binarise, crop to content, pad to square, resize; edge
extractors that turn photos into training edge maps; object masks from strokes; scene-sketch JSON.

Conventions: bitmaps are uint8 with dark strokes on a light background (what SketchyCOCO's edge maps
and sketches look like); network tensors are 3×S×S in [-1, 1] with strokes at −1 on +1.

Edge extractors (for building (edge, photo) training pairs from any labelled image folder):

- ``canny``: OpenCV Canny on the Gaussian-blurred grey image, thresholds from the median
  (0.66·m, 1.33·m), edges dilated to ~1–2 px. Crisp, binary, close to SketchyCOCO's edge maps.
- ``xdog``: eXtended Difference of Gaussians (Winnemöller et al. 2012): D = G_σ − τ·G_kσ on the grey
  image in [0, 1], white where D ≥ ε, else 1 + tanh(φ·(D − ε)); ε slightly below 0 draws lines only
  (no tone in dark areas). Softer, more sketch-like strokes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from ..requests.base import InputError

EdgeMethod = Literal["canny", "xdog"]


# ---------------------------------------------------------------------------------------------
# Sketch preparation
# ---------------------------------------------------------------------------------------------
def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 H×W or H×W×3 (or ×4) -> uint8 H×W."""
    image = np.asarray(image)
    if image.dtype == bool:
        return np.where(image, 0, 255).astype(np.uint8)
    if image.dtype != np.uint8:
        raise InputError(f"a sketch must be a uint8 image, got {image.dtype}")
    if image.ndim == 3:
        if image.shape[2] not in (1, 3, 4):
            raise InputError(f"a sketch must have 1, 3 or 4 channels, got {image.shape[2]}")
        image = image[..., 0] if image.shape[2] == 1 else cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    if image.ndim != 2 or min(image.shape) < 1:
        raise InputError(f"a sketch must be an H×W image, got shape {image.shape}")
    return image


def binarise(image: np.ndarray, threshold: int | None = None) -> np.ndarray:
    """Stroke mask (bool, True = stroke). Threshold: Otsu's, or ``threshold`` (0–255). A mostly dark
    image is taken as light strokes on dark and inverted."""
    grey = to_grey(image)
    if grey.mean() < 110:  # light strokes on a dark canvas
        grey = 255 - grey
    if threshold is None:
        if int(grey.max()) - int(grey.min()) < 16:
            return np.zeros(grey.shape, bool)
        t, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = int(min(t, 200)) + 1  # Otsu's t belongs to the dark class
    return grey < threshold


def content_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) bounding the True pixels (x1, y1 exclusive), or None if there are none."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def square_box(box: tuple[int, int, int, int], margin: float = 0.05) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) centred on ``box``, its side the box's longer side plus a margin
    on each side (may extend past the canvas)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    side = max(1, int(round(side * (1 + 2 * margin))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx, sy = int(round(cx - side / 2)), int(round(cy - side / 2))
    return sx, sy, sx + side, sy + side


def crop_padded(image: np.ndarray, box: tuple[int, int, int, int], fill: int | float) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` with out-of-canvas parts filled with ``fill``."""
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    out = np.full((y1 - y0, x1 - x0) + image.shape[2:], fill, image.dtype)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
    return out


@dataclass(frozen=True)
class PreparedSketch:
    """A sketch ready for the encoder: ``image`` uint8 S×S (dark strokes on white) and the square
    region of the input it covers (x0, y0, x1, y1) in input pixels."""

    image: np.ndarray
    region: tuple[int, int, int, int]


def prepare_sketch(sketch: np.ndarray, size: int, *, margin: float = 0.05,
                   threshold: int | None = None, stroke_width: int = 0) -> PreparedSketch:
    """Any-size sketch -> binarised, cropped to its strokes, padded to a centred square (white),
    resized to size×size with area averaging (anti-aliased strokes, like resized edge maps).

    ``stroke_width`` > 0 dilates strokes so that after downscaling they stay about that many output
    pixels wide (thin pen strokes on a large canvas would otherwise fade to grey)."""
    from ..limits import check_image_size

    check_image_size(sketch.shape[1], sketch.shape[0], "the sketch")
    mask = binarise(sketch, threshold)
    box = content_box(mask)
    if box is None:
        raise InputError("the sketch is empty: no strokes were found (draw dark strokes on a light background)")
    region = square_box(box, margin)
    side = region[2] - region[0]
    if side > 16 * size:  # a huge canvas: shrink first, so padding and stroke dilation stay bounded
        crop = crop_padded(np.where(mask, 0, 255).astype(np.uint8), region, 255)
        shrunk = cv2.resize(crop, (16 * size, 16 * size), interpolation=cv2.INTER_AREA)
        mask, side = shrunk < 128, 16 * size
        region_small = (0, 0, side, side)
    else:
        region_small = region
    if stroke_width > 0:
        k = int(round(stroke_width * side / size))
        if k > 1:
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    crop = crop_padded(np.where(mask, 0, 255).astype(np.uint8), region_small, 255)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return PreparedSketch(cv2.resize(crop, (size, size), interpolation=interp), region)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W or H×W×3 -> float 3×H×W in [-1, 1] (grey replicated to three channels)."""
    arr = torch.from_numpy(np.ascontiguousarray(image)).float() / 127.5 - 1.0
    if arr.dim() == 2:
        arr = arr.unsqueeze(0).expand(3, -1, -1)
    else:
        arr = arr.permute(2, 0, 1)
    return arr.contiguous()


# ---------------------------------------------------------------------------------------------
# Edge extractors
# ---------------------------------------------------------------------------------------------
def canny_edges(rgb: np.ndarray, sigma: float = 1.0, width: int = 1) -> np.ndarray:
    """Canny edges as uint8 dark lines on white; thresholds adapt to the image's median."""
    grey = to_grey(rgb)
    blurred = cv2.GaussianBlur(grey, (0, 0), sigma) if sigma > 0 else grey
    m = float(np.median(blurred))
    low, high = int(max(0, 0.66 * m)), int(min(255, 1.33 * m))
    edges = cv2.Canny(blurred, max(low, 10), max(high, 30))
    if width > 1:
        edges = cv2.dilate(edges, np.ones((width, width), np.uint8))
    return 255 - edges


def xdog_edges(rgb: np.ndarray, sigma: float = 0.8, k: float = 1.6, tau: float = 0.98,
               epsilon: float = -0.01, phi: float = 200.0) -> np.ndarray:
    """XDoG line drawing as uint8 dark lines on white. On [0, 1] intensities a flat area gives
    D = (1 − τ)·I ≥ 0, so a slightly negative ε keeps flat areas white (lines only, no tone) and
    the dark side of each edge (D < ε) is drawn with the soft tanh ramp."""
    grey = to_grey(rgb).astype(np.float32) / 255.0
    g1 = cv2.GaussianBlur(grey, (0, 0), sigma)
    g2 = cv2.GaussianBlur(grey, (0, 0), sigma * k)
    d = g1 - tau * g2
    out = np.where(d >= epsilon, 1.0, 1.0 + np.tanh(phi * (d - epsilon)))
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def edge_map(rgb: np.ndarray, method: EdgeMethod = "canny") -> np.ndarray:
    if method == "canny":
        return canny_edges(rgb)
    if method == "xdog":
        return xdog_edges(rgb)
    raise InputError(f"unknown edge extractor {method!r}; choose canny or xdog")


# ---------------------------------------------------------------------------------------------
# Object masks and scene sketches
# ---------------------------------------------------------------------------------------------
def fill_strokes(mask: np.ndarray) -> np.ndarray:
    """The region an object's strokes enclose (bool): strokes closed with a kernel ~4% of the object's
    size, outer contours filled; the convex hull when the strokes do not close."""
    box = content_box(mask)
    if box is None:
        return np.zeros(mask.shape, bool)
    side = max(box[2] - box[0], box[3] - box[1])
    k = max(3, int(side * 0.04) | 1)
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    area_box = (box[2] - box[0]) * (box[3] - box[1])
    if filled.sum() < 0.25 * area_box:
        points = np.concatenate([c.reshape(-1, 2) for c in contours])
        filled[:] = 0
        cv2.fillConvexPoly(filled, cv2.convexHull(points), 1)
    return filled.astype(bool) | mask


@dataclass(frozen=True)
class SceneSketch:
    """A loaded scene-sketch JSON: canvas (width, height), background strokes, objects."""

    size: tuple[int, int]
    background: np.ndarray | None
    objects: tuple[tuple[str, tuple[int, int, int, int], np.ndarray], ...]


def _load_bitmap(base: Path, rel: object, size: tuple[int, int], what: str) -> np.ndarray:
    from ..io import load_grey

    if not isinstance(rel, str) or not rel:
        raise InputError(f"{what}: expected a PNG path relative to the JSON file")
    try:
        grey = load_grey(base / rel)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    if (grey.shape[1], grey.shape[0]) != size:
        raise InputError(f"{what} ({rel}) is {grey.shape[1]}×{grey.shape[0]}, but the scene is {size[0]}×{size[1]}")
    return grey


def load_scene_sketch(path: Path | str) -> SceneSketch:
    """Read ``{"size": [W, H], "background": png, "objects": [{"class", "box", "sketch"}]}``;
    every problem is an InputError naming the file and the field."""
    from ..limits import MAX_CANVAS_SIDE, MAX_SCENE_OBJECTS, finite_number, load_json

    path = Path(path)
    raw = load_json(path, "scene sketch JSON")
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a JSON object")
    size = raw.get("size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= MAX_CANVAS_SIDE for v in size)):
        raise InputError(f"{path}: 'size' must be [width, height] in pixels (8–{MAX_CANVAS_SIDE})")
    w, h = size
    base = path.parent
    background = None
    if raw.get("background"):
        background = _load_bitmap(base, raw["background"], (w, h), f"{path}: background")
    objects = []
    items = raw.get("objects", [])
    if not isinstance(items, list):
        raise InputError(f"{path}: 'objects' must be a list")
    if len(items) > MAX_SCENE_OBJECTS:
        raise InputError(f"{path}: {len(items)} objects; a scene may hold at most {MAX_SCENE_OBJECTS}")
    for i, obj in enumerate(items):
        where = f"{path}: objects[{i}]"
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected an object")
        cls = obj.get("class")
        if not isinstance(cls, str) or not cls:
            raise InputError(f"{where}: 'class' must be a class name")
        box = obj.get("box")
        if not isinstance(box, list) or len(box) != 4:
            raise InputError(f"{where}: 'box' must be [x0, y0, x1, y1]")
        x0, y0, x1, y1 = (int(round(max(-1e6, min(1e6, finite_number(v, f"{where}: box"))))) for v in box)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise InputError(f"{where}: box {box} is empty or outside the {w}×{h} canvas")
        sketch = _load_bitmap(base, obj.get("sketch"), (w, h), f"{where}: sketch")
        objects.append((cls, (x0, y0, x1, y1), sketch))
    return SceneSketch((w, h), background, tuple(objects))
