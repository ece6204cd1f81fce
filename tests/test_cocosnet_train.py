"""CoCosNet training: dataset / exemplar sampling, loss pieces, a 64² smoke run with resume."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.families import get_family
from engine.requests.base import InputError
from engine.train import cocosnet as T

torch.set_num_threads(1)
SIZE, NC = 64, 8  # tiny_ade20k: 8 classes


def _scenes(root: Path, n: int = 4, size: int = SIZE) -> Path:
    """A scenes-layout folder: random rectangles of classes 1..7, the photo colours them, the
    exemplar is the same layout in inverted colours."""
    rng = np.random.default_rng(0)
    for d in ("image", "label", "exemplar"):
        (root / "train" / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        lab = np.zeros((size, size), np.uint8)
        for _ in range(4):
            x0, y0 = rng.integers(0, size - 8, 2)
            w, h = rng.integers(8, size // 2, 2)
            lab[y0:y0 + h, x0:x0 + w] = rng.integers(1, NC)
        colors = rng.integers(0, 255, (NC, 3)).astype(np.uint8)
        Image.fromarray(lab).save(root / "train" / "label" / f"{i:03d}.png")
        Image.fromarray(colors[lab]).save(root / "train" / "image" / f"{i:03d}.png")
        Image.fromarray(255 - colors[lab]).save(root / "train" / "exemplar" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return _scenes(tmp_path_factory.mktemp("scenes"))


def _pairs(root: Path, **kw) -> T.CocosnetPairs:
    kw.setdefault("flip", False)
    return T.CocosnetPairs(root / "train", "scenes", SIZE, T.onehot_label_encoder(NC), load_size=SIZE, **kw)


def test_exemplar_sampling_paths(scenes):
    img0 = torch.from_numpy(np.asarray(Image.open(scenes / "train/image/000.png"), np.float32))
    img0 = img0.permute(2, 0, 1) / 127.5 - 1
    # self-reference: the image itself (no crop margin, no flip here -> identical)
    item = _pairs(scenes, real_reference_probability=0.0)[0]
    assert float(item["self_ref"]) == 1.0
    assert torch.allclose(item["exemplar"], item["image"])
    assert torch.allclose(item["image"], img0, atol=1e-5)
    assert torch.equal(item["exemplar_semantics"], item["semantics"])
    assert item["semantics"].shape == (NC, SIZE, SIZE) and torch.all(item["semantics"].sum(0) == 1)
    # easy reference: the rendered exemplar pair with the sample's own label map
    item = _pairs(scenes, real_reference_probability=1.0, hard_reference_probability=0.0)[0]
    assert float(item["self_ref"]) == 0.0
    assert torch.allclose(item["exemplar"], -item["image"], atol=0.01)  # inverted colours
    # hard reference: another sample's photo and semantics
    item = _pairs(scenes, real_reference_probability=1.0, hard_reference_probability=1.0)[0]
    assert float(item["self_ref"]) == 0.0
    assert not torch.equal(item["exemplar_semantics"], item["semantics"])
    # the official 286/256 load-then-crop keeps sizes; the crop differs between image and exemplar
    ds = T.CocosnetPairs(scenes / "train", "scenes", SIZE, T.onehot_label_encoder(NC), real_reference_probability=0.0)
    assert ds.load_size == round(SIZE * 286 / 256)
    shapes = {tuple(v.shape) for k, v in ds[1].items() if k != "self_ref"}
    assert shapes == {(3, SIZE, SIZE), (NC, SIZE, SIZE)}


def test_dataset_errors_are_clear(tmp_path, scenes):
    with pytest.raises(InputError, match="does not exist"):
        T.CocosnetPairs(tmp_path / "nope", "scenes", SIZE, T.onehot_label_encoder(NC))
    ds = T.CocosnetPairs(scenes / "train", "scenes", SIZE, T.onehot_label_encoder(3))
    with pytest.raises(InputError, match="takes 3 classes"):
        ds[0]


def test_mask_nll_ignores_absent_classes_and_class_zero():
    sem = torch.zeros(1, 3, 4, 4)
    sem[0, 1, :2] = 1  # top half class 1
    sem[0, 2, 2:] = 1  # bottom half class 2
    ref = torch.zeros(1, 3, 4, 4)
    ref[0, 1] = 1      # the exemplar only has class 1 -> class-2 pixels carry no weight
    warp = torch.full((1, 3, 4, 4), 0.25)
    warp[0, 1] = 0.5
    assert abs(float(T.mask_nll(warp, sem, ref)) - (-np.log(0.5))) < 1e-4
    sem0 = torch.zeros(1, 3, 4, 4)
    sem0[0, 0] = 1     # only "other": nothing counts
    assert float(T.mask_nll(warp, sem0, ref)) == 0.0


def _batch(ds: T.CocosnetPairs, n: int) -> dict[str, torch.Tensor]:
    items = [ds[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def test_trainer_step_all_losses_finite_and_weights_change(scenes):
    from engine.metrics.features import build_features

    torch.manual_seed(0)
    nets = get_family("cocosnet").build(get_family("cocosnet").configs["tiny_ade20k"])
    feats = build_features("mobilenet_v2", random_init=True)
    terms = T.FeatureTerms(feats, feats.name, list(feats.layers))
    trainer = T.CocosnetTrainer(nets, T.PRESETS["ade20k"], features=terms)
    ds = _pairs(scenes, real_reference_probability=0.5, seed=3)
    batch = _batch(ds, 2)
    batch["self_ref"] = torch.tensor([1.0, 0.0])
    before = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in nets.items()}
    losses, out = trainer.step(batch)
    assert {"align", "mask", "gan", "feat", "fm", "perc", "ctx", "d_fake", "d_real"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert losses["ctx"] > 0 and losses["fm"] > 0
    assert out["fake_image"].shape == (2, 3, SIZE, SIZE) and out["warp_out"].shape == (2, 3, SIZE, SIZE)
    for k, m in nets.items():
        # netD's segmentation head ``dec`` is stored in checkpoints but unused in training; the
        # attention projections get gradient only once their γ (initialised 0) has moved; the logit
        # bias has zero hinge gradient while every real and fake logit lies inside the margin
        used = [(n, p) for n, p in m.named_parameters()
                if ".dec." not in n and not re.search(r"attn\.(theta|phi|g|o)\.|model4\.0\.bias", n)]
        still = [n for n, p in used if torch.equal(p.detach(), before[k][n])]
        assert not still, f"{k}: parameters that did not move: {still}"


def test_warp_cycle_and_warp_self_presets(scenes):
    torch.manual_seed(0)
    fam = get_family("cocosnet")
    nets = fam.build(dict(fam.configs["tiny_celebahqedge"], semantic_nc=NC))
    ds = _pairs(scenes, real_reference_probability=0.0)
    batch = _batch(ds, 2)
    preset = T.LossPreset(layout="scenes", warp_cycle_w=1.0, warp_self_w=100.0)
    losses, _ = T.CocosnetTrainer(nets, preset).step(batch)
    assert np.isfinite(losses["cycle"]) and np.isfinite(losses["warp_self"])
    assert "mask" not in losses  # celebahqedge warps no mask


def test_paired_l1_start_only_where_asked_and_only_on_paired_samples(scenes):
    torch.manual_seed(0)
    fam = get_family("cocosnet")
    nets = fam.build(fam.configs["tiny_ade20k"])
    batch = _batch(_pairs(scenes, real_reference_probability=0.0), 2)  # every sample its own exemplar: paired
    trainer = T.CocosnetTrainer(nets, T.LossPreset(layout="scenes", l1_paired=10.0))
    losses, out = trainer.generator_losses(batch)
    expected = (out["fake_image"] - batch["image"]).abs().mean() * 10.0 / 2  # weights 1/2 each, mean over N too
    assert torch.allclose(losses["l1"], expected, rtol=1e-4)
    unpaired = dict(batch, self_ref=torch.zeros(2))
    assert trainer.generator_losses(unpaired)[0]["l1"].item() == 0.0
    assert "l1" not in T.CocosnetTrainer(nets, T.PRESETS["ade20k"]).generator_losses(batch)[0]  # off in presets


def test_reconstruction_only_start_leaves_the_discriminator_alone(scenes):
    torch.manual_seed(0)
    fam = get_family("cocosnet")
    nets = fam.build(fam.configs["tiny_ade20k"])
    batch = _batch(_pairs(scenes, real_reference_probability=0.0), 2)
    preset = T.LossPreset(layout="scenes", l1_paired=10.0, weight_gan=0.0, lambda_feat=0.0)
    trainer = T.CocosnetTrainer(nets, preset, g_eps=1e-8)
    assert trainer.opt_g.param_groups[0]["eps"] == 1e-8
    d_before = [p.detach().clone() for p in nets["netD"].parameters()]
    g_before = [p.detach().clone() for p in nets["netG"].parameters()]
    losses, _ = trainer.step(batch)
    assert not {"gan", "feat", "d_fake", "d_real"} & set(losses) and losses["l1"] > 0
    assert all(torch.equal(a, b) for a, b in zip(d_before, nets["netD"].parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(g_before, nets["netG"].parameters(), strict=True))


def test_lr_schedule_ttur():
    fam = get_family("cocosnet")
    trainer = T.CocosnetTrainer(fam.build(fam.configs["tiny_ade20k"]), T.PRESETS["ade20k"], lr=2e-4)
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert trainer.opt_g.param_groups[0]["betas"] == (0.0, 0.9)
    assert trainer.opt_g.param_groups[0]["eps"] == pytest.approx(1e-3)
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    trainer.set_lr_factor(0.25)
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_cli_smoke_resume_and_export(scenes, tmp_path, weights_dir, capsys):
    from engine.cli import main
    from engine.train.common import load_checkpoint
    from engine.weights import Manifest

    run = tmp_path / "run"
    args = ["train", "cocosnet", "--config", "tiny_ade20k", "--data", str(scenes), "--out", str(run),
            "--batch-size", "2", "--sample-every", "1", "--save-every", "2", "--threads", "1"]
    assert main(args + ["--iters", "2"]) == 0
    err = capsys.readouterr().err
    assert "WITHOUT the VGG-based losses" in err  # empty weights folder: no feature extractor
    assert (run / "latest" / "nets.safetensors").exists() and (run / "samples" / "0000002.png").exists()
    fam = get_family("cocosnet")
    first = fam.build(fam.configs["tiny_ade20k"])
    assert load_checkpoint(run / "latest", first)[0] == 2

    assert main(args + ["--iters", "3", "--resume", "--export", "cocosnet_smoke", "--default"]) == 0
    captured = capsys.readouterr()
    assert "resumed from" in captured.err and "at step 2" in captured.err
    assert captured.out.startswith("step 3")
    second = fam.build(fam.configs["tiny_ade20k"])
    assert load_checkpoint(run / "latest", second)[0] == 3
    w1 = dict(first["netG"].named_parameters())
    assert any(not torch.equal(p, w1[n]) for n, p in second["netG"].named_parameters())

    entry = Manifest().get("cocosnet_smoke")
    assert entry.provenance["kind"] == "trained-here" and entry.extra.get("default") is True
    assert "train cocosnet" in entry.provenance["command"]
    assert json.loads(json.dumps(entry.config))["semantic_nc"] == NC
    assert main(args + ["--iters", "1", "--resume", "--out", str(tmp_path / "empty")]) == 2
    assert "--resume: no checkpoint in" in capsys.readouterr().err


def _faces(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(1)
    for d in ("female", "male", "parsing"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        parsing = np.zeros((SIZE, SIZE), np.uint8)
        parsing[8:56, 12:52] = 1                       # skin
        parsing[20:26, 18:28] = 5                      # an eye
        parsing[40:46, 24:40] = 12                     # a lip
        photo = rng.integers(0, 255, (NC * 3, 3)).astype(np.uint8)[parsing]
        Image.fromarray(parsing).save(root / "parsing" / f"{i}.png")
        Image.fromarray(photo).save(root / ("female" if i % 2 else "male") / f"{i}.png")
    return root


def _poses(root: Path, n: int = 2) -> Path:
    from engine.io import save_openpose_json

    rng = np.random.default_rng(2)
    for d in ("image", "pose", "exemplar", "exemplar_pose"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        for img_dir, pose_dir in (("image", "pose"), ("exemplar", "exemplar_pose")):
            kp = np.concatenate([rng.uniform(8, SIZE - 8, (18, 2)), np.ones((18, 1))], 1)
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3)).astype(np.uint8)).save(root / img_dir / f"{i}.png")
            save_openpose_json(root / pose_dir / f"{i}.json", kp, (SIZE, SIZE))
    return root


@pytest.mark.parametrize("config", ["tiny_celebahq", "tiny_celebahqedge", "tiny_deepfashion"])
def test_faces_and_poses_layouts_train_one_step(tmp_path, config):
    fam = get_family("cocosnet")
    cfg = fam.configs[config]
    preset = T.PRESETS[T.preset_for(config.removeprefix("tiny_"))]
    root = _poses(tmp_path) if preset.layout == "poses" else _faces(tmp_path)
    ds = T.CocosnetPairs(root, preset.layout, SIZE, T.make_encoder(cfg), flip=preset.flip,
                         real_reference_probability=preset.real_reference_probability, seed=1)
    batch = _batch(ds, 2)
    assert batch["semantics"].shape == (2, cfg["semantic_nc"], SIZE, SIZE)
    torch.manual_seed(0)
    losses, out = T.CocosnetTrainer(fam.build(cfg), preset).step(batch)
    assert all(np.isfinite(v) for v in losses.values()), losses
    expected = {"tiny_celebahq": {"mask", "cycle"}, "tiny_celebahqedge": {"cycle"},
                "tiny_deepfashion": {"warp_self"}}[config]
    assert expected <= set(losses)
    if preset.layout == "poses":  # always the same-outfit other view, flagged self-reference
        assert torch.all(batch["self_ref"] == 1)
        assert not torch.equal(batch["exemplar"], batch["image"])


def test_unsupported_and_bad_options_fail_clearly(scenes, tmp_path):
    base = dict(config="tiny_ade20k", data=scenes, out=tmp_path / "run", iters=1, batch_size=2)
    with pytest.raises(InputError, match="noise_for_mask"):
        T.train(T.TrainOptions(**base, overrides={"noise_for_mask": True}))
    with pytest.raises(InputError, match="multiple of 32"):
        T.train(T.TrainOptions(**base, size=48))
    with pytest.raises(InputError, match="not a scenes data folder"):
        T.train(T.TrainOptions(**dict(base, data=tmp_path)))
    with pytest.raises(InputError, match="unknown loss setting"):
        T.train(T.TrainOptions(**base, loss_overrides={"bogus_weight": 1.0}))


def test_wall_time_budget_checkpoints_exports_and_decays_the_lr(scenes, tmp_path, weights_dir, monkeypatch):
    """--minutes stops the run (checkpoint and export at the step reached, not at --iters); with
    --decay-minutes the lr factor falls to 0 over the budget's last minutes; --workers loads in
    worker processes, each with its own crops and exemplar draws."""
    from engine.cli import main
    from engine.weights import Manifest

    factors: list[float] = []
    real_set = T.CocosnetTrainer.set_lr_factor
    monkeypatch.setattr(T.CocosnetTrainer, "set_lr_factor",
                        lambda self, f: (factors.append(f), real_set(self, f))[1])
    clock = iter(float(t) for t in range(0, 10_000, 30))  # every reading of the clock: 30 s later
    monkeypatch.setattr(T, "_clock", lambda: next(clock))
    run = tmp_path / "run"
    assert main(["train", "cocosnet", "--config", "tiny_ade20k", "--data", str(scenes), "--out", str(run),
                 "--batch-size", "2", "--iters", "1000", "--minutes", "3", "--decay-minutes", "2",
                 "--save-every", "100", "--sample-every", "100", "--threads", "1", "--workers", "2",
                 "--export", "cocosnet_budget"]) == 0
    steps = len(factors)
    assert 3 <= steps < 10  # stopped by the 3-minute budget long before 1000 iterations
    assert factors[0] == 1.0 and factors[-1] < 0.5 and factors == sorted(factors, reverse=True)
    assert (run / "latest" / "nets.safetensors").exists()
    entry = Manifest().get("cocosnet_budget")
    assert entry.extra["iterations"] == steps and f"{steps} iterations" in entry.description


def test_loader_workers_draw_their_own_crops(scenes):
    """Two worker processes must not repeat each other's random crops and exemplar choices."""
    from torch.utils.data import DataLoader

    ds = T.CocosnetPairs(scenes / "train", "scenes", 48, T.onehot_label_encoder(NC), load_size=SIZE, seed=3)
    batches = list(DataLoader(ds, batch_size=1, num_workers=2, sampler=[0, 0, 0, 0]))
    crops = [b["image"] for b in batches]
    assert any(not torch.equal(crops[0], c) for c in crops[1:])


