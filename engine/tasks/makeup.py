"""Makeup transfer with CoCosNet (paper §4.3): the edge-to-face model takes the target portrait's
edge/distance encoding and a made-up face as exemplar; the dense correspondence carries lip and
eye colours onto the target while the edges keep its identity. The result is blended back into
the portrait only inside the chosen face regions (lips, eyes, skin, brows) of its parsing map,
with a strength in [0, 1].
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

import cv2
import numpy as np

from ..requests.base import FrozenArray, InputError, Result
from ..requests.cocosnet import MakeupRegion, MakeupRequest
from ..inputs.cocosnet import (
    celebamask_names, face_landmarks_from_photo, parsing_from_landmarks68, resize_nearest,
)
from . import TaskContext, runner
from .edit import paste_back
from .exemplar import _array, _check_photo, pick_model, resize_rgb, resolve_model, translate, write_outputs

REGION_PARTS: dict[str, tuple[str, ...]] = {
    "lips": ("u_lip", "l_lip"),
    "eyes": ("l_eye", "r_eye"),
    "skin": ("skin", "nose"),
    "brows": ("l_brow", "r_brow"),
}
FACE_KINDS = ("celebahq_edges", "celebahq_parsing")


def region_mask(parsing: np.ndarray, regions: Sequence[str], names: Sequence[str] | None = None,
                feather: float | None = None) -> np.ndarray:
    """Float H×W in [0, 1] covering ``regions`` of a parsing map. "eyes" includes the eye-shadow
    band around each eye (skin within a face-size-relative radius)."""
    names = tuple(names) if names is not None else celebamask_names()
    parsing = np.asarray(parsing)
    unknown = [r for r in regions if r not in REGION_PARTS]
    if unknown:
        raise InputError(f"unknown makeup region(s) {unknown}; choose from {', '.join(REGION_PARTS)}")

    def parts(*ps: str) -> np.ndarray:
        return np.isin(parsing, [names.index(p) for p in ps if p in names])

    face = parts("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "mouth")
    ys, xs = np.nonzero(face)
    face_size = max(np.ptp(ys), np.ptp(xs)) + 1 if len(ys) else max(parsing.shape)
    mask = np.zeros(parsing.shape, dtype=np.uint8)
    for r in regions:
        sel = parts(*REGION_PARTS[r]).astype(np.uint8)
        if r == "eyes":
            radius = max(1, round(face_size * 0.05))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            sel = cv2.dilate(sel, kernel) & (parts("skin", "l_eye", "r_eye").astype(np.uint8))
        mask |= sel
    soft = mask.astype(np.float32)
    sigma = feather if feather is not None else max(0.5, face_size / 128)
    if sigma > 0:
        soft = np.maximum(cv2.GaussianBlur(soft, (0, 0), sigmaX=sigma), 0)
    return np.clip(soft, 0.0, 1.0)


@runner(MakeupRequest)
def run_makeup(request: MakeupRequest, ctx: TaskContext) -> Result:
    model = resolve_model(request.model)
    kind = ctx.models.entry(model).config.get("input_kind")
    if kind not in FACE_KINDS:
        raise InputError(f"makeup transfer needs a face model (celebahqedge or celebahq); {model!r} takes {kind}")
    if not 0.0 <= request.strength <= 1.0:
        raise InputError(f"makeup strength must lie in 0..1, got {request.strength}")
    portrait = _check_photo(_array(request.portrait), "portrait")
    _check_photo(_array(request.exemplar), "makeup exemplar")
    pmap = _array(request.portrait_map)
    if pmap is None or request.exemplar_map is None:
        raise InputError("makeup transfer needs face parsing maps of the portrait and of the exemplar")
    out = translate(ctx, model, input_labels=pmap, input_photo=portrait, exemplar=request.exemplar,
                    exemplar_labels=request.exemplar_map, preview_size=request.preview_size,
                    precision=request.precision, seed=request.seed)
    shape = portrait.shape[:2]
    generated = resize_rgb(out.image, shape)
    pmap_full = resize_nearest(pmap, (shape[1], shape[0]))
    if request.regions:
        mask = region_mask(pmap_full, request.regions)
    else:
        mask = np.ones(shape, dtype=np.float32)
    image = paste_back(portrait, generated, mask * float(request.strength))
    mask_img = np.repeat(np.round(mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    return ctx.result(image, {"warped_exemplar": resize_rgb(out.warped_exemplar, shape),
                              "generated": generated, "makeup_mask": mask_img})


def _cmd_makeup(args: argparse.Namespace) -> int:
    from ..cli import CliError
    from ..io import load_image
    from ..weights import Manifest
    from .exemplar import read_semantics

    model = pick_model(args.config, args.model)
    config_name = Manifest().get(model).config_name
    regions: tuple[MakeupRegion, ...] = tuple(r.strip() for r in args.regions.split(",") if r.strip())  # type: ignore[misc]
    bad = [r for r in regions if r not in REGION_PARTS]
    if bad:
        raise CliError(f"unknown region(s) {bad}; choose from {', '.join(REGION_PARTS)}")
    portrait, exemplar = load_image(args.portrait), load_image(args.exemplar)

    def parsing(map_path: str | None, photo: np.ndarray) -> np.ndarray:
        if map_path:
            return read_semantics(map_path, config_name, model)[0]
        # no map given: face parts from 68 landmarks (dlib, optional extra)
        return parsing_from_landmarks68(face_landmarks_from_photo(photo), photo.shape[:2])

    request = MakeupRequest(model=model, seed=args.seed, preview_size=args.preview_size, device=args.device,
                            precision=args.precision, portrait=FrozenArray(portrait),
                            portrait_map=FrozenArray(parsing(args.portrait_map, portrait)),
                            exemplar=FrozenArray(exemplar),
                            exemplar_map=FrozenArray(parsing(args.exemplar_map, exemplar)),
                            regions=regions, strength=args.strength)
    return write_outputs(request, args.out, args.save_warp)


def register_cli(groups: Any) -> None:
    from ..cli import FolderMode, add_common_generate_args, float_arg

    p = groups.generate.add_parser("makeup", help="CoCosNet makeup transfer onto a portrait (region-only blend)")
    p.add_argument("--config", default="celebahqedge", help="celebahqedge (default) | celebahq")
    p.add_argument("--portrait", "--input", dest="portrait", required=True,
                   help="target portrait photo, or a folder of them (then --out is a folder)")
    p.add_argument("--portrait-map", default=None,
                   help="its CelebAMask-HQ face parsing map (a folder: <portrait stem>.png; "
                        "default: from dlib face landmarks, optional extra)")
    p.add_argument("--exemplar", required=True, help="a face wearing the makeup")
    p.add_argument("--exemplar-map", default=None, help="the exemplar's face parsing map (default: from landmarks)")
    p.add_argument("--regions", default="lips,eyes,skin", help="comma list of lips, eyes, skin, brows (empty: whole image)")
    p.add_argument("--strength", type=float_arg(0.0, 1.0), default=1.0, help="blend strength 0..1")
    p.add_argument("--out", required=True, help="output image")
    p.add_argument("--save-warp", default=None, help="also write the warped exemplar here")
    ex = "assets/examples"
    add_common_generate_args(p, folder=FolderMode(input="portrait", companions=("portrait_map",),
                                                  outputs=("out", "save_warp")), examples=(
        f"i2i generate makeup --portrait {ex}/faces/female_000019.png --portrait-map {ex}/parsing/female_000019.png "
        f"--exemplar {ex}/faces/female_000079.png --exemplar-map {ex}/parsing/female_000079.png --out out/makeup.png",
        f"i2i generate makeup --input {ex}/faces --portrait-map {ex}/parsing --exemplar {ex}/faces/female_000079.png "
        f"--exemplar-map {ex}/parsing/female_000079.png --regions lips,eyes --out out/makeup/"))
    p.set_defaults(func=_cmd_makeup)


__all__ = ["run_makeup", "region_mask", "REGION_PARTS", "register_cli"]
