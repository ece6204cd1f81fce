"""Contact sheets: N samples of a built dataset in one PNG, one row per sample, one panel per file
(labels colourised through their palette, instance ids in random colours, keypoints drawn)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..inputs.cocosnet import render_pose
from ..inputs.panoptic import THING_MULTIPLIER
from ..io import load_image, load_instance_map, load_label_map, load_openpose_json, load_palette
from ..requests.base import InputError


def colorize_instances(ids: np.ndarray) -> np.ndarray:
    """Random but stable colour per panoptic id (hash of the id); stuff ids drawn darker."""
    uniq, inv = np.unique(ids, return_inverse=True)
    uniq = uniq.astype(np.int64)
    cols = np.stack([((uniq * 2654435761) >> s) & 255 for s in (0, 8, 16)], -1).astype(np.float32)
    cols = np.where((uniq < THING_MULTIPLIER)[:, None], cols * 0.4, cols * 0.6 + 100)
    return cols[inv.reshape(ids.shape)].astype(np.uint8)


def pose_overlay(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The pose as the networks see it (OpenPose rendering) over the darkened image."""
    rendering, _ = render_pose(keypoints, (image.shape[1], image.shape[0]))
    drawn = rendering.any(axis=-1)
    out = image // 2
    out[drawn] = rendering[drawn]
    return out


def _fit(img: np.ndarray, cell: int) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    h, w = img.shape[:2]
    s = cell / max(h, w)
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                     interpolation=cv2.INTER_NEAREST if s >= 1 else cv2.INTER_AREA)
    out = np.full((cell, cell, 3), 32, np.uint8)
    y, x = (cell - img.shape[0]) // 2, (cell - img.shape[1]) // 2
    out[y:y + img.shape[0], x:x + img.shape[1]] = img
    return out


