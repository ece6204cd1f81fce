"""A small semantic segmenter for mask faithfulness (mIoU of generated images against their input
label maps), trained on the ``scenes`` recipe with ``i2i train segmenter``.

The network is a compact U-Net (3×3 conv–BN–ReLU pairs, max-pool down, bilinear up + skip concat).
It is a measuring instrument for our procedural data, not a general ADE20k segmenter: its mIoU on
real photos means nothing, and on generated scenes it says how well a generator kept the layout.
Weights are one safetensors file (sub-network ``segmenter``) registered in the weights manifest
with family ``segmenter`` and provenance ``trained-here``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..families import Family, register
from ..requests.base import InputError, WeightsError
from ..weights import Manifest, WeightsEntry, build_and_load
from .segmentation import ConfusionMatrix

SEGMENTER_FAMILY = "segmenter"


def _conv_pair(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class SmallUNet(nn.Module):
    """U-Net with ``depth`` down-sampling steps; channel widths ``width·2^i`` capped at 8·width.
    Input N×3×H×W in [-1, 1] (H, W multiples of 2^depth are not required: the decoder resizes to
    each skip's size); output N×num_classes×H×W logits."""

    def __init__(self, num_classes: int, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        if num_classes < 2 or width < 1 or depth < 1:
            raise InputError(f"bad segmenter config: num_classes={num_classes}, width={width}, depth={depth}")
        widths = [min(width * 2 ** i, 8 * width) for i in range(depth + 1)]
        self.num_classes, self.width, self.depth = num_classes, width, depth
        self.down = nn.ModuleList([_conv_pair(3, widths[0])]
                                  + [_conv_pair(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([_conv_pair(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for i, block in enumerate(self.down):
            if i > 0:
                h = F.max_pool2d(h, 2, ceil_mode=True)
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1))
        return self.head(h)


def build_segmenter(config: Mapping[str, Any]) -> dict[str, nn.Module]:
    """{"segmenter": SmallUNet} from a manifest config (num_classes, width, depth)."""
    return {"segmenter": SmallUNet(int(config["num_classes"]), int(config.get("width", 16)),
                                   int(config.get("depth", 3)))}


# Registered like a generator family so `weights keys`, the model store and the GUI's weights
# panel treat the segmenter as any other model file.
register(Family(name=SEGMENTER_FAMILY, build=build_segmenter,
                configs={"small_unet": {"num_classes": 16, "width": 16, "depth": 3, "size": 128,
                                        "ignore_index": 0, "palette": "scenes"}},
                inference_subnets=("segmenter",),
                description="small U-Net segmenter for the mask-faithfulness metric (mIoU)"))


@dataclass
class Segmenter:
    """A loaded segmenter: ``predict(images)`` -> label maps; ``config`` holds num_classes,
    ignore_index, palette and the working size it was trained at."""

    net: SmallUNet
    config: dict[str, Any]
    name: str = ""

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    @property
    def ignore_index(self) -> int | None:
        return self.config.get("ignore_index")

    @torch.no_grad()
    def predict(self, images: np.ndarray, *, batch: int = 8) -> np.ndarray:
        """N×H×W×3 (or H×W×3) uint8 -> N×H×W (or H×W) int32 labels, run at the trained size."""
        arr = np.asarray(images)
        single = arr.ndim == 3
        arr = arr[None] if single else arr
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise InputError(f"segmenter expects uint8 H×W×3 images, got {arr.dtype} {arr.shape}")
        size = int(self.config.get("size", 0)) or None
        self.net.eval()
        out = []
        for i in range(0, len(arr), batch):
            x = torch.from_numpy(np.array(arr[i:i + batch])).permute(0, 3, 1, 2).float() / 127.5 - 1
            hw = x.shape[-2:]
            if size and tuple(hw) != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            logits = self.net(x)
            if logits.shape[-2:] != hw:
                logits = F.interpolate(logits, size=hw, mode="bilinear", align_corners=False)
            out.append(logits.argmax(1).to(torch.int32).numpy())
        labels = np.concatenate(out)
        return labels[0] if single else labels


def default_segmenter_entry(manifest: Manifest | None = None) -> WeightsEntry | None:
    """The manifest's default segmenter (or its first one), or None."""
    manifest = manifest or Manifest()
    entries = manifest.by_family(SEGMENTER_FAMILY)
    if not entries:
        return None
    default = [e for e in entries if e.extra.get("default")]
    return (default or entries)[0]


def load_segmenter(name: str | None = None, manifest: Manifest | None = None) -> Segmenter:
    """Load a registered segmenter (sha256-verified); ``name`` None picks the default one."""
    manifest = manifest or Manifest()
    entry = manifest.get(name) if name else default_segmenter_entry(manifest)
    if entry is None:
        raise WeightsError("no segmenter is registered; train one with `i2i train segmenter --data data/scenes`")
    if entry.family != SEGMENTER_FAMILY:
        raise WeightsError(f"{entry.name!r} is a {entry.family} model, not a segmenter")
    modules = build_and_load(entry, manifest)  # sha256-verified, strict
    return Segmenter(modules["segmenter"].eval(), dict(entry.config), entry.name)


# --------------------------------------------------------------------------------------------
# Data and training
# --------------------------------------------------------------------------------------------
def scene_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) paths of a ``scenes`` split: ``<split>/image/<id>.png`` + ``<split>/label/<id>.png``."""
    img_dir, lab_dir = Path(root) / split / "image", Path(root) / split / "label"
    if not img_dir.is_dir() or not lab_dir.is_dir():
        raise InputError(f"{root} has no {split}/image and {split}/label folders (build it with "
                         f"`i2i data build scenes --out {root}`)")
    pairs = [(p, lab_dir / p.name) for p in sorted(img_dir.glob("*.png")) if (lab_dir / p.name).exists()]
    if not pairs:
        raise InputError(f"{img_dir} has no images with a matching label map")
    return pairs


def load_pairs(pairs: list[tuple[Path, Path]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs in memory at ``size``² (bicubic image, nearest labels): N×S×S×3 uint8, N×S×S int64."""
    from PIL import Image

    from ..io import load_image, load_label_map

    imgs, labs = [], []
    for ip, lp in pairs:
        img, lab = load_image(ip), load_label_map(lp)
        if img.shape[:2] != lab.shape:
            raise InputError(f"{ip} is {img.shape[1]}×{img.shape[0]} but {lp} is {lab.shape[1]}×{lab.shape[0]}")
        if img.shape[:2] != (size, size):
            img = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
            lab = np.asarray(Image.fromarray(lab.astype(np.uint8)).resize((size, size), Image.NEAREST))
        imgs.append(img)
        labs.append(lab.astype(np.int64))
    return np.stack(imgs), np.stack(labs)


def evaluate_segmenter(seg: Segmenter, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """mIoU and pixel accuracy of ``seg`` on uint8 images against reference labels."""
    cm = ConfusionMatrix(seg.num_classes, seg.ignore_index)
    for i in range(0, len(images), 16):
        pred = seg.predict(images[i:i + 16])
        cm.update(labels[i:i + 16], pred)
    return {"miou": cm.miou(), "pixel_accuracy": cm.pixel_accuracy()}


def train_segmenter(data: Path, *, size: int = 64, width: int = 16, depth: int = 3, steps: int = 1000,
                    batch: int = 8, lr: float = 2e-3, seed: int = 0, num_classes: int | None = None,
                    ignore_index: int | None = 0, palette: str = "scenes", max_images: int | None = None,
                    log_every: int = 50, progress: bool = True) -> tuple[Segmenter, dict[str, Any]]:
    """Train a SmallUNet on ``data``'s train split (random flips and crops of a 1.125× upscale);
    report val mIoU. Cross-entropy ignores ``ignore_index`` (the scenes "other" class)."""
    from ..progress import ProgressBar

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_pairs = scene_pairs(data, "train")[:max_images]
    images, labels = load_pairs(train_pairs, size)
    if num_classes is None:
        try:
            from ..io import load_palette

            num_classes = len(load_palette(palette))
        except InputError:
            num_classes = int(labels.max()) + 1
    if labels.max() >= num_classes:
        raise InputError(f"{data}: label {int(labels.max())} found but the segmenter has {num_classes} classes")
    config = {"num_classes": int(num_classes), "width": width, "depth": depth, "size": size,
              "ignore_index": ignore_index, "palette": palette}
    net = build_segmenter(config)["segmenter"]
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    y_all = torch.from_numpy(labels)
    bar = ProgressBar(steps, desc="segmenter") if progress else None
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    net.train()
    for step in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(x_all), batch))
        x, y = x_all[idx], y_all[idx]
        if rng.random() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        # scale jitter: upsample 1–1.25× and crop back to size (labels nearest)
        s = int(size * rng.uniform(1.0, 1.25))
        if s > size:
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
            y = F.interpolate(y[:, None].float(), size=(s, s), mode="nearest")[:, 0].long()
            oy, ox = rng.integers(0, s - size + 1, 2)
            x, y = x[..., oy:oy + size, ox:ox + size], y[..., oy:oy + size, ox:ox + size]
        logits = net(x)
        loss = F.cross_entropy(logits, y, ignore_index=-100 if ignore_index is None else ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update(1, loss=loss.item())
        if (step + 1) % log_every == 0 or step == steps - 1:
            history.append({"step": step + 1, "loss": loss.item()})
    if bar is not None:
        bar.close()
    net.eval()
    seg = Segmenter(net, config)
    report: dict[str, Any] = {"train_images": len(images), "steps": steps, "seconds": time.perf_counter() - t0,
                              "history": history, "config": config}
    try:
        val_imgs, val_labs = load_pairs(scene_pairs(data, "val"), size)
        report["val"] = {"images": len(val_imgs), **evaluate_segmenter(seg, val_imgs, val_labs)}
    except InputError as exc:
        report["val"] = {"error": str(exc)}
    return seg, report


def save_segmenter(seg: Segmenter, path: Path, report: Mapping[str, Any] | None = None) -> None:
    from ..weights import save_state_dicts

    save_state_dicts({"segmenter": seg.net.state_dict()}, path,
                     metadata={"config": json.dumps(seg.config), "report": json.dumps(report or {}, default=float)})
