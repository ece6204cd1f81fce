"""Panoptic training smoke test (64², a few steps), resume, export, side-by-side evaluation and the
instance-boundary metric."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.io import save_image, save_instance_map, save_label_map
from engine.requests.base import InputError
from engine.train.panoptic import boundary_scores, evaluate, format_report

torch.set_num_threads(1)


def _make_scenes(root: Path, n: int = 4, size: int = 64) -> Path:
    """A tiny `scenes`-layout set: sky/grass stuff and two touching instances of one thing class."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(n):
            labels = np.full((size, size), 1, np.int32)
            labels[size // 2:] = 6
            top, left, w = rng.integers(8, 20), rng.integers(4, 12), rng.integers(10, 16)
            labels[top:top + 20, left:left + 2 * w] = 9
            inst = labels.copy()
            inst[top:top + 20, left:left + w] = 9001
            inst[top:top + 20, left + w:left + 2 * w] = 9002
            colours = {1: (70, 130, 180), 6: (60, 200, 60)}
            img = np.zeros((size, size, 3), np.uint8)
            for c, col in colours.items():
                img[labels == c] = col
            img[inst == 9001] = (200, 120, 40)
            img[inst == 9002] = (120, 60, 20)
            img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
            save_image(root / split / "image" / f"{i:06d}.png", img)
            save_label_map(root / split / "label" / f"{i:06d}.png", labels)
            save_instance_map(root / split / "instance" / f"{i:06d}.png", inst)
    return root


SMALL = ["--config", "panoptic_scenes", "--size", "64", "--ngf", "2", "--spade-hidden", "4", "--ndf", "4",
         "--n-layers-d", "3", "--batch", "2", "--no-vgg", "--sample-every", "2", "--save-every", "2"]


def test_train_smoke_resume_export_and_eval(tmp_path, weights_dir, capsys, monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("I2I_THREADS", "1")  # `generate` sets torch's threads; keep the suite single-threaded
    from engine.weights import Manifest

    data = _make_scenes(tmp_path / "scenes")
    run = tmp_path / "run"
    assert main(["train", "panoptic", "--data", str(data), "--steps", "2", "--out", str(run), *SMALL]) == 0
    assert (run / "latest" / "nets.safetensors").exists() and (run / "samples" / "000002.png").exists()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["mode"] == "panoptic" and cfg["crop_size"] == 64
    state = torch.load(run / "latest" / "state.pt", weights_only=True)
    assert state["step"] == 2 and set(state["optims"]) == {"G", "D"}
    assert state["optims"]["G"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # TTUR
    assert state["optims"]["D"]["param_groups"][0]["lr"] == pytest.approx(4e-4)
    capsys.readouterr()
    assert main(["train", "panoptic", "--data", str(data), "--steps", "3", "--out", str(run), "--resume",
                 "--export", "pan_run", "--default", *SMALL]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 3 and np.isfinite(list(summary["losses"].values())).all()
    entry = Manifest().get("pan_run")
    assert entry.family == "panoptic" and entry.provenance["kind"] == "trained-here" and entry.extra["default"]
    # the same budget for the semantic-only baseline, then the side-by-side evaluation
    base = tmp_path / "base"
    assert main(["train", "panoptic", "--data", str(data), "--steps", "3", "--out", str(base), "--mode", "semantic",
                 *SMALL]) == 0
    report = evaluate(data, ["pan_run", str(base)], split="val", out=tmp_path / "eval")
    assert set(report["models"]) == {"pan_run", "base"}
    assert report["models"]["base"]["mode"] == "semantic" and report["models"]["pan_run"]["mode"] == "panoptic"
    assert 0.5 < report["reference"]["instance_auc"] <= 1.0  # real images show the instance boundary
    assert (tmp_path / "eval" / "side_by_side.png").exists()
    assert "instance_auc" in format_report(report)
    capsys.readouterr()
    assert main(["eval-panoptic", "--data", str(data), "--model", "pan_run", "--baseline", str(base),
                 "--n", "2"]) == 0
    assert "boundary_auc" in capsys.readouterr().out
    # painted maps (no photos): speckle and the touching-instance sheet
    painted = tmp_path / "painted"
    (painted / "instances").mkdir(parents=True)
    for i, name in enumerate(sorted((data / "val" / "label").glob("*.png"))[:2]):
        shutil.copyfile(name, painted / f"painted_{i}.png")
        shutil.copyfile(data / "val" / "instance" / name.name, painted / "instances" / f"painted_{i}.png")
    assert main(["eval-panoptic", "--data", str(data), "--model", "pan_run", "--baseline", str(base), "--n", "2",
                 "--painted", str(painted), "--out", str(tmp_path / "ev")]) == 0
    printed = capsys.readouterr().out
    assert "speckle_per_10k" in printed and "small_offcolour" in printed and "painted maps" in printed
    painted_report = json.loads((tmp_path / "ev" / "painted.json").read_text())
    assert painted_report["n"] == 2 and set(painted_report["models"]) == {"pan_run", "base"}
    assert np.isfinite(painted_report["models"]["pan_run"]["speckle_per_10k"])
    assert (tmp_path / "ev" / "painted.png").exists() and (tmp_path / "ev" / "touching.png").exists()
    # the exported model generates
    save_label_map(tmp_path / "l.png", np.full((64, 64), 6, np.int32))
    assert main(["generate", "panoptic", "--labels", str(tmp_path / "l.png"), "--out", str(tmp_path / "o.png")]) == 0


def test_warm_start_from_another_resolution_stops_on_its_wall_time_budget(tmp_path, weights_dir, capsys):
    """Progressive resolution: a 64² run's generator starts a 32² run (SPADE's weights do not depend
    on the size); --minutes ends the run, which still saves; both are scored in one evaluation."""
    from engine.cli import main
    from engine.nets.panoptic import build
    from engine.train.panoptic import make_config, warm_start
    from engine.weights import read_safetensors, save_state_dicts, split_subnets

    data = _make_scenes(tmp_path / "scenes")
    small = tmp_path / "small"
    assert main(["train", "panoptic", "--data", str(data), "--steps", "2", "--out", str(small), *SMALL]) == 0
    config = make_config("panoptic_scenes", size=32, ngf=2, spade_hidden=4)
    netG = build(config)["netG"]
    warm_start(netG, None, config, str(small))
    trained = split_subnets(read_safetensors(small / "latest" / "nets.safetensors"))["netG_ema"]  # what ships
    assert all(torch.equal(v, trained[k]) for k, v in netG.state_dict().items())
    with pytest.raises(InputError, match="ngf"):
        warm_start(build(make_config("panoptic_scenes", size=32, ngf=3, spade_hidden=4))["netG"], None,
                   make_config("panoptic_scenes", size=32, ngf=3, spade_hidden=4), str(small))
    # other plain levels: a plain-2 run drops the source's hole encoder into level 1; a plain-0 run
    # started from that one loads every shared weight and keeps its own fresh encoder there
    plain2_cfg = make_config("panoptic_scenes", size=32, ngf=2, spade_hidden=4, plain_levels=2)
    plain2 = build(plain2_cfg)["netG"]
    warm_start(plain2, None, plain2_cfg, str(small))
    assert "ups.0.encode.weight" not in plain2.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in plain2.state_dict().items())
    plain2_run = tmp_path / "plain2"
    (plain2_run / "latest").mkdir(parents=True)
    (plain2_run / "config.json").write_text(json.dumps(plain2_cfg))
    save_state_dicts({"netG": plain2.state_dict()}, plain2_run / "latest" / "nets.safetensors")
    torch.manual_seed(7)
    full = build(config)["netG"]
    fresh = {k: v.clone() for k, v in full.state_dict().items()}
    warm_start(full, None, config, str(plain2_run))
    for k, v in full.state_dict().items():
        expected = fresh[k] if k.startswith("ups.0.encode.") else trained[k]
        assert torch.equal(v, expected), k
    big = tmp_path / "big"
    capsys.readouterr()
    args = [a if a != "64" else "32" for a in SMALL]
    assert main(["train", "panoptic", "--data", str(data), "--steps", "100000", "--minutes", "0.001",
                 "--init", str(small), "--out", str(big), *args]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] < 100000 and (big / "latest" / "nets.safetensors").exists()
    report = evaluate(data, [str(small), str(big)], split="val")
    assert report["size"] == 64 and report["models"]["big"]["generated_size"] == 32
    assert np.isfinite(report["models"]["big"]["boundary_auc"])


def test_a_panoptic_run_warm_starts_from_a_spade_model_but_a_spade_run_not_from_a_panoptic_one(tmp_path):
    """SPADE's weights load into a panoptic generator (hole encoders stay fresh); on a one-segment map
    the started generator then paints exactly what the SPADE model paints."""
    from engine.nets.panoptic import build
    from engine.train.panoptic import make_config, warm_start
    from engine.weights import save_state_dicts

    spade_cfg = make_config("panoptic_scenes", mode="semantic", size=32, ngf=2, spade_hidden=4)
    torch.manual_seed(3)
    spade = build(spade_cfg)["netG"]
    run = tmp_path / "spade"
    (run / "latest").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(spade_cfg))
    save_state_dicts({"netG": spade.state_dict()}, run / "latest" / "nets.safetensors")
    pan_cfg = make_config("panoptic_scenes", mode="panoptic", size=32, ngf=2, spade_hidden=4, plain_levels=3)
    torch.manual_seed(4)
    pan = build(pan_cfg)["netG"]
    fresh = {k: v.clone() for k, v in pan.state_dict().items()}
    warm_start(pan, None, pan_cfg, str(run))
    source = spade.state_dict()
    encoders = [k for k in fresh if ".encode." in k]
    assert encoders and all(torch.equal(pan.state_dict()[k], fresh[k]) for k in encoders)
    assert all(torch.equal(v, source[k]) for k, v in pan.state_dict().items() if k not in encoders)
    # batch statistics (train mode): with its untrained running statistics the net saturates tanh,
    # which would hide a difference; spectral norm's power step changes both nets' vectors alike
    semantic = torch.zeros(2, spade_cfg["label_nc"] + 1, 32, 32)
    semantic[0, 6] = semantic[1, 1] = 1  # one segment per map, no instance edges
    ids = torch.zeros(2, 32, 32)
    with torch.no_grad():
        out = pan.train()(semantic, ids)
        assert out.abs().max() < 0.99 and torch.allclose(out, spade.train()(semantic), atol=1e-5)
        two = semantic.clone()
        two[0, 6, :, 16:], two[0, 1, :, 16:] = 0, 1  # a second segment: there the panoptic layers differ
        ids[0, :, 16:] = 1
        assert not torch.allclose(pan(two, ids), spade(two), atol=1e-3)
    pan_run = tmp_path / "pan"
    (pan_run / "latest").mkdir(parents=True)
    (pan_run / "config.json").write_text(json.dumps(pan_cfg))
    save_state_dicts({"netG": pan.state_dict()}, pan_run / "latest" / "nets.safetensors")
    with pytest.raises(InputError, match="mode"):
        warm_start(build(spade_cfg)["netG"], None, spade_cfg, str(pan_run))


def test_ema_generator_ships_snapshots_load_and_the_lr_decays_over_the_last_minutes(tmp_path, weights_dir, capsys):
    """A run without an EMA resumes with one (started from its generator); the export and the
    run folder's generator are the EMA; snapshots load as generators; --decay-minutes takes the lr
    towards 0 at the end of the wall-time budget."""
    from engine.cli import main
    from engine.train.panoptic import load_generator
    from engine.weights import Manifest, read_safetensors, split_subnets

    data = _make_scenes(tmp_path / "scenes")
    run = tmp_path / "run"
    assert main(["train", "panoptic", "--data", str(data), "--steps", "2", "--out", str(run), "--ema-beta", "0",
                 *SMALL]) == 0
    assert "netG_ema" not in split_subnets(read_safetensors(run / "latest" / "nets.safetensors"))
    assert main(["train", "panoptic", "--data", str(data), "--steps", "4", "--out", str(run), "--resume",
                 "--ema-beta", "0.5", "--snapshot-every", "1", "--export", "pan_ema", *SMALL]) == 0
    nets = split_subnets(read_safetensors(run / "latest" / "nets.safetensors"))
    ema, raw = nets["netG_ema"], nets["netG"]
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # an average, not a copy
    exported = split_subnets(read_safetensors(Manifest().file_path(Manifest().get("pan_ema"))))["netG"]
    assert all(torch.equal(exported[k], ema[k]) for k in ema)
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["000003", "000004"]
    snap_nets, snap_config, label = load_generator(str(run / "snapshots" / "000004"), torch.device("cpu"))
    assert label == "run@000004" and snap_config["crop_size"] == 64
    assert all(torch.equal(v, ema[k]) for k, v in snap_nets["netG"].state_dict().items())
    decayed = tmp_path / "decayed"
    capsys.readouterr()
    assert main(["train", "panoptic", "--data", str(data), "--steps", "100000", "--minutes", "0.03",
                 "--decay-minutes", "1000", "--out", str(decayed), *SMALL]) == 0
    state = torch.load(decayed / "latest" / "state.pt", weights_only=True)
    assert state["step"] >= 1 and state["optims"]["G"]["param_groups"][0]["lr"] < 1e-4 * 1e-3


def test_boundary_scores_detect_instance_edges():
    labels = np.full((32, 32), 9, np.int32)
    inst = np.where(np.arange(32)[None, :] < 16, 9001, 9002).repeat(32, 0).astype(np.int32)
    split = np.zeros((32, 32, 3), np.uint8)
    split[:, 16:] = 200  # an image that separates the two instances
    blended = np.full((32, 32, 3), 100, np.uint8)
    blended += (np.arange(32) % 3).astype(np.uint8)[None, :, None] * 5  # texture only, no boundary
    good, bad = boundary_scores(split, labels, inst), boundary_scores(blended, labels, inst)
    assert good["instance_auc"] == pytest.approx(1.0) and good["instance_acc"] == pytest.approx(1.0)
    assert bad["instance_auc"] < 0.75 and bad["instance_acc"] < 0.5
    assert np.isnan(boundary_scores(split, labels, None)["instance_auc"])  # no instances: undefined


def test_train_under_torchrun_ddp(tmp_path):
    """Two CPU ranks (gloo): DDP-wrapped G and D, sharded sampler, one summary from rank 0."""
    import os
    import signal
    import subprocess
    import sys

    data = _make_scenes(tmp_path / "scenes", n=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "engine.cli", "train", "panoptic", "--data", str(data), "--steps", "1", "--out", str(tmp_path / "run"),
           "--device", "cpu", *SMALL]
    # own session, so a hang kills the launcher AND its worker ranks (not just the launcher)
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-2000:]
    assert stdout.count('"steps": 1') == 1
    assert (tmp_path / "run" / "latest" / "nets.safetensors").exists()
