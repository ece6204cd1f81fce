"""CoCosNet training (Zhang et al. 2020; microsoft/CoCosNet ``train.py`` + ``Pix2PixModel``).

``i2i train cocosnet --config NAME --data DIR --out RUN`` trains the correspondence network
(netCorr), the translation network (netG) and the 2-scale discriminator (netD) jointly:

- data: the ``scenes`` (ADE20k-like), ``faces`` (CelebA-HQ) or ``poses`` (DeepFashion) layout
  (see :class:`CocosnetPairs`), each sample = (input semantics, image, exemplar, exemplar
  semantics, self_ref flag) with the paper's exemplar sampling: 30 % self-reference (the image
  itself, independently re-cropped / flipped), 20 % a "hard" retrieved exemplar, 50 % an "easy" one;
- generator losses: hinge GAN ×10, discriminator feature matching ×10, domain alignment of the
  two adaptive feature pyramids ×10, pseudo-exemplar feature loss (VGG, self-reference samples
  only) ×10·fm_ratio, perceptual MSE, contextual loss ×10 (relu5_2 ×8, relu4_2 ×4, relu3_2 pooled
  ×2), correspondence regularisation (warped-mask NLL, warp cycle, warp-to-self) by preset;
- discriminator: hinge ×10; TTUR Adam β=(0, 0.9): G+Corr lr 1e-4 (eps 1e-3; ``--g-eps``), D 4e-4,
  constant then linear decay to 0;
- a short-budget start (not in the paper, off unless asked): ``--loss l1_paired=W`` (output vs ground
  truth on self-reference samples) with ``--loss weight_gan=0 --loss lambda_feat=0`` trains netG and
  netCorr by reconstruction only (D is then not run); ``--init`` the adversarial run from it;
- resume from ``RUN/latest``, a progress bar with losses and it/s, sample grids, torchrun DDP.

The VGG-based terms use the shared feature extractor (:func:`engine.metrics.features.load_features`):
torchvision's VGG19 (relu1_2 … relu5_2) when its file lies in the weights folder, else MobileNetV2's
five stride levels in the same roles; with neither, training says so and runs without those terms
(``--no-feature-losses`` turns them off on purpose). The authors used a Caffe-normalised VGG19
(``vgg19_conv.pth``); torchvision's uses ImageNet mean/std normalisation, so loss magnitudes differ
slightly from the paper's.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..requests.base import InputError
from . import losses as L
from .common import WorkerRandom

Layout = Literal["scenes", "faces", "poses"]
_clock = time.monotonic  # the wall-time budget's clock (tests replace it)


# ================================================================================================
# Loss presets (train options of the README train commands, ARCHITECTURES.md §2.5/2.6)
# ================================================================================================
@dataclass(frozen=True)
class LossPreset:
    """Weights of the generator objective and the sampling / schedule defaults of one domain."""

    layout: Layout
    weight_gan: float = 10.0
    lambda_feat: float = 10.0            # discriminator feature matching
    novgg_featpair: float = 10.0         # domain alignment of the adaptive feature pyramids
    lambda_vgg: float = 10.0
    fm_ratio: float = 0.1                # pseudo-exemplar feature loss = lambda_vgg · fm_ratio
    which_perceptual: Literal["5_2", "4_2"] = "5_2"
    weight_perceptual: float = 0.01
    ctx_w: float = 1.0                   # contextual loss = lambda_vgg · ctx_w
    weight_mask: float = 0.0             # warped exemplar mask vs ground-truth labels (NLL)
    warp_cycle_w: float = 0.0            # warp forth and back, L1 to the ¼-res exemplar
    warp_self_w: float = 0.0             # warped exemplar vs ground truth (self-reference only)
    l1_paired: float = 0.0               # not in the paper: output vs ground truth, L1 (paired samples only),
    #                                      a short-budget start (../shared/TRAINING.md §5); off in every preset
    real_reference_probability: float = 0.7
    hard_reference_probability: float = 0.2
    flip: bool = True


PRESETS: dict[str, LossPreset] = {
    "ade20k": LossPreset(layout="scenes", weight_mask=100.0),
    "celebahq": LossPreset(layout="faces", fm_ratio=1.0, which_perceptual="4_2", weight_perceptual=0.001,
                           weight_mask=100.0, warp_cycle_w=0.1),
    "celebahqedge": LossPreset(layout="faces", fm_ratio=1.0, which_perceptual="4_2", weight_perceptual=0.001,
                               warp_cycle_w=1.0),
    # DeepFashion trains on self-reference pairs only (same person, other view: ``video_like``).
    "deepfashion": LossPreset(layout="poses", fm_ratio=1.0, which_perceptual="4_2", weight_perceptual=0.001,
                              warp_self_w=100.0, real_reference_probability=0.0,
                              hard_reference_probability=0.0, flip=False),
}


def preset_for(config_name: str) -> str:
    """The preset a config trains with: the released config name it starts with (``ade20k_small``
    -> ``ade20k``)."""
    for name in sorted(PRESETS, key=len, reverse=True):
        if config_name == name or config_name.startswith(name):
            return name
    raise InputError(f"no CoCosNet training preset for config {config_name!r}; pass --preset "
                     f"{'|'.join(PRESETS)}")


# ================================================================================================
# Dataset
# ================================================================================================
@dataclass(frozen=True)
class _Record:
    """One training sample's files."""

    id: str
    image: Path
    semantics: Path                      # label map PNG, parsing PNG or pose JSON
    exemplar: Path | None = None         # the rendered / same-outfit exemplar, if the layout has one
    exemplar_semantics: Path | None = None
    group: str = ""                      # faces: domain folder (easy exemplars come from the same one)


