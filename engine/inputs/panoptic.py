"""Panoptic maps: semantic label map + instance-id map → the generator's conditioning.

Convention (``../shared/reference/PANOPTIC.md`` §1, Cityscapes ``instanceIds`` style, the same as
the ``scenes`` recipe): a stuff pixel has instance id = its class index (or 0 = "no instance");
thing instance k ≥ 1 of class c has id c·1000 + k. The *segment* of a pixel is therefore
(class, id) when the id names an instance (id ≠ 0 and id ≠ class), else its class alone. The
network only needs segment identity, so :func:`panoptic_ids` compacts segments to 0..n-1.

COCO panoptic annotations (PNG with id = R + 256·G + 256²·B, plus the JSON ``segments_info``) are
converted into the same (labels, instances) pair by :func:`import_coco_panoptic`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from ..io import Palette, instance_edges, load_image, load_palette
from ..requests.base import InputError

THING_MULTIPLIER = 1000


# ---------------------------------------------------------------------------------------------
# Segments
# ---------------------------------------------------------------------------------------------
def check_pair(labels: np.ndarray, instances: np.ndarray | None) -> None:
    """Both maps are 2-D integer arrays of the same size."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"the label map must be a single-channel H×W array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"the label map must hold integer class indices, got {labels.dtype}")
    if labels.size == 0:
        raise InputError("the label map is empty")
    if instances is not None:
        instances = np.asarray(instances)
        if instances.shape != labels.shape:
            raise InputError(f"the instance map is {instances.shape[1]}×{instances.shape[0]} but the label map is "
                             f"{labels.shape[1]}×{labels.shape[0]}; they must be the same size")
        if not np.issubdtype(instances.dtype, np.integer):
            raise InputError(f"the instance map must hold integer ids, got {instances.dtype}")
        if instances.min() < 0:
            raise InputError("the instance map has negative ids")


def panoptic_ids(labels: np.ndarray, instances: np.ndarray | None = None) -> np.ndarray:
    """Compact segment ids (int64, 0..n-1) of a panoptic map.

    Pixels with instance id 0 or id equal to their class are stuff (one segment per class);
    any other id is a thing instance (one segment per (class, id)). Without an instance map
    every class is one segment (the semantic-only case).
    """
    check_pair(labels, instances)
    labels = np.asarray(labels).astype(np.int64)
    if instances is None:
        key = labels
    else:
        inst = np.asarray(instances).astype(np.int64)
        is_instance = (inst != 0) & (inst != labels)
        key = np.where(is_instance, (labels + 1) * (1 << 32) + inst, labels)
    _, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64)


