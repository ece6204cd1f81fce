"""Training and side-by-side evaluation of the panoptic generator (and its SPADE baseline).

``i2i train panoptic --data data/scenes --config panoptic_scenes --out runs/pan`` trains netG
(+ netE with ``--vae``) against SPADE's 2-scale PatchGAN (spectral + instance norm) with SPADE's
objective: hinge GAN, discriminator feature matching ×10, VGG perceptual ×10 (weights 1/32 … 1
on relu1_1 … relu5_1; the shared extractor, MobileNetV2 stages in the same roles when only that
file exists, nothing when neither does), KL ×0.05 with the VAE. TTUR Adam β = (0, 0.9): G lr/2,
D lr·2 (lr 2e-4 → 1e-4 / 4e-4), optional linear decay. Resume from ``OUT/latest``, progress bar
with losses, sample grids, torchrun DDP (SyncBatchNorm for SPADE's BatchNorm on GPUs).
``--mode semantic`` trains the SPADE baseline with the same everything else.

``i2i eval-panoptic --data data/scenes --model A --baseline B`` generates the split with both
models and reports, side by side: a Fréchet distance on the shared backbone's features (named
after the backbone, not FID), segmenter mIoU when a segmenter is registered, and the
instance-boundary accuracy of the generated images (:func:`boundary_scores`).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from ..inputs.panoptic import conditioning, panoptic_ids
from ..io import instance_edges, load_image, load_instance_map, load_label_map, load_palette, resize_nearest
from ..metrics.speckle import ClassColours, speckle_scores
from ..nets.panoptic import CONFIGS, build, build_discriminator, reparameterize
from ..requests.base import InputError
from ..tasks import to_uint8_image
from . import losses as L
from .common import (
    DistInfo,
    cleanup_distributed,
    ema_update,
    infinite_loader,
    is_main,
    linear_decay,
    load_checkpoint,
    make_ema,
    save_checkpoint,
    save_grid,
    seed_everything,
    setup_distributed,
    unwrap,
    wrap_ddp,
)

LAMBDA_FEAT = 10.0
LAMBDA_VGG = 10.0
LAMBDA_KLD = 0.05


# ==============================================================================================
# Data: the `scenes` layout (<split>/image, label, instance)
# ==============================================================================================
class PanopticScenes(Dataset):
    """``root/<split>/{image,label,instance}/<id>.png`` at ``size``² (bicubic image, nearest maps),
    optional horizontal flips; items are (image [-1, 1], semantic, ids, labels)."""

    def __init__(self, root: Path, split: str, size: int, config: Mapping[str, Any], *, flip: bool = False,
                 limit: int | None = None) -> None:
        root = Path(root)
        img_dir = root / split / "image"
        if not img_dir.is_dir():
            raise InputError(f"{root} has no {split}/image folder (build it with `i2i data build scenes`)")
        self.ids = [p.stem for p in sorted(img_dir.glob("*.png"))
                    if (root / split / "label" / p.name).exists()]
        if limit:
            self.ids = self.ids[:limit]
        if not self.ids:
            raise InputError(f"{img_dir} has no images with label maps")
        self.root, self.split, self.size, self.config, self.flip = root, split, size, dict(config), flip
        self.has_instances = (root / split / "instance").is_dir()

    def __len__(self) -> int:
        return len(self.ids)

    def maps(self, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(image uint8, labels, instances) at the working size."""
        name = self.ids[idx] + ".png"
        d = self.root / self.split
        img, lab = load_image(d / "image" / name), load_label_map(d / "label" / name)
        inst_path = d / "instance" / name
        inst = load_instance_map(inst_path) if self.has_instances and inst_path.exists() else None
        s = self.size
        if img.shape[:2] != (s, s):
            img = np.asarray(Image.fromarray(img).resize((s, s), Image.BICUBIC))
        if lab.shape != (s, s):
            lab = resize_nearest(lab, s).astype(np.int32)
            if inst is not None:
                inst = resize_nearest(inst, s).astype(np.int32)
        return img, lab, inst

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        img, lab, inst = self.maps(idx)
        if self.flip and torch.rand(()) < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
            inst = inst[:, ::-1] if inst is not None else None
        semantic, ids = conditioning(np.ascontiguousarray(lab), None if inst is None else np.ascontiguousarray(inst),
                                     self.config)
        image = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 127.5 - 1
        return {"image": image, "semantic": semantic[0], "ids": ids[0],
                "labels": torch.from_numpy(np.array(lab)).long()}


