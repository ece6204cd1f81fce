"""Registry of generator families: how to build each one's sub-networks from a config, and how to
convert an official checkpoint into our state dicts.

Each ``engine/nets/<family>.py`` registers its :class:`Family` (see ``FAMILY_MODULES``); the CLI's
``weights keys|import`` and the model loader only talk to this registry.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

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


def all_families() -> list[Family]:
    """Every family whose module imports."""
    return [get_family(n) for n in FAMILY_MODULES]


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
