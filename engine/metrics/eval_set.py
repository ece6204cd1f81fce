"""Evaluation sets: the cases of a dataset split in any of the recipe layouts (``scenes``,
``faces``, ``sketches``, ``poses``), read once for ``i2i eval`` and the object measures."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import load_image, load_instance_map, load_label_map, load_openpose_canvas, load_openpose_json
from ..requests.base import InputError

SCENE_LAYOUT, FACE_LAYOUT, SKETCH_LAYOUT, POSE_LAYOUT = "scenes", "faces", "sketches", "poses"
SPLITS = ("train", "val", "test")

# How a folder of outputs must name them: one PNG per sample, named by the sample's id. These are
# the names `i2i generate TASK --input <split folder> --out DIR` writes.
OUTPUT_NAMING = {
    SCENE_LAYOUT: "<id>.png, the sample's file name in <split>/label and <split>/image (e.g. 000018.png)",
    FACE_LAYOUT: "<id>.png, the source photo's file name in <split>/female or <split>/male",
    SKETCH_LAYOUT: "<class>/<id>.png, the pair's path under <split>/",
    POSE_LAYOUT: "<id>.png, the sample's file name in <split>/image and <split>/pose (e.g. 000018.png)",
}


@dataclass
class Case:
    """One evaluation sample: what a model needs, and what its output is compared against."""

    id: str
    inputs: dict[str, Any]
    ground_truth: np.ndarray | None = None
    labels: np.ndarray | None = None
    target_group: str = ""  # faces: the domain the output should belong to


@dataclass
class EvalSet:
    layout: str
    cases: list[Case]
    real: dict[str, list[np.ndarray]] = field(default_factory=dict)  # group ("" = all) -> real images


def split_sizes(root: Path) -> dict[str, int]:
    """Samples per split of a built dataset (0 for an absent split), from the sample files."""
    sizes = {}
    for split in SPLITS:
        base = root / split
        if (base / "image").is_dir():
            sizes[split] = len(list((base / "image").glob("*.png")))
        elif base.is_dir():
            sizes[split] = sum(len(list(d.glob("*.png"))) for d in base.iterdir()
                               if d.is_dir() and d.name not in ("scene", "parsing", "landmarks"))
        else:
            sizes[split] = 0
    return sizes


def no_samples_message(root: Path, split: str) -> str:
    """Why ``split`` of ``root`` has nothing to evaluate, and what to do."""
    sizes = split_sizes(root)
    if not any(sizes.values()):
        return (f"{root} is not a built dataset (no samples in train/, val/ or test/; "
                "build one with `i2i data build RECIPE`)")
    have = ", ".join(f"{s} {n}" for s, n in sizes.items() if n)
    return (f"{root} has no {split} samples (it has {have}): a build puts sample #18 of every 20 in val and "
            f"#19 in test, so val and test need `i2i data build RECIPE --n 20` or more; "
            f"`--split all` evaluates every split the build has")


def detect_layout(root: Path, split: str) -> str:
    base = root / split
    if not base.is_dir():
        raise InputError(no_samples_message(root, split))
    if (base / "image").is_dir() and (base / "label").is_dir():
        return SCENE_LAYOUT
    if (base / "image").is_dir() and (base / "pose").is_dir():
        return POSE_LAYOUT
    if (base / "female").is_dir() or (base / "male").is_dir():
        return FACE_LAYOUT
    if any(d.is_dir() and d.name != "scene" and any(d.glob("*.png")) for d in base.iterdir()):
        return SKETCH_LAYOUT
    raise InputError(f"{base} is not a scenes, faces, poses or sketches layout")


def _limit(items: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(items):
        return items
    idx = np.sort(np.random.default_rng(seed).choice(len(items), n, replace=False))
    return [items[i] for i in idx]


def load_eval_set(root: Path, split: str, *, n: int | None = None, seed: int = 0,
                  reference: str = "image", face_exemplars: bool = False) -> EvalSet:
    """Read a split into cases (at most ``n``, a seeded subset) plus the real images for FD.

    Faces with ``face_exemplars`` (CoCosNet): each case also gets its parsing map (``parsing``) and
    an exemplar of another identity, the next sample of the split in sorted id order (wrapping):
    ``exemplar``, ``exemplar_map``, ``exemplar_id``, ``exemplar_group``. Samples without a
    ``parsing/<id>.png`` get neither."""
    layout = detect_layout(root, split)
    base = root / split
    if layout == SCENE_LAYOUT:
        ids = _limit(sorted(p.stem for p in (base / "image").glob("*.png")), n, seed)
        cases = []
        for i in ids:
            img = load_image(base / "image" / f"{i}.png")
            ex_path = base / "exemplar" / f"{i}.png"
            exemplar = load_image(ex_path) if ex_path.exists() else None
            inst_path = base / "instance" / f"{i}.png"
            gt = exemplar if reference == "exemplar" and exemplar is not None else img
            cases.append(Case(i, {"labels": load_label_map(base / "label" / f"{i}.png"),
                                  "instances": load_instance_map(inst_path) if inst_path.exists() else None,
                                  "exemplar": exemplar, "photo": img},
                              ground_truth=gt, labels=load_label_map(base / "label" / f"{i}.png")))
        return EvalSet(layout, cases, {"": [c.ground_truth for c in cases]})
    if layout == POSE_LAYOUT:
        return _pose_set(base, _limit(sorted(p.stem for p in (base / "image").glob("*.png")), n, seed))
    if layout == FACE_LAYOUT:
        groups = [g for g in ("female", "male") if (base / g).is_dir()]
        real = {g: [load_image(p) for p in sorted((base / g).glob("*.png"))] for g in groups}
        items = [(g, p) for g in groups for p in sorted((base / g).glob("*.png"))]
        maps = base / "parsing"
        by_id = {p.stem: (g, p) for g, p in items}
        mapped = sorted(i for i in by_id if (maps / f"{i}.png").exists()) if face_exemplars else []
        cases = []
        for g, p in _limit(items, n, seed):
            target = [o for o in groups if o != g]
            inputs: dict[str, Any] = {"source": load_image(p), "source_group": g}
            if p.stem in mapped:
                inputs["parsing"] = load_label_map(maps / f"{p.stem}.png")
                ex_id = mapped[(mapped.index(p.stem) + 1) % len(mapped)]
                if ex_id != p.stem:
                    ex_group, ex_path = by_id[ex_id]
                    inputs.update(exemplar=load_image(ex_path), exemplar_map=load_label_map(maps / f"{ex_id}.png"),
                                  exemplar_id=ex_id, exemplar_group=ex_group)
            cases.append(Case(p.stem, inputs, target_group=target[0] if target else g))
        real[""] = [im for ims in real.values() for im in ims]
        return EvalSet(layout, cases, real)
    # sketches: each file is [edge map | photo] side by side
    items = [(d.name, p) for d in sorted(base.iterdir()) if d.is_dir() and d.name != "scene"
             for p in sorted(d.glob("*.png"))]
    cases = []
    for cls, p in _limit(items, n, seed):
        pair = load_image(p)
        h, w = pair.shape[:2]
        if w != 2 * h:
            raise InputError(f"{p} is {w}×{h}; a sketch pair must be twice as wide as high")
        sketch = pair[:, :h].mean(axis=2).round().astype(np.uint8)
        cases.append(Case(f"{cls}/{p.stem}", {"sketch": sketch, "class_name": cls}, ground_truth=pair[:, h:]))
    return EvalSet(layout, cases, {"": [c.ground_truth for c in cases]})


def _pose_set(base: Path, ids: list[str]) -> EvalSet:
    """Poses: the target keypoints (and their canvas), the same-outfit exemplar and its keypoints,
    the part mask (``parts``, None where absent); the ground truth is the photo."""
    cases = []
    for i in ids:
        img = load_image(base / "image" / f"{i}.png")
        pose, ex_pose = base / "pose" / f"{i}.json", base / "exemplar_pose" / f"{i}.json"
        parts = base / "parts" / f"{i}.png"
        for needed in (pose, ex_pose, base / "exemplar" / f"{i}.png"):
            if not needed.exists():
                raise InputError(f"pose sample {i} has no {needed.relative_to(base)}")
        exemplar = load_image(base / "exemplar" / f"{i}.png")
        canvas = load_openpose_canvas(pose) or (img.shape[1], img.shape[0])
        cases.append(Case(i, {"keypoints": load_openpose_json(pose), "canvas_size": canvas, "exemplar": exemplar,
                              "exemplar_keypoints": load_openpose_json(ex_pose),
                              "parts": load_label_map(parts) if parts.exists() else None}, ground_truth=img))
    return EvalSet(POSE_LAYOUT, cases, {"": [c.ground_truth for c in cases]})


# --------------------------------------------------------------------------------------------
# Producing outputs
# --------------------------------------------------------------------------------------------
