"""Training-data recipes: tiny builds, labels checked against pixels, determinism, resume, offline
fallbacks (empty fetch cache) and the fetched sources (skipped when the cache is absent)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from engine.data import fetch as fetch_mod
from engine.data.common import DataWarning, build_dataset, split_of
from engine.io import load_image, load_instance_map, load_label_map, load_palette

FETCHED = fetch_mod.source_dir("gimp-data") is not None and fetch_mod.source_dir("tuxpaint-stamps") is not None
FACES_FETCHED = all(fetch_mod.source_dir(n) is not None for n in ("gan-face-generate", "dlib-bin", "dlib-data"))


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty fetch cache: every recipe must degrade to procedural material with a warning."""
    monkeypatch.setenv("I2I_DATA_CACHE", str(tmp_path / "empty-cache"))
    from engine.data import material, faces, scenes
    for fn in (material.load_pattern, material.load_cutout, scenes._stamps, faces._generator,
               faces._landmarker, faces._gender_model):
        fn.cache_clear()
    yield
    for fn in (material.load_pattern, material.load_cutout, scenes._stamps, faces._generator,
               faces._landmarker, faces._gender_model):
        fn.cache_clear()


def _recipe(name: str):
    from engine.data.cli import make_recipe
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return make_recipe(name)


