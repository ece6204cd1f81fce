"""Panoptic-based image synthesis (Dundar et al., CVPR 2020) on a SPADE generator.

No official code exists (see ``../shared/reference/PANOPTIC.md``); this module builds the method
from the paper's description:

- :class:`PanopticConv2d` — panoptic-aware partial convolution. For every output position the
  window mask M marks the pixels whose panoptic id equals the window centre's id, and
  ``out = W·(X⊙M)·(|window| / ΣM) + b``. Any kernel size, stride, dilation and padding.
- :class:`PanopticUpsample` — ×2 upsampling where each high-resolution pixel copies the feature of
  a low-resolution neighbour of the same panoptic segment; pixels without one (segments that
  only exist at the higher resolution) are filled by a panoptic-aware conv on the semantic map.
- :class:`PanopticSPADEGenerator` — SPADE's generator with every 3×3 convolution replaced by
  :class:`PanopticConv2d` and every nearest upsampling by :class:`PanopticUpsample`. In
  ``mode="semantic"`` it *is* SPADE (``engine/nets/layers.py`` blocks), with the state dict of
  NVlabs/SPADE's released ``latest_net_G.pth`` so those files import and load strictly.

Design decisions where the paper is silent (PANOPTIC.md "NOT FOUND"):
- Padding: ``pad_mode="zero"`` (default) counts out-of-image window positions as matching the
  centre, so they enter as zeros exactly as in a plain zero-padded conv; with a one-segment map
  PAConv is then *identical* to the conv and the panoptic generator to SPADE (a SPADE checkpoint
  is a meaningful initialisation). ``pad_mode="partial"`` excludes them (partial-conv padding).
- Even kernels: the window "centre" is element ((kh-1)//2, (kw-1)//2).
- The mask is recomputed from the id map at every resolution (never propagated) and cached
  per forward pass (one :class:`PanopticMap` per batch).
- The id pyramid is nearest (top-left) subsampling of the full-resolution map: ids are never
  interpolated. Ids are compacted per sample (:func:`engine.inputs.panoptic.panoptic_ids`) so
  float32 comparisons are exact.
- Upsampling search order, by distance between pixel centres: parent, the vertical then the
  horizontal neighbour towards the child's quadrant, the diagonal one, then the rest.
- Every 3×3 conv is panoptic-aware (fc, residual convs, SPADE's shared/γ/β convs, conv_img); the
  1×1 shortcut is too, but a 1×1 window is only its centre, so it equals the plain conv.
- Hole filling: one 3×3 PAConv from the full conditioning (one-hot labels [+ instance edges])
  at the new resolution to the feature width, parameters ``ups.<i>.encode.*``.
- ``plain_levels`` (default 0: every layer panoptic-aware, as above) keeps the lowest N
  resolution levels plain SPADE (level 0 is the ``fc``/``head_0`` grid, each ×2 step one more):
  at 4×4 or 8×8 most windows cross a segment boundary, so there PAConv is nearly a 1×1 conv
  scaled up to ×9 and no layer can share context (lighting, the horizon) across segments. The
  shipped 128² default uses 4 (panoptic-aware at 64² and 128²); every level panoptic-aware
  measured worse at the same budget (``docs/quality/panoptic.md``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..families import Family, PreviewGrid, StateDicts, register
from .layers import SPADEResnetBlock, make_param_free_norm, maybe_spectral, spectral_instance

PadMode = Literal["zero", "partial"]
ConvImpl = Literal["sparse", "unfold"]
GeneratorMode = Literal["panoptic", "semantic"]
UpsamplingLayers = Literal["normal", "more", "most"]

_PAD_ID = -1.0  # id of out-of-image positions; real (compacted) ids are >= 0
_MAX_EXACT_ID = 2 ** 24  # float32 represents every integer below this exactly


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


# =============================================================================================
# Window masks and the panoptic map pyramid
# =============================================================================================
@dataclass(frozen=True)
class WindowMask:
    """Masks of one (resolution, kernel, stride, dilation, padding) combination.

    ``mask`` (B, kh·kw, L) is 1 where a window pixel belongs to the centre's segment
    (``mask_rows``: the same as (B·L, kh·kw), one row per position); ``ratio`` (B, L) is kh·kw / ΣM.
    The ``sel_*`` fields list the positions whose window crosses a segment boundary (ΣM < kh·kw);
    only those differ from a plain convolution.
    """

    mask: torch.Tensor
    mask_rows: torch.Tensor
    ratio: torch.Tensor
    out_size: tuple[int, int]
    sel_flat: torch.Tensor      # (N,) flat index into B·L of the boundary-crossing positions

    @property
    def boundary_fraction(self) -> float:
        total = self.ratio.numel()
        return float(self.sel_flat.numel()) / total if total else 0.0


def window_mask(ids: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                dilation: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                pad_mode: PadMode = "zero") -> WindowMask:
    """Panoptic window masks of an id map ``ids`` (B, H, W) (integers in [0, 2^24))."""
    if ids.dim() != 3:
        raise ValueError(f"panoptic ids must be (B, H, W), got shape {tuple(ids.shape)}")
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = map(_pair, (kernel_size, stride, dilation, padding))
    B, H, W = ids.shape
    k2 = kh * kw
    with torch.no_grad():
        f = F.pad(ids.to(torch.float32)[:, None], (pw, pw, ph, ph), value=_PAD_ID)
        cols = F.unfold(f, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # (B, k2, L)
        centre = ((kh - 1) // 2) * kw + (kw - 1) // 2
        match = cols == cols[:, centre:centre + 1]
        if pad_mode == "zero":
            match |= cols == _PAD_ID
        elif pad_mode != "partial":
            raise ValueError(f"unknown pad_mode {pad_mode!r}")
        mask = match.to(torch.float32)
        count = mask.sum(1)
        ratio = k2 / count
        Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        sel_flat = (count < k2).reshape(-1).nonzero().squeeze(1)
    return WindowMask(mask, mask.transpose(1, 2).reshape(B * mask.shape[-1], k2), ratio, (Ho, Wo), sel_flat)


class PanopticMap:
    """The conditioning of one batch: semantic tensor (B, C, H, W) and compacted panoptic ids
    (B, H, W), with the per-resolution pyramid and window masks computed once and cached."""

    def __init__(self, semantic: torch.Tensor, ids: torch.Tensor, pad_mode: PadMode = "zero") -> None:
        if ids.dim() == 4 and ids.shape[1] == 1:
            ids = ids[:, 0]
        if ids.shape[0] != semantic.shape[0] or ids.shape[-2:] != semantic.shape[-2:]:
            raise ValueError(f"panoptic ids {tuple(ids.shape)} do not match the semantic map {tuple(semantic.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= _MAX_EXACT_ID):
            raise ValueError("panoptic ids must lie in [0, 2^24); "
                             "compact them with engine.inputs.panoptic.panoptic_ids")
        self.semantic = semantic
        self.ids = ids.long()
        self.pad_mode: PadMode = pad_mode
        self._ids: dict[tuple[int, int], torch.Tensor] = {tuple(ids.shape[-2:]): self.ids}
        self._sem: dict[tuple[int, int], torch.Tensor] = {tuple(semantic.shape[-2:]): semantic}
        self._windows: dict[tuple, WindowMask] = {}
        self._sources: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def ids_at(self, size: Sequence[int]) -> torch.Tensor:
        """Ids at ``size`` by nearest (top-left) subsampling, the same rule as SPADE's segmap resize."""
        key = (int(size[0]), int(size[1]))
        if key not in self._ids:
            with torch.no_grad():
                f = F.interpolate(self.ids[:, None].to(torch.float32), size=key, mode="nearest")
            self._ids[key] = f[:, 0].round().long()
        return self._ids[key]

    def semantic_at(self, size: Sequence[int]) -> torch.Tensor:
        key = (int(size[0]), int(size[1]))
        if key not in self._sem:
            self._sem[key] = F.interpolate(self.semantic, size=key, mode="nearest")
        return self._sem[key]

    def window(self, size: Sequence[int], kernel_size: tuple[int, int], stride: tuple[int, int],
               dilation: tuple[int, int], padding: tuple[int, int]) -> WindowMask:
        key = (int(size[0]), int(size[1]), kernel_size, stride, dilation, padding)
        if key not in self._windows:
            self._windows[key] = window_mask(self.ids_at(size), kernel_size, stride, dilation, padding,
                                             self.pad_mode)
        return self._windows[key]

    def upsample_sources(self, low_size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (int(low_size[0]), int(low_size[1]))
        if key not in self._sources:
            high = (2 * key[0], 2 * key[1])
            self._sources[key] = upsample_sources(self.ids_at(key), self.ids_at(high))
        return self._sources[key]


# =============================================================================================
# Panoptic-aware convolution
# =============================================================================================
def panoptic_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, win: WindowMask,
                    stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                    impl: ConvImpl = "sparse") -> torch.Tensor:
    """``W·(X⊙M)·(k²/ΣM) + b`` for every output position.

    ``impl="unfold"`` evaluates the formula densely (unfold → mask → matmul). ``"sparse"`` runs
    the plain convolution and recomputes only the positions whose window crosses a segment
    boundary (:func:`panoptic_conv2d_at`); everywhere else M is all ones and the ratio 1, so both
    are the same function, and "sparse" costs a plain conv plus the boundary fraction.
    """
    B, C, H, W = x.shape
    Cout, Cin, kh, kw = weight.shape
    if Cin != C:
        raise ValueError(f"panoptic conv expects {Cin} input channels, got {C}")
    k2 = kh * kw
    Ho, Wo = win.out_size
    L = Ho * Wo
    if impl == "unfold":
        cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (B, C·k2, L)
        cols = (cols.view(B, C, k2, L) * win.mask[:, None].to(cols.dtype)).view(B, C * k2, L)
        out = torch.matmul(weight.reshape(Cout, C * k2).to(cols.dtype), cols)
        out = out * win.ratio[:, None].to(out.dtype)
        if bias is not None:
            out = out + bias[None, :, None].to(out.dtype)
        return out.view(B, Cout, Ho, Wo)
    if impl != "sparse":
        raise ValueError(f"unknown panoptic conv impl {impl!r}")
    # channels-last: windows are gathered as contiguous pixel rows and results written back as rows
    x = x.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(x, weight, bias, stride, padding, dilation)
    if win.sel_flat.numel() == 0:
        return out
    res = panoptic_conv2d_at(x, weight, bias, win, padding, stride, dilation, win.sel_flat).to(out.dtype)
    rows = out.permute(0, 2, 3, 1)
    if rows.is_contiguous():  # in place (conv2d's backward does not need its own output)
        rows.view(B * L, Cout)[win.sel_flat] = res
        return out
    out = out.reshape(B, Cout, L)
    out[win.sel_flat // L, :, win.sel_flat % L] = res
    return out.view(B, Cout, Ho, Wo)


class PanopticConv2d(nn.Conv2d):
    """A Conv2d (same parameters and state-dict names) that becomes panoptic-aware when called
    with a :class:`PanopticMap`; without one it is the plain convolution."""

    impl: ConvImpl = "sparse"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise ValueError("panoptic convolution supports groups=1 only")
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("panoptic convolution takes integer zero padding")

    def forward(self, x: torch.Tensor, pmap: PanopticMap | None = None) -> torch.Tensor:  # type: ignore[override]
        if pmap is None or (self.kernel_size == (1, 1) and self.padding == (0, 0)):
            return super().forward(x)  # a 1×1 window holds only its centre: M = 1, ratio = 1
        win = pmap.window(x.shape[-2:], self.kernel_size, self.stride, self.dilation, self.padding)
        return panoptic_conv2d(x, self.weight, self.bias, win, self.stride, self.padding, self.dilation, self.impl)


# =============================================================================================
# Panoptic-aware upsampling
# =============================================================================================
def _search_orders() -> torch.Tensor:
    """(2, 2, 9) rank of each 3×3 neighbour offset for a child in quadrant (a, b).

    Offsets are indexed (u+1)*3 + (v+1). Order by distance between the child's centre and the
    candidate low-resolution pixel's centre: parent, vertical and horizontal neighbour on the
    child's side, their diagonal, the two on the far sides, the remaining diagonals.
    """
    ranks = torch.zeros(2, 2, 9, dtype=torch.long)
    for a in (0, 1):
        for b in (0, 1):
            dy, dx = (1 if a else -1), (1 if b else -1)
            order = [(0, 0), (dy, 0), (0, dx), (dy, dx), (-dy, 0), (0, -dx), (dy, -dx), (-dy, dx), (-dy, -dx)]
            for r, (u, v) in enumerate(order):
                ranks[a, b, (u + 1) * 3 + (v + 1)] = r
    return ranks


_RANKS = _search_orders()


def upsample_sources(ids_low: torch.Tensor, ids_high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Copy sources of a ×2 panoptic-aware upsampling.

    ``ids_low`` (B, h, w), ``ids_high`` (B, 2h, 2w). Returns ``(src_y, src_x, found)`` of shape
    (B, 2h, 2w): the low-resolution pixel each high-resolution pixel copies (its parent when
    nothing matches) and whether a same-segment neighbour was found (False = hole).
    """
    B, h, w = ids_low.shape
    H, W = ids_high.shape[-2:]
    if (H, W) != (2 * h, 2 * w):
        raise ValueError(f"high-resolution ids {tuple(ids_high.shape)} are not twice {tuple(ids_low.shape)}")
    with torch.no_grad():
        padded = F.pad(ids_low[:, None].to(torch.float32), (1, 1, 1, 1), value=_PAD_ID)[:, 0]
        target = ids_high.to(torch.float32)
        ranks = _RANKS.to(ids_low.device)
        a = torch.arange(H, device=ids_low.device) % 2
        b = torch.arange(W, device=ids_low.device) % 2
        best_score = torch.zeros(B, H, W, device=ids_low.device, dtype=torch.long)
        best = torch.full((B, H, W), 4, device=ids_low.device, dtype=torch.long)  # 4 = parent
        for u in (-1, 0, 1):
            for v in (-1, 0, 1):
                o = (u + 1) * 3 + (v + 1)
                cand = padded[:, 1 + u:1 + u + h, 1 + v:1 + v + w]
                cand = cand.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
                score = (9 - ranks[a[:, None], b[None, :], o])[None] * (cand == target)
                better = score > best_score
                best = torch.where(better, torch.full_like(best, o), best)
                best_score = torch.maximum(best_score, score)
        found = best_score > 0
        ys = torch.arange(H, device=ids_low.device)[None, :, None] // 2
        xs = torch.arange(W, device=ids_low.device)[None, None, :] // 2
        src_y = ys + torch.div(best, 3, rounding_mode="floor") - 1
        src_x = xs + best % 3 - 1
    return src_y.expand(B, H, W), src_x.expand(B, H, W), found


class PanopticUpsample(nn.Module):
    """×2 upsampling that copies same-segment features and encodes holes from the semantic map.

    The hole encoder is a 3×3 panoptic-aware conv evaluated only at the hole pixels.
    """

    def __init__(self, channels: int, semantic_nc: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.encode = PanopticConv2d(semantic_nc, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, pmap: PanopticMap | None = None) -> torch.Tensor:
        if pmap is None:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        B, C, h, w = x.shape
        H, W = 2 * h, 2 * w
        src_y, src_x, found = pmap.upsample_sources((h, w))
        index = (src_y * w + src_x).reshape(B, 1, -1).expand(B, C, -1)
        out = x.reshape(B, C, h * w).gather(2, index)  # (B, C, H·W)
        holes = (~found).reshape(-1).nonzero().squeeze(1)
        if holes.numel():
            enc = self.encode
            win = pmap.window((H, W), enc.kernel_size, enc.stride, enc.dilation, enc.padding)
            values = panoptic_conv2d_at(pmap.semantic_at((H, W)), enc.weight, enc.bias, win, enc.padding,
                                        enc.stride, enc.dilation, holes)
            out[holes // (H * W), :, holes % (H * W)] = values.to(out.dtype)
        return out.view(B, C, H, W)


def panoptic_conv2d_at(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, win: WindowMask,
                       padding: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                       positions: torch.Tensor) -> torch.Tensor:
    """The panoptic-aware conv at selected output positions only (flat indices into B·Ho·Wo) → (N, Cout)."""
    B, C, H, W = x.shape
    Cout, _, kh, kw = weight.shape
    Ho, Wo = win.out_size
    L = Ho * Wo
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    batch, pos = positions // L, positions % L
    Hp, Wp = H + 2 * ph, W + 2 * pw
    u = torch.arange(kh, device=x.device).repeat_interleave(kw)
    v = torch.arange(kw, device=x.device).repeat(kh)
    start = batch * (Hp * Wp)  # each sample's first padded pixel
    gather = (start + (pos // Wo) * sh * Wp + (pos % Wo) * sw)[:, None] + (u * dh * Wp + v * dw)[None, :]
    # Rows of one flat (pixels, C) table picked by index_select: one memcpy per row, where
    # two-tensor advanced indexing took 1.2-1.6x as long (CPU, same run).
    flat = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1).reshape(B * Hp * Wp, C)  # a view when channels-last
    rows = batch * L + pos
    mask = win.mask_rows.index_select(0, rows)  # (N, k2)
    if ph > 0 and pw > 0:
        # masked-out window pixels read their sample's padded corner (always 0) instead of a multiply
        patches = flat.index_select(0, torch.where(mask > 0, gather, start[:, None]).reshape(-1))
    else:
        patches = flat.index_select(0, gather.reshape(-1)) * mask.reshape(-1, 1).to(x.dtype)
    w_flat = weight.permute(0, 2, 3, 1).reshape(Cout, -1).t().to(patches.dtype)
    res = torch.matmul(patches.view(len(positions), -1), w_flat)
    res = res * win.ratio.reshape(-1).index_select(0, rows)[:, None].to(res.dtype)
    return res + bias.to(res.dtype) if bias is not None else res


# =============================================================================================
# SPADE blocks with panoptic-aware convolutions (same state-dict names as layers.SPADE*)
# =============================================================================================
class PanopticSPADE(nn.Module):
    """SPADE (zero padding, 3×3) whose shared, γ and β convs are panoptic-aware."""

    def __init__(self, norm_nc: int, label_nc: int, *, norm: str = "batch", hidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = make_param_free_norm(norm, norm_nc)  # type: ignore[arg-type]
        self.mlp_shared = nn.Sequential(PanopticConv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = PanopticConv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = PanopticConv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, pmap: PanopticMap, panoptic: bool = True) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        cond = pmap.semantic_at(x.shape[-2:])
        pm = pmap if panoptic else None  # None: the plain convolutions (a plain-SPADE level)
        actv = self.mlp_shared[1](self.mlp_shared[0](cond, pm))
        return normalized * (1 + self.mlp_gamma(actv, pm)) + self.mlp_beta(actv, pm)


class PanopticSPADEResnetBlock(nn.Module):
    """layers.SPADEResnetBlock with panoptic-aware convolutions and SPADE."""

    def __init__(self, fin: int, fout: int, label_nc: int, *, spectral: bool = True, norm: str = "batch",
                 spade_hidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = maybe_spectral(PanopticConv2d(fin, fmiddle, 3, padding=1), spectral)
        self.conv_1 = maybe_spectral(PanopticConv2d(fmiddle, fout, 3, padding=1), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(PanopticConv2d(fin, fout, 1, bias=False), spectral)
        self.norm_0 = PanopticSPADE(fin, label_nc, norm=norm, hidden=spade_hidden)
        self.norm_1 = PanopticSPADE(fmiddle, label_nc, norm=norm, hidden=spade_hidden)
        if self.learned_shortcut:
            self.norm_s = PanopticSPADE(fin, label_nc, norm=norm, hidden=spade_hidden)

    def forward(self, x: torch.Tensor, pmap: PanopticMap, panoptic: bool = True) -> torch.Tensor:
        pm = pmap if panoptic else None
        x_s = self.conv_s(self.norm_s(x, pmap, panoptic), pm) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, pmap, panoptic), 0.2), pm)
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, pmap, panoptic), 0.2), pm)
        return x_s + dx


# =============================================================================================
# Generator, VAE encoder, discriminator
# =============================================================================================
_NUM_UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}


class PanopticSPADEGenerator(nn.Module):
    """SPADE generator; ``mode="panoptic"`` swaps in panoptic-aware convolution and upsampling.

    ``forward(semantic, ids=None, z=None)``: ``semantic`` (B, semantic_nc, H, W) is the one-hot
    label map [+ don't-care] [+ instance-edge channel]; ``ids`` (B, H, W) the compacted panoptic
    ids (needed in panoptic mode). Without the VAE, H and W may be any multiple of
    2^num_upsamplings (the latent grid follows the input); with it the size is fixed.
    """

    def __init__(self, semantic_nc: int, *, ngf: int = 64, crop_size: int = 256, aspect_ratio: float = 1.0,
                 num_upsampling_layers: UpsamplingLayers = "normal", mode: GeneratorMode = "panoptic",
                 use_vae: bool = False, z_dim: int = 256, spade_hidden: int = 128,
                 pad_mode: PadMode = "zero", plain_levels: int = 0) -> None:
        super().__init__()
        if num_upsampling_layers not in _NUM_UPSAMPLINGS:
            raise ValueError(f"num_upsampling_layers must be one of {list(_NUM_UPSAMPLINGS)}")
        if mode not in ("panoptic", "semantic"):
            raise ValueError(f"mode must be 'panoptic' or 'semantic', got {mode!r}")
        self.mode, self.ngf, self.use_vae, self.z_dim = mode, ngf, use_vae, z_dim
        self.semantic_nc, self.pad_mode = semantic_nc, pad_mode
        self.num_upsampling_layers = num_upsampling_layers
        self.num_ups = _NUM_UPSAMPLINGS[num_upsampling_layers]
        if not 0 <= plain_levels <= self.num_ups:
            raise ValueError(f"plain_levels must lie in 0..{self.num_ups}, got {plain_levels}")
        self.plain_levels = plain_levels
        self.sw = crop_size // (2 ** self.num_ups)
        self.sh = round(self.sw / aspect_ratio)
        nf = ngf
        panoptic = mode == "panoptic"
        conv = PanopticConv2d if panoptic else nn.Conv2d
        if use_vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sw * self.sh)
        else:
            self.fc = conv(semantic_nc, 16 * nf, 3, padding=1)

        def block(fin: int, fout: int) -> nn.Module:
            if panoptic:
                return PanopticSPADEResnetBlock(fin, fout, semantic_nc, spade_hidden=spade_hidden)
            return SPADEResnetBlock(fin, fout, semantic_nc, spectral=True, norm="batch", padding="zero",
                                    spade_hidden=spade_hidden)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, 1 * nf)
        final_nc = nf
        if num_upsampling_layers == "most":
            self.up_4 = block(1 * nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = conv(final_nc, 3, 3, padding=1)
        if panoptic:
            widths = [16 * nf]  # after head_0
            if num_upsampling_layers in ("more", "most"):
                widths.append(16 * nf)  # after G_middle_0
            widths += [16 * nf, 8 * nf, 4 * nf, 2 * nf]  # after G_middle_1, up_0, up_1, up_2
            if num_upsampling_layers == "most":
                widths.append(nf)
            # the i-th ×2 step makes level i + 1; plain levels upsample by nearest (no module)
            self.ups = nn.ModuleDict({str(i): PanopticUpsample(c, semantic_nc) for i, c in enumerate(widths)
                                      if i + 1 >= plain_levels})

    @property
    def size_multiple(self) -> int:
        return 2 ** self.num_ups

    def forward(self, semantic: torch.Tensor, ids: torch.Tensor | None = None,
                z: torch.Tensor | None = None) -> torch.Tensor:
        B, _, H, W = semantic.shape
        m = self.size_multiple
        if self.use_vae:
            if (H, W) != (self.sh * m, self.sw * m):
                raise ValueError(f"this VAE generator makes {self.sh * m}×{self.sw * m} images; got a {H}×{W} map")
        elif H % m or W % m:
            raise ValueError(f"map size {H}×{W} must be a multiple of {m}")
        pmap: PanopticMap | None = None
        if self.mode == "panoptic":
            if ids is None:
                raise ValueError("panoptic mode needs the panoptic id map")
            pmap = PanopticMap(semantic, ids, self.pad_mode)

        def panoptic_at(level: int) -> bool:
            return pmap is not None and level >= self.plain_levels

        def run(mod: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
            return mod(x, pmap, panoptic_at(level)) if pmap is not None else mod(x, semantic)

        def up(i: int, x: torch.Tensor) -> torch.Tensor:
            if pmap is None or str(i) not in self.ups:
                return F.interpolate(x, scale_factor=2, mode="nearest")
            return self.ups[str(i)](x, pmap)

        if self.use_vae:
            if z is None:
                z = torch.randn(B, self.z_dim, dtype=semantic.dtype, device=semantic.device)
            x = self.fc(z).view(B, 16 * self.ngf, self.sh, self.sw)
        else:
            small = F.interpolate(semantic, size=(H // m, W // m), mode="nearest")
            x = self.fc(small, pmap) if panoptic_at(0) else self.fc(small)
        i = 0  # ×2 steps taken = the resolution level
        x = run(self.head_0, x, i)
        x = up(i, x)
        i += 1
        x = run(self.G_middle_0, x, i)
        if self.num_upsampling_layers in ("more", "most"):
            x = up(i, x)
            i += 1
        x = run(self.G_middle_1, x, i)
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = up(i, x)
            i += 1
            x = run(getattr(self, name), x, i)
        if self.num_upsampling_layers == "most":
            x = up(i, x)
            i += 1
            x = run(self.up_4, x, i)
        x = F.leaky_relu(x, 2e-1)
        x = self.conv_img(x, pmap) if panoptic_at(i) else self.conv_img(x)
        return torch.tanh(x)


class ConvEncoder(nn.Module):
    """SPADE's VAE image encoder: stride-2 3×3 spectral-instance convs down to 4×4, then μ, log σ²."""

    def __init__(self, ndf: int = 64, z_dim: int = 256, input_size: int = 256) -> None:
        super().__init__()
        if input_size < 8 or input_size & (input_size - 1):
            raise ValueError("encoder input size must be a power of two >= 8")
        self.input_size = input_size
        n_layers = int(math.log2(input_size // 4))
        widths = [3, ndf, 2 * ndf, 4 * ndf] + [8 * ndf] * max(0, n_layers - 3)
        self.n_layers = n_layers
        for i in range(n_layers):
            setattr(self, f"layer{i + 1}", spectral_instance(nn.Conv2d(widths[i], widths[i + 1], 3, 2, 1)))
        self.so = 4
        self.fc_mu = nn.Linear(widths[n_layers] * self.so * self.so, z_dim)
        self.fc_var = nn.Linear(widths[n_layers] * self.so * self.so, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = self.layer1(x)
        for i in range(2, self.n_layers + 1):
            x = getattr(self, f"layer{i}")(F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(std.shape, generator=generator, device=std.device, dtype=std.dtype)
    return eps * std + mu


class NLayerDiscriminator(nn.Module):
    """pix2pixHD/SPADE PatchGAN: 4×4 convs, spectral + instance norm, returns every layer's output."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4) -> None:
        super().__init__()
        padw = 2
        nf = ndf
        seqs: list[list[nn.Module]] = [[nn.Conv2d(input_nc, nf, 4, 2, padw), nn.LeakyReLU(0.2)]]
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            seqs.append([spectral_instance(nn.Conv2d(nf_prev, nf, 4, stride, padw)), nn.LeakyReLU(0.2)])
        seqs.append([nn.Conv2d(nf, 1, 4, 1, padw)])
        for n, seq in enumerate(seqs):
            self.add_module(f"model{n}", nn.Sequential(*seq))
        self.n = len(seqs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for n in range(self.n):
            x = getattr(self, f"model{n}")(x)
            outs.append(x)
        return outs


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on the (image ++ semantic map) pyramid (3×3 avg-pool, stride 2)."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4, num_D: int = 2) -> None:
        super().__init__()
        self.num_D = num_D
        for i in range(num_D):
            self.add_module(f"discriminator_{i}", NLayerDiscriminator(input_nc, ndf, n_layers))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i in range(self.num_D):
            out.append(getattr(self, f"discriminator_{i}")(x))
            if i != self.num_D - 1:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
        return out


# =============================================================================================
# Family registration
# =============================================================================================
def semantic_nc(config: Mapping[str, Any]) -> int:
    """Channels of the conditioning: labels [+ don't-care] [+ instance edges]."""
    return (int(config["label_nc"]) + (1 if config.get("contain_dontcare_label") else 0)
            + (1 if config.get("instance_edge", True) else 0))


def _spade(label_nc: int, dontcare: bool, edge: bool, remap: str, palette: str | None, **kw: Any) -> dict[str, Any]:
    cfg = dict(label_nc=label_nc, contain_dontcare_label=dontcare, instance_edge=edge, label_remap=remap,
               palette=palette, ngf=64, crop_size=256, aspect_ratio=1.0, num_upsampling_layers="normal",
               mode="semantic", use_vae=False, z_dim=256, spade_hidden=128, pad_mode="zero", plain_levels=0)
    cfg.update(kw)
    return cfg


CONFIGS: dict[str, dict[str, Any]] = {
    # NVlabs/SPADE released generators (manifests spade_*_netG.json).
    "spade_coco": _spade(182, True, True, "coco", "coco_stuff"),
    "spade_ade20k": _spade(150, True, False, "ade20k", "ade20k"),
    "spade_cityscapes": _spade(35, False, True, "none", None, crop_size=512, aspect_ratio=2.0,
                               num_upsampling_layers="more"),
    # The paper's setting: the same generators made panoptic-aware (no released weights).
    "panoptic_coco": _spade(182, True, True, "coco", "coco_stuff", mode="panoptic"),
    "panoptic_cityscapes": _spade(35, False, True, "none", None, crop_size=512, aspect_ratio=2.0,
                                  num_upsampling_layers="more", mode="panoptic"),
    # Small models for the procedural `scenes` data (default weights) and for tests.
    "panoptic_scenes": _spade(16, False, True, "none", "scenes", ngf=8, crop_size=64, spade_hidden=32,
                              mode="panoptic"),
    "spade_scenes": _spade(16, False, True, "none", "scenes", ngf=8, crop_size=64, spade_hidden=32),
    "panoptic_tiny": _spade(4, False, True, "none", None, ngf=4, crop_size=32, spade_hidden=8, mode="panoptic"),
    "spade_tiny": _spade(4, False, True, "none", None, ngf=4, crop_size=32, spade_hidden=8),
    "panoptic_tiny_vae": _spade(4, False, True, "none", None, ngf=4, crop_size=32, spade_hidden=8,
                                mode="panoptic", use_vae=True, z_dim=16, ndf_E=8),
}


def build_generator(config: Mapping[str, Any]) -> PanopticSPADEGenerator:
    return PanopticSPADEGenerator(
        semantic_nc(config), ngf=int(config.get("ngf", 64)), crop_size=int(config.get("crop_size", 256)),
        aspect_ratio=float(config.get("aspect_ratio", 1.0)),
        num_upsampling_layers=config.get("num_upsampling_layers", "normal"),
        mode=config.get("mode", "panoptic"), use_vae=bool(config.get("use_vae", False)),
        z_dim=int(config.get("z_dim", 256)), spade_hidden=int(config.get("spade_hidden", 128)),
        pad_mode=config.get("pad_mode", "zero"), plain_levels=int(config.get("plain_levels", 0)))


def build_encoder(config: Mapping[str, Any]) -> ConvEncoder:
    return ConvEncoder(ndf=int(config.get("ndf_E", 64)), z_dim=int(config.get("z_dim", 256)),
                       input_size=min(256, int(config.get("crop_size", 256))))


def build_discriminator(config: Mapping[str, Any], ndf: int | None = None, n_layers: int = 4,
                        num_D: int = 2) -> MultiscaleDiscriminator:
    """SPADE's training discriminator (not part of inference files)."""
    ndf = ndf if ndf is not None else int(config.get("ndf", 64))
    return MultiscaleDiscriminator(semantic_nc(config) + 3, ndf, n_layers, num_D)


def build(config: Mapping[str, Any]) -> dict[str, nn.Module]:
    nets: dict[str, nn.Module] = {"netG": build_generator(config)}
    if config.get("use_vae"):
        nets["netE"] = build_encoder(config)
    return nets


def convert(paths: list[Path], config: Mapping[str, Any]) -> StateDicts:
    """SPADE ``latest_net_G.pth`` (plain state dict) [+ ``latest_net_E.pth`` for VAE models]."""
    from ..requests.base import WeightsError
    from ..weights import read_torch_file

    out: StateDicts = {}
    for path in paths:
        raw = read_torch_file(path)
        if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
            raw = raw["state_dict"]
        if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
            raise WeightsError(f"{path} is not a SPADE state dict (expected a plain name → tensor mapping)")
        sd = {k.removeprefix("module."): v for k, v in raw.items()}
        name = Path(path).name.lower()
        sub = "netE" if ("net_e" in name or any(k.startswith("fc_mu") for k in sd)) else "netG"
        if sub in out:
            raise WeightsError(f"two {sub} files given ({path})")
        out[sub] = sd
    return out


def preview_grid(config: Mapping[str, Any]) -> PreviewGrid | None:
    """Live-preview sizes (longer side): multiples of the generator's 2**upsamplings up to the crop
    size; none for VAE models (their encoder's linear layers fix the size)."""
    if config.get("use_vae"):
        return None
    m = 2 ** _NUM_UPSAMPLINGS[config.get("num_upsampling_layers", "normal")]
    w = int(config.get("crop_size", 256))
    h = int(round(w / float(config.get("aspect_ratio", 1.0))))
    return PreviewGrid(minimum=m, stride=m, native=max(m, max(h, w) // m * m))


FAMILY = register(Family(
    name="panoptic",
    build=build,
    configs=CONFIGS,
    convert=convert,
    inference_subnets=("netG",),
    preview_grid=preview_grid,
    description="Panoptic-based image synthesis on SPADE (panoptic-aware conv/upsampling); "
                "semantic-only mode = NVlabs/SPADE (loads latest_net_G.pth)",
))

__all__ = [
    "PanopticMap", "WindowMask", "window_mask", "panoptic_conv2d", "PanopticConv2d", "upsample_sources",
    "PanopticUpsample", "panoptic_conv2d_at", "PanopticSPADE", "PanopticSPADEResnetBlock", "PanopticSPADEGenerator",
    "ConvEncoder",
    "reparameterize", "NLayerDiscriminator", "MultiscaleDiscriminator", "CONFIGS", "semantic_nc", "build",
    "build_generator", "build_encoder", "build_discriminator", "convert", "FAMILY",
]