SemanticsEncoder = Callable[[_Record, Path, np.ndarray, int], np.ndarray]


def _index_records(root: Path, layout: Layout) -> list[_Record]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"training data folder {root} does not exist (build it with `i2i data build RECIPE`)")
    recs: list[_Record] = []
    if layout == "scenes":
        for img in sorted((root / "image").glob("*.png")):
            label = root / "label" / img.name
            ex = root / "exemplar" / img.name
            if not label.exists():
                raise InputError(f"{img} has no label map {label}")
            recs.append(_Record(img.stem, img, label, ex if ex.exists() else None, label if ex.exists() else None))
    elif layout == "faces":
        for domain in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("parsing", "landmarks")):
            for img in sorted(domain.glob("*.png")):
                parsing = root / "parsing" / img.name
                if not parsing.exists():
                    raise InputError(f"{img} has no face parsing {parsing}")
                recs.append(_Record(img.stem, img, parsing, group=domain.name))
    elif layout == "poses":
        for img in sorted((root / "image").glob("*.png")):
            pose = root / "pose" / f"{img.stem}.json"
            ex, ex_pose = root / "exemplar" / img.name, root / "exemplar_pose" / f"{img.stem}.json"
            if not pose.exists():
                raise InputError(f"{img} has no pose {pose}")
            has_pair = ex.exists() and ex_pose.exists()
            recs.append(_Record(img.stem, img, pose, ex if has_pair else None, ex_pose if has_pair else None))
    else:
        raise InputError(f"unknown data layout {layout!r}")
    if not recs:
        raise InputError(f"{root} holds no {layout} training samples")
    return recs


def onehot_label_encoder(num_channels: int) -> SemanticsEncoder:
    """Label map PNG (value = channel, ADE20k style) -> one-hot, nearest-resized."""
    return config_encoder("labels", num_channels)


def config_encoder(input_kind: str, semantic_nc: int) -> SemanticsEncoder:
    """A sample's semantics encoded exactly as inference encodes them
    (:func:`engine.inputs.cocosnet.encode_for_config`): ``labels`` / ``celebahq_parsing`` /
    ``celebahq_edges`` read a label PNG, ``pose`` an OpenPose JSON (keypoints in photo pixels)."""
    from ..inputs.cocosnet import encode_for_config
    from ..io import load_label_map, load_openpose_json

    def encode(rec: _Record, path: Path, image: np.ndarray, size: int) -> np.ndarray:
        if input_kind == "pose":
            out = encode_for_config(input_kind, semantic_nc, keypoints=load_openpose_json(path), photo=image,
                                    size=size, canvas_size=(image.shape[1], image.shape[0]))
        else:
            out = encode_for_config(input_kind, semantic_nc, labels=load_label_map(path), photo=image, size=size)
        return out.numpy().astype(np.float32, copy=False)

    return encode


