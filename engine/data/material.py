"""Raw material for the recipes: GIMP ``.pat`` textures, Tux Paint cut-outs, procedural stand-ins.

Everything is loaded lazily from the fetch cache (``engine.data.fetch``) and memoised per process.
When the cache is absent the callers fall back to ``procedural_texture`` / ``procedural_blob``.
"""
from __future__ import annotations

import struct
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..io import source_dir
from ..requests.base import InputError


# --------------------------------------------------------------------------------------------
# GIMP patterns
# --------------------------------------------------------------------------------------------
def read_pat(path: Path | str) -> np.ndarray:
    """A GIMP ``.pat`` file -> H×W×3 uint8. Header (big-endian uint32s): header size, version,
    width, height, bytes per pixel, magic ``GPAT``, then a NUL-terminated name; pixels follow."""
    raw = Path(path).read_bytes()
    if len(raw) < 24 or raw[20:24] != b"GPAT":
        raise InputError(f"{path} is not a GIMP pattern (no GPAT magic)")
    header_size, _version, width, height, bpp = struct.unpack(">5I", raw[:20])
    data = np.frombuffer(raw, np.uint8, count=width * height * bpp, offset=header_size)
    img = data.reshape(height, width, bpp)
    if bpp in (1, 2):  # grey (+ alpha)
        img = np.repeat(img[..., :1], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def pattern_files() -> dict[str, Path]:
    """{pattern stem: path} over gimp-data and gimp-data-extras (empty when not fetched)."""
    found: dict[str, Path] = {}
    for name in ("gimp-data", "gimp-data-extras"):
        root = source_dir(name)
        if root is None:
            continue
        for p in sorted(root.rglob("*.pat")):
            found.setdefault(p.stem, p)
    return found


@cache
def load_pattern(stem: str) -> np.ndarray | None:
    path = pattern_files().get(stem)
    return None if path is None else read_pat(path)


def tile_texture(tex: np.ndarray, size: tuple[int, int], rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Tile a (tileable) texture over an H×W canvas at a random offset, resampled by ``scale``."""
    h, w = size
    if scale != 1.0:
        tex = cv2.resize(tex, (max(2, int(round(tex.shape[1] * scale))), max(2, int(round(tex.shape[0] * scale)))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    th, tw = tex.shape[:2]
    oy, ox = int(rng.integers(th)), int(rng.integers(tw))
    reps = ((h + oy) // th + 2, (w + ox) // tw + 2, 1)
    return np.tile(tex, reps)[oy:oy + h, ox:ox + w].copy()


# --------------------------------------------------------------------------------------------
# Procedural material (the offline fallback, and shading everywhere)
# --------------------------------------------------------------------------------------------
def value_noise(rng: np.random.Generator, size: tuple[int, int], octaves: int = 4, base: int = 4,
                persistence: float = 0.5) -> np.ndarray:
    """Fractal value noise in [0, 1], H×W float32 (bicubic-upsampled random grids)."""
    h, w = size
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * (2 ** o)
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo + 1e-6)


def procedural_texture(rng: np.random.Generator, size: tuple[int, int], color_a: np.ndarray,
                       color_b: np.ndarray, grain: int = 8) -> np.ndarray:
    """Two colours mixed by fractal noise plus fine grain: an H×W×3 uint8 stand-in texture."""
    n = value_noise(rng, size, octaves=5, base=max(2, grain))
    fine = rng.random(size).astype(np.float32) * 0.15
    t = np.clip(n * 0.85 + fine, 0, 1)[..., None]
    img = color_a[None, None].astype(np.float32) * (1 - t) + color_b[None, None].astype(np.float32) * t
    return np.clip(img, 0, 255).astype(np.uint8)


def midpoint_profile(rng: np.random.Generator, width: int, roughness: float, amplitude: float) -> np.ndarray:
    """A 1-D ridge line by midpoint displacement, ``width`` samples, zero mean, about ±amplitude."""
    n = 1
    while n + 1 < width:
        n *= 2
    pts = np.zeros(n + 1, np.float64)
    pts[0], pts[-1] = rng.uniform(-1, 1, 2) * amplitude
    step, disp = n, amplitude
    while step > 1:
        half = step // 2
        mids = (pts[0:n:step] + pts[step::step]) / 2 + rng.uniform(-1, 1, n // step) * disp
        pts[half::step] = mids
        step, disp = half, disp * roughness
    xs = np.linspace(0, n, width)
    prof = np.interp(xs, np.arange(n + 1), pts)
    return (prof - prof.mean()).astype(np.float32)


def adjust_color(img: np.ndarray, hue_shift: float = 0.0, sat: float = 1.0, val: float = 1.0) -> np.ndarray:
    """Shift hue (degrees) and scale saturation/value of an RGB uint8 image."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue_shift * 256 / 360) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * val, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


# --------------------------------------------------------------------------------------------
# Tux Paint cut-outs
# --------------------------------------------------------------------------------------------
STAMPS_SUBDIR = Path("usr/share/tuxpaint/stamps")


def stamp_files(folders: tuple[str, ...], *, allow_cartoon: bool = False,
                exclude: tuple[str, ...] = ()) -> list[Path]:
    """PNG stamps under the given stamp folders: photographic ones (cartoon/toy sub-folders skipped
    unless ``allow_cartoon``), minus sub-folders or file stems named in ``exclude``."""
    root = source_dir("tuxpaint-stamps")
    if root is None:
        return []
    skip_dirs = {"toys", "plastic"} | (set() if allow_cartoon else {"cartoon"})
    files: list[Path] = []
    for folder in folders:
        base = root / STAMPS_SUBDIR / folder
        for p in sorted(base.rglob("*.png")):
            rel = p.relative_to(base).parts
            if any(part in skip_dirs or part in exclude for part in rel[:-1]) or p.stem in exclude:
                continue
            if p.stem.endswith(("_thumb", "-thumb")):
                continue
            files.append(p)
    return files


@lru_cache(maxsize=512)
def load_cutout(path: Path, max_side: int = 256) -> np.ndarray | None:
    """An RGBA cut-out cropped to its alpha bounding box and shrunk to ``max_side``; None when the
    stamp has no usable alpha (flat rectangles are no cut-outs)."""
    img = Image.open(path)
    if img.mode != "RGBA":
        img = img.convert("RGBA")
    a = np.asarray(img)
    alpha = a[..., 3]
    solid = alpha >= 128
    if solid.mean() > 0.97 or solid.sum() < 64:
        return None
    ys, xs = np.nonzero(alpha > 8)
    a = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = a.shape[:2]
    s = max_side / max(h, w)
    if s < 1:
        # premultiply so resampling does not bleed the (often black) transparent colour into edges
        f = a.astype(np.float32)
        f[..., :3] *= f[..., 3:4] / 255.0
        f = cv2.resize(f, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        rgb = np.where(f[..., 3:4] > 0, f[..., :3] * 255.0 / np.maximum(f[..., 3:4], 1e-3), 0)
        a = np.concatenate([np.clip(rgb, 0, 255), np.clip(f[..., 3:4], 0, 255)], -1).astype(np.uint8)
    return np.ascontiguousarray(a)


def procedural_blob(rng: np.random.Generator, height: int, aspect: float, color: np.ndarray) -> np.ndarray:
    """A stand-in cut-out (RGBA): a noisy ellipse-ish blob with shading, for offline builds."""
    h = max(4, height)
    w = max(4, int(h * aspect))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r = np.sqrt(((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2)
    wobble = value_noise(rng, (h, w), octaves=2, base=3) * 0.35
    alpha = ((r + wobble) < 0.95).astype(np.uint8) * 255
    shade = 0.6 + 0.4 * (1 - yy / h)
    tex = procedural_texture(rng, (h, w), color, np.clip(color.astype(np.int32) - 60, 0, 255).astype(np.uint8))
    rgb = np.clip(tex.astype(np.float32) * shade[..., None], 0, 255).astype(np.uint8)
    return np.concatenate([rgb, alpha[..., None]], -1)
