"""The ``sketches`` recipe: EdgeGAN training pairs and scene sketches.

Three kinds of sample, chosen by index (of every 20: 14 line-art, 4 photo, 2 scene; see ``kind_of``).
Pair classes are concrete objects a person can sketch (:data:`OBJECT_CLASSES`: SketchyCOCO's classes
where the sources have them, then tree, house, fish, bird, flower, sun); a class is drawn first, then
one of its sources, so every class is equally frequent.
- **line-art pairs**: an OpenMoji emoji of the class rendered twice by resvg — its black line-art SVG
  (the edge map) and its colour SVG (the photo).
- **photo pairs**: a Tux Paint photo cut-out of the class over white, edges = XDoG or Canny edges
  inside its alpha mask plus the mask outline.
- Both pair kinds are augmented identically on both halves (:func:`augment_pair`: mirror, rotation,
  per-axis scale, shear, stroke width; a quarter keep only the outline, as quick sketches do) and
  cropped to the square the sketch task crops a sketch to (:func:`prepared_pair`).
- **scene sketches**: a ``scenes`` layout and photo; background strokes = boundaries between stuff
  regions (plus the strokes of things that are none of our classes), one full-canvas stroke bitmap per
  pasted bird / tree / flower / house, written in the scene-JSON format that
  ``i2i generate scene --sketch`` reads (boxes are [x0, y0, x1, y1], x1/y1 exclusive).

Pairs are ``<split>/<class>/<id>.png`` = [edge map | photo], S×2S RGB (the official EdgeGAN format).
Offline (no cache): procedural filled shapes with their outlines stand in for both pair kinds.
A per-sample record ``.index/<id>.json`` at the dataset root marks completion for resuming.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..io import instance_edges, source_dir
from ..requests.base import InputError
from .common import Json, Png, Sample, child_rngs, source_records, warn_fallback
from .material import STAMPS_SUBDIR, load_cutout
from .scenes import PALETTE as SCENES_PALETTE
from .scenes import ScenesRecipe

# Concrete object classes a person can sketch: SketchyCOCO's 14 where the sources have them (neither
# OpenMoji nor Tux Paint has a fire hydrant), then common objects. Each class draws from its OpenMoji
# emoji (hexcode: line-art + colour SVG) and from Tux Paint photo stamps (paths under the stamps folder).
OBJECT_CLASSES: dict[str, dict[str, tuple[str, ...]]] = {
    "airplane": {"emoji": ("2708", "1F6E9", "1F6EB", "1F6EC"), "stamps": ("vehicles/flight/planes/747",)},
    "bicycle": {"emoji": ("1F6B2",), "stamps": ()},
    "car": {"emoji": ("1F697", "1F695", "1F699", "1F693", "1F3CE"),
            "stamps": ("vehicles/auto/beetle", "vehicles/auto/sportscar2", "vehicles/auto/sedan",
                       "vehicles/emergency/sedan_police", "vehicles/race/indycar")},
    "motorcycle": {"emoji": ("1F3CD", "1F6F5"), "stamps": ()},
    "traffic light": {"emoji": ("1F6A6", "1F6A5"), "stamps": ()},
    "horse": {"emoji": ("1F40E", "1F434"), "stamps": ("animals/mammals/equines/horse",)},
    "cow": {"emoji": ("1F404", "1F42E"), "stamps": ("animals/mammals/bovines/cow", "animals/mammals/bovines/cow_white",
                                                   "animals/mammals/bovines/bull")},
    "sheep": {"emoji": ("1F411", "1F40F"), "stamps": ("animals/mammals/bovines/sheep",
                                                     "animals/mammals/bovines/sheep_lamb",
                                                     "animals/mammals/bovines/ram")},
    "dog": {"emoji": ("1F415", "1F436", "1F429"), "stamps": ("animals/mammals/dogs/dog",)},
    "cat": {"emoji": ("1F408", "1F431"), "stamps": ()},
    "zebra": {"emoji": ("1F993",), "stamps": ("animals/mammals/equines/zebra",)},
    "giraffe": {"emoji": ("1F992",), "stamps": ("animals/mammals/giraffe",)},
    "elephant": {"emoji": ("1F418",), "stamps": ("animals/mammals/elephant",)},
    "tree": {"emoji": ("1F333", "1F332", "1F334", "1F384"),
             "stamps": ("plants/trees/tree336", "plants/trees/holm_oak", "plants/trees/liberia-palm",
                        "plants/trees/birch")},
    "house": {"emoji": ("1F3E0", "1F3E1", "1F3DA"), "stamps": ()},
    "fish": {"emoji": ("1F41F", "1F420", "1F421"),
             "stamps": ("animals/fish/stripedfish", "animals/fish/coraltrout", "animals/fish/moonwrasse",
                        "animals/fish/butterflyfish", "animals/fish/clownfish", "animals/fish/bluegroper")},
    "bird": {"emoji": ("1F426", "1F54A", "1F99C", "1F985"),
             "stamps": ("animals/birds/blackbird", "animals/birds/crow", "animals/birds/pigeon", "animals/birds/magpie",
                        "animals/birds/rainbow-lorikeet", "animals/birds/lark", "animals/birds/cuckoo")},
    "flower": {"emoji": ("1F337", "1F338", "1F339", "1F33A", "1F33B", "1F33C"),
               "stamps": ("plants/flowers/rose", "plants/flowers/daffodil", "plants/flowers/marigold",
                          "plants/flowers/red-gazania", "plants/flowers/anemone_red", "plants/flowers/yellow-flower")},
    "sun": {"emoji": ("2600", "1F31E"), "stamps": ()},
}
CLASS_NAMES: tuple[str, ...] = tuple(OBJECT_CLASSES)
# scene things whose scenes class is one of ours; the others' strokes join the background strokes
SCENE_CLASS_TO_OBJECT = {"bird": "bird", "tree": "tree", "flower": "flower", "house": "house"}
PAIR_SIDE = 192  # pairs are augmented at this side, then cropped to the edge map's square and resized



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
    """((hexcode, class), ...) of the emoji of :data:`OBJECT_CLASSES` that the fetched OpenMoji has
    (line-art and colour SVG); empty when OpenMoji or resvg is not fetched."""
    root = source_dir("openmoji")
    if root is None or _resvg() is None:
        return ()
    items = []
    for cls, entry in OBJECT_CLASSES.items():
        for hexcode in entry["emoji"]:
            if ((root / "package/black/svg" / f"{hexcode}.svg").exists()
                    and (root / "package/color/svg" / f"{hexcode}.svg").exists()):
                items.append((hexcode, cls))
    return tuple(items)


@cache
def _photo_stamps() -> tuple[tuple[Path, str], ...]:
    """((stamp path, class), ...) of the Tux Paint photo stamps of :data:`OBJECT_CLASSES` that exist."""
    root = source_dir("tuxpaint-stamps")
    if root is None:
        return ()
    items = []
    for cls, entry in OBJECT_CLASSES.items():
        for stem in entry["stamps"]:
            path = root / STAMPS_SUBDIR / f"{stem}.png"
            if path.exists():
                items.append((path, cls))
    return tuple(items)


@lru_cache(maxsize=64)
def _emoji_pair(hexcode: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(line-art, colour) renders of one emoji, side×side RGB (rendered once per process)."""
    root = source_dir("openmoji") / "package"
    return (render_svg(root / "black/svg" / f"{hexcode}.svg", side),
            render_svg(root / "color/svg" / f"{hexcode}.svg", side))


