"""Panoptic map → image (Panoptic-based image synthesis, or SPADE in semantic-only mode).

The label and instance maps are resized (nearest, ids never blended) to the model's working
size: its native size, or for previews the largest multiple of 2^num_upsamplings not above
``preview_size`` (models without the VAE are fully convolutional). The image is returned at the
working size. Conditioning tensors are cached per (maps, size); with the VAE the style code of a
style image is cached per image, so a new seed reruns only the generator.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..devices import precision_context
from ..inputs.panoptic import check_pair, conditioning, edges_image
from ..io import load_palette, resize_nearest
from ..nets.panoptic import _NUM_UPSAMPLINGS, preview_grid, reparameterize
from ..requests.base import InputError, Result
from ..requests.panoptic import PanopticRequest
from . import TaskContext, runner, to_uint8_image

FAMILY = "panoptic"


def _default_model_name() -> str:
    from ..weights import current_manifest, default_model

    return default_model(current_manifest(), FAMILY)


def working_size(config: Mapping[str, Any], preview_size: int | None) -> tuple[int, int]:
    """(H, W) the generator runs at."""
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


def _style_code(request: PanopticRequest, ctx: TaskContext, nets: Mapping[str, torch.nn.Module],
                name: str) -> torch.Tensor:
    """z from the VAE encoder on the style image (μ + σ·ε with ε from the seed), or N(0, I) from the seed."""
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


__all__ = ["run", "working_size"]
