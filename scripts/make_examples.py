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

from engine.io import load_label_map, load_palette, save_image, save_instance_map, save_label_map  # noqa: E402 - after sys.path gets the repo root

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


class _Painter:
    """A panoptic map painted shape by shape; later shapes cover earlier ones, as a brush does.
    Panoptic ids: stuff = class, thing instance k of class c = c·1000 + k."""

    def __init__(self, size: int, fill: int) -> None:
        self.size = size
        self.labels = np.full((size, size), fill, np.int32)
        self.ids = self.labels.copy()
        self._count: dict[int, int] = {}

    def blank(self) -> np.ndarray:
        return np.zeros((self.size, self.size), np.uint8)

    def stuff(self, cls: int, mask: np.ndarray) -> None:
        self.labels[mask > 0] = cls
        self.ids[mask > 0] = cls

    def thing(self, cls: int, mask: np.ndarray) -> None:
        self._count[cls] = self._count.get(cls, 0) + 1
        self.labels[mask > 0] = cls
        self.ids[mask > 0] = cls * 1000 + self._count[cls]


def painted(n: int = 6, size: int = 128) -> None:
    """Panoptic maps painted the way a person paints in the studio (filled shapes, round dabs),
    with what the recipe's layouts rarely have: touching instances of one class (two trees, two
    animals, two houses) and small segments (3-4 px flowers and birds)."""
    import cv2

    sky, cloud, mountain, hill, water, grass, sand = 1, 2, 3, 4, 5, 6, 7
    mammal, bird, tree, flower, boat, house = 9, 10, 11, 12, 14, 15
    for index in range(n):
        rng = np.random.default_rng(100 + index)
        pt = _Painter(size, sky)
        horizon = int(rng.integers(56, 72))
        peaks = [(0, horizon)] + [(int(x), int(horizon - rng.integers(12, 34)))
                                  for x in np.linspace(10, size - 10, int(rng.integers(2, 4)))] + [(size, horizon)]
        pt.stuff(mountain, cv2.fillPoly(pt.blank(), [np.array(peaks + [(size, size), (0, size)], np.int32)], 1))
        for _ in range(int(rng.integers(1, 3))):
            centre = (int(rng.integers(15, size - 15)), int(rng.integers(8, horizon - 30)))
            axes = (int(rng.integers(10, 18)), int(rng.integers(4, 7)))
            pt.stuff(cloud, cv2.ellipse(pt.blank(), centre, axes, 0, 0, 360, 1, -1))
        ground = horizon + int(rng.integers(4, 10))
        below = pt.blank()
        below[ground:] = 1
        pt.stuff(grass, below)
        lake = index % 2 == 0
        if lake:
            centre = (int(rng.integers(40, 90)), ground + 12)
            pt.stuff(sand, cv2.ellipse(pt.blank(), centre, (37, 11), 0, 0, 360, 1, -1))
            pt.stuff(water, cv2.ellipse(pt.blank(), centre, (34, 8), 0, 0, 360, 1, -1))
            bx = centre[0] - 7
            boat_hull = np.array([(bx, ground + 10), (bx + 14, ground + 10), (bx + 11, ground + 14),
                                  (bx + 3, ground + 14)], np.int32)
            pt.thing(boat, cv2.fillPoly(pt.blank(), [boat_hull], 1))
        else:
            strip = pt.blank()
            strip[ground:ground + 6] = 1
            pt.stuff(hill, strip)
            hx = int(rng.integers(40, 60))
            for x0 in (hx, hx + 16):  # two houses wall to wall
                outline = np.array([(x0, ground + 4), (x0 + 16, ground + 4), (x0 + 16, ground - 8),
                                    (x0 + 8, ground - 16), (x0, ground - 8)], np.int32)
                pt.thing(house, cv2.fillPoly(pt.blank(), [outline], 1))
        # two overlapping tree crowns, two animals side by side
        tx, ty, r = int(rng.integers(14, 40)), int(rng.integers(ground + 14, size - 22)), int(rng.integers(10, 14))
        pt.thing(tree, cv2.circle(pt.blank(), (tx, ty), r, 1, -1))
        pt.thing(tree, cv2.circle(pt.blank(), (tx + int(1.5 * r), ty + 3), r, 1, -1))
        mx, my = int(rng.integers(70, 88)), int(rng.integers(ground + 22, size - 12))
        for x, y in ((mx, my), (mx + 17, my + 1)):
            body = cv2.ellipse(pt.blank(), (x, y), (9, 5), 0, 0, 360, 1, -1)
            cv2.circle(body, (x + 9, y - 4), 3, 1, -1)
            for dx in (-6, -2, 3, 6):
                cv2.line(body, (x + dx, y + 3), (x + dx, y + 9), 1, 2)
            pt.thing(mammal, body)
        # small segments: 3-4 px flowers on the grass, 4×2 birds in the sky
        for _ in range(10):
            side = int(rng.integers(3, 5))
            x, y = int(rng.integers(4, size - 8)), int(rng.integers(ground + 8, size - 6))
            if np.all(pt.labels[y:y + side, x:x + side] == grass):
                dab = pt.blank()
                dab[y:y + side, x:x + side] = 1
                pt.thing(flower, dab)
        for _ in range(4):
            x, y = int(rng.integers(6, size - 10)), int(rng.integers(6, max(8, horizon - 34)))
            if np.all(pt.labels[y:y + 2, x:x + 4] == sky):
                dab = pt.blank()
                dab[y:y + 2, x:x + 4] = 1
                pt.thing(bird, dab)
        save_label_map(OUT / "painted" / f"painted_{index}.png", pt.labels, load_palette("scenes"))
        save_instance_map(OUT / "painted" / "instances" / f"painted_{index}.png", pt.ids)


def main() -> int:
    painted()
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
