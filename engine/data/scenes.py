"""The ``scenes`` recipe: procedural landscapes with exact panoptic labels.

A sample is a *layout* (semantic label map, panoptic instance map, pasted things) drawn from the
sample's generator, rendered twice with two independent *style draws* (textures, tints, sky, light):
``image/`` and ``exemplar/`` share ``label/`` and ``instance/`` — the exemplar pair CoCosNet trains on.

Layout: sky band with fractal clouds, midpoint-displacement mountain and hill ridges, optional
buildings on the horizon, a lake with an irregular shore and a beach, grass or sand in front. Things
are Tux Paint photo cut-outs (animals, birds, trees, flowers, vehicles, boats, houses) pasted with
their alpha, scaled by depth (lower base = nearer = larger) and drawn in painter's order (far first).
Labels are exact by construction: a thing owns the pixels where its alpha is ≥ 128, the image is
composited with the same cut-out; instances hidden below a few pixels are dropped before rendering.

Files per sample (split-relative): ``image/<id>.png`` RGB, ``exemplar/<id>.png`` RGB,
``label/<id>.png`` 8-bit indexed (``assets/palettes/scenes.json``), ``instance/<id>.png`` 16-bit
(stuff: class index; thing instance k of class c: c*1000 + k), ``edge/<id>.png`` instance edges (0/255).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

from ..inputs.panoptic import THING_MULTIPLIER
from ..io import instance_edges, load_palette
from .common import Png, Sample, child_rngs, source_records, warn_fallback
from .material import (
    adjust_color,
    load_cutout,
    load_pattern,
    midpoint_profile,
    procedural_blob,
    procedural_texture,
    stamp_files,
    tile_texture,
    value_noise,
)

PALETTE = load_palette("scenes")
CLASS = {name: i for i, name in enumerate(PALETTE.names)}
SKY, CLOUD, MOUNTAIN, HILL, WATER, GRASS, SAND, BUILDING = (CLASS[n] for n in (
    "sky", "cloud", "mountain", "hill", "water", "grass", "sand", "building"))
STUFF = (SKY, CLOUD, MOUNTAIN, HILL, WATER, GRASS, SAND, BUILDING)
MIN_VISIBLE_PIXELS = 6

# GIMP pattern stems per stuff class (picked by looking at all 168); any missing stem is skipped.
STUFF_PATTERNS: dict[int, tuple[str, ...]] = {
    SKY: ("sky",),
    CLOUD: ("clouds", "crinklepaper", "paper"),
    MOUNTAIN: ("Craters", "Moonfoot", "rock", "slate", "granite1", "granite2", "stone33", "cracked", "terra"),
    HILL: ("leaves", "leaves3", "leaves6", "clovers", "fibers"),
    WATER: ("water3", "pool", "waves", "rain", "ice2"),
    GRASS: ("leaves", "leaves3", "leaves6", "clovers", "fibers", "crinklepaper"),
    SAND: ("sandytext", "drymud", "dirt", "ground1", "pebbles", "crinklepaper", "paper", "dunes"),
    BUILDING: ("brick", "stone33", "marble1", "marble2", "wood1", "wood3", "parque1", "parque2",
               "floor_tile", "slate"),
}

# Base colour ranges (RGB low, high) per stuff class: tint targets and procedural fallbacks.
STUFF_COLORS: dict[int, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    CLOUD: ((215, 215, 220), (255, 255, 255)),
    MOUNTAIN: ((80, 80, 90), (150, 130, 120)),
    HILL: ((50, 100, 30), (120, 160, 70)),
    WATER: ((20, 60, 120), (60, 120, 180)),
    GRASS: ((50, 120, 30), (130, 180, 60)),
    SAND: ((180, 150, 90), (235, 210, 150)),
    BUILDING: ((110, 60, 50), (200, 180, 160)),
}

# Thing classes: Tux Paint stamp folders, where they stand, height at the front (fraction of S).
@dataclass(frozen=True)
class ThingKind:
    cls: int
    folders: tuple[str, ...]
    zone: str  # "ground" | "water" | "sky"
    front_height: float
    weight: float
    fallback_color: tuple[int, int, int]
    aspect: float = 1.0
    allow_cartoon: bool = False  # Tux Paint has no photographic houses and two photo boats
    exclude: tuple[str, ...] = ()  # sub-folders / stems that are not this class (a pinecone is no tree)
    only: tuple[str, ...] = ()  # when set, just these stems (birds that may fly)


THING_KINDS: tuple[ThingKind, ...] = (
    ThingKind(CLASS["mammal"], ("animals/mammals", "animals/marsupials"), "ground", 0.30, 3.0, (150, 100, 60), 1.4,
              exclude=("aquatic",)),
    ThingKind(CLASS["mammal"], ("animals/mammals/aquatic",), "water", 0.20, 0.7, (90, 90, 100), 1.8),
    ThingKind(CLASS["bird"], ("animals/birds",), "ground", 0.16, 1.0, (60, 60, 60), 1.0),
    ThingKind(CLASS["bird"], ("animals/birds",), "sky", 0.10, 0.6, (60, 60, 60), 1.3,
              only=("heron_greatblue_flying", "seagull", "silver-gull", "crow", "pigeon", "magpie", "vulture")),
    ThingKind(CLASS["tree"], ("plants/trees",), "ground", 0.55, 2.5, (40, 100, 30), 0.8,
              exclude=("holly_leaves", "pinecone", "rambutan")),
    ThingKind(CLASS["flower"], ("plants/flowers",), "ground", 0.14, 1.0, (220, 60, 120), 0.8),
    ThingKind(CLASS["vehicle"], ("vehicles/auto", "vehicles/race", "vehicles/emergency", "vehicles/construction",
                                 "vehicles/farming", "vehicles/cycle", "vehicles/masstransit",
                                 "vehicles/locomotive"), "ground", 0.26, 1.5, (200, 30, 30), 1.8),
    ThingKind(CLASS["boat"], ("vehicles/ship",), "water", 0.24, 1.5, (240, 240, 240), 1.6, allow_cartoon=True,
              exclude=("bathyscape",)),
    ThingKind(CLASS["house"], ("town/houses",), "ground", 0.42, 1.0, (170, 120, 90), 1.2, allow_cartoon=True,
              exclude=("cave_entrance", "city", "circus")),
)


@cache
def _stamps(kind_index: int) -> tuple:
    kind = THING_KINDS[kind_index]
    files = stamp_files(kind.folders, allow_cartoon=kind.allow_cartoon, exclude=kind.exclude)
    return tuple(p for p in files if not kind.only or p.stem in kind.only)


@dataclass
class Thing:
    cls: int
    rgba: np.ndarray  # the cut-out at its pasted size
    x0: int
    y0: int
    base_y: int
    instance: int = 0  # panoptic id, set after visibility check


@dataclass
class Layout:
    label: np.ndarray  # H×W uint8 semantic classes
    instance: np.ndarray  # H×W int32 panoptic ids
    stuff: np.ndarray  # H×W uint8 stuff class under everything (things removed)
    horizon: int
    things: list[Thing] = field(default_factory=list)
    cloud_density: np.ndarray | None = None  # H×W in [0, 1] (shading only; the label is exact)


def _paste_region(th: Thing, size: int) -> tuple[slice, slice, slice, slice]:
    h, w = th.rgba.shape[:2]
    y0, x0 = max(th.y0, 0), max(th.x0, 0)
    y1, x1 = min(th.y0 + h, size), min(th.x0 + w, size)
    return slice(y0, y1), slice(x0, x1), slice(y0 - th.y0, y1 - th.y0), slice(x0 - th.x0, x1 - th.x0)


class ScenesRecipe:
    name = "scenes"
    version = 3

    def __init__(self) -> None:
        self.has_patterns = load_pattern("sky") is not None
        self.has_stamps = any(_stamps(k) for k in range(len(THING_KINDS)))
        if not self.has_patterns:
            warn_fallback("GIMP textures not fetched (gimp-data)")
        if not self.has_stamps:
            warn_fallback("Tux Paint cut-outs not fetched (tuxpaint-stamps)")

    # ---------------------------------------------------------------------------- interface
    def outputs(self, sample_id: str) -> list[str]:
        return [f"{d}/{sample_id}.png" for d in ("image", "exemplar", "label", "instance", "edge")]

    def provenance(self) -> dict:
        return {
            "material": {"textures": "gimp-data" if self.has_patterns else "procedural",
                         "things": "tuxpaint-stamps" if self.has_stamps else "procedural"},
            "sources": source_records(["gimp-data", "gimp-data-extras", "tuxpaint-stamps"]),
            "palette": "assets/palettes/scenes.json",
            "classes": list(PALETTE.names), "things": sorted(PALETTE.things),
            "files": {"image": "RGB", "exemplar": "same layout, another style draw (RGB)",
                      "label": "8-bit indexed class map", "instance": "16-bit panoptic ids (stuff = class, "
                      "thing = class*1000 + k)", "edge": "instance edges 0/255"},
        }

    def render(self, index: int, rng: np.random.Generator, size: int) -> Sample:
        layout = self.layout(rng, size)
        style_rngs = child_rngs(rng, 2)
        image = self.paint(layout, style_rngs[0], size)
        exemplar = self.paint(layout, style_rngs[1], size)
        sid = f"{index:06d}"
        edges = (instance_edges(layout.instance) * 255).astype(np.uint8)
        return Sample({
            f"image/{sid}.png": Png(image),
            f"exemplar/{sid}.png": Png(exemplar),
            f"label/{sid}.png": Png(layout.label, "P", PALETTE.colors),
            f"instance/{sid}.png": Png(layout.instance.astype(np.uint16), "I;16"),
            f"edge/{sid}.png": Png(edges, "L"),
        })

    # ---------------------------------------------------------------------------- layout
    def layout(self, rng: np.random.Generator, size: int) -> Layout:
        S = size
        ys = np.arange(S)[:, None]
        label = np.full((S, S), SKY, np.uint8)
        horizon = int(S * rng.uniform(0.42, 0.62))

        clouds = value_noise(rng, (S, S), octaves=4, base=3) * (1 - ys / max(horizon, 1)).clip(0, 1) ** 0.5
        cloud_threshold = float(rng.uniform(0.5, 0.75))
        label[clouds > cloud_threshold] = CLOUD
        # cloud density above the threshold shades the clouds (thin rims, dense cores)
        cloud_density = np.clip((clouds - cloud_threshold) / 0.2, 0, 1).astype(np.float32)

        if rng.random() < 0.85:  # far mountains
            top = horizon - S * rng.uniform(0.1, 0.3) + midpoint_profile(rng, S, rng.uniform(0.45, 0.65), S * 0.12)
            label[(ys >= top[None, :]) & (ys < horizon)] = MOUNTAIN
        if rng.random() < 0.6:  # nearer hills
            top = horizon - S * rng.uniform(0.02, 0.1) + midpoint_profile(rng, S, rng.uniform(0.4, 0.6), S * 0.04)
            label[(ys >= top[None, :]) & (ys < horizon)] = HILL
        if rng.random() < 0.35:  # buildings standing on the horizon
            x = int(rng.integers(0, S // 3))
            while x < S:
                w = max(2, int(S * rng.uniform(0.05, 0.14)))
                h = max(2, int(S * rng.uniform(0.05, 0.25)))
                label[max(0, horizon - h):horizon, x:x + w] = BUILDING
                if rng.random() < 0.5:  # pitched roof
                    roof = max(1, int(w * rng.uniform(0.3, 0.6)))
                    for r in range(roof):
                        inset = int(round(w / 2 * (roof - r) / roof))
                        y = horizon - h - roof + r
                        if 0 <= y < S and inset < w - inset:
                            label[y, x + inset:x + w - inset] = BUILDING
                x += w + int(rng.integers(0, max(2, S // 8)))
                if rng.random() < 0.25:
                    break

        ground = SAND if rng.random() < 0.15 else GRASS
        label[horizon:] = ground
        if rng.random() < 0.55:  # lake
            depth = S - horizon
            shore = horizon + depth * rng.uniform(0.15, 0.6) + midpoint_profile(rng, S, 0.5, depth * 0.12)
            shore = np.maximum(shore, horizon + 2)
            if ground == GRASS and rng.random() < 0.6:
                beach = shore + S * rng.uniform(0.02, 0.08)
                label[(ys >= horizon) & (ys < beach[None, :])] = SAND
            label[(ys >= horizon) & (ys < shore[None, :])] = WATER

        stuff = label.copy()
        things = self._place_things(rng, stuff, horizon, S)
        instance, label = self._compose(stuff, things, S)
        return Layout(label=label, instance=instance, stuff=stuff, horizon=horizon, things=things,
                      cloud_density=cloud_density)

    def _cutout(self, rng: np.random.Generator, k: int, height: int) -> np.ndarray:
        kind = THING_KINDS[k]
        stamps = _stamps(k)
        rgba = None
        if stamps:
            for _ in range(4):
                rgba = load_cutout(stamps[int(rng.integers(len(stamps)))])
                if rgba is not None:
                    break
        if rgba is None:
            rgba = procedural_blob(rng, 64, kind.aspect * rng.uniform(0.8, 1.2),
                                   np.array(kind.fallback_color, np.uint8))
        h, w = rgba.shape[:2]
        nh = max(4, height)
        nw = max(2, int(round(w * nh / h)))
        if rng.random() < 0.5:
            rgba = rgba[:, ::-1]
        # premultiplied resize keeps the transparent colour out of the edges
        f = rgba.astype(np.float32)
        f[..., :3] *= f[..., 3:4] / 255.0
        f = cv2.resize(f, (nw, nh), interpolation=cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR)
        a = np.clip(f[..., 3:4], 0, 255)
        rgb = np.where(a > 0, f[..., :3] * 255.0 / np.maximum(a, 1e-3), 0)
        return np.concatenate([np.clip(rgb, 0, 255), a], -1).round().astype(np.uint8)

    def _place_things(self, rng: np.random.Generator, stuff: np.ndarray, horizon: int, S: int) -> list[Thing]:
        zones = {"ground": (stuff == GRASS) | (stuff == SAND), "water": stuff == WATER,
                 "sky": (stuff == SKY) | (stuff == CLOUD)}
        zones["ground"][:horizon + 1] = False
        zones["sky"][max(1, horizon - int(S * 0.1)):] = False
        available = [k for k, kind in enumerate(THING_KINDS) if zones[kind.zone].any()]
        things: list[Thing] = []
        if not available:
            return things
        weights = np.array([THING_KINDS[k].weight for k in available])
        for _ in range(int(rng.integers(0, 8))):
            k = available[int(rng.choice(len(available), p=weights / weights.sum()))]
            kind = THING_KINDS[k]
            yy, xx = np.nonzero(zones[kind.zone])
            j = int(rng.integers(len(yy)))
            by, bx = int(yy[j]), int(xx[j])
            if kind.zone == "sky":
                height = int(S * kind.front_height * rng.uniform(0.4, 1.0))
            else:
                depth = (by - horizon) / max(1, S - horizon)
                height = int(S * kind.front_height * (0.15 + 0.85 * depth) * rng.uniform(0.8, 1.2))
            if height < 5:
                continue
            rgba = self._cutout(rng, k, height)
            h, w = rgba.shape[:2]
            # boats sit a little into the water, the rest stand on their base point
            sink = int(h * 0.2) if kind.zone == "water" else 0
            y0 = by - h + sink if kind.zone != "sky" else by - h // 2
            things.append(Thing(cls=kind.cls, rgba=rgba, x0=bx - w // 2, y0=y0, base_y=y0 + h))
        things.sort(key=lambda t: t.base_y)  # painter's order: far (higher base) first
        return things

    def _compose(self, stuff: np.ndarray, things: list[Thing], S: int) -> tuple[np.ndarray, np.ndarray]:
        """Paint things over the stuff in painter's order; drop those left (nearly) invisible."""
        def paint(ts: list[Thing]) -> np.ndarray:
            owner = np.full((S, S), -1, np.int32)
            for t_index, th in enumerate(ts):
                ys, xs, cy, cx = _paste_region(th, S)
                owner[ys, xs][th.rgba[cy, cx, 3] >= 128] = t_index
            return owner

        owner = paint(things)
        visible = [t for i, t in enumerate(things) if (owner == i).sum() >= MIN_VISIBLE_PIXELS]
        if len(visible) != len(things):
            things[:] = visible
            owner = paint(things)
        label = stuff.copy()
        instance = stuff.astype(np.int32)
        counter: dict[int, int] = {}
        for i, th in enumerate(things):
            counter[th.cls] = counter.get(th.cls, 0) + 1
            th.instance = th.cls * THING_MULTIPLIER + counter[th.cls]
            m = owner == i
            label[m] = th.cls
            instance[m] = th.instance
        return instance, label

    # ---------------------------------------------------------------------------- rendering
    def _texture(self, rng: np.random.Generator, cls: int, S: int) -> np.ndarray:
        lo, hi = (np.array(c, np.float32) for c in STUFF_COLORS[cls])
        base = lo + (hi - lo) * rng.random(3).astype(np.float32)
        stems = [s for s in STUFF_PATTERNS[cls] if self.has_patterns and load_pattern(s) is not None]
        if not stems:
            dark = np.clip(base * rng.uniform(0.55, 0.8), 0, 255).astype(np.uint8)
            return procedural_texture(rng, (S, S), base.astype(np.uint8), dark, grain=int(rng.integers(3, 9)))
        tex = load_pattern(stems[int(rng.integers(len(stems)))])
        # one tile spans 15-40 % of the canvas whatever the pattern's own size (some are 256 px leaves)
        scale = S * rng.uniform(0.15, 0.4) / max(tex.shape[:2])
        img = tile_texture(tex, (S, S), rng, scale=scale).astype(np.float32)
        # tint: keep the texture's luminance detail, pull its colour toward the class colour
        lum = img.mean(-1, keepdims=True)
        tinted = base[None, None] * (lum / max(float(lum.mean()), 1.0))
        t = rng.uniform(0.35, 0.8)
        return np.clip(img * (1 - t) + tinted * t, 0, 255).astype(np.uint8)

    def paint(self, layout: Layout, rng: np.random.Generator, S: int) -> np.ndarray:
        ys = np.arange(S, dtype=np.float32)[:, None, None]
        hz = max(layout.horizon, 1)
        # time of day: sky top / horizon colours and a global light level
        skies = [((40, 90, 200), (170, 210, 240), 1.0), ((30, 40, 110), (250, 150, 90), 0.8),
                 ((120, 125, 135), (190, 190, 195), 0.85), ((70, 140, 230), (220, 230, 245), 1.05),
                 ((60, 50, 120), (240, 120, 120), 0.75)]
        top, bottom, light = skies[int(rng.integers(len(skies)))]
        top = np.clip(np.array(top, np.float32) + rng.normal(0, 12, 3), 0, 255)
        bottom = np.clip(np.array(bottom, np.float32) + rng.normal(0, 12, 3), 0, 255)
        light *= rng.uniform(0.9, 1.1)
        t = np.clip(ys / hz, 0, 1)
        sky = top * (1 - t) + bottom * t
        if self.has_patterns and load_pattern("sky") is not None and rng.random() < 0.5:
            tex = tile_texture(load_pattern("sky"), (S, S), rng, scale=rng.uniform(0.5, 1.5)).astype(np.float32)
            sky = sky * 0.75 + sky * (tex.mean(-1, keepdims=True) / 200.0) * 0.25
        img = np.broadcast_to(sky, (S, S, 3)).astype(np.float32).copy()

        stuff = layout.stuff
        for cls in STUFF[1:]:
            m = stuff == cls
            if not m.any():
                continue
            tex = self._texture(rng, cls, S).astype(np.float32)
            if cls == CLOUD:
                white = (bottom * 0.25 + 255 * 0.75)[None, None]
                tex = tex * 0.35 + white * 0.65
                if layout.cloud_density is not None:  # thin rims blend into the sky, cores are bright
                    d = (0.35 + 0.65 * layout.cloud_density)[..., None]
                    tex = img * (1 - d) + tex * d
            elif cls in (MOUNTAIN, HILL):  # aerial perspective: far ridges fade into the horizon colour
                haze = rng.uniform(0.15, 0.45) if cls == MOUNTAIN else rng.uniform(0.0, 0.2)
                tex = tex * (1 - haze) + bottom[None, None] * haze
            elif cls == WATER:  # water mirrors the sky colour
                refl = rng.uniform(0.3, 0.6)
                tex = tex * (1 - refl) + (top * 0.5 + bottom * 0.5)[None, None] * refl
            if cls in (GRASS, SAND, WATER):  # nearer ground is darker and more saturated
                depth = np.clip((ys - hz) / max(1, S - hz), 0, 1)
                tex = tex * (1.05 - 0.25 * depth)
            img[m] = tex[m]
        img *= light

        for th in layout.things:
            ys_, xs_, cy, cx = _paste_region(th, S)
            rgba = th.rgba[cy, cx].astype(np.float32)
            rgb = rgba[..., :3]
            hue, sat, val = rng.normal(0, 8), rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.1)
            rgb = adjust_color(rgb.astype(np.uint8), hue, sat, val).astype(np.float32) * light
            a = rgba[..., 3:4] / 255.0
            img[ys_, xs_] = img[ys_, xs_] * (1 - a) + rgb * a
        return np.clip(img, 0, 255).round().astype(np.uint8)
