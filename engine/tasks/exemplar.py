"""Exemplar-based translation with CoCosNet: input semantics + exemplar photo -> image, plus the
warped exemplar (``aux["warped_exemplar"]``) so the GUI can show the correspondence.

:func:`translate` is the shared pipeline that the editing and makeup tasks reuse. The exemplar's
correspondence keys (netCorr's exemplar branch, about half of the network) and its encoded image are
cached in ``ctx.cache`` by content digest (not by seed), so moving a slider, pressing Vary or editing
the input map does not recompute them.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from ..requests.base import FrozenArray, InputError, Request, Result, WeightsError
from ..requests.cocosnet import ExemplarRequest
from ..inputs.cocosnet import encode_for_config, encode_image
from ..devices import autocast_dtype, precision_context
from ..nets.cocosnet import prepare_for_inference, preview_grid
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
    if name:
        return name
    from ..weights import Manifest

    entries = Manifest().by_family(FAMILY)
    if not entries:
        raise WeightsError("no CoCosNet weights are registered; import official ones with "
                           "`i2i weights import latest_net_G.pth latest_net_Corr.pth --as NAME --family cocosnet "
                           "--config ade20k` or train one with `i2i train cocosnet`")
    default = [e for e in entries if e.extra.get("default")]
    return (default or entries)[0].name


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

    needs_ref_sem = bool(config.get("maskmix")) and not config.get("noise_for_mask")
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
    out = translate(ctx, model, input_labels=labels, input_keypoints=keypoints,
                    input_photo=_array(request.input_photo), exemplar=request.exemplar,
                    exemplar_labels=request.exemplar_map, exemplar_keypoints=request.exemplar_keypoints,
                    canvas_size=canvas, preview_size=request.preview_size, precision=request.precision,
                    seed=request.seed)
    shape = labels.shape[:2] if labels is not None else (canvas[1], canvas[0])
    target = output_shape(shape, out.size)
    return ctx.result(resize_rgb(out.image, target), {"warped_exemplar": resize_rgb(out.warped_exemplar, target)})


# ------------------------------------------------------------------------------------------------ CLI
def config_mismatch(entry: Any, config: str) -> str:
    """Why manifest ``entry`` cannot stand in for the released CoCosNet ``config`` ('' when it can):
    a model named like ``small_ade20k`` may take a different input or class count than ``ade20k``."""
    from ..nets.cocosnet import CONFIGS

    named = CONFIGS.get(config)
    if named is None or entry.config_name == config:
        return ""
    reasons = []
    kind, named_kind = entry.config.get("input_kind", "labels"), named.get("input_kind", "labels")
    if kind != named_kind:
        reasons.append(f"it takes {kind} input, {config} takes {named_kind}")
    nc, named_nc = int(entry.config.get("semantic_nc", 0)), int(named.get("semantic_nc", 0))
    if nc != named_nc:
        reasons.append(f"it has {nc} classes, {config} has {named_nc}")
    return "; ".join(reasons)


def pick_model(config: str | None, model: str) -> str:
    """``--model``, else the registered CoCosNet entry for ``--config`` (default-flagged first). A
    model merely named like the config (``small_ade20k`` for ``ade20k``) is taken only when its input
    and classes match; a mismatch is refused, naming both."""
    from ..cli import CliError, default_model
    from ..weights import Manifest

    manifest = Manifest()
    if model:
        why = config_mismatch(manifest.get(model), config) if config else ""
        if why:
            raise CliError(f"--model {model} does not fit --config {config}: {why}; drop --config to run it")
        return model
    if not config:
        return default_model(FAMILY)
    entries = manifest.by_family(FAMILY)
    exact = [e for e in entries if e.config_name == config]
    loose = [e for e in entries if config in e.config_name and e.config_name != config]
    found = exact or [e for e in loose if not config_mismatch(e, config)]
    if not found:
        how = (f"import the official files with `i2i weights import latest_net_G.pth latest_net_Corr.pth "
               f"--as cocosnet_{config} --family cocosnet --config {config}`")
        if loose:
            e = loose[0]
            raise CliError(f"no CoCosNet model for config {config!r} is registered: {e.name} is "
                           f"{e.config_name}, not {config} ({config_mismatch(e, config)}); run it with "
                           f"--model {e.name}, or {how}")
        raise CliError(f"no CoCosNet model for config {config!r} is registered; {how}")
    default = [e for e in found if e.extra.get("default")]
    return (default or found)[0].name


def read_semantics(path: str, config_name: str, model: str) -> tuple[np.ndarray | None, np.ndarray | None, tuple[int, int] | None]:
    """(label map, keypoints, canvas size) from a PNG label/parsing map or an OpenPose JSON."""
    from ..io import load_label_map, load_openpose_canvas, load_openpose_json, load_palette
    from ..weights import Manifest

    kind = Manifest().get(model).config.get("input_kind", "labels")
    if kind == "pose" and not path.lower().endswith(".json"):
        # a person photo: keypoints from MediaPipe (optional extra)
        from ..inputs.cocosnet import pose_from_photo
        from ..io import load_image

        photo = load_image(path)
        return None, pose_from_photo(photo), (photo.shape[1], photo.shape[0])
    if path.lower().endswith(".json"):
        return None, load_openpose_json(path), load_openpose_canvas(path)
    palette_name = {"labels": "ade20k" if "ade20k" in config_name else "scenes"}.get(kind, "celebamask_hq")
    try:
        palette = load_palette(palette_name)
    except InputError:
        palette = None
    return load_label_map(path, palette), None, None


def _cmd_cocosnet(args: argparse.Namespace) -> int:
    from ..io import load_image
    from ..weights import Manifest

    model = pick_model(args.config, args.model)
    config_name = Manifest().get(model).config_name
    labels, kp, canvas = read_semantics(args.input, config_name, model)
    exemplar = load_image(args.exemplar)
    ex_labels = ex_kp = None
    if args.exemplar_map:
        ex_labels, ex_kp, _ = read_semantics(args.exemplar_map, config_name, model)
    request = ExemplarRequest(
        model=model, seed=args.seed, preview_size=args.preview_size, device=args.device, precision=args.precision,
        input_map=FrozenArray(labels) if labels is not None else None,
        keypoints=FrozenArray(kp) if kp is not None else None,
        exemplar=FrozenArray(exemplar),
        exemplar_map=FrozenArray(ex_labels) if ex_labels is not None else None,
        exemplar_keypoints=FrozenArray(ex_kp) if ex_kp is not None else None,
        input_photo=FrozenArray(load_image(args.input_photo)) if args.input_photo else None,
        canvas_size=canvas)
    return write_outputs(request, args.out, args.save_warp)


def write_outputs(request: Request, out: str, save_warp: str | None) -> int:
    """CLI tail shared by the CoCosNet commands: run, write the image and optionally the warp."""
    from ..cli import run_task
    from ..io import save_image

    result = run_task(request)
    save_image(out, result.image)
    print(f"wrote {out}")
    if save_warp:
        save_image(save_warp, result.aux["warped_exemplar"])
        print(f"wrote {save_warp}")
    return 0


def register_cli(groups: Any) -> None:
    from ..cli import IMAGE_SUFFIXES, FolderMode, add_common_generate_args

    p = groups.generate.add_parser("cocosnet", help="CoCosNet exemplar-based translation (semantics + exemplar photo)")
    p.add_argument("--config", default=None,
                   help="ade20k | ade20k_nomask | celebahq | celebahqedge | deepfashion (picks the registered model)")
    p.add_argument("--input", required=True,
                   help="label map / face parsing PNG; deepfashion: OpenPose JSON or a person photo (needs mediapipe); "
                        "or a folder of them (then --out is a folder)")
    p.add_argument("--exemplar", required=True, help="exemplar photo")
    p.add_argument("--exemplar-map", default=None, help="the exemplar's own map / pose JSON (maskmix models need it)")
    p.add_argument("--input-photo", default=None, help="celebahqedge: photo behind --input (adds hair/background edges)")
    p.add_argument("--out", required=True, help="output image")
    p.add_argument("--save-warp", default=None, help="also write the warped exemplar here")
    ex = "assets/examples"
    add_common_generate_args(p, folder=FolderMode(input="input", suffixes=(*IMAGE_SUFFIXES, ".json"),
                                                  companions=("input_photo",), outputs=("out", "save_warp")),
                             examples=(
        f"i2i generate cocosnet --input {ex}/maps/scene_000019.png --exemplar {ex}/exemplars/scene_000039.png "
        f"--exemplar-map {ex}/maps/scene_000039.png --out out/exemplar.png --save-warp out/exemplar_warp.png",
        f"i2i generate cocosnet --config celebahqedge --input {ex}/parsing/female_000019.png "
        f"--input-photo {ex}/faces/female_000019.png --exemplar {ex}/faces/male_000039.png "
        f"--exemplar-map {ex}/parsing/male_000039.png --out out/face.png",
        f"i2i generate cocosnet --config celebahqedge --input {ex}/parsing --input-photo {ex}/faces "
        f"--exemplar {ex}/faces/male_000039.png --exemplar-map {ex}/parsing/male_000039.png --out out/faces/"))
    p.set_defaults(func=_cmd_cocosnet)


__all__ = ["translate", "run_exemplar", "resolve_model", "working_size", "pick_model", "register_cli", "Translation"]
