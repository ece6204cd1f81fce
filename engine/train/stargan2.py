"""StarGAN v2 training (clovaai/stargan-v2 ``core/solver.py`` schedule and losses).

Per iteration: a discriminator step with a latent style and one with a reference style, a generator
step with latent styles (updates G, F and E) and one with reference styles (updates G only), then
the EMA (β 0.999) of G, F and E. Losses: non-saturating adversarial, R1 (γ = 1) on real images,
style reconstruction, diversity sensitivity (weight decayed linearly to 0 over ``ds_iter``) and
cycle consistency. Adam β = (0, 0.99), weight decay 1e-4, lr 1e-4 (mapping network 1e-6).

Data: one sub-folder of images per domain (sorted names = domain indices). Multi-process runs
under ``torchrun``: every rank trains on its own batches and gradients are averaged across ranks
before each optimiser step (data parallelism done by hand, because the R1 penalty's double
backward does not go through ``DistributedDataParallel``).
"""
from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.nn import functional as F

from ..data import faces
from ..io import load_image
from ..nets.stargan2 import CONFIGS, FAN, build, network_args, pick_domain
from ..progress import ProgressBar
from ..requests.base import InputError
from .common import (
    DistInfo,
    cleanup_distributed,
    ema_update,
    he_init,
    is_main,
    list_images,
    load_checkpoint,
    make_ema,
    save_checkpoint,
    save_grid,
    seed_everything,
    setup_distributed,
)
from .losses import bce_d_loss, bce_g_loss, r1_penalty

# Folders of our data recipes that hold annotations, not a domain's images.
NON_DOMAIN_FOLDERS = {"parsing", "landmarks", "label", "instance", "pose", "parts", "exemplar", "exemplar_pose",
                      "scene"}
TRAINED_NETS = ("generator", "mapping_network", "style_encoder", "discriminator")
EMA_NETS = ("generator", "mapping_network", "style_encoder")


@dataclass
class TrainOptions:
    data: Path
    out: Path = Path("runs/stargan2")
    config: str = "default"
    img_size: int = 0                 # 0: the config's
    domains: list[str] = field(default_factory=list)  # empty: every image folder of ``data``
    iters: int = 100_000
    batch_size: int = 8
    lr: float = 1e-4
    f_lr: float = 1e-6
    beta1: float = 0.0
    beta2: float = 0.99
    weight_decay: float = 1e-4
    lambda_reg: float = 1.0
    r1_every: int = 1                 # lazy R1 (StyleGAN2): the penalty every N steps, weighted ×N
    lambda_sty: float = 1.0
    lambda_ds: float = 1.0
    ds_iter: int = 100_000
    lambda_cyc: float = 1.0
    ema_beta: float = 0.999
    sample_every: int = 5000
    save_every: int = 10000
    resume: bool = False
    seed: int = 777
    device: str = "auto"
    wing: str = ""                    # wing.ckpt for configs with w_hpf > 0
    time_limit_min: float = 0.0       # >0: stop (save, export) after this many minutes
    init: str = ""                    # warm start G, E, F (and their EMA) from exported weights; D if it has one
    d_only: bool = False              # train D alone against the fixed (warm-started) G, E, F: a D warm-up
    d_augment: str = ""               # DiffAugment policy for what D sees, e.g. "color,translation,cutout"
    lambda_d_domain: float = 0.0      # >0: each of D's domain heads also calls the other domains' photos fake


# ------------------------------------------------------------------------------------ data
def find_domains(root: Path, wanted: Sequence[str] = ()) -> list[str]:
    """Domain folder names under ``root`` (sorted, as the official ImageFolder does), or a faces latent
    bank's domains (``root/latents.npz``, ``i2i data build faces --latents``)."""
    if (root / faces.LATENTS).exists():
        _, labels, names = faces.read_latent_bank(root)
        present = [names[k] for k in sorted(set(labels.tolist()))]
        missing = [d for d in wanted if d not in present]
        if missing or len(present) < 2:
            raise InputError(f"{root / faces.LATENTS} has faces of {', '.join(present) or 'no domain'}; "
                             f"{'missing: ' + ', '.join(missing) if missing else 'need at least two domains'}")
        if wanted and list(wanted) != names:
            raise InputError(f"{root / faces.LATENTS}: domains are {', '.join(names)} in that order (got --domains "
                             f"{','.join(wanted)})")
        return names
    if wanted:
        missing = [d for d in wanted if not list_images(root / d)]
        if missing:
            raise InputError(f"{root} has no images in domain folder(s): {', '.join(missing)}")
        return list(wanted)
    found = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and p.name not in NON_DOMAIN_FOLDERS and list_images(p))
    if len(found) < 2:
        raise InputError(f"{root} needs at least two domain folders with images (found: {', '.join(found) or 'none'}); "
                         f"expected {root}/<domain>/*.png")
    return found


