"""Build the small example gallery in ``assets/examples/`` from the project's own datasets.

Copies a few test-split items of ``data/faces``, ``data/scenes`` and ``data/poses`` (built by
``i2i data build``) and writes two procedural exemplars. Provenance and licences are recorded in
``assets/examples/README.md``. Run: ``.venv/bin/python scripts/make_examples.py``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.io import load_label_map, load_palette, save_image, save_label_map  # noqa: E402 - after sys.path gets the repo root

DATA = ROOT / "data"
OUT = ROOT / "assets" / "examples"


def copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def faces() -> None:
    split = DATA / "faces" / "test"
    picked: list[tuple[str, Path]] = []
    for domain in ("female", "male"):
        picked += [(domain, p) for p in sorted((split / domain).glob("*.png"))[:2]]
    for domain, p in picked:
        name = f"{domain}_{p.stem}.png"
        copy(p, OUT / "faces" / name)
        parsing = split / "parsing" / p.name
        if parsing.exists():
            labels = load_label_map(parsing)
            save_label_map(OUT / "parsing" / name, labels, load_palette("celebamask_hq"))


def scenes() -> None:
    split = DATA / "scenes" / "test"
    for p in sorted((split / "image").glob("*.png"))[:3]:
        copy(p, OUT / "exemplars" / f"scene_{p.stem}.png")
        labels = load_label_map(split / "label" / p.name)
        save_label_map(OUT / "maps" / f"scene_{p.stem}.png", labels, load_palette("scenes"))
        copy(split / "instance" / p.name, OUT / "maps" / "instances" / f"scene_{p.stem}.png")


def poses() -> None:
    split = DATA / "poses" / "test"
    for p in sorted((split / "image").glob("*.png"))[:2]:
        copy(p, OUT / "exemplars" / f"pose_{p.stem}.png")
        copy(split / "pose" / f"{p.stem}.json", OUT / "maps" / f"pose_{p.stem}.json")


def procedural() -> None:
    """Two exemplars drawn here: a sunset gradient with hills, and warm stripes."""
    h = w = 128
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / h
    sky = np.stack([0.95 - 0.2 * y, 0.55 + 0.1 * y, 0.35 + 0.4 * y], -1)
    hill = y > 0.62 + 0.08 * np.sin(x * 7.0)
    sky[hill] = np.stack([0.2 + 0.1 * x, 0.45 + 0.2 * y, 0.2 * np.ones_like(x)], -1)[hill]
    save_image(OUT / "exemplars" / "procedural_sunset.png", (np.clip(sky, 0, 1) * 255).astype(np.uint8))
    stripes = 0.5 + 0.5 * np.sin((x + 0.5 * y) * 25.0)
    rgb = np.stack([0.8 * stripes + 0.2, 0.45 * stripes + 0.25, 0.2 + 0.1 * y], -1)
    save_image(OUT / "exemplars" / "procedural_stripes.png", (np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def main() -> int:
    for step in (faces, scenes, poses):
        try:
            step()
        except FileNotFoundError as exc:
            print(f"skipped {step.__name__}: {exc} (build the data with `i2i data build`)")
    procedural()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{OUT}: {total / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