# ==============================================================================================
# Training
# ==============================================================================================
def make_config(base: str, *, mode: str | None = None, size: int | None = None, ngf: int | None = None,
                spade_hidden: int | None = None, vae: bool | None = None,
                label_nc: int | None = None, plain_levels: int | None = None) -> dict[str, Any]:
    if base not in CONFIGS:
        raise InputError(f"unknown panoptic config {base!r}; known: {', '.join(CONFIGS)}")
    cfg = dict(CONFIGS[base])
    for key, value in (("mode", mode), ("crop_size", size), ("ngf", ngf), ("spade_hidden", spade_hidden),
                       ("use_vae", vae), ("label_nc", label_nc), ("plain_levels", plain_levels)):
        if value is not None:
            cfg[key] = value
    if cfg.get("use_vae"):
        cfg.setdefault("ndf_E", max(8, 2 * int(cfg["ngf"])))
    return cfg


def _vgg_weights(features: Any) -> dict[str, float]:
    # SPADE's VGGLoss weights 1/32, 1/16, 1/8, 1/4, 1 (shallow → deep) on the extractor's five taps
    spade = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    layers = list(features.layers)[-5:]
    return dict(zip(layers, spade[-len(layers):], strict=True))


def colour_labels(labels: torch.Tensor, palette: str | None) -> torch.Tensor:
    """(N, H, W) labels → (N, 3, H, W) in [-1, 1] with the palette's colours (else a fixed random table)."""
    lab = labels.numpy()
    try:
        pal = load_palette(palette) if palette else None
    except InputError:
        pal = None
    if pal is not None and lab.max() < len(pal):
        rgb = pal.colorize(lab)
    else:
        rgb = np.random.default_rng(0).integers(0, 255, (int(lab.max()) + 1, 3)).astype(np.uint8)[lab]
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run training; returns a summary (steps, last losses, output folder)."""
    from ..progress import ProgressBar

    torch.set_num_threads(max(1, int(args.threads)))
    info: DistInfo = setup_distributed(args.device)
    seed_everything(args.seed, info.rank)
    out = Path(args.out)
    resume_cfg = out / "config.json"
    if args.resume and resume_cfg.exists():
        config = json.loads(resume_cfg.read_text())
    else:
        config = make_config(args.config, mode=args.mode, size=args.size, ngf=args.ngf,
                             spade_hidden=args.spade_hidden, vae=True if args.vae else None,
                             plain_levels=args.plain_levels)
    size = int(config["crop_size"])
    data = PanopticScenes(Path(args.data), "train", size, config, flip=not args.no_flip, limit=args.max_images)
    nets = build(config)
    netG = nets["netG"].to(info.device)
    netE = nets.get("netE")
    netD = build_discriminator(config, ndf=args.ndf, n_layers=args.n_layers_d, num_D=args.num_d).to(info.device)
    if netE is not None:
        netE = netE.to(info.device)
    if info.enabled and info.device.type == "cuda":
        netG = nn.SyncBatchNorm.convert_sync_batchnorm(netG)
    g_params = list(netG.parameters()) + (list(netE.parameters()) if netE is not None else [])
    lr_g, lr_d = (args.lr, args.lr) if args.no_ttur else (args.lr / 2, args.lr * 2)
    betas = (args.beta1, args.beta2) if args.no_ttur else (0.0, 0.9)
    opt_g = torch.optim.Adam(g_params, lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(netD.parameters(), lr=lr_d, betas=betas)
    ckpt_nets = {"netG": netG, "netD": netD, **({"netE": netE} if netE is not None else {})}
    optims = {"G": opt_g, "D": opt_d}
    ema_beta = float(getattr(args, "ema_beta", 0.0))
    # What ships is the EMA generator: the average smooths the step-to-step swings of GAN training.
    netG_ema = make_ema(netG) if ema_beta > 0 else None
    ema_restored = False
    step = 0
    if args.resume and (out / "latest" / "nets.safetensors").exists():
        saved = _checkpoint_subnets(out / "latest")
        restore = {k: m for k, m in ckpt_nets.items() if k in saved}
        if "netG_ema" in saved:  # (read even when this run keeps no EMA: the checkpoint is strict)
            restore["netG_ema"] = netG_ema if netG_ema is not None else make_ema(netG)
            ema_restored = netG_ema is not None
        step, _ = load_checkpoint(out / "latest", restore, optims)
        if is_main(info):
            print(f"resumed from {out / 'latest'} at step {step}", file=sys.stderr)
    elif getattr(args, "init", ""):
        warm_start(netG, netE, config, args.init)
        if is_main(info):
            print(f"generator warm-started from {args.init} (a fresh discriminator)", file=sys.stderr)
    if netG_ema is not None:
        if not ema_restored:  # a new average (or one added to a run that had none) starts at G
            netG_ema.load_state_dict(unwrap(netG).state_dict())
        ckpt_nets["netG_ema"] = netG_ema
    shipped = netG_ema if netG_ema is not None else netG  # sampled, snapshotted and exported
    deadline = time.monotonic() + 60 * args.minutes if getattr(args, "minutes", 0) else None
    decay_s = 60 * float(getattr(args, "decay_minutes", 0.0))
    if is_main(info):
        out.mkdir(parents=True, exist_ok=True)
        resume_cfg.write_text(json.dumps(config, indent=1))
    features = None
    if not args.no_vgg:
        from ..metrics.features import load_features

        features = load_features()
        if features is None and is_main(info):
            print("warning: no VGG19/MobileNetV2 file in the weights folder; training without the VGG loss",
                  file=sys.stderr)
        elif features is not None:
            features = features.to(info.device)
    vgg_weights = _vgg_weights(features) if features is not None else {}
    G = wrap_ddp(netG, info, find_unused=True)
    D = wrap_ddp(netD, info)
    E = wrap_ddp(netE, info) if netE is not None else None
    loader = infinite_loader(data, args.batch, info=info, seed=args.seed, num_workers=getattr(args, "workers", 0))
    bar = ProgressBar(args.steps, desc="train panoptic" if config["mode"] == "panoptic" else "train spade",
                      initial=step) if is_main(info) else None
    fixed = next(infinite_loader(data, min(4, len(data)), shuffle=False))
    last: dict[str, float] = {}
    saved_at = None  # the step of this run's last checkpoint
    netG.train()
    netD.train()
    while step < args.steps:
        if deadline is not None and time.monotonic() >= deadline:
            break  # the wall-time budget is spent: save and export below
        batch = next(loader)
        real = batch["image"].to(info.device)
        semantic = batch["semantic"].to(info.device)
        ids = batch["ids"].to(info.device)
        decay = linear_decay(step, args.steps - args.decay_steps, args.steps) if args.decay_steps else 1.0
        if deadline is not None and decay_s > 0:  # the wall-time budget's last minutes
            decay *= min(1.0, max(0.0, deadline - time.monotonic()) / decay_s)
        for group in opt_g.param_groups:
            group["lr"] = lr_g * decay
        for group in opt_d.param_groups:
            group["lr"] = lr_d * decay
        # ---- generator step
        z, kld = None, None
        if E is not None:
            mu, logvar = E(real)
            z = reparameterize(mu, logvar)
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * LAMBDA_KLD
        fake = G(semantic, ids, z)
        pred_fake, pred_real = _discriminate(D, semantic, fake, real)
        g_gan = L.hinge_g_loss(pred_fake)
        g_feat = L.feature_matching_loss(pred_fake, pred_real) * LAMBDA_FEAT
        loss_g = g_gan + g_feat
        last = {"g_gan": g_gan.item(), "g_feat": g_feat.item()}
        if features is not None:
            g_vgg = L.perceptual_loss(features(fake), features(real), vgg_weights) * LAMBDA_VGG
            loss_g = loss_g + g_vgg
            last["g_vgg"] = g_vgg.item()
        if kld is not None:
            loss_g = loss_g + kld
            last["kld"] = kld.item()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # ---- discriminator step
        pred_fake, pred_real = _discriminate(D, semantic, fake.detach(), real)
        loss_d = L.hinge_d_loss(pred_real, pred_fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        last["d"] = loss_d.item()
        if not all(np.isfinite(v) for v in last.values()):
            raise RuntimeError(f"training diverged at step {step}: {last}")
        if netG_ema is not None:
            ema_update(netG_ema, netG, beta=ema_beta)
        step += 1
        if bar is not None:
            bar.update(1, **{k: round(v, 3) for k, v in last.items()})
        if is_main(info) and (step % args.sample_every == 0 or step == args.steps):
            _write_samples(out / "samples" / f"{step:06d}.png", shipped, fixed, config, info)
        if is_main(info) and (step % args.save_every == 0 or step == args.steps):
            save_checkpoint(out / "latest", ckpt_nets, optims, step, {"config": config})
            saved_at = step
        if is_main(info) and getattr(args, "snapshot_every", 0) and step % args.snapshot_every == 0:
            keep = {"netG": shipped, **({"netE": netE} if netE is not None else {})}
            from ..weights import save_state_dicts

            save_state_dicts({k: unwrap(m).state_dict() for k, m in keep.items()},
                             out / "snapshots" / f"{step:06d}" / "nets.safetensors", metadata={"step": str(step)})
    # stopped by the wall-time budget (possibly before a first step, e.g. on a busy machine): save
    if is_main(info) and saved_at != step:
        save_checkpoint(out / "latest", ckpt_nets, optims, step, {"config": config})
        _write_samples(out / "samples" / f"{step:06d}.png", shipped, fixed, config, info)
    if bar is not None:
        bar.close()
    summary = {"steps": step, "losses": last, "out": str(out), "config": config, "rank": info.rank,
               "vgg": features.name if features is not None else None}
    if is_main(info) and args.export:
        summary["export"] = export(out, args.export, command=args.command_line, default=args.default)
    cleanup_distributed()
    return summary


def warm_start(netG: nn.Module, netE: nn.Module | None, config: Mapping[str, Any], spec: str) -> None:
    """Load a trained generator (manifest name or run folder) into ``netG`` (and ``netE``) before
    training: the same architecture, possibly another resolution (SPADE's weights do not depend on
    it), so a 64² model starts a 128² run (progressive resolution). A panoptic run may also start
    from a semantic-only SPADE model: the two share every parameter name but the upsampling hole
    encoders, which keep this run's fresh initialisation."""
    from ..weights import load_strict

    nets, source_config, label = load_generator(spec, torch.device("cpu"))
    keys = ("label_nc", "ngf", "spade_hidden", "num_upsampling_layers", "use_vae", "instance_edge",
            "contain_dontcare_label", "z_dim")
    differ = [k for k in keys if source_config.get(k) != config.get(k)]
    if source_config.get("mode") != config.get("mode") and config.get("mode") != "panoptic":
        differ.append("mode (a SPADE run cannot start from a panoptic model)")
    if differ:
        raise InputError(f"cannot warm-start from {label}: its {', '.join(differ)} differ from this run's config")
    targets = {"netG": netG, **({"netE": netE} if netE is not None else {})}
    state = {k: nets[k].state_dict() for k in targets}
    # Runs may differ in plain levels, which have no upsampling hole encoders: the source's extra
    # encoders are dropped, and encoders the source lacks keep this run's fresh initialisation.
    own = netG.state_dict()
    source = {k: v for k, v in state["netG"].items() if k in own or not _is_hole_encoder(k)}
    state["netG"] = {**{k: v for k, v in own.items() if _is_hole_encoder(k) and k not in source}, **source}
    load_strict(targets, state, source=label)