def resolve_data_root(path: Path) -> Path:
    """``data/<recipe>`` or its ``train`` split."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"training data folder {path} does not exist (build it with `i2i data build faces`)")
    if (path / "train").is_dir():
        return path / "train"
    return path


# Training images are held decoded in memory (on the training device): every iteration gathers its batches
# there, so no loader processes are forked and a GPU never waits on image decoding.
MAX_BANK_BYTES = 4 * 1024**3
LOSS_READ_EVERY = 10  # iterations whose losses are read from the device together


def crop_boxes(n: int, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per image of a batch, as the official transform draws them: whether it is cropped (p=0.5), the
    crop box (whole pixels: width ``w``, height ``h``, ``left``, ``top``; area 0.8–1 of the image, aspect
    0.9–1.1, clipped to the image rather than redrawn; the whole image where not cropped) and whether
    it is flipped (p=0.5)."""
    crop = torch.rand(n, generator=generator) < 0.5
    area = torch.empty(n).uniform_(0.8, 1.0, generator=generator) * size * size
    aspect = torch.exp(torch.empty(n).uniform_(np.log(0.9), np.log(1.1), generator=generator))
    full = torch.full((n,), float(size))
    w = torch.where(crop, torch.sqrt(area * aspect).round().clamp(1, size), full)
    h = torch.where(crop, torch.sqrt(area / aspect).round().clamp(1, size), full)
    left = torch.floor(torch.rand(n, generator=generator) * (size - w + 1))
    top = torch.floor(torch.rand(n, generator=generator) * (size - h + 1))
    flip = torch.rand(n, generator=generator) < 0.5
    return {"crop": crop, "w": w, "h": h, "left": left, "top": top, "flip": flip}


