"""StarGAN v2 trainer smoke test: a few iterations at 32² on generated images."""
from __future__ import annotations

import zipfile
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
    assert all(np.isfinite(float(v)) for v in losses.values())
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


def test_a_non_finite_loss_stops_training_before_anything_is_written(tmp_path: Path) -> None:
    """Losses are read every few iterations, but a NaN still stops the run, naming its iteration, before
    a checkpoint or sample grid holds what it left."""
    _make_data(tmp_path / "faces" / "train")
    opt = _options(tmp_path / "faces", tmp_path / "run", iters=30)
    opt.save_every, opt.sample_every = 5, 5
    trainer = StarGAN2Trainer(opt)
    for _ in range(3):
        trainer.train_step()
    with torch.no_grad():
        trainer.nets["discriminator"].main[0].weight.fill_(float("nan"))  # D's loss goes NaN from iteration 3
    with pytest.raises(FloatingPointError, match="iteration 3: non-finite losses"):
        trainer.fit()
    assert trainer.step == 5  # read at the first save step, then stopped
    assert not (tmp_path / "run" / "latest").exists() and not (tmp_path / "run" / "samples").exists()


def test_diff_augment_shifts_cuts_and_recolours_differentiably() -> None:
    """What D sees under --d-augment: translation moves each image by at most 1/8 of its side with zero fill,
    cutout zeroes one half-side square, colour changes values; gradients reach the input."""
    from engine.train.stargan2 import diff_augment

    torch.manual_seed(0)
    x = torch.rand(16, 3, 32, 32) + 1.0  # all positive: a zero is fill or cutout, never an image value
    moved = diff_augment(x, ("translation",))
    for k in range(16):
        shifts = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                  if torch.equal(moved[k], _shifted(x[k], dy, dx))]
        assert len(shifts) == 1, k
    assert any(_shifted(x[k], 0, 0).ne(moved[k]).any() for k in range(16))  # not all left in place
    cut = diff_augment(x, ("cutout",))
    zeros = (cut == 0).all(dim=1)  # per image, the zeroed pixels
    for k in range(16):
        rows, cols = torch.nonzero(zeros[k], as_tuple=True)
        assert 0 < len(rows) <= 16 * 16 and torch.equal(cut[k][:, ~zeros[k]], x[k][:, ~zeros[k]])
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # one rectangle
    assert (zeros.sum(dim=(1, 2)) == 256).any()  # a whole 16×16 square where it lies inside
    coloured = diff_augment(x, ("color",))
    assert not torch.allclose(coloured, x)
    x.requires_grad_(True)
    diff_augment(x, ("color", "translation", "cutout")).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img moved down by dy and right by dx, zero where nothing moved in."""
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        img[:, max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
    return out


def test_training_with_d_augment_and_a_wrong_policy(tmp_path: Path) -> None:
    _make_data(tmp_path / "faces" / "train")
    opt = _options(tmp_path / "faces", tmp_path / "run", iters=2)
    opt.d_augment = "color,translation,cutout"
    trainer = StarGAN2Trainer(opt)
    before = [p.detach().clone() for p in trainer.nets["discriminator"].parameters()]
    losses = trainer.train_step()
    assert all(np.isfinite(float(v)) for v in losses.values()) and float(losses["D_latent_reg"]) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.nets["discriminator"].parameters(), strict=True))
    opt.d_augment = "color,zoom"
    with pytest.raises(InputError, match="unknown zoom"):
        StarGAN2Trainer(opt)


def test_lazy_r1_applies_the_penalty_every_n_steps_weighted_by_n(tmp_path: Path) -> None:
    """--r1-every N: steps 0, N, 2N carry N × the penalty; the others compute none (no double backward)."""
    from engine.train.stargan2 import compute_d_loss

    _make_data(tmp_path / "faces" / "train")
    opt = _options(tmp_path / "faces", tmp_path / "run", iters=4)
    opt.r1_every = 2
    trainer = StarGAN2Trainer(opt)
    regs = [trainer.train_step()["D_latent_reg"] for _ in range(4)]
    assert regs[0] > 0 and regs[2] > 0 and regs[1] == 0 and regs[3] == 0
    x, y = trainer._fetch()[:2]
    z = torch.randn(x.size(0), trainer.args["latent_dim"])
    full, parts = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=1.0)
    lazy, _ = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=2.0)
    off, off_parts = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=0.0)
    full, lazy, off = (loss.item() for loss in (full, lazy, off))
    assert lazy - off == pytest.approx(2 * (full - off), rel=1e-4)
    assert full - off == pytest.approx(opt.lambda_reg * float(parts["reg"]), rel=1e-4) and off_parts["reg"] == 0


def test_domain_term_teaches_each_head_to_call_the_other_domains_photos_fake(tmp_path: Path) -> None:
    """--lambda-d-domain W adds W × mean softplus(logit) of every head but the photo's own; D learns it."""
    from engine.train.stargan2 import compute_d_loss

    _make_data(tmp_path / "faces" / "train")
    opt = _options(tmp_path / "faces", tmp_path / "run", iters=30)
    trainer = StarGAN2Trainer(opt)
    D = trainer.nets["discriminator"]
    x, y = trainer._fetch()[:2]
    z = torch.randn(x.size(0), trainer.args["latent_dim"])
    torch.manual_seed(3)
    paper, paper_parts = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=0.0)
    opt.lambda_d_domain = 2.0
    torch.manual_seed(3)
    with_term, parts = compute_d_loss(trainer.nets, opt, x, y, y, z_trg=z, r1_weight=0.0)
    with torch.no_grad():
        logits = D.domain_logits(x)
    other = logits[torch.arange(x.size(0)), 1 - y]
    assert "domain" not in paper_parts
    assert float(parts["domain"]) == pytest.approx(float(torch.nn.functional.softplus(other).mean()), rel=1e-5)
    assert float(with_term - paper) == pytest.approx(2.0 * float(parts["domain"]), rel=1e-4)

    def margin() -> float:  # own head's logit above the other head's, on every photo of both domains
        photos = trainer.bank.batch(torch.arange(len(trainer.bank)), trainer._draws, augment=False)
        labels = trainer.bank.labels.to(photos.device)
        with torch.no_grad():
            out = D.domain_logits(photos)
        rows = torch.arange(len(labels))
        return float((out[rows, labels] - out[rows, 1 - labels]).mean())

    before = margin()
    opt.d_only, opt.lambda_d_domain = True, 5.0
    for _ in range(15):
        losses = trainer.train_step()
    assert "D_latent_domain" in losses and "G_latent_adv" not in losses
    assert margin() > before + 0.5


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