def test_init_warm_starts_netg_and_netcorr_from_exported_weights(scenes, tmp_path, weights_dir):
    from engine.cli import main
    from engine.weights import Manifest, read_safetensors, split_subnets

    base = ["train", "cocosnet", "--config", "tiny_ade20k", "--data", str(scenes), "--batch-size", "2",
            "--sample-every", "100", "--save-every", "100", "--threads", "1"]
    assert main(base + ["--out", str(tmp_path / "a"), "--iters", "1", "--export", "first"]) == 0
    # zero iterations from the warm start: what is exported is what was loaded
    assert main(base + ["--out", str(tmp_path / "b"), "--iters", "0", "--init", "first", "--seed", "5",
                        "--export", "second"]) == 0
    m = Manifest()
    first, second = (split_subnets(read_safetensors(m.root / m.get(n).file)) for n in ("first", "second"))
    for net in ("netG", "netCorr"):
        assert first[net].keys() == second[net].keys()
        assert all(torch.equal(first[net][p], second[net][p]) for p in first[net]), net
    assert main(base + ["--out", str(tmp_path / "c"), "--iters", "0", "--export", "fresh", "--seed", "5"]) == 0
    fresh = split_subnets(read_safetensors(Manifest().root / Manifest().get("fresh").file))
    assert any(not torch.equal(first["netG"][p], fresh["netG"][p]) for p in first["netG"])  # --init mattered
    assert main(base + ["--out", str(tmp_path / "d"), "--iters", "1", "--init", "nowhere"]) == 2


def test_export_records_the_pose_canvas_of_a_pose_model(weights_dir):
    from engine.weights import Manifest

    fam = get_family("cocosnet")
    for config_name, expected in (("tiny_deepfashion", [64, 64]), ("tiny_ade20k", None)):
        config = dict(fam.configs[config_name])
        opts = T.TrainOptions(config=config_name, data=Path("unused"), out=Path("unused"), export=f"x_{config_name}")
        T.export_weights(fam.build(config), config, opts, "p", 1)
        assert Manifest().get(f"x_{config_name}").config.get("pose_canvas") == expected
