"""User-level tasks: one module per task, each registering a runner for its request type(s).

A runner is ``run(request, ctx) -> Result`` where ``ctx`` is a :class:`TaskContext`: it loads
models (cached), reports progress, and raises :class:`~engine.api.Cancelled` at ``ctx.check()``
when a newer request superseded this one. Runners never touch Qt.
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..compiled import CompileMode, StageCompiler
from ..devices import pick_device
from ..requests.base import Cancelled, InputError, ProgressCallback, Request, Result
from ..weights import Manifest, build_and_load, current_manifest, default_model

# Modules that register runners on import (one per user task).
TASK_MODULES: tuple[str, ...] = (
    "engine.tasks.stargan",
    "engine.tasks.exemplar",
    "engine.tasks.edit",
    "engine.tasks.makeup",
    "engine.tasks.panoptic",
    "engine.tasks.sketch",
    "engine.tasks.scene",
)

Runner = Callable[[Request, "TaskContext"], Result]
_RUNNERS: dict[type, Runner] = {}
_import_lock = threading.Lock()


def runner(*request_types: type) -> Callable[[Runner], Runner]:
    """Decorator: register ``fn`` as the runner of the given request types."""
    def deco(fn: Runner) -> Runner:
        for t in request_types:
            _RUNNERS[t] = fn
        return fn
    return deco


def get_runner(request: Request) -> Runner:
    with _import_lock:
        if type(request) not in _RUNNERS:
            for name in TASK_MODULES:
                try:
                    importlib.import_module(name)
                except ModuleNotFoundError as exc:
                    if exc.name != name:  # a real missing dependency inside the module
                        raise
    try:
        return _RUNNERS[type(request)]
    except KeyError:
        raise InputError(f"no task handles {type(request).__name__}") from None


class CancelToken:
    """Set by the scheduler when a newer request arrives; checked between network stages."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


# Default budget of the per-session result cache (exemplar features, style codes, conditioning):
# a few dozen exemplars at preview size, or a handful at 512² (up to ~144 MiB each).
DEFAULT_CACHE_MIB = 512


def default_cache_bytes() -> int:
    """``I2I_CACHE_MB`` (MiB) when set to a non-negative number, else :data:`DEFAULT_CACHE_MIB`."""
    try:
        mib = float(os.environ.get("I2I_CACHE_MB", DEFAULT_CACHE_MIB))
    except ValueError:
        mib = DEFAULT_CACHE_MIB
    return int((mib if math.isfinite(mib) and mib >= 0 else DEFAULT_CACHE_MIB) * 2**20)