class CocosnetPairs(Dataset):
    """Training pairs in one of the shared data layouts.

    - ``scenes``: ``image/<id>.png``, ``label/<id>.png``, ``exemplar/<id>.png`` (same layout rendered
      in another style; its semantics are ``label/<id>.png``);
    - ``faces``: ``<domain>/<id>.png`` (female, male), ``parsing/<id>.png`` (CelebAMask-HQ indices);
    - ``poses``: ``image/<id>.png``, ``pose/<id>.json``, ``exemplar/<id>.png`` + ``exemplar_pose/<id>.json``.

    Exemplar sampling per item (official ``Pix2pixDataset``): with probability
    ``real_reference_probability`` a reference, "hard" below ``hard_reference_probability`` (a random
    other sample: other layout, other style) else "easy" (scenes: the rendered exemplar pair; faces:
    another face of the same domain folder); otherwise self-reference: the image itself with fresh
    crop/flip (poses: the same-outfit other view when it exists, as ``video_like``). Items are dicts
    of tensors: ``semantics`` (C,S,S), ``image`` (3,S,S) in [-1,1], ``exemplar``,
    ``exemplar_semantics``, ``self_ref`` (scalar 0/1).
    """

    def __init__(self, root: Path, layout: Layout, size: int, encoder: SemanticsEncoder, *,
                 real_reference_probability: float = 0.7, hard_reference_probability: float = 0.2,
                 flip: bool = True, load_size: int | None = None, seed: int = 0) -> None:
        self.root, self.layout, self.size = Path(root), layout, int(size)
        self.records = _index_records(self.root, layout)
        self.encoder = encoder
        self.p_ref, self.p_hard = float(real_reference_probability), float(hard_reference_probability)
        self.flip = flip
        # official: load 286, random crop 256 (scaled for smaller sizes)
        self.load_size = int(load_size or round(self.size * 286 / 256))
        self._random = WorkerRandom(seed)   # each loader worker its own crops and exemplars
        self.rng = self._random()
        self._by_group: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            self._by_group.setdefault(r.group, []).append(i)

    def __len__(self) -> int:
        return len(self.records)

    # -- loading ---------------------------------------------------------------------------------
    def _load(self, image_path: Path, sem_path: Path, rec: _Record) -> tuple[Tensor, Tensor]:
        """(image, semantics) at load size."""
        from ..io import load_image

        img = load_image(image_path)
        s = self.load_size
        image = np.asarray(Image.fromarray(img).resize((s, s), Image.BICUBIC), dtype=np.float32)
        sem = self.encoder(rec, sem_path, img, s)
        if sem.ndim != 3 or sem.shape[1:] != (s, s):
            raise InputError(f"{sem_path}: encoder returned shape {sem.shape}, expected (C, {s}, {s})")
        return torch.from_numpy(image).permute(2, 0, 1) / 127.5 - 1.0, torch.from_numpy(np.ascontiguousarray(sem))

    def _augment(self, *tensors: Tensor) -> list[Tensor]:
        """One random crop (+ flip) applied to all tensors alike (SPADE ``get_params``)."""
        s, c = self.load_size, self.size
        x0, y0 = self.rng.randint(0, s - c), self.rng.randint(0, s - c)
        flip = self.flip and self.rng.random() < 0.5
        out = []
        for t in tensors:
            t = t[:, y0:y0 + c, x0:x0 + c]
            out.append(t.flip(-1) if flip else t)
        return out

    def __getitem__(self, idx: int) -> dict[str, Tensor]:
        self.rng = self._random()
        rec = self.records[idx]
        image_full, sem_full = self._load(rec.image, rec.semantics, rec)
        image, sem = self._augment(image_full, sem_full)
        p = self.rng.random()
        self_ref = 0.0
        if p < self.p_ref:
            if p < self.p_hard or rec.exemplar is None and self.layout != "faces":
                other = self._other(idx, same_group=False)
                o = self.records[other]
                ex_img, ex_sem = self._load(o.image, o.semantics, o)
            elif self.layout == "faces":
                o = self.records[self._other(idx, same_group=True)]
                ex_img, ex_sem = self._load(o.image, o.semantics, o)
            else:
                assert rec.exemplar is not None and rec.exemplar_semantics is not None
                ex_img, ex_sem = self._load(rec.exemplar, rec.exemplar_semantics, rec)
        else:
            self_ref = 1.0
            if self.layout == "poses" and rec.exemplar is not None and rec.exemplar_semantics is not None:
                ex_img, ex_sem = self._load(rec.exemplar, rec.exemplar_semantics, rec)
            else:
                ex_img, ex_sem = image_full, sem_full
        exemplar, ex_sem = self._augment(ex_img, ex_sem)
        return {"semantics": sem, "image": image, "exemplar": exemplar, "exemplar_semantics": ex_sem,
                "self_ref": torch.tensor(self_ref)}

    def _other(self, idx: int, same_group: bool) -> int:
        pool = self._by_group[self.records[idx].group] if same_group else range(len(self.records))
        if len(pool) < 2:
            return idx
        while True:
            j = self.rng.choice(list(pool)) if same_group else self.rng.randrange(len(self.records))
            if j != idx:
                return j


# ================================================================================================
# Feature extractor for the VGG terms
# ================================================================================================
@dataclass
class FeatureTerms:
    """Which extractor layers play VGG19's relu1_2 … relu5_2 roles (shallow to deep)."""

    extractor: nn.Module
    name: str
    layers: list[str]                    # up to 5, shallow -> deep

    def __call__(self, x: Tensor) -> list[Tensor]:
        feats = self.extractor(x)
        return [feats[k] for k in self.layers]


