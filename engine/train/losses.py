"""Shared GAN and feature losses for every trainer.

Conventions:
- A discriminator prediction ``pred`` may be a tensor, a list of per-scale tensors, or a list of
  per-scale feature lists whose LAST entry is the prediction (the SPADE / CoCosNet multi-scale
  PatchGAN format). Adversarial losses average over scales, as SPADE's ``GANLoss`` does.
- Losses return scalars (0-dim tensors) unless a docstring says "per sample".
- Feature dicts are what :class:`engine.metrics.features.Features` returns: ``{layer: tensor}``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nets.layers import feature_normalize

Prediction = Tensor | Sequence[Tensor | Sequence[Tensor]]

__all__ = [
    "hinge_d_loss", "hinge_d_real", "hinge_d_fake", "hinge_g_loss",
    "bce_d_loss", "bce_g_loss", "r1_penalty", "gradient_penalty",
    "feature_matching_loss", "perceptual_loss", "weighted_l1",
    "contextual_loss", "focal_loss", "binary_focal_loss",
]


def _final_predictions(pred: Prediction) -> list[Tensor]:
    """Per-scale final predictions from any of the accepted ``pred`` formats."""
    if isinstance(pred, Tensor):
        return [pred]
    out: list[Tensor] = []
    for scale in pred:
        out.append(scale if isinstance(scale, Tensor) else scale[-1])
    if not out:
        raise ValueError("empty discriminator prediction list")
    return out


def _scale_mean(pred: Prediction, per_scale: Callable[[Tensor], Tensor]) -> Tensor:
    preds = _final_predictions(pred)
    return sum(per_scale(p) for p in preds) / len(preds)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------
# Adversarial losses
# ------------------------------------------------------------------------------------------------
def hinge_d_real(pred: Prediction) -> Tensor:
    """Hinge loss of the discriminator on real samples: mean(relu(1 - D(x)))."""
    return _scale_mean(pred, lambda p: F.relu(1.0 - p).mean())


def hinge_d_fake(pred: Prediction) -> Tensor:
    """Hinge loss of the discriminator on generated samples: mean(relu(1 + D(G(z))))."""
    return _scale_mean(pred, lambda p: F.relu(1.0 + p).mean())


def hinge_d_loss(pred_real: Prediction, pred_fake: Prediction) -> Tensor:
    """Discriminator hinge loss, real term + fake term (SPADE/CoCosNet ``gan_mode hinge``)."""
    return hinge_d_real(pred_real) + hinge_d_fake(pred_fake)


def hinge_g_loss(pred_fake: Prediction) -> Tensor:
    """Generator hinge loss: -mean(D(G(z)))."""
    return _scale_mean(pred_fake, lambda p: -p.mean())


def bce_d_loss(pred_real: Prediction, pred_fake: Prediction) -> Tensor:
    """Non-saturating GAN discriminator loss on logits: softplus(-D(x)) + softplus(D(G(z)))."""
    return (_scale_mean(pred_real, lambda p: F.softplus(-p).mean())
            + _scale_mean(pred_fake, lambda p: F.softplus(p).mean()))


def bce_g_loss(pred_fake: Prediction) -> Tensor:
    """Non-saturating generator loss on logits: softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return _scale_mean(pred_fake, lambda p: F.softplus(-p).mean())


