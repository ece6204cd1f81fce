"""EdgeGAN networks: TF names/layouts against the reference manifests, and the TF arithmetic
(SAME transposed convs, NHWC flattening, instance norm, scalar ε) against numpy references."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.families import get_family, state_dict_keys
from engine.nets.edgegan import (
    CONFIGS,
    EdgeEncoder,
    TFDeconv,
    build,
    state_dicts_to_tf,
    tf_instance_norm,
    tf_names,
    tf_same_avg_pool,
)

torch.set_num_threads(1)
MANIFESTS = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "manifests"
SUBNETS = ["encoder", "edge_generator", "image_generator", "joint_discriminator", "image_discriminator",
           "edge_discriminator"]


@pytest.mark.skipif(not MANIFESTS.is_dir(), reason="the shared reference manifests are not beside the project")
@pytest.mark.parametrize("sub", SUBNETS)
def test_tf_names_match_reference_manifest(sub: str) -> None:
    path = MANIFESTS / f"edgegan_class14_{sub}.json"
    expected = json.loads(path.read_text())
    got = tf_names(CONFIGS["class14"])[sub]
    if sub.endswith("generator"):
        # The hand-traced manifests miss the batch norm that the official `nn.norm(h0, self._norm)` really
        # creates (its variables are in the checkpoint written by the official code, tests/data/edgegan_tf).
        scope = "G1" if sub == "edge_generator" else "G2"
        bn = {f"{scope}/batch_norm/BatchNorm/{v}": [[512], "float32"] for v in ("beta", "gamma")}
        assert {k: got[k] for k in bn} == bn
        got = {k: v for k, v in got.items() if k not in bn}
    assert got == expected
    assert list(got) == list(expected)  # same order as the TF variable creation order


def test_family_registered_with_tf_view_and_cli(capsys) -> None:
    from engine.cli import main

    fam = get_family("edgegan")
    assert set(fam.inference_subnets) == {"encoder", "edge_generator", "image_generator"}
    assert "tf-names" in fam.keys_extra
    assert main(["weights", "keys", "edgegan", "--config", "class14", "--tf-names"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sorted(data) == sorted([*SUBNETS, "classifier"])
    assert data["classifier"]["D2/fully_connected/weights"] == [[768, 14], "float32"]
    assert data["joint_discriminator"]["D/d_linear_5/Matrix"] == [[16384, 1], "float32"]


def test_class14_parameter_counts_and_128_option() -> None:
    keys = state_dict_keys(build(CONFIGS["class14"]))
    n_e = sum(int(np.prod(s)) for s, _ in keys["encoder"].values())
    n_g = sum(int(np.prod(s)) for s, _ in keys["edge_generator"].values())
    tf = tf_names(CONFIGS["class14"])
    assert n_e == sum(int(np.prod(s)) for s, _ in tf["encoder"].values())
    assert n_g == sum(int(np.prod(s)) for s, _ in tf["edge_generator"].values())
    big = tf_names(CONFIGS["class14_128"])
    assert big["edge_generator"]["G1/g_lin_0/Matrix"][0] == [114, 8 * 8 * 512]
    assert big["joint_discriminator"]["D/d_linear_5/Matrix"][0] == [8 * 16 * 512, 1]


def _np_deconv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TF conv2d_transpose, stride 2, 'SAME', NHWC, w [kh, kw, out, in]: y[2i + k − pad] += x[i]·w[k],
    pad = (k − 2) // 2 (TF pads the equivalent forward conv (k − 2)//2 before)."""
    n, h, wd, _ = x.shape
    k = w.shape[0]
    pad = (k - 2) // 2
    full = np.zeros((n, 2 * h + k, 2 * wd + k, w.shape[2]), np.float64)
    for kh in range(k):
        for kw in range(k):
            full[:, kh:kh + 2 * h:2, kw:kw + 2 * wd:2] += np.einsum("nijc,oc->nijo", x, w[kh, kw])
    return full[:, pad:pad + 2 * h, pad:pad + 2 * wd] + b


def _np_conv_same_s2(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """TF conv2d, 4×4, stride 2, 'SAME' on even sizes (pad 1 before, 1 after), NHWC."""
    n, h, wd, _ = x.shape
    k = w.shape[0]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h // 2, wd // 2, w.shape[3]))
    for kh in range(k):
        for kw in range(k):
            out += np.einsum("nijc,co->nijo", xp[:, kh:kh + h:2, kw:kw + wd:2], w[kh, kw])
    return out


def _np_inorm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) / (np.sqrt(x.var(axis=(1, 2), keepdims=True)) + 1e-5)


