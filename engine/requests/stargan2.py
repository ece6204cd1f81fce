"""Requests of the StarGAN v2 tasks (latent-, reference-guided synthesis, style interpolation)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import FrozenArray, Request


@dataclass(frozen=True)
class LatentStyle:
    """A style drawn from the mapping network: z ~ N(0, I) from ``seed``, truncated by ``psi``."""

    domain: int
    seed: int = 0
    psi: float = 1.0


@dataclass(frozen=True)
class ReferenceStyle:
    """A style encoded from a reference photo (RGB uint8) of ``domain``."""

    image: FrozenArray
    domain: int


Style = LatentStyle | ReferenceStyle


@dataclass(frozen=True)
class StarGANLatentRequest(Request):
    """Translate ``source`` (RGB uint8, any size) into ``target_domain`` with the style F(z, domain),
    z drawn from ``seed``; ``psi`` < 1 pulls the style towards the domain's average style."""

    family: ClassVar[str] = "stargan2"

    source: FrozenArray | None = None
    target_domain: int = 0
    psi: float = 1.0


@dataclass(frozen=True)
class StarGANReferenceRequest(Request):
    """Translate ``source`` with the style encoded from ``reference``, a photo of ``reference_domain``
    (the output's domain)."""

    family: ClassVar[str] = "stargan2"

    source: FrozenArray | None = None
    reference: FrozenArray | None = None
    reference_domain: int = 0


@dataclass(frozen=True)
class StarGANInterpolateRequest(Request):
    """Generate ``source`` with lerp(style_a, style_b, alpha)."""

    family: ClassVar[str] = "stargan2"

    source: FrozenArray | None = None
    style_a: Style | None = None
    style_b: Style | None = None
    alpha: float = 0.5


__all__ = [
    "LatentStyle", "ReferenceStyle", "Style",
    "StarGANLatentRequest", "StarGANReferenceRequest", "StarGANInterpolateRequest",
]
