"""Live-preview working sizes: which reduced resolution a request's model accepts.

The rule is the model family's (:class:`engine.families.PreviewGrid`); the GUI only asks here with
the size it would like and gets one the model runs at.
"""
from __future__ import annotations

import functools
from pathlib import Path

from .base import EngineError, Request


def preview_size_for(request: Request, wanted: int) -> int | None:
    """``wanted`` (pixels of the longer side) fitted to the preview grid of the model that runs
    ``request``: never below the model's minimum, aligned to its stride, at most its native size.
    None when that model only runs at its native size. ``wanted`` itself when the model is not
    known (running the request then reports that)."""
    from ..weights import weights_dir

    manifest_path = weights_dir() / "manifest.json"
    try:
        stamp = manifest_path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    try:
        grid = _grid(str(manifest_path), stamp, request.family, request.preview_model)
    except (EngineError, KeyError, ValueError):
        return int(wanted)
    if grid is False:  # unknown family or model
        return int(wanted)
    return None if grid is None else grid.fit(int(wanted))


@functools.lru_cache(maxsize=64)
def _grid(manifest_path: str, stamp: int, family: str, model: str):
    """The model's PreviewGrid, None (native size only) or False (unknown); cached per manifest
    version, since the GUI asks on every pointer move."""
    from ..families import get_family
    from ..weights import Manifest

    if not family:
        return False
    manifest = Manifest(Path(manifest_path).parent)
    entry = manifest.entries.get(model) if model else manifest.default(family)
    if entry is None:
        return False
    return get_family(entry.family).preview_grid(entry.config)


__all__ = ["preview_size_for"]
