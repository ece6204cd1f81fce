"""Requests of the CoCosNet tasks (exemplar translation, image editing, makeup transfer)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from .base import FrozenArray, Request


@dataclass(frozen=True)
class ExemplarRequest(Request):
    """Input semantics + exemplar photo → image and warped exemplar.

    ``input_map`` is, by the model's input domain: an H×W integer label map (ade20k, celebahq),
    an H×W integer face-parsing map from which the edge encoding is built (celebahqedge), or None
    with ``keypoints`` (18×3 float array x, y, confidence; confidence 0 = missing) for deepfashion.
    ``exemplar_map`` is the exemplar's own semantics when the model needs it (maskmix configs).
    """

    family: ClassVar[str] = "cocosnet"

    input_map: FrozenArray | None = None
    keypoints: FrozenArray | None = None
    exemplar: FrozenArray | None = None
    exemplar_map: FrozenArray | None = None
    exemplar_keypoints: FrozenArray | None = None
    # celebahqedge: the photo behind ``input_map`` (its Canny edges outside the face join channel 0)
    input_photo: FrozenArray | None = None
    # deepfashion: (W, H) of the canvas the keypoints refer to (default: the exemplar's size)
    canvas_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class EditRequest(Request):
    """Regenerate ``photo`` from ``edited_map`` using the photo itself as exemplar."""

    family: ClassVar[str] = "cocosnet"

    photo: FrozenArray | None = None
    original_map: FrozenArray | None = None
    edited_map: FrozenArray | None = None
    paste_unchanged: bool = True


MakeupRegion = Literal["lips", "eyes", "skin", "brows"]


@dataclass(frozen=True)
class MakeupRequest(Request):
    """Transfer the makeup of ``exemplar`` onto ``portrait`` (both with face-parsing maps)."""

    family: ClassVar[str] = "cocosnet"

    portrait: FrozenArray | None = None
    portrait_map: FrozenArray | None = None
    exemplar: FrozenArray | None = None
    exemplar_map: FrozenArray | None = None
    regions: tuple[MakeupRegion, ...] = ("lips", "eyes", "skin")
    strength: float = 1.0


__all__ = ["ExemplarRequest", "EditRequest", "MakeupRequest", "MakeupRegion"]
