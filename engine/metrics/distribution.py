"""Feature-space metrics over sets of images: the Fréchet distance on backbone pool features and a
learned-free perceptual distance between image pairs.

Names follow the backbone that produced them ("FD-MobileNetV2", "PD-VGG19"): without Inception-v3
weights these are *not* FID/LPIPS values and must not be compared with published ones.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..requests.base import InputError
from .features import Features


def images_to_tensor(images: Iterable[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 images (a list of equal size, or an N×H×W×3 array) -> N×3×H×W float in [-1, 1]."""
    arr = np.stack(list(images)) if not isinstance(images, np.ndarray) else images
    if arr.ndim == 3:
        arr = arr[None]
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise InputError(f"expected uint8 N×H×W×3 images, got {arr.dtype} {arr.shape}")
    return torch.from_numpy(np.array(arr)).permute(0, 3, 1, 2).float() / 127.5 - 1


@dataclass
class FeatureStats:
    """Running mean and covariance of D-dimensional features (float64 sums, so any batch order
    gives the same result up to rounding)."""

    dim: int
    keep_limit: int = 2048  # keep raw features up to this many (exact low-rank FD for small sets)
    n: int = 0
    total: np.ndarray = field(init=False)
    outer: np.ndarray = field(init=False)
    kept: list[np.ndarray] | None = field(init=False)

    def __post_init__(self) -> None:
        self.total = np.zeros(self.dim, np.float64)
        self.outer = np.zeros((self.dim, self.dim), np.float64)
        self.kept = []

    def update(self, feats: np.ndarray | torch.Tensor) -> None:
        f = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise InputError(f"expected N×{self.dim} features, got {f.shape}")
        self.n += len(f)
        self.total += f.sum(0)
        self.outer += f.T @ f
        if self.kept is not None:
            self.kept = self.kept + [f] if self.n <= self.keep_limit else None

    @property
    def features(self) -> np.ndarray | None:
        """All features seen (N×D) while N ≤ keep_limit, else None."""
        return np.concatenate(self.kept) if self.kept else None

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(self.n, 1)

    @property
    def cov(self) -> np.ndarray:
        """Unbiased sample covariance (as the FID reference code's ``np.cov``)."""
        if self.n < 2:
            raise InputError(f"a covariance needs at least 2 images, got {self.n}")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||² + Tr(C1 + C2 - 2 (C1 C2)^½) between two Gaussians.

    Tr((C1 C2)^½) is computed as Σ √λ of the symmetric PSD matrix C1^½ C2 C1^½ (same eigenvalues as
    C1 C2), which stays real and stable where a general matrix square root would not."""
    s1 = _sqrtm_psd(cov1)
    middle = s1 @ cov2 @ s1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_covmean)
    return max(value, 0.0)


def frechet_distance_stats(a: FeatureStats, b: FeatureStats) -> float:
    """Fréchet distance between two feature sets. While both keep their raw features and are
    smaller than the dimension, the covariances have rank < N and the trace term is computed
    exactly from the N1×N2 cross-Gram matrix: Tr((C1 C2)^½) = ||A Bᵀ||_* / √((N1-1)(N2-1)) for
    the centred feature matrices A, B (the non-zero eigenvalues of C1 C2 are the squared singular
    values of A Bᵀ scaled), which avoids a D×D eigendecomposition."""
    fa, fb = a.features, b.features
    if fa is not None and fb is not None and min(a.n, b.n) >= 2 and max(a.n, b.n) < a.dim:
        A, B = fa - fa.mean(0), fb - fb.mean(0)
        k1, k2 = a.n - 1, b.n - 1
        tr_covmean = float(np.linalg.svd(A @ B.T, compute_uv=False).sum()) / np.sqrt(k1 * k2)
        diff = fa.mean(0) - fb.mean(0)
        value = float(diff @ diff + (A * A).sum() / k1 + (B * B).sum() / k2 - 2 * tr_covmean)
        return max(value, 0.0)
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


@torch.no_grad()
def pooled_features(features: Features, images: torch.Tensor, *, batch: int = 16,
                    size: int | None = 224) -> torch.Tensor:
    """N×D pool features of N×3×H×W images in [-1, 1], computed ``batch`` at a time at ``size``²."""
    outs = [features.pooled(images[i:i + batch].to(features.mean.device), size=size).cpu()
            for i in range(0, len(images), batch)]
    return torch.cat(outs).double()


def fd_name(features: Features) -> str:
    return f"FD-{features.metric_name}"


def pd_name(features: Features) -> str:
    return f"PD-{features.metric_name}"


def frechet_distance_images(features: Features, fake: torch.Tensor, real: torch.Tensor, *,
                            batch: int = 16, size: int | None = 224) -> float:
    """Fréchet distance between the pool features of two image sets (N×3×H×W in [-1, 1]),
    both resized to ``size``² (None: as they are)."""
    fs = [FeatureStats(features.spec.pooled_dim) for _ in range(2)]
    fs[0].update(pooled_features(features, fake, batch=batch, size=size))
    fs[1].update(pooled_features(features, real, batch=batch, size=size))
    return frechet_distance_stats(fs[0], fs[1])


def _unit_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


def perceptual_distance(features: Features, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair distance (N,) without learned weights: at each layer the channel vectors are
    unit-normalised, their squared difference is summed over channels and averaged over space;
    layers are averaged (the LPIPS recipe with uniform instead of learned channel weights).
    Differentiable in ``a`` and ``b``."""
    if a.shape != b.shape:
        raise InputError(f"perceptual distance needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    fa, fb = features(a), features(b)
    per_layer = [(_unit_channels(fa[layer]) - _unit_channels(fb[layer])).pow(2).sum(1).mean((1, 2))
                 for layer in features.layers]
    return torch.stack(per_layer, 0).mean(0)