def make_instance_map(labels: np.ndarray, instance_masks: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Instance map in the project convention from a label map and [(class, bool mask), ...]
    (masks painted in order, later ones on top); stuff pixels get their class index."""
    inst = np.asarray(labels).astype(np.int32).copy()
    counters: dict[int, int] = {}
    for cls, mask in instance_masks:
        counters[cls] = counters.get(cls, 0) + 1
        inst[np.asarray(mask, bool)] = cls * THING_MULTIPLIER + counters[cls]
    return inst


# ---------------------------------------------------------------------------------------------
# Conditioning tensor
# ---------------------------------------------------------------------------------------------
def remap_labels(labels: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
    """User label indices → the generator's one-hot indices (SPADE's dataset conventions).

    ``coco``: COCO-Stuff labels 0..181, 255 (unlabelled) → 182 (don't-care).
    ``ade20k``: 0 (other) → 150 (don't-care), class k → k-1.
    ``none``: indices used as they are.
    """
    label_nc = int(config["label_nc"])
    dontcare = bool(config.get("contain_dontcare_label"))
    remap = config.get("label_remap", "none")
    raw = np.asarray(labels).astype(np.int64)
    out = raw
    if remap == "coco":
        out = np.where(raw == 255, label_nc, raw)
        valid = ((raw >= 0) & (raw < label_nc)) | (raw == 255)
        known = f"0..{label_nc - 1} or 255 (unlabelled)"
    elif remap == "ade20k":
        out = np.where(raw == 0, label_nc + 1, raw) - 1
        valid = (raw >= 0) & (raw <= label_nc)
        known = f"0 (other) .. {label_nc}"
    elif remap == "none":
        top = label_nc + (1 if dontcare else 0)
        valid = (raw >= 0) & (raw < top)
        known = f"0..{top - 1}"
    else:
        raise InputError(f"unknown label_remap {remap!r} in the model config")
    if not valid.all():
        bad = np.unique(np.asarray(labels)[~valid])[:5].tolist()
        raise InputError(f"the label map has class indices {bad} that this model does not know (it takes {known})")
    return out


def conditioning(labels: np.ndarray, instances: np.ndarray | None, config: Mapping[str, Any]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(semantic (1, semantic_nc, H, W) float32, ids (1, H, W) int64) for one panoptic map.

    ``semantic`` = one-hot labels [+ don't-care] [+ instance-edge channel]. As in SPADE the edges
    are the 4-neighbour changes of the instance map itself (with this project's convention, stuff
    id = class, they include class boundaries, like Cityscapes ``instanceIds``); without an
    instance map they are the label map's.
    """
    ids = panoptic_ids(labels, instances)
    onehot_idx = remap_labels(labels, config)
    nc = int(config["label_nc"]) + (1 if config.get("contain_dontcare_label") else 0)
    H, W = ids.shape
    sem = torch.zeros(1, nc, H, W, dtype=torch.float32)
    sem.scatter_(1, torch.from_numpy(onehot_idx)[None, None], 1.0)
    if config.get("instance_edge", True):
        edges = torch.from_numpy(instance_edges(instances if instances is not None else labels))[None, None]
        sem = torch.cat([sem, edges], 1)
    return sem, torch.from_numpy(ids)[None]


def batch_conditioning(items: list[tuple[np.ndarray, np.ndarray | None]], config: Mapping[str, Any]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    sems, ids = zip(*(conditioning(lab, inst, config) for lab, inst in items), strict=True)
    return torch.cat(sems), torch.cat(ids)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def load_panoptic(labels_path: Path | str, instances_path: Path | str | None = None,
                  palette: str | Palette | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a label map (indexed/grey PNG, or RGB decoded with ``palette``, a palette or its name)
    and an optional 16-bit instance map; checks they match."""
    from ..io import load_instance_map, load_label_map

    pal = load_palette(palette) if isinstance(palette, str) else palette
    labels = load_label_map(labels_path, pal)
    instances = load_instance_map(instances_path) if instances_path else None
    try:
        check_pair(labels, instances)
    except InputError as exc:
        raise InputError(f"{labels_path} / {instances_path}: {exc}") from exc
    return labels, instances


def _coco_segment_ids(png: Path | str) -> np.ndarray:
    rgb = load_image(png).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def import_coco_panoptic(png: Path | str, annotations: Path | str | Mapping[str, Any],
                         label_space: Literal["coco_stuff", "coco_panoptic"] = "coco_stuff"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """A COCO panoptic PNG and its JSON → (labels, instances) in the project convention.

    ``annotations``: the panoptic JSON (whole file with ``annotations`` + ``categories``, or one
    annotation with ``segments_info``). ``label_space`` ``coco_stuff``: label = category id − 1
    (SPADE's COCO-Stuff indices; panoptic's merged stuff categories (id > 182) become 255,
    unlabelled); ``coco_panoptic``: the contiguous 0..132 index of ``assets/palettes/coco_panoptic.json``.
    Unannotated pixels (segment id 0) are 255. Thing instance k of class c gets c·1000 + k
    (int32: COCO classes above 65 exceed 16 bits, so keep these maps in memory or re-encode).
    """
    from ..limits import load_json

    png = Path(png)
    if isinstance(annotations, Mapping):
        data: Mapping[str, Any] = annotations
    else:
        data = load_json(annotations, "COCO panoptic JSON")
    src = annotations if not isinstance(annotations, Mapping) else "the panoptic annotation"
    if not isinstance(data, Mapping):
        raise InputError(f"{src}: expected a JSON object with 'annotations' or 'segments_info'")
    ann: Mapping[str, Any] | None = None
    if "segments_info" in data:
        ann = data
    else:
        anns = data.get("annotations", [])
        if not isinstance(anns, list):
            raise InputError(f"{src}: 'annotations' must be a list")
        for a in anns:
            if isinstance(a, Mapping) and isinstance(a.get("file_name"), str) and Path(a["file_name"]).name == png.name:
                ann = a
                break
        if ann is None:
            raise InputError(f"{src} has no annotation with file_name {png.name!r}")
    segments = ann.get("segments_info")
    if not isinstance(segments, list) or not all(
            isinstance(i, Mapping) and _whole(i.get("id")) and _whole(i.get("category_id")) for i in segments):
        raise InputError(f"{src}: 'segments_info' must be a list of objects with whole-number 'id' and 'category_id'")
    cats = data.get("categories", [])
    if not isinstance(cats, list) or not all(isinstance(c, Mapping) and _whole(c.get("id")) for c in cats):
        raise InputError(f"{src}: 'categories' must be a list of objects with a whole-number 'id'")
    pal = load_palette("coco_panoptic")
    cat_index = {int(c): i for i, c in enumerate(_palette_category_ids())}
    thing_cats = {int(c["id"]) for c in data.get("categories", []) if c.get("isthing")}
    if not thing_cats:  # the JSON may be a single annotation: use the palette's thing list
        thing_cats = {_palette_category_ids()[i] for i in pal.things}
    seg = _coco_segment_ids(png)
    labels = np.full(seg.shape, 255, np.int32)
    instances = np.full(seg.shape, 255, np.int32)
    counters: dict[int, int] = {}
    for info in ann["segments_info"]:
        cat = int(info["category_id"])
        if label_space == "coco_stuff":
            cls = cat - 1 if 1 <= cat <= 182 else 255
        else:
            if cat not in cat_index:
                raise InputError(f"{src}: COCO category id {cat} is not one of the 133 panoptic categories")
            cls = cat_index[cat]
        where = seg == int(info["id"])
        labels[where] = cls
        if cat in thing_cats and cls != 255:
            counters[cls] = counters.get(cls, 0) + 1
            instances[where] = cls * THING_MULTIPLIER + counters[cls]
        else:
            instances[where] = cls
    return labels, instances


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _palette_category_ids() -> list[int]:
    from ..io import ASSETS

    data = json.loads((ASSETS / "palettes" / "coco_panoptic.json").read_text())
    return [int(c) for c in data["category_ids"]]


def edges_image(ids: np.ndarray) -> np.ndarray:
    """The instance-edge channel as a uint8 H×W×3 picture (white edges on black)."""
    e = (instance_edges(ids) * 255).astype(np.uint8)
    return np.repeat(e[..., None], 3, axis=2)


def save_coco_png(path: Path | str, segment_ids: np.ndarray) -> None:
    """Write a COCO panoptic PNG (id = R + 256·G + 256²·B); used to make test fixtures."""
    s = np.asarray(segment_ids).astype(np.int64)
    rgb = np.stack([s % 256, (s // 256) % 256, (s // 65536) % 256], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


__all__ = ["check_pair", "panoptic_ids", "make_instance_map", "remap_labels", "conditioning",
           "batch_conditioning", "load_panoptic", "import_coco_panoptic", "edges_image", "save_coco_png",
           "THING_MULTIPLIER"]
