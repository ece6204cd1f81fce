"""Scene measures for CoCosNet scene models (ade20k configs) on the ``scenes`` recipe, each beside
an untrained network of the same config (the floor), the model's own raw warped exemplar and the
scene's real photo (which ignores the exemplar).

The exemplar of a case is the recipe's rendering of the same layout in another style, so its
semantics are the input map. Columns, each measured on the same cases:

* ``mIoU``: the scenes segmenter on the outputs against the input map (bar: ≥ 0.8 × the real
  photos', and above the raw warp's);
* ``class_dE``: per-class colour distance to the exemplar: for each class covering at least
  ``MIN_CLASS_PIXELS`` in both the input map and the exemplar's map, the ΔE (CIE76) between the
  median CIELAB colours of its pixels in the output and in the exemplar, averaged over classes and
  cases (bar: ≤ ½ × the real photo's);
* ``FD-<backbone>``: Fréchet distance of the outputs' features to the real test photos' (bar:
  below the raw warp's).
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..io import resize_nearest
from ..requests.base import InputError
from .cocosnet_faces import finite_mean, median_lab
from .eval_set import EvalSet
from .faces import untrained_floor

MIN_CLASS_PIXELS = 16
MIOU_RATIO_BAR = 0.8
DE_RATIO_BAR = 0.5


def class_delta_e(image: np.ndarray, labels: np.ndarray, exemplar: np.ndarray, exemplar_labels: np.ndarray) -> float:
    """Mean over the classes present in both maps of the ΔE between their median colours in
    ``image`` and in ``exemplar``; NaN when no class is shared."""
    labels = resize_nearest(labels, image.shape[:2])
    exemplar_labels = resize_nearest(exemplar_labels, exemplar.shape[:2])
    out = []
    for cls in np.intersect1d(np.unique(labels), np.unique(exemplar_labels)):
        here, there = labels == cls, exemplar_labels == cls
        if here.sum() < MIN_CLASS_PIXELS or there.sum() < MIN_CLASS_PIXELS:
            continue
        out.append(float(np.linalg.norm(median_lab(image, here) - median_lab(exemplar, there))))
    return float(np.mean(out)) if out else float("nan")


def _photo_set(es: EvalSet) -> EvalSet:
    """The cases with the real photo as ground truth and as FD's real set."""
    if any(c.inputs.get("exemplar") is None for c in es.cases):
        raise InputError("CoCosNet scene measures need each sample's exemplar rendering (exemplar/<id>.png)")
    cases = [replace(c, ground_truth=c.inputs["photo"]) for c in es.cases]
    return EvalSet(es.layout, cases, {"": [c.ground_truth for c in cases]})


def _column(es: EvalSet, outputs: list[np.ndarray], measure: Any) -> dict[str, float]:
    metrics = measure(es, outputs)["metrics"]
    col = {k: v for k, v in metrics.items() if k == "mIoU" or k.startswith("FD-")}
    col["class_dE"] = finite_mean([class_delta_e(o, c.labels, c.inputs["exemplar"], c.labels)
                                   for o, c in zip(outputs, es.cases, strict=True)])
    return col


def scenes_sheet(es: EvalSet, images: list[np.ndarray], warps: list[np.ndarray], path: Path, *, n: int = 16) -> Path:
    """Contact sheet of the first ``n`` cases, one row each: input map | exemplar | the model's warp |
    output | the scene's real photo."""
    from ..io import load_palette
    from .image import save_sheet

    palette = load_palette("scenes")
    rows = [[palette.colorize(c.labels), c.inputs["exemplar"], warp, out, c.inputs["photo"]]
            for c, out, warp in list(zip(es.cases, images, warps, strict=True))[:n]]
    return save_sheet(rows, path)


def cocosnet_scenes(model: str, es: EvalSet, images: list[np.ndarray], warps: list[np.ndarray],
                    floor_outputs: Callable[[Any], list[np.ndarray]], *, measure: Any, seed: int = 0,
                    notes: list[str] | None = None, sheet: Path | None = None) -> dict[str, Any]:
    """``i2i eval``'s scene section for a CoCosNet scene model, from its outputs and raw warps as
    ``i2i eval`` ran them; ``floor_outputs(manifest)`` runs the untrained floor the same way;
    ``measure(es, outputs)`` is ``i2i eval``'s own metric pass (segmenter mIoU, FD) with its backbone
    and segmenter; ``sheet``: also write :func:`scenes_sheet` there."""
    from ..weights import Manifest

    notes = notes if notes is not None else []
    t0 = time.perf_counter()
    photos = _photo_set(es)
    entry = Manifest().get(model)
    out = {"model": _column(photos, images, measure), "warp (model's)": _column(photos, warps, measure)}
    if sheet is not None:
        notes.append(f"contact sheet (map | exemplar | warp | output | real photo): "
                     f"{scenes_sheet(photos, images, warps, sheet)}")
    with tempfile.TemporaryDirectory() as tmp:
        floor = untrained_floor(entry.config_name, dict(entry.config), Path(tmp), seed=seed, family="cocosnet")
        out["floor (untrained)"] = _column(photos, floor_outputs(floor), measure)
    real = _column(photos, [c.inputs["photo"] for c in photos.cases], measure)
    out["real photos"] = {k: (float("nan") if k.startswith("FD-") else v) for k, v in real.items()}  # FD 0: itself
    out["samples"], out["seconds"] = len(photos.cases), time.perf_counter() - t0
    m, w, r = out["model"], out["warp (model's)"], out["real photos"]
    verdicts = []
    if "mIoU" in m:
        ok = m["mIoU"] >= MIOU_RATIO_BAR * r["mIoU"] and m["mIoU"] > w["mIoU"]
        verdicts.append(f"mIoU ≥ {MIOU_RATIO_BAR} × real's ({MIOU_RATIO_BAR * r['mIoU']:.3f}) and above the warp's "
                        f"({w['mIoU']:.3f}): {m['mIoU']:.3f} ({'pass' if ok else 'FAIL'})")
    ok = m["class_dE"] <= DE_RATIO_BAR * r["class_dE"]
    verdicts.append(f"class ΔE ≤ {DE_RATIO_BAR} × the real photo's ({DE_RATIO_BAR * r['class_dE']:.1f}): "
                    f"{m['class_dE']:.1f} ({'pass' if ok else 'FAIL'})")
    fd = next((k for k in m if k.startswith("FD-")), None)
    if fd:
        verdicts.append(f"{fd} below the warp's ({w[fd]:.1f}): {m[fd]:.1f} ({'pass' if m[fd] < w[fd] else 'FAIL'})")
    notes.append("scene bars (model): " + "; ".join(verdicts))
    return out


__all__ = ["class_delta_e", "cocosnet_scenes", "scenes_sheet"]
