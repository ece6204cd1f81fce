"""Requests of the sketch tasks (EdgeGAN object, sketch-to-scene)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from .base import FrozenArray, Request


@dataclass(frozen=True)
class SketchObjectRequest(Request):
    """A freehand sketch (H×W uint8, dark strokes on light, any size) of one object of ``class_name``.

    ``noise``: how the encoder samples z = μ + ε·σ. "scalar" (default) is the official code's ONE
    normal number per call (seeded by ``seed``); "elementwise" draws ε per dimension; "none" uses μ.
    """

    family: ClassVar[str] = "edgegan"

    sketch: FrozenArray | None = None
    class_name: str = ""
    noise: Literal["scalar", "elementwise", "none"] = "scalar"


@dataclass(frozen=True)
class SceneObject:
    """One foreground object of a scene sketch: its strokes (a binary H×W bitmap of the whole
    scene canvas), its class and its box (x0, y0, x1, y1) in scene pixels."""

    sketch: FrozenArray
    class_name: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class SceneRequest(Request):
    """Foreground objects + background strokes (H×W bitmap) → scene image.

    ``size`` is (width, height) of the canvas, as in the scene JSON. ``model`` names the EdgeGAN
    model for the objects; ``background_model`` the one whose background network paints the scene
    (empty: the same model, or the first registered EdgeGAN model that has a background network).
    ``paste_objects``: keep the EdgeGAN objects exactly as generated on top of the background output.
    """

    family: ClassVar[str] = "edgegan"

    objects: tuple[SceneObject, ...] = ()
    background: FrozenArray | None = None
    size: tuple[int, int] = (256, 256)
    background_model: str = ""
    paste_objects: bool = True
    noise: Literal["scalar", "elementwise", "none"] = "scalar"

    @property
    def preview_model(self) -> str:
        # the preview size sets the background network's working size
        return self.background_model or self.model


__all__ = ["SketchObjectRequest", "SceneObject", "SceneRequest"]
