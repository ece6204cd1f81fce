"""StarGAN v2 (Choi et al., CVPR 2020): generator, mapping network, style encoder, discriminator,
the high-pass skip filter and the FAN face-landmark network used for the ``w_hpf`` masks.

Module and parameter names follow the official clovaai/stargan-v2 code so that the released
``100000_nets_ema.ckpt`` and ``wing.ckpt`` load without renaming (see
``shared/reference/manifests/stargan2_*.json``). The forward passes reproduce the official op order,
epsilons, LeakyReLU slope 0.2 and the 1/sqrt(2) residual scaling.

Beyond the official constructor arguments there are two width knobs used only by our small
trained-here configs: ``base_dim`` (channels at the input resolution; official: ``2**14 // img_size``)
and ``hidden_dim`` (mapping network width; official: 512, hard-coded there).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..families import Family, PreviewGrid, StateDicts, register
from ..requests.base import WeightsError
from .layers import pooled_conv_weight, upsampled_conv_weight

SQRT2 = math.sqrt(2.0)


def _check_img_size(img_size: int) -> None:
    if img_size < 16 or img_size & (img_size - 1):
        raise ValueError(f"StarGAN v2 img_size must be a power of two >= 16, got {img_size}")


def default_base_dim(img_size: int) -> int:
    """Channels at the input resolution in the official code (64 at 256 px)."""
    return 2 ** 14 // img_size


# ------------------------------------------------------------------------------------ blocks
class ResBlk(nn.Module):
    """Pre-activation residual block of the encoder, style encoder and discriminator."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False) -> None:
        super().__init__()
        self.normalize = normalize
        self.downsample = downsample
        self.learned_sc = dim_in != dim_out
        # Registration order (conv1, conv2, norm1, norm2, conv1x1) is the official state-dict order.
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)
        self.register_buffer("conv1_pooled", None, persistent=False)  # set by fold_resampling()

    def fold_resampling(self) -> None:
        """For inference only (the weights must not change afterwards): conv1 + average pool run as
        one stride-2 4×4 conv, and the shortcut pools before its 1×1 conv (both are linear, so they
        commute): the same maths in about half the multiply-adds."""
        if self.downsample:
            self.conv1_pooled = pooled_conv_weight(self.conv1.weight.detach())

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv1_pooled is not None:
            x = F.avg_pool2d(x, 2)
            return self.conv1x1(x) if self.learned_sc else x
        if self.learned_sc:
            x = self.conv1x1(x)
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        return x

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = self.norm1(x)
        x = F.leaky_relu(x, 0.2)
        if self.conv1_pooled is not None:
            x = F.conv2d(x, self.conv1_pooled, self.conv1.bias, stride=2, padding=1)
        else:
            x = self.conv1(x)
            if self.downsample:
                x = F.avg_pool2d(x, 2)
        if self.normalize:
            x = self.norm2(x)
        x = F.leaky_relu(x, 0.2)
        return self.conv2(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x)) / SQRT2  # unit variance