def test_generator_matches_numpy_nhwc_reference_from_tf_layout() -> None:
    cfg = CONFIGS["tiny"]
    torch.manual_seed(0)
    g = build(cfg)["edge_generator"].eval()
    with torch.no_grad():
        g.fc_norm.weight.uniform_(0.5, 1.5)
        g.fc_norm.bias.normal_(0, 0.2)
    tf = {k: v.double().numpy() for k, v in state_dicts_to_tf({"edge_generator": g.state_dict()}, cfg).items()}
    z = torch.rand(2, cfg["z_dim"]) * 2 - 1
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        ours = g(z, labels).permute(0, 2, 3, 1).double().numpy()
    zc = np.concatenate([z.double().numpy(), np.eye(3)[[0, 2]]], 1)
    h = zc @ tf["G1/g_lin_0/Matrix"] + tf["G1/g_lin_0/bias"]
    h = h.reshape(2, g.s16, g.s16, -1)  # NHWC reshape as the TF code, then batch norm over (N, H, W)
    mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
    gamma, beta = tf["G1/batch_norm/BatchNorm/gamma"], tf["G1/batch_norm/BatchNorm/beta"]
    h = np.maximum((h - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0)
    for i in range(1, 5):
        h = _np_deconv_same(h, tf[f"G1/g_dconv_{i}/deconv2d/w"], tf[f"G1/g_dconv_{i}/deconv2d/b"])
        if i < 4:
            h = np.maximum(_np_inorm(h), 0)
    np.testing.assert_allclose(ours, np.tanh(h), atol=2e-5)


def test_discriminator_matches_numpy_nhwc_reference_from_tf_layout() -> None:
    cfg = CONFIGS["tiny"]
    torch.manual_seed(1)
    d = build(cfg)["joint_discriminator"].eval()
    tf = {k: v.double().numpy() for k, v in state_dicts_to_tf({"joint_discriminator": d.state_dict()}, cfg).items()}
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        ours = d(x).double().numpy()
    h = x.permute(0, 2, 3, 1).double().numpy()
    for i, name in enumerate(["d_conv_0", "d_conv_1", "d_conv_3", "d_conv_4"]):
        h = _np_conv_same_s2(h, tf[f"D/{name}/conv2d/w"])
        if i:
            h = _np_inorm(h)
        h = np.maximum(h, 0.2 * h)
    ref = h.reshape(2, -1) @ tf["D/d_linear_5/Matrix"] + tf["D/d_linear_5/bias"]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_tf_deconv_output_is_exactly_double_size() -> None:
    layer = TFDeconv(4, 2)
    assert layer(torch.randn(1, 4, 3, 5)).shape == (1, 2, 6, 10)


def test_tf_ops_instance_norm_and_same_pool() -> None:
    x = torch.randn(2, 3, 5, 7)
    y = tf_instance_norm(x)
    assert torch.allclose(y.mean((2, 3)), torch.zeros(2, 3), atol=1e-5)
    std = x.var((2, 3), unbiased=False, keepdim=True).sqrt()
    assert torch.allclose(y, (x - x.mean((2, 3), keepdim=True)) / (std + 1e-5))
    small = torch.randn(1, 4, 2, 2)  # 8×8 SAME pool of a 2×2 map = its mean (padding not counted)
    assert torch.allclose(tf_same_avg_pool(small, 8), small.mean((2, 3), keepdim=True), atol=1e-6)
    big = torch.randn(1, 2, 12, 12)  # 12 -> 2 windows: [0:8] with 2 pad before... TF pads 2/2
    pooled = tf_same_avg_pool(big, 8)
    assert pooled.shape[-2:] == (2, 2)
    assert torch.allclose(pooled[0, :, 0, 0], big[0, :, :6, :6].mean((1, 2)), atol=1e-6)


def test_encoder_scalar_noise_is_one_number_per_call() -> None:
    torch.manual_seed(0)
    enc = EdgeEncoder(32, 16, 8).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        z, mu, log_sigma = enc(x, noise="scalar", generator=torch.Generator().manual_seed(5))
        eps = (z - mu) / log_sigma.exp()
        assert torch.allclose(eps, eps.flatten()[0].expand_as(eps), atol=1e-4)
        z2, _, _ = enc(x, noise="elementwise", generator=torch.Generator().manual_seed(5))
        eps2 = (z2 - mu) / log_sigma.exp()
        assert eps2.std() > 0.3
        z3, mu3, _ = enc(x, noise="none")
        assert torch.equal(z3, mu3)
        again, _, _ = enc(x, noise="scalar", generator=torch.Generator().manual_seed(5))
        assert torch.equal(z, again)


def test_small_configs_forward_shapes() -> None:
    cfg = CONFIGS["tiny"]
    nets = build(cfg)
    x = torch.randn(2, 3, 32, 32)
    z, _, _ = nets["encoder"](x)
    labels = torch.tensor([0, 1])
    img = nets["image_generator"](z, labels)
    assert img.shape == (2, 3, 32, 32) and img.abs().max() <= 1
    assert nets["classifier"](img).shape == (2, 3)
    assert nets["image_discriminator"](img).shape == (2, 1)
    bg = nets["background_generator"](torch.randn(1, 5, 64, 64))
    assert bg.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="divisible"):
        nets["background_generator"](torch.randn(1, 5, 40, 40))
