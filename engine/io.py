"""Image, label-map, instance-map and pose I/O. numpy in, numpy out; every failure is an InputError
that names the file and the problem."""
from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .limits import MAX_CANVAS_SIDE, check_image_size, check_int_range, finite_number, load_json, printable
from .requests.base import InputError

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def _open(path: Path | str) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            check_image_size(*img.size, str(path))  # from the header, before decoding
            img.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path} was refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{path} is not an image format this program can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path} is corrupt or truncated: {exc}") from exc
    if img.width == 0 or img.height == 0:
        raise InputError(f"{path} has zero size")
    return img


def to_rgb(img: Image.Image, alpha: Literal["white", "black", "keep"] = "white") -> np.ndarray:
    """Any PIL image -> uint8 H×W×3 (or H×W×4 with ``alpha="keep"``), EXIF orientation applied."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        arr = (arr / (65535.0 if hi > 255 else 255.0) * 255.0).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        if alpha == "keep":
            return np.asarray(rgba, dtype=np.uint8).copy()
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if alpha == "white" else (0, 0, 0, 255))
        bg.alpha_composite(rgba)
        return np.asarray(bg.convert("RGB"), dtype=np.uint8).copy()
    out = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    if alpha == "keep":
        out = np.concatenate([out, np.full(out.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return out


def load_image(path: Path | str, alpha: Literal["white", "black", "keep"] = "white") -> np.ndarray:
    """Load any image Pillow reads (EXIF orientation, grey, palette, 16-bit, CMYK, alpha) as RGB uint8."""
    return to_rgb(_open(path), alpha)


def load_grey(path: Path | str) -> np.ndarray:
    """A sketch or mask as uint8 H×W (alpha composited over white)."""
    rgb = load_image(path)
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint8).copy()


def save_image(path: Path | str, image: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"save_image wants uint8, got {image.dtype}")
    try:
        Image.fromarray(image).save(path)
    except ValueError as exc:  # "unknown file extension"
        raise InputError(f"{path}: cannot write an image with the suffix {path.suffix!r} ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Palettes and label maps
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Palette:
    """Class names and colours of a label set. Index i has ``names[i]`` and ``colors[i]``."""

    name: str
    names: tuple[str, ...]
    colors: np.ndarray  # (N, 3) uint8
    ignore_index: int | None = None
    things: frozenset[int] = frozenset()  # indices of countable "thing" classes (panoptic)

    def __len__(self) -> int:
        return len(self.names)

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """H×W int label map -> H×W×3 uint8 via one lookup table (out-of-range -> black)."""
        lut = np.zeros((max(256, len(self.names)) if labels.dtype == np.uint8 else 65536, 3), np.uint8)
        lut[: len(self.colors)] = self.colors
        idx = labels.astype(np.int64)
        idx = np.where((idx >= 0) & (idx < len(lut)), idx, len(lut) - 1)
        if len(lut) > len(self.colors):
            lut[-1] = 0
        return lut[idx]

    def decode(self, rgb: np.ndarray, *, strict: bool = True) -> np.ndarray:
        """H×W×3 colours -> H×W label map via a packed-colour lookup. Unknown colours raise (strict)
        or map to the nearest palette colour."""
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        colors = self.colors.astype(np.int64)
        keys = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        pos = np.clip(np.searchsorted(sorted_keys, packed), 0, len(sorted_keys) - 1)
        found = sorted_keys[pos] == packed
        labels = order[pos]
        if not found.all():
            if strict:
                bad = np.unique(packed[~found])[:5]
                raise InputError(f"label map has {int((~found).sum())} pixels whose colour is not in the "
                                 f"{self.name} palette (e.g. {[f'#{int(b):06x}' for b in bad]})")
            uniq, inv = np.unique(packed[~found], return_inverse=True)
            cols = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], 1)
            d = ((cols[:, None, :] - self.colors[None].astype(np.int64)) ** 2).sum(-1)
            labels = labels.copy()
            labels[~found] = d.argmin(1)[inv]
        return labels.astype(np.int32)


PALETTES = ("ade20k", "celebamask_hq", "coco_panoptic", "coco_stuff", "scenes")


@cache
def load_palette(name: str) -> Palette:
    """A palette from ``assets/palettes/<name>.json`` ({"names": [...], "colors": [[r,g,b],...], ...})."""
    folder = ASSETS / "palettes"
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum() or not name.isascii():
        raise InputError(f"unknown palette {printable(name)!r}: a palette is named by its file in {folder} "
                         f"(one of {', '.join(sorted(p.stem for p in folder.glob('*.json')))}), not by a path")
    path = folder / f"{name}.json"
    if not path.exists():
        raise InputError(f"unknown palette {name!r}: {path} does not exist")
    raw = load_json(path, "palette JSON")
    names, colors = (raw.get("names"), raw.get("colors")) if isinstance(raw, dict) else (None, None)
    if (not isinstance(names, list) or not isinstance(colors, list)
            or not all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                       for c in colors)):
        raise InputError(f"{path}: expected {{'names': [...], 'colors': [[r, g, b], ...]}} with 0..255 colours")
    colors = np.asarray(raw["colors"], dtype=np.uint8).reshape(-1, 3)
    if len(colors) != len(raw["names"]):
        raise InputError(f"{path}: {len(raw['names'])} names but {len(colors)} colours")
    return Palette(name=name, names=tuple(raw["names"]), colors=colors,
                   ignore_index=raw.get("ignore_index"), things=frozenset(raw.get("things", [])))


def load_label_map(path: Path | str, palette: Palette | None = None, num_classes: int | None = None) -> np.ndarray:
    """An indexed (P/L/I;16) PNG -> H×W int32 label map; an RGB one is decoded through ``palette``."""
    img = ImageOps.exif_transpose(_open(path))
    if img.mode in ("P", "L", "I;16", "I;16B", "I;16L", "I"):
        labels = np.asarray(img, dtype=np.int64).astype(np.int32)
    elif palette is not None:
        labels = palette.decode(np.asarray(img.convert("RGB")))
    else:
        raise InputError(f"{path} is a colour image; a label map must be an indexed or greyscale PNG "
                         f"(or name its palette so colours can be decoded)")
    if num_classes is not None and labels.size and (labels.max() >= num_classes or labels.min() < 0):
        raise InputError(f"{path} has label {int(labels.max())}, "
                         f"but this model knows {num_classes} classes (0..{num_classes - 1})")
    return labels


def save_label_map(path: Path | str, labels: np.ndarray, palette: Palette | None = None) -> None:
    """Write an indexed PNG (with the palette's colours embedded when it fits in 256 entries)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise InputError("label maps with values outside 0..255 must be saved as instance maps (16-bit)")
    img = Image.fromarray(labels.astype(np.uint8), mode="L")
    if palette is not None and len(palette) <= 256:
        img = img.convert("P")
        flat = np.zeros((256, 3), np.uint8)
        flat[: len(palette)] = palette.colors
        img.putpalette(flat.reshape(-1).tolist())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def load_instance_map(path: Path | str) -> np.ndarray:
    """A 16-bit (or 8-bit) greyscale PNG -> H×W int32 instance ids."""
    img = ImageOps.exif_transpose(_open(path))
    if img.mode not in ("I;16", "I;16B", "I;16L", "I", "L", "P"):
        raise InputError(f"{path} is a {img.mode} image; an instance map must be a 16-bit or 8-bit greyscale PNG")
    return np.asarray(img, dtype=np.int64).astype(np.int32)


def save_instance_map(path: Path | str, ids: np.ndarray) -> None:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise InputError("instance ids must lie in 0..65535 to be stored as a 16-bit PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint16)).save(path)


def instance_edges(ids: np.ndarray) -> np.ndarray:
    """SPADE's instance-edge map: 1 where a 4-neighbour has another id (both sides marked)."""
    ids = np.asarray(ids)
    edge = np.zeros(ids.shape, dtype=bool)
    dx = ids[:, 1:] != ids[:, :-1]
    dy = ids[1:, :] != ids[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Pose: OpenPose 18-keypoint (COCO order) JSON
# ---------------------------------------------------------------------------------------------
OPENPOSE_JOINTS: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
# OpenPose's 17 limbs for the 18-point model (joint index pairs), in its rendering order.
OPENPOSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)


def load_openpose_json(path: Path | str) -> np.ndarray:
    """OpenPose JSON (first person, ``pose_keypoints_2d``: 18×(x, y, c)) -> (18, 3) float32.
    Missing joints have confidence 0."""
    path = Path(path)
    raw = load_json(path, "OpenPose JSON")
    people = raw.get("people") if isinstance(raw, dict) else None
    if not people or not isinstance(people, list):
        raise InputError(f"{path} holds no person (expected {{'people': [{{'pose_keypoints_2d': [...]}}]}})")
    person = people[0]
    flat = person.get("pose_keypoints_2d", []) if isinstance(person, dict) else None
    if not isinstance(flat, list):
        raise InputError(f"{path}: people[0] must be an object with a 'pose_keypoints_2d' list")
    if len(flat) not in (54, 75):
        raise InputError(f"{path}: pose_keypoints_2d has {len(flat)} numbers; 54 (18 joints × 3) expected")
    values = [finite_number(v, f"{path}: pose_keypoints_2d[{i}]") for i, v in enumerate(flat)]
    kp = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    if np.abs(kp[:, :2]).max(initial=0.0) > 1e6:
        raise InputError(f"{path}: a keypoint coordinate lies beyond ±1e6 pixels")
    kp = kp.astype(np.float32)
    if len(kp) == 25:  # BODY_25 -> COCO 18 (drop mid-hip and feet)
        kp = kp[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]]
    return kp


def load_openpose_canvas(path: Path | str) -> tuple[int, int] | None:
    """The ``canvas_width``/``canvas_height`` an OpenPose JSON names (None when absent), within limits."""
    raw = load_json(path, "OpenPose JSON")
    if not isinstance(raw, dict) or "canvas_width" not in raw or "canvas_height" not in raw:
        return None
    return (check_int_range(raw["canvas_width"], f"{path}: canvas_width", 1, MAX_CANVAS_SIDE),
            check_int_range(raw["canvas_height"], f"{path}: canvas_height", 1, MAX_CANVAS_SIDE))


def save_openpose_json(path: Path | str, keypoints: np.ndarray, size: tuple[int, int] | None = None) -> None:
    kp = np.asarray(keypoints, dtype=np.float32).reshape(18, 3)
    data = {"version": 1.3, "people": [{"pose_keypoints_2d": [round(float(v), 3) for v in kp.reshape(-1)]}]}
    if size is not None:
        data["canvas_width"], data["canvas_height"] = int(size[0]), int(size[1])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))


