"""What every recipe shares: splits, per-sample seeding, resumable builds, provenance.json.

A recipe is a ``Recipe``: ``outputs(split, sample_id)`` names the files one sample writes (relative to
the dataset root) and ``render(index, rng, size)`` returns a ``Sample`` (split-relative file name ->
payload). ``build_dataset`` loops over indices with a progress bar, skips samples whose files all
exist (resume), seeds every sample from ``(seed, recipe, index)`` alone so a sample's bytes do not
depend on ``n`` or on what was built before, and writes files atomically (temp name + rename).
"""
from __future__ import annotations

import io
import json
import os
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..progress import ProgressBar
from ..requests.base import InputError
from .fetch import fetched_records

SPLITS = ("train", "val", "test")
PROVENANCE = "provenance.json"


def split_of(index: int) -> str:
    """Deterministic split independent of n: of every 20 samples, #18 is val and #19 is test."""
    r = index % 20
    return "val" if r == 18 else "test" if r == 19 else "train"


def sample_id(index: int) -> str:
    return f"{index:06d}"


def sample_rng(seed: int, recipe: str, index: int) -> np.random.Generator:
    """A generator that depends only on (seed, recipe, index)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(recipe.encode()), int(index)])


def child_rngs(rng: np.random.Generator, k: int) -> list[np.random.Generator]:
    """``k`` independent generators drawn from ``rng`` (like ``Generator.spawn``, numpy < 1.25 too)."""
    return [np.random.default_rng(int(s)) for s in rng.integers(0, 2 ** 63 - 1, size=k)]


class DataWarning(UserWarning):
    """A recipe fell back to procedural material (the fetch cache is missing)."""


def warn_fallback(what: str) -> None:
    warnings.warn(f"{what}; using procedural stand-ins (run `i2i data fetch` for the real sources)",
                  DataWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# Payloads: a sample is {relative path: payload}; payload kind decides the encoding.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Png:
    """A PNG payload. ``mode``: "RGB" (H×W×3 uint8), "L" (H×W uint8), "I;16" (H×W uint16),
    "P" (H×W uint8 with ``palette`` colours embedded)."""

    array: np.ndarray
    mode: str = "RGB"
    palette: np.ndarray | None = None

    def encode(self) -> bytes:
        a = np.ascontiguousarray(self.array)
        if self.mode == "I;16":
            img = Image.fromarray(a.astype(np.uint16))
        elif self.mode in ("L", "P"):
            img = Image.fromarray(a.astype(np.uint8), mode="L")
            if self.mode == "P":
                img = img.convert("P")
                flat = np.zeros((256, 3), np.uint8)
                if self.palette is not None:
                    flat[: len(self.palette)] = self.palette[:256]
                img.putpalette(flat.reshape(-1).tolist())
        elif self.mode == "RGBA":
            img = Image.fromarray(a.astype(np.uint8), mode="RGBA")
        else:
            img = Image.fromarray(a.astype(np.uint8), mode="RGB")
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False, compress_level=6)
        return buf.getvalue()


@dataclass(frozen=True)
class Json:
    value: Any

    def encode(self) -> bytes:
        return (json.dumps(self.value, indent=1, sort_keys=True) + "\n").encode()


Payload = Png | Json


@dataclass
class Sample:
    files: dict[str, Payload] = field(default_factory=dict)


class Recipe(Protocol):
    name: str

    def outputs(self, sample_id: str) -> list[str]:
        """Split-relative paths one sample writes (e.g. ``image/000001.png``)."""

    def render(self, index: int, rng: np.random.Generator, size: int) -> Sample:
        """The sample's files (keys as in ``outputs``)."""

    def provenance(self) -> dict:
        """Recipe-specific provenance: sources used, fallbacks, class lists."""


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def source_records(names: list[str]) -> list[dict]:
    """Provenance records (package, version, licence) of the fetched sources a recipe used."""
    records = fetched_records()
    return [records[n] for n in names if n in records]


def build_dataset(recipe: Recipe, out: Path | str, *, n: int, size: int, seed: int,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Build (or resume) ``n`` samples of ``recipe`` under ``out``; returns ``out``."""
    out = Path(out)
    if n < 1:
        raise InputError(f"--n must be at least 1 (got {n})")
    if size < 16 or size > 2048:
        raise InputError(f"--size must lie in 16..2048 (got {size})")
    # the recipe's version is bumped whenever its output for a given seed changes
    settings = {"recipe": recipe.name, "version": int(getattr(recipe, "version", 1)), "size": int(size),
                "seed": int(seed)}
    prov_path = out / PROVENANCE
    recipe_prov = recipe.provenance()
    if prov_path.exists():
        old = json.loads(prov_path.read_text())
        old_settings = {k: old.get(k) for k in settings}
        if old_settings != settings:
            raise InputError(f"{out} was built with {old_settings}; resuming with {settings} would mix "
                             f"samples (pick another --out or the same settings)")
        if old.get("material") != recipe_prov.get("material"):
            raise InputError(f"{out} was built from {old.get('material')} but this machine has "
                             f"{recipe_prov.get('material')} (fetch the same sources or pick another --out)")
    out.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(n)
            if not all((out / split_of(i) / rel).exists() for rel in recipe.outputs(sample_id(i)))]
    bar = ProgressBar(n, f"data {recipe.name}", initial=n - len(todo)) if progress else None
    try:
        for i in todo:
            sample = recipe.render(i, sample_rng(seed, recipe.name, i), size)
            split = split_of(i)
            expected = set(recipe.outputs(sample_id(i)))
            if not expected <= set(sample.files):  # declared files mark completion (resume); extras allowed
                raise RuntimeError(f"recipe {recipe.name} wrote {sorted(sample.files)}, declared {sorted(expected)}")
            for rel, payload in sample.files.items():
                write_atomic(out / split / rel, payload.encode())
            if bar:
                bar.update()
    finally:
        if bar:
            bar.close()
    n_total = max(n, int(json.loads(prov_path.read_text()).get("n", 0))) if prov_path.exists() else n
    counts = {s: 0 for s in SPLITS}
    for i in range(n_total):
        counts[split_of(i)] += 1
    prov = {**settings, "n": n_total, "splits": counts, "split_rule": "index % 20: 18 -> val, 19 -> test, else train",
            **recipe_prov}
    write_atomic(prov_path, Json(prov).encode())
    if log:
        log(f"{recipe.name}: {n} samples in {out} ({counts})")
    return out
