"""Scene from a scene sketch, the SketchyCOCO paper's two stages.

1. Foreground: each object's strokes (cut to its box) go through EdgeGAN with its class; the
   generated square image is scaled onto the square its strokes were padded to, and pasted inside the
   object's mask (the region its strokes enclose, see :func:`engine.inputs.sketch.fill_strokes`).
2. Background: an image-to-image network (pix2pix U-Net, :class:`engine.nets.edgegan.BackgroundUNet`)
   reads {background strokes, pasted foreground, foreground mask} at its working resolution and paints
   the whole scene; the EdgeGAN objects are then pasted back on top (``paste_objects``).

The paper used a detector/segmenter to split a scene sketch into objects; here the user (or the GUI)
gives the split: one stroke bitmap, class and box per object, plus the background strokes.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..devices import precision_context
from ..inputs.sketch import binarise, fill_strokes, to_grey
from ..nets.edgegan import background_depth, preview_grid
from ..requests.base import InputError, Result
from ..requests.edgegan import SceneRequest
from . import TaskContext, runner, to_uint8_image
from .sketch import class_index, default_model_name, generate_object, load_model


def working_size(size: tuple[int, int], long_side: int, multiple: int) -> tuple[int, int]:
    """(width, height) with the longer side ≈ ``long_side``, both multiples of ``multiple``."""
    w, h = size
    scale = long_side / max(w, h)
    return (max(multiple, int(round(w * scale / multiple)) * multiple),
            max(multiple, int(round(h * scale / multiple)) * multiple))


def paste_object(canvas: np.ndarray, mask_canvas: np.ndarray, image: np.ndarray,
                 region: tuple[int, int, int, int], object_mask: np.ndarray) -> None:
    """Scale ``image`` (S×S×3 uint8) onto the square ``region`` and copy it where ``object_mask``."""
    x0, y0, x1, y1 = region
    side = x1 - x0
    scaled = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC if side > image.shape[0] else cv2.INTER_AREA)
    h, w = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    sub = scaled[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    m = object_mask[cy0:cy1, cx0:cx1]
    canvas[cy0:cy1, cx0:cx1][m] = sub[m]
    mask_canvas[cy0:cy1, cx0:cx1] |= m


def background_inputs(background: np.ndarray | None, foreground: np.ndarray, mask: np.ndarray,
                      size: tuple[int, int]) -> torch.Tensor:
    """1×5×H×W network input at working ``size`` (w, h): strokes (−1 on +1), foreground RGB in
    [-1, 1] (0 outside objects), mask (+1 objects, −1 elsewhere). Shared with the trainer."""
    w, h = size
    if background is None:
        strokes = np.ones((h, w), np.float32)
    else:
        # stroke coverage per working pixel, boosted so a 1-px pen line survives a 3× downscale
        coverage = cv2.resize(binarise(background).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        strokes = (1.0 - 2.0 * np.clip(coverage * 3.0, 0.0, 1.0)).astype(np.float32)
    fg = cv2.resize(foreground.astype(np.float32) / 127.5 - 1.0, (w, h), interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    fg = fg * m[..., None]
    chans = [strokes[None], fg.transpose(2, 0, 1), (m * 2 - 1)[None]]
    return torch.from_numpy(np.concatenate(chans, 0)).unsqueeze(0).float()


def _background_model_name(request: SceneRequest, ctx: TaskContext, object_model: str) -> str:
    if request.background_model:
        return request.background_model
    entry = ctx.models.entry(object_model)
    if entry.config.get("background"):
        return object_model
    return default_model_name(ctx, need_background=True)


@runner(SceneRequest)
def run_scene(request: SceneRequest, ctx: TaskContext) -> Result:
    w, h = (int(v) for v in request.size)
    if w < 8 or h < 8:
        raise InputError(f"scene size {w}×{h} is too small")
    if request.background is not None and request.background.shape[:2] != (h, w):
        raise InputError(f"the background strokes are {request.background.shape[1]}×{request.background.shape[0]}, "
                         f"the scene is {w}×{h}")
    background = None if request.background is None else to_grey(request.background.array)
    if not request.objects and (background is None or not binarise(background).any()):
        raise InputError("the scene sketch is empty: no objects and no background strokes")
    ctx.progress("loading models", 0.0)
    obj_name = request.model or default_model_name(ctx)
    model = load_model(ctx, obj_name) if request.objects else None
    bg_name = _background_model_name(request, ctx, obj_name)
    bg_nets = ctx.models.get(bg_name, ctx.device)
    if "background_generator" not in bg_nets:
        raise InputError(f"model {bg_name!r} has no background network; train one with `i2i train edgegan` "
                         f"or name one with --background-model")
    bg_config = ctx.models.entry(bg_name).config

    foreground = np.full((h, w, 3), 255, np.uint8)
    fg_mask = np.zeros((h, w), bool)
    for i, obj in enumerate(request.objects):
        assert model is not None
        ctx.progress(f"object {i + 1}/{len(request.objects)}", 0.1 + 0.6 * i / max(1, len(request.objects)))
        if obj.sketch.shape[:2] != (h, w):
            raise InputError(f"object {i} ({obj.class_name}): its stroke bitmap is "
                             f"{obj.sketch.shape[1]}×{obj.sketch.shape[0]}, the scene is {w}×{h}")
        x0, y0, x1, y1 = (int(v) for v in obj.box)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise InputError(f"object {i} ({obj.class_name}): box {obj.box} is empty or outside the canvas")
        grey = to_grey(obj.sketch.array)
        in_box = np.full_like(grey, 255)
        in_box[y0:y1, x0:x1] = grey[y0:y1, x0:x1]
        strokes = binarise(in_box)
        if not strokes.any():
            raise InputError(f"object {i} ({obj.class_name}) has no strokes inside its box")
        label = class_index(model, obj.class_name)

        def make(in_box=in_box, label=label, i=i, strokes=strokes):
            out = generate_object(model, ctx, in_box, label, seed=request.seed + i, noise=request.noise,
                                  precision=request.precision)
            return to_uint8_image(out.image), out.prepared.region, fill_strokes(strokes)

        # editing one object of a scene must not regenerate the others: cache per object content
        key = ("edgegan-scene-object", model.name, str(ctx.device), obj.sketch.digest, (x0, y0, x1, y1),
               label, request.seed + i, request.noise, request.precision)
        image, region, object_mask = ctx.cache.get_or_create(key, make)
        paste_object(foreground, fg_mask, image, region, object_mask)

    ctx.progress("background", 0.75)
    depth = background_depth(bg_config)
    grid = preview_grid(bg_config)
    long_side = int(bg_config.get("bg_size", 256))
    if request.preview_size and grid is not None:
        long_side = grid.fit(request.preview_size)
    size = working_size((w, h), long_side, 2 ** depth)
    x = background_inputs(background, foreground, fg_mask, size).to(ctx.device)
    with precision_context(ctx.device, request.precision):
        with ctx.timed("background_generator"):
            y = bg_nets["background_generator"](x).float()
    painted = cv2.resize(to_uint8_image(y), (w, h), interpolation=cv2.INTER_CUBIC)
    scene = painted.copy()
    if request.paste_objects:
        scene[fg_mask] = foreground[fg_mask]
    ctx.progress("done", 1.0)
    return ctx.result(scene, {"foreground": foreground, "background": painted,
                              "mask": np.repeat((fg_mask * 255).astype(np.uint8)[..., None], 3, axis=2)})


__all__ = ["run_scene", "background_inputs", "working_size"]