def resize_nearest(labels: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """An integer map (labels, instance ids, masks) resized to ``size`` = (H, W), or a square side,
    with PIL's nearest neighbour: what torchvision ``Resize(NEAREST)`` does in the official loaders and
    in our training data, and never a blend of ids. Always a new array."""
    h, w = (size, size) if isinstance(size, int) else size
    arr = np.asarray(labels)
    if arr.shape[:2] == (h, w):
        return arr.copy()
    if arr.min() >= 0 and arr.max() <= 255:
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    else:
        img = Image.fromarray(arr.astype(np.int32), mode="I")
    return np.asarray(img.resize((w, h), Image.NEAREST)).astype(arr.dtype)


# ------------------------------------------------------------------------------ fetched third-party sources
def cache_root() -> Path:
    """Where ``i2i data fetch`` puts third-party sources (``I2I_DATA_CACHE`` overrides ``<repo>/.cache/i2i``)."""
    return Path(os.environ.get("I2I_DATA_CACHE", ASSETS.parent / ".cache" / "i2i"))


def source_dir(name: str) -> Path | None:
    """The extracted folder of a fetched source, or None when it was not fetched."""
    d = cache_root() / name
    return d if (d / ".fetched").exists() else None


def add_fetched_to_path(*names: str) -> bool:
    """Put fetched wheels (extracted folders) on ``sys.path``; False when one was not fetched."""
    dirs = [source_dir(n) for n in names]
    if any(d is None for d in dirs):
        return False
    for d in dirs:
        if str(d) not in sys.path:
            sys.path.append(str(d))
    return True


# ------------------------------------------------------------------------------ grids
def image_grid(images: Sequence[np.ndarray], columns: int = 4, pad: int = 4) -> np.ndarray:
    """Images (resized to the first one's size) tiled on a white background, ``columns`` per row."""
    h, w = images[0].shape[:2]
    tiles = [im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images]
    cols = min(columns, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    out = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = t[..., :3]
    return out
