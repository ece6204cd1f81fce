"""StarGAN v2 tasks: latent-guided and reference-guided synthesis, and style interpolation.

Work that does not depend on the style is cached per source image (keyed by content digest):
the resized source, the FAN masks and the generator's encoder half. Style codes are cached per
(seed, domain) or per reference image, and the averaged style used for truncation ψ per domain,
so moving the ψ or α slider runs only the generator's decoder.

Pre-processing follows the official test pipeline: the whole image resized (bilinear, aspect ratio
not kept, no crop) to the model's square size, then mapped to [-1, 1].
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..requests.base import FrozenArray, InputError, Request, Result
from ..requests.stargan2 import (LatentStyle, ReferenceStyle, StarGANInterpolateRequest, StarGANLatentRequest,
                            StarGANReferenceRequest, Style)
from ..devices import autocast_dtype, precision_context
from ..nets.stargan2 import domain_names, network_args, preview_grid
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
    from ..weights import Manifest

    entries = Manifest().by_family(FAMILY)
    if not entries:
        raise InputError("no StarGAN v2 weights are registered; import official ones with "
                         "`i2i weights import 100000_nets_ema.ckpt --as NAME --family stargan2 --config celeba_hq` "
                         "or train one with `i2i train stargan2`")
    default = [e for e in entries if e.extra.get("default")]
    return (default or entries)[0].name


def _load(request: Request, ctx: TaskContext) -> _Model:
    name = request.model or _default_model_name()
    entry = ctx.models.entry(name)
    if entry.family != FAMILY:
        raise InputError(f"model {name!r} is a {entry.family} model, not StarGAN v2")
    with ctx.timed("load"):
        nets = ctx.models.get(name, ctx.device)
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


def image_to_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """Official test pre-processing: RGB uint8 of any size -> (1, 3, size, size) in [-1, 1]."""
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
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32).copy()).permute(2, 0, 1)
    return (x / 127.5 - 1.0).unsqueeze(0)


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
        x = image_to_tensor(source.array, size).to(ctx.device)
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
        x = image_to_tensor(style.image.array, int(model.args["img_size"])).to(ctx.device)
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


# ================================================================================ CLI
def _domain_index(value: str, names: Sequence[str]) -> int:
    if value in names:
        return list(names).index(value)
    try:
        return int(value)
    except ValueError:
        raise InputError(f"unknown domain {value!r}; this model's domains: {', '.join(names)}") from None


def _parse_style(spec: str, names: Sequence[str], default_seed: int) -> Style:
    """``latent:DOMAIN[:SEED[:PSI]]`` or ``ref:PATH:DOMAIN``."""
    from ..io import load_image
    from ..limits import MAX_SEED, check_int_range, finite_number

    kind, _, rest = spec.partition(":")
    if kind == "latent":
        parts = rest.split(":")
        if not parts[0]:
            raise InputError(f"style {spec!r}: expected latent:DOMAIN[:SEED[:PSI]]")
        try:
            seed = int(parts[1]) if len(parts) > 1 and parts[1] else default_seed
            psi = float(parts[2]) if len(parts) > 2 else 1.0
        except ValueError:
            raise InputError(f"style {spec!r}: SEED must be a whole number and PSI a number") from None
        check_int_range(seed, f"style {spec!r}: seed", 0, MAX_SEED)
        finite_number(psi, f"style {spec!r}: psi")
        return LatentStyle(domain=_domain_index(parts[0], names), seed=seed, psi=psi)
    if kind == "ref":
        path, sep, domain = rest.rpartition(":")
        if not sep or not path:
            raise InputError(f"style {spec!r}: expected ref:PATH:DOMAIN")
        return ReferenceStyle(image=FrozenArray(load_image(path)), domain=_domain_index(domain, names))
    raise InputError(f"style {spec!r} must start with 'latent:' or 'ref:'")


class _Session:
    """Runs the requests of a grid in the command's session (one model store, one style cache)."""

    def run(self, request: Request) -> np.ndarray:
        from ..cli import run_task

        return run_task(request).image


def _model_info(args: argparse.Namespace) -> tuple[str, list[str], int]:
    from ..cli import default_model
    from ..weights import Manifest

    name = default_model(FAMILY, args.model)
    entry = Manifest().get(name)
    return name, domain_names(entry.config), int(network_args(entry.config)["img_size"])


