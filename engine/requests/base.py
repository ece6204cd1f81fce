"""Core types of the engine interface: immutable arrays, requests, results, errors, progress.

Requests are frozen dataclasses; value equality lets a scheduler see that "nothing changed".
Numpy arrays are wrapped in :class:`FrozenArray` so that equality and hashing are by content.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np


def array_digest(array: np.ndarray) -> str:
    """Content hash of an array (dtype, shape and bytes); hashes C-contiguous data without a copy."""
    arr = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(str(arr.dtype).encode())
    h.update(repr(arr.shape).encode())
    h.update(memoryview(arr).cast("B") if arr.size else b"")
    return h.hexdigest()


class FrozenArray:
    """A read-only numpy array compared and hashed by content (dtype, shape and bytes)."""

    __slots__ = ("_array", "_digest")

    def __init__(self, array: np.ndarray | FrozenArray) -> None:
        if isinstance(array, FrozenArray):
            self._array, self._digest = array._array, array._digest
            return
        arr = np.array(array, copy=True, order="C")
        arr.setflags(write=False)
        self._array = arr
        self._digest = array_digest(arr)

    @property
    def array(self) -> np.ndarray:
        """The read-only array (copy it before writing)."""
        return self._array

    @property
    def digest(self) -> str:
        """Content hash; the key of per-exemplar caches."""
        return self._digest

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrozenArray) and other._digest == self._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        return f"FrozenArray(shape={self._array.shape}, dtype={self._array.dtype}, digest={self._digest[:8]})"


def frozen(array: np.ndarray | FrozenArray | None) -> FrozenArray | None:
    """Wrap an optional array (helper for request constructors)."""
    return None if array is None else FrozenArray(array)


DeviceName = Literal["auto", "cpu", "cuda", "mps"]
Quality = Literal["preview", "full"]


@dataclass(frozen=True)
class Request:
    """Fields every request carries. Task-specific requests subclass this.

    ``model`` is the name of a weights-manifest entry. ``preview_size`` (pixels of the longer side)
    asks the task to run at a reduced working resolution; ``None`` means the model's native size.
    """

    model: str = ""
    seed: int = 0
    preview_size: int | None = None
    device: DeviceName = "auto"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    # generator family whose model runs the request ("" for untyped test requests)
    family: ClassVar[str] = ""

    @property
    def preview_model(self) -> str:
        """The model whose working size ``preview_size`` sets ('' = the family's default)."""
        return self.model

    @property
    def task(self) -> str:
        """Task name, used for dispatch and logs."""
        return type(self).__name__.removesuffix("Request").lower()


@dataclass(frozen=True)
class Result:
    """A finished job: the output image (uint8 H×W×3), auxiliary images, timings in seconds."""

    request_id: int
    image: np.ndarray
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    device: str = "cpu"
    notes: tuple[str, ...] = ()


ErrorKind = Literal[
    "input", "weights", "cancelled", "out_of_memory", "internal", "missing_dependency"
]


@dataclass(frozen=True)
class Failure:
    """A job that ended without an image; ``message`` is one plain sentence for the user."""

    request_id: int
    kind: ErrorKind
    message: str
    detail: str = ""


ProgressCallback = Callable[[str, float], None]


class EngineError(Exception):
    """Base of the engine's typed errors; ``kind`` maps onto :class:`Failure.kind`."""

    kind: ErrorKind = "internal"


class InputError(EngineError, ValueError):
    """A user-supplied image, map, sketch or parameter cannot be used."""

    kind = "input"


class WeightsError(EngineError):
    """A weights file is missing, unreadable, unsafe, or does not fit the architecture."""

    kind = "weights"


class MissingDependencyError(EngineError):
    """An optional extra (e.g. mediapipe) is not installed."""

    kind = "missing_dependency"


class Cancelled(EngineError):
    """Raised inside a job when a newer request superseded it."""

    kind = "cancelled"
