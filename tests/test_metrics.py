"""Feature extractor and metrics: known values, identities, and behaviour on shifted sets."""
import math

import numpy as np
import pytest
import torch

from engine.metrics.distribution import (
    FeatureStats,
    frechet_distance,
    frechet_distance_images,
    images_to_tensor,
    perceptual_distance,
)
from engine.metrics.features import BACKBONES, backbone_path, build_features, load_features, verify_backbone_file
from engine.metrics.image import psnr, ssim
from engine.metrics.segmentation import ConfusionMatrix, mean_iou
from engine.requests.base import InputError, WeightsError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mobilenet_random():
    """One random-initialised MobileNetV2 shared by the tests that only read from it."""
    return build_features("mobilenet_v2", random_init=True)


# ---------------------------------------------------------------- PSNR / SSIM
def test_psnr_known_value_and_identity() -> None:
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a + 10  # MSE 100 -> 10·log10(255² / 100)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-9)
    assert psnr(a, a) == math.inf
    with pytest.raises(InputError):
        psnr(a, np.zeros((8, 8, 3), np.uint8))


def test_ssim_known_values() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    # Flat images: the contrast-structure term is C2/C2 = 1, so SSIM = (2ab + C1) / (a² + b² + C1).
    a, b, c1 = 60.0, 180.0, (0.01 * 255) ** 2
    flat_a = np.full((20, 20, 3), int(a), np.uint8)
    flat_b = np.full((20, 20, 3), int(b), np.uint8)
    assert ssim(flat_a, flat_b) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    # Noise lowers SSIM monotonically.
    noisy1 = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    noisy2 = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    assert 1.0 > ssim(img, noisy1) > ssim(img, noisy2) > 0.0


def test_ssim_matches_reference_implementation_value() -> None:
    # Value from scikit-image 0.26 structural_similarity(a, b, channel_axis=2, gaussian_weights=True,
    # sigma=1.5, use_sample_covariance=False, data_range=255) on these deterministic patterns.
    i, j, c = np.meshgrid(np.arange(24), np.arange(20), np.arange(3), indexing="ij")
    a = ((i * 7 + j * 13 + c * 50) % 256).astype(np.uint8)
    b = ((i * i + 3 * j + c * 20) % 256).astype(np.uint8)
    assert ssim(a, b) == pytest.approx(0.10977257329682961, abs=1e-12)


def test_ssim_tensor_input_matches_uint8() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    ta, tb = images_to_tensor(a).double(), images_to_tensor(b).double()
    assert ssim(ta, tb) == pytest.approx(ssim(a, b), abs=1e-5)
    assert psnr(ta, tb) == pytest.approx(psnr(a, b), abs=1e-3)


# ---------------------------------------------------------------- Fréchet distance
def test_frechet_distance_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6))
    st = FeatureStats(6)
    st.update(x[:200])
    st.update(x[200:])
    assert np.allclose(st.cov, np.cov(x, rowvar=False)) and np.allclose(st.mean, x.mean(0))
    assert frechet_distance(st.mean, st.cov, st.mean, st.cov) == pytest.approx(0.0, abs=1e-8)
    # Shifted mean only: FD = |shift|². Scaled covariance (c·I vs I, diagonal): D·(√c - 1)².
    eye = np.eye(4)
    assert frechet_distance(np.zeros(4), eye, np.full(4, 2.0), eye) == pytest.approx(16.0)
    assert frechet_distance(np.zeros(4), eye, np.zeros(4), 9 * eye) == pytest.approx(4 * (3 - 1) ** 2)


def test_fd_on_images_identical_vs_shifted(mobilenet_random) -> None:
    feats = mobilenet_random
    rng = np.random.default_rng(0)
    real = rng.integers(0, 200, (8, 32, 32, 3), dtype=np.uint8)
    shifted = np.clip(real.astype(int) + 55, 0, 255).astype(np.uint8)
    real_t, shifted_t = images_to_tensor(real), images_to_tensor(shifted)
    same = frechet_distance_images(feats, real_t, real_t, batch=8, size=None)
    moved = frechet_distance_images(feats, shifted_t, real_t, batch=8, size=None)
    assert same == pytest.approx(0.0, abs=1e-6)
    assert moved > 1e-3 and moved > 1000 * max(same, 1e-9)


