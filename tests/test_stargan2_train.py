"""StarGAN v2 trainer smoke test: a few iterations at 32² on generated images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.requests.base import InputError
from engine.train.stargan2 import StarGAN2Trainer, TrainOptions, ds_weight, find_domains


def _make_data(root: Path, n: int = 4) -> Path:
    """Two domains of generated pictures (dark/bright blobs), plus an annotation folder to ignore."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40]
    for domain, base in (("female", 60), ("male", 190)):
        (root / domain).mkdir(parents=True)
        for i in range(n):
            cy, cx = rng.integers(10, 30, 2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)[..., None]
            img = np.clip(base + 60 * blob * rng.normal(1, 0.2, 3) + rng.normal(0, 8, (40, 40, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / domain / f"{domain}{i}.png")
    (root / "parsing").mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "parsing" / "x.png")
    return root


def _options(data: Path, out: Path, iters: int, resume: bool = False) -> TrainOptions:
    return TrainOptions(data=data, out=out, config="tiny", iters=iters, batch_size=2, lr=1e-3, f_lr=1e-4,
                        ds_iter=10, sample_every=2, save_every=0, resume=resume, seed=1)


def test_train_resume_and_export(tmp_path: Path, weights_dir: Path) -> None:
    from engine.train.stargan2 import export_to_weights
    from engine.weights import Manifest, build_and_load

    _make_data(tmp_path / "faces" / "train")
    out = tmp_path / "run"
    trainer = StarGAN2Trainer(_options(tmp_path / "faces", out, iters=2))
    assert trainer.domains == ["female", "male"]  # annotation folder ignored
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in trainer.nets.items()}
    ema_before = [p.clone() for p in trainer.ema["generator"].parameters()]
    losses = trainer.train_step()
    assert all(np.isfinite(v) for v in losses.values())
    for key in ("D_latent_adv", "D_latent_reg", "D_ref_adv", "G_latent_adv", "G_latent_sty", "G_latent_ds",
                "G_latent_cyc", "G_ref_cyc"):
        assert key in losses
    for k, m in trainer.nets.items():  # every trained network moved
        assert any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters(), strict=True)), k
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, trainer.ema["generator"].parameters(), strict=True))
    trainer.fit()
    assert trainer.step == 2
    assert (out / "latest" / "nets.safetensors").exists() and (out / "stargan2_ema.safetensors").exists()
    assert (out / "samples" / "000002.png").exists()
    grid = np.asarray(Image.open(out / "samples" / "000002.png"))
    assert grid.shape[0] == 5 * 34 + 2  # sources, references, reference-guided, one latent row per domain

    resumed = StarGAN2Trainer(_options(tmp_path / "faces", out, iters=3, resume=True))
    assert resumed.step == 2
    for a, b in zip(trainer.nets["generator"].parameters(), resumed.nets["generator"].parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.optims["generator"].state_dict()["state"]  # Adam moments restored
    resumed.fit()
    assert resumed.step == 3

    export_to_weights(resumed, "sg_smoke", default=True, command="i2i train stargan2 --config tiny")
    m = Manifest()
    entry = m.get("sg_smoke")
    assert entry.extra["default"] and entry.provenance["kind"] == "trained-here"
    assert entry.config["domains"] == ["female", "male"]
    nets = build_and_load(entry, m)
    assert torch.equal(nets["generator"].from_rgb.weight, resumed.ema["generator"].from_rgb.weight)


def test_lazy_r1_applies_the_penalty_every_n_steps_weighted_by_n(tmp_path: Path) -> None:
    """--r1-every N: steps 0, N, 2N carry N × the penalty; the others compute none (no double backward)."""
    from engine.train.stargan2 import compute_d_loss

    _make_data(tmp_path / "faces" / "train")
    opt = _options(tmp_path / "faces", tmp_path / "run", iters=4)
    opt.r1_every = 2
    trainer = StarGAN2Trainer(opt)
    regs = [trainer.train_step()["D_latent_reg"] for _ in range(4)]
    assert regs[0] > 0 and regs[2] > 0 and regs[1] == 0 and regs[3] == 0
    x, y = next(trainer.src_iter)
    z = torch.randn(x.size(0), trainer.args["latent_dim"])
    full, parts = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=1.0)
    lazy, _ = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=2.0)
    off, off_parts = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=0.0)
    full, lazy, off = (loss.item() for loss in (full, lazy, off))
    assert lazy - off == pytest.approx(2 * (full - off), rel=1e-4)
    assert full - off == pytest.approx(opt.lambda_reg * parts["reg"], rel=1e-4) and off_parts["reg"] == 0


def test_cli_trains_and_registers(tmp_path: Path, weights_dir: Path) -> None:
    from engine.cli import main
    from engine.weights import Manifest

    data = _make_data(tmp_path / "d")
    assert main(["train", "stargan2", "--data", str(data), "--config", "tiny", "--iters", "1", "--batch-size", "2",
                 "--out", str(tmp_path / "run"), "--export", "sg_cli", "--default"]) == 0
    entry = Manifest().get("sg_cli")
    assert entry.provenance["command"].startswith("i2i train stargan2 --data ")
    assert "--export sg_cli --default" in entry.provenance["command"]