def r1_penalty(pred_real: Tensor, real: Tensor) -> Tensor:
    """R1 regulariser (Mescheder et al.): 0.5 · E[‖∇ₓ D(x)‖²] on real samples.

    ``real`` must have ``requires_grad=True`` before the discriminator ran on it; the graph is
    kept (create_graph) so the penalty can be back-propagated into D. StarGAN v2 uses this with
    weight ``lambda_reg`` = 1.
    """
    if not real.requires_grad:
        raise ValueError("r1_penalty: call real.requires_grad_() before running the discriminator")
    (grad,) = torch.autograd.grad(outputs=pred_real.sum(), inputs=real, create_graph=True)
    return 0.5 * grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al.): E[(‖∇ D(x̂)‖₂ - 1)²] at random interpolates x̂.

    The caller multiplies by λ (10 in the paper and in EdgeGAN).
    """
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(alpha_shape, device=real.device, dtype=real.dtype, generator=generator)
    mixed = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(mixed)
    (grad,) = torch.autograd.grad(outputs=out.sum(), inputs=mixed, create_graph=True)
    return (grad.reshape(grad.shape[0], -1).norm(2, dim=1) - 1.0).pow(2).mean()


# ------------------------------------------------------------------------------------------------
# Feature losses
# ------------------------------------------------------------------------------------------------
def feature_matching_loss(feats_fake: Sequence[Sequence[Tensor]],
                          feats_real: Sequence[Sequence[Tensor]]) -> Tensor:
    """Multi-scale discriminator feature matching (pix2pixHD/SPADE ``GAN_Feat``).

    ``feats_*[scale]`` lists the intermediate feature maps with the prediction last; the prediction
    is excluded. L1 to the detached real features, summed over layers, averaged over scales (the
    caller multiplies by ``lambda_feat``, 10 in SPADE and CoCosNet).
    """
    if len(feats_fake) != len(feats_real) or not feats_fake:
        raise ValueError("feature_matching_loss: fake and real need the same non-zero number of scales")
    total = feats_fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(feats_fake, feats_real, strict=True):
        for f, r in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total / len(feats_fake)


def weighted_l1(x: Tensor, y: Tensor, sample_weights: Tensor | None = None) -> Tensor:
    """mean(|x - y| · w) with per-sample weights ``w`` of shape (N,) broadcast over the rest."""
    diff = (x - y).abs()
    if sample_weights is not None:
        diff = diff * sample_weights.reshape((-1,) + (1,) * (diff.dim() - 1)).to(diff.dtype)
    return diff.mean()


def perceptual_loss(feats_fake: Mapping[str, Tensor], feats_real: Mapping[str, Tensor],
                    layer_weights: Mapping[str, float], kind: Literal["l1", "mse"] = "l1",
                    sample_weights: Tensor | None = None) -> Tensor:
    """Σ_layer weight · dist(fake[layer], real[layer].detach()) over a feature extractor's outputs.

    ``kind="l1"`` is mean absolute error, ``"mse"`` mean squared error. ``sample_weights`` (N,)
    multiplies each sample's error before the mean (CoCosNet's pseudo-exemplar loss uses
    self_ref / Σ self_ref so only self-reference samples count).
    """
    if not layer_weights:
        raise ValueError("perceptual_loss: no layers given")
    total: Tensor | None = None
    for layer, w in layer_weights.items():
        if layer not in feats_fake or layer not in feats_real:
            raise KeyError(f"perceptual_loss: feature layer {layer!r} not produced by the extractor")
        f, r = feats_fake[layer], feats_real[layer].detach()
        if kind == "l1":
            term = weighted_l1(f, r, sample_weights)
        elif kind == "mse":
            sq = (f - r).pow(2)
            if sample_weights is not None:
                sq = sq * sample_weights.reshape((-1,) + (1,) * (sq.dim() - 1)).to(sq.dtype)
            term = sq.mean()
        else:
            raise ValueError(f"perceptual_loss: unknown kind {kind!r}")
        total = term * w if total is None else total + term * w
    assert total is not None
    return total


def contextual_loss(x: Tensor, y: Tensor, h: float = 0.1,
                    centering: Literal["channel", "spatial", "none"] = "channel",
                    eps: float = 1e-3) -> Tensor:
    """Contextual loss (Mechrez et al. 2018) in CoCosNet's forward form; **per sample** (N,).

    For features ``x`` (generated) and ``y`` (exemplar), both N×C×H×W: centre both by the mean of
    ``y`` ("channel": per-position mean over channels, what CoCosNet does with PONO, i.e. in all
    released configs; "spatial": per-channel mean over positions, Mechrez's original), L2-normalise,
    cosine distance d_ij, relative distance d_ij / (min_j d_ij + eps), affinities
    w = exp((1 - d̃)/h) normalised over j, CX = mean_i max_j A_ij, loss = -log CX.
    Costs an (HW)×(HW) matrix per sample: use on deep, small feature maps.
    """
    if x.shape != y.shape:
        raise ValueError(f"contextual_loss: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    n, c = x.shape[:2]
    if centering == "channel":
        mu = y.mean(dim=1, keepdim=True)
        x, y = x - mu, y - mu
    elif centering == "spatial":
        mu = y.reshape(n, c, -1).mean(dim=-1).reshape((n, c) + (1,) * (y.dim() - 2))
        x, y = x - mu, y - mu
    elif centering != "none":
        raise ValueError(f"contextual_loss: unknown centering {centering!r}")
    xf = feature_normalize(x).reshape(n, c, -1)
    yf = feature_normalize(y).reshape(n, c, -1)
    d = 1.0 - torch.bmm(xf.transpose(1, 2), yf)  # N × HWx × HWy
    d_rel = d / (d.min(dim=-1, keepdim=True)[0] + eps)
    # softmax((1 - d_rel)/h) over j == exp(.)/Σexp(.), computed stably
    affinity = torch.softmax((1.0 - d_rel) / h, dim=-1)
    cx = affinity.max(dim=-1)[0].mean(dim=1)
    return -torch.log(cx)


# ------------------------------------------------------------------------------------------------
# Classification losses
# ------------------------------------------------------------------------------------------------
def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0, alpha: Tensor | None = None,
               ignore_index: int = -100) -> Tensor:
    """Multi-class focal loss (Lin et al.): mean over valid positions of -α_t (1 - p_t)^γ log p_t.

    ``logits`` N×C[×...], ``target`` N[×...] int64 class indices; positions equal to
    ``ignore_index`` are skipped; ``alpha`` optional per-class weights (C,). γ = 0 without α is
    cross-entropy.
    """
    logp = F.log_softmax(logits, dim=1)
    valid = target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    logp_t = logp.gather(1, safe_target.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - logp_t.exp()).clamp_min(0).pow(gamma)) * logp_t
    if alpha is not None:
        loss = loss * alpha.to(loss.dtype)[safe_target]
    loss = loss * valid.to(loss.dtype)
    return loss.sum() / valid.sum().clamp_min(1).to(loss.dtype)


def binary_focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0,
                      alpha: float | None = 0.25) -> Tensor:
    """Sigmoid focal loss for binary targets in {0, 1} (RetinaNet form), mean over elements."""
    target = target.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.mean()
