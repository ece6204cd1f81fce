"""CoCosNet on faces in `i2i eval` (engine.metrics.cocosnet_faces): the pure measures, the pairing
of sources with exemplars, and the CLI table/JSON with a tiny random celebahqedge model; the face
rate with dlib only where it is fetched."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.data.faces import PALETTE, _procedural_face, parsing_from_landmarks
from engine.metrics import cocosnet_faces as cf
from engine.metrics.cocosnet_faces import (
    boundary_gradient,
    outside_mask,
    psnr_outside,
    region_delta_e,
)
from engine.metrics.eval_set import FACE_LAYOUT, load_eval_set
from engine.metrics.faces import DETECTOR_TOOLS, missing_tools
from engine.nets.cocosnet import CONFIGS, build
from engine.weights import Manifest, register_file, save_state_dicts

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
PART = {n: i for i, n in enumerate(PALETTE.names)}
LIPS, SKIN = ("u_lip", "l_lip"), ("skin",)


def _face(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A procedural 64² face (the faces recipe's offline stand-in) and its parsing map."""
    image, pts = _procedural_face(np.random.default_rng(seed), 64)
    return image, parsing_from_landmarks(pts, (64, 64))


def _png(path: Path, arr: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr.astype(np.uint8), "L" if palette else None)
    if palette:
        img = img.convert("P")
        img.putpalette(np.resize(PALETTE.colors, (256, 3)).astype(np.uint8).reshape(-1).tolist())
    img.save(path)


def _faces_folder(root: Path, n: int = 4) -> Path:
    for k in range(n):
        image, parsing = _face(100 + k)
        sid = f"{k:06d}"
        _png(root / "test" / ("female" if k % 2 else "male") / f"{sid}.png", image)
        _png(root / "test" / "parsing" / f"{sid}.png", parsing, palette=True)
    return root


def _register(weights_dir: Path, config: str, name: str) -> str:
    torch.manual_seed(0)
    nets = build(CONFIGS[config])
    path = weights_dir / f"{name}.safetensors"
    save_state_dicts({k: nets[k].state_dict() for k in ("netG", "netCorr")}, path)
    register_file(Manifest(), name=name, family="cocosnet", config_name=config, config=CONFIGS[config],
                  path=path, provenance={"kind": "trained-here", "command": "test"})
    return name


def _paint(image: np.ndarray, parsing: np.ndarray, parts: tuple[str, ...], colour) -> np.ndarray:
    out = image.copy()
    out[np.isin(parsing, [PART[p] for p in parts])] = colour
    return out


# ------------------------------------------------------------------------------ pure measures
def test_colour_distance_shrinks_when_the_regions_take_the_exemplars_colours():
    source, smap = _face(1)
    exemplar, emap = _face(2)
    exemplar = _paint(_paint(exemplar, emap, LIPS, (200, 20, 120)), emap, SKIN, (90, 60, 40))  # distinct makeup
    made_up = _paint(_paint(source, smap, LIPS, (200, 20, 120)), smap, SKIN, (90, 60, 40))
    for parts in (LIPS, SKIN):
        before = region_delta_e(source, smap, exemplar, emap, parts)
        after = region_delta_e(made_up, smap, exemplar, emap, parts)
        assert before > 20 and after < 1 and after < 0.6 * before
    # the wrong region changed: the lips stay as far as they were
    skin_only = _paint(source, smap, SKIN, (90, 60, 40))
    assert region_delta_e(skin_only, smap, exemplar, emap, LIPS) == pytest.approx(
        region_delta_e(source, smap, exemplar, emap, LIPS))
    assert np.isnan(region_delta_e(source, np.zeros_like(smap), exemplar, emap, LIPS))  # no lips: undefined


def test_psnr_outside_the_regions():
    source, smap = _face(3)
    inside = _paint(_paint(source, smap, LIPS, (255, 0, 0)), smap, ("skin", "nose"), (0, 0, 255))
    assert psnr_outside(inside, source, smap) == float("inf")  # only the regions changed
    brighter = np.clip(source.astype(int) + 40, 0, 255).astype(np.uint8)
    assert psnr_outside(brighter, source, smap) < 25  # the whole image changed
    # one pixel just outside the blended area counts
    keep = outside_mask(smap)
    ys, xs = np.nonzero(keep)
    one = source.copy()
    one[ys[0], xs[0]] = 255 - one[ys[0], xs[0]]
    assert 20 < psnr_outside(one, source, smap) < float("inf")
    assert not keep[np.isin(smap, [PART["u_lip"], PART["l_lip"], PART["skin"]])].any()


def test_seam_gradient_is_higher_for_a_pasted_flat_region():
    source, smap = _face(4)
    assert boundary_gradient(source, smap) > 0
    pasted = _paint(source, smap, ("skin", "nose", "u_lip", "l_lip"), (20, 200, 20))
    assert boundary_gradient(pasted, smap) > 2 * boundary_gradient(source, smap)


