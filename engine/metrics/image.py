"""Full-reference image metrics: PSNR and SSIM on uint8 RGB images (or N×3×H×W tensors in [-1, 1]).

SSIM follows Wang et al. 2004 as commonly computed (skimage ``gaussian_weights=True``): an 11×11
Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, data range 255, population covariances, the
mean over the "valid" part of the map and over channels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..requests.base import InputError


def _as_float_batch(img: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 H×W×3 / N×H×W×3 array, or N×3×H×W tensor in [-1, 1] -> N×3×H×W float64 in [0, 255]."""
    if isinstance(img, torch.Tensor):
        if img.ndim != 4:
            raise InputError(f"expected an N×C×H×W tensor in [-1, 1], got shape {tuple(img.shape)}")
        return ((img.detach().to(torch.float64).clamp(-1, 1) + 1) * 127.5).cpu()
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise InputError(f"expected uint8 images, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None, ..., None]
    elif arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise InputError(f"expected H×W×C or N×H×W×C images, got shape {arr.shape}")
    return torch.from_numpy(np.array(arr)).to(torch.float64).permute(0, 3, 1, 2)


def _pair(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_float_batch(a), _as_float_batch(b)
    if x.shape != y.shape:
        raise InputError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    return x, y


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB (data range 255), averaged over the batch; inf if identical."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype == np.uint8:
        if a.shape != b.shape:
            raise InputError(f"images differ in shape: {a.shape} vs {b.shape}")
        d = a.astype(np.int32) - b.astype(np.int32)  # exact integer squares, no float64 tensor copies
        d = d.reshape(1 if a.ndim <= 3 else a.shape[0], -1)
        mse = (d * d).mean(1)
    else:
        x, y = _pair(a, b)
        mse = ((x - y) ** 2).flatten(1).mean(1).numpy()
    vals = [math.inf if m == 0 else 10 * math.log10(255.0 ** 2 / float(m)) for m in mse]
    return float(np.mean(vals))


def save_sheet(rows: Sequence[Sequence[np.ndarray]], path: Path | str, *, scale: int = 2) -> Path:
    """A contact sheet of ``i2i eval --sheet``: one row of panels per case, each panel at the first
    panel's size (area-resized where it differs) enlarged ``scale``× (nearest), 2 px apart."""
    import cv2
    from PIL import Image

    from ..io import image_grid

    h, w = rows[0][0].shape[:2]

    def panel(im: np.ndarray) -> np.ndarray:
        im = np.asarray(im)
        if im.shape[:2] != (h, w):
            im = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
        return cv2.resize(im, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid([panel(im) for row in rows for im in row], columns=len(rows[0]), pad=2)).save(path)
    return path


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, *, window: int = 11,
         sigma: float = 1.5) -> float:
    """Mean structural similarity over pixels, channels and batch (1.0 for identical images)."""
    x, y = _pair(a, b)
    if min(x.shape[-2:]) < window:
        raise InputError(f"SSIM needs images of at least {window}×{window} pixels, got {tuple(x.shape[-2:])}")
    n, c = x.shape[:2]
    g = _gaussian_1d(window, sigma)
    gx, gy = g.view(1, 1, 1, window), g.view(1, 1, window, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        # separable valid-region Gaussian mean: 2×11 taps instead of 121; all five maps in one pass
        t = t.reshape(-1, 1, *t.shape[-2:])
        return F.conv2d(F.conv2d(t, gx), gy)

    stack = torch.cat([x, y, x * x, y * y, x * y], 0)
    h, w = x.shape[-2] - window + 1, x.shape[-1] - window + 1
    mx, my, xx, yy, xy = blur(stack).reshape(5, n, c, h, w)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    sxx, syy, sxy = xx - mx * mx, yy - my * my, xy - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())