def _is_hole_encoder(key: str) -> bool:
    return key.startswith("ups.") and ".encode." in key


def _discriminate(D: nn.Module, semantic: torch.Tensor, fake: torch.Tensor, real: torch.Tensor):
    """SPADE runs D once on [fake; real] (each concatenated with the semantic map) and splits."""
    both = torch.cat([torch.cat([semantic, fake], 1), torch.cat([semantic, real], 1)], 0)
    preds = D(both)
    n = fake.shape[0]
    pred_fake = [[f[:n] for f in scale] for scale in preds]
    pred_real = [[f[n:] for f in scale] for scale in preds]
    return pred_fake, pred_real


@torch.no_grad()
def _write_samples(path: Path, netG: nn.Module, batch: Mapping[str, torch.Tensor], config: Mapping[str, Any],
                   info: DistInfo) -> None:
    g = unwrap(netG)
    was = g.training
    g.eval()
    fake = g(batch["semantic"].to(info.device), batch["ids"].to(info.device)).cpu()
    g.train(was)
    edges = torch.stack([torch.from_numpy(instance_edges(i.numpy())) for i in batch["ids"]])[:, None] * 2 - 1
    save_grid(path, [colour_labels(batch["labels"], config.get("palette")), edges, batch["image"], fake])


def export(run: Path, name: str, *, command: str, default: bool = False) -> str:
    """Copy the run's inference networks into the weights folder and register them."""
    from ..weights import Manifest, read_safetensors, register_file, save_state_dicts, split_subnets

    config = json.loads((Path(run) / "config.json").read_text())
    keep = _inference_subnets(split_subnets(read_safetensors(Path(run) / "latest" / "nets.safetensors")))
    manifest = Manifest()
    path = manifest.root / f"{name}.safetensors"
    save_state_dicts(keep, path, metadata={"family": "panoptic"})
    config_name = next((k for k, v in CONFIGS.items() if v == config), "custom")
    register_file(Manifest(), name=name, family="panoptic", config_name=config_name, config=config, path=path,
                  provenance={"kind": "trained-here", "command": command},
                  description=f"{config['mode']} SPADE generator trained here "
                              f"({config['crop_size']}², ngf {config['ngf']})",
                  extra={"default": True} if default else {})
    return str(path)