def load_feature_terms(enabled: bool, device: torch.device, log: Callable[[str], None]) -> FeatureTerms | None:
    """The shared feature extractor, or None (with a clear message) when disabled or unavailable."""
    if not enabled:
        log("warning: feature-based losses (pseudo-exemplar, perceptual, contextual) DISABLED by --no-feature-losses")
        return None
    try:
        from ..metrics.features import load_features
    except ImportError as exc:
        log(f"warning: no feature extractor module ({exc}); training WITHOUT the VGG-based losses "
            "(pseudo-exemplar, perceptual, contextual)")
        return None
    feats = load_features(prefer=("vgg19", "mobilenet_v2"))
    if feats is None:
        from ..weights import weights_dir

        log(f"warning: no feature backbone in {weights_dir()} (torchvision's vgg19-dcbb9e9d.pth, or "
            "mobilenet_v2-b0353104.pth from `i2i data fetch-backbone`); training WITHOUT the VGG-based "
            "losses (pseudo-exemplar, perceptual, contextual)")
        return None
    layers = list(feats.layers)[-5:]
    feats = feats.to(device) if hasattr(feats, "to") else feats
    if isinstance(feats, nn.Module):
        feats.eval()
        for p in feats.parameters():
            p.requires_grad_(False)
    log(f"feature losses use {feats.name} layers {', '.join(layers)} in the roles of relu1_2..relu5_2")
    return FeatureTerms(feats, feats.name, layers)


# ================================================================================================
# Training step
# ================================================================================================
def _d_outputs(out: Any) -> list[list[Tensor]]:
    """netD output -> per-scale feature lists with the prediction last."""
    if isinstance(out, tuple):          # (multiscale outputs, seg, cam) in the official layout
        out = out[0]
    if isinstance(out, Tensor):
        return [[out]]
    return [list(scale) if not isinstance(scale, Tensor) else [scale] for scale in out]


def _split_pred(pred: list[list[Tensor]]) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    n = pred[0][-1].shape[0] // 2
    return [[t[:n] for t in s] for s in pred], [[t[n:] for t in s] for s in pred]


def mask_nll(warp_mask: Tensor, semantics: Tensor, exemplar_semantics: Tensor) -> Tensor:
    """Warped exemplar one-hot vs ground-truth labels, NLL at ¼ resolution; classes absent from the
    exemplar and class 0 ("other") carry no weight (official ``warp_mask_losstype direct``)."""
    h, w = warp_mask.shape[2:]
    gt = F.interpolate(semantics, size=(h, w), mode="nearest").argmax(1)            # N h w
    ref = F.interpolate(exemplar_semantics, size=(h, w), mode="nearest")
    present = ref.flatten(2).amax(-1) > 0                                          # N C
    weight = present.gather(1, gt.flatten(1)).reshape_as(gt).float() * (gt != 0).float()
    nll = F.nll_loss(torch.log(warp_mask + 1e-10).contiguous(), gt, reduction="none")
    return (nll * weight).sum() / (weight.sum() + 1e-5)


