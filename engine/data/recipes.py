"""The dataset recipes by name, and building one into a folder (``i2i data build RECIPE``)."""
from __future__ import annotations

import importlib
import importlib.util
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
