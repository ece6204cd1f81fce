"""Requests of the panoptic-to-image task."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import FrozenArray, Request


@dataclass(frozen=True)
class PanopticRequest(Request):
    """``labels``: H×W semantic class map; ``instances``: H×W instance-id map of the same size.

    Instance ids follow ``engine/inputs/panoptic.py``: a stuff pixel has id 0 or its class index,
    thing instance k of class c has c·1000 + k (any other id ≠ 0 and ≠ class also names an
    instance). Without ``instances`` every class is one segment (semantic-only conditioning).

    ``style_image`` optionally drives the VAE encoder (multimodal synthesis); otherwise the
    style latent is drawn from ``seed``.
    """

    family: ClassVar[str] = "panoptic"

    labels: FrozenArray | None = None
    instances: FrozenArray | None = None
    style_image: FrozenArray | None = None


__all__ = ["PanopticRequest"]