class CocosnetTrainer:
    """Networks, optimisers and one training iteration (generator step, then discriminator step)."""

    def __init__(self, nets: Mapping[str, nn.Module], preset: LossPreset, *, lr: float = 2e-4,
                 features: FeatureTerms | None = None, warp_stride: int = 4, warp_patch: bool = False,
                 g_eps: float = 1e-3) -> None:
        self.netG, self.netCorr, self.netD = nets["netG"], nets["netCorr"], nets["netD"]
        self.preset, self.features = preset, features
        # with both discriminator terms weighted 0 (a reconstruction-only warm start) D is not run
        self.adversarial = preset.weight_gan > 0 or preset.lambda_feat > 0
        self.warp_stride, self.warp_patch = warp_stride, warp_patch
        # TTUR (official create_optimizers): G and Corr at lr/2, D at 2·lr, β = (0, 0.9); G eps 1e-3.
        # That eps freezes weights whose gradients stay far below it (a small netG's SPADE heads on
        # sparse pose maps: ~1e-7), so it is an option.
        self.base_lr_g, self.base_lr_d = lr / 2, lr * 2
        self.opt_g = torch.optim.Adam(list(self.netG.parameters()) + list(self.netCorr.parameters()),
                                      lr=self.base_lr_g, betas=(0.0, 0.9), eps=g_eps)
        self.opt_d = torch.optim.Adam(self.netD.parameters(), lr=self.base_lr_d, betas=(0.0, 0.9))

    def set_lr_factor(self, factor: float) -> None:
        for g in self.opt_g.param_groups:
            g["lr"] = self.base_lr_g * factor
        for g in self.opt_d.param_groups:
            g["lr"] = self.base_lr_d * factor

    def generate(self, semantics: Tensor, exemplar: Tensor, exemplar_semantics: Tensor,
                 image: Tensor | None = None) -> dict[str, Tensor]:
        corr = self.netCorr(exemplar, semantics, exemplar_semantics, real_img=image,
                            warp_cycle=image is not None and self.preset.warp_cycle_w > 0)
        out = dict(corr)
        out["fake_image"] = self.netG(semantics, corr["warp_out"])  # netG concatenates (warp, semantics)
        return out

    def generator_losses(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        p = self.preset
        sem, real, ref, ref_sem = batch["semantics"], batch["image"], batch["exemplar"], batch["exemplar_semantics"]
        self_ref = batch["self_ref"].to(real.dtype)
        sample_w = self_ref / (self_ref.sum() + 1e-5)
        out = self.generate(sem, ref, ref_sem, real)
        fake = out["fake_image"]
        losses: dict[str, Tensor] = {}
        if p.novgg_featpair > 0:
            # domain alignment: semantics-side adaptor features vs the ground-truth photo's
            losses["align"] = F.l1_loss(out["adaptive_feature_seg"], out["adaptive_feature_real"]) * p.novgg_featpair
        if p.warp_cycle_w > 0 and "warp_cycle" in out:
            target = ref if self.warp_patch else F.avg_pool2d(ref, self.warp_stride)
            losses["cycle"] = F.l1_loss(out["warp_cycle"], target) * p.warp_cycle_w
        if p.warp_self_w > 0:
            losses["warp_self"] = L.weighted_l1(out["warp_out"], real, sample_w) * p.warp_self_w
        if p.weight_mask > 0 and "warp_mask" in out:
            losses["mask"] = mask_nll(out["warp_mask"], sem, ref_sem) * p.weight_mask
        if p.l1_paired > 0:
            losses["l1"] = L.weighted_l1(fake, real, sample_w) * p.l1_paired

        if self.adversarial:
            pred = _d_outputs(self.netD(torch.cat([torch.cat([sem, fake], 1), torch.cat([sem, real], 1)], 0)))
            pred_fake, pred_real = _split_pred(pred)
            losses["gan"] = L.hinge_g_loss(pred_fake) * p.weight_gan
            if p.lambda_feat > 0:
                losses["feat"] = L.feature_matching_loss(pred_fake, pred_real) * p.lambda_feat

        if self.features is not None:
            with torch.no_grad():
                real_f = self.features(real)
                ref_f = self.features(ref)
            fake_f = self.features(fake)
            weights = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0][-len(fake_f):]
            fm = sum(w * L.weighted_l1(f, r, sample_w) for w, f, r in zip(weights, fake_f, real_f, strict=True))
            losses["fm"] = fm * p.lambda_vgg * p.fm_ratio  # type: ignore[operator]
            k = -1 if p.which_perceptual == "5_2" or len(fake_f) < 2 else -2
            losses["perc"] = F.mse_loss(fake_f[k], real_f[k]) * p.weight_perceptual
            if p.ctx_w > 0:  # the costliest term (all-pairs feature similarities): not run at weight 0
                losses["ctx"] = self._contextual(fake_f, ref_f) * p.lambda_vgg * p.ctx_w
        return losses, out

    @staticmethod
    def _contextual(src: Sequence[Tensor], tgt: Sequence[Tensor]) -> Tensor:
        """Official ``get_ctx_loss``: deepest ×8, next ×4, third (2×2 average-pooled) ×2."""
        total = L.contextual_loss(src[-1], tgt[-1].detach()).mean() * 8
        if len(src) >= 2:
            total = total + L.contextual_loss(src[-2], tgt[-2].detach()).mean() * 4
        if len(src) >= 3:
            total = total + L.contextual_loss(F.avg_pool2d(src[-3], 2), F.avg_pool2d(tgt[-3].detach(), 2)).mean() * 2
        return total

    def discriminator_losses(self, batch: Mapping[str, Tensor], fake: Tensor) -> dict[str, Tensor]:
        sem, real = batch["semantics"], batch["image"]
        pred = _d_outputs(self.netD(torch.cat([torch.cat([sem, fake.detach()], 1), torch.cat([sem, real], 1)], 0)))
        pred_fake, pred_real = _split_pred(pred)
        w = self.preset.weight_gan
        return {"d_fake": L.hinge_d_fake(pred_fake) * w, "d_real": L.hinge_d_real(pred_real) * w}

    def step(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, float], dict[str, Tensor]]:
        """One G step then one D step (official ``Pix2PixTrainer``); returns losses and G outputs."""
        self.opt_g.zero_grad(set_to_none=True)
        g_losses, out = self.generator_losses(batch)
        sum(g_losses.values()).backward()  # type: ignore[union-attr]
        self.opt_g.step()
        d_losses: dict[str, Tensor] = {}
        if self.adversarial:
            self.opt_d.zero_grad(set_to_none=True)
            d_losses = self.discriminator_losses(batch, out["fake_image"])
            sum(d_losses.values()).backward()  # type: ignore[union-attr]
            self.opt_d.step()
        logged = {k: float(v.detach()) for k, v in {**g_losses, **d_losses}.items()}
        return logged, {k: v.detach() for k, v in out.items() if isinstance(v, Tensor)}


def make_encoder(config: Mapping[str, Any]) -> SemanticsEncoder:
    """Training-time encoder of a sample's semantics, by the config's ``input_kind``."""
    return config_encoder(str(config.get("input_kind", "labels")), int(config["semantic_nc"]))


