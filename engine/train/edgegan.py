"""Training of EdgeGAN (objects) and of the scene background network: ``i2i train edgegan``.

Objects (``--stage objects``), as the official ``edgegan/models/edgegan.py``:
- data: pairs [edge | photo] with a class. Either the SketchyCOCO layout (``<class>/<id>.png`` with
  the edge map in the left half and the photo in the right) or any labelled image folder
  (``<class>/*.png`` photos) whose edge maps are made by a documented extractor (Canny or XDoG,
  :mod:`engine.inputs.sketch`);
- z ~ U(−1, 1)^z_dim, the batch's classes as one-hot condition;
- per step, in the official order: D_joint, D_image, D_edge (WGAN-GP, λ = 10; D_image / D_edge see
  their input resized to ``dis_size`` by TF 1's legacy bicubic), classifier C (focal cross-entropy γ = 2 on real
  images), G1 + G2 (−D terms; G2 also 0.5·CE(C(G2(z)), class)), encoder E (10·L1(z, E(G1(z)))),
  G1 + G2 again;
- RMSProp, lr 2e-4, decay 0.9 as TF's RMSPropOptimizer.

Background (``--stage background``): the pix2pix-style U-Net from {background strokes, foreground
pixels, foreground mask} to the scene photo, hinge loss with a spectral-norm PatchGAN + 100·L1, Adam
(2e-4, β = 0.5, 0.999). Data: scene sketches (``<split>/scene/<id>.json`` + ``<id>_image.png``) or the
``scenes`` layout (``image/``, ``instance/``: thing instances are the foreground, the background
strokes are Canny edges of the rest).

Checkpoints (``--out`` folder, resumable with ``--resume``) hold every network; ``--export NAME``
writes the inference networks to ``weights/NAME.safetensors`` and registers them.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..inputs.panoptic import THING_MULTIPLIER
from ..inputs.sketch import EdgeMethod, binarise, edge_map, fill_strokes, load_scene_sketch
from ..nets.edgegan import CONFIGS, build, tf_legacy_resize_bicubic
from ..requests.base import InputError
from .common import infinite_loader, is_main, list_images, load_checkpoint, save_checkpoint, save_grid, seed_everything
from .losses import focal_loss, gradient_penalty, hinge_d_loss, hinge_g_loss

LAMBDA_GP = 10.0
ZL_WEIGHT = 10.0     # official stage1_zl_loss
AC_G_WEIGHT = 0.5    # official ld2 in get_acgan_loss_focal
FOCAL_GAMMA = 2.0
BG_L1_WEIGHT = 100.0
INFERENCE_SUBNETS = ("encoder", "edge_generator", "image_generator", "background_generator")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def _read_rgb(path: Path) -> np.ndarray:
    from ..io import load_image

    return load_image(path)


class EdgePairDataset(Dataset):
    """``root/<class>/*.png``: [edge | photo] side-by-side pairs (width = 2 × height) are split; any
    other image is a photo whose edge map the extractor draws. Items: (3×S×2S [edge | photo] in
    [-1, 1], class index). Horizontal flips (both halves together) augment when ``flip``."""

    def __init__(self, root: Path, size: int, classes: Sequence[str] | None = None,
                 edge_method: EdgeMethod = "canny", flip: bool = True) -> None:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"{root} is not a folder")
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "scene" and list_images(p))
        if not found:
            raise InputError(f"{root} has no class folders with images (expected {root}/<class>/*.png)")
        self.classes = list(classes) if classes else found
        missing = [c for c in self.classes if c not in found and c.replace(" ", "_") not in found]
        if classes and len(missing) == len(self.classes):
            raise InputError(f"{root} has none of the classes {', '.join(self.classes)} (found {', '.join(found)})")
        self.items: list[tuple[Path, int]] = []
        for i, c in enumerate(self.classes):
            folder = root / c if (root / c).is_dir() else root / c.replace(" ", "_")
            self.items += [(p, i) for p in list_images(folder)]
        self.size, self.edge_method, self.flip = size, edge_method, flip

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(edge, photo) uint8 S×S×3 each."""
        path, _ = self.items[idx]
        rgb = _read_rgb(path)
        h, w = rgb.shape[:2]
        if w == 2 * h:
            edge, photo = rgb[:, :h], rgb[:, h:]
        else:
            photo = rgb
            edge = np.repeat(edge_map(rgb, self.edge_method)[..., None], 3, axis=2)
        s = self.size

        def resize(a):
            return cv2.resize(a, (s, s), interpolation=cv2.INTER_AREA if a.shape[0] > s else cv2.INTER_LINEAR)

        return resize(edge), resize(photo)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        for attempt in range(len(self.items)):
            try:
                edge, photo = self.pair(idx)
                break
            except InputError:  # a file removed or rewritten while training (data rebuilt): use the next
                if attempt == len(self.items) - 1:
                    raise
                idx = (idx + 1) % len(self.items)
        joint = np.concatenate([edge, photo], axis=1)
        x = torch.from_numpy(joint).permute(2, 0, 1).float() / 127.5 - 1.0
        if self.flip and random.random() < 0.5:
            s = self.size
            x = torch.cat([x[:, :, :s].flip(2), x[:, :, s:].flip(2)], 2)
        return x, self.items[idx][1]


class BackgroundDataset(Dataset):
    """Scene training triples at ``size``×``size``: 5-channel input (see
    :func:`engine.tasks.scene.background_inputs`) and the 3-channel target photo in [-1, 1]."""

    def __init__(self, root: Path, size: int, limit: int | None = None) -> None:
        from ..tasks.scene import background_inputs

        root = Path(root)
        self.samples: list[tuple[torch.Tensor, torch.Tensor]] = []
        scene_dir, image_dir, inst_dir = root / "scene", root / "image", root / "instance"
        if scene_dir.is_dir() and list(scene_dir.glob("*.json")):
            for js in sorted(scene_dir.glob("*.json"))[:limit]:
                photo_path = js.with_name(js.stem + "_image.png")
                if not photo_path.exists():
                    continue
                try:
                    scene = load_scene_sketch(js)
                    photo = _read_rgb(photo_path)
                except InputError:  # half-written or removed while the data is rebuilt
                    continue
                if (photo.shape[1], photo.shape[0]) != scene.size:
                    photo = cv2.resize(photo, scene.size, interpolation=cv2.INTER_AREA)
                mask = np.zeros(photo.shape[:2], bool)
                for _, (x0, y0, x1, y1), bitmap in scene.objects:
                    strokes = np.zeros_like(mask)
                    strokes[y0:y1, x0:x1] = binarise(bitmap)[y0:y1, x0:x1]
                    mask |= fill_strokes(strokes)
                self._add(background_inputs, scene.background, photo, mask, size)
        elif image_dir.is_dir() and inst_dir.is_dir():
            from ..io import load_instance_map

            for img_path in list_images(image_dir)[:limit]:
                inst_path = inst_dir / (img_path.stem + ".png")
                if not inst_path.exists():
                    continue
                try:
                    photo = _read_rgb(img_path)
                    mask = load_instance_map(inst_path) >= THING_MULTIPLIER  # thing instances
                except InputError:
                    continue
                bg = edge_map(np.where(mask[..., None], 255, photo).astype(np.uint8), "canny")
                self._add(background_inputs, bg, photo, mask, size)
        else:
            raise InputError(f"{root} has neither scene sketches (scene/*.json + *_image.png) "
                             f"nor a scenes layout (image/ + instance/)")
        if not self.samples:
            raise InputError(f"{root}: no usable scene samples")

    def _add(self, make, background, photo, mask, size) -> None:
        x = make(background, photo, mask, (size, size))[0]
        y = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        self.samples.append((x, torch.from_numpy(y).permute(2, 0, 1).float() / 127.5 - 1.0))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.samples[idx]
        if random.random() < 0.5:
            return x.flip(2), y.flip(2)
        return x, y


# ---------------------------------------------------------------------------------------------
# Object training
# ---------------------------------------------------------------------------------------------
def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF 1's ``resize_images(method=2)``: the legacy bicubic (no half-pixel offset), as the official
    pipeline resizes the image and edge discriminators' inputs."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return tf_legacy_resize_bicubic(x, size)


def _rmsprop(module: nn.Module, lr: float) -> torch.optim.Optimizer:
    # TF RMSPropOptimizer: decay 0.9, no momentum (its ε sits inside the sqrt; negligible here)
    return torch.optim.RMSprop(module.parameters(), lr=lr, alpha=0.9, eps=1e-10)


class ObjectTrainer:
    """One EdgeGAN training step = the official seven updates."""

    def __init__(self, nets: Mapping[str, nn.Module], config: Mapping[str, Any], lr: float = 2e-4) -> None:
        self.nets, self.config = nets, config
        self.z_dim = int(config["z_dim"])
        self.size = int(config["image_size"])
        self.dis_size = int(config.get("dis_size", 128))
        names = ("joint_discriminator", "image_discriminator", "edge_discriminator", "classifier",
                 "edge_generator", "image_generator", "encoder")
        self.optims = {n: _rmsprop(nets[n], lr) for n in names}

    def _g_step(self, z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        n = self.nets
        edge_f, img_f = n["edge_generator"](z, labels), n["image_generator"](z, labels)
        joint_g = -n["joint_discriminator"](torch.cat([edge_f, img_f], 3)).mean()
        edge_g = -n["edge_discriminator"](_resize(edge_f, self.dis_size)).mean()
        image_g = -n["image_discriminator"](_resize(img_f, self.dis_size)).mean()
        ac_g = AC_G_WEIGHT * F.cross_entropy(n["classifier"](img_f), labels)
        # G1 minimises joint + edge terms, G2 joint + image + class terms; one backward gives each
        # generator exactly its own loss's gradient since the other terms do not depend on it.
        loss = joint_g + edge_g + image_g + ac_g
        for k in ("edge_generator", "image_generator"):
            self.optims[k].zero_grad(set_to_none=True)
        loss.backward()
        for k in ("edge_generator", "image_generator"):
            self.optims[k].step()
        return {"g_joint": joint_g.item(), "g_ac": ac_g.item()}

    def _d_step(self, name: str, real: torch.Tensor, fake: torch.Tensor) -> float:
        d = self.nets[name]
        loss = d(fake).mean() - d(real).mean() + LAMBDA_GP * gradient_penalty(d, real, fake)
        self.optims[name].zero_grad(set_to_none=True)
        loss.backward()
        self.optims[name].step()
        return loss.item()

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        n, s = self.nets, self.size
        for m in n.values():
            m.train()
        real_edge, real_img = real[..., :s], real[..., s:]
        z = torch.rand(real.shape[0], self.z_dim, device=real.device) * 2 - 1
        # discriminators see one fake batch (the TF graph recomputes G per sess.run with the same z
        # and unchanged G, so that is the same tensor)
        with torch.no_grad():
            edge_f, img_f = n["edge_generator"](z, labels), n["image_generator"](z, labels)
        logs = {"d_joint": self._d_step("joint_discriminator", real, torch.cat([edge_f, img_f], 3))}
        logs["d_image"] = self._d_step("image_discriminator", _resize(real_img, self.dis_size),
                                       _resize(img_f, self.dis_size))
        logs["d_edge"] = self._d_step("edge_discriminator", _resize(real_edge, self.dis_size),
                                      _resize(edge_f, self.dis_size))
        c_loss = focal_loss(n["classifier"](real_img), labels, gamma=FOCAL_GAMMA)
        self.optims["classifier"].zero_grad(set_to_none=True)
        c_loss.backward()
        self.optims["classifier"].step()
        logs["c_focal"] = c_loss.item()
        logs.update(self._g_step(z, labels))
        with torch.no_grad():
            edge_f = n["edge_generator"](z, labels)
        z_rec, _, _ = n["encoder"](edge_f, noise="scalar")
        zl = ZL_WEIGHT * (z_rec - z).abs().mean()
        self.optims["encoder"].zero_grad(set_to_none=True)
        zl.backward()
        self.optims["encoder"].step()
        logs["e_zl"] = zl.item()
        logs.update(self._g_step(z, labels))
        return logs

    @torch.no_grad()
    def samples(self, real: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        """Rows: real edges, G1(E(edge)), G2(E(edge)), real photos."""
        n, s = self.nets, self.size
        for m in n.values():
            m.eval()
        z, _, _ = n["encoder"](real[..., :s], noise="none")
        rows = [real[..., :s], n["edge_generator"](z, labels), n["image_generator"](z, labels), real[..., s:]]
        return rows


class PairArray:
    """Every pair of an :class:`EdgePairDataset` decoded once into memory: ``pixels`` uint8
    N×S×2S×3 ([edge | photo]) and ``labels``; :meth:`batch` draws a random batch in [-1, 1] (both halves
    mirrored together half of the time), channels-last."""

    def __init__(self, dataset: EdgePairDataset) -> None:
        self.size = dataset.size
        self.pixels = torch.from_numpy(np.stack([np.concatenate(dataset.pair(i), 1) for i in range(len(dataset))]))
        self.labels = torch.tensor([c for _, c in dataset.items])

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self), (n,), generator=generator)
        x = self.pixels[idx].permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        flip = torch.rand(n, generator=generator) < 0.5
        s = self.size
        x[flip] = torch.cat([x[flip, :, :, :s].flip(3), x[flip, :, :, s:].flip(3)], 3)
        return x.contiguous(memory_format=torch.channels_last), self.labels[idx]


PAIRED_SUBNETS = ("encoder", "edge_generator", "image_generator")
EDGE_L1, IMAGE_L1, KL_WEIGHT = 1.0, 2.0, 1e-3
PERCEPTUAL_LAYERS = ("block3", "block6", "block13")


class PairedTrainer:
    """EdgeGAN's networks trained on the (edge map, photo) pairs themselves, so that the output follows
    *this* sketch: E reads the edge map, z = μ + ε·σ (one scalar ε, as at inference), G1 reconstructs
    the edge map and G2 the photo (L1, images weighted 2×), a small KL term keeps z near N(0, I).
    Optionally (``perceptual_weight``) the LPIPS-style distance of G2's image to the photo on
    intermediate MobileNetV2 layers (:data:`PERCEPTUAL_LAYERS`) sharpens what L1 blurs.
    The paper's other parts stay as training signals: the joint discriminator D on [edge | image]
    (hinge loss, weight ``adv_weight``; 0 = off) and the classifier C, trained on the real photos,
    whose cross-entropy on G2's output (``ac_weight``) pushes each image towards its class.
    EMA copies of E, G1, G2 (β = ``ema_beta``) are what export ships. Adam (β1 0.5)."""

    def __init__(self, nets: Mapping[str, nn.Module], config: Mapping[str, Any], lr: float = 5e-4,
                 adv_weight: float = 0.0, ac_weight: float = 0.1, ema_beta: float = 0.998,
                 perceptual_weight: float = 0.0) -> None:
        from .common import make_ema

        self.nets, self.config = nets, config
        self.size = int(config["image_size"])
        self.adv_weight, self.ac_weight, self.ema_beta = adv_weight, ac_weight, ema_beta
        self.perceptual_weight, self.features = perceptual_weight, None
        if perceptual_weight > 0:
            from ..metrics.features import load_features

            # intermediate MobileNetV2 layers only (the evaluation's classifier reads the deepest, pooled)
            self.features = load_features(prefer=("mobilenet_v2",), layers={"mobilenet_v2": PERCEPTUAL_LAYERS})
            if self.features is None:
                raise InputError("--perceptual-weight needs MobileNetV2 in weights/ (i2i data fetch-backbone)")
        for k in ("edge_generator", "image_generator"):
            nets[k].norm_per_sample = True  # train the network batch-1 inference runs
        params = [p for k in PAIRED_SUBNETS for p in nets[k].parameters()]
        self.optims = {"autoencoder": torch.optim.Adam(params, lr, betas=(0.5, 0.999)),
                       "classifier": torch.optim.Adam(nets["classifier"].parameters(), lr, betas=(0.5, 0.999)),
                       "joint_discriminator": torch.optim.Adam(nets["joint_discriminator"].parameters(), lr,
                                                               betas=(0.5, 0.999))}
        self.ema = {k: make_ema(nets[k]) for k in PAIRED_SUBNETS}

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        from .common import ema_update

        n, s = self.nets, self.size
        for m in n.values():
            m.train()
        edge, photo = real[..., :s], real[..., s:]
        logs: dict[str, float] = {}
        if self.ac_weight > 0:
            c_loss = F.cross_entropy(n["classifier"](photo), labels)
            self.optims["classifier"].zero_grad(set_to_none=True)
            c_loss.backward()
            self.optims["classifier"].step()
            logs["c_real"] = c_loss.item()
        z, mu, log_sigma = n["encoder"](edge, noise="scalar")
        edge_f, img_f = n["edge_generator"](z, labels), n["image_generator"](z, labels)
        if self.adv_weight > 0:
            fake = torch.cat([edge_f, img_f], 3)
            d = n["joint_discriminator"]
            d_loss = hinge_d_loss(d(real), d(fake.detach()))
            self.optims["joint_discriminator"].zero_grad(set_to_none=True)
            d_loss.backward()
            self.optims["joint_discriminator"].step()
            logs["d_joint"] = d_loss.item()
        rec_edge = EDGE_L1 * (edge_f - edge).abs().mean()
        rec_img = IMAGE_L1 * (img_f - photo).abs().mean()
        kl = KL_WEIGHT * 0.5 * (mu.square() + (2 * log_sigma).exp() - 1 - 2 * log_sigma).mean()
        loss = rec_edge + rec_img + kl
        if self.features is not None:
            from ..metrics.distribution import perceptual_distance

            perc = perceptual_distance(self.features, img_f, photo).mean()
            loss = loss + self.perceptual_weight * perc
            logs["perceptual"] = perc.item()
        if self.adv_weight > 0:
            adv = hinge_g_loss(n["joint_discriminator"](torch.cat([edge_f, img_f], 3)))
            loss = loss + self.adv_weight * adv
            logs["g_adv"] = adv.item()
        if self.ac_weight > 0:
            ac = F.cross_entropy(n["classifier"](img_f), labels)
            loss = loss + self.ac_weight * ac
            logs["g_ac"] = ac.item()
        self.optims["autoencoder"].zero_grad(set_to_none=True)
        loss.backward()
        self.optims["autoencoder"].step()
        for k in PAIRED_SUBNETS:
            ema_update(self.ema[k], n[k], self.ema_beta)
        logs.update(l1_edge=rec_edge.item(), l1_img=rec_img.item(), kl=kl.item())
        return logs

    @torch.no_grad()
    def samples(self, real: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        """Rows: real edges, EMA G1(E(edge)), EMA G2(E(edge)), real photos."""
        s = self.size
        e = self.ema
        z, _, _ = e["encoder"](real[..., :s], noise="none")
        return [real[..., :s], e["edge_generator"](z, labels), e["image_generator"](z, labels), real[..., s:]]


class BackgroundTrainer:
    def __init__(self, nets: Mapping[str, nn.Module], lr: float = 2e-4) -> None:
        self.g, self.d = nets["background_generator"], nets["background_discriminator"]
        self.optims = {"background_generator": torch.optim.Adam(self.g.parameters(), lr, betas=(0.5, 0.999)),
                       "background_discriminator": torch.optim.Adam(self.d.parameters(), lr, betas=(0.5, 0.999))}

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.g.train(), self.d.train()
        fake = self.g(x)
        d_loss = hinge_d_loss(self.d(torch.cat([x, y], 1)), self.d(torch.cat([x, fake.detach()], 1)))
        self.optims["background_discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optims["background_discriminator"].step()
        adv = hinge_g_loss(self.d(torch.cat([x, fake], 1)))
        l1 = BG_L1_WEIGHT * (fake - y).abs().mean()
        self.optims["background_generator"].zero_grad(set_to_none=True)
        (adv + l1).backward()
        self.optims["background_generator"].step()
        return {"bg_d": d_loss.item(), "bg_g": adv.item(), "bg_l1": l1.item()}

    @torch.no_grad()
    def samples(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        self.g.eval()
        return [x[:, :1].expand(-1, 3, -1, -1), x[:, 1:4], self.g(x), y]


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def make_config(base: str, classes: Sequence[str] | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    if base not in CONFIGS:
        raise InputError(f"unknown EdgeGAN config {base!r}; known: {', '.join(CONFIGS)}")
    config = dict(CONFIGS[base])
    if classes:
        config["classes"] = list(classes)
    config.update({k: v for k, v in overrides.items() if v is not None})
    config["background"] = True
    return config


def train(data: Path | None, out: Path, *, stage: str = "objects", config_name: str = "small",
          overrides: Mapping[str, Any] | None = None, steps: int = 1000, batch_size: int = 16,
          lr: float = 2e-4, minutes: float | None = None, cpu_minutes: float | None = None,
          resume: bool = False, seed: int = 0,
          edge_method: EdgeMethod = "canny", sample_every: int = 200, save_every: int = 500,
          background_data: Path | None = None, device: str = "cpu", log: bool = True,
          command: str = "") -> dict[str, Any]:
    """Train one stage for ``steps`` more steps, or until ``minutes`` of wall time or ``cpu_minutes`` of
    this process's CPU time pass; returns a summary with the final losses. The checkpoint folder
    ``out`` keeps every network of both stages and the commands that trained them."""
    from ..progress import ProgressBar

    out = Path(out)
    seed_everything(seed)
    from ..devices import pick_device

    dev = pick_device(device)
    meta: dict[str, Any] = {}
    if resume and (out / "state.pt").exists():
        from ..weights import read_torch_file

        meta = json.loads(read_torch_file(out / "state.pt").get("meta_json", "{}"))
        config = meta["config"]
    else:
        config = None
    dataset: Dataset
    if stage == "objects":
        if data is None:
            raise InputError("--data is required for the objects stage")
        classes = config["classes"] if config else None
        size = int(config["image_size"]) if config else int((overrides or {}).get("image_size")
                                                            or CONFIGS[config_name]["image_size"])
        dataset = EdgePairDataset(data, size, classes, edge_method)
        if config is None:
            config = make_config(config_name, dataset.classes, overrides or {})
    elif stage == "background":
        if config is None:
            config = make_config(config_name, None, overrides or {})
        src = background_data or data
        if src is None:
            raise InputError("--background-data (or --data) is required for the background stage")
        dataset = BackgroundDataset(src, int(config["bg_size"]))
    else:
        raise InputError(f"unknown stage {stage!r} (objects | background)")

    nets = build(config)
    for m in nets.values():
        m.to(dev)
    trainer = ObjectTrainer(nets, config, lr) if stage == "objects" else BackgroundTrainer(nets, lr)
    steps_done = dict(meta.get("steps", {}))
    if resume and (out / "nets.safetensors").exists():
        load_checkpoint(out, nets, {f"{stage}:{k}": o for k, o in trainer.optims.items()})
    start = int(steps_done.get(stage, 0))
    loader = infinite_loader(dataset, min(batch_size, len(dataset)), seed=seed + start)
    fixed = next(loader)
    bar = ProgressBar(steps, desc=f"edgegan {stage}") if log else None
    t0, cpu0 = time.perf_counter(), time.process_time()
    commands = list(meta.get("commands", []))
    if command and (not commands or commands[-1] != command):
        commands.append(command)
    logs: dict[str, float] = {}
    done = 0
    for done in range(1, steps + 1):
        a, b = next(loader)
        logs = trainer.step(a.to(dev), b.to(dev))
        if bar is not None:
            bar.update(1, **logs)
        step = start + done
        if sample_every and step % sample_every == 0:
            save_grid(out / "samples" / f"{stage}_{step:06d}.png", trainer.samples(fixed[0].to(dev), fixed[1].to(dev)))
        if save_every and step % save_every == 0:
            _save(out, nets, trainer, config, {**steps_done, stage: step}, commands)
        if minutes is not None and time.perf_counter() - t0 > minutes * 60:
            break
        if cpu_minutes is not None and time.process_time() - cpu0 > cpu_minutes * 60:
            break
    if bar is not None:
        bar.close()
    steps_done[stage] = start + done
    _save(out, nets, trainer, config, steps_done, commands)
    save_grid(out / "samples" / f"{stage}_last.png", trainer.samples(fixed[0].to(dev), fixed[1].to(dev)))
    return {"config": config, "steps": steps_done, "losses": logs, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0}


def train_paired(data: Path, out: Path, *, config_name: str = "small", overrides: Mapping[str, Any] | None = None,
                 steps: int = 1000, batch_size: int = 16, lr: float = 5e-4, minutes: float | None = None,
                 resume: bool = False, seed: int = 0, adv_weight: float = 0.0, ac_weight: float = 0.1,
                 perceptual_weight: float = 0.0,
                 save_minutes: float = 3.0, sample_every: int = 500, background_from: str = "",
                 log: bool = True, command: str = "") -> dict[str, Any]:
    """``--stage paired``: :class:`PairedTrainer` on the whole split held in memory (:class:`PairArray`),
    checkpointing every ``save_minutes``; ``background_from`` copies the background network of a
    registered EdgeGAN model into a fresh run (the objects' classes may differ, that network has none)."""
    from ..progress import ProgressBar
    from .common import load_checkpoint

    out = Path(out)
    seed_everything(seed)
    torch.backends.mkldnn.enabled = True
    meta: dict[str, Any] = {}
    if resume and (out / "state.pt").exists():
        from ..weights import read_torch_file

        meta = json.loads(read_torch_file(out / "state.pt").get("meta_json", "{}"))
    config = meta.get("config")
    size = int(config["image_size"]) if config else int((overrides or {}).get("image_size")
                                                        or CONFIGS[config_name]["image_size"])
    t_load = time.perf_counter()
    dataset = EdgePairDataset(data, size, config["classes"] if config else None)
    pairs = PairArray(dataset)
    if config is None:
        config = make_config(config_name, dataset.classes, overrides or {})
    nets = build(config)
    trainer = PairedTrainer(nets, config, lr, adv_weight=adv_weight, ac_weight=ac_weight,
                            perceptual_weight=perceptual_weight)
    everything = {**nets, **{f"{k}_ema": m for k, m in trainer.ema.items()}}
    for k, m in everything.items():  # channels-last pays for the convolutional nets, not the generators
        if "generator" not in k:
            m.to(memory_format=torch.channels_last)
    steps_done = dict(meta.get("steps", {}))
    if resume and (out / "nets.safetensors").exists():
        load_checkpoint(out, everything, {f"paired:{k}": o for k, o in trainer.optims.items()})
    elif background_from:
        from ..weights import Manifest, load_strict, read_safetensors, split_subnets

        entry = Manifest().get(background_from)
        state = split_subnets(read_safetensors(Manifest().root / entry.file))
        load_strict({"background_generator": nets["background_generator"]},
                    {"background_generator": state["background_generator"]}, source=entry.file)
        meta["background_from"] = {"model": entry.name, "sha256": entry.sha256, "description": entry.description}
    start = int(steps_done.get("paired", 0))
    gen = torch.Generator().manual_seed(seed + start)
    fixed = pairs.batch(min(16, len(pairs)), torch.Generator().manual_seed(seed))
    commands = list(meta.get("commands", []))
    if command and (not commands or commands[-1] != command):
        commands.append(command)
    extra = {k: meta[k] for k in ("background_from",) if k in meta}
    extra["data"] = {"folder": str(data), "pairs": len(pairs), "load_seconds": round(time.perf_counter() - t_load, 1)}
    for prov in (Path(data) / "provenance.json", Path(data).parent / "provenance.json"):
        if prov.exists():  # the recipe, its version and the seed the data was built with
            p = json.loads(prov.read_text())
            extra["data"].update({k: p[k] for k in ("recipe", "version", "seed", "n", "size") if k in p})
            break
    wall = float(meta.get("wall_seconds", 0.0))
    runs = list(meta.get("runs", []))
    this_run = {"command": command, "start_step": start, "threads": torch.get_num_threads(), "cpu": cpu_name(),
                "torch": torch.__version__}

    def save(step: int) -> None:
        save_checkpoint(out, everything, {f"paired:{k}": o for k, o in trainer.optims.items()}, step,
                        {"config": dict(config), "steps": {**steps_done, "paired": step}, "commands": commands,
                         "wall_seconds": wall + time.perf_counter() - t0, **extra,
                         "runs": runs + [{**this_run, "steps": step - start,
                                          "wall_seconds": round(time.perf_counter() - t0, 1)}],
                         "losses": {k: round(v, 4) for k, v in logs.items()}})

    bar = ProgressBar(steps, desc="edgegan paired") if log else None
    t0 = last_save = time.perf_counter()
    logs: dict[str, float] = {}
    done = 0
    for done in range(1, steps + 1):
        a, b = pairs.batch(batch_size, gen)
        logs = trainer.step(a, b)
        if bar is not None:
            bar.update(1, **logs)
        step = start + done
        if sample_every and step % sample_every == 0:
            save_grid(out / "samples" / f"paired_{step:06d}.png", trainer.samples(*fixed))
        if time.perf_counter() - last_save > save_minutes * 60:
            save(step)
            last_save = time.perf_counter()
        if minutes is not None and time.perf_counter() - t0 > minutes * 60:
            break
    if bar is not None:
        bar.close()
    save(start + done)
    save_grid(out / "samples" / "paired_last.png", trainer.samples(*fixed))
    return {"config": config, "steps": {**steps_done, "paired": start + done}, "losses": logs,
            "seconds": time.perf_counter() - t0}


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    import platform

    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _save(out: Path, nets: Mapping[str, nn.Module], trainer: Any, config: Mapping[str, Any],
          steps: Mapping[str, int], commands: Sequence[str] = ()) -> None:
    if not is_main():
        return
    # optimiser states of the stage being trained (the other stage restarts its optimisers on resume)
    optims = {f"{'objects' if isinstance(trainer, ObjectTrainer) else 'background'}:{k}": o
              for k, o in trainer.optims.items()}
    save_checkpoint(out, nets, optims, sum(steps.values()),
                    {"config": dict(config), "steps": dict(steps), "commands": list(commands)})


@torch.no_grad()
def float16_psnr(state: Mapping[str, Mapping[str, torch.Tensor]], config: Mapping[str, Any]) -> float:
    """The lowest PSNR (dB) between what the inference networks draw with their weights rounded to
    float16 and with the float32 originals: the six hand-drawn sketches through E, G1 and G2 (each
    class), and the background network on those sketches pasted as foreground."""
    from ..inputs.sketch import prepare_sketch, to_tensor
    from ..metrics.hand_sketches import SKETCHES, render
    from ..nets.edgegan import class_names
    from ..tasks.scene import background_inputs

    subs = [k for k in INFERENCE_SUBNETS if k in state]
    full, half = build(config, only=tuple(subs)), build(config, only=tuple(subs))
    for k in subs:
        full[k].load_state_dict(state[k])
        half[k].load_state_dict({n: t.half().float() if t.is_floating_point() else t for n, t in state[k].items()})
        full[k].eval(), half[k].eval()
    size = int(config["image_size"])
    sketches = [render(n) for n in SKETCHES]
    x = torch.stack([to_tensor(prepare_sketch(s, size).image) for s in sketches])
    labels = torch.arange(len(sketches)) % len(class_names(config))

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        mse = ((a - b) / 2).square().mean().item()  # images in [-1, 1] -> [0, 1]
        return 100.0 if mse == 0 else 10 * math.log10(1.0 / mse)

    worst = 100.0
    for nets in (full, half):
        nets["z"] = nets["encoder"](x, noise="none")[0]
    for g in ("edge_generator", "image_generator"):
        worst = min(worst, psnr(full[g](full["z"], labels), half[g](half["z"], labels)))
    if "background_generator" in subs:
        bg = int(config.get("bg_size", 128))
        xb = torch.cat([background_inputs(s, np.repeat(s[..., None], 3, 2), s < 128, (bg, bg)) for s in sketches])
        worst = min(worst, psnr(full["background_generator"](xb), half["background_generator"](xb)))
    return worst


def export(out: Path, name: str, command: str = "", default: bool = False,
           float16_min_psnr: float | None = None) -> Path:
    """Write the inference networks of checkpoint ``out`` to ``weights/<name>.safetensors`` and register;
    the provenance command is ``command`` or else the training commands recorded in the checkpoint."""
    from ..weights import Manifest, read_safetensors, read_torch_file, register_file, save_state_dicts, split_subnets

    meta = json.loads(read_torch_file(Path(out) / "state.pt").get("meta_json", "{}"))
    state = split_subnets(read_safetensors(Path(out) / "nets.safetensors"))
    config = dict(meta["config"])
    steps = meta.get("steps", {})
    command = command or " && ".join(meta.get("commands", [])) or "i2i train edgegan"
    for sub in INFERENCE_SUBNETS:  # a paired run ships the EMA copies of E, G1, G2
        if f"{sub}_ema" in state:
            state[sub] = state[f"{sub}_ema"]
    has_background = bool(steps.get("background") or meta.get("background_from"))
    keep = [s for s in INFERENCE_SUBNETS if s in state and (s != "background_generator" or has_background)]
    config["background"] = "background_generator" in keep
    manifest = Manifest()
    path = manifest.root / f"{name}.safetensors"
    shipped = {s: state[s] for s in keep}
    dtype = "float32"
    if float16_min_psnr is not None:
        measured = float16_psnr(shipped, config)
        if measured >= float16_min_psnr:
            shipped = {s: {n: t.half() if t.is_floating_point() else t for n, t in sd.items()}
                       for s, sd in shipped.items()}
            dtype = "float16"
        meta["float16_psnr_db"] = round(measured, 2)
    meta["dtype"] = dtype
    save_state_dicts(shipped, path, metadata={"family": "edgegan", "steps": json.dumps(steps)})
    manifest = Manifest()  # re-read: others may have registered meanwhile
    register_file(manifest, name=name, family="edgegan", config_name="custom", config=config, path=path,
                  provenance={"kind": "trained-here", "command": command},
                  description=f"EdgeGAN trained here ({', '.join(f'{k} {v} steps' for k, v in steps.items())})",
                  extra={**({"default": True} if default else {}),
                         **{k: meta[k] for k in ("data", "wall_seconds", "runs", "background_from", "dtype",
                                                 "float16_psnr_db") if k in meta}})
    return path


def _cmd_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    overrides = {"image_size": args.image_size, "z_dim": args.z_dim, "gf_dim": args.width, "df_dim": args.width,
                 "ef_dim": args.width, "bg_size": args.bg_size}
    data = Path(args.data) if args.data else None
    if data is not None and args.split and (data / args.split).is_dir():
        data = data / args.split
    bg = Path(args.background_data) if args.background_data else None
    if bg is not None and args.split and (bg / args.split).is_dir():
        bg = bg / args.split
    stages = ["objects", "background"] if args.stage == "all" else [args.stage]
    command = "i2i " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.stage == "paired":
        if data is None:
            raise InputError("--data is required for the paired stage")
        stages = []
        summary = train_paired(data, Path(args.out), config_name=args.config, overrides=overrides, steps=args.steps,
                               batch_size=args.batch_size, lr=args.lr, minutes=args.minutes, resume=args.resume,
                               seed=args.seed, adv_weight=args.adv_weight, ac_weight=args.ac_weight,
                               perceptual_weight=args.perceptual_weight,
                               save_minutes=args.save_minutes, sample_every=args.sample_every,
                               background_from=args.background_from, command=command)
        print(f"paired: {summary['steps']} steps, {summary['seconds']:.0f}s, "
              + " ".join(f"{k}={v:.3g}" for k, v in summary["losses"].items()))
    for i, stage in enumerate(stages):
        summary = train(data, Path(args.out), stage=stage, config_name=args.config, overrides=overrides,
                        steps=args.steps, batch_size=args.batch_size, lr=args.lr, minutes=args.minutes,
                        cpu_minutes=args.cpu_minutes, command=command,
                        resume=args.resume or i > 0, seed=args.seed, edge_method=args.edges,
                        sample_every=args.sample_every, save_every=args.save_every, background_data=bg,
                        device=args.device)
        print(f"{stage}: {summary['steps']} steps, {summary['seconds']:.0f}s ({summary['cpu_seconds']:.0f}s CPU), "
              + " ".join(f"{k}={v:.3g}" for k, v in summary["losses"].items()))
    if args.export:
        path = export(Path(args.out), args.export, default=args.default, float16_min_psnr=args.float16_min_psnr)
        print(f"exported {path}")
    return 0


def register_cli(groups) -> None:
    p = groups.train.add_parser("edgegan", help="train EdgeGAN (objects) and the scene background network")
    p.add_argument("--data", default="", help="class folders of [edge | photo] pairs or photos (e.g. data/sketches)")
    p.add_argument("--background-data", default="", help="scene data for --stage background (default: --data)")
    p.add_argument("--split", default="train", help="sub-folder of --data to use when present (default train)")
    p.add_argument("--stage", default="objects", choices=["objects", "background", "all", "paired"],
                   help="objects: the official adversarial training; paired: E+G1+G2 as an autoencoder of the "
                        "(edge, photo) pairs with joint-D and classifier terms (what the default ships); "
                        "background: the scene network")
    p.add_argument("--adv-weight", type=float, default=0.0, help="paired: weight of the joint discriminator term")
    p.add_argument("--ac-weight", type=float, default=0.1, help="paired: weight of the classifier term")
    p.add_argument("--perceptual-weight", type=float, default=0.0,
                   help="paired: weight of the MobileNetV2 perceptual distance of the image to the photo")
    p.add_argument("--save-minutes", type=float, default=3.0, help="paired: checkpoint every this many minutes")
    p.add_argument("--background-from", default="", help="paired: copy the background network of this model")
    p.add_argument("--config", default="small", help=f"base configuration ({', '.join(CONFIGS)})")
    p.add_argument("--image-size", type=int, default=None, help="object size (64 or 128)")
    p.add_argument("--z-dim", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="gf = df = ef base width")
    p.add_argument("--bg-size", type=int, default=None, help="background network working size")
    p.add_argument("--edges", default="canny", choices=["canny", "xdog"], help="edge extractor for photo-only folders")
    p.add_argument("--steps", type=int, default=1000, help="steps to run in this call")
    p.add_argument("--minutes", type=float, default=None, help="stop a stage after this many minutes (wall clock)")
    p.add_argument("--cpu-minutes", type=float, default=None, help="stop a stage after this much process CPU time")
    p.add_argument("--batch-size", type=int, default=16, help="batch (official: 64)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--out", default="runs/edgegan", help="checkpoint folder")
    p.add_argument("--resume", action="store_true", help="continue from --out")
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export", default="", help="after training, register weights/<NAME>.safetensors")
    p.add_argument("--default", action="store_true", help="mark the exported model as the family default")
    p.add_argument("--float16-min-psnr", type=float, default=None,
                   help="export float16 weights when their outputs stay within this PSNR (dB) of float32's")
    p.set_defaults(func=_cmd_train)


__all__ = ["EdgePairDataset", "BackgroundDataset", "PairArray", "ObjectTrainer", "PairedTrainer", "BackgroundTrainer",
           "train", "train_paired", "export",
           "register_cli"]