def _tile(rows: list[list[np.ndarray | None]], size: int, pad: int = 2) -> np.ndarray:
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    canvas = np.full((n_rows * (size + pad) + pad, n_cols * (size + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            if img is None:
                continue
            if img.shape[:2] != (size, size):
                img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
            y, x = pad + i * (size + pad), pad + j * (size + pad)
            canvas[y:y + size, x:x + size] = img
    return canvas


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def _write_many(out: Path, images: dict[str, np.ndarray]) -> None:
    from ..io import save_image

    if len(images) == 1:
        save_image(out, next(iter(images.values())))
        print(f"wrote {out}")
        return
    for tag, img in images.items():
        path = out.with_name(f"{out.stem}_{tag}{out.suffix or '.png'}")
        save_image(path, img)
        print(f"wrote {path}")


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return dict(model=args.model, device=args.device, precision=args.precision, preview_size=args.preview_size)


def _load_sources(paths: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    from ..io import load_image

    return [(Path(p).stem, load_image(p)) for p in paths]


def _cmd_latent(args: argparse.Namespace) -> int:
    from ..io import save_image

    name, names, size = _model_info(args)
    args.model = name
    domain = _domain_index(args.domain, names)
    session = _Session()
    sources = _load_sources(args.source)
    seeds = [args.seed + k for k in range(args.num)]
    outputs: dict[str, np.ndarray] = {}
    rows: list[list[np.ndarray | None]] = []
    for tag, img in sources:
        row: list[np.ndarray | None] = [_resized(img, size)]
        for seed in seeds:
            req = StarGANLatentRequest(source=FrozenArray(img), target_domain=domain, psi=args.psi, seed=seed,
                                       **_common(args))
            result = session.run(req)
            outputs[f"{tag}_{names[domain]}_s{seed}"] = result
            row.append(result)
        rows.append(row)
    if args.grid:
        save_image(args.out, _tile(rows, size))
        print(f"wrote {args.out} ({len(sources)} sources × {len(seeds)} seeds, target {names[domain]})")
    else:
        _write_many(Path(args.out), outputs)
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from ..io import load_image, save_image

    name, names, size = _model_info(args)
    args.model = name
    refs = [(Path(p).stem, load_image(p)) for p in args.reference]
    doms = args.ref_domain
    if len(doms) not in (1, len(refs)):
        raise InputError(f"give one --ref-domain for all references or one per reference ({len(refs)})")
    domains = [_domain_index(d, names) for d in (doms * len(refs) if len(doms) == 1 else doms)]
    session = _Session()
    sources = _load_sources(args.source)
    outputs: dict[str, np.ndarray] = {}
    # Paper layout: references along the top, sources down the left, translations in the cells.
    rows: list[list[np.ndarray | None]] = [[None] + [_resized(r, size) for _, r in refs]]
    for tag, img in sources:
        row: list[np.ndarray | None] = [_resized(img, size)]
        for (rtag, ref), dom in zip(refs, domains):
            req = StarGANReferenceRequest(source=FrozenArray(img), reference=FrozenArray(ref), reference_domain=dom,
                                          seed=args.seed, **_common(args))
            result = session.run(req)
            outputs[f"{tag}_{rtag}"] = result
            row.append(result)
        rows.append(row)
    if args.grid:
        save_image(args.out, _tile(rows, size))
        print(f"wrote {args.out} ({len(sources)} sources × {len(refs)} references)")
    else:
        _write_many(Path(args.out), outputs)
    return 0


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from ..io import save_image

    name, names, size = _model_info(args)
    args.model = name
    style_a = _parse_style(args.style_a, names, args.seed)
    style_b = _parse_style(args.style_b, names, args.seed + 1)
    if args.steps is not None:
        if args.steps < 2:
            raise InputError("--steps must be at least 2")
        alphas = [float(a) for a in np.linspace(0.0, 1.0, args.steps)]
    else:
        alphas = [args.alpha]
    session = _Session()
    sources = _load_sources(args.source)
    outputs: dict[str, np.ndarray] = {}
    rows: list[list[np.ndarray | None]] = []
    for tag, img in sources:
        row: list[np.ndarray | None] = [_resized(img, size)]
        for alpha in alphas:
            req = StarGANInterpolateRequest(source=FrozenArray(img), style_a=style_a, style_b=style_b, alpha=alpha,
                                            seed=args.seed, **_common(args))
            result = session.run(req)
            outputs[f"{tag}_a{alpha:.3f}"] = result
            row.append(result)
        rows.append(row)
    if args.grid:
        save_image(args.out, _tile(rows, size))
        print(f"wrote {args.out} ({len(sources)} sources × {len(alphas)} alphas)")
    else:
        _write_many(Path(args.out), outputs)
    return 0


EXAMPLE_FACES = "assets/examples/faces"


def register_cli(groups) -> None:
    from ..cli import FolderMode, add_common_generate_args, float_arg, int_arg
    from ..limits import MAX_OUTPUTS, MAX_STEPS

    F = EXAMPLE_FACES
    folder = FolderMode(input="source")
    p = groups.generate.add_parser("stargan2-latent", help="StarGAN v2: translate with random styles of a target domain")
    p.add_argument("--source", "--input", dest="source", nargs="+", required=True,
                   help="source image(s), any size, or one folder of them (then --out is a folder)")
    p.add_argument("--domain", required=True, help="target domain (name or index, e.g. male or 1)")
    p.add_argument("--psi", type=float_arg(-10.0, 10.0), default=1.0, help="truncation: lerp(average style, style, psi) (default 1)")
    p.add_argument("--num", type=int_arg(1, MAX_OUTPUTS), default=1,
                   help=f"outputs per source, seeds SEED, SEED+1, … (default 1, at most {MAX_OUTPUTS})")
    p.add_argument("--out", required=True, help="output PNG (several outputs get _<source>_<seed> suffixes)")
    p.add_argument("--grid", action="store_true", help="write one grid: sources × seeds")
    add_common_generate_args(p, folder=folder, examples=(
        f"i2i generate stargan2-latent --source {F}/female_000019.png --domain male --num 3 --grid --out out/latent.png",
        f"i2i generate stargan2-latent --input {F} --domain female --out out/latent/"))
    p.set_defaults(func=_cmd_latent)

    p = groups.generate.add_parser("stargan2-reference", help="StarGAN v2: translate with the style of reference photo(s)")
    p.add_argument("--source", "--input", dest="source", nargs="+", required=True,
                   help="source image(s), or one folder of them (then --out is a folder)")
    p.add_argument("--reference", nargs="+", required=True, help="reference image(s)")
    p.add_argument("--ref-domain", nargs="+", required=True, help="domain of the references (one, or one per reference)")
    p.add_argument("--out", required=True, help="output PNG (several outputs get _<source>_<reference> suffixes)")
    p.add_argument("--grid", action="store_true", help="write the paper-style grid: references on top, sources left")
    add_common_generate_args(p, folder=folder, examples=(
        f"i2i generate stargan2-reference --source {F}/female_000019.png {F}/female_000079.png "
        f"--reference {F}/male_000039.png {F}/male_000059.png --ref-domain male --grid --out out/reference.png",))
    p.set_defaults(func=_cmd_reference)

    p = groups.generate.add_parser("stargan2-interpolate", help="StarGAN v2: interpolate between two styles")
    p.add_argument("--source", "--input", dest="source", nargs="+", required=True,
                   help="source image(s), or one folder of them (then --out is a folder)")
    p.add_argument("--style-a", required=True, help="latent:DOMAIN[:SEED[:PSI]] or ref:PATH:DOMAIN")
    p.add_argument("--style-b", required=True, help="latent:DOMAIN[:SEED[:PSI]] or ref:PATH:DOMAIN")
    p.add_argument("--alpha", type=float_arg(-10.0, 10.0), default=0.5, help="0 = style A, 1 = style B (default 0.5)")
    p.add_argument("--steps", type=int_arg(2, MAX_STEPS), default=None,
                   help=f"instead of --alpha: N evenly spaced alphas from 0 to 1 (2..{MAX_STEPS})")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--grid", action="store_true", help="write one grid: sources × alphas")
    add_common_generate_args(p, folder=folder, examples=(
        f"i2i generate stargan2-interpolate --source {F}/female_000019.png --style-a latent:female "
        f"--style-b ref:{F}/male_000039.png:male --steps 5 --grid --out out/interpolate.png",))
    p.set_defaults(func=_cmd_interpolate)


__all__ = ["run_latent", "run_reference", "run_interpolate", "image_to_tensor", "working_size", "latent_code",
           "register_cli"]