# ================================================================================================
# Sample grids
# ================================================================================================
def semantics_preview(sem: Tensor, one_hot: bool) -> Tensor:
    """Input semantics as an RGB image in [-1, 1]: one-hot maps in fixed pseudo-random colours,
    other encodings (edges, pose rendering) from their first channels."""
    if one_hot:
        g = torch.Generator().manual_seed(0)
        colors = torch.rand(sem.shape[1], 3, generator=g) * 2 - 1
        colors[0] = -1.0  # class 0 ("other") black
        return colors.to(sem.device)[sem.argmax(1)].permute(0, 3, 1, 2)
    x = sem[:, :3] if sem.shape[1] >= 3 else sem[:, :1].expand(-1, 3, -1, -1)
    return x.clamp(0, 1) * 2 - 1


# ================================================================================================
# Training driver
# ================================================================================================
@dataclass
class TrainOptions:
    config: str
    data: Path
    out: Path
    preset: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    loss_overrides: dict[str, Any] = field(default_factory=dict)   # LossPreset fields
    size: int = 0                        # 0: the config's size
    batch_size: int = 4
    iters: int = 1000
    decay_start: int = -1                # -1: half way (paper: niter of niter + niter_decay)
    lr: float = 2e-4
    feature_losses: bool = True
    resume: bool = False
    sample_every: int = 200
    save_every: int = 500
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    export: str = ""                     # weights/<export>.safetensors (netG + netCorr)
    default: bool = False
    command: str = ""
    split: str = "train"
    minutes: float = 0.0                 # >0: stop (checkpoint, export) after this much wall time
    decay_minutes: float = 0.0           # with ``minutes``: the lr falls linearly to 0 over the last M minutes
    init: str = ""                       # warm start netG + netCorr: a manifest entry or an exported file
    workers: int = 0                     # data loader worker processes
    g_eps: float = 1e-3                  # Adam eps of netG + netCorr (official 1e-3)


def _data_root(data: Path, layout: Layout, split: str) -> Path:
    data = Path(data)
    marker = {"scenes": "image", "poses": "image", "faces": "parsing"}[layout]
    if (data / marker).is_dir():
        return data
    if (data / split / marker).is_dir():
        return data / split
    raise InputError(f"{data} is not a {layout} data folder: expected {data}/{split}/{marker}/ "
                     f"(build one with `i2i data build {layout}`)")


