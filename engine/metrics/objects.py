"""EdgeGAN object measures (``i2i eval`` on a ``sketches`` dataset): does a sketched object come out
as that object, of that shape?

- **class accuracy**: an independent nearest-centroid classifier on MobileNetV2 pool features
  (cosine: features L2-normalised, class centroids of real colour images) names each generated
  object. Its centroids come from real photos of a split the model never saw (the reference split,
  e.g. the train split of a dataset built with another seed), never from generated images; its
  accuracy on the evaluated split's real photos is the ceiling.
- **silhouette IoU**: the object mask of the output (pixels away from white, holes filled, specks
  dropped) against the filled shape of the sketch the task prepared (:func:`sketch_shape`), and
  against that of *another* sketch of the same class (the next case of that class): a model that
  follows its sketch scores higher on its own one. The real photos give the ceiling.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .eval_set import load_eval_set

WHITE_TOLERANCE = 40  # a pixel belongs to the object when some channel is this far below white
MIN_PART = 0.01       # mask components smaller than this fraction of the image are specks


def object_mask(image: np.ndarray) -> np.ndarray:
    """H×W bool mask of the object drawn on white: non-white pixels, outer contours filled, specks
    (components under 1 % of the image) dropped."""
    ink = (255 - image.astype(np.int16)).max(-1) > WHITE_TOLERANCE
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= MIN_PART * ink.size
    ink = keep[labels]
    contours, _ = cv2.findContours(ink.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(ink.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def sketch_shape(sketch: np.ndarray, size: int) -> np.ndarray:
    """size×size bool: the region a sketch's strokes enclose, in the frame the sketch task prepares
    it to (cropped to its strokes, padded square, resized)."""
    from ..inputs.sketch import binarise, fill_strokes, prepare_sketch

    prepared = prepare_sketch(sketch, size)
    return fill_strokes(binarise(prepared.image, threshold=128))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def other_of_same_class(classes: Sequence[str]) -> list[int]:
    """For each case, the next case of the same class (cyclically; itself when it is the only one)."""
    out = []
    for i, c in enumerate(classes):
        same = [j for j, d in enumerate(classes) if d == c]
        out.append(same[(same.index(i) + 1) % len(same)])
    return out


def silhouette_iou(outputs: Sequence[np.ndarray], shapes: Sequence[np.ndarray],
                   classes: Sequence[str]) -> dict[str, float]:
    """Mean IoU of each output's mask with its own sketch's shape, with another same-class sketch's
    shape (cases whose class has a second case), and the margin between the two."""
    masks = [object_mask(cv2.resize(o, shapes[0].shape[::-1], interpolation=cv2.INTER_AREA)
                         if o.shape[:2] != shapes[0].shape else o) for o in outputs]
    others = other_of_same_class(classes)
    paired = [i for i, j in enumerate(others) if j != i]
    own = float(np.mean([iou(m, s) for m, s in zip(masks, shapes, strict=True)]))
    own_paired = float(np.mean([iou(masks[i], shapes[i]) for i in paired])) if paired else float("nan")
    other = float(np.mean([iou(masks[i], shapes[others[i]]) for i in paired])) if paired else float("nan")
    return {"own": own, "other": other, "margin": own_paired - other}


@dataclass(frozen=True)
class NearestCentroid:
    """Cosine nearest-centroid classifier on feature vectors."""

    classes: tuple[str, ...]
    centroids: np.ndarray  # K×D, unit rows

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str]) -> NearestCentroid:
        classes = tuple(sorted(set(labels)))
        f = cls._unit(np.asarray(features, np.float64))
        lab = np.array(labels)
        cents = np.stack([f[lab == c].mean(0) for c in classes])
        return cls(classes, cls._unit(cents))

    def predict(self, features: np.ndarray) -> list[str]:
        scores = self._unit(np.asarray(features, np.float64)) @ self.centroids.T
        return [self.classes[i] for i in scores.argmax(1)]

    def accuracy(self, features: np.ndarray, labels: Sequence[str]) -> float:
        return float(np.mean([p == t for p, t in zip(self.predict(features), labels, strict=True)]))


def image_features(features: Any, images: Sequence[np.ndarray], size: int = 64) -> np.ndarray:
    """N×D MobileNetV2 (or other backbone) pool features of uint8 images, all resized to size²."""
    from .distribution import images_to_tensor, pooled_features

    same = [im if im.shape[:2] == (size, size) else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
            for im in images]
    return pooled_features(features, images_to_tensor(same)).numpy()


def class_confusion(predicted: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """{true class: {predicted class: count}} (for the report: which classes come out as what)."""
    out: dict[str, dict[str, int]] = {}
    for p, t in zip(predicted, labels, strict=True):
        out.setdefault(t, {})
        out[t][p] = out[t].get(p, 0) + 1
    return out


# --------------------------------------------------------------------------------------------
# The report `i2i eval` prints for an EdgeGAN model on a sketches dataset
# --------------------------------------------------------------------------------------------
def untrained_outputs(config: dict, cases: Sequence[Any], *, seed: int, device: str) -> list[np.ndarray]:
    """The floor: an untrained network of the same configuration (seeded init) run by the sketch task."""
    import torch

    from ..nets.edgegan import build, class_names
    from ..requests.edgegan import SketchObjectRequest
    from ..tasks import CancelToken, LRUCache, ModelStore, make_context, to_uint8_image
    from ..tasks.sketch import EdgeGANModel, class_index, generate_object

    torch.manual_seed(seed)
    nets = build(config, only=("encoder", "edge_generator", "image_generator"))
    for m in nets.values():
        m.eval()
    model = EdgeGANModel("untrained", nets, dict(config), class_names(config))
    ctx = make_context(0, SketchObjectRequest(device=device), ModelStore(), LRUCache(1), CancelToken())
    outs = []
    with torch.no_grad():
        for k, c in enumerate(cases):
            out = generate_object(model, ctx, c.inputs["sketch"], class_index(model, c.inputs["class_name"]),
                                  seed=seed + k)
            outs.append(to_uint8_image(out.image))
    return outs


def centroid_classifier(features: Any, data: Any, split: str, per_class: int, seed: int) -> tuple[NearestCentroid, int]:
    """Centroids of at most ``per_class`` real photos per class of ``data/split``; (classifier, N)."""
    ref = load_eval_set(data, split)
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[np.ndarray]] = {}
    for c in ref.cases:
        by_class.setdefault(c.inputs["class_name"], []).append(c.ground_truth)
    images, labels = [], []
    for cls, ims in sorted(by_class.items()):
        pick = rng.permutation(len(ims))[:per_class]
        images += [ims[i] for i in pick]
        labels += [cls] * len(pick)
    return NearestCentroid.fit(image_features(features, images), labels), len(images)


def sketch_object_report(model: str, es: Any, outputs: Sequence[np.ndarray], *, data: Any, seed: int = 0,
                         device: str = "cpu", centroid_split: str = "train", per_class: int = 40,
                         features: Any = None, classifier: NearestCentroid | None = None) -> dict[str, Any]:
    """Class accuracy and silhouette IoU of ``outputs`` beside the floor (untrained network of the
    model's config) and the ceiling (the cases' real photos); see the module docstring."""
    from ..weights import Manifest
    from .features import load_features

    entry = Manifest().get(model)
    size = int(entry.config.get("image_size", 64))
    cases = es.cases
    classes = [c.inputs["class_name"] for c in cases]
    shapes = [sketch_shape(c.inputs["sketch"], size) for c in cases]
    rows = {"model": list(outputs),
            "floor (untrained)": untrained_outputs(dict(entry.config), cases, seed=seed, device=device),
            "ceiling (real photos)": [c.ground_truth for c in cases]}
    report: dict[str, Any] = {"n": len(cases), "classes": sorted(set(classes))}
    feats = features if features is not None else load_features(prefer=("mobilenet_v2",))
    if feats is not None:
        if classifier is None:
            clf, n_ref = centroid_classifier(feats, data, centroid_split, per_class, seed)
        else:
            clf, n_ref = classifier, None
        report["classifier"] = {"kind": "nearest centroid (cosine) on MobileNetV2 pool features",
                                "fitted_on": f"{centroid_split} split real photos", "n": n_ref,
                                "chance": 1.0 / len(clf.classes)}
        report["class_accuracy"] = {}
        for name, images in rows.items():
            predicted = clf.predict(image_features(feats, images))
            report["class_accuracy"][name] = float(np.mean([p == t for p, t in zip(predicted, classes, strict=True)]))
            if name == "model":
                report["model_predictions"] = class_confusion(predicted, classes)
    for name, images in rows.items():
        for k, v in silhouette_iou(images, shapes, classes).items():
            report.setdefault(f"iou_{k}", {})[name] = v
    return report


# --------------------------------------------------------------------------------------------
# Scenes: the same objects pasted into a scene
# --------------------------------------------------------------------------------------------
SCENE_SIZE = 256
SCENE_SLOTS = ((12, 128, 116), (128, 124, 120), (70, 8, 104))  # (x0, y0, side) of up to three objects


def scene_layouts(cases: Sequence[Any]
                  ) -> list[tuple[Any, list[tuple[int, Any, tuple[int, int, int, int], np.ndarray]]]]:
    """Test cases grouped three to a 256² scene: (SceneRequest, [(case index, class, box, bitmap)]).
    Each object's sketch (its edge map scaled into its slot) becomes a full-canvas stroke bitmap;
    the background strokes are a hill line."""
    from ..requests.base import FrozenArray
    from ..requests.edgegan import SceneObject, SceneRequest

    hills = np.full((SCENE_SIZE, SCENE_SIZE), 255, np.uint8)
    xs = np.arange(SCENE_SIZE)
    pts = np.stack([xs, 150 - 18 * np.sin(xs / SCENE_SIZE * 5)], 1).astype(np.int32)
    cv2.polylines(hills, [pts], False, 0, 2, cv2.LINE_AA)
    scenes = []
    for g in range(0, len(cases), len(SCENE_SLOTS)):
        objects, placed = [], []
        for k, (x0, y0, side) in enumerate(SCENE_SLOTS):
            if g + k >= len(cases):
                break
            case = cases[g + k]
            bitmap = np.full((SCENE_SIZE, SCENE_SIZE), 255, np.uint8)
            bitmap[y0:y0 + side, x0:x0 + side] = cv2.resize(case.inputs["sketch"], (side, side),
                                                            interpolation=cv2.INTER_LINEAR)
            box = (x0, y0, x0 + side, y0 + side)
            objects.append(SceneObject(sketch=FrozenArray(bitmap), class_name=case.inputs["class_name"], box=box))
            placed.append((g + k, case.inputs["class_name"], box, bitmap))
        scenes.append((SceneRequest(objects=tuple(objects), background=FrozenArray(hills),
                                    size=(SCENE_SIZE, SCENE_SIZE)), placed))
    return scenes


def scene_report(model: str, cases: Sequence[Any], *, classifier: NearestCentroid | None, features: Any,
                 seed: int = 0, device: str = "cpu", size: int = 64) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Each object cut from the finished scene (the square the scene task pasted it into, background
    painted around it) classed by the same classifier; the silhouette IoU of the pasted object (the
    foreground layer) with its own sketch's shape and with another same-class sketch's shape.
    Returns (report, scene images)."""
    from dataclasses import replace

    from ..inputs.sketch import crop_padded, prepare_sketch
    from ..tasks import CancelToken, LRUCache, ModelStore, make_context, run_request

    store, cache = ModelStore(), LRUCache(64)
    crops, masks, labels, own_shapes, index = [], [], [], [], []
    images = []
    for k, (request, placed) in enumerate(scene_layouts(cases)):
        request = replace(request, model=model, seed=seed + k, device=device)
        result = run_request(request, make_context(k, request, store, cache, CancelToken()))
        images.append(result.image)
        for i, cls, _, bitmap in placed:
            region = prepare_sketch(bitmap, size).region
            crop = cv2.resize(crop_padded(result.image, region, 255), (size, size), interpolation=cv2.INTER_AREA)
            fg = cv2.resize(crop_padded(result.aux["foreground"], region, 255), (size, size),
                            interpolation=cv2.INTER_AREA)
            crops.append(crop)
            masks.append(object_mask(fg))
            own_shapes.append(sketch_shape(bitmap, size))
            labels.append(cls)
            index.append(i)
    report: dict[str, Any] = {"n_scenes": len(images), "n_objects": len(crops)}
    if classifier is not None and crops:
        report["class_accuracy"] = classifier.accuracy(image_features(features, crops), labels)
    if crops:
        all_classes = [c.inputs["class_name"] for c in cases]
        others = other_of_same_class(all_classes)
        shape_of_case = {i: s for i, s in zip(index, own_shapes, strict=True)}
        own = [iou(m, s) for m, s in zip(masks, own_shapes, strict=True)]
        pairs = [(m, sketch_shape(cases[others[i]].inputs["sketch"], size)) for m, i in zip(masks, index, strict=True)
                 if others[i] != i]
        report["iou_own"] = float(np.mean(own))
        if pairs:
            own_paired = [iou(m, shape_of_case[i]) for m, i in zip(masks, index, strict=True) if others[i] != i]
            report["iou_other"] = float(np.mean([iou(m, s) for m, s in pairs]))
            report["iou_margin"] = float(np.mean(own_paired)) - report["iou_other"]
    return report, images