# ---------------------------------------------------------------- features
def test_random_init_features_without_file(weights_dir) -> None:
    assert not backbone_path("mobilenet_v2").exists()
    assert load_features(prefer=("vgg19", "mobilenet_v2")) is None
    with pytest.raises(WeightsError, match="fetch-backbone"):
        build_features("mobilenet_v2")
    f = build_features("mobilenet_v2", random_init=True)
    g = build_features("mobilenet_v2", random_init=True)
    assert not f.pretrained and f.metric_name == "MobileNetV2-random-init"
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = f(x)
    assert list(out) == list(f.layers) == ["block1", "block3", "block6", "block13", "block18"]
    assert [tuple(out[name].shape[1:]) for name in f.layers] == [(16, 32, 32), (24, 16, 16), (32, 8, 8),
                                                         (96, 4, 4), (1280, 2, 2)]
    assert torch.equal(out["block6"], g(x)["block6"])  # seeded, deterministic
    assert f.pooled(x).shape == (2, 1280)
    f.train()
    assert not f.training and not any(p.requires_grad for p in f.parameters())
    with pytest.raises(InputError):
        f(torch.zeros(1, 1, 64, 64))


def test_vgg_layers_and_gradient_reaches_input() -> None:
    f = build_features("vgg19", random_init=True, layers=("relu1_2", "relu2_2", "relu3_2"))
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    out = f(x)
    assert [tuple(out[name].shape[1:]) for name in f.layers] == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    assert f.weights == (1 / 32, 1 / 16, 1 / 8)
    sum(v.abs().mean() for v in out.values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_perceptual_distance_properties(mobilenet_random) -> None:
    f = mobilenet_random
    rng = np.random.default_rng(3)
    a = images_to_tensor(rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8))
    near = (a + 0.02 * torch.randn_like(a)).clamp(-1, 1)
    far = torch.flip(a, dims=[0, 3])
    d_self, d_near, d_far = (perceptual_distance(f, a, o) for o in (a, near, far))
    assert d_self.shape == (2,) and torch.allclose(d_self, torch.zeros(2), atol=1e-6)
    assert (d_near > 0).all() and (d_far > d_near).all()


def test_bad_file_is_rejected_and_skipped(weights_dir) -> None:
    path = backbone_path("mobilenet_v2")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="sha256"):
        verify_backbone_file("mobilenet_v2", path)
    assert load_features(prefer=("mobilenet_v2",)) is None


REAL_MOBILENET = backbone_path("mobilenet_v2")


@pytest.mark.skipif(not REAL_MOBILENET.exists(), reason="torchvision MobileNetV2 file not fetched "
                    "(`i2i data fetch-backbone`)")
def test_real_mobilenet_file_loads_and_classifies(monkeypatch) -> None:
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(REAL_MOBILENET.parent))
    f = load_features(prefer=("vgg19", "mobilenet_v2"))
    assert f is not None and f.pretrained and f.metric_name in ("MobileNetV2", "VGG19")
    f = build_features("mobilenet_v2", path=REAL_MOBILENET)
    assert f.source == str(REAL_MOBILENET) and f.spec.sha256 == BACKBONES["mobilenet_v2"].sha256
    # Pretrained BN statistics: a mid-grey image gives finite, non-trivial pool features.
    pooled = f.pooled(torch.zeros(1, 3, 64, 64))
    assert torch.isfinite(pooled).all() and pooled.abs().sum() > 0


# ---------------------------------------------------------------- mIoU
def test_miou_known_value_and_ignore() -> None:
    ref = np.array([[0, 1, 1], [2, 2, 2]])
    pred = np.array([[0, 1, 2], [2, 2, 1]])
    # class 0: 1/1; class 1: tp 1, union 3 -> 1/3; class 2: tp 2, union 4 -> 1/2
    assert mean_iou(ref, pred, 3) == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    # ignoring class 0 drops its pixel and its IoU
    assert mean_iou(ref, pred, 3, ignore_index=0) == pytest.approx((1 / 3 + 1 / 2) / 2)
    cm = ConfusionMatrix(4)
    cm.update(ref, ref)
    assert cm.miou() == 1.0 and cm.pixel_accuracy() == 1.0 and np.isnan(cm.iou()[3])
    with pytest.raises(InputError):
        cm.update(ref, pred[:1])


def test_low_rank_fd_matches_full_covariance_path() -> None:
    from engine.metrics.distribution import frechet_distance_stats

    rng = np.random.default_rng(5)
    a = FeatureStats(40)
    b = FeatureStats(40)
    a.update(rng.normal(size=(12, 40)))
    b.update(rng.normal(0.3, 1.5, size=(9, 40)))
    full = frechet_distance(a.mean, a.cov, b.mean, b.cov)
    assert frechet_distance_stats(a, b) == pytest.approx(full, rel=1e-6)
    a.update(rng.normal(size=(40, 40)))  # now N > D: falls back to the covariance path
    assert frechet_distance_stats(a, b) == pytest.approx(frechet_distance(a.mean, a.cov, b.mean, b.cov))
