"""Pose measures for CoCosNet pose models (deepfashion configs) on the ``poses`` recipe, each beside
an untrained network of the same config (the floor), the model's own raw warped exemplar and the
real photos (the ground truth: the exemplar's outfit in the target pose, on the exemplar's wall).

* ``silhouette_iou``: the output's person silhouette against the pose's part mask
  (``parts/<id>.png`` > 0). The background is a studio wall with a vertical gradient; the output's
  own wall colour is read per row as the median CIELAB colour of its pixels well away from the
  figure (outside the part mask grown by ``WALL_MARGIN`` of the side), interpolated over rows with
  none, and an output pixel counts as the person where it lies more than ``WALL_DE`` (ΔE, CIE76)
  from its row's wall colour. (Whether the wall has the exemplar's colour is not this measure's
  business.) Bar: ≥ 0.7.
* ``garment_dE``: for the top (torso and upper arms) and the bottom (upper legs), the ΔE between
  the median CIELAB colour of the output over the target's part region (eroded by one pixel, so
  edges do not count) and that of the ground truth over the same region. ``garment_dE_ratio``: over
  the same distance for a different outfit, i.e. the ground truth of the split's next sample (its
  own part mask) against this one's ground truth. Bar: ≤ 0.6.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.poses import PARTS
from ..requests.base import InputError, frozen
from .cocosnet_faces import finite_mean, median_lab, ratio_of_sums
from .eval_set import EvalSet
from .faces import untrained_floor
from .image import save_sheet
from .speckle import to_lab

WALL_DE = 12.0          # further than this from the wall colour = the person
WALL_MARGIN = 1 / 16    # the wall is read this far (× the side) from the figure
IOU_BAR = 0.7
DE_RATIO_BAR = 0.6
GARMENTS: dict[str, tuple[str, ...]] = {"top": ("torso", "r_upper_arm", "l_upper_arm"),
                                        "bottom": ("r_upper_leg", "l_upper_leg")}


# --------------------------------------------------------------------------------------------
# Pure measures
# --------------------------------------------------------------------------------------------
def _at(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == shape:
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def wall_rows(image: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """(H, 3) CIELAB wall colour per row of ``image``: the median of its pixels outside the part
    mask grown by ``WALL_MARGIN``, interpolated over rows without any."""
    grow = max(1, int(round(WALL_MARGIN * max(parts.shape))))
    person = (np.asarray(parts) > 0).astype(np.uint8)
    bg = cv2.dilate(person, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) == 0
    lab = to_lab(image)
    rows = np.arange(lab.shape[0])
    have = bg.any(axis=1)
    if not have.any():
        raise InputError("the figure fills the image: no wall to read the background colour from")
    med = np.array([np.median(lab[r][bg[r]], axis=0) if have[r] else np.zeros(3) for r in rows])
    return np.stack([np.interp(rows, rows[have], med[have, c]) for c in range(3)], axis=1)


def silhouette(image: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Bool (H, W): pixels of ``image`` (H rows, as ``walls``) further than ``WALL_DE`` from their
    row's wall colour."""
    return np.linalg.norm(to_lab(image) - walls[:, None, :], axis=2) > WALL_DE


def silhouette_iou(image: np.ndarray, parts: np.ndarray) -> float:
    """IoU of :func:`silhouette` of ``image`` (its own walls) with ``parts`` > 0."""
    person = np.asarray(parts) > 0
    image = _at(image, person.shape)
    mask = silhouette(image, wall_rows(image, parts))
    union = (mask | person).sum()
    return float((mask & person).sum() / union) if union else float("nan")


def garment_region(parts: np.ndarray, garment: str) -> np.ndarray:
    """The garment's part pixels, eroded by one pixel."""
    ids = [PARTS.index(p) for p in GARMENTS[garment]]
    region = np.isin(np.asarray(parts), ids).astype(np.uint8)
    return cv2.erode(region, np.ones((3, 3), np.uint8)) > 0


def garment_delta_e(image: np.ndarray, parts: np.ndarray, photo: np.ndarray, photo_parts: np.ndarray,
                    garment: str) -> float:
    """ΔE between the garment's median colour in ``image`` (over ``parts``) and in ``photo`` (over
    its own ``photo_parts``); NaN where a region is empty."""
    a = median_lab(_at(image, parts.shape), garment_region(parts, garment))
    b = median_lab(_at(photo, photo_parts.shape), garment_region(photo_parts, garment))
    return float(np.linalg.norm(a - b)) if a is not None and b is not None else float("nan")


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
def _cases(es: EvalSet) -> list[Any]:
    if len(es.cases) < 2 or any(c.inputs.get("parts") is None for c in es.cases):
        raise InputError("CoCosNet pose measures need at least two samples, each with its part mask "
                         "(parts/<id>.png; the poses recipe writes them)")
    return es.cases