class AdaIN(nn.Module):
    """Instance norm without affine, modulated by (1 + gamma), beta from one linear layer of s."""

    def __init__(self, style_dim: int, num_features: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.fc(s)
        h = h.view(h.size(0), h.size(1), 1, 1)
        gamma, beta = torch.chunk(h, chunks=2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """Decoder block; with ``w_hpf > 0`` the shortcut is dropped (official behaviour)."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int = 64, w_hpf: float = 0,
                 upsample: bool = False) -> None:
        super().__init__()
        self.w_hpf = w_hpf
        self.upsample = upsample
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)
        self.register_buffer("conv1_upsampled", None, persistent=False)  # set by fold_resampling()

    def fold_resampling(self) -> None:
        """For inference only (the weights must not change afterwards): nearest upsample + conv1 run
        as one stride-2 4×4 transposed conv, and the shortcut's 1×1 conv runs before its upsample
        (they commute): the same maths in under half the multiply-adds."""
        if self.upsample:
            self.conv1_upsampled = upsampled_conv_weight(self.conv1.weight.detach())

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv1_upsampled is not None:
            x = self.conv1x1(x) if self.learned_sc else x
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.learned_sc:
            x = self.conv1x1(x)
        return x

    def _residual(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x, s)
        x = F.leaky_relu(x, 0.2)
        if self.conv1_upsampled is not None:
            x = F.conv_transpose2d(x, self.conv1_upsampled, self.conv1.bias, stride=2, padding=1)
        else:
            if self.upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.conv1(x)
        x = self.norm2(x, s)
        x = F.leaky_relu(x, 0.2)
        return self.conv2(x)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out = self._residual(x, s)
        if self.w_hpf == 0:
            out = (out + self._shortcut(x)) / SQRT2
        return out


class HighPass(nn.Module):
    """Fixed depthwise 3×3 Laplacian divided by ``w_hpf``.

    The filter is a non-persistent buffer: the released celeba_hq checkpoint predates the
    official code's buffer and has no ``hpf.filter`` key, and it is a constant anyway.
    """

    def __init__(self, w_hpf: float) -> None:
        super().__init__()
        kernel = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]]) / w_hpf
        self.register_buffer("filter", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.filter.to(x.dtype).unsqueeze(0).unsqueeze(1).repeat(x.size(1), 1, 1, 1)
        return F.conv2d(x, weight, padding=1, groups=x.size(1))


# ------------------------------------------------------------------------------------ networks
# Feature sizes at which the generator's high-pass skip fires (hard-coded in the official code).
HPF_SIZES = (32, 64, 128)


def num_downsamples(img_size: int, w_hpf: float) -> int:
    """Down-sampling blocks of the generator's encoder (one more with the high-pass/FAN path)."""
    return int(math.log2(img_size)) - 4 + (1 if w_hpf > 0 else 0)


def preview_grid(config: Mapping[str, Any]) -> PreviewGrid:
    """Live-preview sizes: multiples of 2**downsamplings, at least 2×2 at the bottleneck (instance
    norm needs more than one pixel), up to the model's size."""
    a = network_args(config)
    step = 2 ** num_downsamples(int(a["img_size"]), float(a["w_hpf"]))
    return PreviewGrid(minimum=2 * step, stride=step, native=max(2 * step, int(a["img_size"])))


class Generator(nn.Module):
    # static shapes, no host synchronisation, nothing cached across calls: the engine may replay its
    # stages as CUDA graphs (engine.compiled.CudaGraphTwin)
    cuda_graph_safe = True

    def __init__(self, img_size: int = 256, style_dim: int = 64, max_conv_dim: int = 512, w_hpf: float = 1,
                 base_dim: int | None = None) -> None:
        super().__init__()
        _check_img_size(img_size)
        dim_in = base_dim or default_base_dim(img_size)
        self.img_size = img_size
        self.w_hpf = w_hpf
        self.from_rgb = nn.Conv2d(3, dim_in, 3, 1, 1)
        self.encode = nn.ModuleList()
        self.decode = nn.ModuleList()
        self.to_rgb = nn.Sequential(
            nn.InstanceNorm2d(dim_in, affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(dim_in, 3, 1, 1, 0))
        repeat_num = num_downsamples(img_size, w_hpf)
        dim_out = dim_in
        for _ in range(repeat_num):
            dim_out = min(dim_in * 2, max_conv_dim)
            self.encode.append(ResBlk(dim_in, dim_out, normalize=True, downsample=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_in, style_dim, w_hpf=w_hpf, upsample=True))
            dim_in = dim_out
        for _ in range(2):  # bottleneck
            self.encode.append(ResBlk(dim_out, dim_out, normalize=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_out, style_dim, w_hpf=w_hpf))
        if w_hpf > 0:
            self.hpf = HighPass(w_hpf)
        self.num_downsamples = repeat_num

    def encode_source(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The style-independent half: bottleneck features plus the skip cache for the masks.

        Split out so a task can keep it per source image and rerun only :meth:`decode_style`
        when the style changes."""
        x = self.from_rgb(x)
        cache: dict[int, torch.Tensor] = {}
        for block in self.encode:
            if masks is not None and x.size(2) in HPF_SIZES:
                cache[x.size(2)] = x
            x = block(x)
        return x, cache

    def decode_style(self, h: torch.Tensor, s: torch.Tensor, cache: Mapping[int, torch.Tensor],
                     masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        x = h
        for block in self.decode:
            x = block(x, s)
            if masks is not None and x.size(2) in HPF_SIZES:
                mask = masks[0] if x.size(2) == 32 else masks[1]
                mask = F.interpolate(mask, size=x.size(2), mode="bilinear")
                x = x + self.hpf(mask * cache[x.size(2)])
        return self.to_rgb(x)

    def forward(self, x: torch.Tensor, s: torch.Tensor, masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        h, cache = self.encode_source(x, masks)
        return self.decode_style(h, s, cache, masks)


def pick_domain(per_domain: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row i's entry for domain ``y[i]`` of a (batch, num_domains, ...) tensor."""
    return per_domain[torch.arange(y.size(0), device=y.device), y]


class MappingNetwork(nn.Module):
    def __init__(self, latent_dim: int = 16, style_dim: int = 64, num_domains: int = 2, hidden_dim: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(latent_dim, hidden_dim), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.ModuleList()
        for _ in range(num_domains):
            self.unshared.append(nn.Sequential(
                nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                nn.Linear(hidden_dim, style_dim)))
        self.latent_dim = latent_dim
        self.num_domains = num_domains

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.shared(z)
        return pick_domain(torch.stack([head(h) for head in self.unshared], dim=1), y)  # heads: (b, domains, style)

    def for_domain(self, z: torch.Tensor, domain: int) -> torch.Tensor:
        """Same values as ``forward(z, full(domain))`` but runs only that domain's head."""
        return self.unshared[domain](self.shared(z))


def _downsampling_trunk(img_size: int, max_conv_dim: int, base_dim: int | None) -> tuple[list[nn.Module], int]:
    dim_in = base_dim or default_base_dim(img_size)
    blocks: list[nn.Module] = [nn.Conv2d(3, dim_in, 3, 1, 1)]
    dim_out = dim_in
    for _ in range(int(math.log2(img_size)) - 2):
        dim_out = min(dim_in * 2, max_conv_dim)
        blocks.append(ResBlk(dim_in, dim_out, downsample=True))
        dim_in = dim_out
    blocks += [nn.LeakyReLU(0.2), nn.Conv2d(dim_out, dim_out, 4, 1, 0), nn.LeakyReLU(0.2)]
    return blocks, dim_out


class StyleEncoder(nn.Module):
    def __init__(self, img_size: int = 256, style_dim: int = 64, num_domains: int = 2, max_conv_dim: int = 512,
                 base_dim: int | None = None) -> None:
        super().__init__()
        _check_img_size(img_size)
        blocks, dim_out = _downsampling_trunk(img_size, max_conv_dim, base_dim)
        self.shared = nn.Sequential(*blocks)
        self.unshared = nn.ModuleList([nn.Linear(dim_out, style_dim) for _ in range(num_domains)])
        self.img_size = img_size

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.shared(x).view(x.size(0), -1)
        return pick_domain(torch.stack([head(h) for head in self.unshared], dim=1), y)


class Discriminator(nn.Module):
    def __init__(self, img_size: int = 256, num_domains: int = 2, max_conv_dim: int = 512,
                 base_dim: int | None = None) -> None:
        super().__init__()
        _check_img_size(img_size)
        blocks, dim_out = _downsampling_trunk(img_size, max_conv_dim, base_dim)
        blocks.append(nn.Conv2d(dim_out, num_domains, 1, 1, 0))
        self.main = nn.Sequential(*blocks)

    def domain_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every domain head's real/fake logit: (batch, num_domains)."""
        return self.main(x).view(x.size(0), -1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pick_domain(self.domain_logits(x), y)


# ------------------------------------------------------------------------------------ FAN
class AddCoords(nn.Module):
    """Appends normalised (row, column[, radius]) coordinate channels; constants, not state."""

    def __init__(self, height: int, width: int, with_r: bool) -> None:
        super().__init__()
        rows = torch.arange(height).unsqueeze(1).expand(height, width).float()
        cols = torch.arange(width).unsqueeze(0).expand(height, width).float()
        rows = rows / (height - 1) * 2 - 1
        cols = cols / (width - 1) * 2 - 1
        coords = [rows, cols]
        if with_r:
            rr = torch.sqrt(rows ** 2 + cols ** 2)
            coords.append(rr / rr.max())
        self.register_buffer("coords", torch.stack(coords).unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The official heatmap-boundary channels are never used in FAN(num_modules=1) (heatmap is None).
        return torch.cat([x, self.coords.to(x.dtype).expand(x.size(0), -1, -1, -1)], dim=1)


class CoordConv(nn.Module):
    def __init__(self, height: int, width: int, with_r: bool, in_channels: int, out_channels: int,
                 kernel_size: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.addcoords = AddCoords(height, width, with_r)
        self.conv = nn.Conv2d(in_channels + 2 + int(with_r), out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.addcoords(x))


class ConvBlock(nn.Module):
    """Hierarchical, parallel and multi-scale block (Bulat & Tzimiropoulos)."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        half, quarter = out_planes // 2, out_planes // 4
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, half, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, quarter, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, 1, 1, bias=False)
        self.downsample: nn.Module | None = None
        if in_planes != out_planes:
            self.downsample = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(True),
                                            nn.Conv2d(in_planes, out_planes, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        out = torch.cat((out1, out2, out3), 1)
        residual = self.downsample(x) if self.downsample is not None else x
        return out + residual


class HourGlass(nn.Module):
    def __init__(self, depth: int = 4, features: int = 256) -> None:
        super().__init__()
        self.depth = depth
        # first hourglass: no boundary channels -> 256 + x, y, r inputs
        self.coordconv = CoordConv(64, 64, True, features, features, kernel_size=1)
        self._add_level(depth, features)

    def _add_level(self, level: int, features: int) -> None:
        # Same recursion as the official code so the module (and state-dict) order matches.
        self.add_module(f"b1_{level}", ConvBlock(features, features))
        self.add_module(f"b2_{level}", ConvBlock(features, features))
        if level > 1:
            self._add_level(level - 1, features)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
        self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _forward(self, level: int, inp: torch.Tensor) -> torch.Tensor:
        up1 = self._modules[f"b1_{level}"](inp)
        low1 = self._modules[f"b2_{level}"](F.avg_pool2d(inp, 2, stride=2))
        if level > 1:
            low2 = self._forward(level - 1, low1)
        else:
            low2 = self._modules[f"b2_plus_{level}"](low1)
        low3 = self._modules[f"b3_{level}"](low2)
        return up1 + F.interpolate(low3, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.depth, self.coordconv(x))


class FAN(nn.Module):
    """Face alignment network of AdaptiveWingLoss (1 hourglass, 98 WFLW landmarks + boundary)."""

    def __init__(self, num_landmarks: int = 98) -> None:
        super().__init__()
        self.conv1 = CoordConv(256, 256, True, 3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        self.m0 = HourGlass(4, 256)
        self.top_m_0 = ConvBlock(256, 256)
        self.conv_last0 = nn.Conv2d(256, 256, 1, 1, 0)
        self.bn_end0 = nn.BatchNorm2d(256)
        self.l0 = nn.Conv2d(256, num_landmarks + 1, 1, 1, 0)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        """x in [0, 1] at 256×256 -> (N, 99, 64, 64) heatmaps (last channel: boundary)."""
        x = F.relu(self.bn1(self.conv1(x01)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        x = self.conv4(self.conv3(x))
        ll = self.top_m_0(self.m0(x))
        ll = F.relu(self.bn_end0(self.conv_last0(ll)))
        return self.l0(ll)

    @torch.no_grad()
    def get_heatmap(self, x: torch.Tensor, preprocess: bool = True) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x in [-1, 1] (any size) -> the two (N, 1, 256, 256) masks of the generator's skip path
        (or the raw 98 heatmaps at 64² when ``preprocess`` is False)."""
        x = F.interpolate(x, size=256, mode="bilinear")
        heatmaps = self(x * 0.5 + 0.5)[:, :-1]
        if not preprocess:
            return heatmaps
        scale = x.size(2) // heatmaps.size(2)
        heatmaps = F.interpolate(heatmaps, scale_factor=scale, mode="bilinear", align_corners=True)
        return heatmaps_to_masks(heatmaps.float())


# Landmark index ranges of the 98-point WFLW layout, as the official mask post-processing uses them.
LM_CHIN = (8, 25)
LM_EYEBROWS = (33, 51)
LM_EYEBROW_EDGES = (33, 46)
LM_NOSE = (51, 55)
LM_NOSTRILS = (55, 60)
LM_EYES = (60, 76)
LM_LIP_EDGES = (76, 82)
LM_LIP_UPPER = (77, 82)
LM_LIP_LOWER = (83, 88)
LM_LIP_INNER = (88, 96)


def _shift_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """Cyclic shift along height: positive ``n`` moves content up (the official ``shift``)."""
    return torch.roll(x, shifts=-n, dims=2) if n else x


def _minmax(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    n, c, h, w = x.shape
    flat = x.reshape(n * c, -1)
    lo = flat.min(dim=1, keepdim=True)[0]
    hi = flat.max(dim=1, keepdim=True)[0]
    return ((flat - lo) / (hi - lo + eps)).view(n, c, h, w)


def heatmaps_to_masks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official hand-made heatmap post-processing (core/wing.py ``preprocess``).

    (N, 98, H, W) landmark heatmaps -> (mask of face outline, brows, eyes, nose, lips;
    mask of eyes and nose only), each (N, 1, H, W) in [0, 1].
    """
    x = torch.where(x < 0.1, torch.zeros_like(x), x)
    x = _minmax(x).clone()
    sw = x.size(2) // 256
    # (range, shift, power): shift whole landmark groups and sharpen them
    for (start, end), shift, power in ((LM_CHIN, 0, 3), (LM_EYEBROWS, -7 * sw, 2), (LM_NOSTRILS, 8 * sw, 4),
                                       (LM_LIP_UPPER, -8 * sw, 4), (LM_LIP_LOWER, 8 * sw, 4),
                                       (LM_LIP_INNER, -2 * sw, 3)):
        x[:, start:end] = _shift_rows(x[:, start:end], shift) ** power
    zero_out = list(range(0, LM_CHIN[0])) + list(range(LM_CHIN[1], 33)) + \
        [LM_EYEBROW_EDGES[0], LM_EYEBROW_EDGES[1], LM_LIP_EDGES[0], LM_LIP_EDGES[1]]
    x[:, zero_out] = 0
    start, end = LM_NOSE
    x[:, start + 1:end] = _shift_rows(x[:, start + 1:end], 4 * sw)
    start, end = LM_EYES
    eyes = x[:, start:end]
    # The official eye shifts (-8, -24) are not scaled by sw.
    x[:, start:end] = _shift_rows(eyes, -8) ** 3 + _shift_rows(eyes, -24)
    x2 = x.clone()
    x2[:, LM_CHIN[0]:LM_CHIN[1]] = 0
    x2[:, LM_LIP_EDGES[0]:LM_LIP_INNER[1]] = 0
    x2[:, LM_EYEBROWS[0]:LM_EYEBROWS[1]] = 0
    m1 = torch.nan_to_num(x.sum(dim=1, keepdim=True), nan=0.0)
    m2 = torch.nan_to_num(x2.sum(dim=1, keepdim=True), nan=0.0)
    return m1.clamp(0, 1), m2.clamp(0, 1)


# ------------------------------------------------------------------------------------ family
NETWORK_KEYS = ("img_size", "style_dim", "latent_dim", "num_domains", "w_hpf", "max_conv_dim", "base_dim",
                "hidden_dim")

CONFIGS: dict[str, dict[str, Any]] = {
    # released checkpoints (official constructor arguments)
    "celeba_hq": dict(img_size=256, style_dim=64, latent_dim=16, num_domains=2, w_hpf=1, max_conv_dim=512,
                      domains=["female", "male"]),
    "afhq": dict(img_size=256, style_dim=64, latent_dim=16, num_domains=3, w_hpf=0, max_conv_dim=512,
                 domains=["cat", "dog", "wild"]),
    # trained-here default: 64 px faces, narrow widths (fast previews on a laptop CPU)
    "default": dict(img_size=64, style_dim=32, latent_dim=16, num_domains=2, w_hpf=0, max_conv_dim=128,
                    base_dim=16, hidden_dim=128, domains=["female", "male"]),
    # trained-here faces default (GPU-trained): twice the widths, G 1.6 M parameters, 27 ms at 64² on 2 cores
    "faces64": dict(img_size=64, style_dim=64, latent_dim=16, num_domains=2, w_hpf=0, max_conv_dim=256,
                    base_dim=32, hidden_dim=256, domains=["female", "male"]),
    # for tests
    "tiny": dict(img_size=32, style_dim=16, latent_dim=8, num_domains=2, w_hpf=0, max_conv_dim=32,
                 base_dim=8, hidden_dim=32, domains=["a", "b"]),
    # for tests of the high-pass skip path (needs the full-size FAN)
    "tiny_hpf": dict(img_size=64, style_dim=16, latent_dim=8, num_domains=2, w_hpf=1, max_conv_dim=32,
                     base_dim=8, hidden_dim=32, domains=["a", "b"]),
}


def network_args(config: Mapping[str, Any]) -> dict[str, Any]:
    """Config with the official defaults filled in (``domains`` and unknown keys ignored)."""
    out: dict[str, Any] = dict(img_size=256, style_dim=64, latent_dim=16, num_domains=2, w_hpf=1,
                               max_conv_dim=512, base_dim=None, hidden_dim=512)
    out.update({k: v for k, v in config.items() if k in NETWORK_KEYS})
    return out


def domain_names(config: Mapping[str, Any]) -> list[str]:
    a = network_args(config)
    names = list(config.get("domains") or [])
    return names if len(names) == a["num_domains"] else [str(i) for i in range(a["num_domains"])]


def prepare_for_inference(nets: Mapping[str, nn.Module]) -> None:
    """eval(), gradients off and resampling folded into the convolutions
    (:meth:`ResBlk.fold_resampling`, :meth:`AdainResBlk.fold_resampling`); once per loaded model."""
    for net in nets.values():
        if getattr(net, "_prepared_for_inference", False):
            continue
        net.eval().requires_grad_(False)
        for m in net.modules():
            if isinstance(m, (ResBlk, AdainResBlk)):
                m.fold_resampling()
        net._prepared_for_inference = True


def build(config: Mapping[str, Any], *, with_discriminator: bool = True) -> dict[str, nn.Module]:
    """{generator, mapping_network, style_encoder, discriminator[, fan when w_hpf > 0]}."""
    a = network_args(config)
    nets: dict[str, nn.Module] = {
        "generator": Generator(a["img_size"], a["style_dim"], a["max_conv_dim"], a["w_hpf"], a["base_dim"]),
        "mapping_network": MappingNetwork(a["latent_dim"], a["style_dim"], a["num_domains"], a["hidden_dim"]),
        "style_encoder": StyleEncoder(a["img_size"], a["style_dim"], a["num_domains"], a["max_conv_dim"],
                                      a["base_dim"]),
    }
    if with_discriminator:
        nets["discriminator"] = Discriminator(a["img_size"], a["num_domains"], a["max_conv_dim"], a["base_dim"])
    if a["w_hpf"] > 0:
        nets["fan"] = FAN()
    return nets


def _strip_module_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def convert(paths: list[Path], config: Mapping[str, Any]) -> StateDicts:
    """Official ``*_nets_ema.ckpt`` (and optionally ``wing.ckpt``) -> our state dicts.

    The nets file is a dict {sub-network: state dict}; ``hpf.filter`` (a constant) is dropped if the
    file has it. FAN comes from the nets file's ``fan`` entry, else from ``wing.ckpt['state_dict']``
    (only the keys FAN has, as the official loader does). Only needed when ``w_hpf > 0``.
    """
    from ..weights import read_torch_file

    a = network_args(config)
    nets_state: StateDicts = {}
    wing_state: dict[str, torch.Tensor] | None = None
    for path in paths:
        raw = read_torch_file(path)
        if not isinstance(raw, Mapping):
            raise WeightsError(f"{path.name} is not a StarGAN v2 checkpoint "
                               f"(a dict was expected, found {type(raw).__name__})")
        if "state_dict" in raw and _is_state_dict(raw["state_dict"]):
            wing_state = _strip_module_prefix(raw["state_dict"])
            continue
        subs = {k: v for k, v in raw.items() if _is_state_dict(v)}
        if not subs:
            raise WeightsError(f"{path.name} holds neither sub-network state dicts (generator, mapping_network, "
                               f"style_encoder, …) nor a wing.ckpt 'state_dict'; "
                               f"keys: {', '.join(map(str, raw)) or 'none'}")
        for sub, sd in subs.items():
            nets_state[sub] = _strip_module_prefix(sd)
    if not nets_state:
        raise WeightsError("no *_nets_ema.ckpt among the files: give the StarGAN v2 checkpoint "
                           "(e.g. expr/checkpoints/celeba_hq/100000_nets_ema.ckpt), optionally with wing.ckpt")
    if "generator" in nets_state:
        nets_state["generator"].pop("hpf.filter", None)
    if a["w_hpf"] > 0:
        if "fan" not in nets_state:
            if wing_state is None:
                raise WeightsError("this configuration (w_hpf > 0) needs the FAN landmark network: the checkpoint "
                                   "has no 'fan' entry, so also give wing.ckpt")
            fan_keys = FAN().state_dict()
            picked = {k: v for k, v in wing_state.items() if k in fan_keys}
            if not picked:
                raise WeightsError("wing.ckpt shares no parameter names with the FAN network")
            # As the official loader: keys the file lacks keep FAN's own values (only buffers in practice).
            nets_state["fan"] = {**{k: v for k, v in fan_keys.items() if k not in picked}, **picked}
    else:
        nets_state.pop("fan", None)  # not used without the high-pass skip
    return nets_state


def optional_keys(sub: str) -> set[str]:
    return set()


FAMILY = register(Family(
    name="stargan2",
    build=build,
    configs=CONFIGS,
    convert=convert,
    inference_subnets=("generator", "mapping_network", "style_encoder", "fan"),
    optional_keys=optional_keys,
    preview_grid=preview_grid,
    description="StarGAN v2: multi-domain image-to-image translation with latent or reference styles",
))

__all__ = [
    "ResBlk", "AdaIN", "AdainResBlk", "HighPass", "Generator", "MappingNetwork", "StyleEncoder", "Discriminator",
    "FAN", "heatmaps_to_masks", "CONFIGS", "build", "prepare_for_inference", "convert", "network_args", "domain_names",
    "FAMILY",
]
