"""``i2i bench``: the same-run comparison is the default, other benchmarks by name; the studio
latency bookkeeping. (No test times anything: timings live in bench/results.)"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engine.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_studio import edit_latencies, percentile


def test_bench_list_names_the_speed_comparison(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "speed" in out and "studio" in out


def test_unknown_benchmark_is_one_plain_error(capsys):
    assert main(["bench", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no benchmark 'nosuch'" in err and "speed" in err


def test_an_edit_is_shown_by_the_first_newer_request():
    edits = [(0.0, 0), (0.1, 1), (0.2, 1), (0.3, 3)]
    shown = [(0.05, 0),   # older request: does not show any edit
             (0.25, 1),   # shows the first edit (submitted as request 1)
             (0.6, 3),    # shows the held edits 2 and 3 (merged into request 3)
             (0.9, 4)]    # shows the last edit
    assert edit_latencies(edits, shown) == [0.25, 0.6 - 0.1, 0.6 - 0.2, 0.9 - 0.3]
    assert edit_latencies([(1.0, 9)], shown) == []  # never shown: left out


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([7.0], 95) == 7.0


def test_pose_drag_case_runs_both_sides_on_the_registered_pose_model(weights_dir, monkeypatch):
    from bench import bench_speed
    from bench.bench_speed import pose_live_case
    from engine.tasks import ModelStore

    # the case's logic, not inductor: our side stays eager (the bench itself compiles)
    monkeypatch.setattr(bench_speed, "store", lambda manifest, device=None: ModelStore(manifest=manifest,
                                                                                        compile="off"))
    from .helpers import register_tiny

    assert pose_live_case() == []  # no pose model registered: no case
    register_tiny(weights_dir, "cocosnet", "tiny_deepfashion", "coco_pose")
    (case,) = pose_live_case()
    assert case.name == "cocosnet_pose_coco_pose_drag" and case.size == 64
    eager, ours = case.eager(1), case.ours(1)
    assert tuple(eager.shape) == (1, 3, 64, 64)
    assert ours.shape[2] == 3 and ours.dtype.name == "uint8"
    assert not np.array_equal(case.ours(1), case.ours(2))  # each call drags the wrist elsewhere


def test_makeup_case_runs_the_same_blend_on_both_sides(weights_dir, monkeypatch):
    from bench import bench_speed
    from bench.bench_speed import makeup_live_case
    from engine.tasks import ModelStore, to_uint8_image

    monkeypatch.setattr(bench_speed, "store", lambda manifest, device=None: ModelStore(manifest=manifest,
                                                                                        compile="off"))
    from .helpers import register_tiny

    assert makeup_live_case() == []  # no face model registered: no case
    register_tiny(weights_dir, "cocosnet", "tiny_celebahqedge", "coco_face")
    (case,) = makeup_live_case()
    assert case.name == "cocosnet_makeup_coco_face_new_exemplar"
    eager, ours = to_uint8_image(case.eager(1)), case.ours(1)
    assert eager.shape == ours.shape == (64, 64, 3)
    # both sides are the whole makeup result (generator + region blend), equal up to float rounding
    assert np.abs(eager.astype(int) - ours.astype(int)).max() <= 2


def test_panoptic_models_bench_runs_each_model_at_preview_and_native_size(weights_dir):
    from bench.bench_panoptic import model_rows

    from .helpers import register_tiny

    register_tiny(weights_dir, "panoptic", "panoptic_tiny", "pan_t", crop_size=64)
    register_tiny(weights_dir, "panoptic", "spade_tiny", "spade_t", crop_size=64)
    labels = np.zeros((64, 64), np.int32)
    labels[32:], labels[10:30, 10:30] = 1, 2
    inst = labels.copy()
    inst[10:30, 20:30] = 2001  # two touching instances of class 2
    rows = model_rows(["pan_t", "spade_t"], labels, inst, preview=32, calls=2)
    assert [(r["model"], r["size"]) for r in rows] == [("pan_t", "32²"), ("pan_t", "64²"),
                                                       ("spade_t", "32²"), ("spade_t", "64²")]
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in rows)