def augment_pair(strokes: np.ndarray, photo: np.ndarray, rng: np.random.Generator,
                 outline_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """The same random mirror, rotation (±12°), anisotropic scale (0.75–1.15 per axis) and shear on the
    stroke mask (bool) and the photo (over white); then the strokes thinned or thickened, or (when
    ``outline_only``) replaced by the outline of the object's silhouette, as a quick sketch would be."""
    side = photo.shape[0]
    if rng.random() < 0.5:
        strokes, photo = strokes[:, ::-1], photo[:, ::-1]
    angle = np.deg2rad(rng.uniform(-12, 12))
    sx, sy = rng.uniform(0.75, 1.15, 2)
    shear = rng.uniform(-0.12, 0.12)
    lin = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array([[sx, shear], [0, sy]])
    c = np.array([side / 2, side / 2])
    m = np.concatenate([lin, (c - lin @ c)[:, None]], 1).astype(np.float32)
    photo = cv2.warpAffine(np.ascontiguousarray(photo), m, (side, side), flags=cv2.INTER_LINEAR,
                           borderValue=(255, 255, 255))
    strokes = cv2.warpAffine(np.ascontiguousarray(strokes).astype(np.uint8) * 255, m, (side, side),
                             flags=cv2.INTER_LINEAR, borderValue=0) >= 128
    if outline_only:  # the outline of the drawn object's silhouette (its non-white pixels, holes filled)
        drawn = (photo < 245).any(-1).astype(np.uint8)
        contours, _ = cv2.findContours(drawn, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outline = np.zeros_like(drawn)
        cv2.drawContours(outline, contours, -1, 1, thickness=5)
        strokes = outline > 0 if outline.any() else strokes
    k = int(rng.integers(-1, 4))  # −1 thins, 0 keeps, 1–3 thicken (at PAIR_SIDE: −⅓ … +1 px at 64 px)
    if k < 0:
        thin = cv2.erode(strokes.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        strokes = thin if thin.sum() > 0.5 * strokes.sum() else strokes
    elif k > 0:
        strokes = cv2.dilate(strokes.astype(np.uint8), np.ones((k + 1, k + 1), np.uint8)) > 0
    return strokes, photo


def prepared_pair(strokes: np.ndarray, photo: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(edge map, photo) cropped to the square the sketch task crops a sketch to
    (:func:`engine.inputs.sketch.prepare_sketch`) and resized to size×size: training pairs then look
    exactly like what the encoder sees at inference."""
    from ..inputs.sketch import crop_padded, prepare_sketch

    prepared = prepare_sketch(ink(strokes), size)
    crop = crop_padded(photo, prepared.region, 255)
    photo_small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return np.repeat(prepared.image[..., None], 3, axis=2), photo_small


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
    version = 5  # bumped whenever a seed's output changes (scene sketches also follow the scenes recipe)

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
        # kind; each block of 20 still holds 14 line-art, 4 photo and 2 scene samples
        r = (index % 10 + index // 20) % 10
        return "lineart" if r < 7 else "photo" if r < 9 else "scene"

    def outputs(self, sample_id: str) -> list[str]:
        return [f"../.index/{sample_id}.json"]

    def provenance(self) -> dict:
        return {
            "material": {"lineart": "openmoji" if self.moji else "procedural",
                         "photos": "tuxpaint-stamps" if self.stamps else "procedural",
                         "scene_textures": "gimp-data" if self.scenes.has_patterns else "procedural"},
            "sources": source_records(["openmoji", "resvg-cli", "tuxpaint-stamps", "gimp-data", "gimp-data-extras"]),
            "classes": {"lineart": ({c: [h for h, k in self.moji if k == c] for c in CLASS_NAMES}
                                    if self.moji else ["shape"]),
                        "photos": {c: [str(p.relative_to(p.parents[len(p.parents) - 1])) for p, k in self.stamps
                                       if k == c] for c in CLASS_NAMES} if self.stamps else ["shape"]},
            "augmentation": "mirror, rotation ±12°, per-axis scale 0.75-1.15, shear ±0.12, stroke width -1..+3 px "
                            "at 192 px, a quarter outline-only; pairs cropped as the sketch task crops sketches",
            "kinds_by_index": "r = (index % 10 + index // 20) % 10: 0-6 line-art pair, 7-8 photo pair, 9 scene",
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
        outline_only = bool(rng.random() < 0.25)
        if kind == "lineart" and self.moji:
            # class first, then one of its emoji: every class equally often
            classes = sorted({c for _, c in self.moji}, key=CLASS_NAMES.index)
            cls = classes[int(rng.integers(len(classes)))]
            choices = [h for h, c in self.moji if c == cls]
            line, colour = _emoji_pair(choices[int(rng.integers(len(choices)))], PAIR_SIDE)
            strokes, photo = augment_pair(line.min(-1) < 128, colour, rng, outline_only)
            edge, photo = prepared_pair(strokes, photo, size)
            return cls, edge, photo
        if kind == "photo" and self.stamps:
            classes = sorted({c for _, c in self.stamps}, key=CLASS_NAMES.index)
            cls = classes[int(rng.integers(len(classes)))]
            choices = [p for p, c in self.stamps if c == cls]
            rgba = None
            for _ in range(6):
                rgba = load_cutout(choices[int(rng.integers(len(choices)))])
                if rgba is not None:
                    break
            if rgba is not None:
                rgba = _fit_rgba(rgba, PAIR_SIDE, margin=0.08)
                alpha = rgba[..., 3:4].astype(np.float32) / 255.0
                photo = (rgba[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
                strokes, photo = augment_pair(object_strokes(rgba, rng), photo, rng, outline_only)
                edge, photo = prepared_pair(strokes, photo, size)
                return cls, edge, photo
        edge, photo = _procedural_pair(rng, size)
        return "shape", edge, photo

    def _scene(self, sid: str, rng: np.random.Generator, size: int) -> dict:
        layout = self.scenes.layout(rng, size)
        photo = self.scenes.paint(layout, child_rngs(rng, 1)[0], size)
        stuff_edges = instance_edges(layout.stuff) > 0
        # thin the two-sided boundary to one side so background strokes are 1 px
        stuff_edges &= np.pad(layout.stuff[1:] != layout.stuff[:-1], ((0, 1), (0, 0))) | \
            np.pad(layout.stuff[:, 1:] != layout.stuff[:, :-1], ((0, 0), (0, 1)))
        files: dict = {f"scene/{sid}_image.png": Png(photo)}
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
            cls = SCENE_CLASS_TO_OBJECT.get(SCENES_PALETTE.names[th.cls])
            if cls is None:  # a thing with no object class of ours ("mammal", "vehicle"): background strokes
                stuff_edges |= strokes
                continue
            ys, xs = np.nonzero(mask)
            name = f"{sid}_obj{k}.png"
            files[f"scene/{name}"] = Png(ink(strokes))
            objects.append({"class": cls,
                            "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                            "sketch": name})
        files[f"scene/{sid}_background.png"] = Png(ink(stuff_edges))
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
