"""Layers shared by more than one network family.

SPADE and its residual block serve two families with different released layouts:
- NVlabs/SPADE (panoptic family's semantic-only mode): zero padding, synchronized BatchNorm
  without affine (state dict has ``param_free_norm.running_*``), ``mlp_shared.0`` conv names.
- microsoft/CoCosNet: reflection padding (``mlp_shared.0`` is the pad, so the conv is
  ``mlp_shared.1``), positional normalisation (PONO) with no buffers.
Family-specific blocks live in their family's module.
"""
from __future__ import annotations

import sys
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

ParamFreeNorm = Literal["batch", "instance", "pono", "none"]
Padding = Literal["zero", "reflect"]


def positional_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """PONO: normalise each pixel over channels (unbiased variance, as CoCosNet does)."""
    var, mean = torch.var_mean(x, dim=1, keepdim=True)  # one reduction pass instead of two
    return (x - mean) * torch.rsqrt(var + eps)


class PositionalNorm2d(nn.Module):
    """Module wrapper of :func:`positional_norm` (no parameters, no buffers)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return positional_norm(x, self.eps)


def make_param_free_norm(kind: ParamFreeNorm, channels: int) -> nn.Module:
    if kind == "batch":  # SPADE's SynchronizedBatchNorm2d(affine=False): same buffers as BatchNorm2d
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "pono":
        return PositionalNorm2d()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown parameter-free norm {kind!r}")


def feature_normalize(x: torch.Tensor, eps: float = sys.float_info.epsilon) -> torch.Tensor:
    """L2-normalise over channels (dim 1), as CoCosNet's ``util.feature_normalize`` (which adds float64 epsilon)."""
    return x / (torch.norm(x, 2, 1, keepdim=True) + eps)


def spectral_instance(conv: nn.Conv2d) -> nn.Sequential:
    """SPADE's and CoCosNet's norm ``spectralinstance``: spectral conv without bias (the norm cancels
    it) + instance norm without affine."""
    conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                     padding=conv.padding, bias=False)
    return nn.Sequential(maybe_spectral(conv, True), nn.InstanceNorm2d(conv.out_channels, affine=False))


def maybe_spectral(module: nn.Module, use: bool) -> nn.Module:
    """Spectral norm with the classic hook API, so state dicts hold weight_orig/_u/_v like the
    released checkpoints (in eval mode the stored u, v give sigma without power iteration)."""
    return spectral_norm(module) if use else module


# Exact rewrites of "resample, then convolve" for inference (same maths, fewer multiply-adds).
# 3×3 conv then 2×2 average pool == 4×4 stride-2 conv: 16 taps per output pixel instead of 4·9.
_POOLED_TAPS = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]]) / 2
# Nearest 2× upsample then 3×3 conv == 4×4 stride-2 transposed conv: 4 taps per output pixel, not 9.
_UPSAMPLED_TAPS = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])


def pooled_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) weight of ``avg_pool2d(conv2d(x, w, padding=1), 2)`` -> (O, I, 4, 4) weight of
    ``conv2d(x, w4, stride=2, padding=1)``."""
    taps = _POOLED_TAPS.to(weight)
    return torch.einsum("pk,oikl,ql->oipq", taps, weight, taps)


def upsampled_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) weight of ``conv2d(interpolate(x, 2, "nearest"), w, padding=1)`` -> (I, O, 4, 4)
    weight of ``conv_transpose2d(x, wt, stride=2, padding=1)``."""
    taps = _UPSAMPLED_TAPS.to(weight)
    return torch.einsum("pk,oikl,ql->iopq", taps, weight, taps)


class SPADE(nn.Module):
    """Spatially-adaptive de-normalisation: norm(x)·(1 + γ(cond)) + β(cond).

    ``cond`` is nearest-resized to x. Hidden width 128, 3×3 kernels.
    """

    def __init__(self, norm_nc: int, label_nc: int, *, norm: ParamFreeNorm = "batch",
                 padding: Padding = "zero", hidden: int = 128, kernel_size: int = 3) -> None:
        super().__init__()
        self.param_free_norm = make_param_free_norm(norm, norm_nc)
        pw = kernel_size // 2
        self.padding = padding
        if padding == "reflect":
            self.mlp_shared = nn.Sequential(nn.ReflectionPad2d(pw), nn.Conv2d(label_nc, hidden, kernel_size),
                                            nn.ReLU())
            self.pad = nn.ReflectionPad2d(pw)
            self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size)
            self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size)
        else:
            self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pw), nn.ReLU())
            self.pad = nn.Identity()
            self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)
            self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        cond = F.interpolate(cond, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(cond)
        padded = self.pad(actv)
        return normalized * (1 + self.mlp_gamma(padded)) + self.mlp_beta(padded)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block: [SPADE → LeakyReLU(0.2) → 3×3 conv] ×2 plus a learned 1×1 shortcut
    (no bias, own SPADE) when fin ≠ fout. Middle width min(fin, fout)."""

    def __init__(self, fin: int, fout: int, label_nc: int, *, spectral: bool = True,
                 norm: ParamFreeNorm = "batch", padding: Padding = "zero", dilation: int = 1,
                 spade_hidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        if padding == "reflect":
            self.pad = nn.ReflectionPad2d(dilation)
            conv_pad = 0
        else:
            self.pad = nn.Identity()
            conv_pad = dilation
        self.conv_0 = maybe_spectral(nn.Conv2d(fin, fmiddle, 3, padding=conv_pad, dilation=dilation), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle, fout, 3, padding=conv_pad, dilation=dilation), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral)
        self.norm_0 = SPADE(fin, label_nc, norm=norm, padding=padding, hidden=spade_hidden)
        self.norm_1 = SPADE(fmiddle, label_nc, norm=norm, padding=padding, hidden=spade_hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, norm=norm, padding=padding, hidden=spade_hidden)

    def shortcut(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x_s = self.shortcut(x, cond)
        dx = self.conv_0(self.pad(F.leaky_relu(self.norm_0(x, cond), 0.2)))
        dx = self.conv_1(self.pad(F.leaky_relu(self.norm_1(dx, cond), 0.2)))
        return x_s + dx