def test_bank_draws_domains_evenly_and_reference_pairs_within_a_domain(tmp_path: Path) -> None:
    """Balanced sampling whatever the folder sizes (10 vs 2 images), a second reference from the first's
    domain, draws that differ from batch to batch, and images resized to the training size once."""
    from engine.train.stargan2 import DomainBank

    for d, count, base in (("many", 10, 0), ("few", 2, 200)):
        (tmp_path / d).mkdir()
        for i in range(count):  # flat grey levels: a drawn image names itself
            Image.fromarray(np.full((12, 12, 3), base + 5 * i, np.uint8)).save(tmp_path / d / f"{i:02d}.png")
    bank = DomainBank(tmp_path, ["many", "few"], 8)
    assert bank.images.shape == (12, 3, 8, 8) and bank.images.dtype == torch.uint8
    g = torch.Generator().manual_seed(0)
    idx = bank.draw(4000, g)
    share_few = float((bank.labels[idx] == 1).float().mean())
    assert 0.45 < share_few < 0.55                       # not 2/12
    pair = bank.same_domain(idx, g)
    assert torch.equal(bank.labels[pair], bank.labels[idx])
    assert (pair != idx).float().mean() > 0.3            # another image of the domain, mostly
    first, second = bank.draw(16, g), bank.draw(16, g)
    assert not torch.equal(first, second)
    grey = bank.batch(idx[:6], g, augment=False)[:, 0, 0, 0]
    levels = bank.images[idx[:6], 0, 0, 0].float()
    assert torch.allclose((grey + 1) * 127.5, levels, atol=1e-4)


def test_augment_batch_crops_and_flips_like_pil() -> None:
    """The batched crop + resize + flip agrees with PIL's crop, bilinear resize and mirror of the same box:
    the official transform, one image at a time."""
    from engine.train.stargan2 import augment_batch, crop_boxes

    rng = np.random.default_rng(0)
    size = 32
    images = torch.from_numpy(rng.integers(0, 256, (64, 3, size, size), dtype=np.uint8))
    out = augment_batch(images, torch.Generator().manual_seed(3), augment=True)
    box = crop_boxes(images.shape[0], size, torch.Generator().manual_seed(3))  # the same draws: each image's box
    crop, flip, w, h, left, top = (box[k] for k in ("crop", "flip", "w", "h", "left", "top"))
    assert crop.any() and (~crop).any() and flip.any() and (~flip).any()
    assert (left >= 0).all() and (top >= 0).all() and (left + w <= size).all() and (top + h <= size).all()
    assert ((w * h / size**2)[crop] >= 0.75).all() and ((w * h)[crop] < size**2).any()
    for k in range(images.shape[0]):
        img = Image.fromarray(images[k].permute(1, 2, 0).numpy())
        rect = (int(left[k]), int(top[k]), int(left[k] + w[k]), int(top[k] + h[k]))
        ref = img.crop(rect).resize((size, size), Image.BILINEAR)
        if flip[k]:
            ref = ref.transpose(Image.FLIP_LEFT_RIGHT)
        ref = torch.from_numpy(np.asarray(ref, np.float32)).permute(2, 0, 1)
        got = (out[k] + 1) * 127.5
        # PIL rounds to uint8 and keeps the box's edge pixels slightly differently: compare inside the border
        assert (got - ref)[:, 1:-1, 1:-1].abs().max() < 1.5, k
        if not crop[k] and not flip[k]:
            assert torch.allclose(got, images[k].float(), atol=1e-3)


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