def _panels(recipe: str, root: Path, sid: str, prov: dict) -> list[tuple[str, np.ndarray]]:
    if recipe == "scenes":
        pal = load_palette("scenes")
        ids = load_instance_map(root / "instance" / f"{sid}.png")
        return [("image", load_image(root / "image" / f"{sid}.png")),
                ("exemplar", load_image(root / "exemplar" / f"{sid}.png")),
                ("label", pal.colorize(load_label_map(root / "label" / f"{sid}.png"))),
                ("instance", colorize_instances(ids)),
                ("edge", load_image(root / "edge" / f"{sid}.png"))]
    if recipe == "faces":
        pal = load_palette("celebamask_hq")
        domain = "female" if (root / "female" / f"{sid}.png").exists() else "male"
        img = load_image(root / domain / f"{sid}.png")
        pts = np.asarray(json.loads((root / "landmarks" / f"{sid}.json").read_text()), np.float32)
        marked = img.copy()
        big = cv2.resize(marked, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
        for x, y in pts:
            cv2.circle(big, (int(x * 2), int(y * 2)), 1, (0, 255, 0), -1)
        return [(f"face:{domain}", img), ("landmarks", big),
                ("parsing", pal.colorize(load_label_map(root / "parsing" / f"{sid}.png")))]
    if recipe == "poses":
        img = load_image(root / "image" / f"{sid}.png")
        kp = load_openpose_json(root / "pose" / f"{sid}.json")
        ex = load_image(root / "exemplar" / f"{sid}.png")
        ekp = load_openpose_json(root / "exemplar_pose" / f"{sid}.json")
        parts = load_label_map(root / "parts" / f"{sid}.png")
        names = prov.get("parts", [])
        rng = np.random.default_rng(3)
        lut = rng.integers(40, 255, (256, 3)).astype(np.uint8)
        lut[0] = 0
        return [("image", img), ("pose", pose_overlay(img, kp)), ("parts", lut[parts]),
                ("exemplar", ex), ("exemplar pose", pose_overlay(ex, ekp))][: 5 if names is not None else 5]
    if recipe == "sketches":
        path = root / f"{sid}.png"
        pair = load_image(path)
        s = pair.shape[0]
        return [("edge", pair[:, :s]), ("photo", pair[:, s:])]
    raise InputError(f"no contact-sheet layout for recipe {recipe!r}")


def _header(names: list[str], cell: int) -> np.ndarray:
    """A strip with each panel's name, so a sheet explains itself."""
    strip = np.full((14, cell * len(names), 3), 32, np.uint8)
    for k, name in enumerate(names):
        cv2.putText(strip, name[: max(4, cell // 7)], (k * cell + 3, 10), cv2.FONT_HERSHEY_PLAIN, 0.8,
                    (230, 230, 230), 1, cv2.LINE_AA)
    return strip


def _sample_ids(recipe: str, root: Path) -> list[str]:
    if recipe == "faces":
        ids = [p.stem for d in ("female", "male") for p in (root / d).glob("*.png")]
    elif recipe == "sketches":
        ids = [f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.png") if p.parent.name != "scene"]
    else:
        ids = [p.stem for p in (root / "image").glob("*.png")]
    return sorted(ids)


def _scene_sketch_panels(root: Path, sid: str) -> list[tuple[str, np.ndarray]]:
    data = json.loads((root / "scene" / f"{sid}.json").read_text())
    bg = load_image(root / "scene" / data["background"])
    sketch = bg.astype(np.int32)
    for obj in data["objects"]:
        sketch = np.minimum(sketch, load_image(root / "scene" / obj["sketch"]))
    boxed = sketch.astype(np.uint8).copy()
    for obj in data["objects"]:
        x0, y0, x1, y1 = (int(v) for v in obj["box"])
        cv2.rectangle(boxed, (x0, y0), (x1, y1), (255, 0, 0), 1)
    return [("scene sketch", boxed), ("scene photo", load_image(root / "scene" / f"{sid}_image.png"))]


def contact_sheet(dataset: Path | str, *, n: int = 8, out: Path | str, split: str = "train", seed: int = 0,
                  cell: int = 96) -> Path:
    """Render ``n`` random samples of ``split`` to ``out`` (PNG); returns ``out``."""
    dataset = Path(dataset)
    prov_path = dataset / "provenance.json"
    if not prov_path.exists():
        raise InputError(f"{dataset} has no provenance.json; is it a dataset built by `i2i data build`?")
    prov = json.loads(prov_path.read_text())
    recipe = prov.get("recipe", "")
    root = dataset / split
    ids = _sample_ids(recipe, root)
    if not ids:
        raise InputError(f"{root} holds no samples")
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(ids), size=min(n, len(ids)), replace=False))
    rows = []
    header: list[str] = []
    for j in picked:
        sid = ids[j]
        if recipe == "sketches":
            cls, stem = sid.split("/")
            panels = _panels(recipe, root / cls, stem, prov)
            panels = [(f"{k}:{cls}" if k == "edge" else k, v) for k, v in panels]
        else:
            panels = _panels(recipe, root, sid, prov)
        if len(panels) > len(header):
            header = [name.split(":")[0] for name, _ in panels]
        fitted = [_fit(img, cell) for _, img in panels]
        for (name, _), tile in zip(panels, fitted, strict=True):  # per-row facts (e.g. the face's domain) on the tile
            if ":" in name:
                cv2.putText(tile, name.split(":", 1)[1], (2, cell - 4), cv2.FONT_HERSHEY_PLAIN, 0.8,
                            (255, 255, 0) if recipe != "sketches" else (200, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate(fitted, 1))
    if recipe == "sketches":
        scene_ids = sorted(p.stem for p in (root / "scene").glob("*.json")) if (root / "scene").exists() else []
        for sid in scene_ids[: max(1, n // 4)]:
            rows.append(np.concatenate([_fit(img, cell) for _, img in _scene_sketch_panels(root, sid)], 1))
    rows.insert(0, _header(header, cell))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=32) for r in rows]
    sheet = np.concatenate(rows, 0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out, optimize=True)
    return out
