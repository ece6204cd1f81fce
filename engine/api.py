"""The engine's one door: requests in; images, progress and typed failures out.

``app/`` imports nothing of ``engine`` but this module (an import-linter contract says so). The request
and result types live in ``engine.requests`` (the bottom layer, which every engine module may use);
this module sits at the top, beside the CLI, and adds what a client needs to run them: a
:class:`Session` (scheduler and live policy, model store, default models, palettes, device) and a
small set of stateless helpers (image and map files, pose data, grids).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .devices import available_devices, pick_device
from .families import FACE_INPUT_KINDS, get_family, model_palette, palette_for
from .inputs.cocosnet import POSE_COLORS_BGR, needs_exemplar_semantics, render_pose
from .inputs.panoptic import THING_MULTIPLIER
from .io import (
    ASSETS,
    OPENPOSE_JOINTS,
    OPENPOSE_LIMBS,
    Palette,
    image_grid,
    load_image,
    load_instance_map,
    load_label_map,
    load_openpose_json,
    save_image,
    save_instance_map,
    save_label_map,
    save_openpose_json,
)
from .limits import (
    PROJECT_INT_RANGE,
    PROJECT_JSON_MAX_BYTES,
    PROJECT_JSON_MAX_DEPTH,
    PROJECT_MAX_MEMBERS,
    PROJECT_MEMBER_MAX_BYTES,
    PROJECT_TEXT_MAX_CHARS,
    PROJECT_TOTAL_MAX_BYTES,
    json_depth_exceeds,
    reject_json_constant,
)
from .nets.edgegan import class_names
from .nets.stargan2 import domain_names
from .requests import *  # noqa: F403 - the request/result types are this door's vocabulary
from .requests import __all__ as _request_names
from .requests.base import Quality, Request, Result
from .requests.cocosnet import MakeupRegion
from .scheduler import LivePolicy, PreviewScheduler, RunFn, SchedulerCallbacks, preview_size_for
from .weights import Manifest, WeightsEntry, default_model, import_official

#: The face regions makeup transfer knows, in the order the studio shows them.
MAKEUP_REGIONS: tuple[MakeupRegion, ...] = MakeupRegion.__args__  # type: ignore[attr-defined]


class Session:
    """What a client holds to run the engine: one scheduler (worker thread + :class:`LivePolicy`),
    the model store (manifest read once, again only when the file changes), the default-model and
    palette rules, and the device and precision every request runs with.

    Callbacks run on the worker thread; a GUI marshals them to its own thread and asks
    :meth:`is_current` there before showing a result.
    """

    def __init__(self, callbacks: SchedulerCallbacks | None = None, *, run_fn: RunFn | None = None,
                 device: str = "auto", precision: str = "auto", threads: int | None = None,
                 policy: LivePolicy | None = None) -> None:
        kwargs: dict[str, Any] = {} if run_fn is None else {"run_fn": run_fn}
        self.policy = policy or LivePolicy()
        self.scheduler = PreviewScheduler(callbacks, policy=self.policy, threads=threads, **kwargs)
        self.device = device
        self.precision = precision

    # ---------------------------------------------------------------- models
    def manifest(self) -> Manifest:
        """The weights registry (cached; read again when ``manifest.json`` changes). Read-only."""
        return self.scheduler.models.catalog()

    def models(self, family: str) -> list[WeightsEntry]:
        """The family's registered models, the default one first."""
        entries = self.manifest().by_family(family)
        return sorted(entries, key=lambda e: (not e.extra.get("default"), e.name))

    def default_model(self, family: str, name: str = "") -> str:
        """``name``, else the family's default model (WeightsError when none is registered)."""
        return default_model(self.manifest(), family, name)

    def entry(self, family: str, name: str = "") -> WeightsEntry | None:
        """The manifest entry of ``name`` (else the family's default); None when there is none."""
        manifest = self.manifest()
        return manifest.entries.get(name) if name else manifest.default(family)

    def palette(self, family: str, name: str = "") -> Palette | None:
        """The class palette the model's input maps are painted in (None: not a label-map family)."""
        return model_palette(family, self.entry(family, name) if name else None)

    def weights_file(self, entry: WeightsEntry) -> Path:
        return self.manifest().file_path(entry)

    @staticmethod
    def family_problem(family: str) -> str:
        """'' when the family's code imports, else the reason it does not."""
        try:
            get_family(family)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return ""

    @staticmethod
    def family_configs(family: str) -> list[str]:
        """The named configs of a family (raises when its code does not import)."""
        return list(get_family(family).configs)

    @staticmethod
    def import_weights(paths: Sequence[str | Path], *, name: str, family: str, config: str) -> WeightsEntry:
        """Convert official checkpoint files into the weights folder and register them."""
        return import_official([Path(p) for p in paths], name=name, family_name=family, config_name=config)

    # ---------------------------------------------------------------- devices
    @staticmethod
    def devices() -> list[str]:
        """Devices usable here, best first."""
        return available_devices()

    def device_label(self) -> str:
        """The device ``auto`` (or the chosen one) resolves to here."""
        return str(pick_device(self.device))

    # ---------------------------------------------------------------- running
    def prepare(self, request: Request, quality: Quality = "full") -> Request:
        """``request`` as it will run: this session's device and precision, and the live policy's
        working size for ``quality``."""
        request = dataclasses.replace(request, device=self.device, precision=self.precision)
        return self.policy.sized(request, quality, self.manifest())

    def submit(self, request: Request, quality: Quality = "full") -> int:
        """Run ``request`` (latest wins); the result arrives through the callbacks. Returns its id."""
        return self.scheduler.submit(self.prepare(request, quality), quality)

    def run(self, request: Request, timeout: float = 600.0) -> Result:
        """Run ``request`` at full quality and wait for it (scripts and tests): the same path as
        :meth:`submit`, so a result equals the studio's. Failures raise their typed error."""
        from .requests.base import EngineError, Failure

        box: list[Result | Failure] = []
        callbacks = self.scheduler.callbacks
        saved = callbacks.on_result, callbacks.on_failure
        callbacks.on_result, callbacks.on_failure = box.append, box.append
        try:
            rid = self.submit(request)
            if not self.scheduler.wait_idle(timeout):
                raise TimeoutError(f"request {rid} did not finish within {timeout} s")
        finally:
            callbacks.on_result, callbacks.on_failure = saved
        if not box:
            raise EngineError("the request was cancelled")
        outcome = box[-1]
        if isinstance(outcome, Failure):
            raise EngineError(outcome.message)
        return outcome

    def is_current(self, request_id: int) -> bool:
        return self.scheduler.is_current(request_id)

    @property
    def busy(self) -> bool:
        return self.scheduler.busy

    def cancel(self) -> None:
        self.scheduler.cancel()

    def close(self, timeout: float = 10.0) -> bool:
        """Cancel, then wait for the worker at most ``timeout`` seconds; True when it stopped."""
        return self.scheduler.close(timeout=timeout)


