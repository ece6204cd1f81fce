"""The speckle measure (engine.metrics.speckle) on images whose speckle is known, and the painted
maps it is measured on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.io import load_instance_map, load_label_map, load_palette
from engine.metrics.speckle import ClassColours, speckle_scores

SKY, GRASS, FLOWER = 1, 6, 12
MAPS = Path(__file__).resolve().parent.parent / "assets" / "examples" / "painted"


def _scene(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sky over grass, one 4×4 flower on the grass: labels, panoptic ids, a clean image."""
    labels = np.full((size, size), SKY, np.int32)
    labels[size // 2:] = GRASS
    labels[48:52, 20:24] = FLOWER
    ids = labels.copy()
    ids[labels == FLOWER] = FLOWER * 1000 + 1
    rng = np.random.default_rng(0)
    image = np.zeros((size, size, 3), np.uint8)
    for cls, colour in ((SKY, (70, 130, 180)), (GRASS, (60, 170, 60)), (FLOWER, (240, 90, 160))):
        image[labels == cls] = colour
    image = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)  # mild texture
    return labels, ids, image


def test_isolated_off_colour_clusters_are_counted_and_boundary_blends_are_not():
    labels, ids, clean = _scene()
    assert speckle_scores(clean, labels, ids)["speckle_per_10k"] == 0
    speckled = clean.copy()
    for y, x in ((8, 8), (8, 40), (20, 20), (40, 50)):  # four 2×2 dark dots inside sky and grass
        speckled[y:y + 2, x:x + 2] = (10, 10, 10)
    four = speckle_scores(speckled, labels, ids)["speckle_per_10k"]
    blended = clean.copy()
    blended[31:33] = (10, 10, 10)  # a dark seam exactly on the sky/grass boundary
    assert four > 0 and speckle_scores(blended, labels, ids)["speckle_per_10k"] == 0
    big = clean.copy()
    big[4:20, 4:20] = (10, 10, 10)  # a 16×16 patch is a region, not a speckle
    assert speckle_scores(big, labels, ids)["speckle_per_10k"] == 0
    two = clean.copy()
    two[8:10, 8:10] = two[20:22, 20:22] = (10, 10, 10)
    assert four == pytest.approx(2 * speckle_scores(two, labels, ids)["speckle_per_10k"])  # a rate per cluster


def test_a_small_segment_in_a_colour_its_class_never_has_is_off_colour():
    labels, ids, clean = _scene()
    colours = ClassColours.fit([clean] * 3, [labels] * 3, k=2)
    assert speckle_scores(clean, labels, ids, colours)["small_offcolour"] == 0
    dark = clean.copy()
    dark[labels == FLOWER] = (20, 15, 10)  # the "dark blob on a small segment"
    scores = speckle_scores(dark, labels, ids, colours)
    assert scores["small_offcolour"] == 1 and scores["small_segments"] == 1
    assert np.isnan(speckle_scores(dark, labels, ids)["small_offcolour"])  # no class colours: undefined


def test_the_painted_maps_have_touching_instances_of_one_class_and_small_segments():
    palette = load_palette("scenes")
    names = sorted(MAPS.glob("painted_*.png"))
    assert len(names) >= 6
    for path in names:
        labels = load_label_map(path)
        ids = load_instance_map(MAPS / "instances" / path.name)
        assert labels.shape == ids.shape == (128, 128)
        assert np.array_equal(np.where(ids >= 1000, ids // 1000, ids), labels)  # ids agree with the classes
        touching = (ids[:, 1:] != ids[:, :-1]) & (labels[:, 1:] == labels[:, :-1]) & (ids[:, 1:] >= 1000)
        assert touching.any(), f"{path.name}: no two instances of one class touch"
        areas = np.unique(ids[ids >= 1000], return_counts=True)[1]
        assert (areas <= 16).sum() >= 3, f"{path.name}: fewer than 3 small segments"
        assert set(np.unique(labels)) <= set(range(len(palette)))
