"""Panoptic map → image (Panoptic-based image synthesis, or SPADE in semantic-only mode).

The label and instance maps are resized (nearest, ids never blended) to the model's working
size: its native size, or for previews the largest multiple of 2^num_upsamplings not above
``preview_size`` (models without the VAE are fully convolutional). The image is returned at the
working size. Conditioning tensors are cached per (maps, size); with the VAE the style code of a
style image is cached per image, so a new seed reruns only the generator.
"""
from __future__ import annotations

import argparse
from typing import Any, Mapping

import numpy as np
import torch

from ..requests.base import FrozenArray, InputError, Result
from ..requests.panoptic import PanopticRequest
from ..devices import precision_context
from ..io import load_image, load_palette, save_image
from ..inputs.panoptic import check_pair, conditioning, edges_image, import_coco_panoptic, load_panoptic, panoptic_ids, resize_nearest
from . import TaskContext, runner, to_uint8_image

FAMILY = "panoptic"


def _default_model_name() -> str:
    from ..weights import Manifest

    entries = Manifest().by_family(FAMILY)
    if not entries:
        raise InputError("no panoptic weights are registered; import SPADE's with "
                         "`i2i weights import latest_net_G.pth --as spade_coco --family panoptic --config spade_coco` "
                         "or train one with `i2i train panoptic`")
    default = [e for e in entries if e.extra.get("default")]
    return (default or entries)[0].name


