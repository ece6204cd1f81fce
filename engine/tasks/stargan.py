"""StarGAN v2 tasks: latent-guided and reference-guided synthesis, and style interpolation.

Work that does not depend on the style is cached per source image (keyed by content digest):
the resized source, the FAN masks and the generator's encoder half. Style codes are cached per
(seed, domain) or per reference image, and the averaged style used for truncation ψ per domain,
so moving the ψ or α slider runs only the generator's decoder.

Pre-processing follows the official test pipeline: the whole image resized (bilinear, aspect ratio
not kept, no crop) to the model's square size, then mapped to [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..devices import autocast_dtype, precision_context
from ..nets.stargan2 import domain_names, network_args, prepare_for_inference, preview_grid
from ..requests.base import FrozenArray, InputError, Request, Result
from ..requests.stargan2 import (
    LatentStyle,
    ReferenceStyle,
    StarGANInterpolateRequest,
    StarGANLatentRequest,
    StarGANReferenceRequest,
    Style,
)
from . import TaskContext, runner, to_uint8_image

FAMILY = "stargan2"
# Number of random codes averaged for the truncation centre (official debug grids: 10 000).
AVERAGE_STYLE_SAMPLES = 10_000
AVERAGE_STYLE_SEED = 777


@dataclass(frozen=True)
class _Model:
    name: str
    nets: dict[str, torch.nn.Module]
    args: dict[str, Any]
    domains: list[str]


def _default_model_name() -> str:
    from ..weights import current_manifest, default_model

    return default_model(current_manifest(), FAMILY)


def _load(request: Request, ctx: TaskContext) -> _Model:
    name = request.model or _default_model_name()
    entry = ctx.models.entry(name)
    if entry.family != FAMILY:
        raise InputError(f"model {name!r} is a {entry.family} model, not StarGAN v2")
    with ctx.timed("load"):
        nets = ctx.models.get(name, ctx.device)
        prepare_for_inference(nets)  # idempotent on the cached modules
    return _Model(name, nets, network_args(entry.config), domain_names(entry.config))


def _check_domain(model: _Model, domain: int, what: str) -> int:
    if isinstance(domain, bool) or not isinstance(domain, (int, np.integer)):
        raise InputError(f"{what} must be a domain index, got {domain!r}")
    if not 0 <= int(domain) < len(model.domains):
        listing = ", ".join(f"{i}={n}" for i, n in enumerate(model.domains))
        raise InputError(f"{what} {domain} is out of range for model {model.name!r} (domains: {listing})")
    return int(domain)


def _check_finite(value: float, what: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def image_to_tensor(image: np.ndarray, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Official test pre-processing: RGB uint8 of any size -> (1, 3, size, size) in [-1, 1] on ``device``
    (the pixels travel as uint8, a quarter of float32's bytes, and are scaled there)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"expected an RGB image (H×W×3), got an array of shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {arr.dtype}")
    pil = Image.fromarray(np.ascontiguousarray(arr[:, :, :3]))
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.BILINEAR)  # torchvision Resize([s, s]) on a PIL image
    x = torch.from_numpy(np.array(pil, dtype=np.uint8)).permute(2, 0, 1).to(device)
    return (x.float() / 127.5 - 1.0).unsqueeze(0)


def working_size(model: _Model, preview_size: int | None) -> int:
    """The generator's input size: the model size, or a smaller multiple of 2**downsamplings for
    previews (the encoder's bottleneck needs at least 2×2 for instance norm)."""
    native = int(model.args["img_size"])
    if preview_size is None or preview_size >= native:
        return native
    if preview_size < 1:
        raise InputError(f"preview size must be positive, got {preview_size}")
    return preview_grid(model.args).fit(preview_size)


def _key(ctx: TaskContext, model: _Model, precision: str, *parts: Any) -> tuple:
    return (FAMILY, model.name, str(ctx.device), str(autocast_dtype(ctx.device, precision)), *parts)


def _source_features(ctx: TaskContext, model: _Model, source: FrozenArray | None, size: int,
                     precision: str) -> tuple[torch.Tensor, dict[int, torch.Tensor], Any]:
    """(bottleneck, skip cache, masks) of the generator's encoder half for one source image."""
    if source is None:
        raise InputError("no source image given")

    def make() -> tuple[torch.Tensor, dict[int, torch.Tensor], Any]:
        x = image_to_tensor(source.array, size, ctx.device)
        masks = None
        if model.args["w_hpf"] > 0:
            with ctx.timed("masks"):
                masks = model.nets["fan"].get_heatmap(x)
            ctx.progress("face masks", 0.3)
        with ctx.timed("encode"):
            h, cache = ctx.models.compiler(model.nets["generator"], "encode_source", x, masks, once=True)
        return h, cache, masks

    return ctx.cache.get_or_create(_key(ctx, model, precision, "source", source.digest, size), make)


def _average_style(ctx: TaskContext, model: _Model, domain: int, precision: str) -> torch.Tensor:
    def make() -> torch.Tensor:
        gen = torch.Generator().manual_seed(AVERAGE_STYLE_SEED)
        z = torch.randn(AVERAGE_STYLE_SAMPLES, model.args["latent_dim"], generator=gen).to(ctx.device)
        with ctx.timed("average style"):
            return model.nets["mapping_network"].for_domain(z, domain).mean(dim=0, keepdim=True)

    return ctx.cache.get_or_create(_key(ctx, model, precision, "avg-style", domain), make)


def latent_code(seed: int, latent_dim: int) -> torch.Tensor:
    """z ~ N(0, I) of one output, reproducible from ``seed``."""
    return torch.randn(1, latent_dim, generator=torch.Generator().manual_seed(int(seed)))


def _latent_style(ctx: TaskContext, model: _Model, style: LatentStyle, precision: str) -> torch.Tensor:
    domain = _check_domain(model, style.domain, "target domain")
    psi = _check_finite(style.psi, "truncation psi")

    def make() -> torch.Tensor:
        z = latent_code(style.seed, model.args["latent_dim"]).to(ctx.device)
        with ctx.timed("style"):
            return model.nets["mapping_network"].for_domain(z, domain)

    s = ctx.cache.get_or_create(_key(ctx, model, precision, "latent-style", domain, int(style.seed)), make)
    if psi != 1.0:
        s = torch.lerp(_average_style(ctx, model, domain, precision), s, psi)
    return s


def _reference_style(ctx: TaskContext, model: _Model, style: ReferenceStyle, precision: str) -> torch.Tensor:
    domain = _check_domain(model, style.domain, "reference domain")
    if style.image is None:
        raise InputError("no reference image given")

    def make() -> torch.Tensor:
        x = image_to_tensor(style.image.array, int(model.args["img_size"]), ctx.device)
        y = torch.tensor([domain], device=ctx.device)
        with ctx.timed("style"):
            return model.nets["style_encoder"](x, y)

    return ctx.cache.get_or_create(_key(ctx, model, precision, "ref-style", style.image.digest, domain), make)


def _style(ctx: TaskContext, model: _Model, style: Style | None, precision: str, what: str) -> torch.Tensor:
    if isinstance(style, LatentStyle):
        return _latent_style(ctx, model, style, precision)
    if isinstance(style, ReferenceStyle):
        return _reference_style(ctx, model, style, precision)
    raise InputError(f"{what} is missing (give a LatentStyle or a ReferenceStyle)")


def _synthesise(ctx: TaskContext, model: _Model, request: Request, source: FrozenArray | None,
                style_fn) -> Result:
    size = working_size(model, request.preview_size)
    with precision_context(ctx.device, request.precision):
        h, cache, masks = _source_features(ctx, model, source, size, request.precision)
        ctx.progress("style", 0.5)
        s = style_fn()
        ctx.progress("generate", 0.6)
        with ctx.timed("decode"):
            out = ctx.models.compiler(model.nets["generator"], "decode_style", h, s, cache, masks)
    aux = {}
    if masks is not None:
        aux["face_mask"] = to_uint8_image(masks[0] * 2 - 1)
    if size != model.args["img_size"]:
        ctx.note(f"preview at {size}×{size} (model size {model.args['img_size']})")
    ctx.progress("done", 1.0)
    return ctx.result(to_uint8_image(out), aux)


@runner(StarGANLatentRequest)
def run_latent(request: StarGANLatentRequest, ctx: TaskContext) -> Result:
    model = _load(request, ctx)
    style = LatentStyle(domain=request.target_domain, seed=request.seed, psi=request.psi)
    return _synthesise(ctx, model, request, request.source,
                       lambda: _latent_style(ctx, model, style, request.precision))


@runner(StarGANReferenceRequest)
def run_reference(request: StarGANReferenceRequest, ctx: TaskContext) -> Result:
    model = _load(request, ctx)
    if request.reference is None:
        raise InputError("no reference image given")
    style = ReferenceStyle(image=request.reference, domain=request.reference_domain)
    return _synthesise(ctx, model, request, request.source,
                       lambda: _reference_style(ctx, model, style, request.precision))


@runner(StarGANInterpolateRequest)
def run_interpolate(request: StarGANInterpolateRequest, ctx: TaskContext) -> Result:
    model = _load(request, ctx)
    alpha = _check_finite(request.alpha, "alpha")

    def style() -> torch.Tensor:
        s_a = _style(ctx, model, request.style_a, request.precision, "style A")
        s_b = _style(ctx, model, request.style_b, request.precision, "style B")
        return torch.lerp(s_a, s_b, alpha)

    return _synthesise(ctx, model, request, request.source, style)


__all__ = ["run_latent", "run_reference", "run_interpolate", "image_to_tensor", "working_size", "latent_code"]