# --------------------------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------------------------
def check_scenes(root: Path, n: int, size: int) -> None:
    pal = load_palette("scenes")
    things = pal.things
    seen_things = 0
    for i in range(n):
        d, sid = root / split_of(i), f"{i:06d}"
        img = load_image(d / "image" / f"{sid}.png")
        ex = load_image(d / "exemplar" / f"{sid}.png")
        label = load_label_map(d / "label" / f"{sid}.png")
        inst = load_instance_map(d / "instance" / f"{sid}.png")
        edge = load_image(d / "edge" / f"{sid}.png")[..., 0]
        assert img.shape == ex.shape == (size, size, 3)
        assert label.shape == inst.shape == edge.shape == (size, size)
        assert not np.array_equal(img, ex), "exemplar must be another style draw"
        assert 1 <= label.min() and label.max() < len(pal)
        # panoptic ids agree with the semantic map: stuff id = class, thing id = class*1000 + k
        cls_of_id = np.where(inst >= 1000, inst // 1000, inst)
        assert np.array_equal(cls_of_id, label)
        assert not np.isin(label[inst < 1000], list(things)).any(), "thing class with a stuff id"
        assert np.isin(label[inst >= 1000], list(things)).all(), "stuff class with a thing id"
        for c in things:  # instance numbers of a class are 1..K with no gaps, each with pixels
            ks = sorted(int(v) % 1000 for v in np.unique(inst[label == c]))
            assert ks == list(range(1, len(ks) + 1))
            seen_things += len(ks)
        # edges are exactly the instance boundaries
        from engine.io import instance_edges
        assert np.array_equal(edge > 127, instance_edges(inst) > 0)
        assert label.dtype == np.int32
    assert seen_things > 0, "no thing pasted in any sample"


def test_scenes_offline_build_checks_labels_and_is_deterministic(tmp_path, offline):
    from engine.data.scenes import ScenesRecipe
    with pytest.warns(DataWarning, match="procedural"):
        recipe = ScenesRecipe()
    assert recipe.provenance()["material"] == {"textures": "procedural", "things": "procedural"}
    a, b = tmp_path / "a", tmp_path / "b"
    build_dataset(recipe, a, n=20, size=48, seed=3, progress=False)
    check_scenes(a, 20, 48)
    build_dataset(recipe, b, n=3, size=48, seed=3, progress=False)
    for i in range(3):  # byte-identical for the same seed, independent of n
        for sub in ("image", "exemplar", "label", "instance"):
            assert (a / "train" / sub / f"{i:06d}.png").read_bytes() == (b / "train" / sub / f"{i:06d}.png").read_bytes()
    prov = json.loads((a / "provenance.json").read_text())
    assert prov["splits"] == {"train": 18, "val": 1, "test": 1} and prov["seed"] == 3
    # another seed gives other samples
    c = tmp_path / "c"
    build_dataset(recipe, c, n=1, size=48, seed=4, progress=False)
    assert (c / "train/image/000000.png").read_bytes() != (a / "train/image/000000.png").read_bytes()


def test_build_resumes_and_refuses_mixed_settings(tmp_path, offline):
    from engine.api.base import InputError
    recipe = _recipe("scenes")
    out = tmp_path / "s"
    build_dataset(recipe, out, n=2, size=32, seed=0, progress=False)
    first = (out / "train/image/000000.png").stat().st_mtime_ns
    (out / "train/label/000001.png").unlink()  # an interrupted sample
    build_dataset(recipe, out, n=4, size=32, seed=0, progress=False)
    assert (out / "train/image/000000.png").stat().st_mtime_ns == first, "finished samples are not redone"
    assert (out / "train/label/000001.png").exists() and (out / "train/image/000003.png").exists()
    assert json.loads((out / "provenance.json").read_text())["n"] == 4
    with pytest.raises(InputError, match="resuming"):
        build_dataset(recipe, out, n=4, size=48, seed=0, progress=False)
    with pytest.raises(InputError, match="--n"):
        build_dataset(recipe, tmp_path / "z", n=0, size=32, seed=0, progress=False)


@pytest.mark.skipif(not FETCHED, reason="fetch cache absent (run `i2i data fetch`)")
def test_scenes_fetched_material(tmp_path):
    recipe = _recipe("scenes")
    prov = recipe.provenance()
    assert prov["material"] == {"textures": "gimp-data", "things": "tuxpaint-stamps"}
    assert {r["package"] for r in prov["sources"]} >= {"gimp-data", "tuxpaint-stamps-default"}
    build_dataset(recipe, tmp_path / "s", n=6, size=64, seed=1, progress=False)
    check_scenes(tmp_path / "s", 6, 64)


def test_gimp_pattern_reader(tmp_path):
    import struct
    from engine.api.base import InputError
    from engine.data.material import read_pat
    pix = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    name = b"test\x00"
    header = struct.pack(">5I", 24 + len(name), 1, 3, 2, 3) + b"GPAT" + name
    (tmp_path / "t.pat").write_bytes(header + pix.tobytes())
    assert np.array_equal(read_pat(tmp_path / "t.pat"), pix)
    (tmp_path / "bad.pat").write_bytes(b"\x00" * 40)
    with pytest.raises(InputError, match="GPAT"):
        read_pat(tmp_path / "bad.pat")


# --------------------------------------------------------------------------------------------
# faces
# --------------------------------------------------------------------------------------------
def check_faces(root: Path, n: int, size: int) -> None:
    pal = load_palette("celebamask_hq")
    part = {nm: i for i, nm in enumerate(pal.names)}
    domains = set()
    for i in range(n):
        d, sid = root / split_of(i), f"{i:06d}"
        found = [dom for dom in ("female", "male") if (d / dom / f"{sid}.png").exists()]
        assert len(found) == 1, f"sample {sid} must be in exactly one domain folder"
        domains.add(found[0])
        img = load_image(d / found[0] / f"{sid}.png")
        parsing = load_label_map(d / "parsing" / f"{sid}.png")
        pts = np.asarray(json.loads((d / "landmarks" / f"{sid}.json").read_text()))
        assert img.shape == (size, size, 3) and parsing.shape == (size, size) and pts.shape == (68, 2)
        for name in ("skin", "nose", "l_eye", "r_eye", "u_lip", "l_lip"):
            assert (parsing == part[name]).any(), f"{sid}: no {name} pixels"
        # landmarks sit on their parts: nose tip on nose/skin, eye centres on or next to eyes
        xy = lambda k: tuple(np.clip(np.round(pts[k]).astype(int), 0, size - 1))
        x, y = xy(30)
        assert parsing[y, x] in (part["nose"], part["skin"])
        for lo, hi, eye in ((36, 42, "r_eye"), (42, 48, "l_eye")):
            cx, cy = np.round(pts[lo:hi].mean(0)).astype(int)
            win = parsing[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2]
            assert (win == part[eye]).any()
        # subject's left eye (42-47) lies right of the right eye in the image
        assert pts[42:48, 0].mean() > pts[36:42, 0].mean()
    return domains


def test_faces_offline_build(tmp_path, offline):
    from engine.data.faces import FacesRecipe
    with pytest.warns(DataWarning):
        recipe = FacesRecipe()
    build_dataset(recipe, tmp_path / "f", n=8, size=64, seed=0, progress=False)
    domains = check_faces(tmp_path / "f", 8, 64)
    assert domains == {"female", "male"}
    build_dataset(recipe, tmp_path / "g", n=2, size=64, seed=0, progress=False)
    assert (tmp_path / "f/train/landmarks/000001.json").read_bytes() == (tmp_path / "g/train/landmarks/000001.json").read_bytes()


def test_celebahq_edge_encoding_channels():
    from engine.data.faces import _procedural_face, celebahq_edge_encoding
    img, pts = _procedural_face(np.random.default_rng(0), 64)
    from engine.data.faces import parsing_from_landmarks
    enc = celebahq_edge_encoding(img, parsing_from_landmarks(pts, (64, 64)))
    assert enc.shape == (15, 64, 64) and enc.dtype == np.float32
    assert 0 <= enc.min() and enc.max() <= 1
    assert np.array_equal(enc[-1] > 0, (enc[0] > 0) & (enc[-1] > 0))  # part edges are among all edges
    assert (enc[1 + 12] == 1).all(), "hair is never drawn: its distance map is the missing-part 1.0"
    assert enc[1].min() == 0, "skin boundary has distance 0"


@pytest.mark.skipif(not FACES_FETCHED, reason="fetch cache absent (run `i2i data fetch`)")
def test_faces_fetched(tmp_path):
    recipe = _recipe("faces")
    assert recipe.provenance()["material"]["faces"] == "gan-face-generate"
    build_dataset(recipe, tmp_path / "f", n=4, size=64, seed=0, progress=False)
    check_faces(tmp_path / "f", 4, 64)
