"""Smoke tests of the EdgeGAN trainer (objects + background), resume and export."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.api import InputError
from engine.train.edgegan import BackgroundDataset, EdgePairDataset, ObjectTrainer, export, train
from engine.weights import Manifest, build_and_load, read_safetensors, split_subnets

torch.set_num_threads(1)


def _make_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    split = root / "train"
    for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (split / c).mkdir(parents=True)
        for i in range(4):
            img = np.full((32, 32, 3), 200, np.uint8)
            cv2.circle(img, (int(rng.integers(12, 20)), 16), int(rng.integers(5, 9)), colour, -1)
            if i % 2:  # a plain photo: the edge extractor makes its edge map
                cv2.imwrite(str(split / c / f"{i}.png"), img[..., ::-1])
            else:  # an official-layout pair [edge | photo]
                edge = np.repeat((255 - cv2.Canny(img, 50, 100))[..., None], 3, 2)
                cv2.imwrite(str(split / c / f"{i}.png"), np.concatenate([edge, img], 1)[..., ::-1])
    scene = split / "scene"
    scene.mkdir()
    for i in range(3):
        w, h = 80, 64
        photo = np.full((h, w, 3), 120, np.uint8)
        photo[44:] = (30, 160, 30)
        cv2.circle(photo, (30, 30), 10, (200, 50, 50), -1)
        bg = np.full((h, w), 255, np.uint8)
        cv2.line(bg, (0, 44), (w, 44), 0, 1)
        ob = np.full((h, w), 255, np.uint8)
        cv2.circle(ob, (30, 30), 10, 0, 1)
        cv2.imwrite(str(scene / f"{i}_background.png"), bg)
        cv2.imwrite(str(scene / f"{i}_obj0.png"), ob)
        cv2.imwrite(str(scene / f"{i}_image.png"), photo[..., ::-1])
        (scene / f"{i}.json").write_text(json.dumps({"size": [w, h], "background": f"{i}_background.png",
                                                      "objects": [{"class": "cat", "box": [18, 18, 42, 42],
                                                                   "sketch": f"{i}_obj0.png"}]}))
    return split


def test_pair_dataset_reads_pairs_and_photos(tmp_path: Path) -> None:
    data = _make_data(tmp_path)
    ds = EdgePairDataset(data, 32, edge_method="xdog", flip=False)
    assert ds.classes == ["cat", "dog"] and len(ds) == 8
    x, label = ds[0]
    assert x.shape == (3, 32, 64) and x.min() >= -1 and x.max() <= 1 and label == 0
    edge, photo = ds.pair(1)  # a photo-only file: edge map made by the extractor
    assert edge.shape == photo.shape == (32, 32, 3) and (edge < 128).any() and (edge > 128).mean() > 0.5
    with pytest.raises(InputError, match="class folders"):
        EdgePairDataset(tmp_path / "train" / "scene", 32)


def test_background_dataset_from_scene_sketches(tmp_path: Path) -> None:
    ds = BackgroundDataset(_make_data(tmp_path) , 32)
    x, y = ds.samples[0]
    assert x.shape == (5, 32, 32) and y.shape == (3, 32, 32)
    mask = x[4] > 0
    assert mask[15, 12] and not mask[2, 2]  # the cat's filled outline at (30, 30) of 80×64 -> ~(12, 15)
    assert (x[0] < 0).any()  # background strokes


def test_object_step_updates_every_network(tmp_path: Path) -> None:
    from engine.nets.edgegan import CONFIGS, build

    cfg = dict(CONFIGS["tiny"], classes=["cat", "dog"])
    torch.manual_seed(0)
    nets = build(cfg)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}
    trainer = ObjectTrainer(nets, cfg)
    real = torch.rand(2, 3, 32, 64) * 2 - 1
    logs = trainer.step(real, torch.tensor([0, 1]))
    assert all(np.isfinite(v) for v in logs.values())
    assert {"d_joint", "d_image", "d_edge", "c_focal", "g_joint", "g_ac", "e_zl"} <= set(logs)
    for name in ("encoder", "edge_generator", "image_generator", "joint_discriminator", "image_discriminator",
                 "edge_discriminator", "classifier"):
        changed = any(not torch.equal(a, b) for a, b in zip(before[name], nets[name].parameters(), strict=True))
        assert changed, name


def test_train_resume_export_and_generate(tmp_path: Path, weights_dir: Path) -> None:
    data = _make_data(tmp_path)
    out = tmp_path / "run"
    s1 = train(data, out, stage="objects", config_name="tiny", steps=2, batch_size=4, sample_every=1,
               save_every=0, log=False)
    assert s1["steps"] == {"objects": 2} and s1["config"]["classes"] == ["cat", "dog"]
    assert all(np.isfinite(v) for v in s1["losses"].values())
    assert (out / "samples" / "objects_000001.png").exists() and (out / "nets.safetensors").exists()
    s2 = train(data, out, stage="objects", steps=1, batch_size=4, resume=True, sample_every=0, log=False)
    assert s2["steps"] == {"objects": 3}
    s3 = train(data, out, stage="background", steps=2, batch_size=2, resume=True, sample_every=0, log=False)
    assert s3["steps"] == {"objects": 3, "background": 2}
    assert np.isfinite(s3["losses"]["bg_l1"])
    path = export(out, "eg_trained", "i2i train edgegan (test)", default=True)
    stored = split_subnets(read_safetensors(path))
    assert set(stored) == {"encoder", "edge_generator", "image_generator", "background_generator"}
    m = Manifest()
    entry = m.get("eg_trained")
    assert entry.provenance == {"kind": "trained-here", "command": "i2i train edgegan (test)"}
    assert entry.extra["default"] and entry.config["classes"] == ["cat", "dog"]
    nets = build_and_load(entry, m)
    ckpt = split_subnets(read_safetensors(out / "nets.safetensors"))
    assert torch.equal(nets["encoder"].state_dict()["stem.weight"], ckpt["encoder"]["stem.weight"])

    from engine.cli import main

    assert main(["generate", "scene", "--sketch", str(data / "scene" / "0.json"),
                 "--out", str(tmp_path / "s.png")]) == 0
    assert cv2.imread(str(tmp_path / "s.png")).shape == (64, 80, 3)
