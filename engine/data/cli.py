"""``i2i data build RECIPE``, ``i2i data fetch``, ``i2i data contact-sheet``."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from ..requests.base import InputError
from .common import build_dataset

# recipe name -> (module, class name, default size)
RECIPES: dict[str, tuple[str, str, int]] = {
    "scenes": ("engine.data.scenes", "ScenesRecipe", 128),
    "faces": ("engine.data.faces", "FacesRecipe", 64),
    "sketches": ("engine.data.sketches", "SketchesRecipe", 64),
    "poses": ("engine.data.poses", "PosesRecipe", 128),
}
REPO_ROOT = Path(__file__).resolve().parents[2]


def available_recipes() -> list[str]:
    return [r for r, (mod, _, _) in RECIPES.items() if importlib.util.find_spec(mod) is not None]


def make_recipe(name: str):
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; known: {', '.join(available_recipes())}")
    mod, cls, _ = RECIPES[name]
    return getattr(importlib.import_module(mod), cls)()


def build(name: str, out: Path | str | None = None, *, n: int = 600, size: int | None = None, seed: int = 0,
          progress: bool = True) -> Path:
    """Build (or resume) a recipe's dataset; the default folder is ``<repo>/data/<recipe>``."""
    recipe = make_recipe(name)
    size = size or RECIPES[name][2]
    out = Path(out) if out else REPO_ROOT / "data" / name
    return build_dataset(recipe, out, n=n, size=size, seed=seed, progress=progress, log=print)


def _cmd_build(args: argparse.Namespace) -> int:
    import torch  # the recipes use numpy/opencv only; keep torch from grabbing every core anyway
    torch.set_num_threads(1)
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:
        pass
    build(args.recipe, args.out, n=args.n, size=args.size, seed=args.seed)
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from .fetch import SOURCES, fetch
    names = args.sources or None
    if args.list:
        for s in SOURCES.values():
            print(f"{s.name:20s} {s.client:4s} {s.package:28s} {s.licence:40s} recipes: {', '.join(s.recipes)}")
        return 0
    fetch(names, force=args.force)
    return 0


def _cmd_contact(args: argparse.Namespace) -> int:
    from .contact import contact_sheet
    path = contact_sheet(args.dir, n=args.n, out=args.out, split=args.split, seed=args.seed, cell=args.cell)
    print(f"wrote {path}")
    return 0


def register_cli(groups) -> None:
    p = groups.data.add_parser("build", help="build a training-data recipe (resumable, deterministic)")
    p.add_argument("recipe", choices=list(RECIPES), help="which recipe")
    p.add_argument("--out", default=None, help="output folder (default: data/<recipe>)")
    p.add_argument("--n", type=int, default=600, help="number of samples (default 600)")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default per recipe)")
    p.add_argument("--seed", type=int, default=0, help="seed (same seed -> byte-identical samples)")
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
