"""EdgeGAN quality report: the numbers of ``i2i eval`` (class accuracy, silhouette IoU; model beside the
untrained floor and the real-photo ceiling), the same objects pasted into scenes, the six hand-drawn
sketches, and contact sheets for looking.

Run from the repository root (the dataset must be built with a seed the model was not trained on):
``.venv/bin/python scripts/edgegan_quality.py --model edgegan_small --data data/sketches_s2``.
Writes ``bench/results/quality_edgegan.json`` and ``docs/quality/edgegan_{test,hand,scenes}.png``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.io import save_image  # noqa: E402 - after sys.path gets the repo root

CELL = 96


def cell(image: np.ndarray, text: str = "") -> np.ndarray:
    """An image (grey or RGB) scaled to CELL² (nearest), with an optional caption strip below."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    out = cv2.resize(image, (CELL, CELL), interpolation=cv2.INTER_NEAREST)
    strip = np.full((14, CELL, 3), 255, np.uint8)
    if text:
        cv2.putText(strip, text[:15], (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([out, strip], 0)


def sheet(rows: list[list[np.ndarray]], header: list[str]) -> np.ndarray:
    head = np.full((16, CELL * len(header), 3), 255, np.uint8)
    for k, h in enumerate(header):
        cv2.putText(head, h, (k * CELL + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([head] + [np.concatenate(r, 1) for r in rows], 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edgegan_small")
    ap.add_argument("--data", default="data/sketches_s2", help="sketches dataset built with an unused seed")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(ROOT / "bench/results/quality_edgegan.json"))
    ap.add_argument("--sheets", default=str(ROOT / "docs/quality"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", default="", help="also measure this (previous) model in the same run")
    ap.add_argument("--baseline-classes", default="", help="JSON {class: the baseline's class for it}")
    args = ap.parse_args()

    import torch

    from engine.metrics import hand_sketches
    from engine.metrics.evaluate import format_table, load_eval_set, measure, model_outputs
    from engine.metrics.features import load_features
    from engine.metrics.objects import (
        centroid_classifier,
        image_features,
        object_mask,
        scene_report,
        silhouette_iou,
        sketch_object_report,
        sketch_shape,
        untrained_outputs,
    )
    from engine.requests.base import FrozenArray
    from engine.requests.edgegan import SketchObjectRequest
    from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request
    from engine.train.edgegan import cpu_name
    from engine.weights import Manifest

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = Path(args.data)
    # what `i2i eval MODEL --data DATA` runs, with the classifier kept for the scenes and sketches below
    feats = load_features(prefer=("mobilenet_v2",))
    clf, n_ref = centroid_classifier(feats, data, "train", 40, args.seed)
    es = load_eval_set(data, args.split, seed=args.seed)
    outputs, generation = model_outputs(args.model, es, seed=args.seed, device="cpu")
    notes: list[str] = []
    report = {"model": args.model, "data": str(data), "split": args.split, "layout": es.layout, "n": len(es.cases),
              "generation": generation, **measure(es, outputs, backbone=feats, notes=notes), "notes": notes}
    report["objects"] = sketch_object_report(args.model, es, outputs, data=data, seed=args.seed, features=feats,
                                             classifier=clf)
    report["objects"]["classifier"]["n"] = n_ref
    print(format_table(report))
    entry = Manifest().get(args.model)
    size = int(entry.config.get("image_size", 64))

    store, cache = ModelStore(), LRUCache(8)

    def run(request):
        return run_request(request, make_context(0, request, store, cache, CancelToken()))

    # --- the previous default, in the same run (its classes were emoji groups: each case asks for the
    # group or scenes class that holds its object)
    if args.baseline:
        mapping = json.loads(Path(args.baseline_classes).read_text()) if args.baseline_classes else {}
        base_out = []
        for k, c in enumerate(es.cases):
            req = SketchObjectRequest(model=args.baseline, seed=args.seed + k, sketch=FrozenArray(c.inputs["sketch"]),
                                      class_name=mapping.get(c.inputs["class_name"], c.inputs["class_name"]))
            base_out.append(run(req).image)
        classes = [c.inputs["class_name"] for c in es.cases]
        shapes = [sketch_shape(c.inputs["sketch"], size) for c in es.cases]
        report["objects"]["class_accuracy"][f"before ({args.baseline})"] = clf.accuracy(
            image_features(feats, base_out), classes)
        for k, v in silhouette_iou(base_out, shapes, classes).items():
            report["objects"][f"iou_{k}"][f"before ({args.baseline})"] = v
        report["objects"]["before_class_map"] = mapping
        print("before:", {k: v for k, v in report["objects"].items() if k.startswith(("class_acc", "iou"))})

    # --- scenes
    scenes, scene_images = scene_report(args.model, es.cases, classifier=clf, features=feats, seed=args.seed)
    print("scenes:", json.dumps(scenes))

    # --- hand-drawn sketches
    hand = {}
    hand_rows = []
    for name, (cls, _) in hand_sketches.SKETCHES.items():
        sketch = hand_sketches.render(name)
        res = run(SketchObjectRequest(model=args.model, seed=args.seed, sketch=FrozenArray(sketch), class_name=cls))
        predicted = clf.predict(image_features(feats, [res.image]))[0]
        shape = sketch_shape(sketch, size)
        m = object_mask(res.image)
        inter, union = np.logical_and(m, shape).sum(), np.logical_or(m, shape).sum()
        hand[name] = {"class": cls, "classifier_says": predicted, "iou_own": float(inter / max(union, 1))}
        hand_rows.append([cell(sketch, name), cell(res.aux["input"], "prepared"), cell(res.aux["edge"], "G1 edge"),
                          cell(res.image, f"-> {predicted}")])
    print("hand-drawn:", json.dumps(hand))

    # --- contact sheets
    sheets = Path(args.sheets)
    sheets.mkdir(parents=True, exist_ok=True)
    picks = np.random.default_rng(args.seed).choice(len(es.cases), min(16, len(es.cases)), replace=False)
    cases = [es.cases[i] for i in sorted(picks)]
    floor = untrained_outputs(dict(entry.config), cases, seed=args.seed, device="cpu")
    rows = []
    for k, (c, fl) in enumerate(zip(cases, floor, strict=True)):
        res = run(SketchObjectRequest(model=args.model, seed=args.seed + k, sketch=FrozenArray(c.inputs["sketch"]),
                                      class_name=c.inputs["class_name"]))
        predicted = clf.predict(image_features(feats, [res.image]))[0]
        rows.append([cell(c.inputs["sketch"], c.inputs["class_name"]), cell(res.aux["edge"], "G1 edge"),
                     cell(res.image, f"-> {predicted}"), cell(fl, "untrained"), cell(c.ground_truth, "real")])
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:] + [[np.full_like(rows[0][0], 255)] * 5] * (half - len(rows[half:]))
    test_sheet = np.concatenate([sheet(left, ["sketch", "G1 edge", "G2 image", "untrained", "real"]),
                                 np.full((16 + len(left) * (CELL + 14), 8, 3), 255, np.uint8),
                                 sheet(right, ["sketch", "G1 edge", "G2 image", "untrained", "real"])], 1)
    save_image(sheets / "edgegan_test.png", test_sheet)
    save_image(sheets / "edgegan_hand.png", sheet(hand_rows, ["hand-drawn", "prepared", "G1 edge", "G2 image"]))
    shown = [cv2.resize(im, (192, 192), interpolation=cv2.INTER_AREA) for im in scene_images[:8]]
    if len(shown) >= 8:
        scenes_sheet = np.concatenate([np.concatenate(shown[:4], 1), np.concatenate(shown[4:8], 1)], 0)
    else:
        scenes_sheet = np.concatenate(shown, 1)
    save_image(sheets / "edgegan_scenes.png", scenes_sheet)

    from engine.metrics.evaluate import json_safe

    out = {"model": args.model, "model_sha256": entry.sha256, "data": str(data), "split": args.split,
           "cpu": cpu_name(), "threads": args.threads, "objects": report.get("objects"),
           "fd_pd": report["metrics"], "scenes": scenes, "hand_drawn": hand,
           "bars": {"class_accuracy": ">= 0.5", "iou_own": ">= 0.6", "iou_margin": ">= 0.15"},
           "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(json_safe(out), indent=2) + "\n")
    print(f"wrote {args.json} and {sheets}/edgegan_*.png in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
