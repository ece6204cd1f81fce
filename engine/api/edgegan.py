"""Requests of the sketch tasks (EdgeGAN object, sketch-to-scene)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import FrozenArray, Request


@dataclass(frozen=True)
class SketchObjectRequest(Request):
    """A freehand sketch (H×W uint8, dark strokes on light, any size) of one object of ``class_name``."""

    sketch: FrozenArray | None = None
    class_name: str = ""


@dataclass(frozen=True)
class SceneObject:
    """One foreground object of a scene sketch: its strokes (a binary H×W bitmap of the whole
    scene canvas), its class and its box (x0, y0, x1, y1) in scene pixels."""

    sketch: FrozenArray
    class_name: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class SceneRequest(Request):
    """Foreground objects + background strokes (H×W bitmap) → scene image."""

    objects: tuple[SceneObject, ...] = ()
    background: FrozenArray | None = None
    size: tuple[int, int] = (256, 256)


__all__ = ["SketchObjectRequest", "SceneObject", "SceneRequest"]
