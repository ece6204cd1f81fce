"""Helpers shared by engine and studio tests (no Qt here)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch


def recipe_dataset(root: Path, recipe: str, *, n: int, size: int, seed: int = 0) -> Path:
    """A small recipe build; without fetched material (a fresh clone, CI) the procedural stand-ins
    serve, without their warnings."""
    from engine.data.common import DataWarning
    from engine.data.recipes import build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return build(recipe, root, n=n, size=size, seed=seed, progress=False)


def register_tiny(weights_dir, family: str, config_name: str, name: str, **overrides) -> str:
    """A seeded random network of ``config_name`` (with ``overrides``) registered as ``name``."""
    from engine.families import get_family
    from engine.weights import Manifest, register_file, save_state_dicts

    torch.manual_seed(0)
    fam = get_family(family)
    config = dict(fam.configs[config_name], **overrides)
    nets = fam.build(config)
    path = weights_dir / f"{name}.safetensors"
    save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
    register_file(Manifest(), name=name, family=family, config_name=config_name, config=config, path=path,
                  provenance={"kind": "trained-here", "command": "test"})
    return name