def needs_exemplar_map(entry: WeightsEntry | None) -> bool:
    """Whether a CoCosNet model also needs the exemplar's own map (maskmix configs)."""
    return entry is not None and needs_exemplar_semantics(entry.config)


__all__ = [
    *_request_names,
    "PROJECT_INT_RANGE", "PROJECT_JSON_MAX_BYTES", "PROJECT_JSON_MAX_DEPTH", "PROJECT_MAX_MEMBERS",
    "PROJECT_MEMBER_MAX_BYTES", "PROJECT_TEXT_MAX_CHARS", "PROJECT_TOTAL_MAX_BYTES", "json_depth_exceeds",
    "reject_json_constant",
    # the session
    "Session", "LivePolicy", "SchedulerCallbacks", "RunFn", "WeightsEntry", "preview_size_for",
    # rules the studio shows
    "Palette", "palette_for", "model_palette", "FACE_INPUT_KINDS", "MAKEUP_REGIONS", "needs_exemplar_map",
    "domain_names", "class_names", "THING_MULTIPLIER", "OPENPOSE_JOINTS", "OPENPOSE_LIMBS", "POSE_COLORS_BGR",
    "render_pose",
    # files and images
    "ASSETS", "load_image", "save_image", "load_label_map", "save_label_map", "load_instance_map",
    "save_instance_map", "load_openpose_json", "save_openpose_json", "image_grid",
]
