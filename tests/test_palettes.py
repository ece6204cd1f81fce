"""The class palettes in assets/palettes load through engine.io and match their official sources."""
import json

import numpy as np
import pytest

from engine.io import ASSETS, load_palette

EXPECTED = {"ade20k": 151, "celebamask_hq": 19, "coco_panoptic": 133, "coco_stuff": 182}


@pytest.mark.parametrize("name,count", sorted(EXPECTED.items()))
def test_palette_loads_with_count_and_distinct_colours(name: str, count: int) -> None:
    pal = load_palette(name)
    raw = json.loads((ASSETS / "palettes" / f"{name}.json").read_text())
    assert len(pal) == count and pal.colors.shape == (count, 3)
    assert len(set(pal.names)) == count, "class names must be unique"
    assert all(n == n.strip() and n for n in pal.names)
    assert raw["source"]
    # Colours are distinct except pairs the official table itself duplicates (documented in the file).
    allowed = {tuple(sorted(p)) for p in raw.get("duplicate_colors", [])}
    packed = [tuple(c) for c in pal.colors.tolist()]
    dups = {tuple(sorted(i for i, c in enumerate(packed) if c == col))
            for col in set(packed) if packed.count(col) > 1}
    assert dups == allowed
    # Every colour that is unique round-trips through the colour decoder.
    ramp = pal.colors[None]
    decoded = pal.decode(ramp)[0]
    unique = [i for i in range(count) if packed.count(packed[i]) == 1]
    assert (decoded[unique] == np.asarray(unique)).all()


def test_known_entries_from_official_sources() -> None:
    ade = load_palette("ade20k")
    assert ade.names[0] == "other" and ade.names[1] == "wall" and ade.names[150] == "flag"
    assert ade.colors[1].tolist() == [120, 120, 120] and ade.colors[3].tolist() == [6, 230, 230]
    assert ade.ignore_index == 0

    face = load_palette("celebamask_hq")
    assert face.names[16] == "eye_g"  # CoCosNet overwrites channel -3 with the eyeglasses mask
    assert face.colors[face.names.index("skin")].tolist() == [204, 0, 0]
    assert face.colors[face.names.index("hair")].tolist() == [0, 0, 204]

    pan = load_palette("coco_panoptic")
    assert pan.things == frozenset(range(80))
    assert pan.names[0] == "person" and pan.colors[0].tolist() == [220, 20, 60]
    assert pan.names[-1] == "rug-merged"

    stuff = load_palette("coco_stuff")
    assert stuff.names[0] == "person" and stuff.names[181] == "wood" and stuff.names[91] == "banner"
    assert stuff.things == frozenset(range(91)) and stuff.ignore_index == 255
    # SPADE's bit-interleaved colour map: label 0 -> id 1 -> (128, 0, 0); COCO overrides for sky.
    assert stuff.colors[0].tolist() == [128, 0, 0]
    assert stuff.colors[stuff.names.index("sky-other")].tolist() == [95, 219, 255]