def train(opts: TrainOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a CoCosNet model; returns {"step", "losses", "checkpoint", "weights"}."""
    from ..families import get_family, resolve_config
    from ..progress import ProgressBar
    from .common import (
        cleanup_distributed,
        infinite_loader,
        is_main,
        linear_decay,
        load_checkpoint,
        save_checkpoint,
        save_grid,
        seed_everything,
        setup_distributed,
        wrap_ddp,
    )

    info = setup_distributed(opts.device)
    main = is_main(info)
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    log_fn = say if main else (lambda m: None)
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    seed_everything(opts.seed, info.rank)

    family = get_family("cocosnet")
    try:
        config = dict(resolve_config(family, opts.config), **opts.overrides)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from exc
    preset_name = opts.preset or preset_for(opts.config.removeprefix("tiny_").removeprefix("small_"))
    if preset_name not in PRESETS:
        raise InputError(f"unknown preset {preset_name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    unknown = set(opts.loss_overrides) - set(LossPreset.__dataclass_fields__)
    if unknown:
        raise InputError(f"--loss: unknown loss setting(s) {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(f for f in LossPreset.__dataclass_fields__ if f != 'layout')}")
    preset = replace(preset, **opts.loss_overrides)
    size = opts.size or int(config.get("size", 256))
    if size % 32:
        raise InputError(f"--size must be a multiple of 32 (netG starts at size/32), got {size}")
    config["size"] = size
    if config.get("noise_for_mask"):
        # the official run feeds noise instead of exemplar masks to the correspondence features
        # while still warping the real masks for the mask loss; netCorr only swaps in noise at eval
        raise InputError("training the no-exemplar-mask variant (noise_for_mask) is not supported; "
                         "train the ade20k config (the model then runs with exemplar masks)")

    root = _data_root(opts.data, preset.layout, opts.split)
    dataset = CocosnetPairs(root, preset.layout, size, make_encoder(config),
                            real_reference_probability=preset.real_reference_probability,
                            hard_reference_probability=preset.hard_reference_probability,
                            flip=preset.flip, seed=opts.seed + 7919 * info.rank)
    nets = family.build(config)
    nets = {k: m.to(info.device).train() for k, m in nets.items()}
    features = load_feature_terms(opts.feature_losses, info.device, log_fn)
    wrapped = {"netG": wrap_ddp(nets["netG"], info), "netCorr": wrap_ddp(nets["netCorr"], info),
               # the discriminator's ``dec`` head is in the checkpoints but never used in training
               "netD": wrap_ddp(nets["netD"], info, find_unused=True)}
    trainer = CocosnetTrainer(wrapped, preset, lr=opts.lr, features=features,
                              warp_stride=int(config.get("down", 4)), warp_patch=bool(config.get("warp_patch")),
                              g_eps=opts.g_eps)
    out = Path(opts.out)
    ckpt = out / "latest"
    optims = {"G": trainer.opt_g, "D": trainer.opt_d}
    step = 0
    if opts.resume:
        if not (ckpt / "nets.safetensors").exists():
            raise InputError(f"--resume: no checkpoint in {ckpt}")
        step, meta = load_checkpoint(ckpt, nets, optims)
        if meta.get("config") and meta["config"] != json.loads(json.dumps(config)):
            raise InputError(f"--resume: {ckpt} was trained with another config ({meta['config']})")
        log_fn(f"resumed from {ckpt} at step {step}")
    elif opts.init:
        warm_start(nets, opts.init)
        log_fn(f"netG and netCorr warm-started from {opts.init} (a fresh discriminator)")
    decay_start = opts.decay_start if opts.decay_start >= 0 else opts.iters // 2
    log_fn(f"cocosnet {opts.config} ({preset_name} losses) on {root}: {len(dataset)} samples, {size} px, "
           f"batch {opts.batch_size}, {opts.iters} iterations (lr decay from {decay_start}), device {info.device}"
           + (f", {info.world_size} processes" if info.enabled else ""))

    loader = infinite_loader(dataset, opts.batch_size, info=info, seed=opts.seed, num_workers=opts.workers)
    bar = ProgressBar(opts.iters, desc="cocosnet", initial=step) if main else None
    deadline = _clock() + 60 * opts.minutes if opts.minutes > 0 else None
    one_hot = config.get("input_kind", "labels") in ("labels", "celebahq_parsing")
    meta = {"config": config, "config_name": opts.config, "preset": preset_name, "loss_overrides": opts.loss_overrides}
    logged: dict[str, float] = {}
    try:
        while step < opts.iters:
            if deadline is not None and _clock() > deadline:
                log_fn(f"time limit reached at step {step}")
                break
            factor = linear_decay(step, decay_start, opts.iters)
            if deadline is not None and opts.decay_minutes > 0:  # the wall-time budget's last minutes
                factor *= min(1.0, max(0.0, deadline - _clock()) / (60 * opts.decay_minutes))
            trainer.set_lr_factor(factor)
            batch = {k: v.to(info.device) for k, v in next(loader).items()}
            logged, outs = trainer.step(batch)
            bad = [k for k, v in logged.items() if not math.isfinite(v)]
            if bad:
                raise FloatingPointError(f"non-finite loss at step {step}: {', '.join(bad)} "
                                         f"({ {k: logged[k] for k in bad} })")
            step += 1
            if bar is not None:
                bar.update(**{k: round(v, 4) for k, v in logged.items()})
            if main and (step % opts.sample_every == 0 or step == opts.iters):
                save_grid(out / "samples" / f"{step:07d}.png",
                          [semantics_preview(batch["semantics"], one_hot), batch["exemplar"],
                           outs["warp_out"].clamp(-1, 1), outs["fake_image"], batch["image"]])
            if main and (step % opts.save_every == 0 or step == opts.iters):
                save_checkpoint(ckpt, nets, optims, step, meta=meta)
        if main and step % opts.save_every and step != opts.iters:  # stopped by the time limit
            save_checkpoint(ckpt, nets, optims, step, meta=meta)
    finally:
        if bar is not None:
            bar.close()
    # losses are this process's own (not averaged over DDP ranks)
    result: dict[str, Any] = {"step": step, "losses": logged, "checkpoint": ckpt, "weights": None, "main": main}
    if main and opts.export:
        result["weights"] = export_weights(nets, config, opts, preset_name, step)
        log_fn(f"saved {result['weights']}")
    cleanup_distributed()
    return result


def warm_start(nets: Mapping[str, nn.Module], init: str) -> None:
    """netG and netCorr from exported weights (a manifest entry or a .safetensors file) of the same
    config, e.g. a run on another machine; the discriminator starts fresh."""
    from ..weights import Manifest, load_strict, read_safetensors, split_subnets

    path = Path(init)
    if not path.is_file():
        manifest = Manifest()
        if init not in manifest.entries:
            raise InputError(f"--init {init}: neither a file nor a weights manifest entry")
        path = manifest.root / manifest.entries[init].file
    state = {k: {p: t.float() for p, t in sd.items()}
             for k, sd in split_subnets(read_safetensors(path)).items() if k in ("netG", "netCorr")}
    load_strict({k: nets[k] for k in ("netG", "netCorr")}, state, source=str(path))


def export_weights(nets: Mapping[str, nn.Module], config: Mapping[str, Any], opts: TrainOptions,
                   preset_name: str, steps: int) -> Path:
    """netG + netCorr (what inference needs) to ``weights/<export>.safetensors``, registered in the
    manifest as trained here."""
    from ..weights import Manifest, register_file, save_state_dicts

    manifest = Manifest()
    path = manifest.root / f"{opts.export}.safetensors"
    save_state_dicts({k: nets[k].state_dict() for k in ("netG", "netCorr")}, path,
                     metadata={"family": "cocosnet", "config": opts.config})
    manifest = Manifest()  # re-read: other trainers register too
    if str(config.get("input_kind")) == "pose":
        # the training poses' canvas (the poses recipe's square images, encoded at ``size``): the
        # studio brings a pose canvas to it (tasks.exemplar); the official DeepFashion model was
        # trained on squeezed 176×256 canvases and has no such key
        config = dict(config, pose_canvas=[int(config["size"]), int(config["size"])])
    register_file(manifest, name=opts.export, family="cocosnet", config_name=opts.config, config=config,
                  path=path, provenance={"kind": "trained-here", "command": opts.command},
                  description=f"CoCosNet {opts.config} trained here ({preset_name} losses, {steps} iterations)",
                  extra={"iterations": steps, **({"default": True} if opts.default else {})})
    return path


# ================================================================================================
# CLI
# ================================================================================================
def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _cmd_train(args: argparse.Namespace) -> int:
    overrides = dict(_parse_override(t) for t in args.set)
    loss_overrides = dict(_parse_override(t) for t in args.loss)
    command = "i2i train cocosnet " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "i2i train cocosnet"
    opts = TrainOptions(config=args.config, data=Path(args.data), out=Path(args.out), preset=args.preset,
                        overrides=overrides, loss_overrides=loss_overrides, size=args.size,
                        batch_size=args.batch_size, iters=args.iters,
                        decay_start=args.decay_start, lr=args.lr, feature_losses=not args.no_feature_losses,
                        resume=args.resume, sample_every=args.sample_every, save_every=args.save_every,
                        seed=args.seed, device=args.device, threads=args.threads, export=args.export,
                        default=args.default, command=command, split=args.split, minutes=args.minutes,
                        decay_minutes=args.decay_minutes, workers=args.workers, init=args.init, g_eps=args.g_eps)
    res = train(opts)
    if res["main"]:
        losses = "  ".join(f"{k}={v:.4g}" for k, v in res["losses"].items())
        print(f"step {res['step']}  {losses}")
    return 0


def register_cli(groups: Any) -> None:
    """``i2i train cocosnet``."""
    p = groups.train.add_parser(
        "cocosnet", help="train CoCosNet (netCorr + netG + netD) on scenes / faces / poses data",
        description="Trains CoCosNet with the paper's losses. "
                    "Multi-GPU: torchrun --nproc_per_node N -m engine.cli train cocosnet ...")
    p.add_argument("--config", required=True,
                   help="cocosnet config: ade20k, celebahq, celebahqedge, deepfashion, small_*, tiny_*")
    p.add_argument("--data", required=True, help="data folder (data/<recipe> or its split folder)")
    p.add_argument("--out", default="runs/cocosnet", help="run folder: checkpoints (latest/), samples/")
    p.add_argument("--preset", default="", choices=["", *PRESETS], help="loss preset (default: from the config name)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set semantic_nc=24")
    p.add_argument("--loss", action="append", default=[], metavar="KEY=VALUE",
                   help="override a loss weight of the preset, e.g. --loss fm_ratio=1.0 --loss weight_mask=0")
    p.add_argument("--split", default="train")
    p.add_argument("--size", type=int, default=0, help="training crop size (default: the config's)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--decay-start", type=int, default=-1,
                   help="iteration where the linear lr decay starts (default: half way)")
    p.add_argument("--lr", type=float, default=2e-4, help="base lr; TTUR gives G/Corr lr/2 and D 2·lr")
    p.add_argument("--g-eps", type=float, default=1e-3,
                   help="Adam eps of netG + netCorr (official 1e-3; smaller lets tiny gradients move weights)")
    p.add_argument("--no-feature-losses", action="store_true",
                   help="train without the VGG-based losses (pseudo-exemplar, perceptual, contextual)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest")
    p.add_argument("--init", default="", metavar="MODEL",
                   help="warm start netG + netCorr from a manifest entry or exported file; D starts fresh")
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="stop after this much wall time (checkpoint and export still happen)")
    p.add_argument("--decay-minutes", type=float, default=0.0,
                   help="with --minutes: decay the lr linearly to 0 over the budget's last M minutes")
    p.add_argument("--export", default="", metavar="NAME",
                   help="save netG + netCorr to weights/NAME.safetensors and register it")
    p.add_argument("--default", action="store_true", help="mark the exported model as the family default")
    p.set_defaults(func=_cmd_train)
