"""Requests of the panoptic-to-image task."""
from __future__ import annotations

from dataclasses import dataclass

from .base import FrozenArray, Request


@dataclass(frozen=True)
class PanopticRequest(Request):
    """``labels``: H×W semantic class map; ``instances``: H×W instance-id map (0 = stuff/none).

    ``style_image`` optionally drives the VAE encoder (multimodal synthesis); otherwise the
    style latent is drawn from ``seed``.
    """

    labels: FrozenArray | None = None
    instances: FrozenArray | None = None
    style_image: FrozenArray | None = None


__all__ = ["PanopticRequest"]