def held_bytes(value: Any) -> int:
    """Bytes of the tensors and arrays ``value`` holds (through tuples, lists, dicts, dataclasses and
    modules); a storage shared by several views counts once."""
    seen: set[int] = set()

    def walk(v: Any) -> int:
        if isinstance(v, torch.Tensor):
            storage = v.untyped_storage()
            ptr = storage.data_ptr()
            if ptr in seen or v.device.type == "meta":
                return 0
            seen.add(ptr)
            return storage.nbytes()
        if isinstance(v, np.ndarray):
            key = v.__array_interface__["data"][0]
            if key in seen:
                return 0
            seen.add(key)
            return v.nbytes
        if isinstance(v, nn.Module):
            return sum(walk(t) for t in itertools.chain(v.parameters(), v.buffers()))
        if isinstance(v, Mapping):
            return sum(walk(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return sum(walk(x) for x in v)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return sum(walk(getattr(v, f.name)) for f in dataclasses.fields(v))
        return 0

    return walk(value)


class LRUCache:
    """A thread-safe least-recently-used cache (models, style codes, exemplar features), bounded by
    the bytes of the tensors / arrays it holds (:func:`held_bytes`) and optionally by entry count.

    ``max_bytes``: ``"default"`` = :func:`default_cache_bytes`, ``None`` = no byte bound (count
    only). A value larger than the whole budget is returned but not stored. ``hits`` / ``misses``
    count lookups.
    """

    def __init__(self, capacity: int | None = None, *,
                 max_bytes: int | Literal["default"] | None = "default") -> None:
        self.capacity = capacity
        self.max_bytes = default_cache_bytes() if max_bytes == "default" else max_bytes
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get_or_create(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key][0]
        value = make()
        size = held_bytes(value) if self.max_bytes is not None else 0
        with self._lock:
            self.misses += 1
            if self.max_bytes is not None and size > self.max_bytes:
                return value  # would evict everything and still not fit
            old = self._data.pop(key, None)  # another thread made it meanwhile
            if old is not None:
                self.bytes -= old[1]
            self._data[key] = (value, size)
            self.bytes += size
            while self._data and ((self.capacity is not None and len(self._data) > self.capacity)
                                  or (self.max_bytes is not None and self.bytes > self.max_bytes)):
                _, (_, evicted) = self._data.popitem(last=False)
                self.bytes -= evicted
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class ModelStore:
    """Loads manifest entries lazily onto a device and keeps the last few (bounded); ``compiler``
    runs their per-preview stages, compiled once that pays (``compile``: see engine.compiled)."""

    manifest: Manifest | None = None
    capacity: int = 3
    compile: CompileMode = "off"
    _cache: LRUCache = field(init=False)
    compiler: StageCompiler = field(init=False)

    def __post_init__(self) -> None:
        # Bounded by count only: the model a request needs must stay loaded whatever its size.
        self._cache = LRUCache(self.capacity, max_bytes=None)
        self.compiler = StageCompiler(self.compile)

    def catalog(self) -> Manifest:
        """The manifest models come from: the one given, else the weights folder's (read again
        only when the file changes)."""
        return self.manifest if self.manifest is not None else current_manifest()

    def default_model(self, family: str, name: str = "", *, need_background: bool = False) -> str:
        """``name``, else the family's default entry in this store's manifest (the one rule)."""
        return default_model(self.catalog(), family, name, need_background=need_background)

    def get(self, name: str, device: torch.device) -> dict[str, nn.Module]:
        manifest = self.catalog()

        def load() -> dict[str, nn.Module]:
            modules = build_and_load(manifest.get(name), manifest)
            return {k: m.to(device) for k, m in modules.items()}

        return self._cache.get_or_create((str(manifest.root), name, str(device)), load)

    def entry(self, name: str):
        return self.catalog().get(name)

    def clear(self) -> None:
        self._cache.clear()
        self.compiler.clear()


@dataclass
class TaskContext:
    """What a runner gets besides its request."""

    request_id: int
    device: torch.device
    models: ModelStore
    cache: LRUCache
    token: CancelToken = field(default_factory=CancelToken)
    progress_cb: ProgressCallback | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def check(self) -> None:
        """Cooperative cancellation point (call between network stages)."""
        if self.token.cancelled:
            raise Cancelled("superseded by a newer request")

    def progress(self, stage: str, fraction: float) -> None:
        self.check()
        if self.progress_cb is not None:
            self.progress_cb(stage, float(min(max(fraction, 0.0), 1.0)))

    def note(self, message: str) -> None:
        self.notes.append(message)

    def timed(self, stage: str) -> _Timer:
        return _Timer(self, stage)

    def result(self, image: np.ndarray, aux: Mapping[str, np.ndarray] | None = None) -> Result:
        return Result(request_id=self.request_id, image=image, aux=dict(aux or {}),
                      timings=dict(self.timings), device=str(self.device), notes=tuple(self.notes))


class _Timer:
    def __init__(self, ctx: TaskContext, stage: str) -> None:
        self.ctx, self.stage = ctx, stage

    def __enter__(self) -> _Timer:
        self.ctx.check()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.timings[self.stage] = self.ctx.timings.get(self.stage, 0.0) + time.perf_counter() - self.t0


def to_uint8_pixels(x: torch.Tensor) -> torch.Tensor:
    """The one place model output becomes pixels: values in [-1, 1] -> uint8 0..255, any shape, on the
    tensor's own device."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """One output image as pixels: (1|3, H, W) or (1, 3, H, W) in [-1, 1] -> uint8 H×W×3."""
    if x.dim() == 4:
        x = x[0]
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    # scaled where the tensor is: from a GPU only uint8 pixels travel, a quarter of float32's bytes
    return to_uint8_pixels(x).cpu().permute(1, 2, 0).contiguous().numpy()


def check_request(request: Request) -> None:
    """Refuse, before any work, a request whose common fields or arrays exceed :mod:`engine.limits`:
    preview size and seed ranges, finite numbers, image arrays within the pixel limits."""
    import dataclasses
    import math

    from ..limits import MAX_PREVIEW_SIZE, MAX_SEED, MIN_PREVIEW_SIZE, check_image_size, check_int_range
    from ..requests.base import FrozenArray

    if request.preview_size is not None:
        check_int_range(request.preview_size, "preview size", MIN_PREVIEW_SIZE, MAX_PREVIEW_SIZE)
    check_int_range(request.seed, "seed", 0, MAX_SEED)
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{f.name.replace('_', ' ')} must be a finite number, got {value}")
        if isinstance(value, FrozenArray) and len(value.shape) >= 2:
            check_image_size(value.shape[1], value.shape[0], f"the {f.name.replace('_', ' ')} array")


def run_request(request: Request, ctx: TaskContext) -> Result:
    """Dispatch to the registered runner (after :func:`check_request`); then let the stages it ran
    start compiling (or wait for idle: :attr:`StageCompiler.start_on`)."""
    check_request(request)
    try:
        return get_runner(request)(request, ctx)
    finally:
        ctx.models.compiler.request_done()


def make_context(request_id: int, request: Request, models: ModelStore, cache: LRUCache,
                 token: CancelToken | None = None, progress: ProgressCallback | None = None,
                 device: torch.device | None = None) -> TaskContext:
    return TaskContext(request_id=request_id, device=device or pick_device(request.device), models=models,
                       cache=cache, token=token or CancelToken(), progress_cb=progress)
