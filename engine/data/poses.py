"""The ``poses`` recipe: mannequin figures from random OpenPose-18 skeletons.

A skeleton is built joint by joint in figure units (height ≈ 1) with human limb lengths and joint
limits (shoulder abduction, elbow and knee flexion only one way, torso lean, head tilt, body yaw that
narrows the shoulders and hides the far ear), then fitted into the canvas. The mannequin is drawn as
capsules and ellipses along the bones, each part filled with its outfit material (skin, top, bottom,
shoes, hair; fabric textures from GIMP patterns or procedural stripes/checks/noise) and shaded by its
distance to the outline, in painter's order (far limbs, torso, near leg, head, near arm). The part
mask is drawn with exactly the same geometry and order, so part labels are exact. The exemplar is the
same outfit in an independent pose.

Files per sample (split-relative): ``image/<id>.png``, ``pose/<id>.json`` (OpenPose JSON, 18 COCO
joints, confidence 0 for a hidden ear), ``parts/<id>.png`` (8-bit part mask, names in ``PARTS`` and
provenance.json), ``exemplar/<id>.png``, ``exemplar_pose/<id>.json``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..io import OPENPOSE_JOINTS
from .common import Json, Png, Sample, source_records, warn_fallback
from .material import load_pattern, procedural_texture, tile_texture

PARTS: tuple[str, ...] = ("background", "head", "hair", "torso", "r_upper_arm", "r_lower_arm", "r_hand",
                          "l_upper_arm", "l_lower_arm", "l_hand", "r_upper_leg", "r_lower_leg", "r_foot",
                          "l_upper_leg", "l_lower_leg", "l_foot")
P = {n: i for i, n in enumerate(PARTS)}
J = {n: i for i, n in enumerate(OPENPOSE_JOINTS)}
FABRICS = ("burlap", "fibers", "leather", "goldcloth", "greyweave", "greyweave2", "3dweave", "crinklepaper",
           "paper", "leopard", "cow", "abstract_flowers", "java", "pastel", "pastel2", "Stripes2px", "sm_squares")
# limb lengths in figure heights (roughly anthropometric)
LEN = {"torso": 0.30, "upper_arm": 0.17, "lower_arm": 0.15, "upper_leg": 0.23, "lower_leg": 0.23}


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]], np.float32)


@dataclass
class Skeleton:
    joints: np.ndarray  # (18, 2) figure units, y down
    visible: np.ndarray  # (18,) bool
    yaw: float  # >0: the figure's left side turns away (its left limbs are far)


def random_skeleton(rng: np.random.Generator) -> Skeleton:
    """A random standing/moving pose within joint limits."""
    j = np.zeros((18, 2), np.float32)
    yaw = float(rng.uniform(-55, 55))
    width = np.cos(np.deg2rad(yaw))
    lean = float(rng.normal(0, 6))
    down = _rot(np.array([0, 1], np.float32), lean)
    side = np.array([-down[1], down[0]], np.float32)  # points to the image right
    j[J["neck"]] = (0, 0)
    hip_c = j[J["neck"]] + down * LEN["torso"]
    # the figure faces the viewer: its right side is on the image left
    j[J["r_shoulder"]] = -side * 0.11 * width
    j[J["l_shoulder"]] = side * 0.11 * width
    j[J["r_hip"]] = hip_c - side * 0.07 * width
    j[J["l_hip"]] = hip_c + side * 0.07 * width
    for s, sign in (("r", -1), ("l", 1)):
        abduct = float(rng.uniform(-20, 150))  # upper arm from hanging down, outwards
        flex = float(rng.uniform(0, 140)) * (1 if rng.random() < 0.5 else -1)
        upper = _rot(down, -sign * abduct) * LEN["upper_arm"]
        j[J[f"{s}_elbow"]] = j[J[f"{s}_shoulder"]] + upper
        j[J[f"{s}_wrist"]] = j[J[f"{s}_elbow"]] + _rot(upper / LEN["upper_arm"], -sign * flex) * LEN["lower_arm"]
        hip_abduct = float(rng.uniform(-5, 35))
        knee = float(rng.uniform(-30, 100))  # positive bends the shin outwards; little inwards (no crossed legs)
        thigh = _rot(down, -sign * hip_abduct) * LEN["upper_leg"]
        # a bent knee seen from the front foreshortens the thigh and shin
        fore = np.cos(np.deg2rad(abs(knee) * 0.5))
        j[J[f"{s}_knee"]] = j[J[f"{s}_hip"]] + thigh * (0.7 + 0.3 * fore)
        shin = _rot(thigh / LEN["upper_leg"], -sign * knee * 0.35) * LEN["lower_leg"] * (0.75 + 0.25 * fore)
        j[J[f"{s}_ankle"]] = j[J[f"{s}_knee"]] + shin
    tilt = float(rng.uniform(-20, 20))
    up = _rot(-down, tilt)
    head_side = np.array([-up[1], up[0]], np.float32) * -1
    head_c = j[J["neck"]] + up * 0.1
    turn = np.sin(np.deg2rad(yaw))
    j[J["nose"]] = head_c + head_side * 0.03 * turn - up * 0.0
    j[J["r_eye"]] = head_c + up * 0.025 - head_side * 0.025 * width + head_side * 0.03 * turn
    j[J["l_eye"]] = head_c + up * 0.025 + head_side * 0.025 * width + head_side * 0.03 * turn
    j[J["r_ear"]] = head_c - head_side * 0.055 * width + head_side * 0.02 * turn
    j[J["l_ear"]] = head_c + head_side * 0.055 * width + head_side * 0.02 * turn
    visible = np.ones(18, bool)
    if yaw > 35:
        visible[J["l_ear"]] = False
    elif yaw < -35:
        visible[J["r_ear"]] = False
    return Skeleton(j, visible, yaw)


def fit_to_canvas(sk: Skeleton, rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """Scale and place the figure: about 65-85 % of the canvas tall, inside a margin."""
    pts = sk.joints
    lo, hi = pts.min(0), pts.max(0)
    extent = hi - lo + 0.16  # room for the head, hands, feet
    scale = size * rng.uniform(0.65, 0.85) / max(extent[1], extent[0] * 1.0)
    placed = (pts - lo) * scale
    w, h = (hi - lo) * scale
    m = 0.08 * scale
    ox = rng.uniform(m, max(m, size - w - m))
    oy = rng.uniform(m + 0.06 * scale, max(m + 0.06 * scale, size - h - m))
    return placed + np.array([ox, oy], np.float32), scale


@dataclass(frozen=True)
class Outfit:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    top: tuple[int, int, int]
    bottom: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool
    trousers: bool
    top_pattern: str  # a GIMP pattern stem, or "stripes" / "checks" / "noise" / "plain"
    bottom_pattern: str
    pattern_seed: int


def random_outfit(rng: np.random.Generator, have_fabrics: bool) -> Outfit:
    skins = [(241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 34), (255, 219, 172)]
    hairs = [(20, 15, 10), (90, 55, 25), (180, 140, 70), (200, 200, 200), (120, 30, 20)]
    kinds = ["plain", "stripes", "checks", "noise"]
    fabrics = [f for f in FABRICS if have_fabrics and load_pattern(f) is not None]

    def col():
        return tuple(int(c) for c in rng.integers(20, 240, 3))

    def pick():
        if fabrics and rng.random() < 0.5:
            return fabrics[int(rng.integers(len(fabrics)))]
        return kinds[int(rng.integers(len(kinds)))]

    return Outfit(skin=skins[int(rng.integers(len(skins)))], hair=hairs[int(rng.integers(len(hairs)))],
                  top=col(), bottom=col(), shoes=col(), long_sleeves=bool(rng.random() < 0.5),
                  trousers=bool(rng.random() < 0.6), top_pattern=pick(), bottom_pattern=pick(),
                  pattern_seed=int(rng.integers(1 << 30)))


def _material(pattern: str, color: tuple[int, int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    c = np.array(color, np.float32)
    if pattern == "plain":
        return np.broadcast_to(c, (size, size, 3)).copy()
    if pattern == "stripes":
        period = max(3, int(size * rng.uniform(0.03, 0.08)))
        yy, xx = np.mgrid[0:size, 0:size]
        band = (((xx + yy) if rng.random() < 0.5 else yy) // period) % 2
        return np.where(band[..., None] == 1, c, c * 0.55 + 90).astype(np.float32)
    if pattern == "checks":
        period = max(3, int(size * rng.uniform(0.03, 0.08)))
        yy, xx = np.mgrid[0:size, 0:size]
        band = ((xx // period) + (yy // period)) % 2
        return np.where(band[..., None] == 1, c, c * 0.6).astype(np.float32)
    if pattern == "noise":
        return procedural_texture(rng, (size, size), c.astype(np.uint8), (c * 0.6).astype(np.uint8)).astype(np.float32)
    tex = tile_texture(load_pattern(pattern), (size, size), rng, scale=max(0.2, size / 256)).astype(np.float32)
    lum = tex.mean(-1, keepdims=True)
    return np.clip(c * (lum / max(float(lum.mean()), 1.0)) * 0.7 + tex * 0.3, 0, 255)


def studio_wall(rng: np.random.Generator) -> np.ndarray:
    """A light wall colour (RGB)."""
    return np.array(rng.integers(170, 250, 3), np.float32)


def render_figure(joints: np.ndarray, visible: np.ndarray, yaw: float, scale: float, outfit: Outfit,
                  size: int, rng: np.random.Generator, wall: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw the mannequin in front of ``wall`` (RGB; drawn from ``rng`` when not given); returns (RGB
    image, part mask)."""

    def pt(name):
        return tuple(int(round(v)) for v in joints[J[name]])

    def r(f):
        return max(1, int(round(f * scale)))

    parts = np.zeros((size, size), np.uint8)
    # each drawing op: (part, kind, geometry); painted in order onto parts
    def capsule(a: str, b: str, rad: float) -> tuple:
        return ("capsule", pt(a), pt(b), r(rad))

    def end_blob(a: str, b: str, rad: float, ext: float) -> tuple:
        pa, pb = joints[J[a]], joints[J[b]]
        d = pb - pa
        n = float(np.linalg.norm(d)) or 1.0
        tip = pb + d / n * ext * scale
        return ("capsule", tuple(int(round(v)) for v in pb), tuple(int(round(v)) for v in tip), r(rad))

    def limb_ops(s: str) -> list[tuple[str, tuple]]:
        return [(f"{s}_upper_leg", capsule(f"{s}_hip", f"{s}_knee", 0.045)),
                (f"{s}_lower_leg", capsule(f"{s}_knee", f"{s}_ankle", 0.037)),
                (f"{s}_foot", end_blob(f"{s}_knee", f"{s}_ankle", 0.03, 0.04))]

    def arm_ops(s: str) -> list[tuple[str, tuple]]:
        return [(f"{s}_upper_arm", capsule(f"{s}_shoulder", f"{s}_elbow", 0.035)),
                (f"{s}_lower_arm", capsule(f"{s}_elbow", f"{s}_wrist", 0.03)),
                (f"{s}_hand", end_blob(f"{s}_elbow", f"{s}_wrist", 0.03, 0.035))]

    torso_poly = np.array([joints[J["r_shoulder"]], joints[J["l_shoulder"]], joints[J["l_hip"]], joints[J["r_hip"]]])
    torso_op = ("torso", ("poly", np.round(torso_poly).astype(np.int32), r(0.04)))
    chin = tuple(int(round(v)) for v in (joints[J["neck"]] * 0.6 + joints[J["nose"]] * 0.4))
    neck_op = ("torso", ("capsule", pt("neck"), chin, r(0.03)))
    head_c = joints[[J["nose"], J["r_ear"], J["l_ear"], J["r_eye"], J["l_eye"]]].mean(0)
    head_op = ("head", ("ellipse", tuple(int(round(v)) for v in head_c), (r(0.075), r(0.09))))
    up = joints[J["nose"]] - joints[J["neck"]]
    up = up / (np.linalg.norm(up) or 1.0)
    hair_c = head_c + up * 0.055 * scale
    hair_op = ("hair", ("ellipse", tuple(int(round(v)) for v in hair_c), (r(0.07), r(0.045))))
    far, near = ("l", "r") if yaw > 0 else ("r", "l")
    ops = limb_ops(far) + arm_ops(far) + [torso_op, neck_op] + limb_ops(near) + [head_op, hair_op] + arm_ops(near)

    order_masks: list[tuple[str, np.ndarray]] = []
    for part, (kind, *geo) in ops:
        m = np.zeros((size, size), np.uint8)
        if kind == "capsule":
            cv2.line(m, geo[0], geo[1], 1, 2 * geo[2] + 1, cv2.LINE_8)
            cv2.circle(m, geo[0], geo[2], 1, -1, cv2.LINE_8)
            cv2.circle(m, geo[1], geo[2], 1, -1, cv2.LINE_8)
        elif kind == "poly":
            cv2.fillPoly(m, [geo[0]], 1, cv2.LINE_8)
            cv2.polylines(m, [geo[0]], True, 1, 2 * geo[1] + 1, cv2.LINE_8)
        else:
            cv2.ellipse(m, geo[0], geo[1], 0, 0, 360, 1, -1, cv2.LINE_8)
        if part == "hair":  # hair covers only the top of the head
            m &= (parts == P["head"]).astype(np.uint8)
        order_masks.append((part, m.astype(bool)))
        parts[m.astype(bool)] = P[part]

    mat_rng = np.random.default_rng(outfit.pattern_seed)  # the same outfit renders the same cloth
    skin = np.broadcast_to(np.array(outfit.skin, np.float32), (size, size, 3))
    mats = {"skin": skin, "hair": np.broadcast_to(np.array(outfit.hair, np.float32), (size, size, 3)),
            "top": _material(outfit.top_pattern, outfit.top, size, mat_rng),
            "bottom": _material(outfit.bottom_pattern, outfit.bottom, size, mat_rng),
            "shoes": np.broadcast_to(np.array(outfit.shoes, np.float32), (size, size, 3))}
    def material_of(part: str) -> str:
        if part in ("head", "r_hand", "l_hand"):
            return "skin"
        if part == "hair":
            return "hair"
        if part in ("torso", "r_upper_arm", "l_upper_arm"):
            return "top"
        if part.endswith("lower_arm"):
            return "top" if outfit.long_sleeves else "skin"
        if part.endswith("upper_leg"):
            return "bottom"
        if part.endswith("lower_leg"):
            return "bottom" if outfit.trousers else "skin"
        return "shoes"

    # background: a light studio wall with a soft vertical gradient
    wall = np.asarray(wall if wall is not None else studio_wall(rng), np.float32)
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    img = wall * (1.0 - 0.15 * t) + rng.normal(0, 2, (size, size, 3)).astype(np.float32)
    for part, _ in order_masks:
        final = parts == P[part]
        if not final.any():
            continue
        dist = cv2.distanceTransform(final.astype(np.uint8), cv2.DIST_L2, 3)
        shade = 0.65 + 0.35 * np.clip(dist / max(1.0, 0.03 * scale), 0, 1)
        img[final] = mats[material_of(part)][final] * shade[final, None]
    return np.clip(img, 0, 255).round().astype(np.uint8), parts


