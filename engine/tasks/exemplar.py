"""Exemplar-based translation with CoCosNet: input semantics + exemplar photo -> image, plus the
warped exemplar (``aux["warped_exemplar"]``) so the GUI can show the correspondence.

:func:`translate` is the shared pipeline that the editing and makeup tasks reuse. The exemplar's
correspondence keys (netCorr's exemplar branch, about half of the network) and its encoded image are
cached in ``ctx.cache`` by content digest (not by seed), so moving a slider, pressing Vary or editing
the input map does not recompute them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..devices import autocast_dtype, precision_context
from ..inputs.cocosnet import encode_for_config, encode_image, needs_exemplar_semantics
from ..nets.cocosnet import prepare_for_inference, preview_grid
from ..requests.base import FrozenArray, InputError, Result
from ..requests.cocosnet import ExemplarRequest
from . import TaskContext, runner, to_uint8_image

FAMILY = "cocosnet"


@dataclass(frozen=True)
class ExemplarSide:
    """What depends only on the exemplar, cached per exemplar: its encoded image (the warp's values)
    and netCorr's φ keys."""

    ref_img: torch.Tensor
    phi: torch.Tensor


@dataclass(frozen=True)
class Translation:
    """Model-resolution outputs of one CoCosNet pass (uint8 H×W×3)."""

    image: np.ndarray
    warped_exemplar: np.ndarray
    size: int


def resolve_model(name: str) -> str:
    """The request's model, or the default CoCosNet entry of the manifest."""
    from ..weights import current_manifest, default_model

    return default_model(current_manifest(), FAMILY, name)


def working_size(config: Mapping[str, Any], preview_size: int | None) -> int:
    """Square working resolution: the model's native size, or the preview size rounded down to the
    model's preview grid (an explicit size may go up to twice the native size)."""
    native = int(config.get("size", 256))
    if preview_size is None:
        return native
    grid = preview_grid(config)
    if preview_size < grid.minimum:
        raise InputError(f"preview size {preview_size} is too small; CoCosNet needs at least {grid.minimum} px")
    size = min(native * 2, int(preview_size))
    return max(grid.minimum, size - size % grid.stride)


def _array(x: FrozenArray | np.ndarray | None) -> np.ndarray | None:
    if x is None:
        return None
    return x.array if isinstance(x, FrozenArray) else np.asarray(x)


def _digest(x: FrozenArray | np.ndarray | None) -> str | None:
    if x is None:
        return None
    return (x if isinstance(x, FrozenArray) else FrozenArray(x)).digest


def _check_photo(photo: np.ndarray | None, what: str) -> np.ndarray:
    if photo is None:
        raise InputError(f"the {what} photo is missing")
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise InputError(f"the {what} must be an RGB uint8 H×W×3 image, got {photo.dtype} {photo.shape}")
    return photo


def output_shape(shape_hw: tuple[int, int], size: int) -> tuple[int, int]:
    """(H, W) with the longer side = ``size`` and the input's aspect ratio."""
    h, w = shape_hw
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_rgb(image: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    h, w = shape_hw
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))


