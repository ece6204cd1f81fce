"""EdgeGAN (Gao et al., CVPR 2020, "SketchyCOCO"; official TensorFlow code sysu-imsl/EdgeGAN) in PyTorch,
plus the scene-level background network the paper describes but never released.

Sub-networks (names are the keys of our weights files):

- ``encoder`` E: edge map / sketch -> (z, μ, log σ); residual, reflect-padded, TF-style instance norm.
- ``edge_generator`` G1 and ``image_generator`` G2: z ⊕ one-hot class -> edge map / image (DCGAN style).
- ``joint_discriminator`` D on [edge | image] side by side, ``image_discriminator`` (TF ``D_patch2``)
  and ``edge_discriminator`` (TF ``D_patch3``) on their input resized to ``dis_size``.
- ``classifier`` C (TF ``D2``): MRU-based multi-scale network with spectral norm and scalar PReLUs.
- ``background_generator`` / ``background_discriminator`` (configs with ``background=True``): a
  pix2pix-style U-Net from {background strokes, pasted foreground, foreground mask} to the scene, and
  a PatchGAN critic.

The official code is NHWC; we are NCHW but flatten in NHWC order before the discriminators' linear
layer and reshape the generators' linear output as NHWC, so that importing a TF checkpoint is a plain
transpose of each tensor (see :func:`tf_variable_map`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..families import Family, PreviewGrid, StateDicts, register
from ..requests.base import WeightsError
from .layers import maybe_spectral

SKETCHYCOCO_CLASSES: tuple[str, ...] = (
    "airplane", "cat", "giraffe", "zebra", "dog", "elephant", "fire hydrant", "horse", "bicycle",
    "car", "traffic light", "cow", "motorcycle", "sheep",
)

NoiseMode = Literal["scalar", "elementwise", "none"]


# ---------------------------------------------------------------------------------------------
# Building blocks that reproduce the TF code's arithmetic
# ---------------------------------------------------------------------------------------------
def tf_instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """EdgeGAN's instance norm: (x − mean) / (√var + eps) over H, W; no affine. Note eps is added to
    the standard deviation, not to the variance as in ``nn.InstanceNorm2d``."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (var.sqrt() + eps)


class TFInstanceNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tf_instance_norm(x)


def tf_same_avg_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """``tf.nn.avg_pool(k, k, 'SAME')``: zero-padded evenly, padding excluded from the average."""
    h, w = x.shape[-2:]
    oh, ow = math.ceil(h / k), math.ceil(w / k)
    ph, pw = max((oh - 1) * k + k - h, 0), max((ow - 1) * k + k - w, 0)
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if not any(pad):
        return F.avg_pool2d(x, k, k)
    ones = torch.ones((1, 1, h, w), dtype=x.dtype, device=x.device)
    total = F.avg_pool2d(F.pad(x, pad), k, k) * (k * k)
    count = F.avg_pool2d(F.pad(ones, pad), k, k) * (k * k)
    return total / count


_BICUBIC_TABLE_SIZE = 1024  # TF's resize_bicubic looks its weights up in a table of 1024 steps


def _tf_legacy_bicubic_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """[out, in] interpolation matrix of TF1's ``resize_bicubic(align_corners=False,
    half_pixel_centers=False)``: source = output index × (in/out) in float32 (no half-pixel offset), the
    fraction rounded to 1/1024 (TF's weight table), Keys' cubic with A = −0.75, taps clamped to the edge."""
    a = -0.75
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = torch.arange(out_size, dtype=torch.float32) * scale
    base = src.floor()
    frac = torch.round((src - base) * _BICUBIC_TABLE_SIZE).double() / _BICUBIC_TABLE_SIZE

    def near(t: torch.Tensor) -> torch.Tensor:  # |t| ≤ 1
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t: torch.Tensor) -> torch.Tensor:  # 1 < |t| < 2
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a

    weights = torch.stack([far(frac + 1), near(frac), near(1 - frac), far(2 - frac)], 1).float()
    taps = (base.long()[:, None] + torch.arange(-1, 3)[None, :]).clamp(0, in_size - 1)
    matrix = torch.zeros(out_size, in_size)
    matrix.scatter_add_(1, taps, weights)
    return matrix


