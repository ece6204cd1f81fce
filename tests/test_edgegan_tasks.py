"""Sketch inputs, the EdgeGAN object task and the scene task (tiny random models), and their CLI."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.api import Cancelled, FrozenArray, InputError, SceneObject, SceneRequest, SketchObjectRequest, WeightsError
from engine.inputs.sketch import (
    binarise,
    canny_edges,
    content_box,
    edge_map,
    fill_strokes,
    load_scene_sketch,
    prepare_sketch,
    xdog_edges,
)
from engine.nets.edgegan import CONFIGS, build
from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request
from engine.weights import Manifest, register_file, save_state_dicts

torch.set_num_threads(1)


def _register(weights_dir: Path, name: str, config: dict, *, default: bool = False, seed: int = 0) -> None:
    torch.manual_seed(seed)
    nets = build(config)
    keep = ["encoder", "edge_generator", "image_generator"]
    if config.get("background"):
        keep.append("background_generator")
    path = weights_dir / f"{name}.safetensors"
    save_state_dicts({k: nets[k].state_dict() for k in keep}, path)
    register_file(Manifest(), name=name, family="edgegan", config_name="tiny", config=config, path=path,
                  provenance={"kind": "trained-here", "command": "test"}, extra={"default": default})


@pytest.fixture
def tiny_model(weights_dir: Path) -> str:
    _register(weights_dir, "eg_tiny", CONFIGS["tiny"], default=True)
    return "eg_tiny"


def _run(request, token: CancelToken | None = None):
    ctx = make_context(1, request, ModelStore(), LRUCache(8), token)
    return run_request(request, ctx)


def _circle_sketch(h: int = 180, w: int = 260, centre=(200, 60), r: int = 30) -> np.ndarray:
    img = np.full((h, w), 255, np.uint8)
    cv2.circle(img, centre, r, 0, 2)
    return img


# ------------------------------------------------------------------------------ sketch inputs
def test_binarise_handles_inverted_and_blank() -> None:
    s = _circle_sketch()
    assert binarise(s).sum() == binarise(255 - s).sum() > 0
    assert not binarise(np.full((20, 20), 255, np.uint8)).any()
    assert binarise(np.stack([s] * 3, 2)).sum() == binarise(s).sum()


def test_prepare_sketch_crops_pads_and_centres() -> None:
    p = prepare_sketch(_circle_sketch(), 32, margin=0.1)
    assert p.image.shape == (32, 32) and p.image.dtype == np.uint8
    x0, y0, x1, y1 = p.region
    assert x1 - x0 == y1 - y0 and abs((x0 + x1) / 2 - 200) <= 1 and abs((y0 + y1) / 2 - 60) <= 1
    box = content_box(p.image < 128)
    assert box is not None
    assert abs((box[0] + box[2]) / 2 - 16) <= 1.5 and abs((box[1] + box[3]) / 2 - 16) <= 1.5
    assert 20 <= box[2] - box[0] <= 30  # the circle fills the square minus the margin
    with pytest.raises(InputError, match="empty"):
        prepare_sketch(np.full((40, 40), 255, np.uint8), 32)


def test_edge_extractors_draw_dark_lines_at_boundaries() -> None:
    rgb = np.full((64, 64, 3), 40, np.uint8)
    rgb[16:48, 16:48] = (220, 180, 30)
    for method in ("canny", "xdog"):
        e = edge_map(rgb, method)
        assert e.shape == (64, 64) and e.dtype == np.uint8
        dark = e < 128
        assert dark.any() and dark.mean() < 0.25, method
        assert not dark[30:34, 30:34].any() and not dark[:4, :4].any(), method  # flat areas stay white
    assert canny_edges(rgb)[16, 30] < 128 or canny_edges(rgb)[15, 30] < 128
    assert xdog_edges(rgb).min() < 128
    with pytest.raises(InputError):
        edge_map(rgb, "sobel")  # type: ignore[arg-type]


def test_fill_strokes_fills_closed_and_open_outlines() -> None:
    m = _circle_sketch() < 128
    filled = fill_strokes(m)
    assert filled[60, 200] and not filled[60, 100]
    open_arc = np.zeros((100, 100), np.uint8)
    cv2.ellipse(open_arc, (50, 50), (30, 30), 0, 0, 200, 1, 1)
    hull = fill_strokes(open_arc.astype(bool))
    assert hull[55, 50] and hull.sum() > open_arc.sum() * 5


def _write_scene(folder: Path, classes=("cat", "dog")) -> Path:
    w, h = 160, 96
    bg = np.full((h, w), 255, np.uint8)
    cv2.line(bg, (0, 70), (w, 65), 0, 2)
    cv2.imwrite(str(folder / "bg.png"), bg)
    objs = []
    for i, (cls, centre) in enumerate(zip(classes, [(40, 40), (110, 45)], strict=True)):
        o = np.full((h, w), 255, np.uint8)
        cv2.circle(o, centre, 18, 0, 2)
        cv2.imwrite(str(folder / f"o{i}.png"), o)
        objs.append({"class": cls, "box": [centre[0] - 22, centre[1] - 22, centre[0] + 22, centre[1] + 22],
                     "sketch": f"o{i}.png"})
    path = folder / "scene.json"
    path.write_text(json.dumps({"size": [w, h], "background": "bg.png", "objects": objs}))
    return path


def test_load_scene_sketch_and_its_errors(tmp_path: Path) -> None:
    scene = load_scene_sketch(_write_scene(tmp_path))
    assert scene.size == (160, 96) and len(scene.objects) == 2 and scene.background.shape == (96, 160)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"size": [100, 96], "background": "bg.png", "objects": []}))
    with pytest.raises(InputError, match="160×96"):
        load_scene_sketch(bad)
    bad.write_text(json.dumps({"size": [160, 96],
                               "objects": [{"class": "cat", "box": [500, 0, 600, 10], "sketch": "o0.png"}]}))
    with pytest.raises(InputError, match="outside"):
        load_scene_sketch(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_scene_sketch(bad)


# ------------------------------------------------------------------------------ object task
def test_sketch_task_outputs_and_determinism(tiny_model: str) -> None:
    sketch = FrozenArray(_circle_sketch())
    req = SketchObjectRequest(model=tiny_model, sketch=sketch, class_name="Cat", seed=1)
    a = _run(req)
    assert a.image.shape == (32, 32, 3) and a.image.dtype == np.uint8
    assert a.aux["edge"].shape == (32, 32, 3) and a.aux["input"].shape == (32, 32, 3)
    assert {"encoder", "edge_generator", "image_generator"} <= set(a.timings)
    assert np.array_equal(a.image, _run(req).image)
    other_seed = _run(SketchObjectRequest(model=tiny_model, sketch=sketch, class_name="cat", seed=2))
    assert not np.array_equal(a.image, other_seed.image)  # the scalar ε moves z
    no_noise = [_run(SketchObjectRequest(model=tiny_model, sketch=sketch, class_name="cat", seed=s, noise="none")).image
                for s in (1, 2)]
    assert np.array_equal(*no_noise)
    other_class = _run(SketchObjectRequest(model=tiny_model, sketch=sketch, class_name="dog", seed=1))
    assert not np.array_equal(a.image, other_class.image)


def test_sketch_task_default_model_and_errors(tiny_model: str) -> None:
    sketch = FrozenArray(_circle_sketch())
    assert _run(SketchObjectRequest(sketch=sketch, class_name="car")).image.shape == (32, 32, 3)
    with pytest.raises(InputError, match="no class 'zebra'.*cat, dog, car"):
        _run(SketchObjectRequest(sketch=sketch, class_name="zebra"))
    with pytest.raises(InputError, match="empty"):
        _run(SketchObjectRequest(sketch=FrozenArray(np.full((50, 50), 255, np.uint8)), class_name="cat"))
    with pytest.raises(InputError, match="no sketch"):
        _run(SketchObjectRequest(class_name="cat"))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        _run(SketchObjectRequest(sketch=sketch, class_name="cat"), token)


# ------------------------------------------------------------------------------ scene task
def test_scene_task_pastes_objects_and_paints_background(tiny_model: str, tmp_path: Path) -> None:
    from engine.cli.generate import request_from_json

    req = request_from_json(_write_scene(tmp_path), model=tiny_model, seed=0)
    res = _run(req)
    assert res.image.shape == (96, 160, 3)
    mask = res.aux["mask"][..., 0] > 0
    assert mask[40, 40] and mask[45, 110] and not mask[90, 5]
    assert np.array_equal(res.image[mask], res.aux["foreground"][mask])
    assert np.array_equal(res.image[~mask], res.aux["background"][~mask])
    ctx = make_context(1, req, ModelStore(), LRUCache(8))
    run_request(req, ctx)
    misses = ctx.cache.misses
    moved = SceneRequest(**{**req.__dict__, "objects": (req.objects[0], SceneObject(
        sketch=req.objects[1].sketch, class_name="car", box=req.objects[1].box))})
    again = run_request(moved, make_context(2, moved, ctx.models, ctx.cache))
    assert ctx.cache.misses == misses + 1 and ctx.cache.hits >= 1  # only the changed object was regenerated
    assert np.array_equal(again.aux["foreground"][40, 40], res.aux["foreground"][40, 40])
    unpasted = _run(SceneRequest(**{**req.__dict__, "paste_objects": False}))
    assert np.array_equal(unpasted.image, unpasted.aux["background"])
    assert "background_generator" in res.timings


def test_scene_task_errors(weights_dir: Path, tmp_path: Path) -> None:
    cfg = dict(CONFIGS["tiny"], background=False)
    _register(weights_dir, "objects_only", cfg, default=True)
    from engine.cli.generate import request_from_json

    req = request_from_json(_write_scene(tmp_path), model="objects_only")
    with pytest.raises(WeightsError, match="background network"):  # the one "no such model" error
        _run(req)
    _register(weights_dir, "with_bg", CONFIGS["tiny"])
    assert _run(SceneRequest(**{**req.__dict__, "background_model": "with_bg"})).image.shape == (96, 160, 3)
    assert _run(req).image.shape == (96, 160, 3)  # falls back to the registered model with a background net
    with pytest.raises(InputError, match="empty"):
        _run(SceneRequest(model="with_bg", size=(64, 64)))
    wrong = SceneObject(sketch=FrozenArray(np.zeros((10, 10), np.uint8)), class_name="cat", box=(0, 0, 5, 5))
    with pytest.raises(InputError, match="stroke bitmap"):
        _run(SceneRequest(model="with_bg", size=(64, 64), objects=(wrong,)))


# ------------------------------------------------------------------------------ CLI
def test_cli_generate_sketch_and_scene(tiny_model: str, tmp_path: Path) -> None:
    from engine.cli import main

    cv2.imwrite(str(tmp_path / "s.png"), _circle_sketch())
    out = tmp_path / "out" / "cat.png"
    assert main(["generate", "sketch", "--class", "cat", "--sketch", str(tmp_path / "s.png"),
                 "--out", str(out), "--seed", "4"]) == 0
    assert out.exists() and (tmp_path / "out" / "cat_edge.png").exists()
    assert main(["generate", "sketch", "--class", "cat", "--sketch", str(tmp_path / "s.png"),
                 "--out", str(tmp_path / "t.png"), "--triptych"]) == 0
    assert cv2.imread(str(tmp_path / "t.png")).shape == (32, 96, 3)
    scene_out = tmp_path / "scene.png"
    assert main(["generate", "scene", "--sketch", str(_write_scene(tmp_path)), "--out", str(scene_out),
                 "--save-stages"]) == 0
    assert cv2.imread(str(scene_out)).shape == (96, 160, 3)
    assert (tmp_path / "scene_foreground.png").exists()
    assert main(["generate", "sketch", "--class", "unicorn", "--sketch", str(tmp_path / "s.png"),
                 "--out", str(tmp_path / "u.png")]) == 2