def padded_canvas(canvas: tuple[int, int], aspect: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """The smallest canvas (W, H) of width/height ``aspect`` that holds ``canvas`` centred, and the
    offset (x0, y0) of ``canvas`` in it."""
    w, h = canvas
    if w < h * aspect:
        pw = max(w, round(h * aspect))
        return (pw, h), ((pw - w) // 2, 0)
    ph = max(h, round(w / aspect))
    return (w, ph), (0, (ph - h) // 2)


def pad_photo(photo: np.ndarray, aspect: float) -> tuple[np.ndarray, tuple[int, int]]:
    """``photo`` centred on a canvas of ``aspect``, its border pixels repeated outwards (a studio
    wall stays a wall); returns the photo and its offset."""
    (pw, ph), (x0, y0) = padded_canvas((photo.shape[1], photo.shape[0]), aspect)
    if (pw, ph) == (photo.shape[1], photo.shape[0]):
        return photo, (0, 0)
    pads = ((y0, ph - photo.shape[0] - y0), (x0, pw - photo.shape[1] - x0), (0, 0))
    return np.pad(photo, pads, mode="edge"), (x0, y0)


def _place(keypoints: np.ndarray | None, offset: tuple[int, int], scale: float) -> np.ndarray | None:
    """Keypoints moved by ``offset`` then scaled by ``scale`` (confidences kept)."""
    if keypoints is None:
        return None
    kp = np.asarray(keypoints, np.float32).copy()
    if kp.ndim == 2 and kp.shape[1] >= 2:
        kp[:, 0] = (kp[:, 0] + offset[0]) * scale
        kp[:, 1] = (kp[:, 1] + offset[1]) * scale
    return kp


def translate(ctx: TaskContext, model: str, *, input_labels: np.ndarray | None = None,
              input_keypoints: np.ndarray | None = None, input_photo: np.ndarray | None = None,
              exemplar: FrozenArray | np.ndarray, exemplar_labels: FrozenArray | np.ndarray | None = None,
              exemplar_keypoints: FrozenArray | np.ndarray | None = None, canvas_size: tuple[int, int] | None = None,
              preview_size: int | None = None, precision: str = "auto", seed: int = 0) -> Translation:
    """Run netCorr + netG for one input. ``exemplar_labels`` is the exemplar's own semantics in the
    same form as ``input_labels`` (label / parsing map; keypoints for pose models)."""
    entry = ctx.models.entry(model)
    if entry.family != FAMILY:
        raise InputError(f"model {model!r} is a {entry.family} model, not CoCosNet")
    config = entry.config
    kind, nc = config["input_kind"], int(config["semantic_nc"])
    size = working_size(config, preview_size)
    ex_photo = _check_photo(_array(exemplar), "exemplar")
    device = ctx.device

    ctx.progress("loading model", 0.0)
    with ctx.timed("load"):
        nets = ctx.models.get(model, device)
        prepare_for_inference(nets)  # idempotent on the cached modules
    net_corr, net_g = nets["netCorr"], nets["netG"]

    needs_ref_sem = needs_exemplar_semantics(config)
    ex_labels, ex_kp = _array(exemplar_labels), _array(exemplar_keypoints)
    if needs_ref_sem and ex_labels is None and ex_kp is None:
        what = "pose keypoints" if kind == "pose" else "semantic map"
        raise InputError(f"this CoCosNet model ({entry.config_name}) needs the exemplar's {what} "
                         f"(--exemplar-map)")
    with ctx.timed("encode"):
        sem = encode_for_config(kind, nc, labels=input_labels, keypoints=input_keypoints, photo=input_photo,
                                size=size, canvas_size=canvas_size).unsqueeze(0).to(device)

    # Keyed by what the exemplar side depends on: the weights, the exemplar (and its own semantics
    # where the model reads them), size, device and compute dtype; the seed only where it draws the
    # noise that stands in for the exemplar's semantics.
    key = ("cocosnet-exemplar", model, entry.sha256, _digest(exemplar),
           _digest(exemplar_labels) if needs_ref_sem else None,
           _digest(exemplar_keypoints) if needs_ref_sem else None,
           size, str(device), str(autocast_dtype(device, precision)),
           seed if config.get("noise_for_mask") else None)

    def exemplar_side() -> ExemplarSide:
        ref_img = encode_image(ex_photo, size).unsqueeze(0).to(device)
        ref_sem = None
        if needs_ref_sem:
            ref_sem = encode_for_config(kind, nc, labels=ex_labels, keypoints=ex_kp, photo=ex_photo, size=size,
                                        canvas_size=(ex_photo.shape[1], ex_photo.shape[0])).unsqueeze(0).to(device)
        with precision_context(device, precision):
            if config.get("noise_for_mask"):
                gen = torch.Generator(device=device).manual_seed(seed)
                phi = net_corr.exemplar_keys(ref_img, ref_sem, noise=gen).float()
            else:
                phi = ctx.models.compiler(net_corr, "exemplar_keys", ref_img, ref_sem, once=True).float()
        return ExemplarSide(ref_img=ref_img, phi=phi)

    ctx.progress("exemplar features", 0.1)
    with ctx.timed("exemplar"):
        side = ctx.cache.get_or_create(key, exemplar_side)
    ref_img, phi = side.ref_img, side.phi
    ctx.progress("correspondence", 0.4)
    with ctx.timed("correspondence"), precision_context(device, precision):
        theta = ctx.models.compiler(net_corr, "input_keys", sem)
        ctx.check()
        warp = net_corr.warp(theta, phi, ref_img)  # warp_mask only serves a training loss
    ctx.progress("translation", 0.6)
    with ctx.timed("translation"), precision_context(device, precision):
        fake = ctx.models.compiler(net_g, "forward", sem, warp["warp_out"])
    ctx.progress("done", 1.0)
    return Translation(image=to_uint8_image(fake.float()), warped_exemplar=to_uint8_image(warp["warp_out"].float()),
                       size=size)


@runner(ExemplarRequest)
def run_exemplar(request: ExemplarRequest, ctx: TaskContext) -> Result:
    model = resolve_model(request.model)
    labels = _array(request.input_map)
    keypoints = _array(request.keypoints)
    if labels is None and keypoints is None:
        raise InputError("exemplar translation needs an input semantic map (or pose keypoints)")
    ex = _check_photo(_array(request.exemplar), "exemplar")
    canvas = request.canvas_size or (ex.shape[1], ex.shape[0])
    exemplar, ex_kp = request.exemplar, _array(request.exemplar_keypoints)
    pose_canvas = ctx.models.entry(model).config.get("pose_canvas")
    crop = None
    if keypoints is not None and pose_canvas:
        # A model trained on pose canvases of one size (``pose_canvas``, W×H) gets its poses in
        # that frame: the canvas and the exemplar are padded to its shape (never squeezed) and
        # scaled to its size (the skeleton's strokes as thick as in training); the output is
        # cropped back to the canvas.
        from ..limits import MAX_CANVAS_SIDE, check_int_range

        canvas = tuple(check_int_range(int(v) if isinstance(v, np.integer) else v, f"pose canvas {name}", 1,
                                       MAX_CANVAS_SIDE) for v, name in zip(canvas, ("width", "height"), strict=True))
        mw, mh = (int(v) for v in pose_canvas)
        (pw, ph), offset = padded_canvas(canvas, mw / mh)
        keypoints, crop = _place(keypoints, offset, mh / ph), ((offset[0] * mh / ph, offset[1] * mh / ph),
                                                                (canvas[0] * mh / ph, canvas[1] * mh / ph))
        canvas = (mw, mh)
        padded, ex_offset = pad_photo(ex, mw / mh)
        ex_kp = _place(ex_kp, ex_offset, mh / padded.shape[0])
        exemplar = resize_rgb(padded, (mh, mw))
    out = translate(ctx, model, input_labels=labels, input_keypoints=keypoints,
                    input_photo=_array(request.input_photo), exemplar=exemplar,
                    exemplar_labels=request.exemplar_map, exemplar_keypoints=ex_kp,
                    canvas_size=canvas, preview_size=request.preview_size, precision=request.precision,
                    seed=request.seed)
    shape = labels.shape[:2] if labels is not None else (canvas[1], canvas[0])
    target = output_shape(shape, out.size)
    image, warped = resize_rgb(out.image, target), resize_rgb(out.warped_exemplar, target)
    if crop is not None:
        (x0, y0), (w, h) = crop
        scale = target[0] / canvas[1]
        box = (round(y0 * scale), max(round((y0 + h) * scale), round(y0 * scale) + 1),
               round(x0 * scale), max(round((x0 + w) * scale), round(x0 * scale) + 1))
        image, warped = (im[box[0]:box[1], box[2]:box[3]].copy() for im in (image, warped))
    return ctx.result(image, {"warped_exemplar": warped})


__all__ = ["translate", "run_exemplar", "resolve_model", "working_size", "Translation", "padded_canvas", "pad_photo"]