# ==============================================================================================
# Instance-boundary accuracy
# ==============================================================================================
def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the luminance of a uint8 H×W×3 image."""
    y = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    p = np.pad(y, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + ½P(pos = neg) (Mann-Whitney U / (|pos|·|neg|))."""
    both = np.concatenate([pos, neg])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both), np.float64)
    sorted_vals = both[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return out


def touching_boundary(labels: np.ndarray, instances: np.ndarray | None,
                      things: Sequence[int] | None = None) -> np.ndarray:
    """Pixels on a boundary between two instances of the same thing class (both sides marked);
    ``things`` limits the classes."""
    lab = np.asarray(labels)
    inst = np.asarray(instances) if instances is not None else np.zeros_like(lab)
    ids = panoptic_ids(lab, instances)
    is_thing = (inst != 0) & (inst != lab)
    if things is not None:
        is_thing &= np.isin(lab, list(things))
    same_class = np.zeros(ids.shape, bool)
    for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                 ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        m = (ids[a] != ids[b]) & (lab[a] == lab[b]) & is_thing[a] & is_thing[b]
        same_class[a] |= m
        same_class[b] |= m
    return same_class


def boundary_scores(image: np.ndarray, labels: np.ndarray, instances: np.ndarray | None,
                    things: Sequence[int] | None = None) -> dict[str, float]:
    """How well an image shows the panoptic map's boundaries.

    Gradient magnitude (Sobel, luminance) at boundary pixels vs interior pixels (≥ 3 px from any
    boundary): ``boundary_auc`` over all segment boundaries, ``instance_auc`` over boundaries
    between two instances of the SAME class (the paper's failure case: touching zebras), and
    ``instance_acc``: the fraction of those pixels above the interior's 90th percentile
    (chance 0.1). NaN when the map has no such boundary.
    """
    ids = panoptic_ids(labels, instances)
    mag = _gradient_magnitude(image)
    same_class = touching_boundary(labels, instances, things)
    edges = instance_edges(ids) > 0
    interior = ~_dilate(edges, 3)
    out = {"boundary_auc": float("nan"), "instance_auc": float("nan"), "instance_acc": float("nan")}
    if interior.sum() == 0:
        return out
    neg = mag[interior]
    if edges.any():
        out["boundary_auc"] = _auc(mag[edges], neg)
    if same_class.any():
        out["instance_auc"] = _auc(mag[same_class], neg)
        out["instance_acc"] = float((mag[same_class] > np.percentile(neg, 90)).mean())
    return out


# ==============================================================================================
# Evaluation
# ==============================================================================================
def _checkpoint_subnets(folder: Path) -> set[str]:
    from ..weights import read_safetensors, split_subnets

    return set(split_subnets(read_safetensors(Path(folder) / "nets.safetensors")))


def _inference_subnets(state: Mapping[str, Any]) -> dict[str, Any]:
    """The networks that generate, from a checkpoint: the EMA generator where the run kept one."""
    keep = {k: v for k, v in state.items() if k in ("netG", "netE")}
    if "netG_ema" in state:
        keep["netG"] = state["netG_ema"]
    return keep


def load_generator(spec: str, device: torch.device) -> tuple[dict[str, nn.Module], dict[str, Any], str]:
    """A manifest entry name, or a training run folder (``config.json`` + ``latest/``)."""
    from ..weights import Manifest, build_and_load, load_strict, read_safetensors, split_subnets

    path = Path(spec)
    run = path.parent.parent if (path / "nets.safetensors").exists() else path  # a snapshot: run/snapshots/N/
    if path.is_dir() and (run / "config.json").exists():
        config = json.loads((run / "config.json").read_text())
        nets = build(config)
        weights = path / "nets.safetensors" if run != path else path / "latest" / "nets.safetensors"
        state = _inference_subnets(split_subnets(read_safetensors(weights)))
        load_strict(nets, {k: v for k, v in state.items() if k in nets}, source=str(weights))
        label = path.name if run == path else f"{run.name}@{path.name}"
    else:
        manifest = Manifest()
        entry = manifest.get(spec)
        if entry.family != "panoptic":
            raise InputError(f"{spec!r} is a {entry.family} model, not a panoptic/SPADE one")
        nets, config, label = build_and_load(entry, manifest), dict(entry.config), spec
    return {k: m.to(device).eval() for k, m in nets.items()}, config, label


@torch.no_grad()
def evaluate(data: Path, models: Sequence[str], *, split: str = "val", n: int | None = None, seed: int = 0,
             device: str = "cpu", out: Path | None = None, batch: int = 8) -> dict[str, Any]:
    """Generate ``split`` with each model and score it; returns {model: metrics} (+ the real images' scores).
    Scored at the first model's resolution: a model of another resolution generates from the maps at
    its own size, and its outputs are resized (bilinear) to the scoring size."""
    from ..devices import pick_device

    dev = pick_device(device)
    loaded = [load_generator(m, dev) for m in models]
    size = int(loaded[0][1]["crop_size"])
    ds = PanopticScenes(Path(data), split, size, loaded[0][1], limit=n)
    maps = [ds.maps(i) for i in range(len(ds))]
    real = np.stack([m[0] for m in maps])
    things = None
    if loaded[0][1].get("palette"):
        try:
            things = sorted(load_palette(loaded[0][1]["palette"]).things) or None
        except InputError:
            things = None
    report: dict[str, Any] = {"data": str(data), "split": split, "n": len(ds), "size": size, "models": {}}
    generated: dict[str, np.ndarray] = {}
    for nets, config, label in loaded:
        own = int(config["crop_size"])
        own_ds = ds if own == size else PanopticScenes(Path(data), split, own, config, limit=n)
        own_maps = maps if own == size else [own_ds.maps(i) for i in range(len(own_ds))]
        generated[label] = _generate(nets, config, [(lab, inst) for _, lab, inst in own_maps], size, dev,
                                     seed=seed, batch=batch)
    sources = {"real": real, **generated}
    features = _load_eval_features()
    segmenter = _load_eval_segmenter()
    colours = _class_colours(Path(data), size, loaded[0][1])
    real_t = torch.from_numpy(real).permute(0, 3, 1, 2).float() / 127.5 - 1
    for label, imgs in sources.items():
        metrics = _image_scores(imgs, [(lab, inst) for _, lab, inst in maps], things, colours)
        if label != "real":
            metrics["mode"] = next(c["mode"] for _, c, lab_ in loaded if lab_ == label)
            metrics["generated_size"] = next(int(c["crop_size"]) for _, c, lab_ in loaded if lab_ == label)
            if features is not None and len(imgs) >= 2:
                from ..metrics.distribution import fd_name, frechet_distance_images

                fake_t = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
                metrics[fd_name(features)] = frechet_distance_images(features, fake_t, real_t)
        if segmenter is not None:
            from ..metrics.segmenter import evaluate_segmenter

            labels = np.stack([m[1] for m in maps]).astype(np.int64)
            metrics.update({f"seg_{k}": v for k, v in evaluate_segmenter(segmenter, imgs, labels).items()})
        report["models" if label != "real" else "reference"] = (
            {**report["models"], label: metrics} if label != "real" else metrics)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval_panoptic.json").write_text(json.dumps(report, indent=1))
        k = min(16, len(maps))  # the contact sheet: 16 test cases (TRAINING.md)
        labels_rgb = colour_labels(torch.from_numpy(np.stack([m[1] for m in maps[:k]])).long(),
                                   loaded[0][1].get("palette"))
        rows = [labels_rgb, real_t[:k]] + [torch.from_numpy(v[:k]).permute(0, 3, 1, 2).float() / 127.5 - 1
                                           for v in generated.values()]
        save_grid(out / "side_by_side.png", rows)
    return report


def _generate(nets: Mapping[str, nn.Module], config: Mapping[str, Any],
              maps: Sequence[tuple[np.ndarray, np.ndarray | None]], size: int, dev: torch.device, *,
              seed: int = 0, batch: int = 8) -> np.ndarray:
    """uint8 (N, size, size, 3) images of (labels, instances) maps given at the model's own size;
    a model of another size is resized (bilinear) to ``size`` to be scored beside the others."""
    gen = torch.Generator().manual_seed(seed)
    imgs = []
    for i in range(0, len(maps), batch):
        chunk = maps[i:i + batch]
        sems, idss = zip(*(conditioning(lab, inst, config) for lab, inst in chunk), strict=True)
        z = (torch.randn(len(chunk), int(config.get("z_dim", 256)), generator=gen).to(dev)
             if config.get("use_vae") else None)
        fake = nets["netG"](torch.cat(sems).to(dev), torch.cat(idss).to(dev), z)
        imgs.append(np.stack([to_uint8_image(f) for f in fake]))
    out = np.concatenate(imgs)
    if out.shape[1] != size:
        out = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in out])
    return out


