"""EdgeGAN object task: a freehand sketch + a class -> the generated edge map and object image.

Procedure of the official ``edgegan/test.py``: the sketch (here any size: binarised, thin pen strokes
thickened to the training edge maps' width, cropped to its strokes, padded to a centred square,
resized to the model's size) goes through the encoder E to
z = μ + ε·σ (one scalar ε per call, seeded), the class one-hot is appended, G1 draws the edge map and
G2 the image. The result image is G2's; aux holds the prepared input and G1's edge map.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ..devices import precision_context
from ..inputs.sketch import PreparedSketch, binarise, content_box, prepare_sketch, to_grey, to_tensor
from ..nets.edgegan import class_names
from ..requests.base import InputError, Result
from ..requests.edgegan import SketchObjectRequest
from . import TaskContext, runner, to_uint8_image

FAMILY = "edgegan"


@dataclass(frozen=True)
class EdgeGANModel:
    name: str
    nets: dict[str, nn.Module]
    config: dict[str, Any]
    classes: list[str]


def _manifest(ctx: TaskContext):
    from ..weights import Manifest

    return ctx.models.manifest or Manifest()


def default_model_name(ctx: TaskContext, need_background: bool = False) -> str:
    """The EdgeGAN entry marked default (or the first), preferring ones with a background network
    when ``need_background``."""
    return ctx.models.default_model(FAMILY, need_background=need_background)


def load_model(ctx: TaskContext, name: str) -> EdgeGANModel:
    entry = ctx.models.entry(name)
    if entry.family != FAMILY:
        raise InputError(f"model {name!r} is a {entry.family} model, not EdgeGAN")
    nets = ctx.models.get(name, ctx.device)
    return EdgeGANModel(name, nets, dict(entry.config), class_names(entry.config))


def class_index(model: EdgeGANModel, class_name: str) -> int:
    """Class by name (case, spaces and underscores ignored) or by index."""
    def norm(s: str) -> str:
        return s.strip().lower().replace("_", " ").replace("-", " ")

    wanted = norm(class_name)
    for i, c in enumerate(model.classes):
        if norm(c) == wanted:
            return i
    if wanted.isdigit() and int(wanted) < len(model.classes):
        return int(wanted)
    raise InputError(f"model {model.name!r} has no class {class_name!r}; its classes: {', '.join(model.classes)}")


PEN_WIDTH = 1.5  # stroke width (px at the model's size) below which a sketch's strokes are thickened


def pen_width(mask: np.ndarray) -> float:
    """Mean stroke width (px) of a stroke mask: area / half the contour length (a line of width w and
    length L has area w·L and perimeter ≈ 2L)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return float(2.0 * mask.sum() / perimeter) if perimeter > 0 else 0.0


def thicken_to_model(sketch: np.ndarray, size: int) -> np.ndarray:
    """Thicken thin pen strokes so that at the model's size they are about :data:`PEN_WIDTH` px wide,
    as the training edge maps are; a 3-px pen on a 256-px canvas would otherwise fade to a faint
    sub-pixel line. Sketches whose strokes are already that wide are returned as they are."""
    mask = binarise(sketch)
    box = content_box(mask)
    if box is None:
        return sketch
    side = max(box[2] - box[0], box[3] - box[1])
    missing = PEN_WIDTH * side / size - pen_width(mask)  # in input pixels
    if missing < 1.0:
        return sketch
    k = int(round(missing)) + 1
    thick = cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    return np.where(thick, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ObjectOutput:
    prepared: PreparedSketch
    edge: torch.Tensor   # 1×3×S×S in [-1, 1]
    image: torch.Tensor  # 1×3×S×S in [-1, 1]


def generate_object(model: EdgeGANModel, ctx: TaskContext, sketch: np.ndarray, label: int, *, seed: int,
                    noise: str = "scalar", precision: str = "auto") -> ObjectOutput:
    """E -> z -> (G1 edge, G2 image) for one sketch; network stages are cancellation points."""
    size = int(model.config.get("image_size", 64))
    with ctx.timed("prepare"):
        prepared = prepare_sketch(thicken_to_model(sketch, size), size)
        x = to_tensor(prepared.image).unsqueeze(0).to(ctx.device)
    gen = torch.Generator().manual_seed(int(seed))
    labels = torch.tensor([label], device=ctx.device)
    with precision_context(ctx.device, precision):
        with ctx.timed("encoder"):
            z, _, _ = model.nets["encoder"](x, noise=noise, generator=gen)
        ctx.check()
        with ctx.timed("edge_generator"):
            edge = model.nets["edge_generator"](z, labels)
        ctx.check()
        with ctx.timed("image_generator"):
            image = model.nets["image_generator"](z, labels)
    return ObjectOutput(prepared, edge.float(), image.float())


@runner(SketchObjectRequest)
def run_sketch(request: SketchObjectRequest, ctx: TaskContext) -> Result:
    if request.sketch is None:
        raise InputError("no sketch was given")
    if not request.class_name:
        raise InputError("no object class was given")
    sketch = to_grey(request.sketch.array)
    ctx.progress("loading model", 0.0)
    model = load_model(ctx, request.model or default_model_name(ctx))
    label = class_index(model, request.class_name)
    ctx.progress("generating", 0.3)
    out = generate_object(model, ctx, sketch, label, seed=request.seed, noise=request.noise,
                          precision=request.precision)
    ctx.progress("done", 1.0)
    prepared = np.repeat(out.prepared.image[..., None], 3, axis=2)
    return ctx.result(to_uint8_image(out.image), {"input": prepared, "edge": to_uint8_image(out.edge)})


__all__ = ["run_sketch", "generate_object", "load_model", "default_model_name", "class_index"]