def tf_legacy_resize_bicubic(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``tf.image.resize_images(x, size, method=BICUBIC)`` as TF 1.x runs it (the official pipeline's
    resize before the image and edge discriminators); differentiable, for N×C×H×W tensors."""
    oh, ow = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    mh = _tf_legacy_bicubic_matrix(h, oh).to(x.device, x.dtype)
    mw = _tf_legacy_bicubic_matrix(w, ow).to(x.device, x.dtype)
    return torch.einsum("oh,nchw,pw->ncop", mh, x, mw)


class TFDeconv(nn.Module):
    """``tf.nn.conv2d_transpose`` with 'SAME' padding and stride 2 (output exactly 2× the input).

    TF's SAME pads the equivalent forward conv by (k−2)//2 before and the rest after; PyTorch pads
    symmetrically, so we run with padding (k−2)//2 and drop the surplus last row/column."""

    def __init__(self, cin: int, cout: int, k: int = 5, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.ConvTranspose2d(cin, cout, k, stride, padding=(k - stride) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.conv(x)[..., : h * self.stride, : w * self.stride]


class ScalarPReLU(nn.Module):
    """The TF code's ``prelu``: max(a·x, x) with one learned scalar a (initial 0.2)."""

    def __init__(self, init: float = 0.2) -> None:
        super().__init__()
        self.param = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(self.param * x, x)


def mean_pool2(x: torch.Tensor) -> torch.Tensor:
    """The MRU code's 2×2 mean pool (even sizes)."""
    return F.avg_pool2d(x, 2)


# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------
class EncoderResBlock(nn.Module):
    """3×3 reflect conv + IN + ReLU, 3×3 reflect conv + IN, 1×1 shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.res1 = nn.Conv2d(cin, cout, 3)
        self.res2 = nn.Conv2d(cout, cout, 3)
        self.shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(tf_instance_norm(self.res1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        out = tf_instance_norm(self.res2(F.pad(out, (1, 1, 1, 1), mode="reflect")))
        return F.relu(self.shortcut(x) + out)


def encoder_widths(config: Mapping[str, Any]) -> list[int]:
    """Residual block widths: (2, 4, 8, 8)·ef (+8·ef at 256 px), as the official resnet encoder."""
    ef = int(config.get("ef_dim", 64))
    widths = [2 * ef, 4 * ef, 8 * ef, 8 * ef]
    if int(config.get("image_size", 64)) == 256:
        widths.append(8 * ef)
    return widths


class EdgeEncoder(nn.Module):
    """E: edge map (3×S×S in [-1, 1]) -> z, μ, log σ."""

    def __init__(self, image_size: int = 64, z_dim: int = 100, ef_dim: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.image_size, self.z_dim = image_size, z_dim
        self.stem = nn.Conv2d(in_channels, ef_dim, 4, 2, 1)
        widths = encoder_widths({"ef_dim": ef_dim, "image_size": image_size})
        chans = [ef_dim, *widths]
        self.blocks = nn.ModuleList(EncoderResBlock(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
        side = image_size // 2
        for _ in widths:
            side = math.ceil(side / 2)
        side = math.ceil(side / 8)
        self.fc_mu = nn.Linear(widths[-1] * side * side, z_dim)
        self.fc_sigma = nn.Linear(widths[-1] * side * side, z_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))
        for block in self.blocks:
            h = tf_same_avg_pool(block(h), 2)
        h = tf_same_avg_pool(F.relu(h), 8)
        return h.permute(0, 2, 3, 1).flatten(1)

    def forward(self, x: torch.Tensor, noise: NoiseMode = "scalar",
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``noise="scalar"`` is the official behaviour: ONE normal number per call (a 0-d draw),
        shared by every sample and dimension; "elementwise" is the textbook VAE draw; "none" gives μ."""
        h = self.features(x)
        mu, log_sigma = self.fc_mu(h), self.fc_sigma(h)
        if noise == "none":
            return mu, mu, log_sigma
        shape = () if noise == "scalar" else mu.shape
        eps = torch.randn(shape, generator=generator, device="cpu" if generator is not None else mu.device,
                          dtype=mu.dtype).to(mu.device)
        return mu + eps * log_sigma.exp(), mu, log_sigma


# ---------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------
class EdgeGANGenerator(nn.Module):
    """G1 / G2: Linear -> S/16 × S/16 × 8gf, batch norm (batch statistics, γ/β), ReLU; three 5×5 s2
    deconvs (4gf, 2gf, gf) with IN + ReLU; a 5×5 s2 deconv to ``out_channels``; tanh.

    The first norm is what the official code runs, not what its flags say: ``nn.norm(h0, self._norm)``
    passes the norm name as ``is_train``, so the default ``norm='batch'`` applies — TF's batch norm with
    ``is_training=True`` hard-coded, in the test graph too (ε = 1e-5 inside the square root, variables
    ``G1|G2/batch_norm/BatchNorm/{gamma,beta}``). Its statistics are always the batch's own over (N, H, W);
    the moving averages TF keeps are never read, so we keep none. At batch 1 this is an affine instance
    norm over (H, W)."""

    def __init__(self, image_size: int = 64, z_dim: int = 100, num_classes: int = 14, gf_dim: int = 64,
                 out_channels: int = 3) -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.gf_dim = z_dim, num_classes, gf_dim
        s = image_size
        for _ in range(4):
            s = math.ceil(s / 2)
        self.s16 = s
        self.fc = nn.Linear(z_dim + num_classes, 8 * gf_dim * s * s)
        self.fc_norm = nn.BatchNorm2d(8 * gf_dim, eps=1e-5, affine=True, track_running_stats=False)
        # True: each sample normalised by its own statistics (with the same γ/β), which is what the
        # batch norm computes at batch 1 (inference); a trainer sets it so training sees the same net
        self.norm_per_sample = False
        chans = [8 * gf_dim, 4 * gf_dim, 2 * gf_dim, gf_dim, out_channels]
        self.deconvs = nn.ModuleList(TFDeconv(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``z`` is B×z_dim with ``labels`` (B class indices), or already B×(z_dim + classes)."""
        if labels is not None:
            z = torch.cat([z, F.one_hot(labels.long(), self.num_classes).to(z.dtype)], 1)
        h = self.fc(z).view(z.shape[0], self.s16, self.s16, 8 * self.gf_dim).permute(0, 3, 1, 2)
        if self.norm_per_sample:
            h = F.instance_norm(h, weight=self.fc_norm.weight, bias=self.fc_norm.bias, eps=self.fc_norm.eps)
        else:
            h = self.fc_norm(h)
        h = F.relu(h)
        for i, deconv in enumerate(self.deconvs):
            h = deconv(h)
            if i < len(self.deconvs) - 1:
                h = F.relu(tf_instance_norm(h))
        return torch.tanh(h)


# ---------------------------------------------------------------------------------------------
# Discriminators
# ---------------------------------------------------------------------------------------------
class EdgeGANDiscriminator(nn.Module):
    """Four 4×4 s2 convs (df, 2df, 4df, 8df; no bias; IN after all but the first), LeakyReLU 0.2,
    linear -> 1 on the NHWC-flattened features. Returns the critic value (no sigmoid; WGAN)."""

    def __init__(self, height: int, width: int, df_dim: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.height, self.width = height, width
        chans = [in_channels, df_dim, 2 * df_dim, 4 * df_dim, 8 * df_dim]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1, bias=False)
                                   for a, b in zip(chans[:-1], chans[1:], strict=True))
        h, w = height, width
        for _ in range(4):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        self.fc = nn.Linear(8 * df_dim * h * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.height, self.width):
            raise ValueError(f"discriminator expects {self.height}×{self.width} inputs, got {tuple(x.shape[-2:])}")
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i > 0:
                x = tf_instance_norm(x)
            x = F.leaky_relu(x, 0.2)
        return self.fc(x.permute(0, 2, 3, 1).flatten(1))


# ---------------------------------------------------------------------------------------------
# MRU classifier (TF scope D2)
# ---------------------------------------------------------------------------------------------
def _sn_conv(cin: int, cout: int, k: int, bias_init: float = 0.0) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, 1, k // 2)
    nn.init.xavier_uniform_(conv.weight)
    nn.init.constant_(conv.bias, bias_init)
    return maybe_spectral(conv, True)


class MRUBlock(nn.Module):
    """Masked residual unit (SketchyGAN's ``mru_conv_block_v3``, no normaliser, PReLU activations).

    gate = minmax_normalise(lrelu(conv([act(h), x]))), h' = h + gate·conv(x),
    out = proj(h) + conv(act(conv(act(h')))), then a 2×2 mean pool."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, last: bool = False) -> None:
        super().__init__()
        self.act_in, self.act_merge, self.act_mid = ScalarPReLU(), ScalarPReLU(), ScalarPReLU()
        self.update_gate = _sn_conv(hidden + in_channels, hidden, 3, bias_init=0.5)
        self.input_conv = _sn_conv(in_channels, hidden, 3)
        self.conv1 = _sn_conv(hidden, out_channels, 3)
        self.conv2 = _sn_conv(out_channels, out_channels, 3)
        self.proj = _sn_conv(hidden, out_channels, 1) if hidden != out_channels else None
        self.act_last = ScalarPReLU() if last else None

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gate = F.leaky_relu(self.update_gate(torch.cat([self.act_in(h), x], 1)), 0.2)
        lo = gate.amin(dim=(2, 3), keepdim=True)
        hi = gate.amax(dim=(2, 3), keepdim=True)
        gate = (gate - lo) / (hi - lo).clamp_min(1e-8)  # TF divides unguarded; a flat map would give NaN
        merged = self.act_merge(h + gate * self.input_conv(x))
        new = self.conv2(self.act_mid(self.conv1(merged)))
        out = mean_pool2((self.proj(h) if self.proj is not None else h) + new)
        return self.act_last(out) if self.act_last is not None else out


def classifier_widths(cf_dim: int) -> list[int]:
    """Hidden-state widths: the 7×7 stem's 8, then the four MRU units' (2, 4, 8, 12)·cf (the official
    code's hard-coded ``size = 64``)."""
    return [8, 2 * cf_dim, 4 * cf_dim, 8 * cf_dim, 12 * cf_dim]


class MRUClassifier(nn.Module):
    """C: image -> class logits. Image pyramid by 2×2 mean pools; a 7×7 conv (8 channels) on the full
    image starts the hidden state; four MRU units (2, 4, 8, 12)·cf wide each read the pyramid level of
    their hidden state's size and halve it; spatial mean; spectral-norm linear -> classes."""

    def __init__(self, num_classes: int = 14, cf_dim: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.h0 = _sn_conv(in_channels, 8, 7)
        self.act0 = ScalarPReLU()
        widths = classifier_widths(cf_dim)
        self.units = nn.ModuleList(MRUBlock(in_channels, a, b, last=(i == 3))
                                   for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)))
        fc = nn.Linear(widths[-1], num_classes)
        nn.init.xavier_uniform_(fc.weight)
        nn.init.zeros_(fc.bias)
        self.fc = maybe_spectral(fc, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(len(self.units) - 1):
            pyramid.append(mean_pool2(pyramid[-1]))
        h = self.act0(self.h0(x))
        for unit, level in zip(self.units, pyramid, strict=True):
            h = unit(level, h)
        return self.fc(h.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------------------------
# Scene background network (pix2pix-style; the paper's second stage, code never released)
# ---------------------------------------------------------------------------------------------
BACKGROUND_IN_CHANNELS = 5  # background strokes (1) + pasted foreground RGB (3) + foreground mask (1)


class BackgroundUNet(nn.Module):
    """U-Net generator (pix2pix): 4×4 s2 conv + IN + LeakyReLU down, 4×4 s2 deconv + IN + ReLU up
    with skip connections; tanh RGB out."""

    def __init__(self, ngf: int = 64, depth: int = 6, in_channels: int = BACKGROUND_IN_CHANNELS) -> None:
        super().__init__()
        widths = [min(ngf * 2 ** i, ngf * 8) for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(widths):
            self.down.append(nn.Sequential(
                nn.Conv2d(cin, w, 4, 2, 1),
                nn.InstanceNorm2d(w) if 0 < i < depth - 1 else nn.Identity(),
                nn.LeakyReLU(0.2)))
            cin = w
        self.up = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            cin_up = widths[i + 1] if i == depth - 2 else widths[i + 1] * 2
            self.up.append(nn.Sequential(nn.ConvTranspose2d(cin_up, widths[i], 4, 2, 1),
                                         nn.InstanceNorm2d(widths[i]), nn.ReLU()))
        self.out = nn.ConvTranspose2d(widths[0] * 2, 3, 4, 2, 1)
        self.multiple = 2 ** depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"background network needs sides divisible by {self.multiple}, got {tuple(x.shape[-2:])}")
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()
        for layer in self.up:
            x = torch.cat([layer(x), skips.pop()], 1)
        return torch.tanh(self.out(x))


class PatchDiscriminator(nn.Module):
    """70×70-style PatchGAN on [condition | image] (pix2pix), spectral norm, hinge loss."""

    def __init__(self, ndf: int = 64, in_channels: int = BACKGROUND_IN_CHANNELS + 3, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [maybe_spectral(nn.Conv2d(in_channels, ndf, 4, 2, 1), True), nn.LeakyReLU(0.2)]
        cin = ndf
        for i in range(1, n_layers + 1):
            cout = min(ndf * 2 ** i, ndf * 8)
            stride = 2 if i < n_layers else 1
            layers += [maybe_spectral(nn.Conv2d(cin, cout, 4, stride, 1), True), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(maybe_spectral(nn.Conv2d(cin, 1, 4, 1, 1), True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------------
# Family: configs, build, TF names, import
# ---------------------------------------------------------------------------------------------
TF_SCOPES = {"encoder": "E", "edge_generator": "G1", "image_generator": "G2", "joint_discriminator": "D",
             "image_discriminator": "D_patch2", "edge_discriminator": "D_patch3", "classifier": "D2"}

CONFIGS: dict[str, dict[str, Any]] = {
    # The released SketchyCOCO model (objects only; 64×64 halves of 64×128 pairs).
    "class14": {"image_size": 64, "z_dim": 100, "classes": list(SKETCHYCOCO_CLASSES), "gf_dim": 64,
                "df_dim": 64, "ef_dim": 64, "cf_dim": 64, "dis_size": 128, "background": False},
    # The paper's 128 px option, same widths.
    "class14_128": {"image_size": 128, "z_dim": 100, "classes": list(SKETCHYCOCO_CLASSES), "gf_dim": 64,
                    "df_dim": 64, "ef_dim": 64, "cf_dim": 64, "dis_size": 128, "background": False},
    # What `i2i train edgegan` uses on a CPU: narrow, with a background network for scenes.
    "small": {"image_size": 64, "z_dim": 64, "classes": list(SKETCHYCOCO_CLASSES), "gf_dim": 16,
              "df_dim": 16, "ef_dim": 16, "cf_dim": 8, "dis_size": 64, "background": True,
              "bg_ngf": 16, "bg_size": 128},
    # The reduced widths of the official-code reference checkpoint in tests/data/edgegan_tf (made with the
    # official TF code; its encoder and classifier widths patched down from 64): imports such a checkpoint.
    "tf_reference": {"image_size": 64, "z_dim": 16, "classes": list(SKETCHYCOCO_CLASSES[:5]), "gf_dim": 4,
                     "df_dim": 4, "ef_dim": 4, "cf_dim": 4, "dis_size": 80, "background": False},
    # Test-sized.
    "tiny": {"image_size": 32, "z_dim": 16, "classes": ["cat", "dog", "car"], "gf_dim": 8, "df_dim": 8,
             "ef_dim": 8, "cf_dim": 4, "dis_size": 32, "background": True, "bg_ngf": 8, "bg_size": 64},
}


def class_names(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("classes", SKETCHYCOCO_CLASSES))


def background_depth(config: Mapping[str, Any]) -> int:
    """U-Net depth: down to 4 px at ``bg_size`` (at most 8 levels)."""
    return max(3, min(8, int(math.log2(int(config.get("bg_size", 256)))) - 2))


def preview_grid(config: Mapping[str, Any]) -> PreviewGrid | None:
    """Live-preview sizes of the scene background network (multiples of 2**depth up to ``bg_size``);
    none for object-only models (EdgeGAN objects run at their fixed size)."""
    if not config.get("background", False):
        return None
    step = 2 ** background_depth(config)
    return PreviewGrid(minimum=step, stride=step, native=max(step, int(config.get("bg_size", 256))))


def build(config: Mapping[str, Any], only: tuple[str, ...] | None = None) -> dict[str, nn.Module]:
    """Every sub-network of ``config`` (or just those named in ``only``)."""
    size, z_dim = int(config.get("image_size", 64)), int(config.get("z_dim", 100))
    n_cls = len(class_names(config))
    gf, df = int(config.get("gf_dim", 64)), int(config.get("df_dim", 64))
    dis = int(config.get("dis_size", 128))
    makers: dict[str, Callable[[], nn.Module]] = {
        "encoder": lambda: EdgeEncoder(size, z_dim, int(config.get("ef_dim", 64))),
        "edge_generator": lambda: EdgeGANGenerator(size, z_dim, n_cls, gf),
        "image_generator": lambda: EdgeGANGenerator(size, z_dim, n_cls, gf),
        "joint_discriminator": lambda: EdgeGANDiscriminator(size, 2 * size, df),
        "image_discriminator": lambda: EdgeGANDiscriminator(dis, dis, df),
        "edge_discriminator": lambda: EdgeGANDiscriminator(dis, dis, df),
        "classifier": lambda: MRUClassifier(n_cls, int(config.get("cf_dim", 64))),
    }
    if config.get("background", False):
        ngf = int(config.get("bg_ngf", 64))
        makers["background_generator"] = lambda: BackgroundUNet(ngf, background_depth(config))
        makers["background_discriminator"] = lambda: PatchDiscriminator(ngf)
    return {name: make() for name, make in makers.items() if only is None or name in only}


# TF layout transforms: TF tensor -> our tensor. conv w [kh, kw, in, out] -> [out, in, kh, kw];
# transposed conv w [kh, kw, out, in] -> [in, out, kh, kw] (same permutation); linear [in, out] -> [out, in];
# the classifier's conv biases are [1, C, 1, 1] (NCHW broadcast); PReLU slopes are scalars; a
# spectral-norm ``u`` is [1, out] (see :func:`_spectral_vectors` for what we store instead).
_TO_TORCH: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "conv": lambda t: t.permute(3, 2, 0, 1),
    "deconv": lambda t: t.permute(3, 2, 0, 1),
    "linear": lambda t: t.t(),
    "bias": lambda t: t,
    "bias_nchw": lambda t: t.reshape(-1),
    "scalar": lambda t: t.reshape(()),
    "sn_u": lambda t: t.reshape(-1),
}
_TO_TF: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "conv": lambda t: t.permute(2, 3, 1, 0),
    "deconv": lambda t: t.permute(2, 3, 1, 0),
    "linear": lambda t: t.t(),
    "bias": lambda t: t,
    "bias_nchw": lambda t: t.reshape(1, -1, 1, 1),
    "scalar": lambda t: t,
    "sn_u": lambda t: t.reshape(1, -1),
}

# Checkpoint variables an import leaves out on purpose, with the reason. Every other variable must be
# mapped (see :func:`tf_variable_map`); anything else is reported, never silently dropped.
TF_SKIPPED: tuple[tuple[str, str], ...] = (
    (r"/RMSProp(_1)?$", "RMSProp optimizer slot"),
    (r"^G[12]/batch_norm/BatchNorm/moving_(mean|variance)$",
     "moving average that the official batch norm (always in training mode) never reads"),
    (r"^D2/Conv_1/", "the classifier's 1×1 discriminator head, whose output no official loss uses"),
)


def tf_skip_reason(name: str) -> str | None:
    """Why an import deliberately ignores the checkpoint variable ``name`` (None: it must be mapped)."""
    for pattern, reason in TF_SKIPPED:
        if re.search(pattern, name):
            return reason
    return None


def _sn_entries(tf_scope: str, ours: str, kind: str = "conv",
                bias: str = "bias_nchw") -> Iterator[tuple[str, str, str]]:
    """A spectral-normed layer of the MRU code: ``weights``, ``biases`` and the power-iteration vector
    ``u``, which TF creates in a scope named after the weight's own scope (hence the doubled path)."""
    yield f"{tf_scope}/weights", f"{ours}.weight_orig", kind
    yield f"{tf_scope}/biases", f"{ours}.bias", bias
    yield f"{tf_scope}/{tf_scope}/u", f"{ours}.weight_u", "sn_u"


def _tf_entries(sub: str, config: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(TF variable name, our parameter name, layout kind) of one sub-network, in TF creation order."""
    scope = TF_SCOPES[sub]
    if sub == "encoder":
        ef = int(config.get("ef_dim", 64))
        yield f"{scope}/e_resnet_{ef}_0/conv2d/w", "stem.weight", "conv"
        yield f"{scope}/e_resnet_{ef}_0/conv2d/b", "stem.bias", "bias"
        for i, n in enumerate(encoder_widths(config)):
            for part in ("res1", "res2", "shortcut"):
                yield f"{scope}/e_resnet_{n}_{i + 1}/{part}/conv2d/w", f"blocks.{i}.{part}.weight", "conv"
                yield f"{scope}/e_resnet_{n}_{i + 1}/{part}/conv2d/b", f"blocks.{i}.{part}.bias", "bias"
        for head, ours in (("FC8_mu", "fc_mu"), ("FC8_sigma", "fc_sigma")):
            yield f"{scope}/{head}/w", f"{ours}.weight", "linear"
            yield f"{scope}/{head}/b", f"{ours}.bias", "bias"
    elif sub in ("edge_generator", "image_generator"):
        yield f"{scope}/g_lin_0/Matrix", "fc.weight", "linear"
        yield f"{scope}/g_lin_0/bias", "fc.bias", "bias"
        yield f"{scope}/batch_norm/BatchNorm/beta", "fc_norm.bias", "bias"
        yield f"{scope}/batch_norm/BatchNorm/gamma", "fc_norm.weight", "bias"
        for i in range(4):
            yield f"{scope}/g_dconv_{i + 1}/deconv2d/w", f"deconvs.{i}.conv.weight", "deconv"
            yield f"{scope}/g_dconv_{i + 1}/deconv2d/b", f"deconvs.{i}.conv.bias", "bias"
    elif sub == "classifier":
        widths = classifier_widths(int(config.get("cf_dim", 64)))
        yield from _sn_entries(f"{scope}/Conv", "h0")
        yield f"{scope}/Conv/prelu/param", "act0.param", "scalar"
        for i in range(4):
            unit, ours = f"{scope}/mru_conv_unit_t_{i + 1}_layer_0", f"units.{i}"
            yield f"{unit}/norm_activation_in/prelu/param", f"{ours}.act_in.param", "scalar"
            yield from _sn_entries(f"{unit}/update_gate", f"{ours}.update_gate")
            yield from _sn_entries(f"{unit}/Conv", f"{ours}.input_conv")
            yield f"{unit}/norm_activation_merge_1/prelu/param", f"{ours}.act_merge.param", "scalar"
            yield from _sn_entries(f"{unit}/Conv_1", f"{ours}.conv1")
            yield f"{unit}/Conv_1/prelu/param", f"{ours}.act_mid.param", "scalar"
            yield from _sn_entries(f"{unit}/Conv_2", f"{ours}.conv2")
            if widths[i] != widths[i + 1]:
                yield from _sn_entries(f"{unit}/Conv_3", f"{ours}.proj")
        yield f"{scope}/mru_conv_unit_last_norm/prelu/param", "units.3.act_last.param", "scalar"
        yield from _sn_entries(f"{scope}/fully_connected", "fc", kind="linear", bias="bias")
    else:  # discriminators: the official layer names skip index 2
        for i, tf_index in enumerate((0, 1, 3, 4)):
            yield f"{scope}/d_conv_{tf_index}/conv2d/w", f"convs.{i}.weight", "conv"
        yield f"{scope}/d_linear_5/Matrix", "fc.weight", "linear"
        yield f"{scope}/d_linear_5/bias", "fc.bias", "bias"


def tf_variable_map(config: Mapping[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    """{sub-network: [(TF name, our name, kind)]} for the seven sub-networks a TF checkpoint holds."""
    return {sub: list(_tf_entries(sub, config)) for sub in TF_SCOPES}


def tf_names(config: Mapping[str, Any]) -> dict[str, dict[str, list]]:
    """{sub: {TF variable name: [TF-layout shape, dtype]}} — the ``--tf-names`` view, in the format of
    the reference manifests ``edgegan_class14_*.json``."""
    nets = build(config, only=tuple(TF_SCOPES))
    out: dict[str, dict[str, list]] = {}
    for sub, entries in tf_variable_map(config).items():
        sd = nets[sub].state_dict()
        out[sub] = {tf: [list(_TO_TF[kind](sd[ours]).shape), "float32"] for tf, ours, kind in entries}
    return out


def _spectral_vectors(weight: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our (weight_u, weight_v) for a TF spectral-norm layer with stored vector ``u``.

    TF's ``spectral_normed_weight`` runs one power iteration from the stored u on every call (the
    update op that would store the new u is never run): v = n(u·Wᵀ), u' = n(v·W), σ = v·W·u'ᵀ, with
    W the weight as [kh·kw·in, out]. PyTorch's spectral norm in eval mode uses its stored u, v as they
    are: σ = uᵀ·W·v with W as [out, in·kh·kw]. Storing u' and v (in our layout) gives the same σ."""
    w = weight.double().flatten(1)  # [out, in·kh·kw] (a linear layer's [out, in] already)

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return x / (x.norm() + 1e-12)  # TF's _l2normalize

    v = normalise(w.t() @ u.double())
    u_new = normalise(w @ v)
    return u_new.to(weight.dtype), v.to(weight.dtype)


def state_dicts_to_tf(state: StateDicts, config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Our sub-network state dicts -> {TF variable name: TF-layout tensor} (used to write bundles).
    A spectral-norm layer's ``u`` is our weight_u: TF's one power iteration from it lands on the
    converged singular vectors, so the round trip is exact only for converged (trained) layers."""
    out: dict[str, torch.Tensor] = {}
    for sub, entries in tf_variable_map(config).items():
        if sub not in state:
            continue
        for tf, ours, kind in entries:
            out[tf] = _TO_TF[kind](state[sub][ours]).contiguous()
    return out


def tf_to_state_dicts(variables: Mapping[str, torch.Tensor], config: Mapping[str, Any],
                      subnets: tuple[str, ...] | None = None) -> StateDicts:
    """{TF name: tensor} -> our state dicts for every sub-network whose scope the checkpoint holds.

    Strict: a scope present but incomplete, and any variable that is neither mapped nor on the
    :data:`TF_SKIPPED` list, are reported together in one WeightsError."""
    mapping = tf_variable_map(config)
    state: StateDicts = {}
    problems: list[str] = []
    for sub in subnets or tuple(mapping):
        entries = mapping[sub]
        if not any(tf in variables for tf, _, _ in entries):
            continue
        sd: dict[str, torch.Tensor] = {}
        for tf, ours, kind in entries:
            if tf not in variables:
                problems.append(f"variable {tf!r} ({sub}) is missing")
                continue
            sd[ours] = _TO_TORCH[kind](variables[tf].float()).contiguous()
        for _tf, ours, kind in entries:
            if kind == "sn_u" and ours in sd:
                layer = ours.removesuffix(".weight_u")
                if f"{layer}.weight_orig" in sd:
                    sd[ours], sd[f"{layer}.weight_v"] = _spectral_vectors(sd[f"{layer}.weight_orig"], sd[ours])
        state[sub] = sd
    expected = {tf for entries in mapping.values() for tf, _, _ in entries}
    unknown = sorted(n for n in variables if n not in expected and tf_skip_reason(n) is None)
    if problems:
        foreign = [n for n in unknown if n.split("/", 1)[0] in TF_SCOPES.values()]
        hint = ("" if not foreign else "\n  the checkpoint has instead e.g. " + ", ".join(foreign[:6])
                + " — a different configuration (widths, image size)? choose another --config")
        shown = problems[:30] + ([f"… and {len(problems) - 30} more"] if len(problems) > 30 else [])
        raise WeightsError(f"the TF checkpoint lacks {len(problems)} variables this architecture needs:\n  "
                           + "\n  ".join(shown) + hint)
    if unknown:
        shown = unknown[:30] + ([f"… and {len(unknown) - 30} more"] if len(unknown) > 30 else [])
        raise WeightsError(f"the TF checkpoint has {len(unknown)} variables that the EdgeGAN import neither "
                           f"maps nor deliberately skips (optimizer slots, unused heads); refusing to drop them "
                           f"silently:\n  " + "\n  ".join(shown))
    return state


def convert(paths: list[Path], config: Mapping[str, Any]) -> StateDicts:
    """A TF1 Saver checkpoint (its ``.index`` and/or ``.data-*`` file, the prefix, or its folder with a
    ``checkpoint`` file) -> our state dicts, strictly: see :func:`tf_to_state_dicts` and
    :data:`TF_SKIPPED`."""
    from ..weights.tf_checkpoint import read_checkpoint, resolve_prefix

    prefixes = {resolve_prefix(Path(p)) for p in paths}
    if len(prefixes) != 1:
        raise WeightsError("an EdgeGAN import takes one TF checkpoint (its .index and .data files, its prefix "
                           f"or its folder); got files of {len(prefixes)} checkpoints")
    variables = read_checkpoint(prefixes.pop())
    if not any(name.split("/", 1)[0] in TF_SCOPES.values() for name in variables):
        raise WeightsError(f"{paths[0]} holds no EdgeGAN variables (scopes {', '.join(TF_SCOPES.values())})")
    return tf_to_state_dicts(variables, config)


def optional_keys(sub: str) -> set[str]:
    """Files written before the generators had the official batch norm lack its γ/β; the module's own
    γ = 1, β = 0 then give the instance norm those files were trained with (at batch 1, up to ε's place)."""
    return {"fc_norm.weight", "fc_norm.bias"} if sub in ("edge_generator", "image_generator") else set()


FAMILY = register(Family(
    name="edgegan",
    build=build,
    configs=CONFIGS,
    convert=convert,
    optional_keys=optional_keys,
    inference_subnets=("encoder", "edge_generator", "image_generator"),
    keys_extra={"tf-names": tf_names},
    preview_grid=preview_grid,
    description="EdgeGAN (SketchyCOCO): sketch -> edge map + object image; scene background network",
))