def _dcgan(seed: int = 0) -> torch.nn.Module:
    """The faces recipe's DCGAN, untrained (the fetched weights are not needed to test the plumbing)."""
    from engine.data.faces import DCGANGenerator

    torch.manual_seed(seed)
    g = DCGANGenerator()
    for m in g.modules():  # spread the batch-norm statistics so the outputs are not flat
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.2)
    return g.eval()


def test_latent_bank_renders_in_batches_as_one_face_at_a_time() -> None:
    """The trainer's batched render of a latent bank gives each face the pixels the recipe's one-at-a-time
    render gives it (the build writes those)."""
    from engine.data.faces import NZ, render_latent_bank
    from engine.tasks import to_uint8_image

    g = _dcgan()
    z = np.random.default_rng(0).standard_normal((7, NZ)).astype(np.float32)
    batched = render_latent_bank(z, batch=3, generator=g)
    assert batched.shape == (7, 3, 64, 64) and batched.dtype == torch.uint8
    assert int(batched.max()) - int(batched.min()) > 50  # pictures, not a flat grey
    with torch.inference_mode():
        for k in range(7):
            one = to_uint8_image(g(torch.from_numpy(z[k]).view(1, NZ, 1, 1)))
            assert np.abs(one.astype(int) - batched[k].permute(1, 2, 0).numpy().astype(int)).max() <= 1


def test_trainer_trains_on_a_latent_bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--data`` a folder holding ``latents.npz``: the domains come from the bank, its faces are rendered
    once and resized to the training size, and the trainer steps on them."""
    from engine.data import faces

    monkeypatch.setattr(faces, "_generator", lambda: _dcgan(1))
    rng = np.random.default_rng(1)
    z = rng.standard_normal((10, faces.NZ)).astype(np.float32)
    label = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1, 1])
    faces.save_bank(tmp_path / "bank" / faces.LATENTS, z, label, faces.bank_settings(0))
    assert find_domains(tmp_path / "bank") == ["female", "male"]
    with pytest.raises(InputError, match="in that order"):
        find_domains(tmp_path / "bank", ["male", "female"])
    trainer = StarGAN2Trainer(_options(tmp_path / "bank", tmp_path / "run", iters=1))
    bank = trainer.bank
    assert bank.images.shape == (10, 3, 32, 32) and torch.equal(bank.labels, torch.from_numpy(label))
    full = faces.render_latent_bank(z, generator=_dcgan(1)).float()
    shrunk = torch.nn.functional.interpolate(full, size=(32, 32), mode="bilinear", antialias=True,
                                             align_corners=False)
    assert (bank.images.float() - shrunk).abs().max() <= 0.5001
    losses = trainer.train_step()
    assert all(np.isfinite(float(v)) for v in losses.values())


@pytest.mark.parametrize("content, problem", [
    (b"not a zip", "not a faces latent bank"),
    ("object", "not a faces latent bank"),       # a pickled array: never loaded
    ("shape", "expected z"),
    ("label", "expected z"),
    ("huge", "at most"),                         # refused from the header, before 4 GB are read
])
def test_latent_bank_rejects_malformed_files(tmp_path: Path, content: object, problem: str) -> None:
    from engine.data import faces

    path = tmp_path / faces.LATENTS
    z = np.zeros((4, faces.NZ), np.float32)
    names = np.array(faces.DOMAINS)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "object":
        np.savez(path, z=np.array([{"a": 1}] * 4, dtype=object), domain=np.zeros(4, np.int64), domains=names)
    elif content == "huge":
        with zipfile.ZipFile(path, "w") as zf, zf.open("z.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (10_000_000, faces.NZ)})
    elif content == "shape":
        np.savez(path, z=np.zeros((4, 12), np.float32), domain=np.zeros(4, np.int64), domains=names)
    else:
        np.savez(path, z=z, domain=np.array([0, 1, 2, 0]), domains=names)
    with pytest.raises(InputError, match=problem):
        faces.read_latent_bank(tmp_path)
