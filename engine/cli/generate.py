"""``i2i generate TASK``: read the inputs, build the task's request, run it in the command's
session, write the images. The computation lives in :mod:`engine.tasks`."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..families import model_palette
from ..inputs.cocosnet import face_landmarks_from_photo, parsing_from_landmarks68, pose_from_photo
from ..inputs.panoptic import import_coco_panoptic, load_panoptic, panoptic_ids
from ..inputs.sketch import load_scene_sketch
from ..io import (
    image_grid,
    load_grey,
    load_image,
    load_label_map,
    load_openpose_canvas,
    load_openpose_json,
    save_image,
)
from ..limits import MAX_OUTPUTS, MAX_SEED, MAX_STEPS, check_int_range, finite_number
from ..nets.cocosnet import CONFIGS
from ..nets.edgegan import class_names
from ..nets.stargan2 import domain_names, network_args
from ..requests.base import FrozenArray, InputError, Request
from ..requests.cocosnet import EditRequest, ExemplarRequest, MakeupRegion, MakeupRequest
from ..requests.edgegan import SceneObject, SceneRequest, SketchObjectRequest
from ..requests.panoptic import PanopticRequest
from ..requests.stargan2 import (
    LatentStyle,
    ReferenceStyle,
    StarGANInterpolateRequest,
    StarGANLatentRequest,
    StarGANReferenceRequest,
    Style,
)
from ..tasks.exemplar import FAMILY as COCOSNET
from ..tasks.makeup import REGION_PARTS
from ..tasks.panoptic import FAMILY as PANOPTIC
from ..tasks.sketch import FAMILY as EDGEGAN
from ..tasks.stargan import FAMILY as STARGAN2
from ..weights import Manifest, current_manifest
from .common import (
    IMAGE_SUFFIXES,
    CliError,
    CliGroups,
    FolderMode,
    add_common_generate_args,
    default_model,
    float_arg,
    int_arg,
    run_task,
)


def register(groups: CliGroups) -> None:
    for add in (_register_stargan2, _register_cocosnet, _register_edit, _register_makeup, _register_panoptic,
                _register_sketch, _register_scene):
        add(groups)


# ------------------------------------------------------------------------------ StarGAN v2
def _domain_index(value: str, names: Sequence[str]) -> int:
    if value in names:
        return list(names).index(value)
    try:
        return int(value)
    except ValueError:
        raise InputError(f"unknown domain {value!r}; this model's domains: {', '.join(names)}") from None


def _parse_style(spec: str, names: Sequence[str], default_seed: int) -> Style:
    """``latent:DOMAIN[:SEED[:PSI]]`` or ``ref:PATH:DOMAIN``."""
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


def _model_info(args: argparse.Namespace) -> tuple[str, list[str], int]:
    name = default_model(STARGAN2, args.model)
    entry = Manifest().get(name)
    return name, domain_names(entry.config), int(network_args(entry.config)["img_size"])


def _grid(rows: list[list[np.ndarray | None]], size: int) -> np.ndarray:
    """The rows of ``size``-square cells as one image; an empty cell stays white."""
    blank = np.full((size, size, 3), 255, np.uint8)
    return image_grid([blank if img is None else img for row in rows for img in row], columns=len(rows[0]), pad=2)


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def _write_many(out: Path, images: dict[str, np.ndarray]) -> None:
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
    return [(Path(p).stem, load_image(p)) for p in paths]


def _translate_sources(args: argparse.Namespace, size: int,
                       columns: Sequence[tuple[str, Callable[[np.ndarray], Request]]],
                       top_row: list[np.ndarray | None] | None, done: str) -> int:
    """Run one request per (source, column) in the command's session; write one grid (a source per
    row, ``top_row`` above) with ``--grid``, else one file per output tagged ``<source>_<column>``."""
    sources = _load_sources(args.source)
    outputs: dict[str, np.ndarray] = {}
    rows: list[list[np.ndarray | None]] = [top_row] if top_row else []
    for tag, img in sources:
        row: list[np.ndarray | None] = [_resized(img, size)]
        for column, make_request in columns:
            result = run_task(make_request(img)).image
            outputs[f"{tag}_{column}"] = result
            row.append(_resized(result, size))
        rows.append(row)
    if args.grid:
        save_image(args.out, _grid(rows, size))
        print(f"wrote {args.out} ({len(sources)} sources × {done})")
    else:
        _write_many(Path(args.out), outputs)
    return 0


def _cmd_latent(args: argparse.Namespace) -> int:
    name, names, size = _model_info(args)
    args.model = name
    domain = _domain_index(args.domain, names)
    seeds = [args.seed + k for k in range(args.num)]

    def latent(seed: int) -> Callable[[np.ndarray], Request]:
        return lambda img: StarGANLatentRequest(source=FrozenArray(img), target_domain=domain, psi=args.psi, seed=seed,
                                                **_common(args))

    # an out-of-range domain is refused by the task itself, with the model's domain list
    target = names[domain] if 0 <= domain < len(names) else str(domain)
    return _translate_sources(args, size, [(f"{target}_s{seed}", latent(seed)) for seed in seeds], None,
                              f"{len(seeds)} seeds, target {target}")


def _cmd_reference(args: argparse.Namespace) -> int:
    name, names, size = _model_info(args)
    args.model = name
    refs = [(Path(p).stem, load_image(p)) for p in args.reference]
    doms = args.ref_domain
    if len(doms) not in (1, len(refs)):
        raise InputError(f"give one --ref-domain for all references or one per reference ({len(refs)})")
    domains = [_domain_index(d, names) for d in (doms * len(refs) if len(doms) == 1 else doms)]

    def reference(ref: np.ndarray, domain: int) -> Callable[[np.ndarray], Request]:
        return lambda img: StarGANReferenceRequest(source=FrozenArray(img), reference=FrozenArray(ref),
                                                   reference_domain=domain, seed=args.seed, **_common(args))

    # Paper layout: references along the top, sources down the left, translations in the cells.
    top_row: list[np.ndarray | None] = [None] + [_resized(r, size) for _, r in refs]
    columns = [(rtag, reference(ref, dom)) for (rtag, ref), dom in zip(refs, domains, strict=True)]
    return _translate_sources(args, size, columns, top_row, f"{len(refs)} references")


def _cmd_interpolate(args: argparse.Namespace) -> int:
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

    def interpolate(alpha: float) -> Callable[[np.ndarray], Request]:
        return lambda img: StarGANInterpolateRequest(source=FrozenArray(img), style_a=style_a, style_b=style_b,
                                                     alpha=alpha, seed=args.seed, **_common(args))

    return _translate_sources(args, size, [(f"a{alpha:.3f}", interpolate(alpha)) for alpha in alphas], None,
                              f"{len(alphas)} alphas")


EXAMPLE_FACES = "assets/examples/faces"


def _register_stargan2(groups: CliGroups) -> None:
    F = EXAMPLE_FACES
    folder = FolderMode(input="source")
    p = groups.generate.add_parser("stargan2-latent",
                                   help="StarGAN v2: translate with random styles of a target domain")
    p.add_argument("--source", "--input", dest="source", nargs="+", required=True,
                   help="source image(s), any size, or one folder of them (then --out is a folder)")
    p.add_argument("--domain", required=True, help="target domain (name or index, e.g. male or 1)")
    p.add_argument("--psi", type=float_arg(-10.0, 10.0), default=1.0,
                   help="truncation: lerp(average style, style, psi) (default 1)")
    p.add_argument("--num", type=int_arg(1, MAX_OUTPUTS), default=1,
                   help=f"outputs per source, seeds SEED, SEED+1, … (default 1, at most {MAX_OUTPUTS})")
    p.add_argument("--out", required=True, help="output PNG (several outputs get _<source>_<seed> suffixes)")
    p.add_argument("--grid", action="store_true", help="write one grid: sources × seeds")
    add_common_generate_args(p, folder=folder, examples=(
        f"i2i generate stargan2-latent --source {F}/female_000019.png --domain male --num 3 --grid "
        f"--out out/latent.png",
        f"i2i generate stargan2-latent --input {F} --domain female --out out/latent/"))
    p.set_defaults(func=_cmd_latent)

    p = groups.generate.add_parser("stargan2-reference",
                                   help="StarGAN v2: translate with the style of reference photo(s)")
    p.add_argument("--source", "--input", dest="source", nargs="+", required=True,
                   help="source image(s), or one folder of them (then --out is a folder)")
    p.add_argument("--reference", nargs="+", required=True, help="reference image(s)")
    p.add_argument("--ref-domain", nargs="+", required=True,
                   help="domain of the references (one, or one per reference)")
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


# ------------------------------------------------------------------------------ CoCosNet: exemplar, edit, makeup
def config_mismatch(entry: Any, config: str) -> str:
    """Why manifest ``entry`` cannot stand in for the released CoCosNet ``config`` ('' when it can):
    a model named like ``small_ade20k`` may take a different input or class count than ``ade20k``."""
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
    manifest = Manifest()
    if model:
        why = config_mismatch(manifest.get(model), config) if config else ""
        if why:
            raise CliError(f"--model {model} does not fit --config {config}: {why}; drop --config to run it")
        return model
    if not config:
        return default_model(COCOSNET)
    entries = manifest.by_family(COCOSNET)
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


def read_semantics(path: str, model: str) -> tuple[np.ndarray | None, np.ndarray | None, tuple[int, int] | None]:
    """(label map, keypoints, canvas size) from a PNG label/parsing map (decoded with the model's
    palette, as the studio paints it) or an OpenPose JSON."""
    entry = current_manifest().get(model)
    kind = entry.config.get("input_kind", "labels")
    if kind == "pose" and not path.lower().endswith(".json"):
        # a person photo: keypoints from MediaPipe (optional extra)
        photo = load_image(path)
        return None, pose_from_photo(photo), (photo.shape[1], photo.shape[0])
    if path.lower().endswith(".json"):
        return None, load_openpose_json(path), load_openpose_canvas(path)
    return load_label_map(path, model_palette("cocosnet", entry)), None, None


def _cmd_cocosnet(args: argparse.Namespace) -> int:
    model = pick_model(args.config, args.model)
    labels, kp, canvas = read_semantics(args.input, model)
    exemplar = load_image(args.exemplar)
    ex_labels = ex_kp = None
    if args.exemplar_map:
        ex_labels, ex_kp, _ = read_semantics(args.exemplar_map, model)
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
    result = run_task(request)
    save_image(out, result.image)
    print(f"wrote {out}")
    if save_warp:
        save_image(save_warp, result.aux["warped_exemplar"])
        print(f"wrote {save_warp}")
    return 0


def _register_cocosnet(groups: CliGroups) -> None:
    p = groups.generate.add_parser("cocosnet", help="CoCosNet exemplar-based translation (semantics + exemplar photo)")
    p.add_argument("--config", default=None,
                   help="ade20k | ade20k_nomask | celebahq | celebahqedge | deepfashion (picks the registered model)")
    p.add_argument("--input", required=True,
                   help="label map / face parsing PNG; deepfashion: OpenPose JSON or a person photo (needs mediapipe); "
                        "or a folder of them (then --out is a folder)")
    p.add_argument("--exemplar", required=True, help="exemplar photo")
    p.add_argument("--exemplar-map", default=None, help="the exemplar's own map / pose JSON (maskmix models need it)")
    p.add_argument("--input-photo", default=None,
                   help="celebahqedge: photo behind --input (adds hair/background edges)")
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


def _cmd_edit(args: argparse.Namespace) -> int:
    model = pick_model(args.config, args.model)
    original, _, _ = read_semantics(args.map, model)
    edited, _, _ = read_semantics(args.edited_map, model)
    request = EditRequest(model=model, seed=args.seed, preview_size=args.preview_size, device=args.device,
                          precision=args.precision, photo=FrozenArray(load_image(args.photo)),
                          original_map=FrozenArray(original), edited_map=FrozenArray(edited),
                          paste_unchanged=not args.no_paste)
    return write_outputs(request, args.out, args.save_warp)


def _register_edit(groups: CliGroups) -> None:
    p = groups.generate.add_parser("edit", help="CoCosNet image editing: photo + its map + an edited map")
    p.add_argument("--config", default=None, help="ade20k | celebahq | celebahqedge (picks the registered model)")
    p.add_argument("--photo", "--input", dest="photo", required=True,
                   help="the photo to edit (also the exemplar), or a folder of photos (then --out is a folder)")
    p.add_argument("--map", required=True, help="the photo's label / face-parsing map (a folder: <photo stem>.png)")
    p.add_argument("--edited-map", required=True,
                   help="the edited map, same size as --map (a folder: <photo stem>.png)")
    p.add_argument("--no-paste", action="store_true", help="return the full regenerated image (no paste-back)")
    p.add_argument("--out", required=True, help="output image")
    p.add_argument("--save-warp", default=None, help="also write the warped photo here")
    ex = "assets/examples"
    add_common_generate_args(p, folder=FolderMode(input="photo", companions=("map", "edited_map"),
                                                  outputs=("out", "save_warp")), examples=(
        f"i2i generate edit --photo {ex}/exemplars/scene_000019.png --map {ex}/maps/scene_000019.png "
        f"--edited-map {ex}/maps/scene_000039.png --out out/edited.png",))
    p.set_defaults(func=_cmd_edit)


def _cmd_makeup(args: argparse.Namespace) -> int:
    model = pick_model(args.config, args.model)
    regions: tuple[MakeupRegion, ...] = tuple(r.strip() for r in args.regions.split(",") if r.strip())  # type: ignore[misc]
    bad = [r for r in regions if r not in REGION_PARTS]
    if bad:
        raise CliError(f"unknown region(s) {bad}; choose from {', '.join(REGION_PARTS)}")
    portrait, exemplar = load_image(args.portrait), load_image(args.exemplar)

    def parsing(map_path: str | None, photo: np.ndarray) -> np.ndarray:
        if map_path:
            return read_semantics(map_path, model)[0]
        # no map given: face parts from 68 landmarks (dlib, optional extra)
        return parsing_from_landmarks68(face_landmarks_from_photo(photo), photo.shape[:2])

    request = MakeupRequest(model=model, seed=args.seed, preview_size=args.preview_size, device=args.device,
                            precision=args.precision, portrait=FrozenArray(portrait),
                            portrait_map=FrozenArray(parsing(args.portrait_map, portrait)),
                            exemplar=FrozenArray(exemplar),
                            exemplar_map=FrozenArray(parsing(args.exemplar_map, exemplar)),
                            regions=regions, strength=args.strength)
    return write_outputs(request, args.out, args.save_warp)


def _register_makeup(groups: CliGroups) -> None:
    p = groups.generate.add_parser("makeup", help="CoCosNet makeup transfer onto a portrait (region-only blend)")
    p.add_argument("--config", default="celebahqedge", help="celebahqedge (default) | celebahq")
    p.add_argument("--portrait", "--input", dest="portrait", required=True,
                   help="target portrait photo, or a folder of them (then --out is a folder)")
    p.add_argument("--portrait-map", default=None,
                   help="its CelebAMask-HQ face parsing map (a folder: <portrait stem>.png; "
                        "default: from dlib face landmarks, optional extra)")
    p.add_argument("--exemplar", required=True, help="a face wearing the makeup")
    p.add_argument("--exemplar-map", default=None, help="the exemplar's face parsing map (default: from landmarks)")
    p.add_argument("--regions", default="lips,eyes,skin",
                   help="comma list of lips, eyes, skin, brows (empty: whole image)")
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


# ------------------------------------------------------------------------------ panoptic
def _cmd_panoptic(args: argparse.Namespace) -> int:
    model = default_model(PANOPTIC, args.model)
    entry = current_manifest().get(model)
    config = entry.config
    if args.coco_png:
        if not args.coco_json:
            raise CliError("--coco-png needs --coco-json (the panoptic annotation file)")
        space = "coco_panoptic" if config.get("palette") == "coco_panoptic" else "coco_stuff"
        labels, instances = import_coco_panoptic(args.coco_png, args.coco_json, space)
    elif args.labels:
        labels, instances = load_panoptic(args.labels, args.instances, args.palette or model_palette(PANOPTIC, entry))
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


def _register_panoptic(groups: CliGroups) -> None:
    p = groups.generate.add_parser("panoptic", help="panoptic map (labels + instance ids) → image; "
                                                    "SPADE models run semantic-only")
    p.add_argument("--labels", "--input", dest="labels",
                   help="label map: indexed/grey PNG (or RGB with --palette); or a folder of them "
                        "(then --out is a folder)")
    p.add_argument("--instances", help="instance-id map: 16-bit PNG (stuff = class index, "
                                       "thing k of class c = c·1000+k); "
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
    p.set_defaults(func=_cmd_panoptic)


# ------------------------------------------------------------------------------ EdgeGAN: sketch, scene
def _cmd_sketch(args: argparse.Namespace) -> int:
    request = SketchObjectRequest(model=default_model(EDGEGAN, args.model), seed=args.seed, device=args.device,
                                  precision=args.precision, sketch=FrozenArray(load_grey(args.sketch)),
                                  class_name=args.class_name, noise=args.noise)
    result = run_task(request)
    out = Path(args.out)
    if args.triptych:  # the official test output: [input | G1 edge | G2 image]
        save_image(out, np.concatenate([result.aux["input"], result.aux["edge"], result.image], axis=1))
    else:
        save_image(out, result.image)
        save_image(out.with_name(out.stem + "_edge" + out.suffix), result.aux["edge"])
    print(f"wrote {out}")
    return 0


def _class_help() -> str:
    """``--class`` help naming the default model's classes (read from the manifest, never fatal)."""
    try:
        entry = current_manifest().default(EDGEGAN)
    except Exception:  # a broken manifest is reported by the command, not by --help
        entry = None
    if entry is None:
        return "object class of the model (an unknown class is answered with the model's list)"
    return f"object class; {entry.name} knows: {', '.join(class_names(entry.config))}"


