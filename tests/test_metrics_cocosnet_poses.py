"""CoCosNet on poses in `i2i eval` (engine.metrics.cocosnet_poses): the silhouette and garment
measures on recipe samples, and the CLI table/JSON with a tiny random deepfashion model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.data.poses import PARTS
from engine.metrics.cocosnet_poses import garment_region, measures, silhouette_iou
from engine.metrics.eval_set import POSE_LAYOUT, load_eval_set

from .helpers import recipe_dataset, register_tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def poses(tmp_path_factory) -> Path:
    return recipe_dataset(tmp_path_factory.mktemp("poses"), "poses", n=6, size=64, seed=3)


def test_the_real_photo_scores_the_ceiling_and_a_blank_wall_the_floor(poses):
    es = load_eval_set(poses, "train")
    assert es.layout == POSE_LAYOUT and len(es.cases) == 6
    real = measures([c.ground_truth for c in es.cases], es)
    assert real["silhouette_iou"] > 0.9 and real["garment_dE"] == 0.0
    assert real["garment_dE_other_outfit"] > 10  # the next sample wears another outfit
    # the wall alone: no person, and garments the wall's colour
    walls = []
    for c in es.cases:
        wall = c.ground_truth.copy()
        bg = c.inputs["parts"] == 0
        wall[~bg] = np.median(c.ground_truth[bg], axis=0).astype(np.uint8)
        walls.append(wall)
    blank = measures(walls, es)
    assert blank["silhouette_iou"] < 0.1 and blank["garment_dE_ratio"] > 0.3


def test_the_right_figure_in_the_wrong_outfit_fails_the_colour_bar(poses):
    es = load_eval_set(poses, "train")
    repainted = []
    for c in es.cases:
        img = c.ground_truth.copy()
        for g in ("top", "bottom"):
            img[garment_region(c.inputs["parts"], g)] = (255 - img[garment_region(c.inputs["parts"], g)])
        repainted.append(img)
    m = measures(repainted, es)
    assert m["silhouette_iou"] > 0.8 and m["garment_dE_ratio"] > 0.6


def test_silhouette_iou_drops_when_a_limb_is_missing(poses):
    c = load_eval_set(poses, "train").cases[0]
    parts, photo = c.inputs["parts"], c.ground_truth
    bg = np.median(photo[parts == 0], axis=0).astype(np.uint8)
    no_legs = photo.copy()
    no_legs[np.isin(parts, [PARTS.index(p) for p in PARTS if "leg" in p or "foot" in p])] = bg
    assert silhouette_iou(no_legs, parts) < silhouette_iou(photo, parts) - 0.1
    # another wall colour is still a wall: the figure is found all the same
    tinted = photo.copy()
    tinted[parts == 0] = (tinted[parts == 0] * 0.8).astype(np.uint8)
    assert silhouette_iou(tinted, parts) > 0.9


def test_cli_prints_the_pose_table_and_writes_the_json(weights_dir, poses, tmp_path, capsys):
    register_tiny(weights_dir, "cocosnet", "tiny_deepfashion", "tiny_poses")
    out = tmp_path / "report.json"
    sheet = tmp_path / "sheet.png"
    rc = main(["eval", "tiny_poses", "--data", str(poses), "--split", "train", "--backbone", "none",
               "--json", str(out), "--sheet", str(sheet)])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    for row in ("silhouette_iou", "garment_dE_ratio", "warp (model's)", "floor (untrained)", "real photos",
                "pose bars (model)"):
        assert row in printed
    section = json.loads(out.read_text())["poses"]
    assert section["samples"] == 6
    assert section["real photos"]["silhouette_iou"] > 0.9
    assert Image.open(sheet).size == (5 * 128 + 6 * 2, 6 * 128 + 7 * 2)  # 5 panels per case at 2×, padded
    # a random network does not draw the figure
    assert section["model"]["silhouette_iou"] < section["real photos"]["silhouette_iou"] - 0.3