def test_diversity_weight_decays_linearly() -> None:
    opt = TrainOptions(data=Path("."), lambda_ds=2.0, ds_iter=100)
    assert ds_weight(opt, 0) == 2.0
    assert ds_weight(opt, 50) == pytest.approx(1.0)
    assert ds_weight(opt, 100) == 0.0 and ds_weight(opt, 500) == 0.0


def test_data_errors_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "only" / "a.png")
    with pytest.raises(InputError, match="two domain folders"):
        find_domains(tmp_path)
    with pytest.raises(InputError, match="missing"):
        find_domains(tmp_path, ["only", "missing"])


def _first_run_exported(tmp_path: Path) -> tuple[StarGAN2Trainer, Path]:
    """One iteration on generated faces, its EMA nets exported (what --init takes)."""
    _make_data(tmp_path / "faces" / "train")
    first = StarGAN2Trainer(_options(tmp_path / "faces", tmp_path / "a", iters=1))
    first.fit()
    return first, first.export(tmp_path / "exported.safetensors")


def _assert_g_e_f_as_exported(first: StarGAN2Trainer, warm: StarGAN2Trainer) -> None:
    """G, E, F and their EMA copies in ``warm`` equal ``first``'s exported EMA nets."""
    for k in ("generator", "mapping_network", "style_encoder"):
        for group in (warm.nets, warm.ema):
            for a, b in zip(first.ema[k].parameters(), group[k].parameters(), strict=True):
                assert torch.equal(a, b), k


def test_init_warm_starts_g_e_f_and_their_ema_and_d_where_the_file_has_one(tmp_path: Path) -> None:
    from engine.weights import read_safetensors, split_subnets

    first, exported = _first_run_exported(tmp_path)
    opts = _options(tmp_path / "faces", tmp_path / "b", iters=1)
    opts.init, opts.seed = str(exported), 99
    warm = StarGAN2Trainer(opts)
    _assert_g_e_f_as_exported(first, warm)
    assert any(not torch.equal(a, b) for a, b in zip(first.nets["discriminator"].parameters(),
                                                    warm.nets["discriminator"].parameters(), strict=True))
    assert warm.step == 0
    from engine.weights import save_state_dicts

    with_d = split_subnets(read_safetensors(exported))
    with_d["discriminator"] = first.nets["discriminator"].state_dict()
    save_state_dicts(with_d, tmp_path / "with_d.safetensors")
    opts.init = str(tmp_path / "with_d.safetensors")
    warm_d = StarGAN2Trainer(opts)
    for a, b in zip(first.nets["discriminator"].parameters(), warm_d.nets["discriminator"].parameters(), strict=True):
        assert torch.equal(a, b)
    state = split_subnets(read_safetensors(exported))
    del state["style_encoder"]
    save_state_dicts(state, tmp_path / "partial.safetensors")
    opts.init = str(tmp_path / "partial.safetensors")
    with pytest.raises(InputError, match="no style_encoder"):
        StarGAN2Trainer(opts)


def test_loader_workers_and_epochs_draw_their_own_reference_pairs(tmp_path: Path) -> None:
    """Each loader worker (a copy of the dataset) and each epoch picks its own second reference: they
    used to replay one random sequence, the same picks at the same positions in every worker and epoch."""
    from engine.train.common import infinite_loader
    from engine.train.stargan2 import DomainImages

    folder = tmp_path / "one"
    folder.mkdir()
    for i in range(12):  # image i is flat grey level 10 * i: a picked reference names itself
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(folder / f"{i:02d}.png")
    data = DomainImages(tmp_path, ["one"], 8, pairs=True, augment=False, seed=0)
    batches = infinite_loader(data, 1, shuffle=False, num_workers=2, seed=0)
    picks = [round((float(next(batches)[1].mean()) + 1) * 127.5 / 10) for _ in range(24)]
    first, second = picks[:12], picks[12:]
    assert first != second                        # epochs
    assert first[0::2] != first[1::2]             # worker 0 (items 0, 2, …) vs worker 1 (items 1, 3, …)
    assert all(0 <= p < 12 for p in picks)


def test_d_only_trains_the_discriminator_against_the_given_networks(tmp_path: Path) -> None:
    """A D warm-up: the discriminator learns, G, E, F and their EMA stay exactly as loaded."""
    first, exported = _first_run_exported(tmp_path)
    opts = _options(tmp_path / "faces", tmp_path / "b", iters=3)
    opts.init, opts.d_only = str(exported), True
    warm = StarGAN2Trainer(opts)
    d_before = [p.detach().clone() for p in warm.nets["discriminator"].parameters()]
    warm.fit()
    assert warm.step == 3
    _assert_g_e_f_as_exported(first, warm)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, warm.nets["discriminator"].parameters(), strict=True))
    opts.init = ""
    with pytest.raises(InputError, match="--d-only"):
        StarGAN2Trainer(opts)