def _image_scores(imgs: np.ndarray, maps: Sequence[tuple[np.ndarray, np.ndarray | None]],
                  things: Sequence[int] | None, colours: ClassColours | None) -> dict[str, Any]:
    """Instance-boundary and speckle measures of images generated from (labels, instances) maps,
    averaged over the images (small segments: summed)."""
    scores = [{**boundary_scores(img, lab, inst, things), **speckle_scores(img, lab, panoptic_ids(lab, inst), colours)}
              for img, (lab, inst) in zip(imgs, maps, strict=True)]
    metrics: dict[str, Any] = {k: _nanmean([s[k] for s in scores]) for k in scores[0]}
    metrics["small_segments"] = float(sum(s["small_segments"] for s in scores))
    return metrics


def _class_colours(data: Path, size: int, config: Mapping[str, Any], limit: int = 120) -> ClassColours | None:
    """Each class's colours in the real photos of ``data``'s train split (None where it has none)."""
    try:
        ds = PanopticScenes(data, "train", size, config, limit=limit)
    except (FileNotFoundError, InputError):
        return None
    if len(ds) == 0:
        return None
    maps = [ds.maps(i) for i in range(len(ds))]
    return ClassColours.fit([m[0] for m in maps], [m[1] for m in maps])


@torch.no_grad()
def evaluate_painted(maps_dir: Path, models: Sequence[str], *, data: Path, device: str = "cpu",
                     out: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Score models on painted panoptic maps (``maps_dir/painted_*.png`` + ``maps_dir/instances/``),
    which have no photo: speckle (:mod:`engine.metrics.speckle`, class colours from ``data``'s
    train photos) and the instance-boundary measure. Writes ``painted.json``, ``painted.png``
    (map | each model) and ``touching.png`` (crops where instances of one class touch, 3× enlarged)."""
    from ..devices import pick_device

    dev = pick_device(device)
    loaded = [load_generator(m, dev) for m in models]
    size = int(loaded[0][1]["crop_size"])
    names = sorted(Path(maps_dir).glob("painted_*.png"))
    if not names:
        raise InputError(f"{maps_dir} holds no painted_*.png maps")
    full = [(load_label_map(p), load_instance_map(Path(maps_dir) / "instances" / p.name)) for p in names]
    colours = _class_colours(Path(data), size, loaded[0][1])
    things = sorted(load_palette(loaded[0][1]["palette"]).things) if loaded[0][1].get("palette") else None
    maps = [(resize_nearest(lab, size).astype(np.int32), resize_nearest(inst, size).astype(np.int32))
            for lab, inst in full]
    report: dict[str, Any] = {"maps": str(maps_dir), "n": len(maps), "size": size, "models": {}}
    generated = {}
    for nets, config, label in loaded:
        own = int(config["crop_size"])
        own_maps = maps if own == size else [(resize_nearest(lab, own).astype(np.int32),
                                              resize_nearest(inst, own).astype(np.int32)) for lab, inst in full]
        imgs = generated[label] = _generate(nets, config, own_maps, size, dev, seed=seed)
        metrics = _image_scores(imgs, maps, things, colours)
        metrics["mode"] = config["mode"]
        metrics["generated_size"] = own
        report["models"][label] = metrics
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "painted.json").write_text(json.dumps(report, indent=1))
        labels_rgb = colour_labels(torch.from_numpy(np.stack([m[0] for m in maps])).long(),
                                   loaded[0][1].get("palette"))
        rows = [labels_rgb] + [torch.from_numpy(v).permute(0, 3, 1, 2).float() / 127.5 - 1
                               for v in generated.values()]
        save_grid(out / "painted.png", rows)
        _touching_sheet(out / "touching.png", maps, labels_rgb, generated, things)
    return report


def _touching_sheet(path: Path, maps: Sequence[tuple[np.ndarray, np.ndarray]], labels_rgb: torch.Tensor,
                    generated: Mapping[str, np.ndarray], things: Sequence[int] | None, crop: int = 40) -> None:
    """One row per place where two instances of one thing class touch: the map (instance edges in
    black) and each model's output, cropped around it and enlarged 3×."""
    cells: list[list[np.ndarray]] = []
    for i, (lab, inst) in enumerate(maps):
        ids = panoptic_ids(lab, inst)
        edge = instance_edges(ids) > 0
        for cls in things or []:
            same = touching_boundary(lab, inst, [cls])
            if not same.any():
                continue
            ys, xs = np.nonzero(same)
            h = lab.shape[0]
            y0 = int(np.clip(ys.mean() - crop // 2, 0, h - crop))
            x0 = int(np.clip(xs.mean() - crop // 2, 0, h - crop))
            window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
            drawn = ((labels_rgb[i].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
            drawn[edge] = 0
            row = [drawn[window]] + [g[i][window] for g in generated.values()]
            cells.append([cv2.resize(c, (3 * crop, 3 * crop), interpolation=cv2.INTER_NEAREST) for c in row])
    if cells:  # a row per case: map | each model
        save_grid(path, [torch.from_numpy(np.stack(row)).permute(0, 3, 1, 2).float() / 127.5 - 1 for row in cells])


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _load_eval_features():
    try:
        from ..metrics.features import load_features
    except ImportError:
        return None
    return load_features()


def _load_eval_segmenter():
    try:
        from ..metrics.segmenter import load_segmenter

        return load_segmenter()
    except Exception:  # no registered segmenter: mIoU is simply not reported
        return None


def format_report(report: Mapping[str, Any]) -> str:
    keys: list[str] = []
    for m in [report["reference"], *report["models"].values()]:
        keys += [k for k in m if k not in keys and k != "mode"]
    cols = ["real", *report["models"]]
    rows = [f"{'metric':<22}" + "".join(f"{c[:18]:>20}" for c in cols)]
    for k in keys:
        vals = [report["reference"].get(k)] + [m.get(k) for m in report["models"].values()]
        rows.append(f"{k:<22}" + "".join(f"{v:>20.4f}" if isinstance(v, float) else f"{v:>20}" if isinstance(v, int)
                                         else f"{'-':>20}" for v in vals))
    rows.append(f"{'mode':<22}" + f"{'-':>20}"
                + "".join(f"{m.get('mode', '?'):>20}" for m in report["models"].values()))
    return "\n".join(rows)


# ==============================================================================================
# CLI
# ==============================================================================================
def _cmd_train(args: argparse.Namespace) -> int:
    argv = sys.argv[1:]
    if argv[:2] != ["train", "panoptic"]:  # called through main(argv) from Python: rebuild the command
        argv = ["train", "panoptic", "--data", str(args.data), "--config", args.config, "--steps", str(args.steps),
                "--out", str(args.out)]
    args.command_line = "i2i " + " ".join(shlex.quote(a) for a in argv)
    summary = train(args)
    if summary["rank"] == 0:
        print(json.dumps({k: v for k, v in summary.items() if k not in ("config", "rank")}, indent=1))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, int(args.threads)))
    report = evaluate(Path(args.data), [args.model, args.baseline, *args.also], split=args.split, n=args.n,
                      seed=args.seed, device=args.device, out=Path(args.out) if args.out else None)
    print(format_report(report))
    if args.out:
        print(f"wrote {Path(args.out) / 'eval_panoptic.json'} and side_by_side.png")
    if args.painted:
        painted = evaluate_painted(Path(args.painted), [args.model, args.baseline, *args.also], data=Path(args.data),
                                   device=args.device, out=Path(args.out) if args.out else None, seed=args.seed)
        print(f"\npainted maps ({args.painted}, {painted['n']} maps; no photos: the real photos' rates are the "
              f"test split's, above)")
        print(format_report({**painted, "reference": {}}))
        if args.out:
            print(f"wrote {Path(args.out) / 'painted.json'}, painted.png and touching.png")
    return 0


def register_cli(groups: Any) -> None:
    p = groups.train.add_parser("panoptic",
                                help="train the panoptic generator (or, --mode semantic, its SPADE baseline)")
    p.add_argument("--data", default="data/scenes", help="a `scenes`-layout folder (image/label/instance)")
    p.add_argument("--config", default="panoptic_scenes", help=f"base config: {', '.join(CONFIGS)}")
    p.add_argument("--mode", choices=["panoptic", "semantic"], default=None, help="override the config's mode")
    p.add_argument("--size", type=int, default=None, help="training resolution (crop_size)")
    p.add_argument("--ngf", type=int, default=None)
    p.add_argument("--spade-hidden", type=int, default=None)
    p.add_argument("--plain-levels", type=int, default=None,
                   help="panoptic mode: keep the lowest N resolution levels plain SPADE (default 0: none)")
    p.add_argument("--vae", action="store_true", help="train SPADE's VAE style encoder too (multimodal)")
    p.add_argument("--ndf", type=int, default=64, help="discriminator width (SPADE: 64)")
    p.add_argument("--n-layers-d", type=int, default=4)
    p.add_argument("--num-d", type=int, default=2)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4, help="base lr; TTUR gives G lr/2 and D lr·2")
    p.add_argument("--no-ttur", action="store_true", help="same lr for G and D with --beta1/--beta2")
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--decay-steps", type=int, default=0, help="decay the lr linearly to 0 over the last N steps")
    p.add_argument("--no-vgg", action="store_true", help="no VGG perceptual loss")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--out", required=True, help="run folder (checkpoints, samples, config.json)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest")
    p.add_argument("--init", default="", help="warm-start the generator from a manifest entry or run folder "
                                              "(same architecture; may be another resolution)")
    p.add_argument("--minutes", type=float, default=0, help="stop after this much wall time (0: --steps only)")
    p.add_argument("--decay-minutes", type=float, default=0,
                   help="with --minutes: decay the lr linearly to 0 over the budget's last M minutes")
    p.add_argument("--ema-beta", type=float, default=0.999,
                   help="EMA of the generator's weights, exported (0: export the raw generator)")
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="keep the generator every N steps under OUT/snapshots/ (0: none)")
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--export", default="", help="register the final netG in the weights folder under this name")
    p.add_argument("--default", action="store_true", help="mark the export the family's default model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_train)

    p = groups.top.add_parser("eval-panoptic", help="side-by-side evaluation: panoptic model vs its SPADE baseline")
    p.add_argument("--data", default="data/scenes")
    p.add_argument("--model", required=True, help="panoptic model: manifest name or training run folder")
    p.add_argument("--baseline", required=True, help="semantic-only SPADE baseline: manifest name or run folder")
    p.add_argument("--also", action="append", default=[],
                   help="another model to score in the same run (repeatable; e.g. the current default)")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--n", type=int, default=None, help="at most N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="", help="folder for eval_panoptic.json and side_by_side.png")
    p.add_argument("--painted", default="", help="a folder of painted maps (painted_*.png + instances/), e.g. "
                                                 "assets/examples/painted: speckle and touching instances, no photos")
    p.set_defaults(func=_cmd_eval)


__all__ = ["PanopticScenes", "make_config", "train", "export", "boundary_scores", "touching_boundary", "evaluate",
           "evaluate_painted",
           "load_generator",
           "format_report", "register_cli"]
