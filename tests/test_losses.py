"""Known-value checks of the shared GAN / feature losses (engine/train/losses.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.train import losses as L

torch.set_num_threads(1)


def close(t: torch.Tensor, value: float, tol: float = 1e-5) -> bool:
    return abs(float(t) - value) < tol


def test_hinge_d_and_g_single_and_multiscale():
    real = torch.tensor([0.5, 2.0, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = [0.5, 0, 2] -> 5/6 ; relu(1 + fake) = [0, 1, 2] -> 1
    assert close(L.hinge_d_real(real), 5 / 6)
    assert close(L.hinge_d_fake(fake), 1.0)
    assert close(L.hinge_d_loss(real, fake), 5 / 6 + 1.0)
    assert close(L.hinge_g_loss(fake), 1 / 3)
    # multi-scale, SPADE format: per-scale feature lists with the prediction last; mean over scales
    feats = torch.randn(2, 4)
    pred = [[feats, real], [feats, torch.tensor([3.0])]]
    assert close(L.hinge_d_real(pred), (5 / 6 + 0.0) / 2)
    assert close(L.hinge_g_loss([real, torch.tensor([1.0])]), (-0.5 + -1.0) / 2)


def test_non_saturating_bce():
    zero = torch.zeros(4)
    assert close(L.bce_g_loss(zero), math.log(2))
    assert close(L.bce_d_loss(zero, zero), 2 * math.log(2))
    x = torch.tensor([1.5])
    assert close(L.bce_g_loss(x), -math.log(1 / (1 + math.exp(-1.5))))


def test_r1_penalty_linear_discriminator():
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    out = (3.0 * x).flatten(1).sum(1)  # ∇ = 3 everywhere
    assert close(L.r1_penalty(out, x), 0.5 * 9 * 32, 1e-3)
    with pytest.raises(ValueError, match="requires_grad"):
        L.r1_penalty(out, torch.randn(3, 2, 4, 4))


def test_wgan_gp_linear_critic():
    w = torch.zeros(1, 3, 2, 2)
    w[0, 0, 0, 0] = 2.0  # ‖∇‖ = 2 -> (2 - 1)² = 1

    def critic(z):
        return (z * w).flatten(1).sum(1)

    gp = L.gradient_penalty(critic, torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2))
    assert close(gp, 1.0)
    w[0, 0, 0, 0] = 1.0
    assert close(L.gradient_penalty(critic, torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)), 0.0)


def test_feature_matching_excludes_prediction_and_averages_scales():
    a, b = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    fake = [[a, a, torch.tensor([100.0])], [a, torch.tensor([-5.0])]]
    real = [[b, 2 * b, torch.tensor([0.0])], [3 * b, torch.tensor([5.0])]]
    # scale 0: 1 + 2 ; scale 1: 3 ; / 2 scales
    assert close(L.feature_matching_loss(fake, real), (3 + 3) / 2)


def test_perceptual_l1_mse_layer_and_sample_weights():
    f = {"a": torch.zeros(2, 1, 2, 2), "b": torch.zeros(2, 1, 1, 1)}
    r = {"a": torch.ones(2, 1, 2, 2), "b": torch.full((2, 1, 1, 1), 2.0)}
    assert close(L.perceptual_loss(f, r, {"a": 0.5, "b": 1.0}), 0.5 * 1 + 2.0)
    assert close(L.perceptual_loss(f, r, {"b": 1.0}, kind="mse"), 4.0)
    # only the first sample counts with weight 1: mean over both samples -> half
    sw = torch.tensor([1.0, 0.0])
    assert close(L.perceptual_loss(f, r, {"a": 1.0}, sample_weights=sw), 0.5)
    with pytest.raises(KeyError, match="zzz"):
        L.perceptual_loss(f, r, {"zzz": 1.0})


def test_contextual_loss_known_value():
    # two positions, two channels, no centring; y2 = (1, 1)/√2
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)
    s = 1 / math.sqrt(2)
    y = torch.tensor([[1.0, 0.0], [s, s]]).T.reshape(1, 2, 1, 2)
    # row x1: d = [0, 1-s], relative [0, (1-s)/1e-3] -> max affinity ≈ 1
    # row x2: d = [1, 1-s], min = 1-s, relative = d / (1-s + 1e-3), h = 1
    m = 1 - s + 1e-3
    e = [math.exp(1 - 1 / m), math.exp(1 - (1 - s) / m)]
    a2 = max(e) / sum(e)
    a1 = 1 / (1 + math.exp(-(1 - s) / 1e-3))
    expected = -math.log((a1 + a2) / 2)
    got = L.contextual_loss(x, y, h=1.0, centering="none")
    assert got.shape == (1,)
    assert close(got[0], expected, 1e-5)
    # identical features: every position matches itself -> loss ≈ 0 at h = 0.1
    z = torch.randn(2, 8, 4, 4)
    assert float(L.contextual_loss(z, z).max()) < 1e-3
    assert float(L.contextual_loss(torch.randn(2, 8, 4, 4), z).min()) > 0.05


def test_focal_loss_values():
    logits = torch.zeros(1, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    assert close(L.focal_loss(logits, target, gamma=2.0), 0.25 * math.log(2))
    lg = torch.randn(3, 5, 4, 4)
    tg = torch.randint(0, 5, (3, 4, 4))
    tg[0, 0, 0] = 255
    assert close(L.focal_loss(lg, tg, gamma=0.0, ignore_index=255),
                 float(F.cross_entropy(lg, tg, ignore_index=255)))
    assert close(L.binary_focal_loss(torch.zeros(4), torch.ones(4)), 0.25 * 0.25 * math.log(2))