def working_size(config: Mapping[str, Any], preview_size: int | None) -> tuple[int, int]:
    """(H, W) the generator runs at."""
    from ..nets.panoptic import _NUM_UPSAMPLINGS, preview_grid

    m = 2 ** _NUM_UPSAMPLINGS[config.get("num_upsampling_layers", "normal")]
    W = int(config.get("crop_size", 256))
    H = int(round(W / float(config.get("aspect_ratio", 1.0))))
    H, W = H // m * m, W // m * m
    grid = preview_grid(config)
    if preview_size and grid is not None and max(H, W) > preview_size:
        scale = grid.fit(preview_size) / max(H, W)
        H, W = max(m, int(H * scale) // m * m), max(m, int(W * scale) // m * m)
    return H, W


@runner(PanopticRequest)
def run(request: PanopticRequest, ctx: TaskContext) -> Result:
    if request.labels is None:
        raise InputError("a panoptic request needs a label map")
    check_pair(request.labels.array, request.instances.array if request.instances is not None else None)
    name = request.model or _default_model_name()
    entry = ctx.models.entry(name)
    if entry.family != FAMILY:
        raise InputError(f"model {name!r} is a {entry.family} model, not a panoptic/SPADE one")
    config = entry.config
    size = working_size(config, request.preview_size)
    ctx.progress("preparing maps", 0.0)

    def make_cond() -> tuple[torch.Tensor, torch.Tensor]:
        labels = resize_nearest(request.labels.array, size)
        inst = resize_nearest(request.instances.array, size) if request.instances is not None else None
        return conditioning(labels, inst, config)

    key = ("panoptic-cond", name, request.labels.digest,
           request.instances.digest if request.instances is not None else None, size)
    with ctx.timed("inputs"):
        semantic, ids = ctx.cache.get_or_create(key, make_cond)
    nets = ctx.models.get(name, ctx.device)
    netG = nets["netG"]
    ctx.progress("generating", 0.2)
    dev = ctx.device
    z = None
    with precision_context(dev, request.precision):
        if config.get("use_vae"):
            z = _style_code(request, ctx, nets, name)
        ctx.check()
        with ctx.timed("generator"):
            out = netG(semantic.to(dev), ids.to(dev), z)
    ctx.progress("done", 1.0)
    if config.get("instance_edge", True):  # the edge channel the generator was given
        edges = (semantic[0, -1].numpy() * 255).astype(np.uint8)
        aux = {"instance_edges": np.repeat(edges[..., None], 3, axis=2)}
    else:
        aux = {"instance_edges": edges_image(ids[0].numpy())}
    if config.get("palette"):
        try:
            pal = load_palette(config["palette"])
            aux["labels"] = pal.colorize(resize_nearest(request.labels.array, size))
        except InputError:
            pass
    if request.instances is None and config.get("mode") == "panoptic":
        ctx.note("no instance map given: every class is one segment (touching things of a class merge)")
    return ctx.result(to_uint8_image(out), aux)


def _style_code(request: PanopticRequest, ctx: TaskContext, nets: Mapping[str, torch.nn.Module], name: str) -> torch.Tensor:
    """z from the VAE encoder on the style image (μ + σ·ε with ε from the seed), or N(0, I) from the seed."""
    from ..nets.panoptic import reparameterize

    config = ctx.models.entry(name).config
    gen = torch.Generator().manual_seed(int(request.seed))
    if request.style_image is None:
        return torch.randn(1, int(config.get("z_dim", 256)), generator=gen).to(ctx.device)
    if "netE" not in nets:
        raise InputError(f"model {name!r} has no style encoder (netE)")

    def encode() -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(np.array(request.style_image.array)).permute(2, 0, 1)[None].float()
        with ctx.timed("encoder"):
            return nets["netE"]((img / 127.5 - 1).to(ctx.device))

    # netE runs on the job's device under its precision: both change μ and log σ²
    key = ("panoptic-style", name, request.style_image.digest, str(ctx.device), request.precision)
    mu, logvar = ctx.cache.get_or_create(key, encode)
    return reparameterize(mu.float().cpu(), logvar.float().cpu(), gen).to(ctx.device)


# ------------------------------------------------------------------------------ CLI
def _cmd_generate(args: argparse.Namespace) -> int:
    from ..cli import CliError, default_model, run_task
    from ..weights import Manifest

    model = default_model(FAMILY, args.model)
    config = Manifest().get(model).config
    if args.coco_png:
        if not args.coco_json:
            raise CliError("--coco-png needs --coco-json (the panoptic annotation file)")
        space = "coco_panoptic" if config.get("palette") == "coco_panoptic" else "coco_stuff"
        labels, instances = import_coco_panoptic(args.coco_png, args.coco_json, space)
    elif args.labels:
        labels, instances = load_panoptic(args.labels, args.instances, args.palette or config.get("palette"))
    else:
        raise CliError("give --labels L.png [--instances I.png], or --coco-png P.png --coco-json J.json")
    style = FrozenArray(load_image(args.style)) if args.style else None
    request = PanopticRequest(model=model, seed=args.seed, preview_size=args.preview_size, device=args.device,
                              precision=args.precision, labels=FrozenArray(labels),
                              instances=FrozenArray(instances) if instances is not None else None,
                              style_image=style)
    try:
        result = run_task(request)
    except InputError as exc:  # the maps' problem (e.g. a class the model lacks): name the files
        raise InputError(f"{args.coco_json or args.labels}: {exc}") from None
    save_image(args.out, result.image)
    if args.save_edges:
        save_image(args.save_edges, result.aux["instance_edges"])
    segments = len(np.unique(panoptic_ids(labels, instances)))
    print(f"wrote {args.out} ({result.image.shape[1]}×{result.image.shape[0]}, {segments} segments, "
          f"model {model}, {sum(result.timings.values()):.2f} s)")
    return 0


def register_cli(groups: Any) -> None:
    from ..cli import FolderMode, add_common_generate_args

    p = groups.generate.add_parser("panoptic", help="panoptic map (labels + instance ids) → image; "
                                                    "SPADE models run semantic-only")
    p.add_argument("--labels", "--input", dest="labels",
                   help="label map: indexed/grey PNG (or RGB with --palette); or a folder of them (then --out is a folder)")
    p.add_argument("--instances", help="instance-id map: 16-bit PNG (stuff = class index, thing k of class c = c·1000+k); "
                                       "a folder: <labels stem>.png")
    p.add_argument("--coco-png", help="instead of --labels/--instances: a COCO panoptic PNG …")
    p.add_argument("--coco-json", help="… and its panoptic JSON (segments_info)")
    p.add_argument("--palette", help="palette to decode an RGB label map (default: the model's)")
    p.add_argument("--style", help="style image for models with the VAE encoder (multimodal synthesis)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--save-edges", help="also write the instance-edge channel as a PNG")
    ex = "assets/examples/maps"
    add_common_generate_args(p, folder=FolderMode(input="labels", companions=("instances",),
                                                  outputs=("out", "save_edges")), examples=(
        f"i2i generate panoptic --labels {ex}/scene_000019.png --instances {ex}/instances/scene_000019.png "
        f"--out out/panoptic.png --save-edges out/panoptic_edges.png",
        f"i2i generate panoptic --input {ex} --instances {ex}/instances --out out/panoptic/"))
    p.set_defaults(func=_cmd_generate)


__all__ = ["run", "working_size", "register_cli"]
