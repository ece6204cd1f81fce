"""Hostile inputs over the engine's entry points (cases from ``cases_engine.py``), each run in a
worker subprocess that checks exit status / typed error, the message naming the input, peak RSS,
time, files created and the pickle payload marker (see ``hostile.py``)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.reliability import cases_engine as C
from tests.reliability.hostile import REPO, run_batch


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    """Hostile files under ``root/in``; outputs in ``root/out``; a weights folder (a copy of the
    repository's manifest, files linked) at ``root/w/a/weights``."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "out").mkdir()
    weights = root / "w" / "a" / "weights"
    weights.mkdir(parents=True)
    shutil.copy(REPO / "weights" / "manifest.json", weights / "manifest.json")
    for f in (REPO / "weights").glob("*.safetensors"):
        os.symlink(f, weights / f.name)
    marker = root / "PAYLOAD_RAN"
    return {"root": root, "out": root / "out", "weights": weights, "marker": marker, "inp": root / "in"}


def _run(arena, cases, env_weights: Path | None = None) -> None:
    results = run_batch(cases, root=arena["root"], allowed=[arena["out"], arena["weights"]],
                        marker=arena["marker"], env={"I2I_WEIGHTS_DIR": str(env_weights or arena["weights"])})
    bad = [f"{r['name']}: {r['reason']}" for r in results if not r["passed"]]
    slowest = max(results, key=lambda r: r.get("seconds", 0))
    print(f"{len(results)} cases, slowest {slowest['name']} {slowest.get('seconds')} s, "
          f"max peak {max(r.get('peak_mib', 0) for r in results):.0f} MiB")
    assert not bad, f"{len(bad)} of {len(results)} hostile cases failed:\n" + "\n".join(bad[:40])


def test_hostile_images(arena):
    images = C.hostile_images(arena["inp"] / "img")
    _run(arena, C.image_cases(images, arena["out"]))


def test_hostile_json(arena):
    inp = arena["inp"]
    cases = C.json_cases(C.hostile_pose_json(inp / "pose"), C.hostile_scene_json(inp / "scene"),
                         C.hostile_panoptic_json(inp / "pan"), arena["out"])
    _run(arena, cases)


def test_hostile_arguments_and_requests(arena):
    _run(arena, C.argument_cases(arena["out"]) + C.request_cases())


def test_hostile_weights_import(arena):
    ckpts = C.hostile_checkpoints(arena["inp"] / "ckpt", arena["marker"])
    _run(arena, C.weights_cases(ckpts, arena["weights"], arena["marker"]))
    assert not arena["marker"].exists()
    assert not (arena["root"] / "w" / "x.safetensors").exists()


def test_hostile_tf_checkpoints(arena):
    _run(arena, C.tf_cases(C.hostile_tf(arena["inp"] / "tf")))


def test_hostile_manifests(arena):
    _run(arena, C.manifest_cases(arena["inp"], arena["out"]))
