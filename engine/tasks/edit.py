"""Image editing with CoCosNet (paper §4.3): segment a photo, edit the map, and regenerate the
edited map with the original photo as exemplar; the correspondence carries each region's
appearance to its new place. Regions whose labels did not change can be pasted back from the
photo (feathered seam), so only the edit is synthesised.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..io import resize_nearest
from ..limits import MAX_MASK_GROW
from ..requests.base import InputError, Result
from ..requests.cocosnet import EditRequest
from . import TaskContext, runner
from .exemplar import _array, _check_photo, resize_rgb, resolve_model, translate


def changed_mask(original: np.ndarray, edited: np.ndarray, shape_hw: tuple[int, int], grow: int) -> np.ndarray:
    """Float H×W in [0, 1]: 1 where the label changed (grown by ``grow`` px, then feathered), at ``shape_hw``."""
    changed = (np.asarray(original) != np.asarray(edited)).astype(np.uint8)
    core = resize_nearest(changed, shape_hw).astype(np.float32)
    if grow <= 0:
        return core
    # The seam is grown and feathered at most MAX_MASK_GROW px wide, on a copy scaled down so that
    # holds: dilation and blur cost pixels × grow², which at full size grows as n⁴.
    scale = min(1.0, MAX_MASK_GROW / grow)
    small = core
    if scale < 1.0:
        size = (max(1, round(core.shape[1] * scale)), max(1, round(core.shape[0] * scale)))
        small = cv2.resize(core, size, interpolation=cv2.INTER_AREA)
        grow = MAX_MASK_GROW
    # grow first so the synthesised region covers the seam, then feather it
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    grown = cv2.dilate(small, kernel)
    soft = cv2.GaussianBlur(grown, (0, 0), sigmaX=grow / 2)
    if scale < 1.0:
        soft = cv2.resize(soft, (core.shape[1], core.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.maximum(soft, core), 0.0, 1.0)


def paste_back(photo: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """photo where mask = 0, generated where mask = 1, linear in between."""
    m = mask[..., None]
    out = photo.astype(np.float32) * (1 - m) + generated.astype(np.float32) * m
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@runner(EditRequest)
def run_edit(request: EditRequest, ctx: TaskContext) -> Result:
    model = resolve_model(request.model)
    kind = ctx.models.entry(model).config.get("input_kind")
    if kind == "pose":
        raise InputError("image editing works on label or face-parsing maps; this model takes pose keypoints")
    photo = _check_photo(_array(request.photo), "photo")
    original, edited = _array(request.original_map), _array(request.edited_map)
    if original is None or edited is None:
        raise InputError("image editing needs the photo's original map and the edited map")
    if original.shape != edited.shape:
        raise InputError(f"the original map {original.shape} and the edited map {edited.shape} differ in size")
    out = translate(ctx, model, input_labels=edited, input_photo=photo, exemplar=request.photo,
                    exemplar_labels=request.original_map, preview_size=request.preview_size,
                    precision=request.precision, seed=request.seed)
    shape = photo.shape[:2]
    generated = resize_rgb(out.image, shape)
    warped = resize_rgb(out.warped_exemplar, shape)
    grow = max(1, round(max(shape) / 64))
    mask = changed_mask(original, edited, shape, grow)
    if request.paste_unchanged:
        if not (original != edited).any():
            ctx.note("the edited map equals the original; the photo is returned unchanged")
        image = paste_back(photo, generated, mask)
    else:
        image = generated
    mask_img = np.repeat(np.round(mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    return ctx.result(image, {"warped_exemplar": warped, "generated": generated, "changed_mask": mask_img})


__all__ = ["run_edit", "changed_mask", "paste_back"]