def _register_sketch(groups: CliGroups) -> None:
    p = groups.generate.add_parser("sketch", help="EdgeGAN: object sketch + class -> edge map and image")
    p.add_argument("--sketch", "--input", dest="sketch", required=True,
                   help="sketch image (dark strokes on light, any size), or a folder of them (then --out is a folder)")
    p.add_argument("--class", dest="class_name", required=True, help=_class_help())
    p.add_argument("--out", required=True, help="output PNG (the edge map goes to OUT_edge.png)")
    p.add_argument("--noise", default="scalar", choices=["scalar", "elementwise", "none"],
                   help="encoder sampling: one scalar ε per call as the official code (default), per dimension, or μ")
    p.add_argument("--triptych", action="store_true", help="write [input | edge | image] side by side instead")
    add_common_generate_args(p, folder=FolderMode(input="sketch"), examples=(
        "i2i generate sketch --sketch assets/examples/sketches/bird.png --class bird --out out/bird.png",
        "i2i generate sketch --sketch assets/examples/sketches/bird.png --class bird --triptych "
        "--out out/bird_steps.png"))
    p.set_defaults(func=_cmd_sketch)


def request_from_json(path: Path | str, **kwargs) -> SceneRequest:
    """A :class:`SceneRequest` from a scene-sketch JSON (see :func:`engine.inputs.sketch.load_scene_sketch`)."""
    scene = load_scene_sketch(path)
    objects = tuple(SceneObject(sketch=FrozenArray(bitmap), class_name=cls, box=box)
                    for cls, box, bitmap in scene.objects)
    background = None if scene.background is None else FrozenArray(scene.background)
    return SceneRequest(objects=objects, background=background, size=scene.size, **kwargs)


