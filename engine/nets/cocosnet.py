"""CoCosNet (Zhang et al., CVPR 2020): cross-domain correspondence + exemplar-based translation.

Module layout and parameter names follow microsoft/CoCosNet so the released
``latest_net_G.pth`` / ``latest_net_Corr.pth`` (/ ``latest_net_D.pth``) load strictly.

Call signatures (tensors are N×C×H×W, images in [-1, 1], H and W multiples of 32):

``netCorr(ref_img, input_semantics, ref_semantics=None, *, temperature=0.01, real_img=None,
warp_cycle=False, return_corr=False, noise=None) -> dict``
    ``warp_out``      the exemplar warped onto the input layout, N×3×H×W (what netG consumes);
    ``warp_mask``     exemplar semantics warped the same way, N×semantic_nc×H/4×W/4
                      (configs with ``warp_mask="direct"`` and when ``ref_semantics`` is given);
    ``adaptive_feature_seg`` / ``adaptive_feature_img``: L2-normalised domain-adaptor features
                      (N×4·ngf×H/4×W/4) of the input semantics / the exemplar;
    ``adaptive_feature_real`` (when ``real_img`` is given): the adaptor features of the ground
                      truth photo, for the domain-alignment loss (official ``novgg_featpair``);
    ``warp_cycle``    (when ``warp_cycle=True``): ``warp_out`` warped back with the column-wise
                      softmax (N×3×H/4×W/4, or N×3×H×W with ``warp_patch``);
    ``corr``          (when ``return_corr=True``): the full N×HW×HW similarity / temperature.
    The HW×HW correlation is computed in row chunks (float32), so memory stays bounded at 512².
    Stages usable on their own (for caching exemplar work): :meth:`NoVGGCorrespondence.exemplar_keys`,
    :meth:`NoVGGCorrespondence.input_keys`, :meth:`NoVGGCorrespondence.warp`.

``netG(input_semantics, warp_out) -> image`` (N×3×H×W in [-1, 1]). The conditioning input is
    concat(warp_out, input_semantics) (the released ``CBN_intype warp_mask``).

``netD(semantics_and_image) -> list[list[Tensor]]``: input is concat(semantics, image) along
    channels; one list per scale (2 scales) of the 5 intermediate outputs, the last being the
    patch logits (feature matching uses the first four).

Configs: ``ade20k``, ``ade20k_nomask`` (the ``--noise_for_mask`` model, ``90_net_*`` files),
``celebahq``, ``celebahqedge``, ``deepfashion`` at released size; ``tiny_*`` (tests) and
``small_*`` (default models trained here) with the same topology at lower width.
``input_kind`` in a config says which encoder of :mod:`engine.inputs.cocosnet` builds the
input semantics: ``labels`` (one-hot), ``celebahq_parsing``, ``celebahq_edges``, ``pose``.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..families import Family, PreviewGrid, StateDicts, register
from ..requests.base import WeightsError
from .layers import SPADEResnetBlock, feature_normalize, maybe_spectral, spectral_instance

# Self-attention logits per block of query rows: 512 K floats = 2 MiB, about one core's L2 cache.
ATTENTION_BLOCK_ELEMENTS = 512 * 1024


class Attention(nn.Module):
    """SAGAN self-attention as CoCosNet uses it in netG and netD: θ, φ (C/8), g (C/2), o; φ and g
    max-pooled 2×2; output γ·o + x with γ starting at 0."""

    def __init__(self, ch: int, spectral: bool = True) -> None:
        super().__init__()
        self.ch = ch
        self.theta = maybe_spectral(nn.Conv2d(ch, ch // 8, 1, bias=False), spectral)
        self.phi = maybe_spectral(nn.Conv2d(ch, ch // 8, 1, bias=False), spectral)
        self.g = maybe_spectral(nn.Conv2d(ch, ch // 2, 1, bias=False), spectral)
        self.o = maybe_spectral(nn.Conv2d(ch // 2, ch, 1, bias=False), spectral)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        theta = self.theta(x).reshape(n, self.ch // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).reshape(n, self.ch // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).reshape(n, self.ch // 2, h * w // 4)
        # Query positions in blocks, so each block's HW/4-wide attention rows stay in cache instead
        # of a whole HW×HW/4 matrix making three trips through memory (×2.5 at 64², same values:
        # every row's softmax and sum are computed exactly as in one piece).
        rows = max(1, ATTENTION_BLOCK_ELEMENTS // max(1, phi.shape[2]))
        blocks = []
        for start in range(0, h * w, rows):
            beta = torch.softmax(torch.bmm(theta[:, :, start:start + rows].transpose(1, 2), phi), -1)
            blocks.append(torch.bmm(g, beta.transpose(1, 2)))
        attended = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=2)
        o = self.o(attended.reshape(n, self.ch // 2, h, w))
        return self.gamma * o + x


def _spade_block(fin: int, fout: int, cond_nc: int, spade_hidden: int) -> SPADEResnetBlock:
    # CoCosNet: spectral convs, reflection padding, PONO as the parameter-free norm.
    return SPADEResnetBlock(fin, fout, cond_nc, spectral=True, norm="pono", padding="reflect",
                            spade_hidden=spade_hidden)


class AdaptiveFeatureGenerator(nn.Module):
    """Domain adaptor: five strided convs (1/4 resolution) then three SPADE blocks conditioned on
    the adaptor's own input. Output 4·ngf channels."""

    def __init__(self, in_nc: int, ngf: int = 64, adaptor_kernel: int = 3, spade_hidden: int = 128) -> None:
        super().__init__()
        k = adaptor_kernel
        self.layer1 = spectral_instance(nn.Conv2d(in_nc, ngf, 3, stride=1, padding=1))
        self.layer2 = spectral_instance(nn.Conv2d(ngf, ngf * 2, k, stride=2, padding=1))
        self.layer3 = spectral_instance(nn.Conv2d(ngf * 2, ngf * 4, 3, stride=1, padding=1))
        self.layer4 = spectral_instance(nn.Conv2d(ngf * 4, ngf * 8, k, stride=2, padding=1))
        self.layer5 = spectral_instance(nn.Conv2d(ngf * 8, ngf * 8, 3, stride=1, padding=1))
        self.head_0 = _spade_block(8 * ngf, 8 * ngf, in_nc, spade_hidden)
        self.G_middle_0 = _spade_block(8 * ngf, 8 * ngf, in_nc, spade_hidden)
        self.G_middle_1 = _spade_block(8 * ngf, 4 * ngf, in_nc, spade_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cond = x
        x = self.layer1(x)
        x = self.layer2(F.leaky_relu(x, 0.2))
        x = self.layer3(F.leaky_relu(x, 0.2))
        x = self.layer4(F.leaky_relu(x, 0.2))
        x = self.layer5(F.leaky_relu(x, 0.2))
        x = self.head_0(x, cond)
        x = self.G_middle_0(x, cond)
        return self.G_middle_1(x, cond)


class ResidualBlock(nn.Module):
    """Correspondence residual block: reflect-pad 3×3 conv, instance norm, PReLU (one PReLU shared
    by both activations), twice, with identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.padding1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.bn1 = nn.InstanceNorm2d(channels)
        self.prelu = nn.PReLU()
        self.padding2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.bn2 = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.prelu(self.bn1(self.conv1(self.padding1(x))))
        out = self.bn2(self.conv2(self.padding2(out)))
        return self.prelu(out + x)


def softmax_attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, temperature: float,
                   chunk_rows: int | None = None, low_precision_logits: bool = False) -> torch.Tensor:
    """softmax(query·keys / temperature) · values, computed ``chunk_rows`` query rows at a time.

    query N×Q×D (unit rows), keys N×D×K, values N×K×C -> N×Q×C. Runs in float32 even under
    autocast: with temperature 0.01 a bfloat16 cosine similarity (3 significant digits) would move
    the logits by ~0.5 and visibly change the warp. ``low_precision_logits`` opts into the
    autocast dtype for the similarity product (softmax and the value product stay float32).
    """
    q_rows, k_cols = query.shape[1], keys.shape[2]
    if chunk_rows is None:
        # keep one logits block at about 64 MiB of float32
        chunk_rows = max(1, min(q_rows, (16 * 1024 * 1024) // max(1, k_cols)))
    dev = query.device.type
    no_autocast = (torch.autocast(device_type=dev, enabled=False) if dev in ("cpu", "cuda", "mps", "xpu")
                   else contextlib.nullcontext())  # e.g. "meta" when counting FLOPs
    low_dtype = (torch.get_autocast_dtype(dev) if low_precision_logits and dev in ("cpu", "cuda")
                 and torch.is_autocast_enabled(dev) else None)
    with no_autocast:
        values = values.float()
        if low_dtype is not None:
            query, keys = query.to(low_dtype), keys.to(low_dtype)
        else:
            query, keys = query.float(), keys.float()
        out = []
        for start in range(0, q_rows, chunk_rows):
            logits = torch.matmul(query[:, start:start + chunk_rows], keys).float() / temperature
            out.append(torch.matmul(torch.softmax(logits, dim=-1), values))
        return out[0] if len(out) == 1 else torch.cat(out, dim=1)


class NoVGGCorrespondence(nn.Module):
    """Cross-domain correspondence network (``netCorr``); see the module docstring for outputs."""

    def __init__(self, semantic_nc: int, ngf: int = 64, adaptor_kernel: int = 3, maskmix: bool = True,
                 warp_bilinear: bool = False, warp_patch: bool = False, warp_mask: str = "direct",
                 noise_for_mask: bool = False, match_kernel: int = 3, pono_c: bool = True,
                 down: int = 4, inter_channels: int = 256, spade_hidden: int = 128) -> None:
        super().__init__()
        if down != 4:
            raise ValueError("only warp_stride 4 (the released models) is supported")
        self.semantic_nc = semantic_nc
        self.maskmix, self.warp_bilinear, self.warp_patch = maskmix, warp_bilinear, warp_patch
        self.warp_mask_type, self.noise_for_mask = warp_mask, noise_for_mask
        self.match_kernel, self.pono_c, self.down = match_kernel, pono_c, down
        self.inter_channels = inter_channels
        # opt-in: similarity product in the autocast dtype (float32 otherwise; see softmax_attend)
        self.low_precision_logits = False
        self.adaptive_model_seg = AdaptiveFeatureGenerator(semantic_nc, ngf, adaptor_kernel, spade_hidden)
        self.adaptive_model_img = AdaptiveFeatureGenerator(3, ngf, adaptor_kernel, spade_hidden)
        feat = 4 * ngf + (semantic_nc if maskmix else 0)
        self.layer = nn.Sequential(*[ResidualBlock(feat) for _ in range(4)])
        self.phi = nn.Conv2d(feat, inter_channels, 1)
        self.theta = nn.Conv2d(feat, inter_channels, 1)

    # -- stages ------------------------------------------------------------------------------
    def _keys(self, features: torch.Tensor, proj: nn.Conv2d) -> torch.Tensor:
        """1×1 projection, k×k neighbourhood unfold, centring (PONO_C: per position), L2 norm."""
        x = proj(features)
        n = x.shape[0]
        if self.match_kernel == 1:
            x = x.reshape(n, self.inter_channels, -1)
        else:
            x = F.unfold(x, kernel_size=self.match_kernel, padding=self.match_kernel // 2)
        x = x - x.mean(dim=1 if self.pono_c else -1, keepdim=True)
        return feature_normalize(x)

    def _mix(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.maskmix:
            assert mask is not None
            features = torch.cat((features, mask), 1)
        return self.layer(features)

    def input_features(self, input_semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(adaptive_feature_seg normalised, features after the shared residual blocks)."""
        adaptive = feature_normalize(self.adaptive_model_seg(input_semantics))
        seg = F.interpolate(input_semantics, size=adaptive.shape[2:], mode="nearest")
        return adaptive, self._mix(adaptive, seg)

    def exemplar_features(self, ref_img: torch.Tensor, ref_semantics: torch.Tensor | None,
                          noise: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(adaptive_feature_img normalised, features after the shared residual blocks)."""
        adaptive = feature_normalize(self.adaptive_model_img(ref_img))
        mask = None
        if self.maskmix:
            size = adaptive.shape[2:]
            if self.noise_for_mask and not self.training:
                # the no-exemplar-mask model sees N(0, 0.01²) noise in place of exemplar semantics
                shape = (adaptive.shape[0], self.semantic_nc, *size)
                mask = torch.randn(shape, generator=noise, device=adaptive.device, dtype=adaptive.dtype) * 0.01
            else:
                if ref_semantics is None:
                    raise ValueError("this CoCosNet model needs the exemplar's semantics (maskmix)")
                mask = F.interpolate(ref_semantics, size=size, mode="nearest")
        return adaptive, self._mix(adaptive, mask)

    def input_keys(self, input_semantics: torch.Tensor) -> torch.Tensor:
        """θ keys of the input semantics: N×D×HW (D = inter_channels·k²)."""
        return self._keys(self.input_features(input_semantics)[1], self.theta)

    def exemplar_keys(self, ref_img: torch.Tensor, ref_semantics: torch.Tensor | None,
                      noise: torch.Generator | None = None) -> torch.Tensor:
        """φ keys of the exemplar: N×D×HW. Depends only on the exemplar, so it can be cached."""
        return self._keys(self.exemplar_features(ref_img, ref_semantics, noise)[1], self.phi)

    def _values(self, ref_img: torch.Tensor) -> torch.Tensor:
        if self.warp_patch:
            return F.unfold(ref_img, self.down, stride=self.down).permute(0, 2, 1)
        ref = F.avg_pool2d(ref_img, self.down)
        return ref.reshape(ref.shape[0], ref.shape[1], -1).permute(0, 2, 1)

    def _unvalues(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """N×HW×C warped values -> image (folded patches, or ¼-res colours)."""
        h, w = size
        if self.warp_patch:
            return F.fold(y.permute(0, 2, 1), (h, w), self.down, stride=self.down)
        return y.permute(0, 2, 1).reshape(y.shape[0], -1, h // self.down, w // self.down)

    def upsample(self, y: torch.Tensor) -> torch.Tensor:
        if self.warp_patch:
            return y
        if self.warp_bilinear:
            return F.interpolate(y, scale_factor=self.down, mode="bilinear", align_corners=False)
        return F.interpolate(y, scale_factor=self.down, mode="nearest")

    def warp(self, theta: torch.Tensor, phi: torch.Tensor, ref_img: torch.Tensor,
             ref_semantics: torch.Tensor | None = None, temperature: float = 0.01,
             chunk_rows: int | None = None) -> dict[str, torch.Tensor]:
        """Warp the exemplar (and its semantics, for ``warp_mask="direct"``) with precomputed keys."""
        size = (ref_img.shape[2], ref_img.shape[3])
        values = self._values(ref_img)
        n_img = values.shape[2]
        want_mask = self.warp_mask_type == "direct" and ref_semantics is not None
        if want_mask:
            ref_seg = F.interpolate(ref_semantics, scale_factor=1 / self.down, mode="nearest")
            values = torch.cat((values.float(), ref_seg.flatten(2).permute(0, 2, 1).float()), dim=2)
        y = softmax_attend(theta.permute(0, 2, 1), phi, values, temperature, chunk_rows,
                           self.low_precision_logits)
        out = {"warp_out": self.upsample(self._unvalues(y[..., :n_img], size))}
        if want_mask:
            fh, fw = size[0] // self.down, size[1] // self.down
            out["warp_mask"] = y[..., n_img:].permute(0, 2, 1).reshape(y.shape[0], -1, fh, fw)
        return out

    def forward(self, ref_img: torch.Tensor, input_semantics: torch.Tensor,
                ref_semantics: torch.Tensor | None = None, *, temperature: float = 0.01,
                real_img: torch.Tensor | None = None, warp_cycle: bool = False, return_corr: bool = False,
                noise: torch.Generator | None = None, chunk_rows: int | None = None) -> dict[str, torch.Tensor]:
        adaptive_seg, cont = self.input_features(input_semantics)
        adaptive_img, ref_feat = self.exemplar_features(ref_img, ref_semantics, noise)
        theta = self._keys(cont, self.theta)
        phi = self._keys(ref_feat, self.phi)
        out: dict[str, torch.Tensor] = {"adaptive_feature_seg": adaptive_seg, "adaptive_feature_img": adaptive_img}
        if real_img is not None:
            out["adaptive_feature_real"] = feature_normalize(self.adaptive_model_img(real_img))
        out.update(self.warp(theta, phi, ref_img, ref_semantics, temperature, chunk_rows))
        if warp_cycle or return_corr:
            # training-only paths need the whole HW×HW matrix (column softmax)
            corr = torch.matmul(theta.permute(0, 2, 1), phi) / temperature
            if return_corr:
                out["corr"] = corr
            if warp_cycle:
                size = (ref_img.shape[2], ref_img.shape[3])
                f_div_c = torch.softmax(corr, dim=-1)
                f_div_c_v = torch.softmax(corr.transpose(1, 2), dim=-1)
                y = torch.matmul(f_div_c, self._values(ref_img))  # ¼-res warp (or patches)
                back = torch.matmul(f_div_c_v, y)
                out["warp_cycle"] = self._unvalues(back, size)
        return out


class CoCosNetGenerator(nn.Module):
    """Translation network (``netG``): SPADE generator conditioned on concat(warped exemplar,
    input semantics), PONO, reflection padding, self-attention at 1/4 resolution."""

    def __init__(self, semantic_nc: int, ngf: int = 64, use_attention: bool = True, spade_hidden: int = 128) -> None:
        super().__init__()
        nf = ngf
        ic = 3 + semantic_nc
        self.fc = nn.Conv2d(ic, 16 * nf, 3, padding=1)
        self.head_0 = _spade_block(16 * nf, 16 * nf, ic, spade_hidden)
        self.G_middle_0 = _spade_block(16 * nf, 16 * nf, ic, spade_hidden)
        self.G_middle_1 = _spade_block(16 * nf, 16 * nf, ic, spade_hidden)
        self.up_0 = _spade_block(16 * nf, 8 * nf, ic, spade_hidden)
        self.up_1 = _spade_block(8 * nf, 4 * nf, ic, spade_hidden)
        self.use_attention = use_attention
        if use_attention:
            self.attn = Attention(4 * nf, spectral=True)
        self.up_2 = _spade_block(4 * nf, 2 * nf, ic, spade_hidden)
        self.up_3 = _spade_block(2 * nf, 1 * nf, ic, spade_hidden)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, input_semantics: torch.Tensor, warp_out: torch.Tensor) -> torch.Tensor:
        cond = torch.cat((warp_out, input_semantics), dim=1)
        h, w = cond.shape[2], cond.shape[3]
        # official: fixed 8×8 latent for 256 px (crop_size / 2^5); the same rule at other sizes
        x = self.fc(F.interpolate(cond, size=(h // 32, w // 32), mode="nearest"))
        x = self.head_0(x, cond)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.G_middle_0(x, cond)
        x = self.G_middle_1(x, cond)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.up_0(x, cond)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.up_1(x, cond)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.use_attention:
            x = self.attn(x)
        x = self.up_2(x, cond)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.up_3(x, cond)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class NLayerDiscriminator(nn.Module):
    """One PatchGAN scale: 4×4 convs (spectral + instance norm inside), self-attention before the
    last stride-1 conv, and the segmentation decoder ``dec`` (a head on the pre-attention features,
    kept because the released checkpoints hold it; the official forward and training never call it)."""

    def __init__(self, input_nc: int, semantic_nc: int, ndf: int = 64, n_layers: int = 4,
                 use_attention: bool = True) -> None:
        super().__init__()
        kw, padw = 4, 1
        nf = ndf
        sequence: list[list[nn.Module]] = [[nn.Conv2d(input_nc, nf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2)]]
        self.use_attention = use_attention
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            if n == n_layers - 1:
                if use_attention:
                    self.attn = Attention(nf_prev, spectral=True)
                dec: list[nn.Module] = []
                nc = nf_prev
                for _ in range(n_layers - 1):
                    dec += [nn.Upsample(scale_factor=2), spectral_instance(nn.Conv2d(nc, nc // 2, 3, padding=1)),
                            nn.LeakyReLU(0.2)]
                    nc //= 2
                dec += [nn.Conv2d(nc, semantic_nc, 3, padding=1)]
                self.dec = nn.Sequential(*dec)
            conv = nn.Conv2d(nf_prev, nf, kw, stride=stride, padding=padw)
            sequence += [[spectral_instance(conv), nn.LeakyReLU(0.2)]]
        sequence += [[nn.Conv2d(nf, 1, kw, stride=1, padding=padw)]]
        self.n_models = len(sequence)
        for n, layers in enumerate(sequence):
            self.add_module(f"model{n}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        results = [x]
        for n in range(self.n_models):
            inp = results[-1]
            if n == self.n_models - 2 and self.use_attention:  # official: attention feeds model3
                inp = self.attn(inp)
            results.append(getattr(self, f"model{n}")(inp))
        return results[1:]


class MultiscaleDiscriminator(nn.Module):
    """``netD``: ``num_D`` PatchGANs, each next scale on a 3×3/2 average-pooled input."""

    def __init__(self, semantic_nc: int, ndf: int = 64, n_layers: int = 4, num_D: int = 2,
                 use_attention: bool = True) -> None:
        super().__init__()
        self.num_D = num_D
        for i in range(num_D):
            self.add_module(f"discriminator_{i}",
                            NLayerDiscriminator(semantic_nc + 3, semantic_nc, ndf, n_layers, use_attention))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i in range(self.num_D):
            out.append(getattr(self, f"discriminator_{i}")(x))
            x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
        return out


# ------------------------------------------------------------------------------------------ configs
_RELEASED_COMMON: dict[str, Any] = dict(
    ngf=64, ndf=64, n_layers_D=4, num_D=2, use_attention=True, match_kernel=3, pono_c=True,
    down=4, inter_channels=256, spade_hidden=128, noise_for_mask=False, size=256,
)

CONFIGS: dict[str, dict[str, Any]] = {
    "ade20k": dict(_RELEASED_COMMON, semantic_nc=151, input_kind="labels", adaptor_kernel=3,
                   maskmix=True, warp_bilinear=False, warp_patch=False, warp_mask="direct"),
    "ade20k_nomask": dict(_RELEASED_COMMON, semantic_nc=151, input_kind="labels", adaptor_kernel=3,
                          maskmix=True, warp_bilinear=False, warp_patch=False, warp_mask="direct",
                          noise_for_mask=True),
    "celebahq": dict(_RELEASED_COMMON, semantic_nc=19, input_kind="celebahq_parsing", adaptor_kernel=4,
                     maskmix=True, warp_bilinear=True, warp_patch=False, warp_mask="direct"),
    "celebahqedge": dict(_RELEASED_COMMON, semantic_nc=15, input_kind="celebahq_edges", adaptor_kernel=4,
                         maskmix=True, warp_bilinear=True, warp_patch=False, warp_mask="none"),
    "deepfashion": dict(_RELEASED_COMMON, semantic_nc=20, input_kind="pose", adaptor_kernel=4,
                        maskmix=False, warp_bilinear=True, warp_patch=True, warp_mask="none"),
}
_RELEASED = tuple(CONFIGS)
# Same topology at lower width: tiny for tests, small for the default models trained here.
for _base in ("ade20k", "celebahq", "celebahqedge", "deepfashion"):
    CONFIGS[f"tiny_{_base}"] = dict(CONFIGS[_base], ngf=4, ndf=8, inter_channels=8, spade_hidden=8, size=64)
    # netG + netCorr ≈ 3 M parameters with ~20 classes (≈ 12 MB float32; 6.5 M with ADE20k's 151):
    # sized for the ≤ 20 MB default models
    CONFIGS[f"small_{_base}"] = dict(CONFIGS[_base], ngf=8, ndf=16, inter_channels=32, spade_hidden=32, size=128)
CONFIGS["tiny_ade20k"]["semantic_nc"] = 8  # tests use 8 classes


def make_config(base: str, **overrides: Any) -> dict[str, Any]:
    """A config derived from a named one, e.g. ``make_config("small_ade20k", semantic_nc=24)``."""
    if base not in CONFIGS:
        raise KeyError(f"no CoCosNet config {base!r}; known: {', '.join(CONFIGS)}")
    return dict(CONFIGS[base], **overrides)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """Official init (xavier normal, gain 0.02, zero bias) on plain convs/linears. The official
    code applies it to spectral-norm layers too, but there it writes the derived ``weight`` that
    the hook recomputes from ``weight_orig`` on the next forward — so those keep PyTorch's
    default init, and so do they here."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and "weight_orig" not in m._parameters:
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """For inference only: replace each spectral-norm hook by its eval-mode weight
    ``weight_orig / σ(u, v)`` as a plain parameter, so the weight is not re-divided (and, under
    autocast, not re-cast) on every forward. Changes the state-dict names; idempotent."""
    from torch.nn.utils.spectral_norm import SpectralNorm

    for m in module.modules():
        for key, hook in list(m._forward_pre_hooks.items()):
            if isinstance(hook, SpectralNorm):
                with torch.no_grad():
                    weight = hook.compute_weight(m, do_power_iteration=False).detach().clone()
                del m._forward_pre_hooks[key]
                for suffix in ("_orig", "_u", "_v"):
                    name = hook.name + suffix
                    if name in m._parameters:
                        del m._parameters[name]
                    elif name in m._buffers:
                        del m._buffers[name]
                if hasattr(m, hook.name):
                    delattr(m, hook.name)
                m.register_parameter(hook.name, nn.Parameter(weight, requires_grad=False))
    return module


def prepare_for_inference(nets: Mapping[str, nn.Module], channels_last: bool = True) -> None:
    """eval(), spectral norm folded, channels-last memory format (faster oneDNN convolutions)."""
    for net in nets.values():
        if getattr(net, "_prepared_for_inference", None) == channels_last:
            continue  # already done (cached models are prepared once, not per request)
        net.eval()
        fold_spectral_norm(net)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        net._prepared_for_inference = channels_last


def build(config: Mapping[str, Any], *, init: bool = True) -> dict[str, nn.Module]:
    """{"netG", "netCorr", "netD"} for a config dict."""
    c = dict(CONFIGS["ade20k"], **config)
    net_g = CoCosNetGenerator(c["semantic_nc"], c["ngf"], c["use_attention"], c["spade_hidden"])
    net_corr = NoVGGCorrespondence(
        c["semantic_nc"], c["ngf"], c["adaptor_kernel"], c["maskmix"], c["warp_bilinear"], c["warp_patch"],
        c["warp_mask"], c["noise_for_mask"], c["match_kernel"], c["pono_c"], c["down"], c["inter_channels"],
        c["spade_hidden"])
    net_d = MultiscaleDiscriminator(c["semantic_nc"], c["ndf"], c["n_layers_D"], c["num_D"], c["use_attention"])
    nets = {"netG": net_g, "netCorr": net_corr, "netD": net_d}
    if init:
        for net in nets.values():
            init_weights(net)
    return nets


_OFFICIAL_FILE = re.compile(r"net_(G|Corr|D)\.pth$")


def convert(paths: list[Path], config: Mapping[str, Any]) -> StateDicts:
    """Official ``<epoch>_net_G.pth`` + ``<epoch>_net_Corr.pth`` (+ optional ``_net_D.pth``), each a
    plain state dict, -> {"netG": ..., "netCorr": ..., "netD": ...}."""
    from ..weights import read_torch_file

    out: StateDicts = {}
    for path in paths:
        m = _OFFICIAL_FILE.search(Path(path).name)
        if m is None:
            raise WeightsError(f"{Path(path).name}: expected an official CoCosNet file named "
                               f"<epoch>_net_G.pth, <epoch>_net_Corr.pth or <epoch>_net_D.pth")
        sub = "net" + m.group(1)
        if sub in out:
            raise WeightsError(f"two files for {sub}: pass one epoch's files only")
        raw = read_torch_file(Path(path))
        if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
            raw = raw["state_dict"]
        if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
            raise WeightsError(f"{Path(path).name} is not a plain state dict of tensors")
        out[sub] = {k.removeprefix("module."): v for k, v in raw.items()}
    for sub in ("netG", "netCorr"):
        if sub not in out:
            raise WeightsError(f"the {sub} file (…_net_{sub[3:]}.pth) is missing; CoCosNet inference needs "
                               f"both latest_net_G.pth and latest_net_Corr.pth")
    return out


# netG starts at 1/32 of the working size and needs at least 2×2 there.
PREVIEW_STRIDE = 32
PREVIEW_MINIMUM = 64


def preview_grid(config: Mapping[str, Any]) -> PreviewGrid:
    """Live-preview sizes of a CoCosNet model: multiples of 32 from 64 px up to its native size."""
    return PreviewGrid(minimum=PREVIEW_MINIMUM, stride=PREVIEW_STRIDE,
                       native=max(PREVIEW_MINIMUM, int(config.get("size", 256))))


FAMILY = register(Family(
    name="cocosnet",
    build=build,
    configs=CONFIGS,
    convert=convert,
    inference_subnets=("netG", "netCorr"),
    preview_grid=preview_grid,
    description="CoCosNet exemplar-based translation (correspondence netCorr + translation netG; netD for training)",
))

__all__ = [
    "Attention", "AdaptiveFeatureGenerator", "ResidualBlock", "NoVGGCorrespondence", "CoCosNetGenerator",
    "NLayerDiscriminator", "MultiscaleDiscriminator", "CONFIGS", "make_config", "build", "convert",
    "init_weights", "softmax_attend", "fold_spectral_norm", "prepare_for_inference", "FAMILY",
]
