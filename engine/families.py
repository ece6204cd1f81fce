"""Registry of generator families: how to build each one's sub-networks from a config, and how to
convert an official checkpoint into our state dicts.

Each ``engine/nets/<family>.py`` registers its :class:`Family` (see ``FAMILY_MODULES``); the CLI's
``weights keys|import`` and the model loader only talk to this registry.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

# family name -> module that registers it on import
FAMILY_MODULES: dict[str, str] = {
    "stargan2": "engine.nets.stargan2",
    "cocosnet": "engine.nets.cocosnet",
    "panoptic": "engine.nets.panoptic",
    "edgegan": "engine.nets.edgegan",
    "segmenter": "engine.metrics.segmenter",  # not a generator: the mIoU metric's model
}

StateDicts = dict[str, dict[str, torch.Tensor]]


@dataclass(frozen=True)
class PreviewGrid:
    """The reduced working resolutions (longer side, px) a model runs at: multiples of ``stride``
    from ``minimum`` up to ``native`` (its full size). A family's ``preview_grid(config)`` returns
    one, or None when the model only runs at its native size."""

    minimum: int
    stride: int
    native: int

    def __post_init__(self) -> None:
        if self.stride < 1 or self.minimum < self.stride or self.minimum % self.stride:
            raise ValueError(f"bad preview grid {self}: minimum must be a positive multiple of stride")

    def fit(self, wanted: int) -> int:
        """The largest accepted size ≤ ``wanted`` (and ≤ native), never below ``minimum``."""
        size = min(int(wanted), self.native)
        return max(self.minimum, size - size % self.stride)


def _no_preview_grid(config: Mapping[str, Any]) -> PreviewGrid | None:
    return None


@dataclass(frozen=True)
class Family:
    """A generator family.

    build(config) -> {sub-network name: module}; config is the manifest's constructor arguments.
    configs: released/named configurations (e.g. ``celeba_hq``) -> constructor arguments.
    convert(paths, config) -> {sub-network: state dict} from official file(s), or None when the
    family has no official format.
    optional_keys(sub) -> names that may be absent from a file (e.g. StarGAN v2 ``hpf.filter``).
    inference_subnets: the sub-networks a default weights file must hold for inference.
    keys_extra: extra ``weights keys`` views, e.g. {"tf-names": fn(config) -> {sub: {name: [shape, dtype]}}}.
    preview_grid(config): the working sizes of live previews (:class:`PreviewGrid`), or None.
    """

    name: str
    build: Callable[[Mapping[str, Any]], dict[str, nn.Module]]
    configs: Mapping[str, Mapping[str, Any]]
    convert: Callable[[list[Path], Mapping[str, Any]], StateDicts] | None = None
    inference_subnets: tuple[str, ...] = ()
    optional_keys: Callable[[str], set[str]] = field(default=lambda sub: set())
    keys_extra: Mapping[str, Callable[[Mapping[str, Any]], dict]] = field(default_factory=dict)
    description: str = ""
    preview_grid: Callable[[Mapping[str, Any]], PreviewGrid | None] = _no_preview_grid


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Called by a network module at import time."""
    _REGISTRY[family.name] = family
    return family


def get_family(name: str) -> Family:
    """Import and return a family; raises KeyError naming the known families."""
    if name not in _REGISTRY:
        module = FAMILY_MODULES.get(name)
        if module is None:
            raise KeyError(f"unknown generator family {name!r}; known: {', '.join(FAMILY_MODULES)}")
        importlib.import_module(module)
    return _REGISTRY[name]


def resolve_config(family: Family, config: str | Mapping[str, Any]) -> dict[str, Any]:
    """A named config of the family, or an explicit constructor dict, as a plain dict."""
    if isinstance(config, str):
        if config not in family.configs:
            raise KeyError(f"family {family.name!r} has no config {config!r}; "
                           f"known: {', '.join(family.configs)}")
        return dict(family.configs[config])
    return dict(config)


def state_dict_keys(modules: Mapping[str, nn.Module]) -> dict[str, dict[str, list]]:
    """{sub-network: {param: [shape, dtype]}} in registration order — the manifests' format."""
    out: dict[str, dict[str, list]] = {}
    for sub, module in modules.items():
        out[sub] = {k: [list(v.shape), str(v.dtype).removeprefix("torch.")]
                    for k, v in module.state_dict().items()}
    return out


# CoCosNet input kinds whose maps are CelebAMask-HQ face parsings (the engine encodes edges itself).
FACE_INPUT_KINDS = ("celebahq_parsing", "celebahq_edges")


def palette_for(name: str | None, classes: int | None = None):
    """A named palette cut (or padded with generated colours) to ``classes`` entries; a generated
    one when ``name`` is None or unknown."""
    import colorsys

    import numpy as np

    from .io import Palette, load_palette
    from .requests.base import InputError

    base: Palette | None = None
    if name:
        try:
            base = load_palette(name)
        except InputError:
            base = None
    n = classes if classes is not None else (len(base) if base is not None else 8)
    if base is not None and len(base) == n:
        return base
    names = list(base.names[:n]) if base is not None else []
    colors = [tuple(int(v) for v in c) for c in base.colors[:n]] if base is not None else []
    for i in range(len(names), n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95)
        names.append(f"class {i}")
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    things = frozenset(t for t in (base.things if base is not None else ()) if t < n)
    return Palette(name=f"{name or 'generated'}[{n}]", names=tuple(names), colors=np.asarray(colors, np.uint8),
                   ignore_index=None, things=things)


def model_palette(family: str, entry: Any | None):
    """The one palette rule: the class palette a model's input map is painted in (the GUI paints
    with it, the CLI decodes colour maps with it). ``entry`` is a weights entry (None: the family's
    stock palette); None for families whose inputs are not label maps."""
    if family == "panoptic":
        if entry is None:
            return palette_for("scenes")
        return palette_for(entry.config.get("palette"), int(entry.config.get("label_nc", 16)))
    if family != "cocosnet":
        return None
    if entry is None:
        return palette_for("ade20k", 151)
    kind, nc = str(entry.config.get("input_kind", "labels")), int(entry.config.get("semantic_nc", 151))
    name = entry.extra.get("palette") or entry.config.get("palette")
    if kind in FACE_INPUT_KINDS:
        return palette_for(name or "celebamask_hq", 19)
    if not name:
        # trained-here models carry no palette name: 16 classes are the scenes palette's
        name = "ade20k" if nc >= 150 else ("scenes" if nc == len(palette_for("scenes")) else "ade20k")
    return palette_for(name, nc)