def measures(outputs: Sequence[np.ndarray], es: EvalSet) -> dict[str, float]:
    """Silhouette IoU and garment colour distances of ``outputs`` (one per case)."""
    cases = _cases(es)
    out = {"silhouette_iou": finite_mean([silhouette_iou(o, c.inputs["parts"])
                                          for o, c in zip(outputs, cases, strict=True)])}
    model, other = [], []
    for k, (o, c) in enumerate(zip(outputs, cases, strict=True)):
        nxt = cases[(k + 1) % len(cases)]
        for g in GARMENTS:
            model.append(garment_delta_e(o, c.inputs["parts"], c.ground_truth, c.inputs["parts"], g))
            other.append(garment_delta_e(nxt.ground_truth, nxt.inputs["parts"], c.ground_truth, c.inputs["parts"], g))
    out["garment_dE"] = finite_mean(model)
    out["garment_dE_other_outfit"] = finite_mean(other)
    out["garment_dE_ratio"] = ratio_of_sums(model, other)
    return out


def pose_request(model: str, case: Any, *, seed: int, device: str):
    """What the pose canvas runs: the target keypoints, the exemplar and its keypoints."""
    from ..requests.cocosnet import ExemplarRequest

    return ExemplarRequest(model=model, seed=seed, device=device, keypoints=frozen(case.inputs["keypoints"]),
                           exemplar=frozen(case.inputs["exemplar"]),
                           exemplar_keypoints=frozen(case.inputs["exemplar_keypoints"]),
                           canvas_size=case.inputs["canvas_size"])


def poses_sheet(es: EvalSet, images: Sequence[np.ndarray], warps: Sequence[np.ndarray], path: Path, *,
                n: int = 16) -> Path:
    """Contact sheet of the first ``n`` cases, one row each: pose (over the darkened real photo) |
    exemplar | the model's warp | output | real photo."""
    from ..data.contact import pose_overlay

    rows = [[pose_overlay(c.ground_truth, c.inputs["keypoints"]), c.inputs["exemplar"], warp, out, c.ground_truth]
            for c, out, warp in list(zip(es.cases, images, warps, strict=True))[:n]]
    return save_sheet(rows, path)


def cocosnet_poses(model: str, es: EvalSet, images: Sequence[np.ndarray], warps: Sequence[np.ndarray],
                   floor_outputs: Callable[[Any], list[np.ndarray]], *, seed: int = 0,
                   notes: list[str] | None = None, sheet: Path | None = None) -> dict[str, Any]:
    """``i2i eval``'s pose section: the model's outputs and raw warps (as ``i2i eval`` ran them), an
    untrained network of its config (``floor_outputs(manifest)`` runs it the same way) and the real
    photos; ``sheet``: also write :func:`poses_sheet` there."""
    from ..weights import Manifest

    notes = notes if notes is not None else []
    _cases(es)
    t0 = time.perf_counter()
    entry = Manifest().get(model)
    out = {"model": measures(images, es), "warp (model's)": measures(warps, es)}
    if sheet is not None:
        notes.append(f"contact sheet (pose | exemplar | warp | output | real): "
                     f"{poses_sheet(es, images, warps, sheet)}")
    with tempfile.TemporaryDirectory() as tmp:
        floor = untrained_floor(entry.config_name, dict(entry.config), Path(tmp), seed=seed, family="cocosnet")
        out["floor (untrained)"] = measures(floor_outputs(floor), es)
    out["real photos"] = measures([c.ground_truth for c in es.cases], es)
    out["samples"], out["seconds"] = len(es.cases), time.perf_counter() - t0
    m = out["model"]
    notes.append(f"pose bars (model): silhouette IoU ≥ {IOU_BAR}: {m['silhouette_iou']:.3f} "
                 f"({'pass' if m['silhouette_iou'] >= IOU_BAR else 'FAIL'}); garment ΔE ÷ other outfit's ≤ "
                 f"{DE_RATIO_BAR}: {m['garment_dE_ratio']:.3f} "
                 f"({'pass' if m['garment_dE_ratio'] <= DE_RATIO_BAR else 'FAIL'})")
    garments = ", ".join(f"{g} ({'+'.join(p)})" for g, p in GARMENTS.items())
    notes.append(f"CoCosNet poses: silhouette = pixels > ΔE {WALL_DE:g} from the row's wall colour (read from the "
                 f"output away from the figure); garments {garments}")
    return out


__all__ = ["GARMENTS", "cocosnet_poses", "garment_delta_e", "measures", "pose_request",
           "poses_sheet", "silhouette", "silhouette_iou", "wall_rows"]