def augment_batch(images: torch.Tensor, generator: torch.Generator, augment: bool = True) -> torch.Tensor:
    """The official train transform on a uint8 N×3×S×S batch on its device: the :func:`crop_boxes` crop
    resized back to S×S (bilinear, pixel centres as PIL's resize), the flip, then [-1, 1]. One
    ``grid_sample`` does crop, resize and flip for the whole batch (an image left as it is comes back
    to float rounding)."""
    x = images.float() / 127.5 - 1.0
    if not augment:
        return x
    n, size = x.shape[0], x.shape[-1]
    box = crop_boxes(n, size, generator)
    if not (box["crop"].any() or box["flip"].any()):
        return x
    w, h = box["w"], box["h"]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(box["flip"], -w / size, w / size)  # a flip mirrors where each output pixel samples
    theta[:, 0, 2] = (2 * box["left"] + w) / size - 1
    theta[:, 1, 1] = h / size
    theta[:, 1, 2] = (2 * box["top"] + h) / size - 1
    grid = torch.nn.functional.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class DomainBank:
    """Every training image of every domain, decoded once to uint8 N×3×S×S (resized to the training size)
    on the training device, with the official samplers: domains drawn equally often whatever their
    sizes (``_make_balanced_sampler``, with replacement), and for the reference stream a second image of
    the drawn image's domain."""

    def __init__(self, root: Path, domains: Sequence[str], size: int, device: torch.device | str = "cpu") -> None:
        if (root / faces.LATENTS).exists():
            self.images, self.labels = self._render_latents(root, size, device)
        else:
            self.images, self.labels = self._decode_folders(root, domains, size, device)
        counts = torch.bincount(self.labels, minlength=len(domains)).double()
        self._weights = 1.0 / counts[self.labels]
        self.by_domain = [torch.nonzero(self.labels == d).flatten() for d in range(len(domains))]

    @staticmethod
    def _check_size(root: Path, n: int, size: int) -> None:
        need = n * 3 * size * size
        if need > MAX_BANK_BYTES:
            raise InputError(f"{root}: {n} images at {size}² need {need / 1024**3:.1f} GiB decoded; "
                             f"the training bank holds at most {MAX_BANK_BYTES / 1024**3:.0f} GiB")

    @classmethod
    def _decode_folders(cls, root: Path, domains: Sequence[str], size: int, device: torch.device | str
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        paths = [(p, i) for i, d in enumerate(domains) for p in list_images(root / d)]
        cls._check_size(root, len(paths), size)
        images = np.empty((len(paths), size, size, 3), np.uint8)
        for k, (path, _) in enumerate(paths):
            img = Image.fromarray(load_image(path))
            images[k] = np.asarray(img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR))
        return (torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device),
                torch.tensor([y for _, y in paths], dtype=torch.long))

    @classmethod
    def _render_latents(cls, root: Path, size: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        z, labels, _ = faces.read_latent_bank(root)
        cls._check_size(root, len(z), max(size, faces.NATIVE))
        images = faces.render_latent_bank(z, device)
        if size != faces.NATIVE:  # as a folder's PNGs would be resized: bilinear, from uint8
            images = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear",
                                                     antialias=size < faces.NATIVE, align_corners=False)
            images = images.round().clamp(0, 255).to(torch.uint8)
        return images, torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` indices, each domain equally likely."""
        return torch.multinomial(self._weights, n, replacement=True, generator=generator)

    def same_domain(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """For each index, another draw (uniform) from its domain."""
        out = torch.empty_like(idx)
        for d, members in enumerate(self.by_domain):
            rows = torch.nonzero(self.labels[idx] == d).flatten()
            if len(rows):
                out[rows] = members[torch.randint(len(members), (len(rows),), generator=generator)]
        return out

    def batch(self, idx: torch.Tensor, generator: torch.Generator, augment: bool = True) -> torch.Tensor:
        return augment_batch(self.images[idx.to(self.images.device)], generator, augment)


# DiffAugment (Zhao et al. 2020): the same random, differentiable transforms on every image D sees, photos and
# outputs alike, so D cannot memorise a few thousand training photos (it did: bench/probe_stargan2_d.py).
D_AUGMENTS = ("color", "translation", "cutout")


@functools.lru_cache(maxsize=8)  # the losses read the policy four times a step: parse it once
def parse_d_augment(policy: str) -> tuple[str, ...]:
    parts = tuple(p for p in policy.replace(" ", "").split(",") if p)
    unknown = [p for p in parts if p not in D_AUGMENTS]
    if unknown:
        raise InputError(f"--d-augment: unknown {', '.join(unknown)}; known: {', '.join(D_AUGMENTS)}")
    return parts


def diff_augment(x: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """Per image: brightness ±0.5, saturation ×0–2, contrast ×0.5–1.5 ("color"); a shift by up to 1/8 of the
    side with zero fill ("translation"); a zeroed square of half the side ("cutout"). Gradients pass; an
    empty policy returns ``x`` itself."""
    n, _, h, w = x.shape
    rand = lambda *shape: torch.rand(n, *shape, device=x.device, dtype=x.dtype)  # noqa: E731 - local shorthand
    if "color" in policy:
        x = x + (rand(1, 1, 1) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand(1, 1, 1) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (rand(1, 1, 1) + 0.5) + mean
    if "translation" in policy:
        sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
        dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
        gy = torch.arange(h, device=x.device).view(1, h, 1) - dy          # source row of each output row
        gx = torch.arange(w, device=x.device).view(1, 1, w) - dx
        inside = ((gy >= 0) & (gy < h) & (gx >= 0) & (gx < w)).unsqueeze(1)
        flat = (gy.clamp(0, h - 1) * w + gx.clamp(0, w - 1)).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
        x = torch.gather(x.reshape(n, x.shape[1], h * w), 2, flat).reshape(x.shape) * inside
    if "cutout" in policy:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
        cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        hole = (ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch) & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)
        x = x * (~hole).unsqueeze(1)
    return x


# ------------------------------------------------------------------------------------ losses
def compute_d_loss(nets: Mapping[str, nn.Module], opt: TrainOptions, x_real: torch.Tensor, y_org: torch.Tensor,
                   y_trg: torch.Tensor, *, z_trg: torch.Tensor | None = None, x_ref: torch.Tensor | None = None,
                   masks: Any = None, r1_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Adversarial loss on real/fake plus R1 on real (official ``compute_d_loss``); ``r1_weight``
    scales the penalty (N on the steps of lazy R1 every N steps, 0 on the others: no double
    backward through D then)."""
    x_real = x_real.detach().requires_grad_(r1_weight > 0)
    aug = parse_d_augment(opt.d_augment)
    logits_real = nets["discriminator"].domain_logits(diff_augment(x_real, aug))
    out_real = pick_domain(logits_real, y_org)
    loss_reg = r1_penalty(out_real, x_real) if r1_weight > 0 else out_real.new_zeros(())
    with torch.no_grad():
        s_trg = nets["mapping_network"](z_trg, y_trg) if z_trg is not None else nets["style_encoder"](x_ref, y_trg)
        x_fake = nets["generator"](x_real.detach(), s_trg, masks=masks)
    out_fake = nets["discriminator"](diff_augment(x_fake, aug), y_trg)
    loss_adv = bce_d_loss(out_real, out_fake)
    loss = loss_adv + opt.lambda_reg * r1_weight * loss_reg
    parts = {"adv": loss_adv.detach(), "reg": loss_reg.detach()}
    if opt.lambda_d_domain > 0:
        # Not in StarGAN v2 (StarGAN v1 classified real images' domains in D): a photo of another domain is
        # fake to this domain's head, so the heads must learn what tells the domains apart, not only what
        # tells photos from outputs. Zero (the paper) by default.
        others = torch.ones_like(logits_real, dtype=torch.bool).scatter_(1, y_org.view(-1, 1), False)
        loss_domain = F.softplus(logits_real[others]).mean()
        loss = loss + opt.lambda_d_domain * loss_domain
        parts["domain"] = loss_domain.detach()
    return loss, parts


def compute_g_loss(nets: Mapping[str, nn.Module], opt: TrainOptions, x_real: torch.Tensor, y_org: torch.Tensor,
                   y_trg: torch.Tensor, lambda_ds: float, *, z_trgs: Sequence[torch.Tensor] | None = None,
                   x_refs: Sequence[torch.Tensor] | None = None, masks: Any = None, fan: FAN | None = None
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Adversarial + style reconstruction − diversity + cycle (official ``compute_g_loss``)."""
    G, E, Fm, D = nets["generator"], nets["style_encoder"], nets["mapping_network"], nets["discriminator"]
    if z_trgs is not None:
        s_trg, s_trg2 = Fm(z_trgs[0], y_trg), Fm(z_trgs[1], y_trg)
    else:
        assert x_refs is not None
        s_trg, s_trg2 = E(x_refs[0], y_trg), E(x_refs[1], y_trg)
    x_fake = G(x_real, s_trg, masks=masks)
    aug = parse_d_augment(opt.d_augment)
    loss_adv = bce_g_loss(D(diff_augment(x_fake, aug), y_trg))
    loss_sty = torch.mean(torch.abs(E(x_fake, y_trg) - s_trg))
    x_fake2 = G(x_real, s_trg2, masks=masks).detach()
    loss_ds = torch.mean(torch.abs(x_fake - x_fake2))
    masks_fake = fan.get_heatmap(x_fake) if fan is not None else None  # recomputed for the cycle pass
    x_rec = G(x_fake, E(x_real, y_org), masks=masks_fake)
    loss_cyc = torch.mean(torch.abs(x_rec - x_real))
    loss = loss_adv + opt.lambda_sty * loss_sty - lambda_ds * loss_ds + opt.lambda_cyc * loss_cyc
    return loss, {"adv": loss_adv.detach(), "sty": loss_sty.detach(), "ds": loss_ds.detach(), "cyc": loss_cyc.detach()}


def ds_weight(opt: TrainOptions, step: int) -> float:
    """Diversity-sensitive weight at ``step``: linear decay from λ_ds to 0 over ``ds_iter``."""
    if opt.ds_iter <= 0:
        return opt.lambda_ds
    return max(0.0, opt.lambda_ds * (1.0 - step / opt.ds_iter))


# ------------------------------------------------------------------------------------ trainer
def _average_gradients(module: nn.Module, info: DistInfo) -> None:
    if not info.enabled:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size


def _set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class StarGAN2Trainer:
    def __init__(self, opt: TrainOptions, info: DistInfo | None = None) -> None:
        self.opt = opt
        self.info = info or DistInfo(device=torch.device("cpu"))
        self.device = self.info.device
        self.root = resolve_data_root(opt.data)
        self.domains = find_domains(self.root, opt.domains)
        if opt.config not in CONFIGS:
            raise InputError(f"unknown stargan2 config {opt.config!r}; known: {', '.join(CONFIGS)}")
        config = dict(CONFIGS[opt.config])
        if opt.img_size:
            config["img_size"] = opt.img_size
        config["num_domains"] = len(self.domains)
        config["domains"] = list(self.domains)
        self.config = config
        self.args = network_args(config)
        seed_everything(opt.seed)  # the same initial weights on every rank

        nets = build(config)
        self.fan: FAN | None = nets.pop("fan", None)
        if self.fan is not None:
            self._load_fan()
        for m in nets.values():
            he_init(m)
            m.to(self.device).train()
            if self.info.enabled:
                for t in m.state_dict().values():
                    dist.broadcast(t, src=0)
        self.nets = nets
        seed_everything(opt.seed, self.info.rank)  # then different batches and codes per rank
        # EMA copies start from the He-initialised networks (the official code copies them before
        # initialising; with 100k iterations the difference vanishes, with short runs it matters).
        self.ema = {k: make_ema(nets[k]).to(self.device) for k in EMA_NETS}
        self.optims = {
            k: torch.optim.Adam(nets[k].parameters(), lr=opt.f_lr if k == "mapping_network" else opt.lr,
                                betas=(opt.beta1, opt.beta2), weight_decay=opt.weight_decay)
            for k in TRAINED_NETS}
        self.step = 0
        parse_d_augment(opt.d_augment)  # a wrong policy fails here, not at the first step
        if opt.d_only and not (opt.init or opt.resume):
            raise InputError("--d-only trains the discriminator against given networks: give --init FILE")
        if opt.resume:
            self._resume()
        elif opt.init:
            self._warm_start(Path(opt.init))

        size = int(self.args["img_size"])
        self.bank = DomainBank(self.root, self.domains, size, self.device)
        if len(self.bank) < 2:
            raise InputError(f"{self.root} has fewer than two training images")
        self._draws = torch.Generator().manual_seed(opt.seed + 1000 * self.info.rank)  # batches, crops, flips
        picks = torch.from_numpy(np.linspace(0, len(self.bank) - 1, min(len(self.bank), 8)).astype(np.int64))
        self.sample_src = self.bank.batch(picks, self._draws, augment=False)
        self.sample_ref = self.bank.batch(picks.flip(0), self._draws, augment=False)
        self.sample_ref_y = self.bank.labels[picks.flip(0)].to(self.device)
        n = len(picks)
        self.sample_z = torch.randn(n, self.args["latent_dim"], generator=torch.Generator().manual_seed(opt.seed))

    # ---------------------------------------------------------------- state
    def _load_fan(self) -> None:
        from ..weights import read_torch_file

        if not self.opt.wing:
            raise InputError(f"config {self.opt.config!r} uses the high-pass skip (w_hpf > 0), which needs the FAN "
                             f"landmark network: give --wing PATH/wing.ckpt")
        raw = read_torch_file(Path(self.opt.wing))
        sd = raw.get("state_dict", raw) if isinstance(raw, dict) else {}
        own = self.fan.state_dict()
        picked = {k.removeprefix("module."): v for k, v in sd.items() if k.removeprefix("module.") in own}
        if not picked:
            raise InputError(f"{self.opt.wing} holds no FAN weights")
        own.update(picked)
        self.fan.load_state_dict(own)
        self.fan.to(self.device).eval()

    def _checkpoint_nets(self) -> dict[str, nn.Module]:
        return {**self.nets, **{f"{k}_ema": m for k, m in self.ema.items()}}

    def _resume(self) -> None:
        folder = self.opt.out / "latest"
        step, meta = load_checkpoint(folder, self._checkpoint_nets(), self.optims)
        if meta.get("domains") and meta["domains"] != self.domains:
            raise InputError(f"cannot resume: {folder} was trained on domains {meta['domains']}, "
                             f"the data has {self.domains}")
        self.step = step
        if is_main(self.info):
            print(f"resumed from {folder} at iteration {step}", file=sys.stderr)

    def _warm_start(self, path: Path) -> None:
        """G, E and F from an exported file (another machine's run, say): the same config. D too where the
        file carries one (a lent GPU's run goes on with the discriminator it had), else a fresh D."""
        from ..weights import load_strict, read_safetensors, split_subnets

        state = {k: {p: t.float() for p, t in sd.items()} for k, sd in split_subnets(read_safetensors(path)).items()}
        missing = [k for k in EMA_NETS if k not in state]
        if missing:
            raise InputError(f"--init {path}: no {', '.join(missing)} in it (expected exported StarGAN v2 weights)")
        load_strict({k: self.nets[k] for k in EMA_NETS}, {k: state[k] for k in EMA_NETS}, source=str(path))
        load_strict(self.ema, {k: state[k] for k in EMA_NETS}, source=str(path))
        if "discriminator" in state:
            load_strict({"discriminator": self.nets["discriminator"]}, {"discriminator": state["discriminator"]},
                        source=str(path))
        if is_main(self.info):
            d = "its discriminator" if "discriminator" in state else "a fresh discriminator"
            print(f"warm-started G, E, F and their EMA from {path} ({d})", file=sys.stderr)

    def save(self) -> Path:
        meta = {"config": self.config, "domains": self.domains, "options": _jsonable(asdict(self.opt))}
        folder = save_checkpoint(self.opt.out / "latest", self._checkpoint_nets(), self.optims, self.step, meta)
        self.export(self.opt.out / "stargan2_ema.safetensors")
        return folder

    def export(self, path: Path) -> Path:
        """The EMA networks (and FAN when used) in our inference format."""
        from ..weights import save_state_dicts

        state = {k: m.state_dict() for k, m in self.ema.items()}
        if self.fan is not None:
            state["fan"] = self.fan.state_dict()
        save_state_dicts(state, path, metadata={"family": "stargan2", "config": json.dumps(self.config),
                                                "step": str(self.step)})
        return path

    # ---------------------------------------------------------------- one iteration
    def _fetch(self) -> tuple[torch.Tensor, ...]:
        """Source images, reference pairs (the official streams: each draws its domain at random) and codes."""
        b, bank, draws, d = self.opt.batch_size, self.bank, self._draws, self.device
        src, ref = bank.draw(b, draws), bank.draw(b, draws)
        ref2 = bank.same_domain(ref, draws)
        z = torch.randn(b, self.args["latent_dim"]), torch.randn(b, self.args["latent_dim"])
        return (bank.batch(src, draws), bank.labels[src].to(d), bank.batch(ref, draws), bank.batch(ref2, draws),
                bank.labels[ref].to(d), z[0].to(d), z[1].to(d))

    def _zero_grad(self) -> None:
        for o in self.optims.values():
            o.zero_grad(set_to_none=True)

    def _step(self, names: Sequence[str]) -> None:
        for k in names:
            _average_gradients(self.nets[k], self.info)
            self.optims[k].step()

    def train_step(self) -> dict[str, torch.Tensor]:
        """One iteration; the losses come back as 0-d tensors (reading them waits for the device)."""
        opt, nets = self.opt, self.nets
        x_real, y_org, x_ref, x_ref2, y_trg, z_trg, z_trg2 = self._fetch()
        masks = self.fan.get_heatmap(x_real) if self.fan is not None else None
        lambda_ds = ds_weight(opt, self.step)
        # Networks an update does not step are frozen for it: same result as the official code
        # (it zeroes those gradients before they are used) without computing them.
        single = not self.info.enabled
        losses: dict[str, torch.Tensor] = {}

        def trainable(names: Sequence[str]) -> None:
            if single:
                for k in TRAINED_NETS:
                    _set_trainable(nets[k], k in names)

        trainable(("discriminator",))
        r1_weight = float(opt.r1_every) if self.step % max(1, opt.r1_every) == 0 else 0.0
        for tag, kw in (("latent", {"z_trg": z_trg}), ("ref", {"x_ref": x_ref})):
            d_loss, d_parts = compute_d_loss(nets, opt, x_real, y_org, y_trg, masks=masks, r1_weight=r1_weight, **kw)
            self._zero_grad()
            d_loss.backward()
            self._step(("discriminator",))
            losses.update({f"D_{tag}_{k}": v for k, v in d_parts.items()})

        if opt.d_only:  # G, E, F stay as loaded: the discriminator catches up with them
            self.step += 1
            return losses
        trainable(("generator", "mapping_network", "style_encoder"))
        g_loss, g_parts = compute_g_loss(nets, opt, x_real, y_org, y_trg, lambda_ds, z_trgs=(z_trg, z_trg2),
                                         masks=masks, fan=self.fan)
        self._zero_grad()
        g_loss.backward()
        self._step(("generator", "mapping_network", "style_encoder"))
        losses.update({f"G_latent_{k}": v for k, v in g_parts.items()})

        trainable(("generator",))
        g_loss, g_parts = compute_g_loss(nets, opt, x_real, y_org, y_trg, lambda_ds, x_refs=(x_ref, x_ref2),
                                         masks=masks, fan=self.fan)
        self._zero_grad()
        g_loss.backward()
        self._step(("generator",))
        losses.update({f"G_ref_{k}": v for k, v in g_parts.items()})
        trainable(TRAINED_NETS)

        for k in EMA_NETS:
            ema_update(self.ema[k], nets[k], beta=opt.ema_beta)
        self.step += 1
        losses["lambda_ds"] = torch.tensor(lambda_ds, device=self.device)
        return losses

    # ---------------------------------------------------------------- samples
    @torch.no_grad()
    def write_samples(self, path: Path) -> Path:
        """Rows: sources, references, reference-guided outputs, then one latent row per domain (EMA nets)."""
        G, E, Fm = self.ema["generator"], self.ema["style_encoder"], self.ema["mapping_network"]
        x, ref, ref_y = self.sample_src, self.sample_ref, self.sample_ref_y
        masks = self.fan.get_heatmap(x) if self.fan is not None else None
        rows = [x, ref, G(x, E(ref, ref_y), masks=masks)]
        z = self.sample_z.to(self.device)
        for d in range(len(self.domains)):
            y = torch.full((x.size(0),), d, dtype=torch.long, device=self.device)
            rows.append(G(x, Fm(z, y), masks=masks))
        return save_grid(path, rows)

    def _report(self, pending: list[dict[str, torch.Tensor]], bar: ProgressBar | None) -> None:
        """Read the losses of the last iterations in one transfer (a read per loss and step would stall a
        GPU's queue a dozen times an iteration); stop on a non-finite one."""
        keys = list(pending[-1])
        values = torch.stack([torch.stack([p[k].float() for k in keys]) for p in pending]).cpu().tolist()
        first = self.step - len(pending)
        for i, row in enumerate(values):
            bad = [k for k, v in zip(keys, row, strict=True) if not np.isfinite(v)]
            if bad:
                raise FloatingPointError(f"iteration {first + i}: non-finite losses {', '.join(bad)}")
        if bar is not None:
            last = dict(zip(keys, values[-1], strict=True))
            g = {} if self.opt.d_only else dict(G=last["G_latent_adv"], sty=last["G_latent_sty"],
                                                ds=last["G_latent_ds"], cyc=last["G_latent_cyc"])
            dom = {"dom": last["D_latent_domain"]} if "D_latent_domain" in last else {}
            bar.update(len(pending), D=last["D_latent_adv"] + last["D_ref_adv"], R1=last["D_latent_reg"], **dom, **g)

    def fit(self) -> Path:
        opt = self.opt
        main = is_main(self.info)
        bar = ProgressBar(opt.iters, desc="stargan2", initial=self.step) if main else None
        deadline = time.monotonic() + opt.time_limit_min * 60 if opt.time_limit_min > 0 else None
        pending: list[dict[str, torch.Tensor]] = []
        while self.step < opt.iters:
            if deadline is not None and time.monotonic() > deadline:
                if main:
                    print(f"\ntime limit reached at iteration {self.step}", file=sys.stderr)
                break
            pending.append(self.train_step())
            sample = main and opt.sample_every > 0 and self.step % opt.sample_every == 0
            save = main and opt.save_every > 0 and self.step % opt.save_every == 0
            if sample or save or len(pending) == LOSS_READ_EVERY:  # never write what a non-finite step left
                self._report(pending, bar)
                pending = []
            if sample:
                self.write_samples(opt.out / "samples" / f"{self.step:06d}.png")
            if save:
                self.save()
        if pending:
            self._report(pending, bar)
        if bar is not None:
            bar.close()
        if main:
            if opt.save_every <= 0 or self.step % opt.save_every:
                self.save()
            if opt.sample_every <= 0 or self.step % opt.sample_every:
                self.write_samples(opt.out / "samples" / f"{self.step:06d}.png")
        return opt.out


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


# ------------------------------------------------------------------------------------ CLI
def _cmd_train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    opt = TrainOptions(
        data=Path(args.data), out=Path(args.out), config=args.config, img_size=args.img_size,
        domains=[d for d in args.domains.split(",") if d] if args.domains else [],
        iters=args.iters, batch_size=args.batch_size, lr=args.lr, f_lr=args.f_lr, lambda_reg=args.lambda_reg,
        r1_every=args.r1_every,
        lambda_sty=args.lambda_sty, lambda_ds=args.lambda_ds, ds_iter=args.ds_iter, lambda_cyc=args.lambda_cyc,
        ema_beta=args.ema_beta, sample_every=args.sample_every, save_every=args.save_every, resume=args.resume,
        seed=args.seed, device=args.device, wing=args.wing,
        time_limit_min=args.time_limit, init=args.init, d_only=args.d_only, d_augment=args.d_augment,
        lambda_d_domain=args.lambda_d_domain)
    info = setup_distributed(args.device)
    try:
        trainer = StarGAN2Trainer(opt, info)
        t0 = time.perf_counter()
        trainer.fit()
        if is_main(info):
            print(f"trained to iteration {trainer.step} in {time.perf_counter() - t0:.0f} s; "
                  f"checkpoint {opt.out / 'latest'}, EMA weights {opt.out / 'stargan2_ema.safetensors'}")
            if args.export and not opt.d_only:  # a D warm-up leaves the exported networks as they were
                export_to_weights(trainer, args.export, default=args.default, command=_command_line(args))
    finally:
        cleanup_distributed()
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The ``i2i train stargan2`` command that reproduces this run (for the weights' provenance)."""
    parts = ["i2i", "train", "stargan2"]
    for action in _PARSER_ACTIONS:
        value = getattr(args, action.dest, None)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[0]
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


_PARSER_ACTIONS: list[argparse.Action] = []


def export_to_weights(trainer: StarGAN2Trainer, name: str, *, default: bool, command: str) -> None:
    """Save the EMA networks to ``weights/NAME.safetensors`` and register them."""
    from ..weights import Manifest, register_file

    manifest = Manifest()
    path = trainer.export(manifest.root / f"{name}.safetensors")
    extra: dict[str, Any] = {"iterations": trainer.step, "domains": trainer.domains}
    if default:
        extra["default"] = True
    entry = register_file(Manifest(), name=name, family="stargan2", config_name=trainer.opt.config,
                          config=trainer.config, path=path,
                          provenance={"kind": "trained-here", "command": command},
                          description=f"StarGAN v2 {trainer.args['img_size']} px trained here on "
                                      f"{', '.join(trainer.domains)} ({trainer.step} iterations)",
                          extra=extra)
    print(f"registered {entry.name}: {entry.bytes / 1e6:.1f} MB")


def register_cli(groups: Any) -> None:
    """``i2i train stargan2``."""
    d = TrainOptions(data=Path("."))
    p = groups.train.add_parser(
        "stargan2", help="train StarGAN v2 on one image folder per domain",
        description="Trains StarGAN v2 with the paper's losses and schedule. "
                    "Multi-GPU: torchrun --nproc_per_node N -m engine.cli train stargan2 ...")
    p.add_argument("--data", required=True, help="folder with one sub-folder of images per domain (or data/faces)")
    p.add_argument("--domains", default="", help="comma-separated domain folders (default: every image folder)")
    p.add_argument("--config", default="default", help=f"network config: {', '.join(CONFIGS)} (default: default)")
    p.add_argument("--img-size", type=int, default=0, help="training size (default: the config's)")
    p.add_argument("--out", default="runs/stargan2", help="run folder: latest/ checkpoint, samples/, EMA weights")
    p.add_argument("--iters", type=int, default=d.iters)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="G, E and D learning rate")
    p.add_argument("--f-lr", type=float, default=d.f_lr, help="mapping network learning rate")
    p.add_argument("--lambda-reg", type=float, default=d.lambda_reg, help="R1 weight")
    p.add_argument("--r1-every", type=int, default=d.r1_every,
                   help="lazy R1: apply the penalty every N steps, weighted ×N (paper: 1; StyleGAN2: 16)")
    p.add_argument("--lambda-sty", type=float, default=d.lambda_sty)
    p.add_argument("--lambda-ds", type=float, default=d.lambda_ds, help="diversity weight (paper: 1 CelebA-HQ, 2 AFHQ)")
    p.add_argument("--ds-iter", type=int, default=d.ds_iter, help="iterations over which λ_ds decays to 0")
    p.add_argument("--lambda-cyc", type=float, default=d.lambda_cyc)
    p.add_argument("--ema-beta", type=float, default=d.ema_beta)
    p.add_argument("--sample-every", type=int, default=d.sample_every)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest")
    p.add_argument("--init", default="", metavar="FILE",
                   help="warm start G, E, F (and their EMA) from exported weights; D too where the file has one")
    p.add_argument("--d-only", action="store_true",
                   help="train only the discriminator against the --init G, E, F (a warm-up for a later run)")
    p.add_argument("--d-augment", default="", metavar="POLICY",
                   help=f"DiffAugment for what D sees, photos and outputs alike: any of {','.join(D_AUGMENTS)} "
                        f"(not in the paper; against a D memorising a small training set)")
    p.add_argument("--lambda-d-domain", type=float, default=d.lambda_d_domain, metavar="W",
                   help="weight of a term in which each of D's domain heads calls the other domains' photos fake "
                        "(not in the paper, which has 0; StarGAN v1 classified real images' domains in D)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--time-limit", type=float, default=0.0, metavar="MIN",
                   help="stop after MIN minutes (checkpoint and export still happen)")
    p.add_argument("--wing", default="", help="wing.ckpt (FAN landmarks) for configs with w_hpf > 0")
    p.add_argument("--export", default="", metavar="NAME",
                   help="save the EMA nets to weights/NAME.safetensors and register")
    p.add_argument("--default", action="store_true", help="mark the exported model as the family default")
    p.set_defaults(func=_cmd_train)
    _PARSER_ACTIONS[:] = [a for a in p._actions if a.option_strings and a.dest != "help"]


__all__ = ["TrainOptions", "StarGAN2Trainer", "compute_d_loss", "compute_g_loss", "ds_weight", "find_domains",
           "DomainBank", "augment_batch", "crop_boxes", "diff_augment", "export_to_weights", "register_cli"]
