"""EdgeGAN quality measures (class accuracy by nearest centroid, silhouette IoU, scene layouts), the
hand-drawn sketches, the sketches recipe's object classes and the paired trainer."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.metrics import hand_sketches
from engine.metrics.objects import (
    NearestCentroid,
    iou,
    object_mask,
    other_of_same_class,
    scene_layouts,
    silhouette_iou,
    sketch_shape,
)

torch.set_num_threads(1)


def _disc(cx: int, cy: int, r: int, size: int = 64, colour=(200, 40, 40)) -> np.ndarray:
    img = np.full((size, size, 3), 255, np.uint8)
    cv2.circle(img, (cx, cy), r, colour, -1)
    return img


def test_object_mask_fills_holes_and_drops_specks() -> None:
    img = _disc(32, 32, 20)
    cv2.circle(img, (32, 32), 6, (255, 255, 255), -1)  # a hole: the object's mask is still solid
    img[2, 2] = img[60, 3] = (0, 0, 0)  # specks
    img[5:9, 50:60] = (250, 250, 250)  # near-white: background
    mask = object_mask(img)
    solid = object_mask(_disc(32, 32, 20))
    assert iou(mask, solid) > 0.99 and not mask[2, 2] and not mask[60, 3] and not mask[6, 55]


def test_sketch_shape_is_the_filled_outline_in_the_prepared_frame() -> None:
    sketch = np.full((300, 300), 255, np.uint8)
    cv2.circle(sketch, (150, 150), 100, 0, 3)
    shape = sketch_shape(sketch, 64)
    expected = np.zeros((64, 64), np.uint8)
    cv2.circle(expected, (32, 32), 29, 1, -1)  # the circle fills the square up to the 5 % margin
    assert shape.shape == (64, 64) and iou(shape, expected.astype(bool)) > 0.9


def test_silhouette_iou_rewards_following_the_own_sketch() -> None:
    shapes = [object_mask(_disc(32, 32, 26)), object_mask(_disc(20, 20, 12)),
              object_mask(_disc(45, 40, 14)), object_mask(_disc(32, 32, 26))]
    classes = ["sun", "sun", "fish", "fish"]
    assert other_of_same_class(classes) == [1, 0, 3, 2]
    following = silhouette_iou([_disc(32, 32, 26), _disc(20, 20, 12), _disc(45, 40, 14), _disc(32, 32, 26)],
                               shapes, classes)
    assert following["own"] == pytest.approx(1.0) and following["margin"] > 0.5
    ignoring = silhouette_iou([_disc(32, 32, 20)] * 4, shapes, classes)  # the same blob for every sketch
    assert ignoring["own"] < 0.7 and abs(ignoring["margin"]) < 0.25


def test_nearest_centroid_classes_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16))
    labels = ["cat", "dog", "sun"] * 20
    feats = np.stack([centres[i % 3] + 0.1 * rng.normal(0, 1, 16) for i in range(60)])
    clf = NearestCentroid.fit(feats, labels)
    assert clf.classes == ("cat", "dog", "sun")
    assert clf.accuracy(feats * 3.0, labels) == 1.0  # cosine: the scale of a feature does not matter
    assert clf.predict(centres[[2, 0]]) == ["sun", "cat"]


def test_hand_sketches_are_six_distinct_freehand_drawings() -> None:
    assert list(hand_sketches.SKETCHES) == ["cat face", "house", "tree", "car", "fish", "sun"]
    images = [hand_sketches.render(n) for n in hand_sketches.SKETCHES]
    for img in images:
        ink = img < 128
        assert img.shape == (256, 256) and 0.02 < ink.mean() < 0.2
        assert not ink[:2].any() and not ink[-2:].any()  # drawn inside the canvas
    assert np.array_equal(images[0], hand_sketches.render("cat face"))
    assert not np.array_equal(images[0], hand_sketches.render("cat face", seed=1))  # a hand is not exact
    shapes = [sketch_shape(img, 64) for img in images]
    assert all(iou(shapes[i], shapes[j]) < 0.9 for i in range(6) for j in range(i))


def test_scene_layouts_put_each_sketch_inside_its_box() -> None:
    from engine.metrics.evaluate import Case

    sketch = np.full((64, 64), 255, np.uint8)
    cv2.rectangle(sketch, (8, 8), (56, 56), 0, 2)
    cases = [Case(str(i), {"sketch": sketch, "class_name": c}) for i, c in enumerate(["car", "tree", "sun", "fish"])]
    scenes = scene_layouts(cases)
    assert [len(p) for _, p in scenes] == [3, 1]
    request, placed = scenes[0]
    assert [o.class_name for o in request.objects] == ["car", "tree", "sun"] and request.size == (256, 256)
    for obj, (_, _, box, bitmap) in zip(request.objects, placed, strict=True):
        x0, y0, x1, y1 = box
        ink = bitmap < 128
        assert tuple(obj.box) == box and ink[y0:y1, x0:x1].sum() == ink.sum() > 0
    assert (request.background.array < 128).any()


def test_recipe_classes_are_concrete_objects() -> None:
    from engine.data.sketches import CLASS_NAMES, OBJECT_CLASSES, SCENE_CLASS_TO_OBJECT

    groups = {"animals-nature", "food-drink", "objects", "travel-places", "smileys-emotion", "activities",
              "people-body", "mammal", "vehicle"}
    assert not groups & set(CLASS_NAMES)
    sketchy = {"airplane", "bicycle", "car", "motorcycle", "traffic light", "horse", "cow", "sheep", "dog", "cat",
               "zebra", "giraffe", "elephant"}  # SketchyCOCO's 14 but the fire hydrant (in neither source)
    assert sketchy <= set(CLASS_NAMES) and {"tree", "house", "fish", "bird", "flower", "sun"} <= set(CLASS_NAMES)
    assert all(entry["emoji"] for entry in OBJECT_CLASSES.values())
    assert set(SCENE_CLASS_TO_OBJECT.values()) <= set(CLASS_NAMES)


def test_augment_and_prepare_keep_edge_and_photo_aligned() -> None:
    from engine.data.sketches import augment_pair, prepared_pair

    photo = np.full((192, 192, 3), 255, np.uint8)
    cv2.rectangle(photo, (40, 60), (150, 130), (30, 120, 200), -1)
    strokes = np.zeros((192, 192), bool)
    cv2.rectangle(strokes.view(np.uint8), (40, 60), (150, 130), 1, 4)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        s, p = augment_pair(strokes, photo, rng, outline_only=seed == 3)
        edge, small = prepared_pair(s, p, 64)
        assert edge.shape == small.shape == (64, 64, 3)
        ink = edge.min(-1) < 128
        drawn = cv2.dilate((small < 245).any(-1).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert ink.any() and (ink & drawn).sum() >= 0.9 * ink.sum()
        assert iou(object_mask(small), sketch_shape(edge[..., 0], 64)) > 0.75  # the photo fills its sketch


def test_thin_pen_strokes_are_thickened_to_the_training_width() -> None:
    from engine.inputs.sketch import binarise, prepare_sketch
    from engine.tasks.sketch import pen_width, thicken_to_model

    thin = np.full((512, 512), 255, np.uint8)
    cv2.circle(thin, (256, 256), 220, 0, 1)
    thick = thicken_to_model(thin, 64)
    assert pen_width(binarise(thick)) > 3 * pen_width(binarise(thin))
    assert (prepare_sketch(thick, 64).image < 128).sum() > 2 * (prepare_sketch(thin, 64).image < 128).sum()
    already = np.full((64, 64), 255, np.uint8)
    cv2.circle(already, (32, 32), 28, 0, 2)
    assert thicken_to_model(already, 64) is already


def test_per_sample_norm_is_what_batch1_inference_computes() -> None:
    from engine.nets.edgegan import EdgeGANGenerator

    g = EdgeGANGenerator(32, 8, 3, 4)
    with torch.no_grad():
        g.fc_norm.weight.uniform_(0.5, 1.5)
        g.fc_norm.bias.uniform_(-0.5, 0.5)
    z, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    one_by_one = torch.cat([g(z[i:i + 1], y[i:i + 1]) for i in range(5)])
    batched = g(z, y)
    g.norm_per_sample = True
    assert (g(z, y) - one_by_one).abs().max() < 1e-5
    assert (batched - one_by_one).abs().max() > 1e-3  # the batch statistics differ


def test_paired_training_learns_resumes_and_exports_the_ema(tmp_path: Path, weights_dir: Path) -> None:
    from engine.train.edgegan import EdgePairDataset, PairArray, export, train_paired
    from engine.weights import Manifest, read_safetensors, split_subnets

    rng = np.random.default_rng(0)
    for c, colour in (("cat", (220, 40, 40)), ("sun", (40, 40, 220))):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(6):
            photo = np.full((32, 32, 3), 255, np.uint8)
            r = int(rng.integers(6, 13))
            cv2.circle(photo, (16, 16), r, colour, -1)
            edge = np.full((32, 32, 3), 255, np.uint8)
            cv2.circle(edge, (16, 16), r, (0, 0, 0), 1)
            cv2.imwrite(str(tmp_path / "d" / c / f"{i}.png"), np.concatenate([edge, photo], 1)[..., ::-1])
    pairs = PairArray(EdgePairDataset(tmp_path / "d", 32))
    assert pairs.pixels.shape == (12, 32, 64, 3) and pairs.pixels.dtype == torch.uint8
    x, labels = pairs.batch(4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 32, 64) and x.is_contiguous(memory_format=torch.channels_last)
    out = tmp_path / "run"
    first = train_paired(tmp_path / "d", out, config_name="tiny", steps=3, batch_size=4, lr=1e-3, sample_every=0,
                         log=False)
    again = train_paired(tmp_path / "d", out, steps=40, batch_size=4, lr=1e-3, sample_every=0, resume=True, log=False)
    assert again["steps"] == {"paired": 43}
    assert again["losses"]["l1_img"] < first["losses"]["l1_img"]
    path = export(out, "eg_paired", "i2i train edgegan --stage paired (test)")
    stored = split_subnets(read_safetensors(path))
    ckpt = split_subnets(read_safetensors(out / "nets.safetensors"))
    assert set(stored) == {"encoder", "edge_generator", "image_generator"}  # no background network was trained
    assert torch.equal(stored["encoder"]["stem.weight"], ckpt["encoder_ema"]["stem.weight"])
    assert not torch.equal(stored["encoder"]["stem.weight"], ckpt["encoder"]["stem.weight"])
    assert Manifest().get("eg_paired").config["classes"] == ["cat", "sun"]
    half = export(out, "eg_half", "test", float16_min_psnr=40.0)
    entry = Manifest().get("eg_half")
    assert entry.extra["dtype"] == "float16" and entry.extra["float16_psnr_db"] >= 40.0
    assert all(t.dtype == torch.float16 for t in read_safetensors(half).values() if t.is_floating_point())
    assert half.stat().st_size < 0.6 * path.stat().st_size
    from engine.weights import build_and_load

    nets = build_and_load(entry, Manifest())
    assert nets["encoder"].stem.weight.dtype == torch.float32  # loaded into the float32 networks
    never = export(out, "eg_never_half", "test", float16_min_psnr=1000.0)  # a bar it cannot meet: float32
    assert Manifest().get("eg_never_half").extra["dtype"] == "float32" and never.stat().st_size == path.stat().st_size