# ------------------------------------------------------------------------------ pairing
def test_each_face_is_paired_with_the_next_sample_as_exemplar(tmp_path):
    from engine.metrics.evaluate import _request_for
    from engine.requests.cocosnet import ExemplarRequest

    root = _faces_folder(tmp_path / "faces")
    es = load_eval_set(root, "test", face_exemplars=True)
    assert es.layout == FACE_LAYOUT and len(es.cases) == 4
    by_id = {c.id: c for c in es.cases}
    for c in es.cases:
        ex = by_id[c.inputs["exemplar_id"]]
        assert ex.id != c.id and np.array_equal(c.inputs["exemplar"], ex.inputs["source"])
        assert np.array_equal(c.inputs["exemplar_map"], ex.inputs["parsing"])
    assert by_id["000000"].inputs["exemplar_id"] == "000001" and by_id["000003"].inputs["exemplar_id"] == "000000"
    req = _request_for("cocosnet", es.layout, "m", es.cases[0], seed=0, device="cpu", domains=[])
    assert isinstance(req, ExemplarRequest) and np.array_equal(req.input_photo.array, es.cases[0].inputs["source"])
    assert np.array_equal(req.input_map.array, es.cases[0].inputs["parsing"])
    assert "exemplar" not in load_eval_set(root, "test").cases[0].inputs  # StarGAN v2 evals read no maps
    # a one-sample split has no other identity to pair with
    one = tmp_path / "one"
    image, parsing = _face(9)
    _png(one / "test" / "male" / "a.png", image)
    _png(one / "test" / "parsing" / "a.png", parsing, palette=True)
    case = load_eval_set(one, "test", face_exemplars=True).cases[0]
    with pytest.raises(Exception, match="no exemplar"):
        _request_for("cocosnet", FACE_LAYOUT, "m", case, seed=0, device="cpu", domains=[])


# ------------------------------------------------------------------------------ CLI
def test_cli_prints_the_face_table_and_writes_the_json(weights_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cf, "face_finder", lambda: None)  # as on a machine without dlib
    monkeypatch.setattr(cf, "missing_tools", lambda needed: ["dlib-bin", "dlib-data"])
    _register(weights_dir, "tiny_celebahqedge", "tiny_faces")
    root = _faces_folder(tmp_path / "faces")
    out = tmp_path / "report.json"
    sheet = tmp_path / "sheet.png"
    rc = main(["eval", "tiny_faces", "--data", str(root), "--backbone", "none", "--json", str(out),
               "--sheet", str(sheet)])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    for row in ("makeup lip_dE_ratio", "makeup skin_dE", "makeup psnr_outside", "makeup seam_ratio",
                "exemplar face_rate", "floor (untrained)", "sources (unchanged)"):
        assert row in printed
    assert "i2i data fetch dlib-bin dlib-data" in printed and "makeup bars" in printed
    faces = json.loads(out.read_text())["faces"]
    assert set(faces) == {"model", "floor (untrained)", "sources (unchanged)"}
    for col in faces.values():
        assert set(col["makeup"]) >= {"face_rate", "lip_dE", "lip_dE_ratio", "skin_dE", "skin_dE_ratio",
                                      "psnr_outside", "seam_ratio"}
        assert col["exemplar"]["face_rate"] is None and col["pairs"] == 4  # no dlib: no rate (null in JSON)
    src = faces["sources (unchanged)"]["makeup"]
    assert src["lip_dE_ratio"] == src["skin_dE_ratio"] == src["seam_ratio"] == 1.0 and src["psnr_outside"] == 100
    model = faces["model"]["makeup"]
    assert model["psnr_outside"] >= 40  # region-only blend: 2 px beyond the regions only the feather's tail
    assert model["lip_dE"] > 0 and model["seam_ratio"] > 0
    # contact sheet: one row per pair (4), source | exemplar | translation | makeup, each 64² at 3×, 2 px apart
    grid = np.asarray(Image.open(sheet).convert("RGB"))
    assert grid.shape[:2] == (4 * 192 + 5 * 2, 4 * 192 + 5 * 2)
    first = load_eval_set(root, "test", face_exemplars=True).cases[0].inputs
    first, second = (np.asarray(Image.fromarray(first[k]).resize((192, 192), Image.NEAREST))
                     for k in ("source", "exemplar"))
    assert np.array_equal(grid[2:194, 2:194], first)        # row 1: the source …
    assert np.array_equal(grid[2:194, 196:388], second)     # … and its exemplar


def test_cli_refuses_a_scene_cocosnet_model_on_faces(weights_dir, tmp_path, capsys):
    _register(weights_dir, "tiny_ade20k", "tiny_scenes")
    root = _faces_folder(tmp_path / "faces", n=2)
    assert main(["eval", "tiny_scenes", "--data", str(root), "--backbone", "none"]) == 2
    assert "only for face models" in capsys.readouterr().err


@pytest.mark.skipif(bool(missing_tools(DETECTOR_TOOLS)),
                    reason="dlib not fetched (`i2i data fetch dlib-bin dlib-data`)")
def test_face_rate_on_the_example_portraits(weights_dir, tmp_path):
    from engine.metrics.evaluate import evaluate

    _register(weights_dir, "tiny_celebahqedge", "tiny_faces")
    root = tmp_path / "faces"
    for path in sorted((EXAMPLES / "faces").glob("*.png")):
        group, sid = path.stem.split("_")
        _png(root / "test" / group / f"{sid}.png", np.asarray(Image.open(path).convert("RGB")))
        (root / "test" / "parsing").mkdir(parents=True, exist_ok=True)
        (root / "test" / "parsing" / f"{sid}.png").write_bytes((EXAMPLES / "parsing" / path.name).read_bytes())
    faces = evaluate("tiny_faces", root, backbone="none")["faces"]
    sources = faces["sources (unchanged)"]
    assert sources["exemplar"]["face_rate"] >= 0.75  # dlib finds the portraits
    # an untrained network's outputs are no faces; the region-only makeup keeps most of the face
    assert faces["floor (untrained)"]["exemplar"]["face_rate"] <= sources["exemplar"]["face_rate"]
    assert faces["model"]["exemplar"]["face_rate"] <= sources["exemplar"]["face_rate"]
