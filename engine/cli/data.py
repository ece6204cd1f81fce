"""``i2i data build RECIPE``, ``i2i data fetch``, ``i2i data contact-sheet``."""
from __future__ import annotations

import argparse

import cv2
import torch

from ..data.contact import contact_sheet
from ..data.fetch import SOURCES, fetch
from ..data.recipes import RECIPES, build
from ..requests.base import InputError
from .common import CliGroups


def _cmd_build(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # the recipes use numpy/opencv only; keep torch from grabbing every core anyway
    cv2.setNumThreads(1)
    if args.latents:
        from ..data.faces import build_latent_bank

        if args.recipe != "faces" or args.size not in (None, 64):
            raise InputError("--latents: only the faces recipe, at its native 64²")
        build_latent_bank(args.out or f"data/{args.recipe}_latents", n=args.n, seed=args.seed, workers=args.workers)
        return 0
    build(args.recipe, args.out, n=args.n, size=args.size, seed=args.seed)
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    names = args.sources or None
    if args.list:
        for s in SOURCES.values():
            print(f"{s.name:20s} {s.client:4s} {s.package:28s} {s.licence:40s} recipes: {', '.join(s.recipes)}")
        return 0
    fetch(names, force=args.force)
    return 0


def _cmd_contact(args: argparse.Namespace) -> int:
    path = contact_sheet(args.dir, n=args.n, out=args.out, split=args.split, seed=args.seed, cell=args.cell)
    print(f"wrote {path}")
    return 0


def register(groups: CliGroups) -> None:
    p = groups.data.add_parser("build", help="build a training-data recipe (resumable, deterministic)")
    p.add_argument("recipe", choices=list(RECIPES), help="which recipe")
    p.add_argument("--out", default=None, help="output folder (default: data/<recipe>)")
    p.add_argument("--n", type=int, default=600, help="number of samples (default 600)")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default per recipe)")
    p.add_argument("--seed", type=int, default=0, help="seed (same seed -> byte-identical samples)")
    p.add_argument("--latents", action="store_true",
                   help="faces only: write the training split as DCGAN latents and genders (latents.npz, 400 bytes "
                        "a face), which the StarGAN v2 trainer renders on its device")
    p.add_argument("--workers", type=int, default=2, help="processes for --latents")
    p.set_defaults(func=_cmd_build)

    f = groups.data.add_parser("fetch", help="fetch the third-party sources into .cache/i2i (apt/npm/pip)")
    f.add_argument("sources", nargs="*", help="source names (default: all)")
    f.add_argument("--force", action="store_true", help="fetch again even when cached")
    f.add_argument("--list", action="store_true", help="list the sources, their licences and recipes")
    f.set_defaults(func=_cmd_fetch)

    c = groups.data.add_parser("contact-sheet", help="render N samples of a built dataset to one PNG")
    c.add_argument("dir", help="dataset folder (with provenance.json)")
    c.add_argument("--n", type=int, default=8, help="number of samples (rows)")
    c.add_argument("--out", required=True, help="PNG to write")
    c.add_argument("--split", default="train", choices=["train", "val", "test"])
    c.add_argument("--seed", type=int, default=0, help="which samples to pick (random with this seed)")
    c.add_argument("--cell", type=int, default=96, help="panel side in pixels")
    c.set_defaults(func=_cmd_contact)
