"""The ``sketches`` recipe: EdgeGAN training pairs and scene sketches.

Three kinds of sample, chosen by index (of every 20: 10 line-art, 8 photo, 2 scene; see ``kind_of``):
- **line-art pairs**: an OpenMoji emoji rendered twice by resvg — its black line-art SVG (the edge
  map) and its colour SVG (the photo) — class = the emoji's OpenMoji group (``animals-nature``,
  ``food-drink``...; skin-tone variants, flags and symbols skipped).
- **photo pairs**: a Tux Paint photo cut-out over white, edges = XDoG or Canny edges inside its alpha
  mask plus the mask outline; class = the scenes thing class of its stamp folder (``mammal``...).
- **scene sketches**: a ``scenes`` layout and photo; background strokes = boundaries between stuff
  regions, one full-canvas stroke bitmap per pasted thing, written in the scene-JSON format that
  ``i2i generate scene --sketch`` reads (boxes are [x0, y0, x1, y1], x1/y1 exclusive).

Pairs are ``<split>/<class>/<id>.png`` = [edge map | photo], S×2S RGB (the official EdgeGAN format).
Offline (no cache): procedural filled shapes with their outlines stand in for both pair kinds.
A per-sample record ``.index/<id>.json`` at the dataset root marks completion for resuming.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..api.base import InputError
from ..io import instance_edges
from .common import Json, Png, Sample, child_rngs, source_records, warn_fallback
from .fetch import source_dir
from .material import load_cutout, procedural_blob
from .scenes import PALETTE as SCENES_PALETTE, THING_KINDS, ScenesRecipe, _stamps as _scene_stamps

OPENMOJI_GROUPS = ("animals-nature", "food-drink", "objects", "travel-places", "smileys-emotion", "activities",
                   "people-body")


# --------------------------------------------------------------------------------------------
# Edge extraction
# --------------------------------------------------------------------------------------------
def xdog(grey: np.ndarray, sigma: float = 0.8, k: float = 1.6, tau: float = 0.98, eps: float = -0.02,
         phi: float = 200.0) -> np.ndarray:
    """eXtended Difference of Gaussians (Winnemöller 2012) on a [0, 255] grey image -> strokes
    (H×W bool, True = ink)."""
    g = grey.astype(np.float32) / 255.0
    g1 = cv2.GaussianBlur(g, (0, 0), sigma)
    g2 = cv2.GaussianBlur(g, (0, 0), sigma * k)
    d = g1 - tau * g2
    e = np.where(d >= eps, 1.0, 1.0 + np.tanh(phi * (d - eps)))
    return e < 0.5


def object_strokes(rgba: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
    """Strokes of a cut-out (H×W bool): XDoG or Canny edges inside its alpha mask + the outline."""
    alpha = rgba[..., 3] >= 128 if mask is None else mask
    grey = cv2.cvtColor(np.ascontiguousarray(rgba[..., :3]), cv2.COLOR_RGB2GRAY)
    grey = np.where(alpha, grey, 255).astype(np.uint8)
    if rng.random() < 0.5:
        inner = xdog(grey, sigma=rng.uniform(0.6, 1.0))
    else:
        blur = cv2.GaussianBlur(grey, (3, 3), 0.8)
        inner = cv2.Canny(blur, 60, 140) > 0
    m8 = alpha.astype(np.uint8)
    eroded = cv2.erode(m8, np.ones((3, 3), np.uint8)) > 0
    outline = alpha & ~eroded
    return (inner & eroded) | outline


def ink(strokes: np.ndarray) -> np.ndarray:
    """Bool strokes -> RGB uint8, dark strokes on white."""
    out = np.full(strokes.shape + (3,), 255, np.uint8)
    out[strokes] = 0
    return out


# --------------------------------------------------------------------------------------------
# OpenMoji through resvg
# --------------------------------------------------------------------------------------------
def _resvg() -> Path | None:
    root = source_dir("resvg-cli")
    if root is None:
        return None
    exe = next(iter(sorted(root.glob("*.data/scripts/resvg"))), None)
    if exe is not None and not os.access(exe, os.X_OK):
        exe.chmod(0o755)
    return exe


def render_svg(svg: Path, size: int) -> np.ndarray:
    """Rasterise an SVG to size×size RGB over white with the fetched resvg binary."""
    exe = _resvg()
    if exe is None:
        raise InputError("resvg is not fetched (i2i data fetch resvg-cli)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        proc = subprocess.run([str(exe), "--width", str(size), "--height", str(size), "--background", "white",
                               str(svg), str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise InputError(f"resvg failed on {svg.name}: {proc.stderr.strip()[:300]}")
        from PIL import Image
        return np.asarray(Image.open(out).convert("RGB")).copy()


@lru_cache(maxsize=1)
def openmoji_catalogue() -> tuple[tuple[str, str], ...]:
    """((hexcode, group), ...) of the emoji used, sorted; empty when OpenMoji is not fetched."""
    root = source_dir("openmoji")
    if root is None or _resvg() is None:
        return ()
    meta = json.loads((root / "package/data/openmoji.json").read_text())
    items = []
    for e in meta:
        if e.get("group") in OPENMOJI_GROUPS and not e.get("skintone"):
            hexcode = e["hexcode"]
            if (root / "package/black/svg" / f"{hexcode}.svg").exists() and (root / "package/color/svg" / f"{hexcode}.svg").exists():
                items.append((hexcode, e["group"]))
    return tuple(sorted(items))


@lru_cache(maxsize=None)
def _photo_stamps() -> tuple[tuple[Path, str], ...]:
    items = {}
    for k, kind in enumerate(THING_KINDS):
        for p in _scene_stamps(k):
            items[p] = SCENES_PALETTE.names[kind.cls]  # a stamp listed by two kinds counts once
    return tuple(sorted(items.items()))


def _procedural_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A filled random shape with a darker outline; edge map = its outline (offline stand-in)."""
    photo = np.full((size, size, 3), 255, np.uint8)
    color = tuple(int(c) for c in rng.integers(30, 230, 3))
    c = size / 2
    if rng.random() < 0.5:
        axes = (int(size * rng.uniform(0.2, 0.42)), int(size * rng.uniform(0.2, 0.42)))
        cv2.ellipse(photo, (int(c), int(c)), axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    else:
        n = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = size * rng.uniform(0.2, 0.45, n)
        pts = np.stack([c + r * np.cos(ang), c + r * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(photo, [pts], color)
    mask = (photo != 255).any(-1)
    strokes = mask & ~(cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    return ink(strokes), photo


class SketchesRecipe:
    name = "sketches"
    version = 4  # follows the scenes recipe's version (scene sketches are drawn over its layouts)

    def __init__(self) -> None:
        self.moji = openmoji_catalogue()
        self.stamps = _photo_stamps()
        self.scenes = ScenesRecipe()  # scene sketches are drawn over scenes layouts (warns on its own)
        if not self.moji:
            warn_fallback("OpenMoji or resvg not fetched (openmoji, resvg-cli)")
        if not self.stamps:
            warn_fallback("Tux Paint cut-outs not fetched (tuxpaint-stamps)")

    @staticmethod
    def kind_of(index: int) -> str:
        # shifted by one every 20 samples so the val/test positions (index % 20 = 18, 19) meet every
        # kind; each block of 20 still holds 10 line-art, 8 photo and 2 scene samples
        r = (index % 10 + index // 20) % 10
        return "lineart" if r < 5 else "photo" if r < 9 else "scene"

    def outputs(self, sample_id: str) -> list[str]:
        return [f"../.index/{sample_id}.json"]

    def provenance(self) -> dict:
        return {
            "material": {"lineart": "openmoji" if self.moji else "procedural",
                         "photos": "tuxpaint-stamps" if self.stamps else "procedural",
                         "scene_textures": "gimp-data" if self.scenes.has_patterns else "procedural"},
            "sources": source_records(["openmoji", "resvg-cli", "tuxpaint-stamps", "gimp-data", "gimp-data-extras"]),
            "classes": {"lineart": list(OPENMOJI_GROUPS) if self.moji else ["shape"],
                        "photos": sorted({c for _, c in self.stamps}) if self.stamps else ["shape"]},
            "kinds_by_index": "r = (index % 10 + index // 20) % 10: 0-4 line-art pair, 5-8 photo pair, 9 scene",
            "files": {"<class>/<id>.png": "[edge map | photo], S x 2S RGB",
                      "scene/<id>.json": "scene-sketch JSON (size, background, objects with class/box/sketch)",
                      "scene/<id>_image.png": "the target scene photo"},
        }

    def render(self, index: int, rng: np.random.Generator, size: int) -> Sample:
        sid = f"{index:06d}"
        kind = self.kind_of(index)
        files: dict = {}
        if kind == "scene":
            files.update(self._scene(sid, rng, size))
        else:
            cls, edge, photo = self._pair(kind, rng, size)
            files[f"{cls}/{sid}.png"] = Png(np.concatenate([edge, photo], 1))
        files[f"../.index/{sid}.json"] = Json({"kind": kind, "files": sorted(files)})
        return Sample(files)

    def _pair(self, kind: str, rng: np.random.Generator, size: int) -> tuple[str, np.ndarray, np.ndarray]:
        if kind == "lineart" and self.moji:
            hexcode, group = self.moji[int(rng.integers(len(self.moji)))]
            root = source_dir("openmoji") / "package"
            edge = render_svg(root / "black/svg" / f"{hexcode}.svg", size)
            photo = render_svg(root / "color/svg" / f"{hexcode}.svg", size)
            return group, edge, photo
        if kind == "photo" and self.stamps:
            for _ in range(6):
                path, cls = self.stamps[int(rng.integers(len(self.stamps)))]
                rgba = load_cutout(path)
                if rgba is not None:
                    break
            else:
                rgba, cls = procedural_blob(rng, size, 1.2, rng.integers(30, 220, 3).astype(np.uint8)), "shape"
            rgba = _fit_rgba(rgba, size, margin=rng.uniform(0.04, 0.12))
            alpha = rgba[..., 3:4].astype(np.float32) / 255.0
            photo = (rgba[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
            return cls, ink(object_strokes(rgba, rng)), photo
        edge, photo = _procedural_pair(rng, size)
        return "shape", edge, photo

    def _scene(self, sid: str, rng: np.random.Generator, size: int) -> dict:
        layout = self.scenes.layout(rng, size)
        photo = self.scenes.paint(layout, child_rngs(rng, 1)[0], size)
        stuff_edges = instance_edges(layout.stuff) > 0
        # thin the two-sided boundary to one side so background strokes are 1 px
        stuff_edges &= np.pad(layout.stuff[1:] != layout.stuff[:-1], ((0, 1), (0, 0))) | \
            np.pad(layout.stuff[:, 1:] != layout.stuff[:, :-1], ((0, 0), (0, 1)))
        files: dict = {f"scene/{sid}_image.png": Png(photo),
                       f"scene/{sid}_background.png": Png(ink(stuff_edges))}
        objects = []
        for k, th in enumerate(layout.things):
            mask = layout.instance == th.instance
            if not mask.any():
                continue
            canvas = np.zeros((size, size, 4), np.uint8)
            h, w = th.rgba.shape[:2]
            y0, x0 = max(th.y0, 0), max(th.x0, 0)
            y1, x1 = min(th.y0 + h, size), min(th.x0 + w, size)
            canvas[y0:y1, x0:x1] = th.rgba[y0 - th.y0:y1 - th.y0, x0 - th.x0:x1 - th.x0]
            strokes = object_strokes(canvas, rng, mask=mask)
            ys, xs = np.nonzero(mask)
            name = f"{sid}_obj{k}.png"
            files[f"scene/{name}"] = Png(ink(strokes))
            objects.append({"class": SCENES_PALETTE.names[th.cls],
                            "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                            "sketch": name})
        files[f"scene/{sid}.json"] = Json({"size": [size, size], "background": f"{sid}_background.png",
                                           "image": f"{sid}_image.png", "objects": objects})
        return files


def _fit_rgba(rgba: np.ndarray, size: int, margin: float) -> np.ndarray:
    """Centre an RGBA cut-out on a size×size transparent canvas, scaled to fit within the margin."""
    h, w = rgba.shape[:2]
    inner = max(4, int(size * (1 - 2 * margin)))
    s = inner / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    f = rgba.astype(np.float32)
    f[..., :3] *= f[..., 3:4] / 255.0
    f = cv2.resize(f, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    a = np.clip(f[..., 3:4], 0, 255)
    rgb = np.where(a > 0, f[..., :3] * 255.0 / np.maximum(a, 1e-3), 0)
    small = np.concatenate([np.clip(rgb, 0, 255), a], -1).round().astype(np.uint8)
    out = np.zeros((size, size, 4), np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out