def _cmd_scene(args: argparse.Namespace) -> int:
    request = request_from_json(args.sketch, model=default_model(EDGEGAN, args.model), seed=args.seed,
                                device=args.device, precision=args.precision, preview_size=args.preview_size,
                                background_model=args.background_model, paste_objects=not args.no_paste,
                                noise=args.noise)
    result = run_task(request)
    out = Path(args.out)
    save_image(out, result.image)
    if args.save_stages:
        for key in ("foreground", "background", "mask"):
            save_image(out.with_name(f"{out.stem}_{key}{out.suffix}"), result.aux[key])
    print(f"wrote {out}")
    return 0


def _register_scene(groups: CliGroups) -> None:
    p = groups.generate.add_parser("scene", help="EdgeGAN + background network: scene sketch JSON -> scene image")
    p.add_argument("--sketch", "--input", dest="sketch", required=True,
                   help='scene JSON: {"size": [W, H], "background": png, "objects": [...]}; or a folder of them '
                        '(then --out is a folder)')
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--background-model", default="", help="model whose background network paints the scene")
    p.add_argument("--no-paste", action="store_true", help="keep the background network's output as is")
    p.add_argument("--noise", default="scalar", choices=["scalar", "elementwise", "none"], help="encoder sampling")
    p.add_argument("--save-stages", action="store_true", help="also write OUT_foreground/_background/_mask.png")
    add_common_generate_args(p, folder=FolderMode(input="sketch", suffixes=(".json",)), examples=(
        "i2i generate scene --sketch assets/examples/sketches/scene.json --save-stages --out out/scene.png",))
    p.set_defaults(func=_cmd_scene)