class PosesRecipe:
    name = "poses"
    version = 3  # 3: a sample's image and exemplar share one studio wall (the exemplar's background is knowable)

    def __init__(self) -> None:
        self.have_fabrics = any(load_pattern(f) is not None for f in FABRICS)
        if not self.have_fabrics:
            warn_fallback("GIMP fabric textures not fetched (gimp-data)")

    def outputs(self, sample_id: str) -> list[str]:
        return [f"image/{sample_id}.png", f"pose/{sample_id}.json", f"parts/{sample_id}.png",
                f"exemplar/{sample_id}.png", f"exemplar_pose/{sample_id}.json"]

    def provenance(self) -> dict:
        return {
            "material": {"fabrics": "gimp-data" if self.have_fabrics else "procedural"},
            "sources": source_records(["gimp-data", "gimp-data-extras"]),
            "parts": list(PARTS), "joints": list(OPENPOSE_JOINTS),
            "files": {"image": "RGB", "pose": "OpenPose JSON (18 COCO joints; c=0: hidden)",
                      "parts": "8-bit part mask (names in 'parts')", "exemplar": "same outfit, another pose",
                      "exemplar_pose": "OpenPose JSON of the exemplar"},
        }

    def _draw(self, rng: np.random.Generator, outfit: Outfit, size: int,
              wall: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sk = random_skeleton(rng)
        joints, scale = fit_to_canvas(sk, rng, size)
        img, parts = render_figure(joints, sk.visible, sk.yaw, scale, outfit, size, rng, wall)
        kp = np.concatenate([joints, sk.visible[:, None].astype(np.float32)], 1)
        kp[~sk.visible, :2] = 0
        return img, parts, kp

    @staticmethod
    def _json(kp: np.ndarray, size: int) -> Json:
        return Json({"version": 1.3, "canvas_width": size, "canvas_height": size,
                     "people": [{"pose_keypoints_2d": [round(float(v), 3) for v in kp.reshape(-1)]}]})

    def render(self, index: int, rng: np.random.Generator, size: int) -> Sample:
        sid = f"{index:06d}"
        outfit = random_outfit(rng, self.have_fabrics)
        # one photo shoot: the same wall behind both poses (as DeepFashion's uniform backgrounds), so the
        # exemplar tells the network the background as well as the outfit
        wall = studio_wall(rng)
        img, parts, kp = self._draw(rng, outfit, size, wall)
        ex, _, ekp = self._draw(rng, outfit, size, wall)
        return Sample({
            f"image/{sid}.png": Png(img),
            f"parts/{sid}.png": Png(parts, "L"),
            f"exemplar/{sid}.png": Png(ex),
            f"exemplar_pose/{sid}.json": self._json(ekp, size),
            f"pose/{sid}.json": self._json(kp, size),
        })
